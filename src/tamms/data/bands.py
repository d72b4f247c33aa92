"""Band names: one vocabulary for every sensor, and picking a model's input bands by name.

Every sample carries one name per channel (`SitsSequence.band_names`, `ChangePair.band_names`), in
the vocabulary below. Sensor band codes (Sentinel-2 `B04`, `B8A`; Landsat `SR_B5`; STAC common names
such as `swir16`) are mapped onto it when data is read, so a model trained on `["red", "green",
"blue", "nir"]` finds those bands in NAIP, Sentinel-2 or Landsat data alike. docs/data.md lists the
vocabulary and the sensor tables.
"""

from __future__ import annotations

from typing import Sequence

from tamms.errors import InputError

# standard name -> what it is (centre wavelength in nm where it has one). Ordered by wavelength.
BAND_VOCABULARY: dict[str, str] = {
    "coastal": "coastal aerosol, ~443 nm (Sentinel-2 B01, Landsat 8/9 B1)",
    "blue": "blue, ~490 nm",
    "green": "green, ~560 nm",
    "red": "red, ~665 nm",
    "rededge1": "red edge 1, ~705 nm (Sentinel-2 B05)",
    "rededge2": "red edge 2, ~740 nm (Sentinel-2 B06)",
    "rededge3": "red edge 3, ~783 nm (Sentinel-2 B07)",
    "nir": "near infrared, ~840 nm (Sentinel-2 B08, Landsat 8/9 B5, Landsat 4-7 B4, NAIP band 4)",
    "nir08": "narrow near infrared, ~865 nm (Sentinel-2 B8A)",
    "water_vapour": "water vapour, ~945 nm (Sentinel-2 B09)",
    "cirrus": "cirrus, ~1375 nm (Sentinel-2 B10, Landsat 8/9 B9)",
    "swir1": "short-wave infrared 1, ~1610 nm (Sentinel-2 B11, Landsat 8/9 B6, Landsat 4-7 B5)",
    "swir2": "short-wave infrared 2, ~2190 nm (Sentinel-2 B12, Landsat 8/9 B7, Landsat 4-7 B7)",
    "pan": "panchromatic (Landsat 7-9 B8)",
    "thermal": "thermal infrared, ~10.9 um (Landsat 8/9 B10, Landsat 4-7 B6)",
    "thermal2": "thermal infrared 2, ~12 um (Landsat 8/9 B11)",
}

# Other spellings of the standard names (STAC `eo:common_name`, colour words, Sentinel-2 long names).
BAND_ALIASES: dict[str, str] = {
    "r": "red", "g": "green", "b": "blue", "n": "nir", "nir1": "nir", "near_infrared": "nir", "nir_broad": "nir",
    "rededge": "rededge1", "re1": "rededge1", "re2": "rededge2", "re3": "rededge3",
    "rededge4": "nir08", "nir_narrow": "nir08", "nir09": "water_vapour", "water_vapor": "water_vapour",
    "wv": "water_vapour", "swir16": "swir1", "swir22": "swir2", "swir_1": "swir1", "swir_2": "swir2",
    "lwir": "thermal", "lwir11": "thermal", "lwir12": "thermal2", "tir": "thermal", "tir1": "thermal",
    "tir2": "thermal2", "panchromatic": "pan", "aerosol": "coastal", "coastal_aerosol": "coastal",
}

SENTINEL2_BANDS: dict[str, str] = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "water_vapour", "B10": "cirrus", "B11": "swir1",
    "B12": "swir2",
}
# The 13 bands of a Sentinel-2 L1C product in their usual order (OSCD stores them in this order).
SENTINEL2_ORDER = list(SENTINEL2_BANDS)

LANDSAT89_BANDS: dict[str, str] = {  # OLI/TIRS
    "B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "B6": "swir1", "B7": "swir2",
    "B8": "pan", "B9": "cirrus", "B10": "thermal", "B11": "thermal2",
}
LANDSAT457_BANDS: dict[str, str] = {  # TM / ETM+
    "B1": "blue", "B2": "green", "B3": "red", "B4": "nir", "B5": "swir1", "B6": "thermal", "B7": "swir2",
    "B8": "pan",
}
NAIP_BANDS = ["red", "green", "blue", "nir"]

SENSORS: dict[str, dict[str, str] | list[str]] = {
    "sentinel2": SENTINEL2_BANDS, "landsat8": LANDSAT89_BANDS, "landsat9": LANDSAT89_BANDS,
    "landsat4": LANDSAT457_BANDS, "landsat5": LANDSAT457_BANDS, "landsat7": LANDSAT457_BANDS, "naip": NAIP_BANDS,
}
_SENSOR_ALIASES = {"s2": "sentinel2", "sentinel-2": "sentinel2", "l8": "landsat8", "l9": "landsat9",
                   "landsat-8": "landsat8", "landsat-9": "landsat9", "l5": "landsat5", "l7": "landsat7",
                   "landsat-5": "landsat5", "landsat-7": "landsat7", "l4": "landsat4"}

RGB = ("red", "green", "blue")


def _sensor_table(sensor: str | None) -> dict[str, str] | list[str] | None:
    if sensor is None:
        return None
    key = sensor.strip().lower().replace("_", "")
    key = _SENSOR_ALIASES.get(key, key)
    if key not in SENSORS:
        raise InputError(f"unknown sensor {sensor!r}: use one of {sorted(SENSORS)} or give band_names")
    return SENSORS[key]


def _band_code(name: str) -> str:
    """`SR_B5`, `b5`, `B05`, `band_5` -> `B5`/`B05`; `B8A`/`b8a` -> `B8A`."""
    code = name.strip().upper()
    for prefix in ("SR_", "ST_", "TOA_", "BAND_", "BAND"):
        if code.startswith(prefix):
            code = code[len(prefix):]
            break
    if code.isdigit():
        code = "B" + code
    return code


def standard_band_name(name: str, sensor: str | None = None) -> str:
    """The vocabulary name of one band name or code; an unknown name is returned lower-cased, unchanged.

    Two-digit Sentinel-2 codes (`B04`, `B8A`) are recognised without `sensor`; one-digit codes (`B4`,
    `SR_B4`) mean different bands on Landsat 4-7 and 8-9, so they need `sensor` ("landsat8", ...).
    """
    text = str(name).strip()
    low = text.lower().replace("-", "_").replace(" ", "_")
    if low in BAND_VOCABULARY:
        return low
    if low in BAND_ALIASES:
        return BAND_ALIASES[low]
    table = _sensor_table(sensor)
    code = _band_code(text)
    if isinstance(table, dict):
        if code in table:
            return table[code]
        if len(code) == 2 and code[0] == "B" and f"B0{code[1]}" in table:  # B4 -> B04 for Sentinel-2
            return table[f"B0{code[1]}"]
    if code in SENTINEL2_BANDS:
        return SENTINEL2_BANDS[code]
    return low


def standard_band_names(names: Sequence[str], sensor: str | None = None) -> list[str]:
    """`standard_band_name` for every band; two bands mapping to one name is an error."""
    out = [standard_band_name(n, sensor) for n in names]
    dups = sorted({n for n in out if out.count(n) > 1})
    if dups:
        raise InputError(f"band names {list(names)} give {dups} more than once: give each band its own name")
    return out


def default_band_names(count: int, sensor: str | None = None) -> tuple[list[str], str]:
    """Band names for data that does not name its bands: (names, how they were chosen).

    With a sensor: its bands in order (a Sentinel-2 file with 13 bands, NAIP with 4). Without: 3 bands
    are red, green, blue (the order of every RGB image format); 4 bands are red, green, blue, nir (the
    order of NAIP and most 4-band aerial/PlanetScope products: an assumption, recorded as such); any
    other count gets `band1`..`bandN`, which no model asks for, so a model needing named bands says so.
    """
    table = _sensor_table(sensor)
    if table is not None:
        names = list(table.values()) if isinstance(table, dict) else list(table)
        if count == len(names):
            return names, f"sensor {sensor}"
        raise InputError(f"sensor {sensor!r} has {len(names)} bands but the data has {count}: give band_names")
    if count == 3:
        return list(RGB), "RGB order (3 bands)"
    if count == 4:
        return NAIP_BANDS[:], "assumed red, green, blue, nir (4 bands, NAIP order); give band_names if not"
    return [f"band{i + 1}" for i in range(count)], f"unnamed ({count} bands)"


def rgb_indices(band_names: Sequence[str] | None) -> tuple[int, int, int] | None:
    """Indices of red, green, blue in `band_names`, or None when one of them is missing."""
    if not band_names:
        return None
    names = [standard_band_name(n) for n in band_names]
    if all(c in names for c in RGB):
        return tuple(names.index(c) for c in RGB)  # type: ignore[return-value]
    return None


def select_bands(available: Sequence[str] | None, wanted: Sequence[str], needed_by: str = "the model") -> list[int]:
    """Indices of the `wanted` bands (any spelling the vocabulary knows) in `available`, in `wanted` order.

    A band that is not there raises one `InputError` naming the missing bands, the bands present and
    the fix, e.g. "the model needs bands ['nir'] but the data has ['red', 'green', 'blue'] ...".
    """
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted_std = [standard_band_name(w) for w in wanted]
    if not wanted_std:
        raise InputError(f"{needed_by} names no bands: give at least one band name")
    have = [standard_band_name(n) for n in available] if available else []
    missing = [w for w in wanted_std if w not in have]
    if missing:
        fix = (f"give {len(wanted_std)}-band imagery with {wanted_std}, or a model trained on the bands the data has"
               if have else "name the data's bands (band_names in sequence.json, or band_names=...)")
        if have and all(c in have for c in RGB) and len(have) == 3:
            fix = "give imagery with those bands or a model trained on RGB"
        raise InputError(f"{needed_by} needs bands {missing} but the data has {have}: {fix}")
    return [have.index(w) for w in wanted_std]

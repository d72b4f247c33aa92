"""One reader entry point: every layout recognised (tiny fakes), band names carried, bands picked by name."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from tamms.data import (
    ChangePair,
    SitsSequence,
    detect_layout,
    keep_bands,
    read_dataset,
    read_oscd,
    read_pairs,
    read_sequence,
    select_bands,
    standard_band_name,
    standard_band_names,
)
from tamms.data.bands import SENTINEL2_ORDER, default_band_names
from tamms.errors import AlignmentError, DateError, InputError
from tests.conftest import shared_path
from tests.test_data_readers import UTM, write_json, write_pngs, write_tif

S2_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
          "B09": 60, "B10": 60, "B11": 20, "B12": 20}
S2_NAMES = ["coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "water_vapour",
            "cirrus", "swir1", "swir2"]


# --- band vocabulary -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, sensor, expected", [
    ("B04", None, "red"), ("b8a", None, "nir08"), ("B08", None, "nir"), ("B11", None, "swir1"),
    ("B09", None, "water_vapour"), ("swir16", None, "swir1"), ("nir09", None, "water_vapour"), ("Red", None, "red"),
    ("SR_B5", "landsat8", "nir"), ("B4", "landsat5", "nir"), ("B4", "landsat8", "red"), ("B4", "sentinel2", "red"),
    ("B4", None, "b4"),  # one-digit codes differ between Landsat generations: unmapped without a sensor
    ("elevation", None, "elevation"),
])
def test_standard_band_name(name, sensor, expected):
    assert standard_band_name(name, sensor) == expected


def test_band_names_errors_and_defaults():
    with pytest.raises(InputError, match="more than once"):
        standard_band_names(["B04", "red"])
    with pytest.raises(InputError, match="unknown sensor 'spot'"):
        standard_band_name("B1", "spot")
    assert default_band_names(3)[0] == ["red", "green", "blue"]
    names, source = default_band_names(4)
    assert names == ["red", "green", "blue", "nir"] and "assumed" in source
    assert default_band_names(2)[0] == ["band1", "band2"]
    assert default_band_names(13, "sentinel2")[0] == S2_NAMES
    with pytest.raises(InputError, match="has 4 bands but the data has 3"):
        default_band_names(3, "naip")


def test_select_bands_by_name_and_the_error_names_both_sides():
    assert select_bands(["B02", "B03", "B04", "B08"], ["red", "green", "blue", "nir"]) == [2, 1, 0, 3]
    with pytest.raises(InputError) as err:
        select_bands(["red", "green", "blue"], ["red", "nir"])
    msg = str(err.value)
    assert "needs bands ['nir']" in msg and "['red', 'green', 'blue']" in msg and "model trained on RGB" in msg
    with pytest.raises(InputError, match="swir1"):
        select_bands(["red", "green", "blue", "nir"], ["swir1"], needed_by="the forecaster")


def test_keep_bands_on_a_sequence_and_a_pair():
    rng = np.random.default_rng(0)
    seq = SitsSequence(rng.random((2, 4, 6, 6), dtype=np.float32), ["2020-01-01", "2021-01-01"],
                       band_names=["nir", "red", "green", "blue"], future_frame=rng.random((4, 6, 6), dtype=np.float32),
                       future_date="2022-01-01")
    assert seq.rgb_bands == (1, 2, 3)  # red, green, blue found by name
    rgb = keep_bands(seq, ["red", "green", "blue"])
    np.testing.assert_array_equal(rgb.frames, seq.frames[:, [1, 2, 3]])
    np.testing.assert_array_equal(rgb.future_frame, seq.future_frame[[1, 2, 3]])
    assert rgb.band_names == ["red", "green", "blue"] and rgb.rgb_bands == (0, 1, 2)
    assert seq.num_bands == 4  # the original is untouched
    pair = ChangePair("p", rng.random((3, 5, 5)), rng.random((3, 5, 5)), band_names=["red", "green", "blue"])
    with pytest.raises(InputError, match=r"needs bands \['nir'\] but the data has \['red', 'green', 'blue'\]"):
        keep_bands(pair, ["red", "green", "blue", "nir"])
    assert keep_bands(pair, ["blue"]).before.shape == (1, 5, 5)
    assert keep_bands(pair, None) is pair


def test_change_pair_checks_and_sample():
    a = np.zeros((3, 4, 4), np.float32)
    with pytest.raises(DateError, match="earlier than the before date"):
        ChangePair("p", a, a, dates=("2020-01-01", "2019-01-01"))
    with pytest.raises(InputError, match="one name per band"):
        ChangePair("p", a, a, band_names=["red"])
    with pytest.raises(InputError, match="mask"):
        ChangePair("p", a, a, mask=np.zeros((3, 3), np.uint8))
    pair = ChangePair("p", a, a + 1, mask=np.ones((4, 4), np.uint8), dates=("2019-01-01", "2020-01-01"),
                      band_names=["red", "green", "blue"], captions=["a road appears"])
    sample = pair.to_sample()
    assert tuple(sample["image"].shape) == (2, 3, 4, 4) and sample["time"].tolist() == [17897.0, 18262.0]
    assert sample["band_names"] == ["red", "green", "blue"] and sample["captions"] == ["a road appears"]
    assert "time" not in ChangePair("q", a, a).to_sample()  # no dates: no invented times


# --- sequences -----------------------------------------------------------------------------------
def test_sequence_band_names_from_json_sensor_and_files(tmp_path):
    data = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    frames = []
    (tmp_path / "s").mkdir()
    for year in (2019, 2020):
        write_tif(tmp_path / "s" / f"{year}.tif", data)
        frames.append({"path": f"{year}.tif", "date": f"{year}-06-01"})
    write_json(tmp_path / "s", frames, band_names=["B08", "B04", "B03", "B02"])
    seq = read_sequence(tmp_path / "s")
    assert seq.band_names == ["nir", "red", "green", "blue"] and seq.rgb_bands == (1, 2, 3)
    assert seq.meta["band_names_source"] == "band_names in sequence.json"
    assert read_sequence(tmp_path / "s", bands=["red", "nir"]).band_names == ["red", "nir"]
    # the caller's names win; a sensor names unnamed bands
    assert read_sequence(tmp_path / "s", band_names=["swir1", "nir", "red", "green"]).band_names[0] == "swir1"
    write_json(tmp_path / "s", frames, sensor="naip")
    assert read_sequence(tmp_path / "s").band_names == ["red", "green", "blue", "nir"]
    # GeoTIFF band descriptions (as write_geotiff writes them) name the bands
    import rasterio
    with rasterio.open(tmp_path / "s" / "2019.tif", "r+") as dst:
        for i, name in enumerate(["B02", "B03", "B04", "B8A"], start=1):
            dst.set_band_description(i, name)
    seq = read_sequence([tmp_path / "s" / "2019.tif"])
    assert seq.band_names == ["blue", "green", "red", "nir08"] and seq.meta["band_names_source"].startswith("band desc")


# --- LEVIR-CD style pairs ------------------------------------------------------------------------
def _levir(root: Path, names=("t1.png", "t2.png"), size=(16, 16), seed=0) -> Path:
    from PIL import Image

    write_pngs(root / "A", {n: size for n in names}, seed)
    write_pngs(root / "B", {n: size for n in names}, seed + 1)
    (root / "label").mkdir(parents=True)
    for i, n in enumerate(names):
        lab = np.zeros(size, np.uint8)
        lab[: 2 + i, :4] = 255
        Image.fromarray(lab).save(root / "label" / n)
    return root


def test_levir_cd_layout_with_dates_splits_and_captions(tmp_path):
    root = _levir(tmp_path / "cd")
    (root / "dates.json").write_text(json.dumps({"t1.png": ["2016-01-20", "2018-03-28"]}))
    assert detect_layout(root) == "levir-cd"
    contents = read_dataset(root)
    t1, t2 = contents.pairs
    assert t1.dates == (dt.date(2016, 1, 20), dt.date(2018, 3, 28)) and t2.dates is None
    assert t1.band_names == ["red", "green", "blue"] and t1.rgb_bands == (0, 1, 2)
    assert t1.mask.sum() == 8 and t2.mask.sum() == 12 and t1.scaling.scale == [255.0] * 3
    assert t1.meta["source"] == "levir-cd" and contents.layout == "levir-cd"

    splits = tmp_path / "splits"
    _levir(splits / "train", names=("a.png",))
    _levir(splits / "test", names=("b.png",))
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"pairs": {"a.png": {"split": "train", "captions": ["a house appears"]}}}))
    assert detect_layout(splits) == "levir-cd"
    pairs = read_dataset(splits, captions=caps).pairs
    assert [(p.name, p.split) for p in pairs] == [("train/a", "train"), ("test/b", "test")]
    assert pairs[0].captions == ["a house appears"] and pairs[1].captions == []

    with pytest.raises(DateError, match="two dates"):
        (root / "dates.json").write_text(json.dumps({"t1.png": ["2016-01-20"]}))
        read_pairs(root)


def test_multiband_geotiff_pairs_keep_every_band(tmp_path):
    rng = np.random.default_rng(1)
    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        write_tif(tmp_path / side / "x.tif", rng.integers(0, 3000, (4, 12, 12)).astype(np.uint16))
    pairs = read_pairs(tmp_path, band_names=["B02", "B03", "B04", "B08"], scaling=3000)
    p = pairs[0]
    assert p.before.shape == (4, 12, 12) and p.band_names == ["blue", "green", "red", "nir"]
    assert p.rgb_bands == (2, 1, 0) and p.crs == UTM and p.mask is None
    before_rgb, _ = p.rgb()
    np.testing.assert_allclose(before_rgb[0], p.before[2])
    assert 0.0 <= p.before.min() and p.after.max() <= 1.0


# --- OSCD original layout ------------------------------------------------------------------------
def _oscd_city(root: Path, city: str, georef: bool = True, label: str | None = "tif",
               dates=("20170202", "20180327"), size: int = 60, dates_txt: bool = True) -> Path:
    """A fake OSCD city: 13 single-band GeoTIFFs per date at 10/20/60 m, a change map and dates.txt."""
    from PIL import Image

    folder = root / city
    for d, date in ((1, dates[0]), (2, dates[1])):
        (folder / f"imgs_{d}").mkdir(parents=True)
        for k, code in enumerate(SENTINEL2_ORDER):
            factor = S2_RES[code] // 10
            n = size // factor
            band = np.full((n, n), 100 * (k + 1), dtype=np.uint16)
            band[:, n // 2:] += 1000  # a left/right step tells where the resampled pixels came from
            if d == 2:
                band[: n // 3, : n // 3] += 500  # the change
            grid = (float(S2_RES[code]), 0.0, 600000.0, 0.0, -float(S2_RES[code]), 5000000.0)
            name = f"S2A_OPER_MSI_L1C_TL_SGS__{date}T103535_A002340_T31UDQ_{code}.tif"
            write_tif(folder / f"imgs_{d}" / name, band, crs=UTM if georef else None, transform=grid)
        (folder / f"imgs_{d}" / "preview.png").write_bytes(b"not a band")
    if dates_txt:
        (folder / "dates.txt").write_text(f"date_1: {dates[0]}\ndate_2: {dates[1]}\n")
    cm = np.zeros((size, size), np.uint8)
    cm[: size // 3, : size // 3] = 1
    if label == "tif":
        (folder / "cm").mkdir()
        write_tif(folder / "cm" / f"{city}-cm.tif", (cm + 1).astype(np.uint8), crs=UTM if georef else None,
                  transform=(10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0))  # OSCD: 1 = no change, 2 = change
    elif label == "png":
        (folder / "cm").mkdir()
        Image.fromarray(cm * 255).save(folder / "cm" / "cm.png")
    return folder


def test_oscd_original_layout_13_bands_on_the_10m_grid(tmp_path):
    images = tmp_path / "Onera Satellite Change Detection dataset - Images"
    _oscd_city(images, "abudhabi", georef=True, label="tif")
    _oscd_city(images, "paris", georef=False, label=None, dates=("20160101", "20171231"))
    (images / "train.txt").write_text("abudhabi,paris")
    # the original download keeps the labels in a tree beside the images
    labels = tmp_path / "Onera Satellite Change Detection dataset - Train Labels"
    (labels / "paris" / "cm").mkdir(parents=True)
    from PIL import Image
    cm = np.zeros((60, 60), np.uint8)
    cm[:20, :20] = 255
    Image.fromarray(cm).save(labels / "paris" / "cm" / "cm.png")

    assert detect_layout(images) == "oscd" and detect_layout(images / "paris") == "oscd"
    contents = read_dataset(images)
    assert contents.layout == "oscd"
    abu, paris = contents.pairs
    for p in (abu, paris):
        assert p.before.shape == (13, 60, 60) and p.band_names == S2_NAMES and p.rgb_bands == (3, 2, 1)
        assert p.split == "train" and p.meta["sentinel2_bands"] == SENTINEL2_ORDER
        assert p.mask.sum() == 400 and p.mask[:20, :20].all()  # 1/2 tif and 0/255 png both read as 0/1
        assert p.scaling.method == "divisor" and p.scaling.scale[0] == 10000.0
        raw = p.before * 10000.0
        # every band is on the 10 m grid: the 60 m step (coastal, 100 | 1100) sits in the middle column
        assert np.allclose(raw[0][:, :25], 100) and np.allclose(raw[0][:, 35:], 1100)
        assert np.allclose(raw[8][:, :28], 900) and np.allclose(raw[8][:, 32:], 1900)  # B8A, 20 m
        after_raw = p.after * 10000.0
        assert np.allclose(after_raw[3][:20, :20], 400 + 500)  # red (10 m), changed corner
    assert abu.dates == (dt.date(2017, 2, 2), dt.date(2018, 3, 27)) and abu.crs == UTM
    assert paris.dates == (dt.date(2016, 1, 1), dt.date(2017, 12, 31)) and paris.crs is None
    assert paris.meta["label_path"].endswith("paris/cm/cm.png")
    # a model asking for the 10 m bands by name
    ten = keep_bands(abu, ["blue", "green", "red", "nir"])
    np.testing.assert_array_equal(ten.before, abu.before[[1, 2, 3, 7]])


def test_oscd_errors(tmp_path):
    city = _oscd_city(tmp_path, "rennes", label=None, dates_txt=False)
    pair = read_oscd(city)[0]
    assert pair.mask is None and pair.dates is None and pair.split is None
    (city / "dates.txt").write_text("date_1: 20170202\n")
    with pytest.raises(DateError, match="date_2"):
        read_oscd(city)
    (city / "dates.txt").unlink()
    for p in (city / "imgs_2").glob("*_B12.tif"):
        p.unlink()
    with pytest.raises(AlignmentError, match="the same bands"):
        read_oscd(city)
    for p in (city / "imgs_1").glob("*_B0[2348].tif"):
        p.unlink()
    with pytest.raises(InputError, match="no 10 m Sentinel-2 band"):
        read_oscd(city)


# --- sequences, LEVIR-CC, collections, unknown layouts --------------------------------------------
def test_sequence_layouts_and_levir_cc_and_collection(tmp_path):
    write_pngs(tmp_path / "all" / "site_a", {"2019-01-01.png": (8, 8), "2020-01-01.png": (8, 8)})
    write_pngs(tmp_path / "all" / "site_b", {"2018_x.png": (8, 8), "2021_x.png": (8, 8)})
    assert detect_layout(tmp_path / "all" / "site_a") == "sequence"
    assert detect_layout(tmp_path / "all") == "sequences"
    seqs = read_dataset(tmp_path / "all").sequences
    assert [s.meta["id"] for s in seqs] == ["site_a", "site_b"] and seqs[0].band_names == ["red", "green", "blue"]

    cc = tmp_path / "all" / "levir_cc"
    _levir(cc / "images", names=("train_000001.png",))
    (cc / "captions.json").write_text(json.dumps({"images": [
        {"filename": "train_000001.png", "filepath": "train", "sentences": [{"raw": " a road is built ."}]},
        {"filename": "val_000002.png", "filepath": "val", "sentences": [{"tokens": ["no", "change"]}]}]}))
    assert detect_layout(cc) == "levir-cc" and detect_layout(cc / "captions.json") == "levir-cc"
    got = read_dataset(cc)
    assert len(got.captions) == 2 and got.pairs[0].captions == ["a road is built ."]
    assert got.pairs[0].split == "train"

    # a folder of datasets: each part by its own layout; what cannot be read is listed, not fatal
    _levir(tmp_path / "all" / "cd")
    write_pngs(tmp_path / "all" / "undated", {"scene.png": (8, 8)})
    assert detect_layout(tmp_path / "all") == "collection"
    everything = read_dataset(tmp_path / "all", bands=["red"])
    assert everything.parts == {"cd": "levir-cd", "levir_cc": "levir-cc", "site_a": "sequence", "site_b": "sequence"}
    assert "no date in the name of scene.png" in everything.skipped["undated"]
    assert len(everything.sequences) == 2 and len(everything.pairs) == 3 and len(everything) == 5
    assert all(item.band_names == ["red"] for item in (*everything.sequences, *everything.pairs))
    assert everything.pairs[0].meta["dataset"] == "cd"


def test_unknown_layout_lists_the_known_ones(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(InputError) as err:
        read_dataset(tmp_path / "notes")
    msg = str(err.value)
    assert "\n" not in msg and "no layout tamms knows" in msg
    for layout in ("sequence", "levir-cd", "oscd", "levir-cc"):
        assert layout + ":" in msg
    with pytest.raises(InputError, match="does not exist"):
        detect_layout(tmp_path / "missing")


# --- the real data -------------------------------------------------------------------------------
def test_real_oscd_and_sztaki_pairs_with_dates():
    oscd = read_dataset(shared_path("oscd"))
    assert oscd.layout == "levir-cd" and len(oscd.pairs) == 14
    abu = oscd.pairs[0]
    assert abu.name == "abudhabi" and abu.dates == (dt.date(2016, 1, 20), dt.date(2018, 3, 28))
    assert all(p.dates is not None and p.band_names == ["red", "green", "blue"] for p in oscd.pairs)
    assert 0.0 < np.mean([p.mask.mean() for p in oscd.pairs]) < 0.1
    sztaki = read_dataset(shared_path("sztaki"))
    assert len(sztaki.pairs) == 10 and all(p.dates is None for p in sztaki.pairs)
    assert sztaki.pairs[0].before.shape == (3, 640, 952)


def test_real_levir_cc_captions_attached_and_the_whole_folder():
    cc = read_dataset(shared_path("levir_cc"))
    assert cc.layout == "levir-cc" and len(cc.captions) == 8148 and len(cc.pairs) == 3
    assert all(len(p.captions) == 5 for p in cc.pairs)
    everything = read_dataset(shared_path())
    assert everything.layout == "collection"
    assert {"naip_nd_a", "landsat_pucallpa_a", "levir_cd", "oscd", "sztaki", "levir_cc"} <= set(everything.parts)
    naip = next(s for s in everything.sequences if s.meta["id"] == "naip_nd_a")
    assert naip.band_names == ["red", "green", "blue", "nir"] and naip.num_frames == 10
    landsat = read_dataset(shared_path("landsat_pucallpa_a"), band_names=["swir1", "nir", "red", "green"])
    seq = landsat.sequences[0]
    assert seq.band_names == ["swir1", "nir", "red", "green"] and seq.rgb_bands == (0, 1, 2)  # false colour kept
    with pytest.raises(InputError, match=r"needs bands \['blue'\]"):
        keep_bands(seq, ["red", "green", "blue"])

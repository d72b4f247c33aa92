"""The synthetic world: seeded satellite-like image time series with exact ground truth.

Every model in tamms trains and is checked on it by default (DESIGN.md, "The synthetic world").
One sequence is one 640 m x 640 m place (64 px at 10 m) seen on a few irregular dates (gaps from
two months to years, up to ten years in all) plus a future frame kept apart for forecasting.
Its land cover changes through one event whose progress depends on elapsed time (urban
expansion, road extension, deforestation and regrowth, water level change, crop rotation,
construction) or does not change at all; `synthetic_layout` holds the land-cover model,
`synthetic_render` the look of each class by date (season, light, clouds) and
`synthetic_text` the scene description, frame descriptions and the five change captions.

    seq = generate_sequence(7)                    # one sequence, any index on its own
    world = generate_world(1000)                  # a list of them
    write_world("synth", 1000)                    # folders with sequence.json, GeoTIFF, PNG

Each sequence depends only on (index, config, seed), so a world can be made in parallel or
regenerated one index at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamms.data.sequence import Scaling, SitsSequence, from_days
from tamms.data.synthetic_layout import CATEGORIES, CLASS_NAMES, Scene, build_scene
from tamms.data.synthetic_render import Renderer, noise_bank
from tamms.data.synthetic_text import change_captions, describe_frame, describe_scene, where_phrases
from tamms.errors import ConfigError, OutputExistsError

__all__ = [
    "CLASS_NAMES", "CLASS_COLORS", "CATEGORIES", "SyntheticWorldConfig", "generate_sequence", "generate_world",
    "build_scene", "split_of", "write_sequence", "write_world",
]

# preview colours of the land-cover classes (RGB 0-255), in CLASS_NAMES order
CLASS_COLORS: list[tuple[int, int, int]] = [
    (31, 94, 168),    # water
    (20, 90, 40),     # forest
    (140, 200, 90),   # grass
    (60, 170, 60),    # crop_green
    (230, 200, 80),   # crop_ripe
    (150, 100, 60),   # crop_ploughed
    (205, 170, 125),  # bare_soil
    (110, 110, 110),  # road
    (220, 50, 50),    # building
    (250, 150, 30),   # construction_site
]

BAND_NAMES = ["red", "green", "blue", "nir"]
CRS = "EPSG:32633"
PIXEL_SIZE = 10.0  # metres

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "no_change": 0.18,
    "urban_expansion": 0.16,
    "road_extension": 0.12,
    "deforestation": 0.14,
    "water_level": 0.13,
    "crop_rotation": 0.13,
    "construction": 0.14,
}


@dataclass
class SyntheticWorldConfig:
    """What the synthetic world looks like.

    size:              tile side in pixels (10 m pixels).
    frames:            input frames per sequence (the future frame comes on top).
    bands:             4 (red, green, blue, nir) or 3 (red, green, blue).
    clouds:            probability that an input frame has clouds (the future frame never has).
    min_gap_days:      shortest gap between two dates (also before the future frame).
    max_gap_days:      longest gap drawn between two dates (before the span cap).
    max_span_years:    all dates, future frame included, fit in this many years.
    max_future_gap_days: longest gap from the last input frame to the future frame.
    first_year/last_year: the dates fall in [1 Jan first_year, 31 Dec last_year].
    event_weights:     relative frequency of each category (see CATEGORIES); None = defaults.
    """

    size: int = 64
    frames: int = 4
    bands: int = 4
    clouds: float = 0.1
    min_gap_days: int = 60
    max_gap_days: int = 5 * 365
    max_span_years: float = 10.0
    max_future_gap_days: int = 3 * 365
    first_year: int = 2008
    last_year: int = 2025
    event_weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ConfigError(f"size={self.size} is too small for the synthetic world: use size >= 16 (default 64)")
        if self.frames < 2:
            raise ConfigError(f"frames={self.frames}: a sequence needs at least 2 input frames; use frames >= 2")
        if self.bands not in (3, 4):
            raise ConfigError(f"bands={self.bands}: the synthetic world has 4 bands (R, G, B, NIR) or 3 (RGB); use 3 or 4")
        if not 0.0 <= self.clouds <= 1.0:
            raise ConfigError(f"clouds={self.clouds} is a probability per frame: give a value in [0, 1]")
        if self.min_gap_days < 1 or self.max_gap_days < self.min_gap_days:
            raise ConfigError(f"gaps must satisfy 1 <= min_gap_days <= max_gap_days, got "
                              f"{self.min_gap_days} and {self.max_gap_days}")
        if self.max_future_gap_days < self.min_gap_days:
            raise ConfigError(f"max_future_gap_days={self.max_future_gap_days} is below min_gap_days="
                              f"{self.min_gap_days}; raise it")
        span = self.max_span_years * 365.25
        if self.frames * self.min_gap_days > span:
            raise ConfigError(
                f"{self.frames} frames plus a future frame with gaps of at least {self.min_gap_days} days do not fit "
                f"in {self.max_span_years} years: lower frames or min_gap_days, or raise max_span_years")
        if (self.last_year - self.first_year + 1) * 365 < span:
            raise ConfigError(f"years {self.first_year}..{self.last_year} are shorter than max_span_years="
                              f"{self.max_span_years}: widen the years")
        weights = self.weights()
        unknown = set(weights) - set(CATEGORIES)
        if unknown or sum(weights.values()) <= 0 or min(weights.values()) < 0:
            raise ConfigError(f"event_weights {self.event_weights} must give non-negative weights to categories "
                              f"among {CATEGORIES}, not all zero")

    def weights(self) -> dict[str, float]:
        return dict(self.event_weights if self.event_weights is not None else DEFAULT_EVENT_WEIGHTS)


# --- generation ----------------------------------------------------------------------------------------
def _rng(index: int, config: SyntheticWorldConfig, seed: int, stream: int) -> np.random.Generator:
    """A generator that depends only on (seed, index, size, frames, stream): indices are independent."""
    return np.random.Generator(np.random.PCG64([int(seed) & 0xFFFFFFFF, int(index), config.size, config.frames, stream]))


def _dates(rng: np.random.Generator, config: SyntheticWorldConfig) -> np.ndarray:
    """Days since 1970 of the input frames and the future frame, `[frames + 1]`, irregular gaps."""
    n = config.frames  # gaps: frames - 1 between inputs, 1 before the future frame
    lo, hi = float(config.min_gap_days), float(config.max_gap_days)
    gaps = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    gaps[-1] = min(gaps[-1], float(config.max_future_gap_days))
    cap = config.max_span_years * 365.25 - 1
    if gaps.sum() > cap:  # shrink the part above the minimum so the whole span fits
        extra = gaps - lo
        gaps = lo + extra * (cap - n * lo) / extra.sum()
    gaps = np.maximum(np.floor(gaps), lo)
    first = (dt.date(config.first_year, 1, 1) - dt.date(1970, 1, 1)).days
    last = (dt.date(config.last_year, 12, 31) - dt.date(1970, 1, 1)).days - int(gaps.sum())
    start = int(rng.integers(first, max(first + 1, last)))
    return start + np.concatenate([[0.0], np.cumsum(gaps)])


def _category(rng: np.random.Generator, config: SyntheticWorldConfig) -> str:
    weights = config.weights()
    names = [c for c in CATEGORIES if weights.get(c, 0) > 0]
    p = np.array([weights[c] for c in names], dtype=np.float64)
    return str(rng.choice(names, p=p / p.sum()))


def generate_scene(index: int, config: SyntheticWorldConfig | None = None, seed: int = 0) -> tuple[Scene, np.ndarray]:
    """The land-cover model of sequence `index` and its days (inputs then future), before rendering."""
    config = config or SyntheticWorldConfig()
    rng = _rng(index, config, seed, 0)
    days = _dates(rng, config)
    category = _category(rng, config)
    noise = noise_bank(rng, config.size)
    scene = build_scene(rng, config.size, category, noise, float(days[0]), float(days[-1]), float(days[-2]))
    return scene, days


def _public_event(event: dict[str, Any], lc_all: np.ndarray, days: np.ndarray) -> dict[str, Any]:
    """The JSON-friendly record of an event: where, which way, when, how far at each frame."""
    affected = event["affected"]
    changed_any = (lc_all != lc_all[0]).any(axis=0) & affected
    region = changed_any if changed_any.any() else affected
    ys, xs = np.nonzero(region)
    bbox = [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1] if len(ys) else [0, 0, 0, 0]
    n_aff = max(int(affected.sum()), 1)
    progress = [float(((lc_all[k] != lc_all[0]) & affected).sum() / n_aff) for k in range(len(days))]
    # first and last day on which the event changes something inside the sequence's time range
    moving = [k for k in range(1, len(days)) if ((lc_all[k] != lc_all[k - 1]) & affected).any()]
    out: dict[str, Any] = {
        "type": event["type"],
        "direction": event.get("direction"),
        "bbox": bbox,  # [row0, col0, row1, col1] in pixels, end exclusive
        "region": where_phrases(region)[0] if region.any() else None,
        "start_day": int(days[moving[0] - 1]) if moving else None,
        "end_day": int(days[moving[-1]]) if moving else None,
        "start_date": from_days(days[moving[0] - 1]).isoformat() if moving else None,
        "end_date": from_days(days[moving[-1]]).isoformat() if moving else None,
        "progress": [round(p, 4) for p in progress],  # per input frame then the future frame
        "classes_from": list(event["classes_from"]),
        "classes_to": list(event["classes_to"]),
    }
    for key in ("rate_px_per_year", "rate_level_per_year", "build_days", "bare_days", "grass_days"):
        if key in event:
            out[key] = round(float(event[key]), 3)
    if "sites" in event:
        out["sites"] = event["sites"]
    if "lake_centre" in event:
        out["lake_centre"] = [round(v, 3) for v in event["lake_centre"]]
    return out


def generate_sequence(index: int, config: SyntheticWorldConfig | None = None, seed: int = 0) -> SitsSequence:
    """Sequence `index` of the synthetic world: deterministic for (index, config, seed)."""
    config = config or SyntheticWorldConfig()
    if index < 0:
        raise ConfigError(f"index={index}: sequence indices start at 0")
    scene, days = generate_scene(index, config, seed)
    size, t = config.size, config.frames
    lc_all = scene.landcover_at(days)  # [T+1, H, W] inputs then future

    render_rng = _rng(index, config, seed, 1)
    renderer = Renderer(scene, scene.info["_noise"], render_rng)
    cloud_prob = np.full(t + 1, config.clouds)
    cloud_prob[t] = 0.0  # the future frame, a forecasting target, is always clear
    images, cloud_fraction = renderer.render(lc_all, days, render_rng, cloud_prob)  # [T+1, 4, H, W]
    images = images[:, : config.bands]
    clouds = [float(c) for c in cloud_fraction]

    change = (lc_all[1:] != lc_all[:-1]).astype(np.uint8)  # [T, H, W], last one = last input -> future
    dates = [from_days(d) for d in days]
    text_rng = _rng(index, config, seed, 2)
    events = [_public_event(e, lc_all, days) for e in scene.events]
    captions = change_captions(lc_all[0], lc_all[t - 1], scene.category, scene.events, text_rng)
    descriptions = [describe_frame(lc_all[k], dates[k], clouds[k], scene.info) for k in range(t + 1)]

    rng_geo = _rng(index, config, seed, 3)
    x0 = 200_000.0 + PIXEL_SIZE * size * float(rng_geo.integers(0, 900))
    y0 = 4_000_000.0 + PIXEL_SIZE * size * float(rng_geo.integers(0, 3000))
    seq_id = f"syn_{index:06d}"
    return SitsSequence(
        frames=images[:t],
        dates=dates[:t],
        crs=CRS,
        transform=(PIXEL_SIZE, 0.0, x0, 0.0, -PIXEL_SIZE, y0),
        nodata_mask=np.zeros((t, size, size), dtype=bool),
        band_names=BAND_NAMES[: config.bands],
        rgb_bands=(0, 1, 2),
        # frames are what an 8-bit sensor gives divided by 255 (the written GeoTIFFs are uint8)
        scaling=Scaling("divisor", [0.0] * config.bands, [255.0] * config.bands, {"divisor": 255.0}, "uint8"),
        captions=captions,
        scene=describe_scene(lc_all[0], scene.info),
        change_masks=change[: t - 1],
        landcover=lc_all[:t].astype(np.int64),
        future_frame=images[t],
        future_date=dates[t],
        future_landcover=lc_all[t].astype(np.int64),
        future_change_mask=change[t - 1],
        events=events,
        meta={
            "id": seq_id,
            "index": int(index),
            "category": scene.category,
            "frame_descriptions": descriptions[:t],
            "future_description": descriptions[t],
            "cloud_fraction": [round(c, 4) for c in clouds[:t]],
            "seed": int(seed),
            "source": "synthetic",
            "classes": list(CLASS_NAMES),
        },
    )


def generate_world(n: int, config: SyntheticWorldConfig | None = None, seed: int = 0,
                   progress: bool = False) -> list[SitsSequence]:
    """Sequences 0..n-1 of the synthetic world."""
    if n < 0:
        raise ConfigError(f"n={n}: give the number of sequences as a non-negative integer")
    config = config or SyntheticWorldConfig()
    if not progress:
        return [generate_sequence(i, config, seed) for i in range(n)]
    from rich.progress import track

    return [generate_sequence(i, config, seed) for i in track(range(n), description="synthetic world")]


def split_of(sequence_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """"train", "val" or "test" for a sequence id: `tamms.data.splits.hash_split`, the one split of tamms."""
    from tamms.data.splits import hash_split

    return hash_split(sequence_id, val_fraction, test_fraction)


# --- writing --------------------------------------------------------------------------------------------
def _write_tif(path: Path, image: np.ndarray, seq: SitsSequence) -> None:
    import rasterio
    from rasterio.transform import Affine

    data = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)  # [C, H, W]
    with rasterio.open(
        path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
        dtype="uint8", crs=seq.crs, transform=Affine(*seq.transform), photometric="MINISBLACK",
        compress="deflate",
    ) as dst:
        dst.write(data)
        dst.descriptions = tuple(seq.band_names or [])


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="L").save(path, format="PNG")


def write_sequence(seq: SitsSequence, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write one sequence as `folder/sequence.json` + GeoTIFF frames (uint8) + land-cover and change PNGs.

    Land-cover PNGs hold class indices (CLASS_NAMES order); change PNGs hold 0 (same) or 255 (changed).
    The files are written into a temporary folder beside `folder` that is renamed onto it at the end,
    so a crash never leaves a half-written sequence behind.
    """
    import shutil
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} exists and is a file: choose another output folder")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(f"{folder} already exists and is not empty: choose another output folder "
                                "or pass overwrite=True (--overwrite)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _write_sequence_files(seq, tmp, folder.name)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_sequence_files(seq: SitsSequence, folder: Path, name: str) -> None:
    frames_json = []
    descriptions = seq.meta.get("frame_descriptions", [""] * seq.num_frames)
    clouds = seq.meta.get("cloud_fraction", [0.0] * seq.num_frames)
    for k, date in enumerate(seq.dates):
        iso = date.isoformat()
        entry: dict[str, Any] = {"path": f"{iso}.tif", "date": iso, "landcover": f"landcover_{iso}.png"}
        _write_tif(folder / entry["path"], seq.frames[k], seq)
        _write_png(folder / entry["landcover"], seq.landcover[k])
        if k > 0:
            entry["change_mask"] = f"change_{iso}.png"
            _write_png(folder / entry["change_mask"], seq.change_masks[k - 1] * 255)
        entry["description"] = descriptions[k]
        entry["cloud_fraction"] = clouds[k]
        frames_json.append(entry)
    doc: dict[str, Any] = {
        "id": seq.meta.get("id", name),
        "scene": seq.scene,
        "captions": list(seq.captions),
        "category": seq.meta.get("category"),
        "events": seq.events,
        "band_names": list(seq.band_names or []),
        "rgb_bands": list(seq.rgb_bands or (0, 1, 2)),
        "crs": seq.crs,
        "transform": list(seq.transform) if seq.transform else None,
        "frames": frames_json,
        "classes": list(CLASS_NAMES),
        "change_mask_values": {"unchanged": 0, "changed": 255},
        "scaling": seq.scaling.to_dict() if seq.scaling else None,
        "seed": seq.meta.get("seed"),
        "source": "tamms synthetic world",
    }
    if seq.future_frame is not None and seq.future_date is not None:
        iso = seq.future_date.isoformat()
        fut = {"path": f"future_{iso}.tif", "date": iso, "landcover": f"landcover_future_{iso}.png",
               "change_mask": f"change_future_{iso}.png", "description": seq.meta.get("future_description", "")}
        _write_tif(folder / fut["path"], seq.future_frame, seq)
        _write_png(folder / fut["landcover"], seq.future_landcover)
        _write_png(folder / fut["change_mask"], seq.future_change_mask * 255)
        doc["future"] = fut
    (folder / "sequence.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")


def write_world(out_dir: str | os.PathLike, n: int, size: int = 64, frames: int = 4, seed: int = 0,
                overwrite: bool = False, progress: bool = True,
                config: SyntheticWorldConfig | None = None) -> list[Path]:
    """Generate and write sequences 0..n-1 to `out_dir/<id>/`, plus `out_dir/index.json` (ids and splits).

    `config` wins over `size` and `frames` when given. Nothing is written when any target folder
    already holds files and `overwrite` is False.
    """
    if n < 1:
        raise ConfigError(f"n={n}: write at least one sequence (--n 1 or more)")
    config = config or SyntheticWorldConfig(size=size, frames=frames)
    out = Path(out_dir)
    ids = [f"syn_{i:06d}" for i in range(n)]
    if not overwrite:
        busy = [i for i in ids if (out / i).exists() and any((out / i).iterdir())]
        if busy or (out / "index.json").exists():
            what = f"{out / busy[0]}" if busy else f"{out / 'index.json'}"
            raise OutputExistsError(f"{what} already exists: choose another output folder or pass "
                                    "overwrite=True (--overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    indices = range(n)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"writing {n} sequences to {out}")
    paths, entries = [], []
    for i in indices:
        seq = generate_sequence(i, config, seed)
        paths.append(write_sequence(seq, out / ids[i], overwrite=overwrite))
        entries.append({"id": ids[i], "split": split_of(ids[i]), "category": seq.meta["category"]})
    index = {"n": n, "seed": seed, "config": asdict(config), "classes": list(CLASS_NAMES), "sequences": entries}
    from tamms.utils import write_text_atomic

    write_text_atomic(out / "index.json", json.dumps(index, indent=1), overwrite=True)
    return paths

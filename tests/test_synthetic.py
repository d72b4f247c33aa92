"""The synthetic world: determinism, exact ground truth, time-driven change, texts, files, speed."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tamms.data.sequence import SitsSequence, to_days
from tamms.data.synthetic import (
    CATEGORIES, CLASS_COLORS, CLASS_NAMES, SyntheticWorldConfig, generate_scene, generate_sequence, generate_world,
    split_of, write_sequence, write_world,
)
from tamms.data.synthetic_text import NO_CHANGE_CAPTIONS, SPATIAL_WORDS
from tamms.errors import ConfigError, InputError, OutputExistsError

SMALL = SyntheticWorldConfig(size=32, frames=4)


@pytest.fixture(scope="module")
def world() -> list[SitsSequence]:
    return generate_world(60)


def _arrays(seq: SitsSequence) -> list[np.ndarray]:
    return [seq.frames, seq.landcover, seq.change_masks, seq.future_frame, seq.future_landcover,
            seq.future_change_mask]


def first_of(world: list[SitsSequence], category: str) -> SitsSequence:
    return next(s for s in world if s.meta["category"] == category)


def test_contract_shapes_and_types(world):
    seq = world[0]
    t, size = 4, 64
    assert seq.frames.shape == (t, 4, size, size) and seq.frames.dtype == np.float32
    assert seq.frames.min() >= 0.0 and seq.frames.max() <= 1.0
    assert seq.band_names == ["red", "green", "blue", "nir"] and seq.rgb_bands == (0, 1, 2)
    assert seq.landcover.shape == (t, size, size) and seq.landcover.dtype == np.int64
    assert seq.landcover.max() < len(CLASS_NAMES) and len(CLASS_COLORS) == len(CLASS_NAMES)
    assert seq.change_masks.shape == (t - 1, size, size) and seq.change_masks.dtype == np.uint8
    assert seq.future_frame.shape == (4, size, size) and seq.future_landcover.shape == (size, size)
    assert seq.future_change_mask.shape == (size, size) and seq.future_date > seq.dates[-1]
    assert seq.crs == "EPSG:32633" and seq.transform[0] == 10.0 and seq.transform[4] == -10.0
    assert seq.meta["id"] == "syn_000000" and seq.meta["category"] in CATEGORIES and seq.meta["seed"] == 0
    assert len(seq.meta["frame_descriptions"]) == t and all(seq.meta["frame_descriptions"])
    assert len(seq.meta["cloud_fraction"]) == t and isinstance(seq.scene, str) and seq.scene
    sample = seq.to_sample()
    assert tuple(sample["image"].shape) == (t, 4, size, size) and "target" in sample and "target_mask" in sample
    # origins differ between sequences
    assert len({s.transform[2:6:3] for s in world[:20]}) > 15


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b = generate_sequence(3, SMALL, seed=5), generate_sequence(3, SMALL, seed=5)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert a.dates == b.dates and a.captions == b.captions and a.events == b.events and a.scene == b.scene
    c = generate_sequence(3, SMALL, seed=6)
    assert not np.array_equal(a.frames, c.frames)


def test_index_independence():
    alone = generate_sequence(7, SMALL, seed=1)
    in_world = generate_world(8, SMALL, seed=1)[7]
    np.testing.assert_array_equal(alone.frames, in_world.frames)
    np.testing.assert_array_equal(alone.landcover, in_world.landcover)
    assert alone.captions == in_world.captions
    assert not np.array_equal(generate_sequence(6, SMALL, seed=1).frames, alone.frames)


def test_change_masks_agree_exactly_with_landcover(world):
    for seq in world:
        lc = seq.landcover
        np.testing.assert_array_equal(seq.change_masks, (lc[1:] != lc[:-1]).astype(np.uint8))
        np.testing.assert_array_equal(seq.future_change_mask, (seq.future_landcover != lc[-1]).astype(np.uint8))
        if seq.meta["category"] == "no_change":
            assert seq.change_masks.sum() == 0 and seq.future_change_mask.sum() == 0


def test_dates_increasing_with_irregular_gaps_in_bounds(world):
    cfg = SyntheticWorldConfig()
    all_gaps = []
    for seq in world:
        days = to_days(seq.dates + [seq.future_date])
        gaps = np.diff(days)
        assert (gaps >= cfg.min_gap_days).all()
        assert days[-1] - days[0] <= cfg.max_span_years * 365.25
        all_gaps += gaps.tolist()
    assert min(all_gaps) < 200 and max(all_gaps) > 2 * 365  # months to years
    assert len(set(all_gaps)) > len(all_gaps) // 2  # irregular


def test_change_grows_with_elapsed_time_for_a_progressive_event():
    for index in range(200):
        scene, days = generate_scene(index)
        if scene.category == "urban_expansion":
            break
    t0 = days[0]
    lc = scene.landcover_at([t0, t0 + 60, t0 + 200, t0 + 500, t0 + 1000])
    amount = [int((lc[k] != lc[0]).sum()) for k in range(1, 5)]
    assert amount == sorted(amount) and amount[0] < amount[-1]
    # the trend continues into the future: change between the last input and the future frame
    seq = generate_sequence(index)
    assert seq.future_change_mask.sum() > 0
    assert seq.events[0]["type"] == "urban_expansion" and seq.events[0]["direction"]
    progress = seq.events[0]["progress"]
    assert len(progress) == 5 and progress == sorted(progress)


def test_every_event_category_appears_and_changes(world):
    cats = {s.meta["category"] for s in world}
    assert cats == set(CATEGORIES)
    for seq in world:
        if seq.meta["category"] != "no_change":
            assert seq.events and seq.events[0]["type"] == seq.meta["category"]
            # the event changes something over the inputs and the future together
            assert seq.change_masks.sum() + seq.future_change_mask.sum() > 0, seq.meta


def test_five_distinct_captions_with_spatial_words(world):
    changed = 0
    for seq in world:
        assert len(seq.captions) == 5 and len(set(seq.captions)) == 5
        for c in seq.captions:
            assert c == c.lower() and not any(ch in c for ch in ".,;:!?")
        moved = (seq.landcover[0] != seq.landcover[-1]).mean()
        if moved < 0.002:
            assert set(seq.captions) <= set(NO_CHANGE_CAPTIONS)
        else:
            changed += 1
            for c in seq.captions:
                assert any(w in c for w in SPATIAL_WORDS), c
    assert changed > 20


def test_clouds_are_recorded_and_not_landcover_change():
    cfg = SyntheticWorldConfig(size=32, clouds=1.0, event_weights={"no_change": 1.0})
    seq = generate_sequence(0, cfg)
    assert all(f > 0 for f in seq.meta["cloud_fraction"]) and seq.change_masks.sum() == 0
    clear = generate_sequence(0, SyntheticWorldConfig(size=32, clouds=0.0, event_weights={"no_change": 1.0}))
    assert all(f == 0 for f in clear.meta["cloud_fraction"])


def test_looks_textured_not_flat(world):
    seq = first_of(world, "no_change")
    lc, img = seq.landcover[0], seq.frames[0]
    for cls in np.unique(lc):
        pix = img[:, lc == cls]
        if pix.shape[1] > 50:
            assert pix.std(axis=1).max() > 0.01, CLASS_NAMES[cls]
    nir, red = img[3], img[0]
    veg, water = np.isin(lc, [1, 2, 3]), lc == 0
    if water.any() and veg.any():
        assert nir[veg].mean() > 2 * nir[water].mean()
    assert nir[veg].mean() > red[veg].mean()  # vegetation is bright in NIR


def test_split_is_deterministic_and_proportional():
    splits = [split_of(f"syn_{i:06d}") for i in range(2000)]
    assert splits == [split_of(f"syn_{i:06d}") for i in range(2000)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["val"] < 0.13 and 0.07 < share["test"] < 0.13
    with pytest.raises(InputError, match="sum below 1"):  # the one split function (data/splits.py) checks
        split_of("x", 0.6, 0.5)


def test_bad_config_gives_clear_errors():
    with pytest.raises(ConfigError, match="frames"):
        SyntheticWorldConfig(frames=1)
    with pytest.raises(ConfigError, match="bands"):
        SyntheticWorldConfig(bands=7)
    with pytest.raises(ConfigError, match="years"):
        SyntheticWorldConfig(frames=40, min_gap_days=200)


def test_write_world_files_and_schema(tmp_path):
    import rasterio
    from PIL import Image

    paths = write_world(tmp_path / "w", 3, size=32, frames=3, seed=2, progress=False)
    assert [p.name for p in paths] == ["syn_000000", "syn_000001", "syn_000002"]
    index = json.loads((tmp_path / "w" / "index.json").read_text())
    assert [e["id"] for e in index["sequences"]] == [p.name for p in paths]
    assert all(e["split"] in ("train", "val", "test") for e in index["sequences"])
    seq = generate_sequence(1, SyntheticWorldConfig(size=32, frames=3), seed=2)
    doc = json.loads((paths[1] / "sequence.json").read_text())
    for key in ("id", "scene", "captions", "category", "events", "band_names", "rgb_bands", "frames", "future", "classes"):
        assert key in doc, key
    assert doc["id"] == "syn_000001" and doc["captions"] == seq.captions and doc["classes"] == CLASS_NAMES
    assert len(doc["frames"]) == 3 and "change_mask" not in doc["frames"][0]
    for k, fr in enumerate(doc["frames"]):
        assert fr["date"] == seq.dates[k].isoformat() and fr["path"] == f"{fr['date']}.tif" and fr["description"]
        with rasterio.open(paths[1] / fr["path"]) as src:
            assert src.count == 4 and src.dtypes[0] == "uint8" and src.crs.to_string() == "EPSG:32633"
            assert tuple(src.transform)[:6] == seq.transform
            np.testing.assert_allclose(src.read() / 255.0, seq.frames[k], atol=0.5 / 255 + 1e-6)
        lc = np.array(Image.open(paths[1] / fr["landcover"]))
        np.testing.assert_array_equal(lc, seq.landcover[k])
        if k > 0:
            cm = np.array(Image.open(paths[1] / fr["change_mask"]))
            np.testing.assert_array_equal(cm > 0, seq.change_masks[k - 1] > 0)
    fut = doc["future"]
    assert fut["date"] == seq.future_date.isoformat() and fut["path"].startswith("future_")
    for key in ("landcover", "change_mask", "description"):
        assert key in fut
    assert (paths[1] / fut["path"]).exists() and (paths[1] / fut["change_mask"]).exists()


def test_no_overwrite_unless_asked(tmp_path):
    write_world(tmp_path / "w", 2, size=32, frames=2, progress=False)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_world(tmp_path / "w", 2, size=32, frames=2, progress=False)
    seq = generate_sequence(0, SyntheticWorldConfig(size=32, frames=2))
    with pytest.raises(OutputExistsError):
        write_sequence(seq, tmp_path / "w" / "syn_000000")
    write_world(tmp_path / "w", 2, size=32, frames=2, seed=4, overwrite=True, progress=False)
    doc = json.loads((tmp_path / "w" / "syn_000000" / "sequence.json").read_text())
    assert doc["seed"] == 4


def test_speed_smoke():
    generate_sequence(0)
    # CPU time of this process, so other jobs on a shared machine do not make it flaky
    t0 = time.process_time()
    generate_world(100)
    assert time.process_time() - t0 < 5.0


def test_written_world_reads_back_with_the_data_reader(tmp_path):
    from tamms.data import readers

    config = SyntheticWorldConfig(size=32, frames=3)
    (path,) = write_world(tmp_path / "w", 1, config=config, progress=False)
    back, seq = readers.read_sequence(path), generate_sequence(0, config)
    np.testing.assert_allclose(back.frames, seq.frames, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(back.landcover, seq.landcover)
    np.testing.assert_array_equal(back.change_masks, seq.change_masks)
    np.testing.assert_array_equal(back.future_change_mask, seq.future_change_mask)
    assert back.dates == seq.dates and back.future_date == seq.future_date and back.captions == seq.captions
    assert back.crs == seq.crs and tuple(back.transform) == seq.transform


def test_three_band_config_and_event_weights():
    cfg = SyntheticWorldConfig(size=24, frames=3, bands=3, event_weights={"water_level": 1.0})
    seq = generate_sequence(2, cfg)
    assert seq.frames.shape == (3, 3, 24, 24) and seq.future_frame.shape == (3, 24, 24)
    assert seq.band_names == ["red", "green", "blue"] and seq.meta["category"] == "water_level"
    assert (seq.landcover == CLASS_NAMES.index("water")).any()

"""Windows with irregular gaps, one crop/flip for a whole window, splits by sequence, batching, DataModule."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from tamms.data.datamodule import SitsDataModule
from tamms.data.datasets import (
    SitsPairDataset,
    SitsWindowDataset,
    build_windows,
    collate_sits,
    hash_split,
    sequence_split,
)
from tamms.data.readers import read_levir_cc, read_levir_cd
from tamms.data.sequence import SitsSequence, to_days
from tamms.data.writers import save_sequence
from tamms.errors import EmptyInputError, InputError
from tests.conftest import shared_path

IRREGULAR = ["2001-03-01", "2001-09-15", "2004-01-01", "2013-06-30", "2014-02-02"]


def coded_sequence(dates=IRREGULAR, size=16, bands=4, sid="s0", future=True) -> SitsSequence:
    """Every frame, band and map holds the pixel's own position code, so any crop/flip mismatch shows."""
    T = len(dates)
    code = np.arange(size * size, dtype=np.float32).reshape(size, size) / (size * size)  # [H, W]
    frames = np.broadcast_to(code, (T, bands, size, size)).copy()
    frames += np.arange(T, dtype=np.float32)[:, None, None, None] * 10  # frame index in the integer part
    lc = np.broadcast_to(np.arange(size * size).reshape(size, size), (T, size, size)).copy()
    kw = {}
    if future:
        kw = dict(future_frame=frames[-1] + 10, future_date="2020-01-01", future_landcover=lc[0],
                  future_change_mask=(lc[0] % 2).astype(np.uint8))
    return SitsSequence(frames=frames, dates=list(dates), landcover=lc,
                        change_masks=(lc[1:] % 3 == 0).astype(np.uint8), captions=["c"], scene="s",
                        meta={"id": sid, "frame_descriptions": [f"d{t}" for t in range(T)]}, **kw)


def test_windows_next_with_irregular_gaps():
    seq = coded_sequence()
    ds = SitsWindowDataset([seq], history=2, target="next")
    assert len(ds) == 3
    s = ds[1]
    assert s["image"].shape == (2, 4, 16, 16) and s["image"].dtype == torch.float32
    days = to_days([dt.date.fromisoformat(d) for d in IRREGULAR])
    assert s["time"].dtype == torch.float64 and s["time"].tolist() == days[1:3].tolist()
    assert s["target_time"].item() == days[3]  # 9.5 years after the last history frame
    assert int(s["target"][0, 0, 0]) == 30 and int(s["image"][0, 0, 0, 0]) == 10  # frames 1, 2 -> 3
    assert s["mask"].shape == (1, 16, 16) and s["landcover"].shape == (2, 16, 16)
    assert torch.equal(s["target_mask"], torch.from_numpy(seq.change_masks[2]))
    assert s["frame_descriptions"] == ["d1", "d2"] and s["target_description"] == "d3"
    assert s["meta"]["dates"] == IRREGULAR[1:3] and not s["meta"]["full_sequence"]


def test_windows_future_none_and_short_sequences():
    long, short = coded_sequence(sid="long"), coded_sequence(IRREGULAR[:3], sid="short")
    fut = SitsWindowDataset([long], history=3, target="future")
    assert len(fut) == 1
    s = fut[0]
    assert s["image"].shape[0] == 3 and s["target_time"].item() == to_days([dt.date(2020, 1, 1)])[0]
    assert torch.equal(s["target_mask"], torch.from_numpy(long.future_change_mask))
    assert len(SitsWindowDataset([long], history=None, target="none")) == 1
    assert [w.history for w in build_windows([long], None, "next", min_history=3)] == [(0, 1, 2), (0, 1, 2, 3)]
    # history 3 does not fit a 3-frame sequence; min_history=2 still gives it one shorter window
    ds = SitsWindowDataset([long, short], history=3, target="next", min_history=2)
    assert [tuple(w.history) for w in ds.windows] == [(0, 1, 2), (1, 2, 3), (0, 1)]
    batch = collate_sits([ds[0], ds[2]])
    assert batch["image"].shape == (2, 3, 4, 16, 16) and batch["time"].shape == (2, 3)
    assert batch["time_mask"].tolist() == [[True, True, True], [False, True, True]]
    assert batch["mask"].shape == (2, 2, 16, 16) and batch["frame_descriptions"][1] == ["", "d0", "d1"]
    assert torch.equal(batch["image"][1, 1:], ds[2]["image"]) and batch["image"][1, 0].abs().sum() == 0
    assert batch["time"][1, 0] == batch["time"][1, 1]  # padded time repeats the first date: zero gap
    assert batch["captions"] == [["c"], ["c"]] and batch["target"].shape == (2, 4, 16, 16)


def test_same_crop_and_flip_for_every_frame():
    seq = coded_sequence(size=24)
    ds = SitsWindowDataset([seq], history=2, target="next", crop_size=10, flip=True, seed=3)
    crops, flips = set(), set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            crops.add(s["meta"]["crop"])
            flips.add(s["meta"]["flip"])
            frac = s["image"] - s["image"].floor()  # the position code of each pixel
            assert s["image"].shape == (2, 4, 10, 10)
            for t in range(2):
                assert torch.allclose(frac[t], frac[0], atol=1e-4)  # every frame and band cut/flipped alike
            assert torch.allclose(s["target"] - s["target"].floor(), frac[0], atol=1e-4)
            code = (frac[0, 0] * 24 * 24).round().long()
            assert torch.equal(s["landcover"][0], code) and torch.equal(s["target_landcover"], code)
            assert torch.equal(s["mask"][0], (code % 3 == 0).to(torch.uint8))
            if s["meta"]["flip"] != (False, False):
                assert s["transform"] is None
    assert len(crops) > 3 and len(flips) == 4  # crops and both flips really vary
    again = SitsWindowDataset([seq], history=2, target="next", crop_size=10, flip=True, seed=3)
    again.set_epoch(3)
    assert torch.equal(again[1]["image"], ds[1]["image"])  # reproducible for (seed, epoch, index)
    centre = SitsWindowDataset([seq], history=2, crop_size=10, random_crop=False)
    assert centre[0]["meta"]["crop"] == (7, 7, 10, 10)


def test_crop_keeps_geotransform():
    seq = coded_sequence()
    seq.transform = (10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)
    s = SitsWindowDataset([seq], history=2, crop_size=8, random_crop=False)[0]
    assert s["transform"] == (10.0, 0.0, 1040.0, 0.0, -10.0, 4960.0)


def test_split_by_sequence_never_by_frame():
    seqs = [coded_sequence(size=8, sid=f"site-{k}", future=False) for k in range(60)]
    splits = {s.meta["id"]: sequence_split(s) for s in seqs}
    assert set(splits.values()) == {"train", "val", "test"}
    assert hash_split("site-1") == hash_split("site-1")
    dm = SitsDataModule(sequences=seqs, history=2, batch_size=4, crop_size=8)
    dm.setup()
    ids = {k: {s.meta["id"] for s in dm.datasets[k].sequences} for k in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == 60
    for split, names in ids.items():
        assert all(splits[n] == split for n in names)
    explicit = coded_sequence(size=8, sid="site-1", future=False)
    explicit.meta["split"] = "test"
    assert sequence_split(explicit) == "test"


def test_datamodule_over_folder(tmp_path):
    for k in range(12):
        save_sequence(coded_sequence(size=12, sid=f"f{k}"), tmp_path / f"f{k}")
    dm = SitsDataModule(root=tmp_path, history=3, target="future", batch_size=3, crop_size=8, seed=1)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 4, 8, 8) and batch["target"].shape == (3, 4, 8, 8)
    assert batch["time"].dtype == torch.float64 and batch["target_landcover"].shape == (3, 8, 8)
    sizes = dm.split_sizes()
    assert sum(sizes.values()) == 12
    one = SitsDataModule(sequences=[coded_sequence(sid="only")], history=2, batch_size=2)
    with pytest.raises(EmptyInputError, match="split_mode='all'"):
        for split in ("train", "val", "test"):
            one.setup({"train": "fit", "val": "validate", "test": "test"}[split])
    all_in = SitsDataModule(sequences=[coded_sequence(sid="only")], history=2, batch_size=2, split_mode="all")
    assert len(all_in.val_dataloader().dataset) == 3


def test_pairs_from_sequences_and_levir():
    seq = coded_sequence()
    ds = SitsPairDataset([seq], mode="consecutive", future=True, rgb_only=True)
    assert len(ds) == 5
    s = ds[0]
    assert s["image"].shape == (2, 3, 16, 16) and torch.equal(s["mask"], torch.from_numpy(seq.change_masks[0]))
    first_last = SitsPairDataset([seq], mode="first_last")[0]
    assert first_last["captions"] == ["c"]
    # no recorded mask between frames 0 and 4: land-cover disagreement (none here, maps are equal)
    assert first_last["mask"].sum() == 0
    pairs = read_levir_cd(shared_path("levir_cd"))
    caps = read_levir_cc(shared_path("levir_cc"))
    cd = SitsPairDataset(pairs=pairs, captions=caps, crop_size=128, flip=True)
    batch = collate_sits([cd[i] for i in range(len(cd))])
    assert batch["image"].shape == (6, 2, 3, 128, 128) and batch["mask"].shape == (6, 128, 128)
    assert batch["name"][0] == pairs[0].name


def test_too_few_frames_is_a_clear_error():
    one = SitsSequence(frames=np.zeros((1, 3, 8, 8), np.float32), dates=["2020-01-01"])
    with pytest.raises(InputError, match="needs sequences of at least 3 dated frames.*lower history"):
        SitsWindowDataset([one], history=2, target="next")
    with pytest.raises(InputError, match="no future frame.*target='next'"):
        SitsWindowDataset([coded_sequence(future=False)], history=2, target="future")
    with pytest.raises(InputError, match="at least 2 dated frames"):
        SitsPairDataset([one])


needs_synthetic = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tamms.data.synthetic") is None,
    reason="tamms.data.synthetic (the synthetic world) is not in this checkout yet",
)


@needs_synthetic
def test_datamodule_on_the_synthetic_world_in_memory():
    from tamms.data.synthetic import split_of

    dm = SitsDataModule(n=30, size=32, frames=4, seed=0, history=3, target="future", batch_size=4, crop_size=24)
    dm.setup("fit")
    train_ids = {s.meta["id"] for s in dm.datasets["train"].sequences}
    assert train_ids and all(split_of(i) == "train" for i in train_ids)  # the world's own split
    assert not train_ids & {s.meta["id"] for s in dm.datasets["val"].sequences}
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)  # what Lightning does each epoch: new order and new crops
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 4, 24, 24) and batch["target"].shape == (4, 4, 24, 24)
    assert batch["target_mask"].shape == (4, 24, 24) and len(batch["captions"][0]) == 5
    assert len(batch["frame_descriptions"][0]) == 3 and isinstance(batch["target_description"][0], str)
    assert (batch["target_time"] > batch["time"][:, -1]).all()


@needs_synthetic
def test_synthetic_folder_reads_back_like_memory(tmp_path):
    from tamms.data.readers import read_sequence
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, write_sequence

    mem = generate_sequence(2, SyntheticWorldConfig(size=32, frames=4), seed=3)
    disk = read_sequence(write_sequence(mem, tmp_path / "s"))
    assert np.abs(disk.frames - mem.frames).max() <= 0.5 / 255 + 1e-6  # written as uint8
    assert disk.dates == mem.dates and disk.crs == mem.crs and disk.transform == mem.transform
    np.testing.assert_array_equal(disk.landcover, mem.landcover)
    np.testing.assert_array_equal(disk.change_masks, mem.change_masks)
    np.testing.assert_array_equal(disk.future_change_mask, mem.future_change_mask)
    assert disk.captions == mem.captions and disk.scene == mem.scene and disk.events == mem.events
    assert disk.meta["frame_descriptions"] == mem.meta["frame_descriptions"]
    assert disk.meta["category"] == mem.meta["category"] and sequence_split(disk) == sequence_split(mem)

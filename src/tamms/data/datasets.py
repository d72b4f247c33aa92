"""Datasets over sequences: training windows (history -> target) and change-detection pairs.

Samples follow DESIGN.md: time-first `image [T, C, H, W]` in [0, 1], `time [T]` (days since
1970-01-01, float64), `target [C, H, W]` and `target_time`, masks and land cover cropped and flipped
exactly like the frames. Splits are by sequence, never by frame, so no place is seen in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tamms.data.readers import ChangePair
from tamms.data.sequence import SitsSequence, to_days
from tamms.data.splits import SPLITS, hash_split
from tamms.data.transforms import SpatialParams, apply_spatial, crop_transform, sample_spatial_params
from tamms.errors import InputError



# --- splits --------------------------------------------------------------------------------------
def sequence_split(seq: SitsSequence) -> str:
    """"train" | "val" | "test" for a whole sequence: an explicit `split` (sequence.json or meta) wins,
    else `hash_split` of its id (the folder name)."""
    explicit = seq.meta.get("split")
    if explicit in SPLITS:
        return str(explicit)
    return hash_split(str(seq.meta.get("id") or seq.meta.get("root") or ""))


def split_sequences(sequences: Sequence[SitsSequence], split: str) -> list[SitsSequence]:
    """The sequences of one split."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: use one of {SPLITS}")
    return [s for s in sequences if sequence_split(s) == split]


def pair_split(pair: ChangePair) -> str:
    """Split of a LEVIR-style pair: its recorded split, the name's prefix (`train_12`), or a hash."""
    for explicit in (getattr(pair, "split", None), pair.meta.get("split")):
        if explicit in SPLITS:
            return str(explicit)
    prefix = pair.name.split("/")[0].split("_")[0]
    return prefix if prefix in SPLITS else hash_split(pair.name)


def append_future(seq: SitsSequence) -> SitsSequence:
    """The sequence with its future frame (synthetic world) appended as one more dated frame, so training
    windows can predict it; unchanged when it has none."""
    from dataclasses import replace

    if seq.future_frame is None or seq.future_date is None:
        return seq
    landcover = None
    if seq.landcover is not None and seq.future_landcover is not None:
        landcover = np.concatenate([seq.landcover, seq.future_landcover[None]])
    masks = None
    if seq.change_masks is not None and seq.future_change_mask is not None:
        masks = np.concatenate([seq.change_masks, seq.future_change_mask[None]])
    nodata = None
    if seq.nodata_mask is not None:
        future_nodata = seq.meta.get("future_nodata_mask")
        extra = np.zeros_like(seq.nodata_mask[:1]) if future_nodata is None else np.asarray(future_nodata)[None]
        nodata = np.concatenate([seq.nodata_mask, extra])
    meta = {k: v for k, v in seq.meta.items() if k != "paths"}
    if meta.get("frame_descriptions") is not None:
        meta["frame_descriptions"] = [*meta["frame_descriptions"], meta.get("future_description") or ""]
    return replace(seq, frames=np.concatenate([seq.frames, seq.future_frame[None]]), dates=[*seq.dates, seq.future_date],
                   landcover=landcover, change_masks=masks, nodata_mask=nodata, future_frame=None,
                   future_date=None, future_landcover=None, future_change_mask=None, meta=meta)


# --- augmentation ----------------------------------------------------------------------------------
def rotate(array: np.ndarray | None, quarter_turns: int) -> np.ndarray | None:
    """Rotate the last two axes (H, W) by `quarter_turns` x 90 degrees (the same turn for every array)."""
    if array is None or quarter_turns % 4 == 0:
        return array
    return np.ascontiguousarray(np.rot90(array, quarter_turns, axes=(-2, -1)))


# --- windows -------------------------------------------------------------------------------------
Target = Literal["next", "future", "none"]


@dataclass(frozen=True)
class Window:
    """Frames `history` of sequence `seq` predict frame `target` (-1 = the future frame, None = no target)."""

    seq: int
    history: tuple[int, ...]
    target: int | None


def build_windows(sequences: Sequence[SitsSequence], history: int | None, target: Target,
                  min_history: int = 2, stride: int = 1) -> list[Window]:
    """All windows of consecutive frames.

    target="next":   history frames [t-h, t) predict frame t, for every t (step `stride`).
    target="future": the last h frames predict the sequence's future frame.
    target="none":   windows of h frames, no target (for describing).
    history=None uses every frame before the target. A sequence too short for `history` but with at
    least `min_history` history frames gives one shorter window (the collate pads in time).
    """
    if target not in ("next", "future", "none"):
        raise InputError(f"target {target!r} is not one of 'next', 'future', 'none'")
    if history is not None and history < 1:
        raise InputError(f"history must be at least 1 frame, got {history}")
    windows: list[Window] = []
    for s, seq in enumerate(sequences):
        T = seq.num_frames
        if target == "future":
            if seq.future_frame is None:
                raise InputError(
                    f"sequence {seq.meta.get('id', s)} has no future frame, needed by target='future': "
                    "use target='next' (predict each next frame) or the synthetic world, which has future frames"
                )
            h = T if history is None else min(history, T)
            if h >= (min_history if history is None else min(history, min_history)):
                windows.append(Window(s, tuple(range(T - h, T)), -1))
        elif target == "next":
            if history is None:
                for t in range(max(min_history, 1), T, stride):
                    windows.append(Window(s, tuple(range(0, t)), t))
            elif T >= history + 1:
                for t in range(history, T, stride):
                    windows.append(Window(s, tuple(range(t - history, t)), t))
            elif T - 1 >= min_history:
                windows.append(Window(s, tuple(range(0, T - 1)), T - 1))
        else:
            h = T if history is None else history
            if T >= h:
                for start in range(0, T - h + 1, stride):
                    windows.append(Window(s, tuple(range(start, start + h)), None))
            elif T >= min_history:
                windows.append(Window(s, tuple(range(T)), None))
    return windows


def _tensor(x: np.ndarray | None, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    if x is None:
        return None
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t if dtype is None else t.to(dtype)


class SitsWindowDataset(Dataset):
    """Training windows from sequences: `history` consecutive frames and the frame to predict.

    Every array of a window (frames, target, masks, land cover, nodata) gets the SAME crop and flip.
    Random crops/flips are drawn from (seed, epoch, index), so a run is reproducible with any number
    of workers; call `set_epoch(e)` for new draws each epoch (the DataModule does).
    """

    def __init__(
        self,
        sequences: Sequence[SitsSequence],
        history: int | None = 3,
        target: Target = "next",
        min_history: int = 2,
        crop_size: int | tuple[int, int] | None = None,
        random_crop: bool = True,
        flip: bool = False,
        rgb_only: bool = False,
        seed: int = 0,
        stride: int = 1,
        rotate: bool = False,
    ) -> None:
        self.sequences = list(sequences)
        self.rotate = rotate
        self.history, self.target, self.min_history = history, target, min_history
        self.crop_size, self.random_crop, self.flip, self.rgb_only = crop_size, random_crop, flip, rgb_only
        self.seed, self.epoch = seed, 0
        self.windows = build_windows(self.sequences, history, target, min_history, stride)
        if self.sequences and not self.windows:
            need = (history or min_history) + (1 if target == "next" else 0)
            longest = max(s.num_frames for s in self.sequences)
            raise InputError(
                f"no window fits: target={target!r} with history={history} needs sequences of at least {need} "
                f"dated frames (min_history={min_history}), the longest has {longest}; lower history or add frames"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.windows)

    def _params(self, index: int, size: tuple[int, int]) -> tuple[SpatialParams, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        p = sample_spatial_params(size, self.crop_size, rng, flip=self.flip, random_crop=self.random_crop)
        return p, int(rng.integers(0, 4)) if self.rotate else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        # an index past the end is another draw of window index % len (epochs longer than the data)
        w = self.windows[index % len(self.windows)]
        seq = self.sequences[w.seq]
        hist = list(w.history)
        p, turns = self._params(index, seq.size)
        bands = list(seq.rgb_bands) if self.rgb_only and seq.rgb_bands is not None else slice(None)

        def crop(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else rotate(apply_spatial(x, p), turns)

        image = crop(seq.frames[hist][:, bands])  # [T, C, h, w]
        sample: dict[str, Any] = {
            "image": _tensor(image, torch.float32),
            "time": torch.from_numpy(to_days([seq.dates[i] for i in hist])),  # [T] float64
            "captions": list(seq.captions),
            "scene": seq.scene or "",
            "crs": seq.crs,
            "transform": None if turns else crop_transform(seq.transform, p),
            "band_names": list(seq.band_names) if seq.band_names and not isinstance(bands, list)
            else ([seq.band_names[i] for i in bands] if seq.band_names else None),
        }
        if seq.nodata_mask is not None:
            sample["nodata_mask"] = _tensor(crop(seq.nodata_mask[hist]), torch.bool)  # [T, h, w]
        if seq.landcover is not None:
            sample["landcover"] = _tensor(crop(seq.landcover[hist]), torch.int64)  # [T, h, w]
        if seq.change_masks is not None and len(hist) > 1:
            sample["mask"] = _tensor(crop(seq.change_masks[hist[0]: hist[-1]]), torch.uint8)  # [T-1, h, w]
        descriptions = seq.meta.get("frame_descriptions")
        if descriptions is not None:
            sample["frame_descriptions"] = [descriptions[i] for i in hist]

        if w.target is not None and w.target >= 0:  # the next real frame
            t = w.target
            sample["target"] = _tensor(crop(seq.frames[t][bands]), torch.float32)  # [C, h, w]
            sample["target_time"] = torch.tensor(float(to_days([seq.dates[t]])[0]), dtype=torch.float64)
            if seq.nodata_mask is not None:
                sample["target_nodata_mask"] = _tensor(crop(seq.nodata_mask[t]), torch.bool)
            if seq.landcover is not None:
                sample["target_landcover"] = _tensor(crop(seq.landcover[t]), torch.int64)
            if seq.change_masks is not None:
                sample["target_mask"] = _tensor(crop(seq.change_masks[t - 1]), torch.uint8)  # change t-1 -> t
            if descriptions is not None:
                sample["target_description"] = descriptions[t]
        elif w.target == -1:  # the synthetic future frame
            sample["target"] = _tensor(crop(seq.future_frame[bands]), torch.float32)
            sample["target_time"] = torch.tensor(float(to_days([seq.future_date])[0]), dtype=torch.float64)
            if seq.meta.get("future_nodata_mask") is not None:
                sample["target_nodata_mask"] = _tensor(crop(seq.meta["future_nodata_mask"]), torch.bool)
            if seq.future_landcover is not None:
                sample["target_landcover"] = _tensor(crop(seq.future_landcover), torch.int64)
            if seq.future_change_mask is not None:
                sample["target_mask"] = _tensor(crop(seq.future_change_mask), torch.uint8)
            if seq.meta.get("future_description") is not None:
                sample["target_description"] = seq.meta["future_description"]

        sample["meta"] = {
            "id": seq.meta.get("id", str(w.seq)),
            "dates": [seq.dates[i].isoformat() for i in hist],
            "frames": hist,
            "target_frame": w.target,
            # captions describe the whole sequence (first -> last frame); say when the window is all of it
            "full_sequence": hist[0] == 0 and (hist[-1] == seq.num_frames - 1 or w.target == seq.num_frames - 1
                                               or w.target == -1),
            "crop": (p.top, p.left, p.height, p.width),
            "flip": (p.hflip, p.vflip),
            "quarter_turns": turns,
            "category": seq.meta.get("category"),
        }
        return sample


# --- change-detection pairs ----------------------------------------------------------------------
class SitsPairDataset(Dataset):
    """Bi-temporal pairs for change detection: `image [2, C, H, W]` (before, after) and `mask [H, W]`.

    From sequences (`mode`: "consecutive" frames, "first_last", or "all" ordered pairs; `future=True`
    adds last frame -> future frame) or from LEVIR-CD `ChangePair`s (with LEVIR-CC `captions` when given).
    The mask is the recorded change mask, else land-cover disagreement, else absent.
    """

    def __init__(
        self,
        sequences: Sequence[SitsSequence] | None = None,
        pairs: Sequence[ChangePair] | None = None,
        mode: Literal["consecutive", "first_last", "all"] = "consecutive",
        future: bool = False,
        captions: dict[str, dict[str, Any]] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        random_crop: bool = True,
        flip: bool = False,
        rgb_only: bool = True,
        seed: int = 0,
        rotate: bool = False,
        swap_dates: bool = False,
        pair_repeats: int = 1,
    ) -> None:
        self.rotate, self.swap_dates = rotate, swap_dates
        if mode not in ("consecutive", "first_last", "all"):
            raise InputError(f"mode {mode!r} is not one of 'consecutive', 'first_last', 'all'")
        self.sequences = list(sequences or [])
        self.pairs = list(pairs or [])
        self.captions = captions or {}
        self.crop_size, self.random_crop, self.flip, self.rgb_only = crop_size, random_crop, flip, rgb_only
        self.seed, self.epoch = seed, 0
        self.items: list[tuple[str, int, int, int]] = []  # (kind, sequence or pair index, i, j); j=-1 future
        for s, seq in enumerate(self.sequences):
            T = seq.num_frames
            if mode == "consecutive":
                ij = [(t - 1, t) for t in range(1, T)]
            elif mode == "first_last":
                ij = [(0, T - 1)] if T > 1 else []
            else:
                ij = [(i, j) for i in range(T) for j in range(i + 1, T)]
            if future and seq.future_frame is not None:
                ij.append((T - 1, -1))
            self.items.extend(("seq", s, i, j) for i, j in ij)
        # a few large real pairs among many sequences: each appears `pair_repeats` times per pass (new crops)
        self.items.extend(("pair", k, 0, 1) for _ in range(max(1, pair_repeats)) for k in range(len(self.pairs)))
        if (self.sequences or self.pairs) and not self.items:
            raise InputError("no pairs: change detection needs sequences of at least 2 dated frames")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _turns(self, rng: np.random.Generator) -> tuple[int, bool]:
        turns = int(rng.integers(0, 4)) if self.rotate else 0
        return turns, bool(self.swap_dates and rng.random() < 0.5)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # an index past the end is another draw of item index % len (epochs longer than the data)
        kind, k, i, j = self.items[index % len(self.items)]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self._item(kind, k, i, j, rng)
        turns, swap = self._turns(rng)
        for key in ("image", "mask", "landcover"):
            if key in sample:
                sample[key] = torch.from_numpy(rotate(sample[key].numpy(), turns))
        if swap:  # change is symmetric in time: the later image first is the same change
            sample["image"] = sample["image"].flip(0)
            if "landcover" in sample:
                sample["landcover"] = sample["landcover"].flip(0)
            if "time" in sample:
                sample["time"] = sample["time"].flip(0)
        sample["meta"]["swapped"] = swap
        return sample

    def _item(self, kind: str, k: int, i: int, j: int, rng: np.random.Generator) -> dict[str, Any]:
        if kind == "pair":
            pair = self.pairs[k]
            p = sample_spatial_params(pair.before.shape[-2:], self.crop_size, rng, self.flip, self.random_crop)
            bands = list(pair.rgb_bands) if self.rgb_only and pair.rgb_bands is not None else slice(None)
            sample: dict[str, Any] = {
                "image": _tensor(apply_spatial(np.stack([pair.before[bands], pair.after[bands]]), p),
                                 torch.float32),  # [2, C, h, w]
                "name": pair.name,
            }
            if pair.dates is not None:
                sample["time"] = torch.from_numpy(to_days(list(pair.dates)))  # [2] float64
            if pair.mask is not None:
                sample["mask"] = _tensor(apply_spatial(pair.mask, p), torch.uint8)
            caps = self.captions.get(pair.name) or self.captions.get(f"{pair.name}.png")
            sample["captions"] = list(caps["captions"]) if caps else []
            sample["meta"] = {"id": pair.name, **{k2: v for k2, v in pair.meta.items() if k2 != "paths"}}
            return sample

        seq = self.sequences[k]
        p = sample_spatial_params(seq.size, self.crop_size, rng, self.flip, self.random_crop)
        bands = list(seq.rgb_bands) if self.rgb_only and seq.rgb_bands is not None else slice(None)
        after_frame = seq.future_frame if j == -1 else seq.frames[j]
        after_date = seq.future_date if j == -1 else seq.dates[j]
        image = np.stack([seq.frames[i][bands], after_frame[bands]])  # [2, C, H, W]
        lc_i = None if seq.landcover is None else seq.landcover[i]
        lc_j = seq.future_landcover if j == -1 else (None if seq.landcover is None else seq.landcover[j])
        if j == -1:
            mask = seq.future_change_mask
        elif seq.change_masks is not None and j == i + 1:
            mask = seq.change_masks[i]
        else:
            mask = None
        if mask is None and lc_i is not None and lc_j is not None:
            mask = (lc_i != lc_j).astype(np.uint8)
        sample = {
            "image": _tensor(apply_spatial(image, p), torch.float32),
            "time": torch.from_numpy(to_days([seq.dates[i], after_date])),  # [2] float64
            "name": f"{seq.meta.get('id', k)}:{i}-{'future' if j == -1 else j}",
            "captions": list(seq.captions) if (i == 0 and j == seq.num_frames - 1) else [],
        }
        if mask is not None:
            sample["mask"] = _tensor(apply_spatial(mask, p), torch.uint8)
        if lc_i is not None and lc_j is not None:
            sample["landcover"] = _tensor(apply_spatial(np.stack([lc_i, lc_j]), p), torch.int64)  # [2, h, w]
        sample["meta"] = {"id": seq.meta.get("id", str(k)), "frames": (i, j)}
        return sample


# --- batching ------------------------------------------------------------------------------------
_TIME_KEYS = ("image", "time", "nodata_mask", "landcover")


def _left_pad(t: torch.Tensor, length: int, fill_first: bool = False) -> torch.Tensor:
    missing = length - t.shape[0]
    if missing <= 0:
        return t
    pad = t[:1].expand(missing, *t.shape[1:]) if fill_first else t.new_zeros((missing, *t.shape[1:]))
    return torch.cat([pad, t], dim=0)


def collate_sits(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts: tensors of one shape are stacked, strings/None/meta go in lists.

    Windows of different lengths (short sequences) are left-padded in time so the last frames line
    up; `time_mask` `[B, T]` is True on real frames (padded times repeat the first date: zero gaps).
    """
    if not batch:
        raise InputError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    lengths = [b["image"].shape[0] for b in batch] if all(isinstance(b.get("image"), torch.Tensor) for b in batch) else None
    T = max(lengths) if lengths else None
    padded = lengths is not None and len(set(lengths)) > 1 and all(b["image"].ndim == 4 for b in batch)
    keys = list(dict.fromkeys(k for b in batch for k in b))
    for key in keys:
        values = [b.get(key) for b in batch]
        if all(isinstance(v, torch.Tensor) for v in values):
            if padded and key in _TIME_KEYS:
                values = [_left_pad(v, T, fill_first=(key == "time")) for v in values]
            elif padded and key == "mask":
                values = [_left_pad(v, T - 1) for v in values]
            if len({tuple(v.shape) for v in values}) == 1:
                out[key] = torch.stack(values)
                continue
            raise InputError(
                f"samples have different {key!r} shapes {sorted({tuple(v.shape) for v in values})}: give a crop_size "
                "so every window has one size"
            )
        if padded and key == "frame_descriptions":
            values = [[""] * (T - len(v)) + list(v) for v in values]
        out[key] = values
    if lengths is not None and batch[0]["image"].ndim == 4:
        out["time_mask"] = torch.stack([
            torch.arange(T) >= T - n for n in lengths
        ])  # [B, T]
    return out

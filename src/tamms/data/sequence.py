"""The two kinds of sample the readers return, and the dates they carry.

- `SitsSequence`: dated frames of one place, time first `[T, C, H, W]`, sorted by date.
- `ChangePair`: a before/after pair `[C, H, W]` with its change mask (LEVIR-CD style data, OSCD).

Both carry every band with its name (`band_names`, in the vocabulary of `tamms.data.bands`). Dates
are parsed once, here, from ISO strings (`2019-09-04`), years (`1985`), compact dates in file names
(`20190904`) or `date` objects. `to_sample()` gives the time-first sample dict every model and metric
consumes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from tamms.data.bands import rgb_indices
from tamms.errors import DateError, InputError

EPOCH = dt.date(1970, 1, 1)

_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_YEAR = re.compile(r"(?<!\d)(1[89]\d{2}|2[01]\d{2})(?!\d)")


def parse_date(value: str | int | dt.date | dt.datetime) -> dt.date:
    """Parse one date: `YYYY-MM-DD`, `YYYYMMDD`, `YYYY` (taken as 1 July), or a date object."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for pattern, kind in ((_ISO, "ymd"), (_COMPACT, "ymd")):
        m = pattern.fullmatch(text)
        if m:
            return _make_date(*m.groups(), source=text)
    m = _YEAR.fullmatch(text)
    if m:
        # a year alone is the middle of the year, so gaps between years stay right on average
        return dt.date(int(m.group(1)), 7, 1)
    raise DateError(
        f"cannot parse date {text!r}: write it as YYYY-MM-DD (for example 2019-09-04), YYYYMMDD or YYYY"
    )


def date_from_filename(name: str) -> dt.date | None:
    """The date a file name carries (`2019-09-04.tif`, `S2_20190904_B04.tif`, `landsat_1985.png`), or None."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", name)
    for pattern in (_ISO, _COMPACT):
        m = pattern.search(stem)
        if m:
            try:
                return _make_date(*m.groups(), source=name)
            except DateError:
                continue
    m = _YEAR.search(stem)
    return dt.date(int(m.group(1)), 7, 1) if m else None


def _make_date(y: str, m: str, d: str, source: str) -> dt.date:
    try:
        return dt.date(int(y), int(m), int(d))
    except ValueError as exc:
        raise DateError(f"{source!r} holds an impossible date ({exc}); fix the date") from None


def to_days(dates: Sequence[dt.date]) -> np.ndarray:
    """Days since 1970-01-01 as float64, the `time` of a sample."""
    return np.array([(d - EPOCH).days for d in dates], dtype=np.float64)


def from_days(days: float) -> dt.date:
    return EPOCH + dt.timedelta(days=int(round(float(days))))


@dataclass
class Scaling:
    """How raw values were mapped to [0, 1], so an output can be mapped back.

    `scaled = clip((raw - offset) / scale, 0, 1)` per band; `method` is "divisor", "percentile",
    or "identity", with the parameters used (for example the percentiles).
    """

    method: str
    offset: list[float]
    scale: list[float]
    params: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # dtype of the raw data, for writing back

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """raw `[..., C, H, W]` -> float32 in [0, 1]."""
        off = np.asarray(self.offset, dtype=np.float32)[:, None, None]
        sc = np.asarray(self.scale, dtype=np.float32)[:, None, None]
        return np.clip((raw.astype(np.float32) - off) / sc, 0.0, 1.0)

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] `[..., C, H, W]` -> raw units (float32; cast by the writer)."""
        off = np.asarray(self.offset, dtype=np.float32)[:, None, None]
        sc = np.asarray(self.scale, dtype=np.float32)[:, None, None]
        return scaled.astype(np.float32) * sc + off

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "offset": list(map(float, self.offset)),
                "scale": list(map(float, self.scale)), "params": self.params, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scaling":
        return cls(d["method"], list(d["offset"]), list(d["scale"]), dict(d.get("params", {})), d.get("dtype", "float32"))


def _check_band_names(band_names: Sequence[str] | None, num_bands: int) -> None:
    if band_names is not None and len(band_names) != num_bands:
        raise InputError(f"{len(band_names)} band_names {list(band_names)} for {num_bands} bands: give one name per band")


def default_rgb(band_names: Sequence[str] | None, num_bands: int) -> tuple[int, int, int] | None:
    """The RGB view: the red, green, blue bands when named so, else the first three bands (a false-colour
    view, e.g. SWIR1/NIR/red for Landsat stored in that order), else None (grey is repeated)."""
    found = rgb_indices(band_names)
    if found is not None:
        return found
    return (0, 1, 2) if num_bands >= 3 else None


@dataclass
class SitsSequence:
    """Dated frames of one place.

    frames:        float32 `[T, C, H, W]`, in [0, 1] when `scaling` is set (readers scale by default).
    dates:         one `datetime.date` per frame, strictly increasing.
    crs:           CRS as WKT or "EPSG:n" (None for plain PNG/JPEG).
    transform:     affine geotransform of the frames' grid as 6 numbers (a, b, c, d, e, f) (rasterio order).
    nodata_mask:   bool `[T, H, W]`, True where a pixel has no valid data.
    band_names:    one name per channel, e.g. ["red", "green", "blue", "nir"].
    rgb_bands:     indices of the channels that make an RGB view (metrics and previews use it).
    scaling:       how raw values became [0, 1].
    captions:      reference change captions for the sequence (first to last frame).
    scene:         a description of the scene.
    change_masks:  uint8 `[T-1, H, W]`, change between consecutive frames (1 = changed), or None.
    landcover:     int64 `[T, H, W]` land-cover class per frame, or None.
    future_*:      a frame after the last one, kept apart for forecasting (synthetic world), or None.
    events:        structured events (synthetic world).
    meta:          anything else (source paths, category, id...).
    """

    frames: np.ndarray
    dates: list[dt.date]
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    nodata_mask: np.ndarray | None = None
    band_names: list[str] | None = None
    rgb_bands: tuple[int, int, int] | None = None
    scaling: Scaling | None = None
    captions: list[str] = field(default_factory=list)
    scene: str | None = None
    change_masks: np.ndarray | None = None
    landcover: np.ndarray | None = None
    future_frame: np.ndarray | None = None
    future_date: dt.date | None = None
    future_landcover: np.ndarray | None = None
    future_change_mask: np.ndarray | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        if self.frames.ndim != 4:
            raise InputError(
                f"frames must be [T, C, H, W], got shape {tuple(self.frames.shape)}; "
                "stack single images with a time axis first"
            )
        self.dates = [parse_date(d) for d in self.dates]
        if len(self.dates) != self.frames.shape[0]:
            raise DateError(f"{self.frames.shape[0]} frames but {len(self.dates)} dates: give one date per frame")
        if len(set(self.dates)) != len(self.dates):
            dups = sorted({d.isoformat() for d in self.dates if self.dates.count(d) > 1})
            raise DateError(f"duplicate dates {dups}: keep one frame per date (or fix the dates)")
        order = np.argsort(to_days(self.dates), kind="stable")
        if not np.array_equal(order, np.arange(len(order))):
            self._reorder(order)
        if self.future_date is not None:
            self.future_date = parse_date(self.future_date)
            if self.future_date <= self.dates[-1]:
                raise DateError(
                    f"future date {self.future_date} is not after the last frame ({self.dates[-1]}); "
                    "the future frame must come after every input frame"
                )
        _check_band_names(self.band_names, self.num_bands)
        if self.rgb_bands is None:
            self.rgb_bands = default_rgb(self.band_names, self.num_bands)

    def _reorder(self, order: np.ndarray) -> None:
        self.frames = self.frames[order]
        self.dates = [self.dates[i] for i in order]
        if self.nodata_mask is not None:
            self.nodata_mask = self.nodata_mask[order]
        if self.landcover is not None:
            self.landcover = self.landcover[order]
        if self.change_masks is not None:
            # masks between consecutive frames lose their meaning when frames move
            self.change_masks = None
        paths = self.meta.get("paths")
        if paths is not None and len(paths) == len(order):
            self.meta["paths"] = [paths[i] for i in order]

    # --- views -------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_bands(self) -> int:
        return int(self.frames.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)"""
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    @property
    def days(self) -> np.ndarray:
        """Days since 1970-01-01, float64 `[T]`."""
        return to_days(self.dates)

    @property
    def gaps_days(self) -> np.ndarray:
        """Days between consecutive frames, `[T-1]`."""
        return np.diff(self.days)

    def rgb(self) -> np.ndarray:
        """float32 `[T, 3, H, W]` view for previews and RGB metrics (grey repeated for 1-2 band data)."""
        if self.rgb_bands is not None:
            return self.frames[:, list(self.rgb_bands)]
        return np.repeat(self.frames[:, :1], 3, axis=1)

    def select(self, indices: Sequence[int]) -> "SitsSequence":
        """A sequence of some of the frames (in the given order, which must be increasing)."""
        idx = list(indices)
        if sorted(idx) != idx:
            raise InputError(f"frame indices {idx} must be increasing")
        cm = None
        if self.change_masks is not None and idx == list(range(idx[0], idx[-1] + 1)):
            cm = self.change_masks[idx[0]: idx[-1]]
        return replace(
            self,
            frames=self.frames[idx],
            dates=[self.dates[i] for i in idx],
            nodata_mask=None if self.nodata_mask is None else self.nodata_mask[idx],
            landcover=None if self.landcover is None else self.landcover[idx],
            change_masks=cm,
            meta={**self.meta, "paths": [self.meta["paths"][i] for i in idx]} if "paths" in self.meta else dict(self.meta),
        )

    def require_frames(self, n: int, task: str) -> None:
        """Raise a clear error when fewer than `n` frames are present."""
        if self.num_frames < n:
            raise InputError(
                f"{task} needs at least {n} dated frames, got {self.num_frames}; "
                f"add more images of the same place with dates"
            )

    def to_sample(self, with_future: bool = True) -> dict[str, Any]:
        """The time-first sample dict (torch tensors) every model and metric takes; `band_names` names the channels."""
        import torch

        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(self.frames, dtype=np.float32)),  # [T, C, H, W]
            "time": torch.from_numpy(self.days),  # [T] float64
            "captions": list(self.captions),
            "scene": self.scene or "",
            "crs": self.crs,
            "transform": self.transform,
            "meta": dict(self.meta),
            "band_names": list(self.band_names or []),
        }
        if self.nodata_mask is not None:
            sample["nodata_mask"] = torch.from_numpy(self.nodata_mask.astype(bool))  # [T, H, W]
        if self.change_masks is not None:
            sample["mask"] = torch.from_numpy(self.change_masks.astype(np.uint8))  # [T-1, H, W]
        if self.landcover is not None:
            sample["landcover"] = torch.from_numpy(self.landcover.astype(np.int64))  # [T, H, W]
        if with_future and self.future_frame is not None and self.future_date is not None:
            sample["target"] = torch.from_numpy(np.ascontiguousarray(self.future_frame, dtype=np.float32))
            sample["target_time"] = torch.tensor(float(to_days([self.future_date])[0]), dtype=torch.float64)
            if self.future_change_mask is not None:
                sample["target_mask"] = torch.from_numpy(self.future_change_mask.astype(np.uint8))  # [H, W]
        return sample


@dataclass
class ChangePair:
    """A before/after pair of one place, with every band and its change mask.

    name:        the pair's name (file stem; `split/stem` when read from split sub-folders).
    before:      float32 `[C, H, W]`, in [0, 1] when `scaling` is set (readers scale by default).
    after:       float32 `[C, H, W]`, same bands and grid as `before`.
    mask:        uint8 `[H, W]`, 1 = changed, or None for unlabelled pairs.
    meta:        anything else (`paths`, `source` = the layout it was read from, `band_names_source`...).
    band_names:  one name per channel, in the vocabulary of `tamms.data.bands`.
    rgb_bands:   indices of the channels that make an RGB view (default: red/green/blue by name).
    dates:       (before, after) dates, or None when the data does not give them.
    captions:    reference change captions (LEVIR-CC), possibly empty.
    split:       "train" / "val" / "test" when the data says so, else None.
    scaling:     how raw values became [0, 1] (one Scaling for both images of the pair).
    crs, transform: georeferencing of the pair's grid (None for PNG/JPEG).
    nodata_mask: bool `[2, H, W]`, True where a pixel has no valid data, or None.
    """

    name: str
    before: np.ndarray
    after: np.ndarray
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    band_names: list[str] | None = None
    rgb_bands: tuple[int, int, int] | None = None
    dates: tuple[dt.date, dt.date] | None = None
    captions: list[str] = field(default_factory=list)
    split: str | None = None
    scaling: Scaling | None = None
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    nodata_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.before, self.after = np.asarray(self.before), np.asarray(self.after)
        if self.before.ndim != 3 or self.before.shape != self.after.shape:
            raise InputError(f"pair {self.name}: before {tuple(self.before.shape)} and after "
                             f"{tuple(self.after.shape)} must both be [C, H, W] of one shape")
        if self.mask is not None and tuple(self.mask.shape) != self.size:
            raise InputError(f"pair {self.name}: mask {tuple(self.mask.shape)} does not match the images {self.size}")
        _check_band_names(self.band_names, self.num_bands)
        if self.dates is not None:
            before, after = (parse_date(d) for d in self.dates)
            if after < before:
                raise DateError(f"pair {self.name}: the after date {after} is earlier than the before date {before}; "
                                "swap the images or fix the dates")
            self.dates = (before, after)
        if self.rgb_bands is None:
            self.rgb_bands = default_rgb(self.band_names, self.num_bands)

    @property
    def num_bands(self) -> int:
        return int(self.before.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)"""
        return int(self.before.shape[1]), int(self.before.shape[2])

    @property
    def days(self) -> np.ndarray | None:
        """Days since 1970-01-01 of (before, after), float64 `[2]`, or None without dates."""
        return None if self.dates is None else to_days(list(self.dates))

    def rgb(self) -> tuple[np.ndarray, np.ndarray]:
        """(before, after) as float32 `[3, H, W]` views for previews and RGB models (grey repeated)."""
        if self.rgb_bands is not None:
            idx = list(self.rgb_bands)
            return self.before[idx], self.after[idx]
        return np.repeat(self.before[:1], 3, axis=0), np.repeat(self.after[:1], 3, axis=0)

    def to_sample(self) -> dict[str, Any]:
        """The time-first sample dict: `image` `[2, C, H, W]` (before, after), `mask` `[H, W]`, and `time`
        `[2]` (days since 1970) only when the dates are known."""
        import torch

        image = np.stack([self.before, self.after]).astype(np.float32, copy=False)  # [2, C, H, W]
        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "captions": list(self.captions),
            "band_names": list(self.band_names or []),
            "crs": self.crs,
            "transform": self.transform,
            "meta": {**self.meta, "name": self.name, "split": self.split},
        }
        if self.dates is not None:
            sample["time"] = torch.from_numpy(self.days)  # [2] float64
        if self.mask is not None:
            sample["mask"] = torch.from_numpy(self.mask.astype(np.uint8))  # [H, W]
        if self.nodata_mask is not None:
            sample["nodata_mask"] = torch.from_numpy(self.nodata_mask.astype(bool))  # [2, H, W]
        return sample

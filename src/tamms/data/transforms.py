"""Band selection, scaling to [0, 1], and the spatial augmentation shared by every frame of a window.

Scaling is explicit and recorded in a `Scaling` (see `sequence.py`) so an output can be written back
in the raw units of its input. One scaling is computed per sequence (over all its valid pixels), not
per frame: a per-frame stretch would turn a brighter year into "change".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from tamms.data.bands import rgb_indices, select_bands, standard_band_name
from tamms.data.sequence import ChangePair, Scaling, SitsSequence
from tamms.errors import InputError

Item = TypeVar("Item", SitsSequence, ChangePair)

SCALING_METHODS = ("auto", "percentile", "none")


# --- band selection ------------------------------------------------------------------------------
def resolve_bands(bands: Sequence[int | str] | None, band_names: Sequence[str] | None, num_bands: int) -> list[int]:
    """Channel indices for `bands` given by index (0-based) or by name (case-insensitive)."""
    if bands is None:
        return list(range(num_bands))
    if isinstance(bands, (int, str)):
        bands = [bands]
    lowered = [standard_band_name(n) for n in band_names] if band_names else None
    out: list[int] = []
    for b in bands:
        if isinstance(b, (int, np.integer)):
            if not -num_bands <= int(b) < num_bands:
                raise InputError(f"band index {b} is out of range for {num_bands} bands: use 0..{num_bands - 1}")
            out.append(int(b) % num_bands)
        elif isinstance(b, str) and b.strip().lstrip("-").isdigit():
            out.extend(resolve_bands([int(b)], band_names, num_bands))
        elif isinstance(b, str):
            if lowered is None:
                raise InputError(
                    f"band {b!r} was asked by name but the data has no band names: select bands by index "
                    "(0-based) or add \"band_names\" to sequence.json"
                )
            if standard_band_name(b) not in lowered:
                raise InputError(f"no band named {b!r}; the bands are {list(band_names)}: pick bands the data has")
            out.append(lowered.index(standard_band_name(b)))
        else:
            raise InputError(f"band {b!r} must be an index or a name")
    if not out:
        raise InputError("no bands selected: give at least one band index or name")
    return out


def keep_bands(item: Item, wanted: Sequence[str] | None, needed_by: str = "the model") -> Item:
    """`item` (a `SitsSequence` or `ChangePair`) with only the `wanted` bands, in that order.

    This is how a model takes its input bands from its config (`bands: [red, green, blue, nir]`):
    names in any spelling the vocabulary knows; a band the data lacks raises an `InputError` naming
    the missing bands and the bands present. `wanted=None` keeps every band. The band names, RGB view
    and `Scaling` follow the selection.
    """
    if wanted is None:
        return item
    idx = select_bands(item.band_names, wanted, needed_by)
    names = [standard_band_name(w) for w in ([wanted] if isinstance(wanted, str) else wanted)]
    rgb = rgb_indices(names)
    if rgb is None and item.rgb_bands is not None and all(b in idx for b in item.rgb_bands):
        rgb = tuple(idx.index(b) for b in item.rgb_bands)  # the false-colour view survives when kept
    common: dict[str, Any] = {
        "band_names": names,
        "rgb_bands": rgb if rgb is not None else ((0, 1, 2) if len(idx) >= 3 else None),
        "scaling": None if item.scaling is None else select_scaling(item.scaling, idx),
    }
    if isinstance(item, ChangePair):
        return dataclasses.replace(item, before=item.before[idx], after=item.after[idx], **common)
    future = None if item.future_frame is None else item.future_frame[idx]
    return dataclasses.replace(item, frames=item.frames[:, idx], future_frame=future, **common)


def remap_rgb(rgb_bands: Sequence[int] | None, selected: Sequence[int]) -> tuple[int, int, int] | None:
    """rgb_bands expressed in the selected channels (None when a needed channel was dropped)."""
    if rgb_bands is None:
        return (0, 1, 2) if len(selected) >= 3 else None
    if all(b in selected for b in rgb_bands):
        return tuple(list(selected).index(b) for b in rgb_bands)  # type: ignore[return-value]
    return (0, 1, 2) if len(selected) >= 3 else None


# --- scaling -------------------------------------------------------------------------------------
def _valid_values(raw: np.ndarray, invalid: np.ndarray | None, band: int) -> np.ndarray:
    """Valid values of one band over all frames. raw `[T, C, H, W]`, invalid `[T, H, W]`."""
    values = raw[:, band]
    if invalid is not None:
        values = values[~invalid]
    values = values[np.isfinite(values)]
    return values.reshape(-1)


def compute_scaling(
    raw: np.ndarray,
    invalid: np.ndarray | None,
    dtype: str,
    scaling: str | float | int | Scaling = "auto",
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> Scaling:
    """The `Scaling` mapping raw `[T, C, H, W]` values to [0, 1].

    scaling:
      "auto"        uint8 -> /255; integer data whose valid values fit 0..255 -> /255; other integers ->
                    per-band percentiles; float already in [0, 1] -> identity; float within 0..255 -> /255;
                    other floats -> per-band percentiles.
      "percentile"  per band, `percentiles` (low, high) of the valid pixels of all frames.
      a number      a fixed divisor for every band (e.g. 10000 for Sentinel-2 reflectance).
      "none"        keep raw values (frames are then not in [0, 1]).
      a `Scaling`   reuse one computed before (e.g. from the training data).
    """
    num_bands = raw.shape[1]
    if isinstance(scaling, Scaling):
        if len(scaling.offset) != num_bands:
            raise InputError(
                f"the given Scaling has {len(scaling.offset)} bands but the data has {num_bands}; "
                "select the same bands as when it was computed"
            )
        return scaling
    if isinstance(scaling, (int, float)) and not isinstance(scaling, bool):
        if scaling <= 0:
            raise InputError(f"scaling divisor must be positive, got {scaling}")
        return Scaling("divisor", [0.0] * num_bands, [float(scaling)] * num_bands, {"divisor": float(scaling)}, dtype)
    if not isinstance(scaling, str):
        raise InputError(f"scaling {scaling!r} is not understood: use 'auto', 'percentile', 'none' or a divisor")
    method = scaling.strip().lower()
    try:  # "10000" given as text on a command line
        return compute_scaling(raw, invalid, dtype, float(method), percentiles)
    except ValueError:
        pass
    if method == "none":
        return Scaling("none", [0.0] * num_bands, [1.0] * num_bands, {}, dtype)
    if method == "percentile":
        return _percentile_scaling(raw, invalid, dtype, percentiles)
    if method != "auto":
        raise InputError(f"scaling {scaling!r} is not understood: use 'auto', 'percentile', 'none' or a divisor")

    kind = np.dtype(dtype).kind
    if np.dtype(dtype) == np.uint8:
        return Scaling("divisor", [0.0] * num_bands, [255.0] * num_bands, {"divisor": 255.0, "auto": "uint8"}, dtype)
    lo, hi = _valid_range(raw, invalid)
    if kind in "iu":
        if lo >= 0 and hi <= 255:
            return Scaling("divisor", [0.0] * num_bands, [255.0] * num_bands,
                           {"divisor": 255.0, "auto": "integer values within 0..255"}, dtype)
        return _percentile_scaling(raw, invalid, dtype, percentiles, note="integer values beyond 0..255")
    if lo >= 0.0 and hi <= 1.0:
        return Scaling("identity", [0.0] * num_bands, [1.0] * num_bands, {"auto": "float already in [0, 1]"}, dtype)
    if lo >= 0.0 and hi <= 255.0:
        return Scaling("divisor", [0.0] * num_bands, [255.0] * num_bands,
                       {"divisor": 255.0, "auto": "float values within 0..255"}, dtype)
    return _percentile_scaling(raw, invalid, dtype, percentiles, note="float values beyond [0, 255]")


def _valid_range(raw: np.ndarray, invalid: np.ndarray | None) -> tuple[float, float]:
    lows, highs = [], []
    for b in range(raw.shape[1]):
        v = _valid_values(raw, invalid, b)
        if v.size:
            lows.append(float(v.min()))
            highs.append(float(v.max()))
    return (min(lows), max(highs)) if lows else (0.0, 1.0)


def _percentile_scaling(raw: np.ndarray, invalid: np.ndarray | None, dtype: str,
                        percentiles: tuple[float, float], note: str | None = None) -> Scaling:
    p_low, p_high = map(float, percentiles)
    if not 0.0 <= p_low < p_high <= 100.0:
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    offsets, scales = [], []
    for b in range(raw.shape[1]):
        v = _valid_values(raw, invalid, b)
        lo, hi = (np.percentile(v, [p_low, p_high]) if v.size else (0.0, 1.0))
        offsets.append(float(lo))
        # a constant band would divide by zero: give it a unit range so it maps to 0
        scales.append(float(hi - lo) if hi > lo else 1.0)
    params: dict[str, Any] = {"p_low": p_low, "p_high": p_high}
    if note:
        params["auto"] = note
    return Scaling("percentile", offsets, scales, params, dtype)


def apply_scaling(raw: np.ndarray, scaling: Scaling) -> np.ndarray:
    """raw `[..., C, H, W]` -> float32 (in [0, 1] unless the method is "none")."""
    if scaling.method == "none":
        return raw.astype(np.float32, copy=False)
    return scaling.apply(raw)


def select_scaling(scaling: Scaling, channels: Sequence[int]) -> Scaling:
    """The part of a Scaling that covers some channels (e.g. the RGB view of a 4-band sequence)."""
    return Scaling(scaling.method, [scaling.offset[c] for c in channels], [scaling.scale[c] for c in channels],
                   dict(scaling.params), scaling.dtype)


# --- display -------------------------------------------------------------------------------------
def display_stretch(rgb: np.ndarray, valid: np.ndarray | None = None, percent: float = 2.0) -> np.ndarray:
    """Per-channel `percent`..`100-percent` stretch for viewing. rgb `[T, 3, H, W]` (or `[3, H, W]`).

    One stretch for the whole stack so frames stay comparable. Display only: never feed it to a model.
    """
    x = np.asarray(rgb, dtype=np.float32)
    stack = x[None] if x.ndim == 3 else x
    inv = None if valid is None else ~np.asarray(valid, dtype=bool).reshape(stack.shape[0], *stack.shape[2:])
    out = np.empty_like(stack)
    for c in range(stack.shape[1]):
        v = _valid_values(stack, inv, c)
        lo, hi = (np.percentile(v, [percent, 100 - percent]) if v.size else (0.0, 1.0))
        out[:, c] = np.clip((stack[:, c] - lo) / max(float(hi - lo), 1e-6), 0, 1)
    return out[0] if x.ndim == 3 else out


# --- spatial augmentation ------------------------------------------------------------------------
@dataclass(frozen=True)
class SpatialParams:
    """One crop and flip, applied identically to every array of a window."""

    top: int
    left: int
    height: int
    width: int
    hflip: bool = False
    vflip: bool = False


def sample_spatial_params(
    size: tuple[int, int], crop_size: int | tuple[int, int] | None, rng: np.random.Generator | None,
    flip: bool = False, random_crop: bool = True,
) -> SpatialParams:
    """A crop (random when `rng` is given and `random_crop`, centred otherwise) and random flips (with `rng`)."""
    h, w = size
    if crop_size is None:
        ch, cw = h, w
    else:
        ch, cw = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    if ch > h or cw > w:
        raise InputError(f"crop size {ch}x{cw} is larger than the frames ({h}x{w}): choose a smaller crop_size")
    if rng is None or not random_crop:
        top, left = (h - ch) // 2, (w - cw) // 2
    else:
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    hflip = bool(flip and rng is not None and rng.random() < 0.5)
    vflip = bool(flip and rng is not None and rng.random() < 0.5)
    return SpatialParams(top, left, ch, cw, hflip, vflip)


def apply_spatial(array: np.ndarray, p: SpatialParams) -> np.ndarray:
    """Crop and flip the last two axes (H, W) of any array (`[T, C, H, W]`, `[H, W]`, ...)."""
    out = array[..., p.top: p.top + p.height, p.left: p.left + p.width]
    if p.hflip:
        out = out[..., :, ::-1]
    if p.vflip:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


def crop_transform(transform: tuple[float, ...] | None, p: SpatialParams) -> tuple[float, ...] | None:
    """The geotransform of a crop (None after a flip: a flipped grid has no north-up transform)."""
    if transform is None or p.hflip or p.vflip:
        return None
    a, b, c, d, e, f = transform
    return (a, b, c + p.left * a + p.top * b, d, e, f + p.left * d + p.top * e)


def apply_spatial_all(arrays: Mapping[str, np.ndarray | None], p: SpatialParams) -> dict[str, np.ndarray | None]:
    """The same crop/flip for every array of a window (frames, target, masks, land cover)."""
    return {k: (None if v is None else apply_spatial(v, p)) for k, v in arrays.items()}


def model_band_indices(seq: Any, channels: int) -> list[int]:
    """The band indices a `channels`-band model takes from a sequence: all bands when the counts agree, else RGB
    for a 3-band model (`seq.num_bands`, `seq.rgb_bands`)."""
    if channels == seq.num_bands:
        return list(range(channels))
    if channels == 3 and seq.rgb_bands is not None:
        return list(seq.rgb_bands)
    from tamms.errors import InputError

    raise InputError(f"the model takes {channels} bands but the sequence has {seq.num_bands} (rgb_bands="
                     f"{seq.rgb_bands}); give {channels}-band data or train a model for {seq.num_bands} bands")

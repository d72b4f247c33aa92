"""Write images and sequences: GeoTIFF that keeps the georeferencing of a reference, PNG, and whole
sequences in the `sequence.json` folder format.

Every writer goes through `tamms.utils.atomic_output`: nothing existing is replaced without
`overwrite=True`, and a crash leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tamms.data.readers import RasterImage
from tamms.data.sequence import ChangePair, Scaling, SitsSequence
from tamms.data.transforms import select_scaling
from tamms.errors import InputError, OutputExistsError
from tamms.utils import atomic_output

PathLike = str | os.PathLike


def _as_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _chw(array: Any, what: str) -> np.ndarray:
    arr = _as_numpy(array)
    if arr.ndim == 2:
        arr = arr[None]  # [H, W] -> [1, H, W]
    if arr.ndim != 3:
        raise InputError(f"{what} must be [C, H, W] or [H, W], got shape {tuple(arr.shape)}; write one image at a time")
    return arr


def _cast(raw: np.ndarray, dtype: str) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.clip(np.rint(raw), info.min, info.max).astype(dt)
    return raw.astype(dt)


def write_geotiff(
    path: PathLike,
    array: Any,
    reference: SitsSequence | RasterImage | None = None,
    overwrite: bool = False,
    scale_back: bool = True,
    nodata_mask: Any = None,
) -> Path:
    """Write `array` `[C, H, W]` (or `[H, W]`) as a GeoTIFF on the grid of `reference`.

    reference: a `SitsSequence` (its grid is the last frame's: readers put every frame on one grid)
    or a `RasterImage`. The CRS, transform and nodata are copied. With a `SitsSequence` and
    `scale_back`, values in [0, 1] are mapped back to raw units with the sequence's `Scaling` and cast
    to its raw dtype; with 3 channels and a multi-band reference the scaling of its RGB bands is used.
    With a `RasterImage` the values are written as given, cast to its dtype. An array of another size
    than the reference keeps the reference's footprint (the pixel size changes).
    nodata_mask: bool `[H, W]`, pixels written as the nodata value.
    """
    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    arr = _chw(array, "array").astype(np.float32)
    crs = transform = nodata = None
    dtype = "float32"
    ref_size = None
    if isinstance(reference, SitsSequence):
        crs, transform = reference.crs, reference.transform
        nodata = reference.meta.get("nodata")
        ref_size = reference.size
        scaling = reference.scaling
        if scaling is not None:
            dtype = scaling.dtype
        if scale_back and scaling is not None and scaling.method != "none":
            arr = _invert(arr, scaling, reference)
        elif scaling is None:
            dtype = "float32"
    elif isinstance(reference, RasterImage):
        crs, transform, nodata, dtype = reference.crs, reference.transform, reference.nodata, reference.dtype
        ref_size = reference.shape
    elif reference is not None:
        raise InputError(f"reference must be a SitsSequence or RasterImage, got {type(reference).__name__}")
    if transform is not None and ref_size is not None and arr.shape[1:] != tuple(ref_size):
        # same footprint, another pixel size: scale the transform's pixel terms
        sy, sx = ref_size[0] / arr.shape[1], ref_size[1] / arr.shape[2]
        a, b, c, d, e, f = transform
        transform = (a * sx, b * sy, c, d * sx, e * sy, f)
    out = _cast(np.nan_to_num(arr, nan=0.0), dtype)
    if nodata_mask is not None:
        if nodata is None:
            raise InputError("nodata_mask was given but the reference has no nodata value: drop the mask or set nodata")
        m = _as_numpy(nodata_mask).astype(bool)
        out[:, m] = np.asarray(nodata, dtype=out.dtype)
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": out.shape[2], "height": out.shape[1], "count": out.shape[0],
        "dtype": out.dtype.name, "compress": "deflate",
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = Affine(*transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(out)
            names = reference.band_names if isinstance(reference, (SitsSequence, RasterImage)) else None
            if names and len(names) == out.shape[0]:
                for i, name in enumerate(names, start=1):
                    dst.set_band_description(i, name)
    return Path(path)


def _invert(arr: np.ndarray, scaling: Scaling, reference: SitsSequence) -> np.ndarray:
    channels = arr.shape[0]
    if channels == len(scaling.offset):
        return scaling.invert(arr)
    if channels == 3 and reference.rgb_bands is not None:
        return select_scaling(scaling, list(reference.rgb_bands)).invert(arr)
    if channels == 1 and len(set(scaling.offset)) == 1 and len(set(scaling.scale)) == 1:
        return select_scaling(scaling, [0]).invert(arr)
    raise InputError(
        f"cannot scale back {channels} channels with the reference's {len(scaling.offset)}-band scaling: "
        "write the same bands as the reference (or its 3 RGB bands), or pass scale_back=False"
    )


def to_uint8(array: Any) -> np.ndarray:
    """[C, H, W] or [H, W] -> uint8 `[H, W, C]`/`[H, W]` for Pillow: float in [0, 1] -> x255,
    bool -> 0/255, integers kept (must be within 0..255)."""
    arr = _chw(array, "image")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        arr = np.clip(np.rint(np.nan_to_num(arr, nan=0.0) * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise InputError("integer PNG values must lie in 0..255: scale the image to [0, 1] floats first")
        arr = arr.astype(np.uint8)
    if arr.shape[0] not in (1, 3, 4):
        raise InputError(
            f"a PNG holds 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {arr.shape[0]}: pick the RGB bands first "
            "(e.g. sequence.rgb())"
        )
    hwc = np.moveaxis(arr, 0, -1)  # [C, H, W] -> [H, W, C]
    return hwc[..., 0] if hwc.shape[-1] == 1 else hwc


def write_png(path: PathLike, array: Any, overwrite: bool = False) -> Path:
    """Write an RGB / grey image or a mask as PNG.

    array `[C, H, W]` or `[H, W]`: floats are taken as [0, 1]; bool masks become 0/255 (visible);
    uint8 is written as is (so a 0/1 uint8 mask stays 0/1: pass `mask.astype(bool)` to see it).
    """
    from PIL import Image

    img = Image.fromarray(to_uint8(array))
    with atomic_output(path, overwrite=overwrite) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def save_sequence(seq: SitsSequence, folder: PathLike, overwrite: bool = False) -> Path:
    """Write a sequence as a folder: one GeoTIFF per frame (raw units, georeferencing kept),
    land-cover and change-mask PNGs when present, and `sequence.json` in the schema of docs/data.md
    (the same keys the synthetic world writes, so `read_sequence` reads it back).

    The folder is built under a temporary name and renamed, so it appears complete or not at all.
    """
    folder = Path(folder)
    if folder.exists() and (folder.is_file() or any(folder.iterdir())):
        if not overwrite:
            raise OutputExistsError(f"{folder} already exists: choose another folder or pass --overwrite")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _write_sequence_files(seq, tmp)
        if folder.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            backup.rmdir()
            folder.rename(backup)
            tmp.rename(folder)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_sequence_files(seq: SitsSequence, folder: Path) -> None:
    frames_doc = []
    for t, date in enumerate(seq.dates):
        stem = date.isoformat()
        entry: dict[str, Any] = {"path": f"{stem}.tif", "date": date.isoformat()}
        mask = None if seq.nodata_mask is None or seq.meta.get("nodata") is None else seq.nodata_mask[t]
        write_geotiff(folder / entry["path"], seq.frames[t], seq, nodata_mask=mask)
        if seq.landcover is not None:
            entry["landcover"] = f"{stem}_landcover.png"
            write_png(folder / entry["landcover"], seq.landcover[t].astype(np.uint8))
        if seq.change_masks is not None and t > 0:
            entry["change_mask"] = f"{stem}_change.png"
            write_png(folder / entry["change_mask"], seq.change_masks[t - 1].astype(np.uint8))
        descriptions = seq.meta.get("frame_descriptions")
        if descriptions is not None and t < len(descriptions):
            entry["description"] = descriptions[t]
        frames_doc.append(entry)
    doc: dict[str, Any] = {"id": seq.meta.get("id", folder.name), "frames": frames_doc}
    if seq.scene:
        doc["scene"] = seq.scene
    if seq.captions:
        doc["captions"] = list(seq.captions)
    for key in ("category", "classes", "split"):
        if key in seq.meta:
            doc[key] = seq.meta[key]
    if seq.events:
        doc["events"] = seq.events
    if seq.band_names:
        doc["band_names"] = list(seq.band_names)
    if seq.rgb_bands is not None:
        doc["rgb_bands"] = list(seq.rgb_bands)
    if seq.future_frame is not None and seq.future_date is not None:
        stem = f"future_{seq.future_date.isoformat()}"
        fut: dict[str, Any] = {"path": f"{stem}.tif", "date": seq.future_date.isoformat()}
        write_geotiff(folder / fut["path"], seq.future_frame, seq)
        if seq.future_landcover is not None:
            fut["landcover"] = f"{stem}_landcover.png"
            write_png(folder / fut["landcover"], seq.future_landcover.astype(np.uint8))
        if seq.future_change_mask is not None:
            fut["change_mask"] = f"{stem}_change.png"
            write_png(folder / fut["change_mask"], seq.future_change_mask.astype(np.uint8))
        if seq.meta.get("future_description") is not None:
            fut["description"] = seq.meta["future_description"]
        doc["future"] = fut
    if seq.scaling is not None:
        doc["scaling"] = seq.scaling.to_dict()
    (folder / "sequence.json").write_text(json.dumps(doc, indent=1, default=_json_default), encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to sequence.json")


def save_pairs(pairs: list[ChangePair], folder: PathLike, overwrite: bool = False) -> Path:
    """Write change pairs in the LEVIR-CD layout `read_dataset` reads back: `A/<name>.tif`, `B/<name>.tif`
    (every band, raw units through the pair's `Scaling`, band names as GeoTIFF band descriptions,
    georeferencing kept), `label/<name>.png` (0/255) and `dates.json`. Pairs named `split/name` go to
    `split/A/...`. A way to turn OSCD's 26 files per city into one pair of files.
    """
    folder = Path(folder)
    if not pairs:
        raise InputError("no pairs to save: give at least one ChangePair")
    if folder.exists() and (folder.is_file() or any(folder.iterdir())) and not overwrite:
        raise OutputExistsError(f"{folder} already exists: choose another folder or pass --overwrite")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        dates: dict[str, dict[str, list[str]]] = {}
        for pair in pairs:
            split, _, stem = pair.name.rpartition("/")
            base = tmp / split if split else tmp
            dtype = pair.scaling.dtype if pair.scaling is not None else "float32"
            for side, image in (("A", pair.before), ("B", pair.after)):
                raw = pair.scaling.invert(image) if pair.scaling is not None and pair.scaling.method != "none" else image
                ref = RasterImage(raw, pair.crs, pair.transform, None, dtype, pair.band_names)
                (base / side).mkdir(parents=True, exist_ok=True)
                write_geotiff(base / side / f"{stem}.tif", raw, reference=ref)
            if pair.mask is not None:
                (base / "label").mkdir(parents=True, exist_ok=True)
                write_png(base / "label" / f"{stem}.png", pair.mask.astype(bool))
            if pair.dates is not None:
                dates.setdefault(split, {})[f"{stem}.tif"] = [d.isoformat() for d in pair.dates]
        for split, doc in dates.items():
            ((tmp / split) if split else tmp).joinpath("dates.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder

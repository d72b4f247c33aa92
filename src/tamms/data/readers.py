"""Read satellite image time series from disk.

- `read_image`: one GeoTIFF / PNG / JPEG as raw values with its georeferencing and nodata.
- `read_sequence`: a folder with `sequence.json` (docs/data.md schema, plus the synthetic world's extra
  keys), a folder of images whose names carry dates, or an explicit list of files and dates. Frames are
  sorted by date, brought onto the last (newest) frame's grid, masked where nodata/NaN, band-selected and scaled
  to [0, 1] with a recorded `Scaling`.
- `read_sequences`: every sequence under a folder.
- `read_pairs` / `read_levir_cd` (A/, B/, label/, dates.json), `read_oscd` (OSCD's original 13-band
  layout) -> `ChangePair`s with every band named; `read_levir_cc` (change captions JSON).
- `read_dataset`: THE entry point. It recognises a path's layout (`detect_layout`, `LAYOUTS`) and
  returns a `DatasetContents` with its sequences, pairs and captions.

Every problem with the input raises a `TammsError` subclass whose message names the file and the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tamms.data.bands import SENTINEL2_BANDS, SENTINEL2_ORDER, default_band_names, standard_band_names
from tamms.data.sequence import ChangePair, Scaling, SitsSequence, date_from_filename, parse_date
from tamms.data.transforms import apply_scaling, compute_scaling, keep_bands, remap_rgb, resolve_bands
from tamms.errors import AlignmentError, DateError, EmptyInputError, InputError

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}
_PILLOW_SUFFIXES = {".png", ".jpg", ".jpeg"}
PathLike = str | os.PathLike


# --- one image -----------------------------------------------------------------------------------
@dataclass
class RasterImage:
    """One image as stored: raw values, georeferencing, nodata.

    data:         float32 `[C, H, W]`, raw values (not scaled).
    crs:          "EPSG:n" (or WKT when the CRS has no EPSG code); None for plain PNG/JPEG.
    transform:    6 numbers (a, b, c, d, e, f) in rasterio order, or None.
    nodata:       the nodata value of the file, or None.
    dtype:        the stored dtype ("uint8", "uint16", "float32", ...).
    band_names:   band descriptions when the file has them, else None.
    nodata_mask:  bool `[H, W]`, True where the pixel is invalid (all bands == nodata, any NaN, alpha 0).
    """

    data: np.ndarray
    crs: str | None
    transform: tuple[float, ...] | None
    nodata: float | None
    dtype: str
    band_names: list[str] | None = None
    path: Path | None = None
    nodata_mask: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)"""
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "<array>"


def _corrupt(path: Path, exc: BaseException) -> InputError:
    return InputError(
        f"cannot read {path}: the file is corrupt or not an image ({type(exc).__name__}: {exc}); "
        "re-export or re-download it, or remove it from the input"
    )


def _crs_string(crs: Any) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def invalid_pixels(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """bool `[H, W]`: a pixel is invalid when any band is NaN or every band equals `nodata`.

    "Every band", not "any band": a real pixel may be 0 in one band (water in NIR), and masking it
    would punch holes in lakes.
    """
    invalid = np.isnan(data).any(axis=0)
    if nodata is not None and not np.isnan(nodata):
        invalid |= (data == np.float32(nodata)).all(axis=0)
    return invalid


def read_image(path: PathLike) -> RasterImage:
    """Read a GeoTIFF (any band count and dtype, nodata honoured), PNG or JPEG."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist: check the path")
    if path.suffix.lower() in _PILLOW_SUFFIXES:
        return _read_pillow(path)
    return _read_rasterio(path)


def _read_rasterio(path: Path) -> RasterImage:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            warnings.filterwarnings("ignore", message=".*shadowing the alpha band.*")
            with rasterio.open(path) as src:
                raw = src.read()
                crs = _crs_string(src.crs)
                t = src.transform
                georef = src.crs is not None or not t.is_identity
                nodata = src.nodata
                dtype = src.dtypes[0]
                names = list(src.descriptions)
    except (RasterioError, OSError, ValueError) as exc:
        raise _corrupt(path, exc) from None
    data = raw.astype(np.float32)
    band_names = names if all(names) else None
    return RasterImage(
        data=data,
        crs=crs,
        transform=tuple(float(v) for v in tuple(t)[:6]) if georef else None,
        nodata=None if nodata is None else float(nodata),
        dtype=str(dtype),
        band_names=band_names,
        path=path,
        nodata_mask=invalid_pixels(data, nodata),
    )


def _read_pillow(path: Path) -> RasterImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.array(im)
            mode = im.mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _corrupt(path, exc) from None
    alpha = None
    if arr.ndim == 2:
        arr = arr[None]  # [1, H, W]
    else:
        arr = np.moveaxis(arr, -1, 0)  # [H, W, C] -> [C, H, W]
        if mode in ("RGBA", "LA"):
            alpha = arr[-1]
            arr = arr[:-1]
    data = arr.astype(np.float32)
    invalid = invalid_pixels(data, None)
    if alpha is not None:
        invalid |= alpha == 0
    dtype = {"I;16": "uint16", "I;16B": "uint16", "I": "int32", "F": "float32"}.get(mode, "uint8")
    return RasterImage(data=data, crs=None, transform=None, nodata=None, dtype=dtype, path=path, nodata_mask=invalid)


# --- finding the frames of a sequence ------------------------------------------------------------
@dataclass
class _Frame:
    path: Path
    date: dt.date
    landcover: Any = None
    change_mask: Any = None
    description: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # other per-frame keys (e.g. cloud_fraction)


_FRAME_KEYS = {"path", "date", "landcover", "change_mask", "description"}


@dataclass
class _Listing:
    frames: list[_Frame]
    source: str
    root: Path
    json_path: Path | None = None
    doc: dict[str, Any] = field(default_factory=dict)
    future: dict[str, Any] | None = None


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image(p))


def _frame_date(value: Any, context: str) -> dt.date:
    try:
        return parse_date(value)
    except DateError as exc:
        raise DateError(f"{context}: {exc}") from None


def _list_json(json_path: Path) -> _Listing:
    root = json_path.parent
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{json_path} is not valid JSON ({exc}): fix the file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise InputError(
            f"{json_path} has no \"frames\" list: write {{\"frames\": [{{\"path\": \"a.tif\", \"date\": \"YYYY-MM-DD\"}}, ...]}}"
        )
    if not doc["frames"]:
        raise EmptyInputError(f"{json_path} lists no frames: add at least one {{\"path\", \"date\"}} entry")
    frames = []
    for i, entry in enumerate(doc["frames"]):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise InputError(f"{json_path}: frame {i} has no \"path\": give each frame a path and a date")
        path = _resolve(root, entry["path"], json_path, f"frame {i}")
        context = f"{json_path}: frame {i} ({entry['path']})"
        if entry.get("date") is not None:
            date = _frame_date(entry["date"], context)
        else:
            date = date_from_filename(path.name)
            if date is None:
                raise DateError(f"{context} has no \"date\" and its name carries none: add \"date\": \"YYYY-MM-DD\"")
        extras = {k: v for k, v in entry.items() if k not in _FRAME_KEYS}
        frames.append(_Frame(path, date, entry.get("landcover"), entry.get("change_mask"), entry.get("description"),
                             extras))
    future = doc.get("future")
    if future is not None:
        if not isinstance(future, dict) or "path" not in future or "date" not in future:
            raise InputError(f"{json_path}: \"future\" must be {{\"path\": ..., \"date\": ...}}: fix or remove it")
        future = dict(future)
        future["path"] = _resolve(root, future["path"], json_path, "future")
        future["date"] = _frame_date(future["date"], f"{json_path}: future ({future['path'].name})")
    return _Listing(frames, "sequence.json", root, json_path, doc, future)


def _resolve(root: Path, rel: str, json_path: Path, what: str) -> Path:
    path = (root / rel) if not Path(rel).is_absolute() else Path(rel)
    if not path.is_file():
        raise InputError(
            f"{json_path} lists {rel!r} ({what}) but that file does not exist: fix the path in sequence.json "
            "(paths are relative to its folder) or restore the file"
        )
    return path


def _list_files(paths: Sequence[PathLike], dates: Sequence[Any] | None, source: str, root: Path) -> _Listing:
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmptyInputError(f"no image files given for {root}: pass at least one file")
    for p in paths:
        if not p.is_file():
            raise InputError(f"image {p} does not exist: check the path")
    if dates is not None:
        if len(dates) != len(paths):
            raise DateError(f"{len(paths)} files but {len(dates)} dates: give one date per file")
        parsed = [_frame_date(d, f"date for {p.name}") for p, d in zip(paths, dates)]
    else:
        found = [date_from_filename(p.name) for p in paths]
        missing = [p.name for p, d in zip(paths, found) if d is None]
        if missing:
            raise DateError(
                f"no date in the name of {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (in {root}): "
                "rename the files to carry their date (2019-09-04.tif, S2_20190904.tif or landsat_2019.tif), "
                "give the dates explicitly, or write a sequence.json listing each file with its date"
            )
        parsed = found  # type: ignore[assignment]
    return _Listing([_Frame(p, d) for p, d in zip(paths, parsed)], source, root)


def _listing(path: PathLike | Sequence[PathLike], dates: Sequence[Any] | None) -> _Listing:
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        root = files[0].parent if files else Path(".")
        return _list_files(files, dates, "files", root)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a sequence folder, a folder of dated images or image files")
    if path.is_file():
        if path.name == "sequence.json" or path.suffix.lower() == ".json":
            return _list_json(path)
        if not is_image(path):
            raise InputError(f"{path} is not an image (.tif, .png, .jpg) nor a sequence.json")
        return _list_files([path], dates, "files", path.parent)
    if (path / "sequence.json").is_file():
        if dates is not None:
            raise DateError(f"{path / 'sequence.json'} already gives the dates: drop the explicit dates, or edit "
                            "sequence.json")
        return _list_json(path / "sequence.json")
    images = list_images(path)
    if not images:
        if is_levir_cd(path):
            raise EmptyInputError(
                f"{path} is a LEVIR-CD folder (A/, B/, label/), not a time series: read it with read_levir_cd()"
            )
        if any(p.is_dir() for p in path.iterdir()):
            raise EmptyInputError(
                f"{path} holds folders, not images: read a folder of sequence folders with read_sequences() "
                "(or SitsDataModule(root=...)), or point at one sequence folder"
            )
        raise EmptyInputError(
            f"{path} holds no images (.tif, .tiff, .png, .jpg): put the dated frames there or give another folder"
        )
    return _list_files(images, dates, "dated-folder", path)


def _check_duplicates(frames: list[_Frame], where: Path) -> None:
    seen: dict[dt.date, Path] = {}
    for f in frames:
        if f.date in seen:
            raise DateError(
                f"{seen[f.date].name} and {f.path.name} (in {where}) have the same date {f.date.isoformat()}: "
                "keep one frame per date or fix the date"
            )
        seen[f.date] = f.path


# --- grid alignment ------------------------------------------------------------------------------
def _same_grid(a: RasterImage, b: RasterImage) -> bool:
    if a.shape != b.shape or a.crs != b.crs:
        return False
    if a.transform is None or b.transform is None:
        return a.transform is None and b.transform is None
    tol = 1e-6 * max(abs(a.transform[0]), abs(a.transform[4]), 1e-12)
    return bool(np.allclose(a.transform, b.transform, rtol=0, atol=tol))


def align_to(image: RasterImage, reference: RasterImage, resampling: str = "nearest",
             max_pad: int = 2) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Bring `image` onto `reference`'s grid: (data `[C, H, W]`, invalid `[H, W]`, record or None).

    Georeferenced frames are reprojected (pixels outside the image's footprint become nodata).
    Frames without georeferencing may differ by at most `max_pad` pixels per side (cropped/padded at
    the bottom/right); anything else raises `AlignmentError`.
    """
    data = image.data
    invalid = image.nodata_mask if image.nodata_mask is not None else invalid_pixels(data, image.nodata)
    if _same_grid(image, reference):
        return data, invalid, None
    ref_h, ref_w = reference.shape
    h, w = image.shape
    if image.transform is None and reference.transform is None:
        if abs(h - ref_h) > max_pad or abs(w - ref_w) > max_pad:
            raise AlignmentError(
                f"{image.name} is {h}x{w} px but {reference.name} is {ref_h}x{ref_w} px and neither is "
                "georeferenced, so they cannot be aligned: resize or crop the frames to one size, or use "
                "GeoTIFFs with a CRS and transform"
            )
        out = np.zeros((data.shape[0], ref_h, ref_w), dtype=np.float32)
        out_invalid = np.ones((ref_h, ref_w), dtype=bool)
        ch, cw = min(h, ref_h), min(w, ref_w)
        out[:, :ch, :cw] = data[:, :ch, :cw]
        out_invalid[:ch, :cw] = invalid[:ch, :cw]
        return out, out_invalid, {"path": image.name, "method": "crop/pad", "from_size": [h, w]}
    if image.transform is None or reference.transform is None:
        has, lacks = (image, reference) if image.transform is not None else (reference, image)
        raise AlignmentError(
            f"{has.name} is georeferenced but {lacks.name} is not: give every frame a CRS and transform "
            "(GeoTIFF) or none of them"
        )
    return _reproject(image, data, invalid, reference, resampling)


def _bounds(t: Sequence[float], h: int, w: int) -> tuple[float, float, float, float]:
    xs = [t[2], t[2] + t[0] * w + t[1] * h, t[2] + t[0] * w, t[2] + t[1] * h]
    ys = [t[5], t[5] + t[3] * w + t[4] * h, t[5] + t[3] * w, t[5] + t[4] * h]
    return min(xs), min(ys), max(xs), max(ys)


def _reproject(image: RasterImage, data: np.ndarray, invalid: np.ndarray, reference: RasterImage,
               resampling: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject, transform_bounds

    ref_h, ref_w = reference.shape
    h, w = image.shape
    src_crs = CRS.from_user_input(image.crs) if image.crs else CRS.from_user_input(reference.crs)
    dst_crs = CRS.from_user_input(reference.crs) if reference.crs else src_crs
    ref_box = _bounds(reference.transform, ref_h, ref_w)
    try:
        box = transform_bounds(src_crs, dst_crs, *_bounds(image.transform, h, w))
    except Exception as exc:  # noqa: BLE001 - any PROJ failure means the CRSs cannot be related here
        raise AlignmentError(
            f"cannot relate the CRS of {image.name} ({image.crs}) to that of {reference.name} ({reference.crs}): "
            f"{exc}; reproject the frames to one CRS first"
        ) from None
    ix = max(0.0, min(box[2], ref_box[2]) - max(box[0], ref_box[0]))
    iy = max(0.0, min(box[3], ref_box[3]) - max(box[1], ref_box[1]))
    ref_area = (ref_box[2] - ref_box[0]) * (ref_box[3] - ref_box[1])
    overlap = ix * iy / ref_area if ref_area > 0 else 0.0
    if overlap < 0.5:
        raise AlignmentError(
            f"{image.name} ({image.crs}) covers only {overlap:.0%} of the area of the newest frame {reference.name} "
            f"({reference.crs}): these frames do not show the same place; crop all frames to a common area or "
            "remove the frame that does not belong"
        )
    src = np.where(invalid[None], np.nan, data).astype(np.float32)  # nodata as NaN so it stays nodata
    dst = np.full((data.shape[0], ref_h, ref_w), np.nan, dtype=np.float32)
    method = getattr(Resampling, resampling, None)
    if method is None:
        raise InputError(f"unknown resampling {resampling!r}: use nearest, bilinear or cubic")
    reproject(src, dst, src_transform=Affine(*image.transform), src_crs=src_crs,
              dst_transform=Affine(*reference.transform), dst_crs=dst_crs,
              src_nodata=np.nan, dst_nodata=np.nan, resampling=method)
    out_invalid = np.isnan(dst).any(axis=0)
    dst[:, out_invalid] = 0.0
    record: dict[str, Any] = {"path": image.name, "method": f"reproject-{resampling}", "overlap": round(overlap, 4)}
    if image.crs == reference.crs:
        t, r = image.transform, reference.transform
        record["shift_px"] = [round((t[2] - r[2]) / r[0], 3), round((t[5] - r[5]) / r[4], 3)]
    return dst, out_invalid, record


# --- sequences -----------------------------------------------------------------------------------
def _select(image: RasterImage, idx: list[int]) -> RasterImage:
    if max(idx) >= image.count:
        raise AlignmentError(
            f"{image.name} has {image.count} bands but bands {idx} were asked: select bands every frame has"
        )
    return RasterImage(image.data[idx], image.crs, image.transform, image.nodata, image.dtype,
                       None if image.band_names is None else [image.band_names[i] for i in idx],
                       image.path, image.nodata_mask)


def _read_label(value: Any, root: Path, shape: tuple[int, int], what: str, dtype: Any) -> np.ndarray | None:
    """A land-cover map or change mask given as a path (relative to the sequence folder) or a nested list."""
    if value is None:
        return None
    if isinstance(value, str):
        path = root / value
        if not path.is_file():
            raise InputError(f"{what} file {value!r} listed in {root / 'sequence.json'} does not exist: fix the path")
        arr = read_image(path).data[0]
    else:
        arr = np.asarray(value)
    if arr.shape != shape:
        raise InputError(f"{what} is {arr.shape[0]}x{arr.shape[1]} but the frames are {shape[0]}x{shape[1]}: "
                         "give maps on the frames' grid")
    return arr.astype(dtype)


def name_bands(image: RasterImage, given: Sequence[str] | None, listed: Sequence[str] | None,
               sensor: str | None, where: Any) -> tuple[list[str], str]:
    """One standard name per band of `image`, and where the names came from.

    First wins: names `given` by the caller, names `listed` by sequence.json, the `sensor`'s bands, the
    file's own band descriptions, then `default_band_names` (RGB for 3 bands, NAIP order for 4).
    """
    for names, source in ((given, "band_names argument"), (listed, f"band_names in {Path(str(where)).name}")):
        if names is not None:
            if len(names) != image.count:
                raise InputError(f"{where}: {len(names)} band_names {list(names)} but {image.name} has "
                                 f"{image.count} bands: give one name per band")
            return standard_band_names(names, sensor), source
    if sensor is not None:
        return default_band_names(image.count, sensor)
    if image.band_names is not None:
        try:
            return standard_band_names(image.band_names), "band descriptions of the file"
        except InputError:  # descriptions that repeat are not names
            pass
    return default_band_names(image.count)


def read_sequence(
    path: PathLike | Sequence[PathLike],
    bands: Sequence[int | str] | None = None,
    scaling: str | float | Scaling = "auto",
    dates: Sequence[Any] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    resampling: str = "nearest",
    band_names: Sequence[str] | None = None,
    sensor: str | None = None,
) -> SitsSequence:
    """Read one sequence of dated frames into a `SitsSequence` (frames in [0, 1], sorted by date).

    path:        a folder with `sequence.json`, the json file itself, a folder of images whose names
                 carry dates, or a list of image files (dates from `dates` or from the names).
    bands:       channels to keep, by 0-based index or by name (`band_names`); default all.
    scaling:     "auto", "percentile" (per band, `percentiles`), a fixed divisor, "none", or a `Scaling`.
    dates:       explicit dates, one per file (for a list of files, or a folder's images sorted by name).
    resampling:  how frames on a slightly different grid are brought onto the last frame's grid (the grid a
                 forecast or change map is written on, so the newest frame is never resampled).
    band_names:  one name per band of the files (overrides sequence.json and the files' band descriptions),
                 in any spelling `tamms.data.bands` knows (`B04`, `red`, `swir16`...).
    sensor:      "sentinel2", "landsat8", "landsat5", "naip"...: names the bands of data that does not
                 (also read from a "sensor" key of sequence.json).
    Band names always end up in `band_names` (the vocabulary of `tamms.data.bands`); where they come
    from is in `meta["band_names_source"]`.
    """
    listing = _listing(path, dates)
    frames = sorted(listing.frames, key=lambda f: f.date)  # dates parsed once, frames sorted by date
    where = listing.json_path or listing.root
    _check_duplicates(frames, where)
    doc = listing.doc

    images = [read_image(f.path) for f in frames]
    first = images[0]
    names, names_source = name_bands(first, band_names, doc.get("band_names"), sensor or doc.get("sensor"), where)
    idx = resolve_bands(bands, names, first.count)
    for img in images[1:]:
        if img.count != first.count and bands is None:
            raise AlignmentError(
                f"{img.name} has {img.count} bands but {first.name} has {first.count}: give bands=[...] "
                "(--bands) to use the bands every frame has, or re-export the frames with the same bands"
            )
    images = [_select(img, idx) for img in images]
    kept_names = [names[i] for i in idx]

    reference = images[-1]  # outputs (forecasts, change maps) copy the newest frame's georeferencing
    raws, invalids, records = [], [], []
    for img in images:
        data, invalid, record = align_to(img, reference, resampling)
        if invalid.all():
            raise InputError(
                f"{img.path} has no valid pixels (every pixel is nodata or NaN): remove this frame or fix its "
                "nodata value"
            )
        raws.append(data)
        invalids.append(invalid)
        if record:
            records.append(record)
    raw = np.stack(raws)  # [T, C, H, W]
    invalid = np.stack(invalids)  # [T, H, W]
    dtype = str(np.result_type(*[np.dtype(img.dtype) for img in images]))
    scale = compute_scaling(raw, invalid, dtype, scaling, percentiles)
    frames_01 = _scaled(raw, invalid, scale)

    shape = reference.shape
    landcover = _stack_labels([f.landcover for f in frames], listing.root, shape, "landcover", np.int64)
    change = [f.change_mask for f in frames]
    change_masks = None
    if len(frames) > 1 and all(c is not None for c in change[1:]):
        # a frame's change_mask is the change since the previous frame; the first frame has none
        change_masks = _stack_labels(change[1:], listing.root, shape, "change_mask", np.uint8)
        change_masks = (change_masks > 0).astype(np.uint8)

    rgb = doc.get("rgb_bands")
    meta: dict[str, Any] = {
        "id": str(doc.get("id") or listing.root.name),
        "source": str(doc.get("source") or listing.source),  # who made it, e.g. "tamms synthetic world"
        "format": listing.source,  # how it was found: sequence.json, dated-folder, files
        "root": str(listing.root),
        "paths": [str(f.path) for f in frames],
        "dtype": dtype,
        "nodata": first.nodata,
        "band_names_source": names_source,
    }
    if records:
        meta["alignment"] = records
    descriptions = [f.description for f in frames]
    if any(d is not None for d in descriptions):
        meta["frame_descriptions"] = [d or "" for d in descriptions]
    for key in ("category", "classes", "split"):
        if key in doc:
            meta[key] = doc[key]
    for key in sorted({k for f in frames for k in f.extras}):  # per-frame extras as one list per key
        meta[key] = [f.extras.get(key) for f in frames]
    known = {"frames", "future", "scene", "captions", "events", "band_names", "rgb_bands", "id", "category",
             "classes", "split", "sensor"}
    for key, value in doc.items():
        if key not in known:
            meta.setdefault(key, value)

    future_kw: dict[str, Any] = {}
    fut = listing.future
    if fut is not None:
        img = _select(read_image(fut["path"]), idx)
        if img.count != reference.count:
            raise AlignmentError(f"future frame {img.name} has {img.count} bands but the frames have {reference.count}")
        data, f_invalid, record = align_to(img, reference, resampling)
        future_kw = {
            "future_frame": _scaled(data[None], f_invalid[None], scale)[0],
            "future_date": fut["date"],
            "future_landcover": _read_label(fut.get("landcover"), listing.root, shape, "future landcover", np.int64),
            "future_change_mask": _as_mask(_read_label(fut.get("change_mask"), listing.root, shape,
                                                       "future change_mask", np.uint8)),
        }
        meta["future_path"] = str(fut["path"])
        meta["future_nodata_mask"] = f_invalid
        if fut.get("description") is not None:
            meta["future_description"] = fut["description"]

    return SitsSequence(
        frames=frames_01,
        dates=[f.date for f in frames],
        crs=reference.crs,
        transform=reference.transform,
        nodata_mask=invalid,
        band_names=kept_names,
        rgb_bands=remap_rgb(rgb, idx) if rgb is not None else None,  # None: red/green/blue by name
        scaling=scale,
        captions=list(doc.get("captions") or []),
        scene=doc.get("scene"),
        change_masks=change_masks,
        landcover=landcover,
        events=list(doc.get("events") or []),
        meta=meta,
        **future_kw,
    )


def _as_mask(arr: np.ndarray | None) -> np.ndarray | None:
    return None if arr is None else (arr > 0).astype(np.uint8)


def _scaled(raw: np.ndarray, invalid: np.ndarray, scale: Scaling) -> np.ndarray:
    out = apply_scaling(np.nan_to_num(raw, nan=0.0), scale)
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    out[np.broadcast_to(invalid[:, None], out.shape)] = 0.0  # nodata pixels are 0, never NaN
    return out.astype(np.float32, copy=False)


def _stack_labels(values: list[Any], root: Path, shape: tuple[int, int], what: str, dtype: Any) -> np.ndarray | None:
    if not values or any(v is None for v in values):
        return None
    return np.stack([_read_label(v, root, shape, what, dtype) for v in values])


def find_sequence_folders(root: PathLike) -> list[Path]:
    """Sequence folders under `root`: `root` itself when it is one, else every folder holding a
    `sequence.json` (any depth), else every sub-folder of dated images."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder: give a folder of sequence folders")
    if (root / "sequence.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.rglob("sequence.json"))
    if found:
        return found
    if list_images(root):
        return [root]
    subs = sorted(p for p in root.iterdir() if p.is_dir() and list_images(p))
    if not subs:
        raise EmptyInputError(f"{root} holds no sequences (no sequence.json and no folders of dated images)")
    return subs


def read_sequences(root: PathLike, **kwargs: Any) -> list[SitsSequence]:
    """Every sequence under `root` (see `find_sequence_folders`), read with `read_sequence(**kwargs)`."""
    return [read_sequence(p, **kwargs) for p in find_sequence_folders(root)]


# --- change pairs: LEVIR-CD style folders --------------------------------------------------------
SPLITS = ("train", "val", "test")


def is_levir_cd(folder: Path) -> bool:
    return (folder / "A").is_dir() and (folder / "B").is_dir()


def _stem(name: str) -> str:
    return Path(name).stem


def _pair_dates(root: Path) -> dict[str, tuple[dt.date, dt.date]]:
    """`dates.json` = {file name or stem: [before, after]} -> {stem: (before, after)}; {} when absent."""
    path = root / "dates.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}): fix the file") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path} must be {{\"name.png\": [\"before date\", \"after date\"], ...}}: fix the file")
    out = {}
    for name, pair in doc.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise DateError(f"{path}: {name!r} needs two dates [before, after], got {pair!r}")
        out[_stem(name)] = (_frame_date(pair[0], f"{path}: {name} before"), _frame_date(pair[1], f"{path}: {name} after"))
    return out


def _scaled_pair(a: RasterImage, b: RasterImage, scaling: str | float | Scaling) -> tuple[np.ndarray, Scaling, np.ndarray]:
    """One Scaling for both images (so brightness differences stay visible): ([2, C, H, W] in [0, 1], scaling,
    invalid [2, H, W])."""
    raw = np.stack([a.data, b.data])  # [2, C, H, W]
    invalid = np.stack([a.nodata_mask if a.nodata_mask is not None else invalid_pixels(a.data, a.nodata),
                        b.nodata_mask if b.nodata_mask is not None else invalid_pixels(b.data, b.nodata)])
    dtype = str(np.result_type(np.dtype(a.dtype), np.dtype(b.dtype)))
    scale = compute_scaling(raw, invalid, dtype, scaling)
    return _scaled(raw, invalid, scale), scale, invalid


def _binary_mask(label: RasterImage) -> np.ndarray:
    """A change mask 0/1 from 0/255, 0/1 or an RGB label (any channel > 0 = change)."""
    return (label.data.max(axis=0) > 0).astype(np.uint8)


def read_pairs(
    root: PathLike,
    captions: PathLike | dict[str, dict[str, Any]] | None = None,
    band_names: Sequence[str] | None = None,
    sensor: str | None = None,
    scaling: str | float | Scaling = "auto",
) -> list[ChangePair]:
    """LEVIR-CD style pairs: `A/` before, `B/` after, optional `label/` (0/255 or 0/1 -> 0/1), optional
    `dates.json` ({file: [before, after]}); or `train/`, `val/`, `test/` sub-folders each in that layout
    (names then get the split prefix and `split` is set).

    Every band is kept (`band_names`: from the argument, the `sensor`, the files, else RGB for 3 bands);
    both images share one `Scaling` ("auto": uint8 /255). `captions` (a LEVIR-CC file or the dict of
    `read_levir_cc`) are attached to the pairs of the same name, with their split when none is known.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder: give the folder holding A/ (before), B/ (after) and label/")
    caps = read_levir_cc(captions) if captions is not None and not isinstance(captions, dict) else (captions or {})
    if not is_levir_cd(root):
        splits = [s for s in SPLITS if is_levir_cd(root / s)]
        if not splits:
            raise InputError(f"{root} has no A/ and B/ folders: change pairs need A/ (before), B/ (after) and "
                             "optionally label/, or train/, val/, test/ folders laid out so")
        out = []
        for split in splits:
            for p in read_pairs(root / split, caps, band_names, sensor, scaling):
                p.name, p.split = f"{split}/{p.name}", split
                p.meta["split"] = split
                out.append(p)
        return out
    a_files = {p.name: p for p in list_images(root / "A")}
    b_files = {p.name: p for p in list_images(root / "B")}
    if not a_files:
        raise EmptyInputError(f"{root / 'A'} holds no images: put the 'before' images there")
    unpaired = sorted(set(a_files) ^ set(b_files))
    if unpaired:
        raise InputError(
            f"{', '.join(unpaired[:5])} in {root} are in only one of A/ and B/: every before image needs an after "
            "image of the same name"
        )
    dates = _pair_dates(root)
    label_dir = root / "label"
    pairs = []
    for name in sorted(a_files):
        a, b = read_image(a_files[name]), read_image(b_files[name])
        if a.shape != b.shape:
            raise AlignmentError(f"A/{name} is {a.shape} but B/{name} is {b.shape}: the pair must have one size")
        if a.count != b.count:
            raise AlignmentError(f"A/{name} has {a.count} bands but B/{name} has {b.count}: give both images the "
                                 "same bands")
        mask = None
        if label_dir.is_dir():
            lp = label_dir / name
            if not lp.is_file():  # labels may be stored in another format (A/x.tif, label/x.png)
                lp = next((p for p in list_images(label_dir) if p.stem == _stem(name)), lp)
            if not lp.is_file():
                raise InputError(f"{lp} is missing: every pair needs a label, or remove label/ for unlabelled data")
            lab = read_image(lp)
            if lab.shape != a.shape:
                raise AlignmentError(f"label/{name} is {lab.shape} but A/{name} is {a.shape}: fix the label")
            mask = _binary_mask(lab)
        names, names_source = name_bands(a, band_names, None, sensor, root / "A" / name)
        both, scale, invalid = _scaled_pair(a, b, scaling)
        cap = caps.get(name) or caps.get(_stem(name)) or {}
        pairs.append(ChangePair(
            _stem(name), both[0], both[1], mask,
            meta={"paths": [str(a_files[name]), str(b_files[name])], "source": "levir-cd", "dtype": a.dtype,
                  "band_names_source": names_source},
            band_names=names, dates=dates.get(_stem(name)), captions=list(cap.get("captions", [])),
            split=cap.get("split"), scaling=scale, crs=a.crs, transform=a.transform, nodata_mask=invalid,
        ))
    return pairs


def read_levir_cd(root: PathLike, **kwargs: Any) -> list[ChangePair]:
    """LEVIR-CD style pairs (see `read_pairs`): `A/`, `B/`, `label/`, optional `dates.json` and splits."""
    return read_pairs(root, **kwargs)


# --- OSCD, original layout -----------------------------------------------------------------------
_S2_BAND_FILE = re.compile(r"(?:^|[_\-.])(B(?:0[1-9]|1[0-2]|8A))\.tiff?$", re.IGNORECASE)
_S2_10M = ("B02", "B03", "B04", "B08")
_OSCD_DATE = re.compile(r"date_([12])\s*:\s*(\S+)")


def is_oscd_city(folder: Path) -> bool:
    return (folder / "imgs_1").is_dir() and (folder / "imgs_2").is_dir()


def find_oscd_cities(root: PathLike) -> list[Path]:
    """City folders of OSCD's original layout under `root` (`root` itself when it is one)."""
    root = Path(root)
    if is_oscd_city(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_oscd_city(p)) if root.is_dir() else []


def _oscd_dates(city: Path) -> tuple[dt.date, dt.date] | None:
    path = city / "dates.txt"
    if not path.is_file():
        return None
    found = dict(_OSCD_DATE.findall(path.read_text(encoding="utf-8")))
    if set(found) != {"1", "2"}:
        raise DateError(f"{path} must hold two lines 'date_1: YYYYMMDD' and 'date_2: YYYYMMDD': fix the file")
    return (_frame_date(found["1"], f"{path} date_1"), _frame_date(found["2"], f"{path} date_2"))


def _oscd_band_files(folder: Path) -> dict[str, Path]:
    """{"B01": path, ...} for the Sentinel-2 band GeoTIFFs of one date folder."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = _S2_BAND_FILE.search(p.name)
        if m and p.is_file():
            out[m.group(1).upper()] = p
    return out


def _resample_plain(data: np.ndarray, shape: tuple[int, int], resampling: str) -> np.ndarray:
    """Resize `[C, h, w]` to `shape` over the same footprint (bands of one tile at 20 m or 60 m without
    georeferencing): the band's pixels are `shape / (h, w)` reference pixels wide."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    H, W = shape
    h, w = data.shape[1:]
    dst = np.zeros((data.shape[0], H, W), dtype=np.float32)
    reproject(data.astype(np.float32), dst, src_transform=Affine.scale(W / w, H / h), src_crs="EPSG:3857",
              dst_transform=Affine.identity(), dst_crs="EPSG:3857", resampling=getattr(Resampling, resampling))
    return dst


def _read_s2_date(folder: Path, resampling: str) -> tuple[RasterImage, list[str], list[dict[str, Any]]]:
    """Every Sentinel-2 band of one date folder on the 10 m grid: (image [C, H, W], band codes, records)."""
    files = _oscd_band_files(folder)
    ref_code = next((c for c in _S2_10M if c in files), None)
    if ref_code is None:
        raise InputError(f"{folder} holds no 10 m Sentinel-2 band (files named ..._B02.tif, _B03, _B04 or _B08): "
                         "give the band GeoTIFFs of the OSCD city")
    reference = read_image(files[ref_code])
    codes = [c for c in SENTINEL2_ORDER if c in files]
    bands, records = [], []
    for code in codes:
        img = reference if code == ref_code else read_image(files[code])
        if img.count != 1:
            raise InputError(f"{files[code]} has {img.count} bands: OSCD band files hold one band each")
        if img.shape == reference.shape and _same_grid(img, reference):
            data = img.data
        elif img.transform is not None and reference.transform is not None:
            data, _, record = align_to(img, reference, resampling)
            records.append({**(record or {}), "band": code})
        else:
            data = _resample_plain(img.data, reference.shape, resampling)
            records.append({"path": img.name, "band": code, "method": f"resize-{resampling}", "from_size": list(img.shape)})
        bands.append(data[0])
    data = np.stack(bands)  # [C, H, W] on the 10 m grid
    image = RasterImage(data, reference.crs, reference.transform, reference.nodata, reference.dtype, codes,
                        folder, invalid_pixels(data, reference.nodata))
    return image, codes, records


def _oscd_label(city: Path, labels: Path | None, search: list[Path]) -> Path | None:
    """`cm/cm.png` or `cm/<city>-cm.tif` in the city folder, in `labels/<city>/`, or in a sibling labels tree
    (the original download puts "... - Train Labels/<city>/cm" beside "... - Images/<city>")."""
    roots = [city] + ([labels / city.name] if labels is not None else [])
    roots += [p / city.name for base in search for p in sorted(base.iterdir()) if p.is_dir()]
    for r in roots:
        for name in ("cm.png", f"{city.name}-cm.tif", "cm.tif"):
            if (r / "cm" / name).is_file():
                return r / "cm" / name
    return None


def _oscd_mask(path: Path) -> np.ndarray:
    """OSCD labels: `cm.png` is 0/255; `<city>-cm.tif` is 1 = no change, 2 = change."""
    data = read_image(path).data.max(axis=0)
    if path.suffix.lower() in (".tif", ".tiff") and data.min() >= 1:
        return (data >= 2).astype(np.uint8)
    return (data > 0).astype(np.uint8)


def _oscd_splits(root: Path) -> dict[str, str]:
    """{city: "train" | "test"} from the `train.txt` / `test.txt` city lists of the original download."""
    out: dict[str, str] = {}
    for split in ("train", "test"):
        path = root / f"{split}.txt"
        if path.is_file():
            for city in re.split(r"[,\s]+", path.read_text(encoding="utf-8").strip()):
                if city:
                    out[city] = split
    return out


def read_oscd(
    root: PathLike,
    labels: PathLike | None = None,
    scaling: str | float | Scaling = 10000.0,
    resampling: str = "bilinear",
) -> list[ChangePair]:
    """OSCD in its original layout: one `ChangePair` per city with its 13 Sentinel-2 bands.

    A city folder holds `imgs_1/` and `imgs_2/` (one GeoTIFF per band, named `..._B01.tif` .. `_B8A` ..
    `_B12.tif`; `imgs_1_rect/`, `imgs_2_rect/` are used instead when present), `dates.txt` (`date_1:
    20170202`, `date_2: 20180327`) and the change map `cm/cm.png` (0/255) or `cm/<city>-cm.tif` (1/2).
    `root` is one city or a folder of cities (with `train.txt` / `test.txt` giving splits); the labels
    may sit in `labels/<city>/cm/` or in a labels tree beside `root`. Every band is brought onto the 10 m
    grid of B02/B03/B04/B08 (`resampling`); `scaling` defaults to 10000 (Sentinel-2 L1C reflectance).
    """
    root = Path(root)
    cities = find_oscd_cities(root)
    if not cities:
        raise InputError(f"{root} holds no OSCD city (a folder with imgs_1/ and imgs_2/): give the OSCD images "
                         "folder or one city")
    splits = _oscd_splits(root if root not in cities else root.parent)
    search = [] if labels is not None else [root.parent if root not in cities else root.parent.parent]
    pairs = []
    for city in cities:
        folders = [city / f"imgs_{i}_rect" if (city / f"imgs_{i}_rect").is_dir() else city / f"imgs_{i}" for i in (1, 2)]
        (a, codes_a, rec_a), (b, codes_b, rec_b) = (_read_s2_date(f, resampling) for f in folders)
        if codes_a != codes_b:
            raise AlignmentError(f"{folders[0]} has bands {codes_a} but {folders[1]} has {codes_b}: give both dates "
                                 "the same bands")
        if a.shape != b.shape:
            if a.transform is None or b.transform is None:
                raise AlignmentError(f"{folders[0]} is {a.shape} px but {folders[1]} is {b.shape}: OSCD dates of one "
                                     "city must share a grid")
            data, invalid_b, _ = align_to(b, a, resampling)
            b = RasterImage(data, a.crs, a.transform, b.nodata, b.dtype, codes_b, b.path, invalid_b)
        label = _oscd_label(city, Path(labels) if labels is not None else None, search)
        mask = None
        if label is not None:
            mask = _oscd_mask(label)
            if mask.shape != a.shape:
                raise AlignmentError(f"{label} is {mask.shape} px but the 10 m bands of {city.name} are {a.shape}: "
                                     "give the change map of this city")
        both, scale, invalid = _scaled_pair(a, b, scaling)
        pairs.append(ChangePair(
            city.name, both[0], both[1], mask,
            meta={"paths": [str(f) for f in folders], "label_path": str(label) if label else None, "source": "oscd",
                  "sentinel2_bands": codes_a, "band_names_source": "sentinel2 band files",
                  "resampled": rec_a + rec_b, "dtype": a.dtype},
            band_names=[SENTINEL2_BANDS[c] for c in codes_a], dates=_oscd_dates(city), split=splits.get(city.name),
            scaling=scale, crs=a.crs, transform=a.transform, nodata_mask=invalid,
        ))
    return pairs


# --- LEVIR-CC captions ---------------------------------------------------------------------------
def read_levir_cc(json_path: PathLike) -> dict[str, dict[str, Any]]:
    """LEVIR-CC captions: `{name: {"split": str, "captions": [str, ...]}}`.

    Reads `{"pairs": {name: {split, captions}}}` (../shared/data/levir_cc) or the original
    `LevirCCcaptions.json` (`{"images": [{"filename", "filepath", "sentences": [{"raw"|"tokens"}]}]}`).
    A folder reads and merges every `*.json` in it.
    """
    path = Path(json_path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise EmptyInputError(f"{path} holds no .json caption files")
        merged: dict[str, dict[str, Any]] = {}
        for f in files:
            merged.update(read_levir_cc(f))
        return merged
    if not path.is_file():
        raise InputError(f"{path} does not exist: give the LEVIR-CC captions JSON")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}): fix or re-download it") from None
    if isinstance(doc, dict) and isinstance(doc.get("pairs"), dict):
        return {name: {"split": v.get("split"), "captions": [str(c) for c in v.get("captions", [])]}
                for name, v in doc["pairs"].items()}
    if isinstance(doc, dict) and isinstance(doc.get("images"), list):
        out = {}
        for item in doc["images"]:
            caps = [" ".join(s["tokens"]) if s.get("tokens") else str(s.get("raw", "")).strip()
                    for s in item.get("sentences", [])]
            out[item["filename"]] = {"split": item.get("filepath") or item.get("split"), "captions": caps}
        return out
    raise InputError(f"{path} is not a LEVIR-CC caption file: expected {{\"pairs\": {{...}}}} or {{\"images\": [...]}}")


# --- one entry point: recognise a folder's layout ------------------------------------------------
LAYOUTS: dict[str, str] = {
    "sequence": "one sequence (a folder with sequence.json, or images whose names carry dates: 2019-09-04.tif)",
    "sequences": "a folder of sequence folders",
    "levir-cd": "change pairs A/ (before), B/ (after), optional label/, dates.json, train/ val/ test/",
    "oscd": "OSCD original: city folders with imgs_1/, imgs_2/ (Sentinel-2 band GeoTIFFs), cm/, dates.txt",
    "levir-cc": "LEVIR-CC captions: a .json ({\"pairs\": ...} or {\"images\": [...]}), with pairs in images/A, images/B",
    "collection": "a folder holding several of these (each sub-folder read by its own layout)",
}
_NOT_CAPTIONS = {"sequence.json", "dates.json"}


@dataclass
class DatasetContents:
    """What `read_dataset` found: sequences and/or change pairs, and the captions it read.

    layout:    one of `LAYOUTS` ("sequence", "sequences", "levir-cd", "oscd", "levir-cc", "collection").
    parts:     {sub-folder: layout} of a collection (its own path for the other layouts).
    skipped:   {sub-folder: why} for sub-folders of a collection that hold nothing readable.
    captions:  LEVIR-CC captions read ({name: {"split", "captions"}}); attached to `pairs` by name already.
    """

    root: Path
    layout: str
    sequences: list[SitsSequence] = field(default_factory=list)
    pairs: list[ChangePair] = field(default_factory=list)
    captions: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences) + len(self.pairs)

    def summary(self) -> str:
        """One line: the layout and what it holds."""
        text = f"{self.root}: {self.layout}, {len(self.sequences)} sequence(s), {len(self.pairs)} pair(s)"
        if self.captions:
            text += f", captions for {len(self.captions)} pair name(s)"
        return text + (f"; skipped {sorted(self.skipped)}" if self.skipped else "")


def _is_caption_json(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".json") or path.name in _NOT_CAPTIONS:
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(doc, dict) and (isinstance(doc.get("pairs"), dict) or isinstance(doc.get("images"), list))


def _caption_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.json")) if _is_caption_json(p)]


def _is_pair_folder(folder: Path) -> bool:
    return is_levir_cd(folder) or any(is_levir_cd(folder / s) for s in SPLITS)


def detect_layout(path: PathLike, _depth: int = 0) -> str:
    """The layout of `path` (a key of `LAYOUTS`), from its folder structure only (no image is read).

    An unknown layout raises a one-line `InputError` listing the layouts tamms knows.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a data folder or file")
    if path.is_file():
        if path.suffix.lower() == ".json":
            if _is_caption_json(path):
                return "levir-cc"
            return "sequence"  # read_sequence says what is wrong with a json that is no sequence.json
        if is_image(path):
            return "sequence"
        raise _unknown(path)
    if (path / "sequence.json").is_file():
        return "sequence"
    if _is_pair_folder(path):
        return "levir-cd"
    if is_oscd_city(path):
        return "oscd"
    captions = _caption_files(path)
    if captions:
        return "levir-cc"
    if list_images(path):
        return "sequence"
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if any(is_oscd_city(p) for p in subs):
        return "oscd"
    if _depth < 2:
        found = set()
        for sub in subs:
            try:
                found.add(detect_layout(sub, _depth + 1))
            except InputError:
                continue
        if found and found <= {"sequence", "sequences"}:
            return "sequences"
        if found:
            return "collection"
    raise _unknown(path)


def _unknown(path: Path) -> InputError:
    known = "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items() if k != "collection")
    return InputError(f"{path} is in no layout tamms knows ({known}): arrange the data in one of them")


def attach_captions(pairs: Sequence[ChangePair], captions: dict[str, dict[str, Any]]) -> int:
    """Give each pair without captions the LEVIR-CC captions of its name (`name`, `name.png` or the name
    without a split prefix), and their split when it has none. Returns how many pairs got captions."""
    found = 0
    for pair in pairs:
        if pair.captions:
            continue
        base = pair.name.rsplit("/", 1)[-1]
        entry = next((captions[k] for k in (pair.name, base, f"{base}.png") if k in captions), None)
        if entry is None:
            entry = next((v for k, v in captions.items() if _stem(k) == base), None) if len(captions) < 64 else None
        if entry:
            pair.captions = list(entry.get("captions", []))
            pair.split = pair.split or entry.get("split")
            found += 1
    return found


def read_dataset(
    path: PathLike,
    captions: PathLike | dict[str, dict[str, Any]] | None = None,
    bands: Sequence[str] | None = None,
    band_names: Sequence[str] | None = None,
    sensor: str | None = None,
    scaling: str | float | Scaling | None = None,
    labels: PathLike | None = None,
) -> DatasetContents:
    """Read whatever `path` holds, recognising its layout (`detect_layout`, `LAYOUTS`).

    path:        a sequence folder or file, a folder of sequences, LEVIR-CD style pairs, OSCD's original
                 layout, a LEVIR-CC captions file (or folder with its `images/`), or a folder of these.
    captions:    a LEVIR-CC captions file (or its dict) to attach to the pairs of the same name.
    bands:       band names to keep, in this order (`keep_bands`): what a model's config asks for. A band
                 the data lacks is an error naming the missing and the present bands.
    band_names:  names of the files' bands when they do not say (see `name_bands`); `sensor` likewise.
    scaling:     as in `read_sequence` (default "auto"; 10000 for OSCD's Sentinel-2 bands).
    labels:      OSCD: the folder holding `<city>/cm/` when the change maps are kept apart.
    """
    path = Path(path)
    layout = detect_layout(path)
    contents = DatasetContents(root=path, layout=layout)
    if captions is not None:
        contents.captions = captions if isinstance(captions, dict) else read_levir_cc(captions)
    seq_kw: dict[str, Any] = {"band_names": band_names, "sensor": sensor}
    if scaling is not None:
        seq_kw["scaling"] = scaling
    pair_kw = {"band_names": band_names, "sensor": sensor, "scaling": "auto" if scaling is None else scaling}

    if layout == "sequence":
        contents.sequences = [read_sequence(path, **seq_kw)]
    elif layout == "sequences":
        contents.sequences = [read_sequence(p, **seq_kw) for p in find_sequence_folders(path)]
    elif layout == "levir-cd":
        contents.pairs = read_pairs(path, contents.captions or None, **pair_kw)
    elif layout == "oscd":
        contents.pairs = read_oscd(path, labels=labels, **({} if scaling is None else {"scaling": scaling}))
    elif layout == "levir-cc":
        files = [path] if path.is_file() else _caption_files(path)
        for f in files:
            contents.captions.update(read_levir_cc(f))
        base = path.parent if path.is_file() else path
        images = base / "images"
        if _is_pair_folder(images):
            contents.pairs = read_pairs(images, contents.captions, **pair_kw)
    else:  # collection: every sub-folder by its own layout
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                part = read_dataset(sub, captions, None, band_names, sensor, scaling, labels)
            except InputError as exc:
                contents.skipped[sub.name] = str(exc)
                continue
            contents.parts[sub.name] = part.layout
            for item in (*part.sequences, *part.pairs):
                item.meta.setdefault("dataset", sub.name)  # names may repeat across datasets
            contents.sequences += part.sequences
            contents.pairs += part.pairs
            contents.captions.update(part.captions)
            contents.skipped.update({f"{sub.name}/{k}": v for k, v in part.skipped.items()})
    if layout != "collection":
        contents.parts[path.name] = layout
    else:  # captions found in one part name pairs of another (LEVIR-CC beside LEVIR-CD)
        attach_captions(contents.pairs, contents.captions)
    if bands is not None:
        contents.sequences = [keep_bands(s, bands) for s in contents.sequences]
        contents.pairs = [keep_bands(p, bands) for p in contents.pairs]
    return contents

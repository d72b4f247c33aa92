"""Read satellite image time series from disk.

- `read_image`: one GeoTIFF / PNG / JPEG as raw values with its georeferencing and nodata.
- `read_sequence`: a folder with `sequence.json` (DESIGN.md schema, plus the synthetic world's extra
  keys), a folder of images whose names carry dates, or an explicit list of files and dates. Frames are
  sorted by date, brought onto the last (newest) frame's grid, masked where nodata/NaN, band-selected and scaled
  to [0, 1] with a recorded `Scaling`.
- `read_sequences`: every sequence under a folder.
- `read_levir_cd` (A/, B/, label/) and `read_levir_cc` (change captions JSON).

Every problem with the input raises a `TammsError` subclass whose message names the file and the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tamms.data.sequence import ChangePair, Scaling, SitsSequence, date_from_filename, parse_date
from tamms.data.transforms import apply_scaling, compute_scaling, remap_rgb, resolve_bands
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


def is_levir_cd(folder: Path) -> bool:
    return (folder / "A").is_dir() and (folder / "B").is_dir()


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


def read_sequence(
    path: PathLike | Sequence[PathLike],
    bands: Sequence[int | str] | None = None,
    scaling: str | float | Scaling = "auto",
    dates: Sequence[Any] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    resampling: str = "nearest",
) -> SitsSequence:
    """Read one sequence of dated frames into a `SitsSequence` (frames in [0, 1], sorted by date).

    path:        a folder with `sequence.json`, the json file itself, a folder of images whose names
                 carry dates, or a list of image files (dates from `dates` or from the names).
    bands:       channels to keep, by 0-based index or by name (`band_names`); default all.
    scaling:     "auto", "percentile" (per band, `percentiles`), a fixed divisor, "none", or a `Scaling`.
    dates:       explicit dates, one per file (for a list of files, or a folder's images sorted by name).
    resampling:  how frames on a slightly different grid are brought onto the last frame's grid (the grid a
                 forecast or change map is written on, so the newest frame is never resampled).
    """
    listing = _listing(path, dates)
    frames = sorted(listing.frames, key=lambda f: f.date)  # dates parsed once, frames sorted by date
    where = listing.json_path or listing.root
    _check_duplicates(frames, where)
    doc = listing.doc

    images = [read_image(f.path) for f in frames]
    first = images[0]
    names = doc.get("band_names") or first.band_names
    if names is not None and len(names) != first.count:
        raise InputError(f"{where} gives {len(names)} band_names but {first.name} has {first.count} bands: "
                         "give one name per band")
    idx = resolve_bands(bands, names, first.count)
    for img in images[1:]:
        if img.count != first.count and bands is None:
            raise AlignmentError(
                f"{img.name} has {img.count} bands but {first.name} has {first.count}: give bands=[...] "
                "(--bands) to use the bands every frame has, or re-export the frames with the same bands"
            )
    images = [_select(img, idx) for img in images]
    band_names = None if names is None else [names[i] for i in idx]

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
             "classes", "split"}
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
        band_names=band_names,
        rgb_bands=remap_rgb(rgb, idx) if (rgb is not None or len(idx) >= 3) else None,
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


# --- LEVIR-CD and LEVIR-CC -----------------------------------------------------------------------
def _rgb01(img: RasterImage) -> np.ndarray:
    data = img.data[:3] if img.count >= 3 else np.repeat(img.data[:1], 3, axis=0)
    divisor = 255.0 if img.dtype == "uint8" else (65535.0 if img.dtype == "uint16" else max(float(data.max()), 1.0))
    return np.clip(data / divisor, 0, 1).astype(np.float32)


def read_levir_cd(root: PathLike) -> list[ChangePair]:
    """LEVIR-CD style pairs: `A/` before, `B/` after, `label/` change mask (0/255 or 0/1 -> 0/1).

    `root` may also hold `train/`, `val/`, `test/` each in that layout; names then get the split prefix.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder: give the LEVIR-CD folder holding A/, B/ and label/")
    if not is_levir_cd(root):
        splits = [s for s in ("train", "val", "test") if is_levir_cd(root / s)]
        if splits:
            return [ChangePair(f"{s}/{p.name}", p.before, p.after, p.mask, {**p.meta, "split": s})
                    for s in splits for p in read_levir_cd(root / s)]
        raise InputError(f"{root} has no A/ and B/ folders: LEVIR-CD needs A/ (before), B/ (after) and label/")
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
    label_dir = root / "label"
    pairs = []
    for name in sorted(a_files):
        a, b = read_image(a_files[name]), read_image(b_files[name])
        if a.shape != b.shape:
            raise AlignmentError(f"A/{name} is {a.shape} but B/{name} is {b.shape}: the pair must have one size")
        mask = None
        if label_dir.is_dir():
            lp = label_dir / name
            if not lp.is_file():
                raise InputError(f"{lp} is missing: every pair needs a label, or remove label/ for unlabelled data")
            lab = read_image(lp)
            if lab.shape != a.shape:
                raise AlignmentError(f"label/{name} is {lab.shape} but A/{name} is {a.shape}: fix the label")
            mask = (lab.data.max(axis=0) > 0).astype(np.uint8)
        pairs.append(ChangePair(Path(name).stem, _rgb01(a), _rgb01(b), mask,
                                {"paths": [str(a_files[name]), str(b_files[name])], "source": "levir-cd"}))
    return pairs


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

"""`tamms detect`: where did it change (training is `tamms train detect`, in cli/train.py).

    tamms detect BEFORE.tif AFTER.tif --out change.tif [--semantic] [--categories "building,road"] [--model NAME]
    tamms detect SEQUENCE_FOLDER --out change_folder/        # every pair of consecutive frames

The mask GeoTIFF keeps the georeferencing of the input grid (CRS and transform of the last frame; the readers
put every frame on one grid), and a PNG overlay of the change on the after image is written beside it.
Heavy libraries are imported inside the commands so `tamms --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

NO_DATA = 255  # mask value where an input pixel had no data


def _write_mask_geotiff(path: Path, bands: "list", names: list[str], seq, overwrite: bool,
                        tags: dict | None = None, invalid=None) -> Path:
    """uint8 bands `[H, W]` on the grid of `seq` (CRS + transform copied), nodata 255 where an input was invalid."""
    import warnings

    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    from tamms.utils import atomic_output

    data = np.stack([np.asarray(b, dtype=np.uint8) for b in bands])  # [C, H, W]
    if invalid is not None:
        data[:, invalid] = NO_DATA
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": "uint8", "compress": "deflate", "nodata": NO_DATA}
    if seq.crs is not None:
        profile["crs"] = seq.crs
    if seq.transform is not None:
        profile["transform"] = Affine(*seq.transform)
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(names, start=1):
                dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**{k: json.dumps(v) if not isinstance(v, str) else v for k, v in tags.items()})
    return path


def change_overlay(after_rgb, mask, valid=None):
    """after image `[3, H, W]` in [0, 1] (display-stretched) with changed pixels tinted red: `[3, H, W]`."""
    import numpy as np

    from tamms.data.transforms import display_stretch

    rgb = display_stretch(np.asarray(after_rgb, np.float32), valid=valid)
    m = np.asarray(mask).astype(bool)
    out = rgb.copy()
    out[0, m] = 0.45 * rgb[0, m] + 0.55
    out[1, m] = 0.45 * rgb[1, m]
    out[2, m] = 0.45 * rgb[2, m]
    return out


def _write_pair(out_tif: Path, seq, index: int, result, overwrite: bool, overlay: bool) -> list[Path]:
    """Write pair `index` of `result` (mask [+ semantic bands]) and its overlay PNG; returns the paths."""
    import numpy as np

    from tamms.data.writers import write_png

    mask = result.mask[index].cpu().numpy().astype(np.uint8)
    invalid = None
    if seq.nodata_mask is not None:
        invalid = seq.nodata_mask[index] | seq.nodata_mask[index + 1]
    bands, names = [mask], ["change"]
    tags = {"detector": result.detector, "before": str(seq.dates[index]), "after": str(seq.dates[index + 1])}
    if result.semantic_before is not None:
        # SECOND-style semantic change: class + 1 where changed, 0 where unchanged
        for key in ("semantic_before", "semantic_after"):
            cls = getattr(result, key)[index].cpu().numpy().astype(np.int64)
            bands.append(np.where(mask > 0, cls + 1, 0).astype(np.uint8))
        names += ["class_before", "class_after"]
        tags["classes"] = {str(i + 1): n for i, n in enumerate(result.class_names)}
    if result.responses:
        tags["response"] = result.responses[index]
    written = [_write_mask_geotiff(out_tif, bands, names, seq, overwrite, tags, invalid)]
    if overlay:
        rgb = seq.frames[index + 1][list(seq.rgb_bands)] if seq.rgb_bands else seq.frames[index + 1][:3]
        valid = None if seq.nodata_mask is None else ~seq.nodata_mask[index + 1][None]
        png = out_tif.with_name(out_tif.stem + "_overlay.png")
        written.append(write_png(png, change_overlay(rgb, mask, valid), overwrite=overwrite))
    return written


def detect_command(
    inputs: list[Path] = typer.Argument(..., help="BEFORE AFTER images (GeoTIFF/PNG/JPEG), or one sequence folder "
                                                  "(change between every pair of consecutive frames)."),
    out: Path = typer.Option(..., "--out", "-o", help="Mask GeoTIFF to write (two images), or an output folder "
                                                      "(a sequence)."),
    semantic: bool = typer.Option(False, "--semantic", help="Also write the land-cover class before and after "
                                                           "(unichange only)."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Only changes of these classes, comma "
                                             "separated: \"building,road\" (unichange only)."),
    model: str = typer.Option("default", "--model", "-m", help="default (siamese-real: trained on real "
                                                             "pairs too) | siamese | cva | unichange | a weights folder."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write a PNG of the change on the after image."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Detect where the place changed; the mask keeps the input's georeferencing."""
    from tamms.errors import InputError, OutputExistsError

    if len(inputs) not in (1, 2):
        raise InputError(f"got {len(inputs)} inputs: give BEFORE AFTER images, or one sequence folder")
    cats = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    if len(inputs) == 2:
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise InputError(f"--out {out} must be a GeoTIFF path (.tif) for a pair of images")
        if out.exists() and not overwrite:  # fail before the work
            raise OutputExistsError(f"{out} already exists: choose another --out path or pass --overwrite")
    from tamms.data.readers import read_sequence
    from tamms.pipelines.detect import DetectPipeline

    if len(inputs) == 2:
        for p in inputs:
            if not p.is_file():
                raise InputError(f"{p} is not a file: give two image files BEFORE AFTER")
        # explicit dates keep the order the user gave, whatever the file names say
        seq = read_sequence(list(inputs), dates=["2000-01-01", "2000-01-02"])
    else:
        seq = read_sequence(inputs[0])
    from tamms.registry import load_detector

    pipe = DetectPipeline(load_detector(model))
    result = pipe(seq, semantic=semantic, categories=cats)
    if len(inputs) == 2:
        written = _write_pair(out, seq, 0, result, overwrite, overlay)
        changed = float(result.mask[0].float().mean())
        typer.echo(f"{result.detector}: {changed:.1%} of the pixels changed -> {', '.join(map(str, written))}")
        return
    out.mkdir(parents=True, exist_ok=True)
    summary = {"detector": result.detector, "source": str(inputs[0]), "pairs": []}
    for i in range(len(seq.dates) - 1):
        d0, d1 = seq.dates[i], seq.dates[i + 1]
        tif = out / f"change_{d0}_{d1}.tif"
        _write_pair(tif, seq, i, result, overwrite, overlay)
        summary["pairs"].append({"before": str(d0), "after": str(d1), "mask": tif.name,
                                 "changed_fraction": round(float(result.mask[i].float().mean()), 5)})
        typer.echo(f"{d0} -> {d1}: {summary['pairs'][-1]['changed_fraction']:.1%} changed -> {tif}")
    from tamms.utils import write_text_atomic

    write_text_atomic(out / "detect_summary.json", json.dumps(summary, indent=2), overwrite=overwrite)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    app.command("detect")(detect_command)  # training: `tamms train detect` (tamms.cli.train)

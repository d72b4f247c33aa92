"""`tamms evaluate`: score captions, forecasts and change maps against references.

    tamms evaluate captions  --pred P.json --refs R.json [--no-meteor] [--json OUT]
    tamms evaluate forecasts --pred DIR --target DIR [--history DIR] [--rgb-bands 0,1,2] [--json OUT]
    tamms evaluate changes   --pred DIR --target DIR [--num-classes K] [--json OUT]

Captions: P.json maps each id to its candidate string; R.json maps each id to its list of reference
strings (a LEVIR-CC style file {"pairs": {id: {"captions": [...]}}} is accepted too).

All three are computed by `tamms.evaluation` (the module the demo and the benchmarks use too); every
F1 and IoU is pooled over all pixels of all items (per-item means appear only as `*_per_case_mean`).

Forecasts: images are matched by file name between --pred and --target (GeoTIFF, PNG, JPEG). Every
image of a name is scaled to [0, 1] with the Scaling computed from its target ("auto": uint8 /255,
other integers per-band 2-98 percentiles, ...; or --scaling), so prediction and truth share one mapping.
--history DIR holds the history frames per name: `DIR/last/<name>` = I_t (the last observed frame) and,
optionally, `DIR/prev/<name>` = I_{t-1}. With last/ the future-change F1 is computed; with prev/ too, TCS.

Changes: binary masks matched by file name; a pixel is change when its (first-band) value is > 0;
pixels equal to a file's nodata value (e.g. 255 in `tamms detect` GeoTIFFs) are left out. With
--num-classes K the values are semantic change classes (0 = no change) and the SECOND metrics are added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

evaluate_app = typer.Typer(help="Score captions, forecasts and change maps against references (table + JSON).",
                           no_args_is_help=True)


# ------------------------------------------------------------------------------------------------ helpers
def _print_table(title: str, rows: list[tuple[str, Any]], notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        if value is None:
            text = "n/a"
        elif isinstance(value, float):
            text = f"{value:.4f}"
        else:
            text = str(value)
        table.add_row(name, text)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def _write_json(out: Optional[Path], payload: dict, overwrite: bool) -> None:
    if out is None:
        return
    from tamms.utils import write_text_atomic

    def clean(value):  # JSON has no inf/nan: write them as strings
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            return str(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    write_text_atomic(out, json.dumps(clean(payload), indent=1) + "\n", overwrite=overwrite)
    typer.echo(f"wrote {out}")


def _load_json(path: Path, what: str) -> Any:
    from tamms.errors import InputError

    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist: check the path")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} file {path} is not valid JSON ({exc}); fix or regenerate it") from None


def load_caption_files(pred: Path, refs: Path) -> tuple[dict, dict]:
    """({id: candidate}, {id: [references]}) from the two JSON files, with clear errors."""
    from tamms.errors import InputError

    cands, references = _load_json(pred, "prediction"), _load_json(refs, "reference")
    if isinstance(references, dict) and isinstance(references.get("pairs"), dict):  # LEVIR-CC layout
        references = {k: v["captions"] if isinstance(v, dict) else v for k, v in references["pairs"].items()}
    if not isinstance(cands, dict) or not isinstance(references, dict):
        raise InputError("--pred must map each id to a string and --refs each id to a list of strings (JSON objects)")
    fixed = {}
    for key, value in cands.items():
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        if not isinstance(value, str):
            raise InputError(f"prediction {key!r} in {pred} must be one string, got {type(value).__name__}")
        fixed[key] = value
    for key, value in references.items():
        if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"references of {key!r} in {refs} must be a list of strings")
    return fixed, references


def _images_by_name(folder: Path, what: str) -> dict[str, Path]:
    from tamms.data.readers import list_images
    from tamms.errors import EmptyInputError, InputError

    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} does not exist: check the path")
    found = {p.name: p for p in list_images(folder)}
    if not found:
        raise EmptyInputError(f"{what} folder {folder} holds no images (.tif, .png, .jpg)")
    return found


def _match(pred: dict[str, Path], target: dict[str, Path], pred_dir: Path, target_dir: Path) -> list[str]:
    from tamms.errors import InputError

    missing, extra = sorted(set(target) - set(pred)), sorted(set(pred) - set(target))
    if missing or extra:
        def show(names):
            return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")

        raise InputError(f"file names differ: {len(missing)} targets without prediction in {pred_dir} "
                         f"({show(missing)}), {len(extra)} predictions without target in {target_dir} "
                         f"({show(extra)}); give one prediction per target, with the same file name")
    return sorted(target)


# ----------------------------------------------------------------------------------------------- captions
@evaluate_app.command("captions")
def captions_command(
    pred: Path = typer.Option(..., "--pred", help="JSON {id: candidate caption}."),
    refs: Path = typer.Option(..., "--refs", help="JSON {id: [reference captions]} (or LEVIR-CC {pairs: ...})."),
    meteor: bool = typer.Option(True, "--meteor/--no-meteor", help="METEOR through the jar (needs Java)."),
    java_tokenizer: bool = typer.Option(False, "--java-tokenizer",
                                        help="Tokenise every caption with the Java PTB tokenizer (slower)."),
    out: Optional[Path] = typer.Option(None, "--json", help="Write every number and the settings here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (COCO caption evaluation) and caption lengths."""
    from tamms.evaluation import caption_evaluation
    from tamms.metrics.text import CAPTION_KEYS

    cands, references = load_caption_files(pred, refs)
    result = caption_evaluation(cands, references, meteor=meteor,
                                use_java_tokenizer=True if java_tokenizer else None)
    info = result.settings
    notes = [f"{info['n']} captions; tokenizer: {info['tokenizer']}; METEOR: {info['METEOR']}"]
    _print_table("caption metrics (COCO evaluation, fractions)", [(k, result.scores[k]) for k in CAPTION_KEYS], notes)
    _write_json(out, {"task": "captions", "scores": result.scores, "settings": info,
                      "pred": str(pred), "refs": str(refs)}, overwrite)


# ---------------------------------------------------------------------------------------------- forecasts
def _parse_bands(text: str) -> tuple[int, int, int]:
    from tamms.errors import InputError

    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) != 3:
        raise InputError(f"--rgb-bands must be three comma-separated band indices like 0,1,2; got {text!r}")
    return bands  # type: ignore[return-value]


def _parse_scaling(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _load_scaled(paths: list[Path], scaling_option, name: str):
    """Read the images of one name, scale all with the Scaling of the FIRST (the target): `[N, C, H, W]`."""
    import numpy as np

    from tamms.data.readers import read_image
    from tamms.data.transforms import compute_scaling
    from tamms.errors import AlignmentError

    images = [read_image(p) for p in paths]
    shapes = {im.data.shape for im in images}
    if len(shapes) != 1:
        detail = ", ".join(f"{p.parent.name}/{p.name}: {im.data.shape}" for p, im in zip(paths, images))
        raise AlignmentError(f"images of {name!r} differ in bands or size ({detail}); "
                             "every image of one name must be on the same grid")
    target = images[0]
    scaling = compute_scaling(target.data[None], target.nodata_mask[None] if target.nodata_mask is not None else None,
                              target.dtype, scaling_option)
    return np.stack([scaling.apply(im.data) for im in images]), scaling, target.nodata_mask


@evaluate_app.command("forecasts")
def forecasts_command(
    pred: Path = typer.Option(..., "--pred", help="Folder of forecast images."),
    target: Path = typer.Option(..., "--target", help="Folder of true next images (same file names)."),
    history: Optional[Path] = typer.Option(None, "--history",
                                           help="Folder with last/<name> (I_t) and prev/<name> (I_t-1) for TCS."),
    rgb_bands: str = typer.Option("0,1,2", "--rgb-bands", help="Bands shown as RGB (GSSIM, LPIPS, FID)."),
    scaling: str = typer.Option("auto", "--scaling", help="auto | percentile | a divisor (e.g. 10000)."),
    detector: str = typer.Option("default", "--detector", help="Change detector inside TCS and the future-change F1: "
                                  "default (siamese-real), siamese (the synthetic world's), unichange, cva."),
    out: Optional[Path] = typer.Option(None, "--json", help="Write every number and the settings here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """PSNR, SSIM, GSSIM, L1, MSE, LPIPS, FID (when their weights are present), TCS and future-change F1."""
    import torch

    from tamms.errors import InputError
    from tamms.evaluation import ForecastEvaluation, load_change_detector

    bands = _parse_bands(rgb_bands)
    scaling_option = _parse_scaling(scaling)
    pred_files, target_files = _images_by_name(pred, "prediction"), _images_by_name(target, "target")
    names = _match(pred_files, target_files, pred, target)
    last_files = prev_files = None
    if history is not None:
        if not (history / "last").is_dir():
            raise InputError(f"--history {history} must contain last/<name> (I_t) and optionally prev/<name> "
                             "(I_t-1), one image per forecast name")
        last_files = _images_by_name(history / "last", "history last")
        _match(last_files, target_files, history / "last", target)
        if (history / "prev").is_dir():
            prev_files = _images_by_name(history / "prev", "history prev")
            _match(prev_files, target_files, history / "prev", target)
    change_detector = load_change_detector(detector) if last_files else None

    evaluation = ForecastEvaluation(change_detector, rgb_bands=bands)
    for name in names:
        paths = [target_files[name], pred_files[name]]
        if last_files:
            paths.append(last_files[name])
        if prev_files:
            paths.append(prev_files[name])
        stack, _, _ = _load_scaled(paths, scaling_option, name)
        frames = torch.from_numpy(stack)  # [N, C, H, W]: target, pred, (last), (prev)
        evaluation.add(name, frames[1], frames[0], last=frames[2] if last_files else None,
                       prev=frames[3] if prev_files else None)
    result = evaluation.result()
    settings = {**result.settings, "scaling": scaling, "history": str(history) if history else None}
    rows = [(k, result.scores[k]) for k in FORECAST_ROWS if k in result.scores]
    notes = [f"{len(names)} images; change detector: {settings['detector'] or 'none (no --history)'}; "
             "future-change F1 pooled over all pixels", *result.notes]
    _print_table("forecast metrics", rows, notes)
    _write_json(out, {"task": "forecasts", "scores": result.scores, "counts": result.counts,
                      "per_item": result.per_case, "settings": settings, "notes": notes}, overwrite)


FORECAST_ROWS = ["PSNR", "SSIM", "GSSIM", "L1", "MSE", "LPIPS", "FID", "FID-64", "SPS", "ACS", "TCS",
                 "future_change_F1", "future_change_F1_per_case_mean"]


# ------------------------------------------------------------------------------------------------ changes
def _read_mask(path: Path):
    """(values int64 [H, W] of the first band, valid bool [H, W])."""
    import numpy as np

    from tamms.data.readers import read_image

    image = read_image(path)
    values = image.data[0]
    valid = np.ones(values.shape, dtype=bool) if image.nodata is None else values != image.nodata
    return values.astype(np.int64), valid


@evaluate_app.command("changes")
def changes_command(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted change masks."),
    target: Path = typer.Option(..., "--target", help="Folder of true change masks (same file names)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes",
                                              help="Semantic change: class ids 0..K-1 (0 = no change)."),
    out: Optional[Path] = typer.Option(None, "--json", help="Write every number and the settings here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Precision, recall, F1, IoU, OA, kappa (and SECOND mIoU, SeK, Fscd with --num-classes)."""
    from tamms.errors import AlignmentError
    from tamms.evaluation import ChangeEvaluation

    pred_files, target_files = _images_by_name(pred, "prediction"), _images_by_name(target, "target")
    names = _match(pred_files, target_files, pred, target)
    evaluation = ChangeEvaluation(num_classes)
    for name in names:
        p, p_valid = _read_mask(pred_files[name])
        t, t_valid = _read_mask(target_files[name])
        if p.shape != t.shape:
            raise AlignmentError(f"{name}: prediction is {p.shape[1]}x{p.shape[0]} px but the target is "
                                 f"{t.shape[1]}x{t.shape[0]}; predict on the target grid")
        evaluation.add(name, p, t, valid=p_valid & t_valid)
    result = evaluation.result()
    notes = [f"{len(names)} mask pairs; change = value > 0; nodata pixels left out; F1, IoU, kappa from the "
             "confusion counts pooled over all pixels (per-case means named so)"]
    _print_table("change detection metrics", list(result.scores.items()), notes)
    _write_json(out, {"task": "changes", "scores": result.scores, "per_item": result.per_case,
                      "confusion": result.counts, "settings": result.settings}, overwrite)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")

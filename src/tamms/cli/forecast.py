"""`tamms forecast`: the image at a future date (training is `tamms train forecast`, in cli/train.py).

Heavy libraries are imported inside the commands so `tamms --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _outputs(out: Path, samples: int) -> tuple[Path, Path | None, Path]:
    spread = out.with_name(out.stem + "_spread" + out.suffix) if samples > 1 else None
    return out, spread, out.with_suffix(".png")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast_command(
        sequence_dir: Path = typer.Argument(..., help="A sequence folder (sequence.json) or a folder of dated images."),
        date: list[str] = typer.Option(..., "--date", help="Target date YYYY-MM-DD; repeat for an autoregressive "
                                                           "rollout (the file holds the last date)."),
        out: Path = typer.Option(..., "--out", help="GeoTIFF to write (+ FILE_spread.tif when --samples > 1, "
                                                   "+ FILE.png preview)."),
        samples: int = typer.Option(1, "--samples", help="Number of forecasts; the file holds their mean."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps of the diffusion models "
                                            "(default: the weights' setting); with --strength < 1 that share of "
                                            "them runs."),
        seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same forecast."),
        model: str = typer.Option("tamms", "--model", help="tamms, tamms-no-semantic, tamms-no-text, "
                                                           "tamms-base-control, tamms-trend, persistence, linear-trend, "
                                                           "simvp, convlstm, change-trend, satjepa, satjepa-caption"),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Weights folder (default: the shipped ones)."),
        sampler: str = typer.Option("ddim", "--sampler", help="ddim | dpm (DPM-Solver++)."),
        strength: Optional[float] = typer.Option(None, "--strength", help="Diffusion models: 1 = start from pure "
                                                 "noise, < 1 = from the start forecast noised that far (default: the "
                                                 "weights' setting). `--strength 1 --steps 2`: a smoother forecast "
                                                 "that keeps real scenes' structure better but places less change "
                                                 "(docs/forecast.md)."),
        start_from: Optional[str] = typer.Option(None, "--start-from", help="Diffusion models, strength < 1: the "
                                                 "forecaster whose forecast the sampler starts from (a name or "
                                                 "folder, or last-frame; default: the weights' setting, change-trend "
                                                 "for the shipped tamms)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    ) -> None:
        """Forecast the image of SEQUENCE_DIR at --date (GeoTIFF on the input's grid, PNG preview)."""
        from tamms.errors import InputError, OutputExistsError

        if samples < 1 or (steps is not None and steps < 1):
            raise InputError("--samples and --steps must be at least 1")
        files = [p for p in _outputs(out, samples) if p is not None]
        for p in files:  # fail before any heavy work
            if p.exists() and not overwrite:
                raise OutputExistsError(f"{p} already exists: choose another --out or pass --overwrite")
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise InputError(f"--out {out} must end in .tif or .tiff (a GeoTIFF is written)")
        from tamms.registry import FORECAST_MODELS

        if weights is None and model not in FORECAST_MODELS and not Path(model).is_dir():
            raise InputError(f"--model {model!r} is not a forecaster here: choose one of "
                             f"{', '.join(sorted(FORECAST_MODELS))}, or give a weights folder with --weights")

        import numpy as np

        from tamms.data.readers import read_sequence
        from tamms.data.transforms import display_stretch
        from tamms.data.writers import write_geotiff, write_png
        from tamms.pipelines.forecast import ForecastPipeline

        seq = read_sequence(sequence_dir)
        start = "default" if start_from is None else (None if start_from == "last-frame" else start_from)
        pipe = ForecastPipeline.from_pretrained(str(weights) if weights else model, model=model, scheduler=sampler,
                                                strength=strength, start_from=start)
        result = pipe(seq, date, num_samples=samples, num_inference_steps=steps, seed=seed)
        forecast = result.mean[0].numpy()  # [3, H, W] in [0, 1]: the RGB the model forecast
        every_band = result.bands[0].numpy() if result.bands is not None else forecast  # [C_in, H, W]
        tif, spread_tif, png = _outputs(out, samples)
        nodata = seq.nodata_mask[-1] if seq.nodata_mask is not None and seq.meta.get("nodata") is not None else None
        # every input band, in the input's order, dtype, scaling, nodata and grid
        write_geotiff(tif, every_band, reference=seq, overwrite=overwrite, nodata_mask=nodata)
        if spread_tif is not None:
            write_geotiff(spread_tif, result.spread[0].numpy(), reference=seq, overwrite=overwrite, scale_back=False)
        # the preview uses one stretch for the last input frame and the forecast, so they compare
        stretched = display_stretch(np.stack([seq.rgb()[-1], forecast]))
        write_png(png, np.concatenate([stretched[0], stretched[1]], axis=2), overwrite=overwrite)
        typer.echo(f"{pipe.model.name}: forecast for {result.target_dates[0]} -> {tif}"
                   + (f", spread -> {spread_tif}" if spread_tif else "") + f", preview (last frame | forecast) -> {png}")

"""Every model `tamms` can load by name: forecasters, the describer, change detectors.

A name is a shipped weights folder `src/tamms/weights/<name>/` (config.json + model.safetensors, see
`tamms.models.base`) or a model that needs no weights. Loaders take an optional weights folder instead.

Forecasters (`FORECAST_MODELS`, a dict name -> loader returning a `tamms.pipelines.forecast.ForecastModel`):

  tamms                 frozen U-Net (weights/tamms-unet/) + full ECM (structural + semantic + text + temporal), stage 3
  tamms-no-semantic     stages 2-3 retrained with semantic fusion off (TAMMs table 2 "w/o Semantic Fusion")
  tamms-no-text         stages 2-3 retrained with text guidance off ("w/o Text Guidance")
  tamms-base-control    the stage-1 ECM: structural path only ("Base Control Block")
  tamms-trend           a stage-1 ECM that also reads change-trend's forecast as a frame (`SFCIConfig.trend_from`)
  persistence           copy the last frame
  linear-trend          per-pixel least-squares line over the history, at the target date
  simvp, convlstm       learned deterministic baselines
  change-trend          where the detected change goes next and what it becomes (not in the papers; issue 15)
  satjepa               Sat-JEPA-Diff, coarse-RGB conditioning
  satjepa-caption       Sat-JEPA-Diff, caption-guided (captions from the history images)

Add one with `register_forecast_model(name, loader)`.

Change detectors (`DETECTORS`): "cva" (classical), "siamese", "siamese-real", "unichange"; "default" is
`DEFAULT_DETECTOR`, the detector chosen on real validation scenes and the default `C` of the TCS metric (TAMMs
sec. 2.3; the paper used P2V-CD). Its choice is measured, not assumed: see benchmarks/results/detect_real.md. The
synthetic-world benchmarks name their `C` ("siamese") explicitly.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from tamms.errors import ConfigError, MissingWeightsError
from tamms.models.change.base import ChangeDetector
from tamms.pipelines.describe import DescribePipeline, default_describer
from tamms.pipelines.detect import detector_from_pretrained
from tamms.pipelines.forecast import BUILTIN_FORECASTERS, ForecastModel, forecast_model_from_pretrained
from tamms.utils import default_weights

# --- forecasters ------------------------------------------------------------------------------------


def _shipped_forecaster(name: str, weights: str | Path | None = None, **options: Any) -> ForecastModel:
    """The forecaster saved in `weights` (default: the shipped folder `name`), reported as `name`."""
    if weights is None and not (default_weights(name) / "config.json").is_file():
        raise MissingWeightsError(f"the shipped {name} weights are missing ({default_weights(name)}): reinstall tamms, "
                                  f"train them with `tamms train forecast`, or pass a weights folder")
    return forecast_model_from_pretrained(weights or default_weights(name), name=name, **options)


def _builtin_forecaster(name: str, weights: str | Path | None = None, **_: Any) -> ForecastModel:
    return BUILTIN_FORECASTERS[name]()


_FORECASTERS_WITH_WEIGHTS = ("tamms", "tamms-no-semantic", "tamms-no-text", "tamms-base-control", "tamms-trend", "simvp",
                             "convlstm", "change-trend", "satjepa", "satjepa-caption")
FORECAST_MODELS: dict[str, Callable[..., ForecastModel]] = {
    **{name: partial(_shipped_forecaster, name) for name in _FORECASTERS_WITH_WEIGHTS},
    **{name: partial(_builtin_forecaster, name) for name in BUILTIN_FORECASTERS},
}
# sampler options only the diffusion forecasters take
_SAMPLER_OPTIONS = ("scheduler", "strength", "start_from", "trend_from")


def register_forecast_model(name: str, loader: Callable[..., ForecastModel]) -> None:
    """Make `name` loadable: `loader(weights=None, **options)` returns a `ForecastModel`."""
    FORECAST_MODELS[name] = loader


def load_forecast_model(name: str = "tamms", weights: str | Path | None = None, **options: Any) -> ForecastModel:
    """A forecaster by name (see the module docstring); `weights`: a folder to load instead of the shipped one.
    options: `scheduler` ("ddim" | "dpm"), `strength` and `start_from` for the TAMMs models, `describer` for
    satjepa-caption."""
    if name not in FORECAST_MODELS:
        raise ConfigError(f"unknown forecast model {name!r}: choose one of {sorted(FORECAST_MODELS)}")
    if not name.startswith("tamms"):
        options = {k: v for k, v in options.items() if k not in _SAMPLER_OPTIONS or v is None}
    return FORECAST_MODELS[name](weights, **options)


def load_forecast_pipeline(name: str = "tamms", weights: str | Path | None = None, describer: Any = "default",
                           **options: Any):
    """A `ForecastPipeline` for a registered forecaster, with the shipped describer when the model uses M_t."""
    from tamms.pipelines.forecast import ForecastPipeline

    model = load_forecast_model(name, weights, **options)
    desc = None
    if model.uses_semantic or model.uses_text:
        desc = load_describer() if describer == "default" else describer
    return ForecastPipeline(model, desc)


# --- the describer that feeds M_t -------------------------------------------------------------------


def load_describer(folder: str | Path | None = None) -> DescribePipeline | None:
    """The DescribePipeline giving M_t and text embeddings (from `folder`, else the shipped weights), or None with
    a warning when no folder is given and the shipped weights are absent."""
    return default_describer(folder)


# --- change detectors -------------------------------------------------------------------------------

DETECTORS = ("cva", "siamese", "siamese-real", "unichange")
# "siamese" learnt the synthetic world (the C of the synthetic forecast benchmarks); "siamese-real" is it fine-tuned
# on real pairs too and selected on real validation scenes: the default, picked on validation by
# benchmarks/detect_real.py (results in benchmarks/results/detect_real.md and detect_quality.md).
DEFAULT_DETECTOR = "siamese-real"


def load_detector(name: str = "default", weights: str | Path | None = None, **options: Any) -> ChangeDetector:
    """A `ChangeDetector` by name ("cva", "siamese", "siamese-real", "unichange", "default") or from a weights folder.

    options: for "unichange", `categories` (list of names), `semantic` (bool), `generate` (bool: let the LM
    write its answer, the default; False feeds the template answer, a little faster).
    """
    if name in (None, "", "default"):
        name = DEFAULT_DETECTOR
    if weights is not None:
        return detector_from_pretrained(weights, **options)
    if name not in DETECTORS:
        if Path(name).is_dir():
            return detector_from_pretrained(name, **options)
        raise ConfigError(f"unknown change detector {name!r}: choose one of {', '.join(DETECTORS)} or give a "
                          "weights folder")
    if name != "cva" and not (default_weights(name) / "config.json").is_file():
        raise MissingWeightsError(f"the {name} detector has no shipped weights in {default_weights(name)}: train them "
                                  f"with `tamms train detect --config src/tamms/configs/detect_{name.replace('-', '_')}.yaml`")
    return detector_from_pretrained(name, **options)


def default_detector() -> ChangeDetector:
    """The best change detector trained here: the default `C` of TCS (its `.name` goes in every TCS result)."""
    return load_detector(DEFAULT_DETECTOR)


__all__ = ["FORECAST_MODELS", "register_forecast_model", "load_forecast_model", "load_forecast_pipeline",
           "load_describer", "DETECTORS", "DEFAULT_DETECTOR", "load_detector", "default_detector"]

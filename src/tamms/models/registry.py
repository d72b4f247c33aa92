"""Forecast models by name.

`FORECAST_MODELS` is a plain dict of name -> loader; a loader takes an optional weights folder and
returns a `ForecastModel`. Add a model with one line (`FORECAST_MODELS["satjepa"] = load_satjepa`) or
`register_forecast_model`. Names:

  tamms                 frozen U-Net + full ECM (structural + semantic fusion + text + temporal), stage 3
  tamms-no-semantic     stages 2-3 retrained with semantic fusion off (TAMMs table 2 "w/o Semantic Fusion")
  tamms-no-text         stages 2-3 retrained with text guidance off ("w/o Text Guidance")
  tamms-base-control    the stage-1 ECM: structural path only ("Base Control Block")
  (an ablation whose retrained file `ecm_stage3-<variant>.safetensors` is missing from a weights folder
  falls back to the full model's ECM with that part switched off at inference, and says so)
  persistence           copy the last frame
  linear-trend          per-pixel least-squares line over the history, at the target date
  simvp, convlstm       learned deterministic baselines (weights in weights/forecast_<name>/)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from tamms.errors import ConfigError, MissingWeightsError
from tamms.utils import default_weights

DEFAULT_SFCI_FOLDER = "forecast"
# ECM ablations retrained from the shared stage-1 ECM (TAMMs table 2): variant -> ECMConfig overrides
ECM_VARIANTS: dict[str, dict[str, bool]] = {"no-semantic": {"use_semantic": False}, "no-text": {"use_text": False}}


def ecm_filename(stage: int, variant: str | None = None) -> str:
    """`ecm_stage3.safetensors`, or `ecm_stage3-no-text.safetensors` for an ablation's stages 2-3."""
    if variant is not None and variant not in ECM_VARIANTS:
        raise ConfigError(f"unknown ablation {variant!r}: choose one of {sorted(ECM_VARIANTS)}")
    return f"ecm_stage{stage}" + (f"-{variant}" if variant and stage >= 2 else "") + ".safetensors"


class ForecastModel:
    """What the pipeline needs from a forecaster.

    `forecast(history [B, T, C, H, W] in [0, 1], history_days [B, T], target_days [B], num_samples,
    num_inference_steps, noise [B, K, C, H, W] or None, generator, semantic, text_embeddings, text_mask)`
    returns `[B, K, C, H, W]` in [0, 1]. `tile_size`: the size the model runs at (None: any size).
    """

    name: str = "model"
    stochastic: bool = False
    channels: int = 3
    history: int = 3
    tile_size: int | None = None
    uses_semantic: bool = False  # wants the describer's M_t
    uses_text: bool = False  # wants the describer's text embeddings
    default_steps: int | None = None  # sampler steps when the caller gives none (diffusion models)

    def forecast(self, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor,
                 num_samples: int = 1, num_inference_steps: int = 20, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, semantic: torch.Tensor | None = None,
                 text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class FunctionForecastModel(ForecastModel):
    """A deterministic forecast function or network (persistence, trend, SimVP, ConvLSTM)."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], history: int, multiple_of: int = 1):
        self.name, self.fn, self.history, self.multiple_of = name, fn, history, multiple_of

    def forecast(self, history, history_days, target_days, num_samples=1, num_inference_steps=20, noise=None,
                 generator=None, semantic=None, text_embeddings=None, text_mask=None):
        h, w = history.shape[-2:]
        m = self.multiple_of
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # networks that downsample need a size divisible by their stride
            b, t = history.shape[:2]
            flat = history.reshape(b * t, *history.shape[2:])  # [B*T, C, H, W]
            mode = "reflect" if ph < h and pw < w else "replicate"
            history = F_pad(flat, (0, pw, 0, ph), mode).reshape(b, t, history.shape[2], h + ph, w + pw)
        out = self.fn(history, history_days.to(torch.float64), target_days.to(torch.float64))[..., :h, :w]
        return out.unsqueeze(1).expand(-1, num_samples, -1, -1, -1)  # [B, K, C, H, W]


def F_pad(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    import torch.nn.functional as F

    return F.pad(x, pad, mode=mode)


class SFCIForecastModel(ForecastModel):
    """Frozen U-Net + ECM, sampled with a diffusers scheduler (DDIM or DPM-Solver++)."""

    stochastic = True

    def __init__(self, name: str, forecaster, scheduler: str = "ddim", strength: float = 1.0,
                 default_steps: int | None = None):
        self.name = name
        self.strength = strength
        self.default_steps = default_steps
        self.model = forecaster.eval()
        self.history = forecaster.cfg.history
        self.channels = forecaster.cfg.channels
        self.tile_size = int(forecaster.unet.config.sample_size)
        ecm_cfg = forecaster.ecm.cfg
        self.uses_semantic = ecm_cfg.use_semantic and not forecaster.ecm.structural_only
        self.uses_text = ecm_cfg.use_text and not forecaster.ecm.structural_only
        self.scheduler_name = scheduler

    def forecast(self, history, history_days, target_days, num_samples=1, num_inference_steps=20, noise=None,
                 generator=None, semantic=None, text_embeddings=None, text_mask=None):
        from tamms.pipelines.forecast import sample_sfci

        return sample_sfci(self.model, history, history_days, target_days, num_samples=num_samples,
                           num_inference_steps=num_inference_steps, noise=noise, generator=generator,
                           semantic=semantic, text_embeddings=text_embeddings, text_mask=text_mask,
                           scheduler=self.scheduler_name, strength=self.strength)


# --- saving and loading the SFCI forecaster ---------------------------------------------------------


def _resolve(folder: str | Path | None, default: str) -> Path:
    return Path(folder) if folder is not None else default_weights(default)


def build_sfci(cfg: dict[str, Any], unet=None):
    """A forecaster from a config dict (`unet`, `ecm`, `sfci` sections); a fresh U-Net unless given."""
    from tamms.models.forecaster import ECMConfig, EnhancedControlModule, SFCIConfig, SFCIForecaster
    from tamms.models.unet import build_unet

    if unet is None:
        unet = build_unet(dict(cfg.get("unet", {})))
    sfci = SFCIConfig(history=int(cfg.get("history", 3)), prediction_type=cfg.get("prediction_type", "sample"),
                      channels=int(unet.config.in_channels))
    try:
        ecm_cfg = ECMConfig(**dict(cfg.get("ecm", {})))
    except TypeError as exc:
        raise ConfigError(f"bad ecm config ({exc}); valid keys: {list(ECMConfig.__dataclass_fields__)}") from None
    if ecm_cfg.control_depth < 1:  # 0 would otherwise build one block silently
        raise ConfigError(f"ecm.control_depth is {ecm_cfg.control_depth}: give 1 or more control blocks per level")
    ecm = EnhancedControlModule.for_unet(ecm_cfg, unet)
    return SFCIForecaster(unet, ecm, sfci)


def load_sfci(folder: str | Path, cfg: dict[str, Any] | None = None, ecm_file: str | Path | None = None,
              **ecm_overrides: Any):
    """Forecaster from a weights folder: `unet/` (any diffusers U-Net) + `config.json` + ECM safetensors."""
    from safetensors.torch import load_file

    from tamms.models.unet import load_unet

    folder = Path(folder)
    if cfg is None:
        cfg_path = folder / "config.json"
        if not cfg_path.exists():
            raise MissingWeightsError(f"{cfg_path} is missing: train with `tamms train forecast --stage 1` first")
        cfg = json.loads(cfg_path.read_text())
    unet_dir = Path(cfg.get("unet_folder") or folder / "unet")
    if not unet_dir.is_absolute() and not unet_dir.exists():
        unet_dir = folder / unet_dir
    unet = load_unet(unet_dir) if (unet_dir / "config.json").exists() else None
    if unet is None:
        raise MissingWeightsError(f"no U-Net in {unet_dir}: run `tamms train forecast --config FILE --stage 0` first")
    cfg = {**cfg, "ecm": {**cfg.get("ecm", {}), **ecm_overrides}}
    forecaster = build_sfci(cfg, unet=unet)
    if ecm_file is not None:
        forecaster.ecm.load_state_dict(load_file(str(ecm_file)))
    return forecaster


def save_sfci(forecaster, folder: str | Path, cfg: dict[str, Any], stage: int, variant: str | None = None) -> Path:
    """Write `ecm_stage{stage}[-variant].safetensors` and `config.json` (the U-Net stays in `unet/`)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ecm_filename(stage, variant)
    save_file({k: v.detach().contiguous() for k, v in forecaster.ecm.state_dict().items()}, str(path))
    keep = {k: cfg[k] for k in ("history", "prediction_type", "ecm", "unet", "crop", "sampling") if k in cfg}
    keep["ecm"] = forecaster.ecm.cfg.to_dict()
    # the config describes the full model; an ablation's switches live in its file name only
    keep["ecm"].update({k: True for k in ECM_VARIANTS.get(variant or "", {})})
    keep.setdefault("stages", {})
    old = folder / "config.json"
    if old.exists():
        keep["stages"] = json.loads(old.read_text()).get("stages", {})
    keep["stages"][path.stem.removeprefix("ecm_stage")] = path.name  # "3", "3-no-text", ...
    (folder / "config.json").write_text(json.dumps(keep, indent=1))
    return path


def load_tamms(weights: str | Path | None = None, stage: int | None = None, scheduler: str = "ddim",
               name: str = "tamms", strength: float | None = None, variant: str | None = None,
               **ecm_overrides: Any) -> SFCIForecastModel:
    """strength: where sampling starts (1 = pure noise); default: the weights' config `sampling.strength`.
    variant: an ablation of ECM_VARIANTS, loaded from its retrained ECM file when the folder has one."""
    folder = _resolve(weights, DEFAULT_SFCI_FOLDER)
    if variant is not None:
        ecm_overrides = {**ECM_VARIANTS[variant], **ecm_overrides}
        retrained = [s for s in (2, 3) if (folder / ecm_filename(s, variant)).exists()]
        if retrained and stage is None:
            stage = max(retrained)
        elif not retrained:
            warnings.warn(f"{folder} has no retrained {variant} ECM ({ecm_filename(3, variant)}): using the full "
                          f"model's ECM with that part switched off at inference; retrain it with `tamms train "
                          f"forecast --stage 2 --ablation {variant}` (then --stage 3)", stacklevel=2)
            variant = None
    if stage is None:  # the latest stage trained
        stage = max((s for s in (1, 2, 3) if (folder / ecm_filename(s)).exists()), default=0)
    ecm_file = folder / ecm_filename(stage, variant)
    if not ecm_file.exists():
        raise MissingWeightsError(f"no ECM weights {ecm_file}: train them with `tamms train forecast --stage 1` "
                                  "(then 2 and 3), or pass a weights folder")
    forecaster = load_sfci(folder, ecm_file=ecm_file, **ecm_overrides)
    forecaster.ecm.structural_only = stage == 1
    sampling = json.loads((folder / "config.json").read_text()).get("sampling", {})
    if strength is None:
        strength = float(sampling.get("strength", 1.0))
    return SFCIForecastModel(name, forecaster, scheduler, strength, sampling.get("steps"))


# --- baselines --------------------------------------------------------------------------------------


def save_baseline(net, name: str, folder: str | Path) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"name": name, "model": net.cfg.to_dict()}, indent=1))
    return folder


def load_learned_baseline(name: str, weights: str | Path | None = None) -> FunctionForecastModel:
    from safetensors.torch import load_file

    from tamms.models.baselines.forecast import ConvLSTM, ConvLSTMConfig, SimVP, SimVPConfig

    folder = _resolve(weights, f"forecast_{name}")
    if not (folder / "model.safetensors").exists():
        raise MissingWeightsError(f"no {name} weights in {folder}: train them with "
                                  f"`tamms train forecast --config src/tamms/configs/forecast_{name}.yaml`")
    cfg = json.loads((folder / "config.json").read_text())
    net = SimVP(SimVPConfig(**cfg["model"])) if name == "simvp" else ConvLSTM(ConvLSTMConfig(**cfg["model"]))
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    net.eval()
    history = cfg["model"].get("history", 3)
    return FunctionForecastModel(name, net, history=history, multiple_of=4 if name == "simvp" else 2)


def _persistence(weights=None, **_: Any) -> ForecastModel:
    from tamms.models.baselines.forecast import persistence

    return FunctionForecastModel("persistence", persistence, history=1)


def _linear_trend(weights=None, **_: Any) -> ForecastModel:
    from tamms.models.baselines.forecast import linear_trend

    return FunctionForecastModel("linear-trend", linear_trend, history=3)


FORECAST_MODELS: dict[str, Callable[..., ForecastModel]] = {
    "tamms": lambda weights=None, **kw: load_tamms(weights, name="tamms", **kw),
    "tamms-no-semantic": lambda weights=None, **kw: load_tamms(weights, name="tamms-no-semantic",
                                                               variant="no-semantic", **kw),
    "tamms-no-text": lambda weights=None, **kw: load_tamms(weights, name="tamms-no-text", variant="no-text", **kw),
    "tamms-base-control": lambda weights=None, **kw: load_tamms(weights, stage=1, name="tamms-base-control", **kw),
    "persistence": _persistence,
    "linear-trend": _linear_trend,
    "simvp": lambda weights=None, **kw: load_learned_baseline("simvp", weights),
    "convlstm": lambda weights=None, **kw: load_learned_baseline("convlstm", weights),
    # Sat-JEPA-Diff (issue 7): loaders live in tamms.pipelines.jepa
    "satjepa": lambda weights=None, **kw: __import__("tamms.pipelines.jepa", fromlist=["_"]).load_satjepa(weights),
    "satjepa-caption": lambda weights=None, **kw: __import__("tamms.pipelines.jepa",
                                                             fromlist=["_"]).load_satjepa_caption(weights),
}


def register_forecast_model(name: str, loader: Callable[..., ForecastModel]) -> None:
    FORECAST_MODELS[name] = loader


def load_forecast_model(name: str = "tamms", weights: str | Path | None = None, **kwargs: Any) -> ForecastModel:
    if name not in FORECAST_MODELS:
        raise ConfigError(f"unknown forecast model {name!r}: choose one of {sorted(FORECAST_MODELS)}")
    return FORECAST_MODELS[name](weights, **kwargs)


# --- the describer that feeds M_t -------------------------------------------------------------------


def load_describer(folder: str | Path | None = None):
    """The DescribePipeline giving M_t and text embeddings, or None (with a warning) when it is absent."""
    try:
        from tamms.pipelines.describe import DescribePipeline
    except ImportError:
        warnings.warn("tamms.pipelines.describe is not available: forecasting without semantic conditioning")
        return None
    path = Path(folder) if folder is not None else default_weights("describer")
    if not (path / "config.json").exists():
        if folder is not None:
            raise MissingWeightsError(f"no describer weights in {path}: train them with `tamms train describe`")
        warnings.warn(f"no describer weights in {path}: forecasting without semantic conditioning")
        return None
    return DescribePipeline.from_pretrained(path)

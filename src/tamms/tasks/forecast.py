"""Training the forecasters on the shared backbone: `ForecastTask` (`tamms train forecast`).

One task, chosen by `model.name`:

- `tamms` (frozen U-Net + Enhanced Control Module, TAMMs A.5/A.8), staged by `options.stage`:
  - `unet`: the U-Net as an image model of single frames (every history frame and the target of each window),
    null text, diffusion loss. Saved as an ECM folder whose `unet/` holds the U-Net (diffusers format) and whose
    ECM is untrained (zero output convs: the folder forecasts as the bare U-Net), so the next stage starts from it.
  - `structural` (stage 1): only the structural parameters theta_st train, the semantic path is bypassed.
  - `semantic` (stage 2): only theta_s-t (SemProc, gates, temporal transformers, alphas, text adapter).
  - `anneal` (stage 3): theta_s-t again; the recipe gives it a cosine schedule (stages 1-2: constant).
  Stages semantic/anneal condition the ECM on the describer's M_t and text embeddings, computed in
  `training_step` from a frozen describer on exactly the frames the U-Net sees (crop, rotation and all), as
  `ForecastPipeline` computes them at inference: the scene and the description are generated, no ground truth.
- `simvp`, `convlstm`: the deterministic baselines, MSE + L1 regression of the next frame.

Data: windows of `SitsDataModule.from_config(config.data, task="window")` (RGB, `data.history` frames -> the
target), random crops and rotations from `data`; real series in `data.real` (their last frame held out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tamms.config import from_dict
from tamms.errors import ConfigError, MissingWeightsError, OutputExistsError
from tamms.pipelines.forecast import detected_changes, deterministic_forecaster, with_trend_frame
from tamms.tasks.base import TammsTask

STAGES = ("unet", "structural", "semantic", "anneal")
BASELINES = ("simvp", "convlstm", "change-trend")  # one network, no stages
# ECM keys a stage may change on a loaded ECM (TAMMs table 2 ablations); any other key is the architecture
ECM_SWITCHES = ("use_semantic", "use_text", "use_temporal")


@dataclass
class ForecastModelConfig:
    """`model:` of a forecast config."""

    name: str = "tamms"  # "tamms" (U-Net + ECM), "simvp", "convlstm" or "change-trend"
    unet: dict[str, Any] = field(default_factory=dict)  # tamms.models.unet.UNetConfig of a fresh U-Net
    ecm: dict[str, Any] = field(default_factory=dict)  # tamms.models.forecaster.ECMConfig
    prediction_type: str = "sample"  # what the U-Net predicts: sample (the clean frame), epsilon, v_prediction
    default_steps: int | None = None  # sampler settings stored with the weights (`tamms forecast` defaults)
    strength: float = 1.0
    start_from: str | None = None  # strength < 1 starts from this forecaster's forecast (None: the last frame)
    trend_from: str | None = None  # a forecaster whose forecast the ECM reads as one more frame (SFCIConfig)
    simvp: dict[str, Any] = field(default_factory=dict)  # SimVPConfig
    convlstm: dict[str, Any] = field(default_factory=dict)  # ConvLSTMConfig
    change_trend: dict[str, Any] = field(default_factory=dict)  # tamms.models.change_trend.ChangeTrendConfig

    def __post_init__(self) -> None:
        if self.name not in ("tamms", *BASELINES):
            raise ConfigError(f"model.name {self.name!r} is not one of {['tamms', *BASELINES]}")
        if self.prediction_type not in ("sample", "epsilon", "v_prediction"):
            raise ConfigError(f"model.prediction_type {self.prediction_type!r} is not sample, epsilon or v_prediction")


@dataclass
class ForecastOptions:
    """`options:` of a forecast config."""

    stage: str | None = None  # tamms: unet | structural | semantic | anneal (baselines: unused)
    # loss = MSE + l1_weight * L1 of the U-Net output (sharper edges than MSE alone where the future is uncertain)
    l1_weight: float = 0.0
    # the gate biases and alpha logits are single numbers that start at -3 (nearly closed); Adam moves a
    # parameter by about lr per step, so they may need a larger rate than the rest to open
    gate_lr_scale: float = 1.0
    describer: str = "describer"  # folder (or shipped name) of the frozen describer giving M_t and text
    # stage unet: train the whole U-Net, or only its decoder ("decoder": the encoder features an ECM trained on
    # this U-Net reads stay exactly the same, so that ECM still applies to the fine-tuned U-Net)
    unet_trainable: str = "all"

    def __post_init__(self) -> None:
        if self.stage is not None and self.stage not in STAGES:
            raise ConfigError(f"options.stage {self.stage!r} is not one of {list(STAGES)}")
        if self.unet_trainable not in ("all", "decoder"):
            raise ConfigError(f"options.unet_trainable {self.unet_trainable!r}: give all or decoder")


# --- diffusion helpers ---------------------------------------------------------------------------------
def make_train_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                         prediction_type: str = "sample"):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type=prediction_type, clip_sample=False)


def diffusion_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    return scheduler.get_velocity(x0, noise, t)  # v_prediction


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (the diffusion space)."""
    return x * 2 - 1


def configure_stage(forecaster, stage: str, unet_trainable: str = "all") -> None:
    """Freeze everything but the stage's parameter set (the U-Net trains only in stage unet: all of it, or with
    unet_trainable "decoder" only what follows its mid block)."""
    from tamms.models.unet import decoder_parameters

    forecaster.requires_grad_(False)
    ecm = forecaster.ecm
    if stage == "unet":  # a U-Net fine-tuned under a trained ECM keeps that ECM's paths as they were
        unet = forecaster.unet
        trainable = decoder_parameters(unet) if unet_trainable == "decoder" else list(unet.parameters())
    else:
        ecm.structural_only = stage == "structural"
        trainable = ecm.structural_parameters() if stage == "structural" else ecm.semantic_parameters()
    for p in trainable:
        p.requires_grad_(True)


def ecm_loss(model, noise_scheduler, history: torch.Tensor, history_days: torch.Tensor, target: torch.Tensor,
             target_days: torch.Tensor, conditioning: dict[str, torch.Tensor] | None = None,
             l1_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Diffusion loss of the forecaster on windows: history [B, T, C, H, W] and target [B, C, H, W] in [0, 1],
    days [B, T] and [B]; conditioning: semantic / text_embeddings / text_mask from the describer."""
    x0 = to_model_space(target)
    gaps = (target_days[:, None] - history_days).float()  # [B, T] days from each frame to the target
    noise = torch.randn_like(x0)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    noisy = noise_scheduler.add_noise(x0, noise, t)
    feats = model.encode_history(to_model_space(history))
    pred = model(noisy, t, feats, gaps, **(conditioning or {}))
    return regression_terms(pred, diffusion_target(noise_scheduler, x0, noise, t), l1_weight)


def regression_terms(pred: torch.Tensor, target: torch.Tensor, l1_weight: float) -> dict[str, torch.Tensor]:
    mse = F.mse_loss(pred, target)
    if not l1_weight:
        return {"loss": mse, "mse": mse}
    l1 = F.l1_loss(pred, target)
    return {"loss": mse + l1_weight * l1, "mse": mse, "l1": l1}


class _SaveWithUNet:
    """What stage unet saves: its U-Net in `folder/unet/` (diffusers format, rewritten every time) beside the
    untrained ECM, so the folder loads like any ECM folder and the structural stage starts from it."""

    def __init__(self, model) -> None:
        self.model = model

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None, metadata=None) -> Path:
        folder = Path(folder)
        if (folder / "config.json").exists() and not overwrite:
            raise OutputExistsError(f"{folder} already holds a saved model: choose another folder or pass --overwrite")
        self.model.unet.save_pretrained(str(folder / "unet"), safe_serialization=True)
        return self.model.save_pretrained(folder, overwrite=overwrite, dtype=dtype, metadata=metadata,
                                          unet_folder="unet")


# --- the task ------------------------------------------------------------------------------------------
class ForecastTask(TammsTask):
    """`tamms train forecast`: the TAMMs forecaster stage by stage, or a SimVP / ConvLSTM baseline."""

    def configure_models(self) -> None:
        self.model_cfg = from_dict(ForecastModelConfig, dict(self.config.model), "config.model")
        self.options = from_dict(ForecastOptions, dict(self.config.options), "config.options")
        if self.config.data.history is None:
            raise ConfigError("forecasters read a fixed number of frames: set data.history (3 in the recipe)")
        self.describer = None
        if self.model_cfg.name in BASELINES:
            self.stage = None
            self.model = self._baseline()
            return
        if self.options.stage is None:
            raise ConfigError(f"set options.stage to one of {list(STAGES)} (the recipe's stages set it)")
        self.stage = self.options.stage
        self.model = self._forecaster().train()  # loaded models come in eval mode; Lightning keeps module modes
        configure_stage(self.model, self.stage, self.options.unet_trainable)
        self.noise_scheduler = make_train_scheduler(self.model.cfg.num_train_timesteps, self.model.cfg.beta_schedule,
                                                    self.model.cfg.prediction_type)
        ecm = self.model.ecm.cfg
        if self.stage in ("semantic", "anneal") and (ecm.use_semantic or ecm.use_text):
            self.describer = self._describer()
        self.trend = None  # frozen: its forecast is an input of the ECM, computed on the crop the U-Net sees
        if self.stage != "unet" and self.model.cfg.trend_from:
            self.trend = deterministic_forecaster(self.model.cfg.trend_from, self.model.cfg.channels)

    # -- building / loading -------------------------------------------------------------------------------
    def _baseline(self):
        from tamms.models.baselines.forecast import ConvLSTM, ConvLSTMConfig, SimVP, SimVPConfig
        from tamms.models.change_trend import ChangeTrendConfig, ChangeTrendForecaster

        name = self.model_cfg.name
        cls, cfg_cls = {"simvp": (SimVP, SimVPConfig), "convlstm": (ConvLSTM, ConvLSTMConfig),
                        "change-trend": (ChangeTrendForecaster, ChangeTrendConfig)}[name]
        if self.init_from:
            model = cls.from_pretrained(self.init_from).train()
        else:
            key = name.replace("-", "_")  # the config section: simvp, convlstm, change_trend
            settings = dict(getattr(self.model_cfg, key))
            if name != "convlstm":  # the networks that stack the history frames read a fixed number of them
                settings.setdefault("history", self.config.data.history)
            model = cls(from_dict(cfg_cls, settings, f"config.model.{key}"))
        if name == "change-trend":
            from tamms.pipelines.detect import detector_from_pretrained

            self.detector = detector_from_pretrained(model.cfg.detector)  # frozen: its masks are inputs, not learnt
        return model

    def _forecaster(self):
        from tamms.models.forecaster import SFCIConfig, SFCIForecaster
        from tamms.models.unet import build_unet, load_unet

        mc, history = self.model_cfg, self.config.data.history
        folder = Path(self.init_from) if self.init_from else None
        if folder is not None and (folder / "config.json").is_file() and "model_type" in _json(folder / "config.json"):
            model = SFCIForecaster.from_pretrained(folder)
            self._adopt_settings(model, folder)
            return model
        if self.stage in ("semantic", "anneal"):
            raise MissingWeightsError(
                f"stage {self.stage!r} starts from a trained ECM: run the stages before it (`tamms train forecast "
                "--config src/tamms/configs/forecast.yaml`) or give init_from: <ECM folder>")
        if folder is not None:
            unet = load_unet(folder)  # a diffusers U-Net folder (the shipped tamms-unet, a DiffusionSat U-Net)
        elif self.stage == "unet":
            unet = build_unet(dict(mc.unet))
        else:
            raise MissingWeightsError("stage 'structural' trains the ECM on a frozen, trained U-Net: run stage unet "
                                      "first, or give init_from: <U-Net folder> (e.g. src/tamms/weights/tamms-unet)")
        cfg = SFCIConfig.from_dict({"history": history, "prediction_type": mc.prediction_type, "ecm": dict(mc.ecm),
                                    "default_steps": mc.default_steps, "strength": mc.strength,
                                    "start_from": mc.start_from, "trend_from": mc.trend_from})
        model = SFCIForecaster.from_config(cfg, unet)
        model.ecm.structural_only = True  # a fresh ECM: stage structural trains its structural path first
        if folder is not None:
            model.unet_folder = (folder / "unet" if (folder / "unet" / "config.json").is_file() else folder).resolve()
        return model

    def _adopt_settings(self, model, folder: Path) -> None:
        """Apply the config to a loaded forecaster: ablation switches and sampler settings; the architecture
        must be the loaded one."""
        mc, cfg, ecm = self.model_cfg, model.cfg, model.ecm.cfg
        loaded = asdict(ecm)
        for key, value in mc.ecm.items():
            if key not in loaded:
                raise ConfigError(f"unknown key {key!r} in config.model.ecm: valid keys are {sorted(loaded)}")
            if key in ECM_SWITCHES:
                setattr(ecm, key, bool(value))
            elif key != "cross_attention_dim" and loaded[key] != value:
                raise ConfigError(f"model.ecm.{key} is {value!r} but the ECM in {folder} has {loaded[key]!r}: "
                                  "drop the override, or train that architecture from stage unet/structural")
        if cfg.history != self.config.data.history:
            raise ConfigError(f"data.history is {self.config.data.history} but the forecaster in {folder} reads "
                              f"{cfg.history} frames: set data.history={cfg.history}")
        if (cfg.trend_from or None) != (mc.trend_from or None):
            raise ConfigError(f"model.trend_from is {mc.trend_from!r} but the ECM in {folder} was trained reading "
                              f"{cfg.trend_from!r}: set model.trend_from={cfg.trend_from}, or train that ECM from "
                              "stage structural")
        if cfg.prediction_type != mc.prediction_type:
            raise ConfigError(f"model.prediction_type is {mc.prediction_type!r} but the forecaster in {folder} "
                              f"predicts {cfg.prediction_type!r}: set model.prediction_type={cfg.prediction_type}")
        cfg.default_steps, cfg.strength, cfg.start_from = mc.default_steps, mc.strength, mc.start_from

    def _describer(self):
        from tamms.models.base import resolve_weights
        from tamms.models.describer import Describer

        folder = resolve_weights(self.options.describer, "tamms train describe")
        describer = Describer.from_pretrained(folder)
        describer.requires_grad_(False)
        ecm = self.model.ecm.cfg
        hidden = describer.hidden_size
        if (ecm.use_semantic and ecm.semantic_dim != hidden) or (ecm.use_text and ecm.text_dim != hidden):
            raise ConfigError(f"the describer in {folder} gives {hidden}-d M_t and text embeddings but the ECM expects "
                              f"{ecm.semantic_dim} and {ecm.text_dim}: set model.ecm.semantic_dim and text_dim to "
                              f"{hidden} and train again from stage structural, or give options.describer")
        return describer

    # -- data ---------------------------------------------------------------------------------------------
    def datamodule(self):
        from tamms.data.datamodule import SitsDataModule

        data = self.config.data
        if data.target not in ("next", "future"):
            raise ConfigError(f"data.target {data.target!r}: forecasters learn the 'next' (or 'future') frame")
        extra: dict[str, Any] = {"min_history": data.history}  # windows of exactly `history` frames, no padding
        if data.bands is None:
            extra["rgb_only"] = True  # the forecasters are RGB models
        return SitsDataModule.from_config(data, task="window", **extra)

    # -- conditioning ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def conditioning(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """M_t and text embeddings of the frozen describer for the batch's history frames, exactly as the U-Net
        sees them (a 32 px rotated crop is described as such, resized to the describer's input size). As at
        inference (`ForecastPipeline`), the describer generates the scene and the description itself."""
        from tamms.pipelines.describe import prepare_input

        if self.describer is None:
            return {}
        self.describer.eval()  # Lightning puts every submodule in train mode; the describer stays frozen
        cfg = self.describer.config
        inputs = [prepare_input({"image": image, "time": days}, cfg.vision.image_size, cfg.max_frames)
                  for image, days in zip(batch["image"].detach().cpu(), batch["time"].cpu())]
        out = self.describer.describe([x.frames.to(self.device) for x in inputs], [x.days for x in inputs],
                                      [x.dates for x in inputs], [None] * len(inputs))
        ecm, cond = self.model.ecm.cfg, {}
        if ecm.use_semantic:
            cond["semantic"] = out["semantic"].float()
        if ecm.use_text:
            cond["text_embeddings"] = out["text_embeddings"].float()
            cond["text_mask"] = out["text_mask"]
        return cond

    # -- training -------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        history, target = batch["image"], batch["target"]  # [B, T, C, H, W], [B, C, H, W]
        days, target_days = batch["time"], batch["target_time"]  # [B, T], [B] days (float64)
        if self.model_cfg.name == "change-trend":
            terms = self.model.loss_terms(history, detected_changes(self.detector, history), days, target_days, target,
                                          self.future_change_masks(batch))
        elif self.stage is None:  # a baseline
            terms = regression_terms(self.model(history, days, target_days), target, 1.0)
        elif self.stage == "unet":
            terms = self._unet_terms(torch.cat([history.flatten(0, 1), target]))  # [B*(T+1), C, H, W]
        else:
            if self.trend is not None:  # the trend's forecast enters as one more frame, dated at the target
                history, days = with_trend_frame(self.trend, history, days, target_days)
            terms = ecm_loss(self.model, self.noise_scheduler, history, days, target, target_days,
                             self.conditioning(batch), self.options.l1_weight)
        self.log_terms(terms, "train", history.shape[0])
        return terms["loss"]

    @torch.no_grad()
    def future_change_masks(self, batch: dict[str, Any]) -> torch.Tensor:
        """[B, H, W]: the exact future change mask of each window where it has one (the synthetic world), else (a
        real series) the change the frozen detector finds from its last frame to its target, the same detector
        whose masks of the history are the model's input."""
        history, target = batch["image"], batch["target"]
        given = batch.get("target_mask")
        if isinstance(given, torch.Tensor):
            return given
        given = [None] * len(target) if given is None else given
        missing = [i for i, m in enumerate(given) if m is None]
        if missing:
            pairs = torch.stack([history[missing, -1], target[missing]], dim=1)  # [M, 2, C, H, W]
            found = detected_changes(self.detector, pairs)[:, 0]  # [M, H, W]
            given = list(given)
            for j, i in enumerate(missing):
                given[i] = found[j]
        return torch.stack([m.to(torch.uint8) for m in given])

    def _unet_terms(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Single frames in [0, 1] as an image model: noise, denoise with null text."""
        x0 = to_model_space(frames)
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        pred = self.model.unet(noisy, t, self.model.null_text(x0.shape[0], x0.device)).sample
        return regression_terms(pred, diffusion_target(self.noise_scheduler, x0, noise, t), self.options.l1_weight)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The base groups; the gate biases and alpha logits of the ECM in their own group at `gate_lr_scale`."""
        groups = super().parameter_groups()
        if self.stage not in ("semantic", "anneal"):
            return groups
        scalars = [p for level in self.model.ecm.levels for p in (level.semantic.gate.bias, level.temporal.alpha_logit)
                   if p.requires_grad]
        ids = {id(p) for p in scalars}
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) not in ids]
        groups.append({"params": scalars, "weight_decay": 0.0, "lr_scale": self.options.gate_lr_scale})
        return [g for g in groups if g["params"]]

    def model_to_save(self):
        return _SaveWithUNet(self.model) if self.stage == "unet" else self.model


def _json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): give a folder written by save_pretrained") from None
    return data if isinstance(data, dict) else {}

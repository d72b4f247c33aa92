"""`tamms train jepa`: Sat-JEPA-Diff, coarse-RGB (`options.variant: rgb`) or caption-guided Zero-RGB (`caption`).

Trained on pairs I_t -> I_{t+1}: windows of the data module with `data.history: 1` (rgb; the caption variant takes 2:
its captions are made from the last two frames) and `data.target: next`
(`data.include_future: true` adds the synthetic world's future frame as one more target); the gap in days is
`target_time - time`. What is specific to Sat-JEPA-Diff stays here (paper appendix B.2):
- the model's own loss (`SatJEPADiff.loss` / `CaptionGuidedSatJEPA.loss`), masks and noise drawn from the task's
  checkpointed `torch.Generator`;
- the EMA target-encoder update after every optimiser step, its momentum schedule running over `trainer.max_steps`;
- the cosine weight-decay ramp 0.04 -> 0.4 (`options.weight_decay_ramp`), set before every step;
- caption variant: a word-level tokenizer trained on the training captions, bag-of-words pretraining of the text
  encoder, then freezing it (in `configure_models`, seeded, so a resumed run rebuilds the same model).
The learning rate is the backbone's AdamW + linear warm-up + cosine (`optim`); the old recipe's start/final
rates (warm-up from 2e-5, cosine to 1e-6 of 3e-4) are `optim.warmup_steps` + `optim.min_lr_ratio` now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from tamms.config import from_dict
from tamms.data.bands import select_bands
from tamms.errors import ConfigError, InputError
from tamms.models.jepa_caption import CaptionBatch
from tamms.tasks.base import TammsTask

VARIANTS = {"rgb": "satjepa-diff", "caption": "satjepa-diff-caption"}  # variant -> model_type
# what a continued run (init_from) takes from `model:`: how it is trained, never the sizes of the network
TRAINING_KEYS = {"": ("sd_weight", "caption_weight", "teacher_forcing"),
                 "generator": ("ssim_weight", "gssim_weight", "train_start_noise", "sigma_range")}
RGB_BANDS = ["red", "green", "blue"]


@dataclass
class JEPAOptions:
    """`options:` of a jepa config."""

    variant: str = "rgb"  # "rgb" (coarse-RGB adapter) | "caption" (caption-guided Zero-RGB)
    weight_decay_ramp: tuple[float, float] | None = (0.04, 0.4)  # cosine start -> end; None: optim.weight_decay
    text_pretrain_steps: int = 400  # caption variant: bag-of-words steps before the text encoder is frozen
    text_pretrain_batch_size: int = 32
    text_pretrain_lr: float = 3e-3
    # caption variant: the models that caption the history images (weights folders; None = the shipped ones)
    describer: str | None = None
    detector: str | None = None
    # caption variant: start the IJEPA module and the flow U-Net from a trained rgb-variant folder (same sizes)
    init_parts_from: str | None = None
    # EMA momentum scaled to the run: base = 1 - 2 k / trainer.max_steps, so the cosine schedule to 1 moves the
    # target encoder k time constants (exp(-k) of its random start left). None: model.ijepa.ema_momentum as given
    ema_time_constants: float | None = 3.0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"options.variant {self.variant!r} is not one of {sorted(VARIANTS)}")


def model_config_class(variant: str) -> type:
    if variant == "caption":
        from tamms.models.jepa_caption import CaptionSatJEPAConfig

        return CaptionSatJEPAConfig
    from tamms.models.jepa_generator import SatJEPADiffConfig

    return SatJEPADiffConfig


def cosine_ramp(step: int, total: int, start: float, end: float) -> float:
    """`start` at step 0 rising to `end` at `total` along half a cosine (the paper's weight-decay schedule)."""
    s = min(1.0, step / max(total, 1))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * s))  # a python float: checkpoints load weights_only


# --------------------------------------------------------------------------------------------- captions
def training_captions(batch: dict[str, Any], captioner, bands: Sequence[int] | None = None,
                      cache: dict[str, dict[str, str]] | None = None) -> list[dict[str, str]]:
    """The caption triple of every sample of a collated window batch, made from its images by `captioner`
    (a `tamms.models.jepa_caption.HistoryCaptioner`: describer + change detector), as at inference.
    THE place training captions are made; no text or land cover of the data is read.

    informative (t), geometric (t):  the captioner on the history frames (the last two);
    semantic (t+1):                  the describer on (frame t, frame t+1): the caption forecaster's training target.
    `cache` (key `<sequence id>/<target frame>`) holds captions already made; only valid without random crops
    or turns (the task passes one only then).
    """
    size = batch["image"].shape[0]
    bands = list(bands) if bands is not None else list(range(batch["image"].shape[2]))
    keys = [f"{m['id']}/{m['target_frame']}" for m in batch["meta"]]
    todo = [i for i in range(size) if cache is None or keys[i] not in cache]
    made: dict[int, dict[str, str]] = {}
    if todo:
        history = batch["image"][todo][:, :, bands].float().clamp(0, 1)  # [b, T, C, H, W]
        days = batch["time"][todo].double()
        now = captioner(history, days)
        pair = torch.stack([history[:, -1], batch["target"][todo][:, bands].float().clamp(0, 1)], 1)  # [b, 2, C, H, W]
        pair_days = torch.stack([days[:, -1], batch["target_time"][todo].double()], 1)
        nxt = captioner.describe(pair, pair_days)
        for k, i in enumerate(todo):
            made[i] = {"informative": now.informative[k], "geometric": now.geometric[k], "semantic_next": nxt[k]}
            if cache is not None:
                cache[keys[i]] = made[i]
    return [made[i] if i in made else cache[keys[i]] for i in range(size)]


def pretrain_text_encoder(model, texts: Sequence[str], steps: int, batch_size: int, lr: float,
                          seed: int) -> list[float]:
    """Bag-of-words pretraining of the caption text encoder, then freeze it (the card's frozen text encoders)."""
    encoder = model.text_encoder
    encoder.train()
    opt = torch.optim.AdamW(encoder.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        picked = [texts[i] for i in rng.integers(0, len(texts), batch_size)]
        loss = encoder.bow_loss(picked)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.freeze_text_encoder()
    return losses


# --------------------------------------------------------------------------------------------- task
class SatJEPATask(TammsTask):
    """Trains `SatJEPADiff` (variant "rgb") or `CaptionGuidedSatJEPA` (variant "caption") on window pairs."""

    def configure_models(self) -> None:
        cfg = self.config
        self.options = from_dict(JEPAOptions, cfg.options, "options")
        if cfg.data.history is None or cfg.data.history < 1:
            raise ConfigError(f"data.history is {cfg.data.history}: Sat-JEPA-Diff forecasts from the last frame of "
                              "fixed windows, set data.history: 1 (rgb) or 2 (caption: the captioner reads two frames)")
        if cfg.data.target not in ("next", "future"):
            raise ConfigError(f"data.target {cfg.data.target!r} gives no frame to forecast: use 'next' (or 'future')")
        # masks, reference dropout, flow noise and teacher forcing draw from this (checkpointed: exact --resume)
        self.noise_generator = torch.Generator().manual_seed(cfg.trainer.seed)
        self.text_pretrain_losses: list[float] = []
        self._datamodule = None
        self.captioner = self._captioner() if self.options.variant == "caption" else None
        # generated captions of each training window (deterministic models, whole frames): made once
        self.caption_cache: dict[str, dict[str, str]] | None = (
            {} if cfg.data.crop_size is None and not cfg.data.rotate else None)
        model_type = VARIANTS[self.options.variant]
        if self.init_from:
            from tamms.models import load_pretrained

            model = load_pretrained(self.init_from).train()
            if model.model_type != model_type:
                raise ConfigError(f"init_from {self.init_from} holds a {model.model_type!r} model, not {model_type!r}:"
                                  f" give a folder of the {self.options.variant} variant or change options.variant")
            if self.options.variant == "caption":
                model.freeze_text_encoder()  # trained and frozen in the first run; its tokenizer came with it
            self.model = model
            self._apply_training_keys()
        else:
            from tamms.models import build_model

            model_config = from_dict(model_config_class(self.options.variant), dict(cfg.model), "model")
            if self.options.variant == "caption":
                self.model = self._pretrained_caption_model(model_config)
            else:
                self.model = build_model(model_type, model_config.to_dict())
        self.band_names = self._band_names()
        if self.options.ema_time_constants is not None:
            base = max(0.0, 1.0 - 2.0 * self.options.ema_time_constants / max(cfg.trainer.max_steps, 1))
            self.model.ijepa.config.ema_momentum = (base, 1.0)  # saved with the model's config

    def _apply_training_keys(self) -> None:
        """Loss weights and training noise given in `model:` replace the continued model's (its sizes stay)."""
        given = dict(self.config.model or {})
        for section, keys in TRAINING_KEYS.items():
            source = given.get(section, {}) if section else given
            target = getattr(self.model.config, section) if section else self.model.config
            for key in keys:
                if key in (source or {}):
                    value = source[key]
                    setattr(target, key, tuple(float(v) for v in value) if key == "sigma_range" else float(value))

    def _captioner(self):
        from tamms.models.jepa_caption import HistoryCaptioner
        from tamms.pipelines.describe import DescribePipeline
        from tamms.pipelines.detect import detector_from_pretrained

        describer = DescribePipeline.from_pretrained(self.options.describer)
        detector = detector_from_pretrained(self.options.detector or "siamese")
        return HistoryCaptioner(describer, detector)

    def caption_bands(self, batch: dict[str, Any]) -> list[int]:
        """The RGB bands the describer and the detector read (they take RGB, whatever the model's bands)."""
        available = (batch.get("band_names") or [None])[0]
        if available:
            return select_bands(available, RGB_BANDS, "the caption describer")
        return [0, 1, 2]

    def _band_names(self) -> list[str] | None:
        """The input bands by name: `data.bands`, else RGB for a 3-band model, else every band of the data."""
        channels = self.model.config.ijepa.in_channels
        bands = self.config.data.bands
        if bands is not None and len(bands) != channels:
            raise ConfigError(f"data.bands names {len(bands)} bands but the model takes {channels} "
                              "(model.ijepa.in_channels): name as many bands as the model has channels")
        return list(bands) if bands is not None else (RGB_BANDS if channels == 3 else None)

    def _pretrained_caption_model(self, model_config):
        """Tokenizer trained on the training captions, text encoder pretrained (bag of words) and frozen."""
        from tamms.models.jepa_caption import CaptionGuidedSatJEPA, build_tokenizer

        texts = self.caption_corpus()
        if not texts:
            raise InputError("the caption variant found no training pair to caption: give training data")
        tokenizer = build_tokenizer(texts, model_config.text.vocab_size)
        model = CaptionGuidedSatJEPA(model_config, tokenizer)
        if self.options.init_parts_from:
            self._load_rgb_parts(model, self.options.init_parts_from)
        opts = self.options
        self.text_pretrain_losses = pretrain_text_encoder(
            model, texts, opts.text_pretrain_steps, opts.text_pretrain_batch_size, opts.text_pretrain_lr,
            seed=self.config.trainer.seed)
        if self.text_pretrain_losses:
            print(f"[jepa] text encoder bag-of-words loss {self.text_pretrain_losses[0]:.4f} -> "
                  f"{self.text_pretrain_losses[-1]:.4f}", flush=True)
        return model

    @staticmethod
    def _load_rgb_parts(model, folder: str) -> None:
        """IJEPA, flow U-Net and adapter start of a trained coarse-RGB model (the caption variant shares their sizes)."""
        from tamms.models import load_pretrained

        rgb = load_pretrained(folder)
        if getattr(rgb, "variant", None) != "rgb":
            raise ConfigError(f"options.init_parts_from {folder} holds no coarse-RGB Sat-JEPA-Diff model: give the "
                              "folder of a `tamms train jepa --config src/tamms/configs/jepa.yaml` run")
        try:
            model.init_from_rgb(rgb)
        except ConfigError as exc:
            raise ConfigError(f"options.init_parts_from {folder}: {exc}") from None

    def caption_corpus(self) -> list[str]:
        """Every caption of the training pairs (first draw of each window), in dataset order."""
        from torch.utils.data import DataLoader

        from tamms.data.datasets import collate_sits

        dm = self.datamodule()
        dm.setup("fit")
        loader = DataLoader(dm.datasets["train"], batch_size=64, shuffle=False, collate_fn=collate_sits)
        texts: list[str] = []
        for batch in loader:
            for caps in training_captions(batch, self.captioner, self.caption_bands(batch), self.caption_cache):
                texts += [caps["informative"], caps["geometric"], caps["semantic_next"]]
        return texts

    def datamodule(self):
        from tamms.data.datamodule import SitsDataModule

        if self._datamodule is None:  # one instance: the caption corpus and training read the same data
            self._datamodule = SitsDataModule.from_config(self.config.data, task="window")
        return self._datamodule

    # -- batches -> model inputs ---------------------------------------------------------------------
    def pairs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """current [B, C, H, W], future [B, C, H, W], gap_days [B], keys (`<sequence id>/<target frame>`)."""
        available = (batch.get("band_names") or [None])[0]
        channels = self.model.config.ijepa.in_channels
        if self.band_names is not None and available:
            bands = select_bands(available, self.band_names, "Sat-JEPA-Diff")
        elif batch["image"].shape[2] == channels:
            bands = list(range(channels))
        else:
            raise InputError(f"the model takes {channels} bands but the data has {batch['image'].shape[2]} unnamed "
                             "bands: name the data's bands or give data.bands")
        current = batch["image"][:, -1, bands]  # the last history frame: [B, C, H, W]
        future = batch["target"][:, bands]
        size = self.model.config.ijepa.image_size
        if tuple(current.shape[-2:]) != (size, size):
            raise InputError(f"training frames are {tuple(current.shape[-2:])} px but the model takes {size} px: set "
                             f"data.crop_size: {size} (or data.synthetic.size) to the model's image_size")
        gap_days = (batch["target_time"] - batch["time"][:, -1]).float()
        keys = [f"{m['id']}/{m['target_frame']}" for m in batch["meta"]]
        return {"current": current, "future": future, "gap_days": gap_days, "keys": keys,
                "current_days": batch["time"][:, -1].double()}

    def losses(self, batch: dict[str, Any], generator: torch.Generator) -> tuple[dict[str, torch.Tensor], int]:
        pair = self.pairs(batch)
        if self.options.variant == "rgb":
            out = self.model.loss(pair["current"], pair["future"], pair["gap_days"], pair["keys"], generator,
                                  current_days=pair["current_days"])
            return out, pair["current"].shape[0]
        captions = training_captions(batch, self.captioner, self.caption_bands(batch), self.caption_cache)
        caps = CaptionBatch(*([c[k] for c in captions] for k in ("informative", "geometric", "semantic_next")))
        out = self.model.loss(pair["current"], pair["future"], caps, pair["gap_days"], pair["keys"], generator,
                              current_days=pair["current_days"])
        return out, len(captions)

    # -- training ------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out, size = self.losses(batch, self.noise_generator)
        terms = dict(out)
        gate = getattr(getattr(self.model, "adapter", None), "gate_logit", None)
        if gate is not None:  # the coarse/semantic fusion weight alpha (the paper reports it settles at 0.5)
            terms["gate_alpha"] = torch.sigmoid(gate.detach())
        self.log_terms(terms, "train", size)
        return out["loss"]

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(batch_idx)  # the same masks and noise at every validation
        out, size = self.losses(batch, generator)
        self.log_terms({"loss": out["loss"]}, "val", size)

    def parameter_groups(self) -> list[dict[str, Any]]:
        groups = super().parameter_groups()
        for group in groups:
            group["decay_ramp"] = any(p.ndim >= 2 for p in group["params"])  # the group of matrices
        if self.options.weight_decay_ramp is not None:
            for group in groups:
                if group["decay_ramp"]:
                    group["weight_decay"] = self.options.weight_decay_ramp[0]
        return groups

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        ramp = self.options.weight_decay_ramp
        if ramp is None:
            return
        decay = cosine_ramp(self.global_step, self.config.trainer.max_steps, *ramp)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                if group.get("decay_ramp"):
                    group["weight_decay"] = decay

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # EMA right after the step (here, not in on_train_batch_end: checkpoint callbacks run before that hook,
        # so a resumed run would miss one update); global_step still counts the steps before this one
        self.model.ijepa.update_target(self.global_step + 1, self.config.trainer.max_steps)


__all__ = ["JEPAOptions", "SatJEPATask", "training_captions", "pretrain_text_encoder", "cosine_ramp"]

"""Training the forecasters: U-Net pretraining (stage 0), the ECM stages 1-3 (TAMMs A.5/A.8), baselines.

Data: windows of `history` frames -> the next frame, from the synthetic world (train split) and the
real series of `../shared/data` (their last frame held out for the benchmark), RGB view, random
crops (`crop`, default 32 px: the U-Net and ECM are fully convolutional, attention is at the lowest
level only, so they run at 64 px or by tiles at inference) with flips and 90-degree rotations.

One LightningModule per task; networks live in `tamms.models`. `train_forecast(config, stage)` is what
`tamms train forecast --config FILE --stage N` runs; it writes weights (safetensors + config.json).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tamms.data.sequence import SitsSequence, to_days
from tamms.errors import ConfigError, MissingWeightsError

# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


@dataclass
class Windows:
    """Stacked training windows (RGB, [0, 1]); conditioning from the describer when computed."""

    history: list[np.ndarray]  # N x [T, C, H, W] (sizes may differ between sources)
    history_days: np.ndarray  # [N, T]
    target: list[np.ndarray]  # N x [C, H, W]
    target_days: np.ndarray  # [N]
    names: list[str] = field(default_factory=list)
    semantic: np.ndarray | None = None  # [N, D]
    text_embeddings: np.ndarray | None = None  # [N, L, D]
    text_mask: np.ndarray | None = None  # [N, L]

    def __len__(self) -> int:
        return len(self.history)


def all_frames(seq: SitsSequence) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames (with the future frame appended when present) and their days."""
    frames = seq.rgb()  # [T, 3, H, W]
    days = seq.days
    if seq.future_frame is not None and seq.future_date is not None:
        rgb = list(seq.rgb_bands) if seq.rgb_bands is not None else [0, 0, 0]
        fut = seq.future_frame[rgb] if seq.future_frame.shape[0] != 3 else seq.future_frame
        frames = np.concatenate([frames, fut[None]], axis=0)
        days = np.concatenate([days, to_days([seq.future_date])])
    return frames.astype(np.float32), days.astype(np.float64)


def sequence_windows(seq: SitsSequence, history: int, hold_out_last: bool = False,
                     last_only: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float, str]]:
    """(history frames, history days, target, target day, name) for every target with enough history."""
    frames, days = all_frames(seq)
    n = frames.shape[0] - (1 if hold_out_last else 0)
    targets = [n - 1] if last_only else range(history, n)
    name = str(seq.meta.get("id") or seq.meta.get("root") or "sequence")
    out = []
    for k in targets:
        if k < history:
            continue
        out.append((frames[k - history:k], days[k - history:k], frames[k], float(days[k]), f"{name}#{k}"))
    return out


def stack_windows(items: Sequence[tuple]) -> Windows:
    if not items:
        raise ConfigError("no training windows: give sequences with more frames than `history`")
    return Windows(history=[i[0] for i in items], history_days=np.stack([i[1] for i in items]),
                   target=[i[2] for i in items], target_days=np.array([i[3] for i in items]),
                   names=[i[4] for i in items])


def synthetic_sequences(n: int, size: int, frames: int, seed: int, split: str | None) -> list[SitsSequence]:
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    cfg = SyntheticWorldConfig(size=size, frames=frames)
    out = []
    for i in range(n):
        seq = generate_sequence(i, cfg, seed=seed)
        if split is None or split_of(str(seq.meta.get("id", i))) == split:
            out.append(seq)
    return out


def real_sequences(paths: Sequence[str]) -> list[SitsSequence]:
    from tamms.data.readers import read_sequence

    return [read_sequence(p) for p in paths if Path(p).exists()]


def build_windows(data_cfg: dict[str, Any], history: int) -> Windows:
    """Training windows per the config's `data` section (synthetic train split + real series)."""
    items: list[tuple] = []
    syn = data_cfg.get("synthetic")
    if syn:
        for seq in synthetic_sequences(int(syn.get("n", 200)), int(syn.get("size", 64)), int(syn.get("frames", 4)),
                                       int(syn.get("seed", 0)), syn.get("split", "train")):
            items += sequence_windows(seq, history)
    for seq in real_sequences(data_cfg.get("real", [])):
        # the last frame of each real series is the benchmark's target: never train on it
        items += sequence_windows(seq, history, hold_out_last=True)
    return stack_windows(items)


class WindowDataset(Dataset):
    """Random crops of windows, the same flip/rotation for all frames; `repeat` passes per epoch."""

    def __init__(self, windows: Windows, crop: int | None, repeat: int = 1, seed: int = 0, augment: bool = True):
        self.w, self.crop, self.repeat, self.augment = windows, crop, repeat, augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.w) * self.repeat

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = index % len(self.w)
        rng = np.random.default_rng((self.seed, index, torch.initial_seed() % 2**31))
        hist, tgt = self.w.history[i], self.w.target[i]
        h, w = tgt.shape[-2:]
        if self.crop and (h > self.crop or w > self.crop):
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            hist = hist[..., y:y + self.crop, x:x + self.crop]
            tgt = tgt[..., y:y + self.crop, x:x + self.crop]
        if self.augment:
            k = int(rng.integers(0, 4))
            flip = bool(rng.integers(0, 2))
            hist, tgt = np.rot90(hist, k, axes=(-2, -1)), np.rot90(tgt, k, axes=(-2, -1))
            if flip:
                hist, tgt = hist[..., ::-1], tgt[..., ::-1]
        item = {
            "history": torch.from_numpy(np.ascontiguousarray(hist)),  # [T, C, h, w]
            "history_days": torch.from_numpy(self.w.history_days[i]),
            "target": torch.from_numpy(np.ascontiguousarray(tgt)),  # [C, h, w]
            "target_days": torch.tensor(self.w.target_days[i], dtype=torch.float64),
        }
        if self.w.semantic is not None:
            item["semantic"] = torch.from_numpy(self.w.semantic[i]).float()
        if self.w.text_embeddings is not None:
            item["text_embeddings"] = torch.from_numpy(self.w.text_embeddings[i]).float()
            item["text_mask"] = torch.from_numpy(self.w.text_mask[i])
        return item


class FrameDataset(Dataset):
    """Single frames (history frames and targets of the windows), random crops: U-Net pretraining."""

    def __init__(self, windows: Windows, crop: int | None, repeat: int = 1, seed: int = 0):
        unique: dict[bytes, np.ndarray] = {}  # windows overlap: keep each frame once
        for frame in [f for h in windows.history for f in h] + list(windows.target):
            unique.setdefault(hashlib.sha1(frame.tobytes()).digest() + bytes(str(frame.shape), "ascii"), frame)
        self.frames = list(unique.values())
        self.crop, self.repeat, self.seed = crop, repeat, seed

    def __len__(self) -> int:
        return len(self.frames) * self.repeat

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index, torch.initial_seed() % 2**31))
        img = self.frames[index % len(self.frames)]
        h, w = img.shape[-2:]
        if self.crop and (h > self.crop or w > self.crop):
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            img = img[:, y:y + self.crop, x:x + self.crop]
        img = np.rot90(img, int(rng.integers(0, 4)), axes=(-2, -1))
        if rng.integers(0, 2):
            img = img[..., ::-1]
        return {"target": torch.from_numpy(np.ascontiguousarray(img))}


# ------------------------------------------------------------------------------------------------
# diffusion helpers
# ------------------------------------------------------------------------------------------------


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
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    raise ConfigError(f"prediction_type {kind!r} is not one of epsilon, sample, v_prediction")


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (the diffusion space)."""
    return x * 2 - 1


# ------------------------------------------------------------------------------------------------
# LightningModules
# ------------------------------------------------------------------------------------------------


class UNetPretrainTask(L.LightningModule):
    """Stage 0: the U-Net as an image model of single frames (null text), diffusion loss."""

    def __init__(self, unet_config: dict[str, Any], lr: float = 5e-4, prediction_type: str = "sample",
                 max_steps: int = 1000, warmup_steps: int = 50):
        super().__init__()
        from tamms.models.unet import build_unet

        self.save_hyperparameters()
        self.unet = build_unet(dict(unet_config))
        self.noise_scheduler = make_train_scheduler(prediction_type=prediction_type)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x0 = to_model_space(batch["target"])
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        null = torch.zeros(x0.shape[0], 1, self.unet.config.cross_attention_dim, device=x0.device)
        pred = self.unet(noisy, t, null).sample
        loss = F.mse_loss(pred, diffusion_target(self.noise_scheduler, x0, noise, t))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.unet.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(self.hparams.warmup_steps, self.hparams.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _warmup_cosine(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


class ECMTask(L.LightningModule):
    """Stages 1-3 of TAMMs A.5/A.8 on a frozen U-Net.

    stage 1: only the structural parameters theta_st train, the semantic path is bypassed; constant LR.
    stage 2: only theta_s-t (SemProc, gates, temporal transformers, alphas, text adapter); constant LR.
    stage 3: theta_s-t again with cosine annealing.
    """

    def __init__(self, forecaster, stage: int, lr: float = 2e-4, max_steps: int = 1000,
                 prediction_type: str = "sample", gate_lr_scale: float = 1.0, l1_weight: float = 0.0):
        super().__init__()
        if stage not in (1, 2, 3):
            raise ConfigError(f"ECM stage must be 1, 2 or 3 (stage 0 is U-Net pretraining), got {stage}")
        self.model = forecaster
        self.stage = stage
        self.lr = lr
        self.max_steps = max_steps
        # the gate biases and alpha logits are single numbers that start at -3 (nearly closed); Adam moves
        # a parameter by about lr per step, so at lr 1e-3 a few hundred steps cannot open them
        self.gate_lr_scale = gate_lr_scale
        # an L1 term next to the diffusion MSE (as Palette and the SimVP/ConvLSTM baselines use) favours sharp
        # edges over the blur that MSE accepts where the future is uncertain
        self.l1_weight = l1_weight
        self.noise_scheduler = make_train_scheduler(prediction_type=prediction_type)
        configure_stage(forecaster, stage)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = ecm_loss(self.model, self.noise_scheduler, batch, self.l1_weight)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        scalars = {id(p) for level in self.model.ecm.levels
                   for p in (level.semantic.gate.bias, level.temporal.alpha_logit)}
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if id(p) not in scalars], "lr": self.lr},
                  {"params": [p for p in params if id(p) in scalars], "lr": self.lr * self.gate_lr_scale}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.0)
        if self.stage == 3:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_steps))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt


def configure_stage(forecaster, stage: int) -> None:
    """Freeze everything but the stage's parameter set (the U-Net is always frozen)."""
    forecaster.requires_grad_(False)
    ecm = forecaster.ecm
    ecm.structural_only = stage == 1
    trainable = ecm.structural_parameters() if stage == 1 else ecm.semantic_parameters()
    for p in trainable:
        p.requires_grad_(True)


def ecm_loss(model, noise_scheduler, batch: dict[str, torch.Tensor], l1_weight: float = 0.0) -> torch.Tensor:
    x0 = to_model_space(batch["target"])  # [B, C, H, W]
    history = to_model_space(batch["history"])  # [B, T, C, H, W]
    gaps = (batch["target_days"][:, None] - batch["history_days"]).float()  # [B, T]
    noise = torch.randn_like(x0)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    noisy = noise_scheduler.add_noise(x0, noise, t)
    feats = model.encode_history(history)
    pred = model(noisy, t, feats, gaps, semantic=batch.get("semantic"),
                 text_embeddings=batch.get("text_embeddings"), text_mask=batch.get("text_mask"))
    target = diffusion_target(noise_scheduler, x0, noise, t)
    loss = F.mse_loss(pred, target)
    return loss + l1_weight * F.l1_loss(pred, target) if l1_weight else loss


class BaselineTask(L.LightningModule):
    """SimVP / ConvLSTM: L1 + MSE regression of the next frame."""

    def __init__(self, name: str, model_config: dict[str, Any], lr: float = 1e-3, max_steps: int = 1000):
        super().__init__()
        from tamms.models.baselines.forecast import ConvLSTM, ConvLSTMConfig, SimVP, SimVPConfig

        self.save_hyperparameters()
        if name == "simvp":
            self.net = SimVP(SimVPConfig(**model_config))
        elif name == "convlstm":
            self.net = ConvLSTM(ConvLSTMConfig(**model_config))
        else:
            raise ConfigError(f"baseline {name!r} is not trainable: choose simvp or convlstm")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pred = self.net(batch["history"], batch["history_days"], batch["target_days"])
        loss = F.mse_loss(pred, batch["target"]) + F.l1_loss(pred, batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(20, self.hparams.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ------------------------------------------------------------------------------------------------
# the `tamms train forecast` entry point
# ------------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> dict[str, Any]:
    from tamms.utils import read_config

    return read_config(path, "src/tamms/configs/forecast.yaml", "a mapping of settings")


class _Timer(L.Callback):
    def __init__(self, log_every: int = 25):
        self.log_every, self.start = log_every, time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.log_every == 0 and trainer.is_global_zero:
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
            print(f"step {step} loss {loss:.4f} elapsed {time.time() - self.start:.0f}s", flush=True)


def make_trainer(cfg: dict[str, Any], max_steps: int, max_minutes: float | None = None, **kwargs) -> L.Trainer:
    # a wall-clock cap keeps runs inside the budget on a shared CPU (the LR schedule follows max_steps)
    max_time = None if not max_minutes else {"minutes": float(max_minutes)}
    return L.Trainer(max_steps=max_steps, max_time=max_time, accelerator="cpu", devices=cfg.get("devices", 1),
                     strategy=cfg.get("strategy", "auto"), logger=False, enable_checkpointing=False,
                     enable_progress_bar=bool(cfg.get("progress_bar", False)), enable_model_summary=False,
                     gradient_clip_val=cfg.get("grad_clip", 1.0), callbacks=[_Timer(cfg.get("log_every", 25))],
                     **kwargs)


def train_forecast(cfg: dict[str, Any], stage: int, out_dir: str | Path | None = None) -> Path:
    """Run one training stage per the config; returns the weights folder written."""
    from tamms.models.forecaster import SFCIConfig, SFCIForecaster
    from tamms.models.unet import load_unet

    # TAMMs table 2 ablations: ECMConfig overrides; each stage is saved in its own folder (save_pretrained)
    ecm_variants = {"no-semantic": {"use_semantic": False}, "no-text": {"use_text": False}}

    def stage_folder(s: int, v: str | None) -> Path:
        return out / (f"stage{s}" + (f"-{v}" if v and s >= 2 else ""))

    seed = int(cfg.get("seed", 0))
    L.seed_everything(seed, workers=True)
    out = Path(out_dir or cfg.get("output_dir", "forecast-weights"))
    history = int(cfg.get("history", 3))
    section = cfg.get("baseline") if stage < 0 or cfg.get("baseline") else None
    windows = build_windows(cfg.get("data", {}), history)
    print(f"{len(windows)} training windows, history {history}", flush=True)

    if section:  # a baseline: SimVP or ConvLSTM
        name = section["name"]
        steps = int(section.get("steps", 500))
        task = BaselineTask(name, dict(section.get("model", {})), lr=float(section.get("lr", 1e-3)), max_steps=steps)
        data = DataLoader(WindowDataset(windows, cfg.get("crop", 32), repeat=1000, seed=seed),
                          batch_size=int(section.get("batch_size", 16)), shuffle=True, num_workers=0)
        make_trainer(cfg, steps, section.get("max_minutes")).fit(task, data)
        return task.net.save_pretrained(out, overwrite=True)

    if stage == 0:
        s0 = cfg.get("unet_pretrain", {})
        steps = int(s0.get("steps", 500))
        task = UNetPretrainTask(dict(cfg.get("unet", {})), lr=float(s0.get("lr", 5e-4)),
                                prediction_type=cfg.get("prediction_type", "sample"), max_steps=steps)
        data = DataLoader(FrameDataset(windows, s0.get("crop", cfg.get("crop", 32)), repeat=1000, seed=seed),
                          batch_size=int(s0.get("batch_size", 16)), shuffle=True, num_workers=0)
        make_trainer(cfg, steps, s0.get("max_minutes")).fit(task, data)
        unet_dir = out / "unet"
        unet_dir.mkdir(parents=True, exist_ok=True)
        task.unet.save_pretrained(unet_dir, safe_serialization=True)
        return unet_dir

    if stage not in (1, 2, 3):
        raise ConfigError(f"--stage must be 0 (U-Net), 1, 2 or 3, got {stage}")
    section = cfg.get(f"stage{stage}", {})
    steps = int(section.get("steps", 300))
    variant = cfg.get("ablation")  # TAMMs table 2 ablations retrain stages 2-3 from the shared stage 1
    if variant and stage == 1:
        raise ConfigError(f"the ablations share the stage-1 ECM: train --stage 1 without --ablation, then "
                          f"--stage 2 --ablation {variant} and --stage 3 --ablation {variant}")
    if variant is not None and variant not in ecm_variants:
        raise ConfigError(f"unknown ablation {variant!r}: choose one of {sorted(ecm_variants)}")
    previous = None if stage == 1 else stage_folder(stage - 1, variant if stage == 3 else None)
    if previous is not None and not (previous / "config.json").exists():
        again = f" --ablation {variant}" if variant and stage == 3 else ""
        raise MissingWeightsError(f"stage {stage} starts from {previous}: run --stage {stage - 1}{again} first")
    if previous is None:
        if not (out / "unet" / "config.json").exists():
            raise MissingWeightsError(f"no U-Net in {out / 'unet'}: run `tamms train forecast --config FILE --stage 0` first")
        sampling = cfg.get("sampling", {})
        sfci_cfg = SFCIConfig.from_dict({"history": history, "prediction_type": cfg.get("prediction_type", "sample"),
                                         "ecm": dict(cfg.get("ecm", {})), "default_steps": sampling.get("steps"),
                                         "strength": float(sampling.get("strength", 1.0))})
        forecaster = SFCIForecaster.from_config(sfci_cfg, load_unet(out / "unet"))
        forecaster.unet_folder = (out / "unet").resolve()
    else:
        forecaster = SFCIForecaster.from_pretrained(previous)
        forecaster.ecm.train()  # from_pretrained gives eval mode; the U-Net stays frozen in eval
    for key, value in ecm_variants.get(variant or "", {}).items():
        setattr(forecaster.ecm.cfg, key, value)
    if stage >= 2:
        t0 = time.time()
        attach_conditioning(windows, cfg)
        print(f"describer conditioning for {len(windows)} windows: {time.time() - t0:.0f}s", flush=True)
        if windows.semantic is None:
            raise MissingWeightsError(
                "stages 2 and 3 need the describer's semantic vectors M_t: train the describer "
                "(`tamms train describe`) so src/tamms/weights/describer exists, or set describer: <folder>"
            )
        ecm_cfg = forecaster.ecm.cfg
        if windows.semantic.shape[-1] != ecm_cfg.semantic_dim or windows.text_embeddings.shape[-1] != ecm_cfg.text_dim:
            raise ConfigError(
                f"the describer gives {windows.semantic.shape[-1]}-d M_t and {windows.text_embeddings.shape[-1]}-d "
                f"text embeddings but the ECM expects {ecm_cfg.semantic_dim} and {ecm_cfg.text_dim}: set "
                "ecm: {semantic_dim, text_dim} in the config to the describer's size and retrain from stage 1"
            )
    task = ECMTask(forecaster, stage, lr=float(section.get("lr", 2e-4)), max_steps=steps,
                   prediction_type=cfg.get("prediction_type", "sample"),
                   gate_lr_scale=float(section.get("gate_lr_scale", 1.0)),
                   l1_weight=float(section.get("l1_weight", 0.0)))
    data = DataLoader(WindowDataset(windows, cfg.get("crop", 32), repeat=1000, seed=seed + stage),
                      batch_size=int(section.get("batch_size", 16)), shuffle=True, num_workers=0)
    make_trainer(cfg, steps, section.get("max_minutes")).fit(task, data)
    forecaster.ecm.structural_only = stage == 1
    return forecaster.save_pretrained(stage_folder(stage, variant), overwrite=True, unet_folder=out / "unet",
                                      metadata={"training": {"stage": stage, "ablation": variant, "crop": cfg.get("crop")}})


def attach_conditioning(windows: Windows, cfg: dict[str, Any]) -> None:
    """Compute the describer's M_t and text embeddings for every window's history (once)."""
    from tamms.pipelines.describe import default_describer as load_describer

    describer = load_describer(cfg.get("describer"))
    if describer is None:
        return
    cond = describe_histories(describer, windows.history, windows.history_days)
    windows.semantic, windows.text_embeddings, windows.text_mask = cond


def describe_histories(describer, history: np.ndarray, history_days: np.ndarray, batch: int = 16):
    """M_t [N, D], text embeddings [N, L, D] and mask [N, L] for history windows [N, T, C, H, W]."""
    from tamms.data.sequence import from_days

    sem, txt, mask = [], [], []
    for s in range(0, len(history), batch):
        seqs = [SitsSequence(frames=h, dates=[from_days(d) for d in days])
                        for h, days in zip(history[s:s + batch], history_days[s:s + batch])]
        out = describer(seqs)
        sem.append(out.semantic.float().cpu().numpy())
        txt.append(out.text_embeddings.float().cpu().numpy())
        mask.append(out.text_mask.cpu().numpy())
    length = max(t.shape[1] for t in txt)
    txt = [np.pad(t, ((0, 0), (0, length - t.shape[1]), (0, 0))) for t in txt]
    mask = [np.pad(m, ((0, 0), (0, length - m.shape[1]))) for m in mask]
    return np.concatenate(sem), np.concatenate(txt), np.concatenate(mask).astype(bool)

"""The training backbone every task shares: `TammsTask`, `fit()` and `train()`.

- `TammsTask` (a LightningModule, torchgeo style): `configure_models()` builds the networks from the typed
  config, `configure_metrics()` the validation metrics (torchmetrics `Metric`s, synced under DDP by Lightning);
  AdamW with a linear warm-up and a cosine decay comes from `config.optim`; `log_terms()` logs loss terms.
- `fit()` builds the Lightning Trainer from `config.trainer` (accelerator, devices, strategy default "auto": one
  command for a laptop CPU, a GPU or several GPUs with DDP) and writes a checkpoint every `checkpoint_every` steps
  with the RNG states; the training order is a function of the step (`StepSampler`), so `--resume` continues
  exactly where a killed run stopped.
- `train()` runs a config's stages in order (each starting from the previous stage's model), skips the stages
  a resumed run already finished, and saves the model in the one format (`save_pretrained`).
"""

from __future__ import annotations

import importlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch

from tamms.config import OptimConfig, TrainConfig, TrainerConfig, stage_config, to_yaml
from tamms.errors import ConfigError, OutputExistsError

# task name -> "module:class"; a new task is one line here (and a config with `task: <name>`)
TASKS: dict[str, str] = {
    "describe": "tamms.tasks.describe:DescribeTask",
    "forecast": "tamms.tasks.forecast:ForecastTask",
    "detect": "tamms.tasks.detect:ChangeDetectionTask",
    "jepa": "tamms.tasks.jepa:SatJEPATask",
}

CHECKPOINT_NAME = "last.ckpt"


def warmup_cosine(step: int, optim: OptimConfig, total_steps: int) -> float:
    """LR multiplier at `step`: linear warm-up to 1, then constant or cosine down to `min_lr_ratio`."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class TammsTask(L.LightningModule):
    """Base of every training task. Subclasses set `self.model` (a `PretrainedModel`) in `configure_models`,
    compute their loss in `training_step`, and build their data in `datamodule()`."""

    def __init__(self, config: TrainConfig, init_from: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.init_from = None if init_from is None else str(init_from)
        self.history: list[dict[str, float]] = []  # logged rows, kept with the saved model
        self.minutes_before = 0.0  # training minutes of the runs this one resumed (restored from the checkpoint)
        self.clock_start = time.monotonic()
        self.configure_models()
        self.configure_metrics()

    # -- what subclasses provide ------------------------------------------------------------------------
    def configure_models(self) -> None:
        raise NotImplementedError

    def configure_metrics(self) -> None:
        """Validation metrics (module attributes, so Lightning moves and syncs them); none by default."""

    def datamodule(self) -> L.LightningDataModule:
        raise NotImplementedError

    def model_to_save(self) -> torch.nn.Module:
        return self.model

    # -- optimiser -------------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters: matrices get weight decay, biases and norms do not. A group may carry
        `lr_scale` (a factor on `optim.lr`)."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.config.optim.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        optim = self.config.optim
        groups = self.parameter_groups()
        if not groups:
            raise ConfigError("nothing to train: every parameter is frozen in this stage")
        for group in groups:
            group["lr"] = optim.lr * group.pop("lr_scale", 1.0)
        opt = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas))
        total = optim.schedule_steps or self.config.trainer.max_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, optim, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- logging ---------------------------------------------------------------------------------------------
    def log_terms(self, terms: dict[str, torch.Tensor], split: str, batch_size: int) -> None:
        """Log every loss term as `split/name`; the training rows are kept every `log_every` steps."""
        for name, value in terms.items():
            self.log(f"{split}/{name}", value.detach(), prog_bar=name == "loss", batch_size=batch_size,
                     sync_dist=split != "train")
        every = self.config.trainer.log_every
        if split == "train" and every and self.global_step % every == 0:
            self.history.append({"step": int(self.global_step),
                                 **{k: round(float(v.detach()), 5) for k, v in terms.items()}})

    # -- RNGs a task owns (random.Random / torch.Generator attributes) are checkpointed too -----------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = {}
        for name, value in vars(self).items():
            if isinstance(value, random.Random):
                states[name] = ("random", value.getstate())
            elif isinstance(value, torch.Generator):
                states[name] = ("torch", value.get_state())
        checkpoint["task_rngs"] = states
        checkpoint["task_history"] = list(self.history)
        checkpoint["task_minutes"] = self.trained_minutes()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, (kind, state) in checkpoint.get("task_rngs", {}).items():
            target = getattr(self, name, None)
            if kind == "random" and isinstance(target, random.Random):
                target.setstate(state)
            elif kind == "torch" and isinstance(target, torch.Generator):
                target.set_state(state)
        self.history = list(checkpoint.get("task_history", []))
        self.minutes_before = float(checkpoint.get("task_minutes", 0.0))
        self.clock_start = time.monotonic()

    def trained_minutes(self) -> float:
        """Wall-clock minutes of this run, with those of every run it resumed (up to their last checkpoint)."""
        return self.minutes_before + (time.monotonic() - self.clock_start) / 60


class GlobalRNGState(L.Callback):
    """Saves and restores torch, numpy and python global RNG states with each checkpoint, so a resumed run
    draws the same noise, timesteps and augmentations as an uninterrupted one."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types only: checkpoints load with torch.load(weights_only=True)
        numpy_state = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}
        return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        n = state_dict["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        random.setstate(state_dict["python"])


class StepLogger(L.Callback):
    """One plain line every `every` steps (readable in background logs, where a live bar shows nothing)."""

    def __init__(self, every: int = 25, total: int | None = None, prefix: str = "") -> None:
        self.every, self.total, self.prefix = every, total, prefix
        self.start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and self.every and step % self.every == 0:
            metrics = " ".join(f"{k}={float(v):.4f}" for k, v in trainer.callback_metrics.items())
            total = f"/{self.total}" if self.total else ""
            print(f"{self.prefix}step {step}{total} {(time.monotonic() - self.start) / 60:.1f} min {metrics}",
                  flush=True)


class StopAfterSteps(L.Callback):
    """Raise after `steps` optimiser steps: a crash at a known point (tests of --resume)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            raise RuntimeError(f"stopped after {trainer.global_step} steps")


def _strategy(trainer_cfg: TrainerConfig) -> Any:
    devices = trainer_cfg.devices
    many = devices == "auto" or (isinstance(devices, int) and devices > 1) or str(devices) == "-1"
    if trainer_cfg.strategy in ("ddp", "ddp_spawn") and many:
        from lightning.pytorch.strategies import DDPStrategy

        # some parameters get no gradient on some steps (frozen paths, task-dependent heads)
        backend = "nccl" if trainer_cfg.accelerator == "gpu" else "gloo"
        return DDPStrategy(start_method="spawn" if trainer_cfg.strategy == "ddp_spawn" else "popen",
                           find_unused_parameters=True, process_group_backend=backend)
    return trainer_cfg.strategy


def build_trainer(trainer_cfg: TrainerConfig, checkpoint_dir: Path | None = None,
                  callbacks: Sequence[L.Callback] = (), max_minutes: float | None = None,
                  log_prefix: str = "") -> L.Trainer:
    """The Lightning Trainer a config asks for; checkpoints every `checkpoint_every` steps when `checkpoint_dir` is given."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    minutes = max_minutes if max_minutes is not None else trainer_cfg.max_minutes
    cbs: list[L.Callback] = [GlobalRNGState(), StepLogger(trainer_cfg.log_every, trainer_cfg.max_steps, log_prefix)]
    if checkpoint_dir is not None:
        cbs.append(ModelCheckpoint(dirpath=checkpoint_dir, filename=Path(CHECKPOINT_NAME).stem, save_top_k=1,
                                   every_n_train_steps=trainer_cfg.checkpoint_every, save_on_train_epoch_end=False,
                                   enable_version_counter=False))
    cbs += list(callbacks)
    validate = trainer_cfg.val_every is not None
    return L.Trainer(
        max_steps=trainer_cfg.max_steps, max_epochs=-1, max_time={"minutes": float(minutes)} if minutes else None,
        accelerator=trainer_cfg.accelerator, devices=trainer_cfg.devices, strategy=_strategy(trainer_cfg),
        precision=trainer_cfg.precision, gradient_clip_val=trainer_cfg.grad_clip,
        val_check_interval=trainer_cfg.val_every if validate else None,
        check_val_every_n_epoch=None if validate else 1,
        limit_val_batches=(trainer_cfg.limit_val_batches or 1.0) if validate else 0,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=checkpoint_dir is not None,
        enable_progress_bar=trainer_cfg.progress_bar, enable_model_summary=False, callbacks=cbs,
        log_every_n_steps=max(1, trainer_cfg.log_every), use_distributed_sampler=True,
    )


def fit(task: TammsTask, datamodule: L.LightningDataModule, checkpoint_dir: Path | None = None,
        resume: bool = False, callbacks: Sequence[L.Callback] = (), max_minutes: float | None = None,
        log_prefix: str = "") -> L.Trainer:
    """Train `task` on `datamodule` per `task.config.trainer`; with `resume`, continue from the last checkpoint."""
    trainer_cfg = task.config.trainer
    if hasattr(datamodule, "total_steps"):
        datamodule.total_steps = trainer_cfg.max_steps  # the training order is a function of the step
    trainer = build_trainer(trainer_cfg, checkpoint_dir, callbacks, max_minutes, log_prefix)
    ckpt = None
    if resume and checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT_NAME).is_file():
        ckpt = str(checkpoint_dir / CHECKPOINT_NAME)
        print(f"{log_prefix}resuming from {ckpt}", flush=True)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    return trainer


def task_class(name: str) -> type[TammsTask]:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}: choose one of {sorted(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _finished(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def train(config: TrainConfig, out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
          stage: str | None = None, max_minutes: float | None = None,
          callbacks: Sequence[L.Callback] = ()) -> Path:
    """Run a training config (all its stages, or up to `stage`) and return the folder of the saved model.

    The final model goes to `out`; a stage before the last goes to `out/stages/<name>/`; checkpoints to
    `out/checkpoints/<stage>/`. An existing model in `out` is kept unless `overwrite` (or `resume`)."""
    out = Path(out or config.out or "")
    if not str(out) or str(out) == ".":
        raise ConfigError("no output folder: pass --out FOLDER (or set out: in the config)")
    if _finished(out) and not (overwrite or resume):
        raise OutputExistsError(f"{out} already holds a trained model: choose another --out, pass --overwrite, "
                                "or --resume to continue an unfinished run")
    stages = [s.name for s in config.stages] or [None]
    if stage is not None and stage not in stages:
        raise ConfigError(f"no stage {stage!r} in the config: its stages are {stages}")
    last = stage if stage is not None else stages[-1]
    previous: str | None = config.init_from
    result = out
    for name in stages:
        cfg = stage_config(config, name) if name is not None else config
        final = name == last
        folder = out if name == stages[-1] else out / "stages" / str(name)
        label = f"[{config.task}{'/' + name if name else ''}] "
        if stage is not None and config.init_from and name != stage:
            continue  # init_from + --stage: that stage alone, from init_from (e.g. an ablation of a later stage)
        if _finished(folder) and (resume or (stage is not None and not final)):
            print(f"{label}done before: {folder}", flush=True)
            previous, result = str(folder), folder
            if final:
                break
            continue
        if stage is not None and name != stage and not _finished(folder):
            raise ConfigError(f"stage {stage!r} starts from stage {name!r}, which has not run: run "
                              f"`tamms train {config.task} --stage {name}` first (or without --stage)")
        L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
        # the base config's init_from starts the first stage; later stages start from the stage before,
        # unless a stage names its own init_from in its `set`
        own = next((s.set["init_from"] for s in config.stages if s.name == name and "init_from" in s.set), None)
        task = task_class(config.task)(cfg, init_from=own or previous)
        datamodule = task.datamodule()
        checkpoints = out / "checkpoints" / str(name or "main")
        trainer = fit(task, datamodule, checkpoints, resume=resume, callbacks=callbacks,
                      max_minutes=max_minutes, log_prefix=label)
        if trainer.is_global_zero:
            metadata = {"training": {
                "task": config.task, "stage": name, "steps": int(trainer.global_step),
                "minutes": round(task.trained_minutes(), 2), "init_from": task.init_from,
                "config": json.loads(json.dumps(cfg.to_dict(), default=list)), "history": task.history,
            }}
            task.model_to_save().save_pretrained(folder, overwrite=True, dtype=cfg.save_dtype, metadata=metadata)
            (folder / "train_config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
            print(f"{label}saved {folder} after {trainer.global_step} steps", flush=True)
        previous, result = str(folder), folder
        if final:
            break
    return result


"""Training the describer: `DescribeTask` (LightningModule) and `train_describer(config)`.

Data: synthetic-world sequences (frames, dates, 5 reference captions, scene) and, for the language
side, LEVIR-CC train/val captions (text-only LM loss, skipped when the file is absent). Each training
item is either the change task (CTP prompt, one random reference caption as target) or, with
probability `scene_prob`, the scene task (`SCENE_PROMPT`, the scene text as target), so the model can
write the scene for CTP itself. Middle frames are dropped at random (`frame_drop`), first and last
kept, so the caption (first -> last change) stays true and the model sees 2..T frames.

Loss per step: `l_text * L_text + l_temp * L_temp (+ levir_weight * L_text(LEVIR-CC text))`.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tamms.errors import ConfigError
from tamms.models.describer import SCENE_PROMPT, Describer, DescriberConfig, change_prompt
from tamms.pipelines.describe import DescriberInput, prepare_input


@dataclass
class DescribeTrainConfig:
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    max_steps: int = 1000
    max_minutes: float | None = None  # wall-clock cap (Lightning max_time)
    l_text: float = 1.0
    l_temp: float = 0.1  # TAMMs table 4: contrastive weight 0.1
    levir_weight: float = 0.1
    levir_batch: int = 16
    scene_prob: float = 0.2
    frame_drop: float = 0.5  # probability of dropping middle frames of an item
    val_every: int = 200
    seed: int = 0
    devices: int = 1
    strategy: str = "auto"  # "ddp_spawn" for several CPU processes
    num_workers: int = 0
    save_dtype: str = "float32"  # "float16" for the shipped weights (half the size)
    vision_lr_mult: float = 1.0  # learning-rate factor of vision tower + projector
    init_from: str | None = None  # continue from a saved describer folder (its model config and tokenizer are kept)


# --- data -----------------------------------------------------------------------------------------
class DescribeDataset(Dataset):
    """Items for the describer; frames kept as uint8 to stay small in memory."""

    def __init__(self, inputs: Sequence[DescriberInput], use_ctp: bool = True, scene_prob: float = 0.0,
                 frame_drop: float = 0.0, train: bool = True, seed: int = 0):
        self.items = [(torch.round(x.frames * 255).to(torch.uint8), x.days, x.dates, x.scene, list(x.captions or []))
                      for x in inputs]
        self.use_ctp, self.scene_prob, self.frame_drop, self.train = use_ctp, scene_prob, frame_drop, train
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        frames, days, dates, scene, captions = self.items[index]
        rng = self.rng if self.train else random.Random(index)
        keep = list(range(frames.shape[0]))
        if self.train and len(keep) > 2 and rng.random() < self.frame_drop:
            middle = [i for i in keep[1:-1] if rng.random() < 0.5]
            keep = [0, *middle, len(keep) - 1]
        frames, days, dates = frames[keep].float() / 255.0, days[keep], [dates[i] for i in keep]
        if self.train and scene and self.use_ctp and rng.random() < self.scene_prob:
            return {"frames": frames, "days": days, "prompt": SCENE_PROMPT, "target": scene, "kind": "scene"}
        target = rng.choice(captions) if self.train else captions[0]
        return {"frames": frames, "days": days, "prompt": change_prompt(dates, scene, self.use_ctp),
                "target": target, "kind": "change", "captions": captions}


def collate_describe(batch: Sequence[dict[str, Any]]) -> dict[str, list]:
    return {k: [b.get(k) for b in batch] for k in batch[0]}


# --- LightningModule ------------------------------------------------------------------------------
class DescribeTask(L.LightningModule):
    """Wires a `Describer` to its composite loss, AdamW and a warm-up + cosine schedule."""

    def __init__(self, model: Describer, train_config: DescribeTrainConfig, levir_texts: Sequence[str] = ()):
        super().__init__()
        self.model = model
        self.cfg = train_config
        self.levir_texts = list(levir_texts)
        self._rng = random.Random(train_config.seed)
        self._start: float | None = None
        self.save_hyperparameters({"describer": model.config.to_dict(), "train": asdict(train_config)})

    def _loss(self, batch: dict[str, list]) -> dict[str, torch.Tensor]:
        out = self.model(batch["frames"], batch["days"], batch["prompt"], batch["target"])
        loss = self.cfg.l_text * out["loss_text"]
        logs = {"loss_text": out["loss_text"].detach()}
        change = [i for i, k in enumerate(batch["kind"]) if k == "change"]
        if self.cfg.l_temp > 0 and len(change) > 1:
            l_temp = self.model.temporal_loss(out["semantic"][change], [batch["target"][i] for i in change])
            loss = loss + self.cfg.l_temp * l_temp
            logs["loss_temp"] = l_temp.detach()
        logs["loss"] = loss
        return logs

    def on_train_start(self) -> None:
        self._start = time.monotonic()

    def training_step(self, batch: dict[str, list], batch_idx: int) -> torch.Tensor:
        logs = self._loss(batch)
        loss = logs["loss"]
        if self.levir_texts and self.cfg.levir_weight > 0:
            texts = self._rng.sample(self.levir_texts, min(self.cfg.levir_batch, len(self.levir_texts)))
            l_levir = self.model.lm_loss_text_only(texts)
            loss = loss + self.cfg.levir_weight * l_levir
            logs["loss_levir"] = l_levir.detach()
        n = len(batch["target"])
        for k, v in logs.items():
            self.log(f"train/{k}", v.detach(), prog_bar=k in ("loss", "loss_text"), batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, list], batch_idx: int) -> None:
        logs = self._loss(batch)
        n = len(batch["target"])
        self.log("val/loss_text", logs["loss_text"], prog_bar=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        visual = ("vision.", "projector.", "visual_pos")
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                groups.setdefault((p.ndim >= 2, name.startswith(visual)), []).append(p)
        # the visual path learns slowest from the LM's gradient alone: `vision_lr_mult` speeds it up
        opt = torch.optim.AdamW([
            {"params": ps, "weight_decay": self.cfg.weight_decay if decay else 0.0,
             "lr": self.cfg.lr * (self.cfg.vision_lr_mult if is_visual else 1.0)}
            for (decay, is_visual), ps in groups.items()], lr=self.cfg.lr)
        warm, total = self.cfg.warmup_steps, max(self.cfg.max_steps, 1)
        # with a wall-clock cap on one process, the cosine follows whichever runs out first, steps or time
        # (not under DDP: ranks' clocks differ and their learning rates must not)
        budget = self.cfg.max_minutes * 60 if self.cfg.max_minutes and self.cfg.devices == 1 else None

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            if budget is not None and self._start is not None:
                progress = max(progress, (time.monotonic() - self._start) / budget)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class StepLogger(L.Callback):
    """One plain line every `every` steps (background logs, where a live progress bar shows nothing)."""

    def __init__(self, every: int = 25):
        self.every, self.start = every, time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and step % self.every == 0:
            metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
            print(f"step {step} {(time.monotonic() - self.start) / 60:.1f} min {metrics}", flush=True)


# --- config + data assembly -----------------------------------------------------------------------
DEFAULT_LEVIR_CC = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "levir_cc" / "captions_trainval.json"


def load_config(path: str | Path) -> dict[str, Any]:
    from tamms.utils import read_config

    return read_config(path, "src/tamms/configs/describe.yaml", "a mapping with keys model, data, train, output")


def synthetic_inputs(data_cfg: dict[str, Any], image_size: int, max_frames: int) -> dict[str, list[DescriberInput]]:
    """The synthetic world split by sequence into train / val / test `DescriberInput`s."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    n = int(data_cfg.get("n", 2000))
    seed = int(data_cfg.get("seed", 0))
    world = SyntheticWorldConfig(size=int(data_cfg.get("size", 64)), frames=int(data_cfg.get("frames", 6)),
                                 **dict(data_cfg.get("world", {})))
    splits: dict[str, list[DescriberInput]] = {"train": [], "val": [], "test": []}
    for i in range(n):
        seq = generate_sequence(i, world, seed=seed)
        sid = str(seq.meta.get("id", i))
        splits[split_of(sid)].append(prepare_input(seq, image_size, max_frames))
    return splits


def levir_cc_texts(path: str | Path | None) -> list[str]:
    """LEVIR-CC train/val captions, or [] when the file is not there (training still works)."""
    if not path:
        return []
    path = Path(path)
    if not path.is_file():
        return []
    from tamms.data.readers import read_levir_cc

    pairs = read_levir_cc(path)
    return sorted({c.strip() for v in pairs.values() if v.get("split") in ("train", "val") for c in v["captions"] if c.strip()})


def tokenizer_corpus(inputs: Sequence[DescriberInput], extra: Sequence[str]) -> list[str]:
    from tamms.models.describer import CTP_INSTRUCTION, PLAIN_INSTRUCTION

    corpus = [CTP_INSTRUCTION, PLAIN_INSTRUCTION, SCENE_PROMPT]
    corpus += [f"Dates: {y}-{m:02d}-{d:02d}." for y in range(1970, 2041) for m in range(1, 13) for d in (1, 15, 28)]
    for x in inputs:
        corpus += list(x.captions or [])
        if x.scene:
            corpus.append(x.scene)
    return corpus + list(extra)


def train_describer(config: dict[str, Any] | str | Path, output: str | Path | None = None,
                    train_inputs: Sequence[DescriberInput] | None = None,
                    val_inputs: Sequence[DescriberInput] | None = None,
                    overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a describer from a config (dict or YAML/JSON path) and save it with `save_pretrained`.

    Config keys: `model` (DescriberConfig fields), `data` (`synthetic`: {n, size, frames, seed, world},
    `levir_cc`: caption JSON path or null, `tokenizer_vocab`), `train` (DescribeTrainConfig fields),
    `output` (folder). `train_inputs` / `val_inputs` replace the synthetic data (tests).
    Returns a summary dict (steps, minutes, losses, output folder).
    """
    from lightning.pytorch.callbacks import RichProgressBar

    from tamms.models.language import train_tokenizer

    if not isinstance(config, dict):
        config = load_config(config)
    unknown = set(config) - {"model", "data", "train", "output"}
    if unknown:
        raise ConfigError(f"unknown top-level config keys {sorted(unknown)}: use model, data, train, output")
    model_cfg = DescriberConfig.from_dict(config.get("model", {}))
    try:
        train_cfg = DescribeTrainConfig(**config.get("train", {}))
    except TypeError as exc:
        raise ConfigError(f"bad train config: {exc}; see DescribeTrainConfig for the keys") from None
    data_cfg = dict(config.get("data", {}))
    out_dir = Path(output or config.get("output") or "describer-model")
    if (out_dir / "model.safetensors").exists() and not overwrite:
        from tamms.errors import OutputExistsError

        raise OutputExistsError(f"{out_dir} already holds a model: choose another output or pass --overwrite")

    L.seed_everything(train_cfg.seed, workers=True)
    if train_inputs is None:
        splits = synthetic_inputs(data_cfg.get("synthetic", {}), model_cfg.vision.image_size, model_cfg.max_frames)
        train_inputs, val_inputs = splits["train"], splits["val"]
    levir_path = data_cfg.get("levir_cc", str(DEFAULT_LEVIR_CC))
    levir = levir_cc_texts(levir_path)
    if train_cfg.init_from:
        from tamms.models.describer import Describer

        model = Describer.from_pretrained(train_cfg.init_from).train()
        model_cfg = model.config
    else:
        tokenizer = train_tokenizer(tokenizer_corpus(train_inputs, levir),
                                    vocab_size=int(data_cfg.get("tokenizer_vocab", 2048)))
        model = Describer(model_cfg, tokenizer)
    task = DescribeTask(model, train_cfg, levir)

    train_ds = DescribeDataset(train_inputs, model_cfg.use_ctp, train_cfg.scene_prob, train_cfg.frame_drop,
                               train=True, seed=train_cfg.seed)
    loader = DataLoader(train_ds, batch_size=train_cfg.batch_size, shuffle=True, collate_fn=collate_describe,
                        num_workers=train_cfg.num_workers, drop_last=len(train_ds) > train_cfg.batch_size)
    val_loader = None
    if val_inputs:
        val_ds = DescribeDataset(val_inputs, model_cfg.use_ctp, train=False)
        val_loader = DataLoader(val_ds, batch_size=train_cfg.batch_size, collate_fn=collate_describe)
    n_train = len(train_inputs)
    del train_inputs, val_inputs  # the datasets keep uint8 copies; free the float32 frames
    splits = None

    strategy: Any = train_cfg.strategy
    if train_cfg.devices > 1 and strategy in ("auto", "ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        # some parameters get no gradient on some steps (L_temp heads when a batch has < 2 change items)
        strategy = DDPStrategy(start_method="spawn" if strategy != "ddp" else "popen",
                               find_unused_parameters=True, process_group_backend="gloo")
    steps_per_epoch = max(1, len(loader))
    trainer = L.Trainer(
        accelerator="cpu", devices=train_cfg.devices, strategy=strategy, max_steps=train_cfg.max_steps,
        max_epochs=-1, max_time={"minutes": train_cfg.max_minutes} if train_cfg.max_minutes else None,
        val_check_interval=min(train_cfg.val_every, steps_per_epoch) if val_loader else None,
        check_val_every_n_epoch=None if val_loader else 1,
        num_sanity_val_steps=0, limit_val_batches=4, logger=False, enable_checkpointing=False,
        enable_model_summary=False, gradient_clip_val=1.0, log_every_n_steps=10,
        callbacks=([RichProgressBar()] if progress else []) + [StepLogger()],
        enable_progress_bar=bool(progress),
    )
    start = time.time()
    trainer.fit(task, loader, val_loader)
    minutes = (time.time() - start) / 60
    summary = {
        "steps": int(trainer.global_step), "minutes": round(minutes, 2), "train_sequences": n_train,
        "levir_cc_captions": len(levir), "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "final": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "output": str(out_dir),
    }
    if trainer.is_global_zero:
        model.save_pretrained(out_dir, overwrite=True, dtype=train_cfg.save_dtype,
                              metadata={"training": json.loads(json.dumps({"config": config, "summary": summary}, default=str))})
    summary["task"] = task
    return summary

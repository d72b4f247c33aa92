"""Training change detectors: bi-temporal pair datasets and one LightningModule for Siamese and UniChange.

Joint training over datasets whose labels differ (UniChange, "multi-source joint training"):
- the synthetic world: consecutive frames of training-split sequences, change = land cover differs,
  semantic labels from the land-cover maps -> binary and semantic tasks, categories drawn at random;
- LEVIR-CD: binary building change only -> "segment the changed building areas", semantic terms off.
  Only the `train_*` tiles are used (random 64 px crops, flips, rotations); the `test_*` tiles are kept
  for evaluation (benchmarks/detect_quality.py).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from tamms.errors import ConfigError
from tamms.models.change.unichange import ChangeTask, normalise_category

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Datasets: items are dicts with before/after [3, H, W], change [H, W], lc_before/lc_after [H, W] (-1 if
# unknown), source str
# ----------------------------------------------------------------------------------------------------------

def synthetic_pairs(n_sequences: int, split: str, size: int = 64, frames: int = 4, seed: int = 0,
                    future: bool = True) -> list[dict[str, np.ndarray]]:
    """Consecutive-frame pairs (and last frame -> future frame) of the synthetic sequences of one split."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    config = SyntheticWorldConfig(size=size, frames=frames)
    pairs, index = [], 0
    wanted = 0
    while wanted < n_sequences:
        if split_of(f"syn_{index:06d}") == split:  # the world's own id format; checked below
            seq = generate_sequence(index, config, seed=seed)
            if split_of(seq.meta["id"]) != split:
                raise ConfigError(f"synthetic sequence {index} has id {seq.meta['id']!r}: update synthetic_pairs")
            rgb = list(seq.rgb_bands or (0, 1, 2))
            frames_ = [f[rgb] for f in seq.frames]
            lcs = list(seq.landcover)
            if future and seq.future_frame is not None and seq.future_landcover is not None:
                frames_.append(seq.future_frame[rgb])
                lcs.append(seq.future_landcover)
            for t in range(len(frames_) - 1):
                pairs.append({
                    "before": frames_[t].astype(np.float32), "after": frames_[t + 1].astype(np.float32),
                    "change": (lcs[t] != lcs[t + 1]).astype(np.uint8),
                    "lc_before": lcs[t].astype(np.int64), "lc_after": lcs[t + 1].astype(np.int64),
                    "source": "synthetic", "name": f"syn{index:05d}_{t}",
                })
            wanted += 1
        index += 1
    return pairs


def levir_pairs(root: str | Path, prefix: str) -> list[dict[str, Any]]:
    """LEVIR-CD tiles whose name starts with `prefix` ("train_" or "test_")."""
    from tamms.data.readers import read_levir_cd

    out = []
    for p in read_levir_cd(root):
        if p.name.split("/")[-1].startswith(prefix):
            h, w = p.mask.shape
            out.append({"before": p.before, "after": p.after, "change": p.mask.astype(np.uint8),
                        "lc_before": np.full((h, w), -1, np.int64), "lc_after": np.full((h, w), -1, np.int64),
                        "source": "levir", "name": p.name})
    return out


def _augment(item: dict, rng: random.Random, crop: int | None) -> dict:
    """Same random crop, flip and quarter turn for every array of a pair."""
    arrays = {k: v for k, v in item.items() if isinstance(v, np.ndarray)}
    h, w = arrays["change"].shape
    if crop and (h > crop or w > crop):
        y, x = rng.randint(0, h - crop), rng.randint(0, w - crop)
        arrays = {k: v[..., y : y + crop, x : x + crop] for k, v in arrays.items()}
    k, flip = rng.randint(0, 3), rng.random() < 0.5
    out = {}
    for key, v in arrays.items():
        v = np.rot90(v, k, axes=(-2, -1))
        if flip:
            v = v[..., ::-1]
        out[key] = np.ascontiguousarray(v)
    if rng.random() < 0.5:  # the order of the dates: change is symmetric, semantic labels swap with it
        out["before"], out["after"] = out["after"], out["before"]
        out["lc_before"], out["lc_after"] = out["lc_after"], out["lc_before"]
    return {**item, **out}


class PairDataset(Dataset):
    """A list of pairs, optionally augmented; `length` > len(pairs) draws random crops repeatedly."""

    def __init__(self, pairs: list[dict], augment: bool = False, crop: int | None = None, length: int | None = None):
        if not pairs:
            raise ConfigError("no change pairs to train on: check the data section of the config")
        self.pairs, self.augment, self.crop = pairs, augment, crop
        self.length = length or len(pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        item = self.pairs[i % len(self.pairs)]
        if self.augment:
            item = _augment(item, random, self.crop)  # the global RNG, seeded by seed_everything (workers=0)
        return {"before": torch.from_numpy(np.asarray(item["before"], np.float32)),
                "after": torch.from_numpy(np.asarray(item["after"], np.float32)),
                "change": torch.from_numpy(np.asarray(item["change"], np.uint8)),
                "lc_before": torch.from_numpy(np.asarray(item["lc_before"], np.int64)),
                "lc_after": torch.from_numpy(np.asarray(item["lc_after"], np.int64)),
                "source": item["source"], "name": item["name"]}


def collate_pairs(items: list[dict]) -> dict:
    out = {k: torch.stack([it[k] for it in items]) for k in ("before", "after", "change", "lc_before", "lc_after")}
    out["source"] = [it["source"] for it in items]
    out["name"] = [it["name"] for it in items]
    return out


# ----------------------------------------------------------------------------------------------------------
# Tasks and targets for UniChange
# ----------------------------------------------------------------------------------------------------------

def sample_task(source: str, class_names: list[str], rng: random.Random, levir_category: str = "building") -> ChangeTask:
    """The instruction a training sample gets. LEVIR-CD: building change, binary. Synthetic: half semantic
    change over every class, a quarter binary change over every class, a quarter 1-3 named categories
    (binary or semantic)."""
    if source == "levir":
        return ChangeTask([levir_category], semantic=False)
    r = rng.random()
    if r < 0.5:
        return ChangeTask(list(class_names), semantic=True, all_categories=True)
    if r < 0.75:
        return ChangeTask(None, semantic=False)
    cats = rng.sample(class_names, rng.randint(1, 3))
    return ChangeTask(cats, semantic=rng.random() < 0.5)


def task_targets(task: ChangeTask, change: torch.Tensor, lc_before: torch.Tensor, lc_after: torch.Tensor,
                 class_names: list[str], source_classes: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of one sample for its task: the change asked for (changes touching a named category), and the
    semantic class maps as indices 0 = other, k+1 = k-th named category."""
    if not task.categories or task.all_categories or (lc_before < 0).all():
        target = change
    else:
        ids = torch.tensor([source_classes.index(c) for c in task.categories])
        involved = torch.isin(lc_before, ids) | torch.isin(lc_after, ids)
        target = change * involved
    t1 = torch.zeros_like(lc_before)
    t2 = torch.zeros_like(lc_after)
    if task.semantic:
        for k, c in enumerate(task.categories):
            cid = source_classes.index(c)
            t1[lc_before == cid] = k + 1
            t2[lc_after == cid] = k + 1
    return target, t1, t2


# ----------------------------------------------------------------------------------------------------------
# Lightning module
# ----------------------------------------------------------------------------------------------------------

class ChangeDetectionTask(L.LightningModule):
    """Wires a change network ("siamese" or "unichange") to its loss, AdamW with cosine decay, and val F1."""

    def __init__(self, model: str = "unichange", model_config: dict | None = None, lr: float = 2e-3,
                 weight_decay: float = 1e-4, max_steps: int = 1000, warmup_steps: int = 50, seed: int = 0,
                 source_classes: list[str] | None = None):
        super().__init__()
        self.save_hyperparameters()
        from tamms.models import build_model as build_network

        self.net = build_network(model, model_config or {})
        self.model_name = model
        self.rng = random.Random(seed)
        names = getattr(getattr(self.net, "config", None), "class_names", None)
        self.class_names = list(names) if names else []
        # the synthetic world's class list, in its label order (normalised names)
        self.source_classes = [normalise_category(c) for c in (source_classes or self.class_names)]
        self.val_counts = torch.zeros(3)  # tp, fp, fn
        self.history: list[dict] = []

    def _loss(self, batch: dict) -> dict[str, torch.Tensor]:
        a, b, change = batch["before"], batch["after"], batch["change"]
        if self.model_name == "siamese":
            from tamms.models.change.unichange import dice_loss

            logits = self.net(a, b)
            bce = F.binary_cross_entropy_with_logits(logits, change.float())
            dice = dice_loss(logits, change)
            return {"bce": bce, "dice": dice, "total": 2.0 * bce + 0.5 * dice}
        from tamms.models.change.unichange import unichange_loss

        tasks, targets, t1s, t2s = [], [], [], []
        for i, source in enumerate(batch["source"]):
            task = sample_task(source, self.class_names, self.rng)
            tgt, t1, t2 = task_targets(task, change[i], batch["lc_before"][i], batch["lc_after"][i],
                                       self.class_names, self.source_classes)
            tasks.append(task)
            targets.append(tgt)
            t1s.append(t1)
            t2s.append(t2)
        out = self.net(a, b, tasks)
        has_sem = torch.tensor([t.semantic for t in tasks], device=a.device)
        return unichange_loss(out, torch.stack(targets), torch.stack(t1s), torch.stack(t2s), has_sem,
                              change_all=change, weights=self.net.config.loss_weights)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self._loss(batch)
        for k, v in terms.items():
            self.log(f"train/{k}", v.detach(), prog_bar=k == "total", batch_size=len(batch["source"]))
        if self.global_step % 10 == 0:
            row = {k: round(float(v.detach()), 5) for k, v in terms.items()}
            self.history.append({"step": int(self.global_step), **row})
            if self.global_step % 50 == 0:
                log.info("step %d: %s", self.global_step, " ".join(f"{k}={v:.4f}" for k, v in row.items()))
        return terms["total"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        a, b, change = batch["before"], batch["after"], batch["change"].bool()
        if self.model_name == "siamese":
            pred = torch.sigmoid(self.net(a, b)) > 0.5
        else:
            task = ChangeTask(None, semantic=False)
            pred = torch.sigmoid(self.net.predict(a, b, task, generate=False).change_logits) > 0.5
        self.val_counts += torch.tensor([(pred & change).sum(), (pred & ~change).sum(), (~pred & change).sum()]).float()

    def on_validation_epoch_end(self) -> None:
        tp, fp, fn = self.val_counts.tolist()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1.0)
        self.log("val/f1", f1, prog_bar=True)
        log.info("step %d: val F1 %.4f", self.global_step, f1)
        self.history.append({"step": int(self.global_step), "val_f1": round(f1, 5)})
        self.val_counts.zero_()

    def configure_optimizers(self):
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        warm, total = self.hparams.warmup_steps, max(self.hparams.max_steps, 1)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(total - warm, 1))))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


# ----------------------------------------------------------------------------------------------------------
# Config-driven training (tamms train detect --config FILE)
# ----------------------------------------------------------------------------------------------------------

@dataclass
class DetectTrainConfig:
    model: str = "unichange"
    model_config: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=lambda: {"train_sequences": 300, "val_sequences": 16, "size": 64,
                                                      "frames": 4, "seed": 0})
    levir: dict = field(default_factory=lambda: {"root": "../shared/data/levir_cd", "prefix": "train_", "crop": 64,
                                                  "samples_per_epoch": 256})
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_steps: int = 1000
    max_minutes: float = 12.0
    val_every_steps: int = 200
    seed: int = 0
    init_from: str | None = None  # a weights folder to continue from (a second stage of training)
    output: str | None = None  # default: the shipped weights folder src/tamms/weights/<model>/

    @classmethod
    def load(cls, path: str | Path) -> "DetectTrainConfig":
        from tamms.utils import read_config

        data = read_config(path, "src/tamms/configs/detect_*.yaml")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)} in {path}: allowed are {sorted(cls.__dataclass_fields__)}")
        return cls(**data)


def train_detect(config: DetectTrainConfig, output: str | Path | None = None, overwrite: bool = True,
                 progress: bool = True) -> Path:
    """Train one detector from a config and save it (config.json + model.safetensors + train_log.json).

    progress: Lightning's progress bar; off when the caller shows its own (rich allows one live display)."""
    from tamms.utils import default_weights

    L.seed_everything(config.seed, workers=True)
    t0 = time.time()
    syn = config.synthetic
    train_pairs = synthetic_pairs(syn["train_sequences"], "train", syn.get("size", 64), syn.get("frames", 4), syn.get("seed", 0))
    val_pairs = synthetic_pairs(syn["val_sequences"], "val", syn.get("size", 64), syn.get("frames", 4), syn.get("seed", 0))
    datasets = [PairDataset(train_pairs, augment=True, crop=syn.get("crop"))]  # crop: cheaper steps on a CPU
    levir_note = "not used"
    lv = config.levir or {}
    if lv.get("root"):
        root = Path(lv["root"])
        if root.is_dir():
            tiles = levir_pairs(root, lv.get("prefix", "train_"))
            if tiles:
                datasets.append(PairDataset(tiles, augment=True, crop=lv.get("crop", 64),
                                            length=lv.get("samples_per_epoch", 256)))
                levir_note = f"{len(tiles)} tiles ({', '.join(t['name'] for t in tiles)}), {lv.get('crop', 64)} px crops"
        else:
            log.warning("LEVIR-CD folder %s not found: training on the synthetic world only", root)
    log.info("data: %d synthetic train pairs, %d val pairs, LEVIR-CD %s (%.1f s)", len(train_pairs), len(val_pairs),
             levir_note, time.time() - t0)

    from tamms.data.synthetic import CLASS_NAMES

    source_classes = [normalise_category(c) for c in CLASS_NAMES]
    model_config = dict(config.model_config)
    if config.model == "unichange":
        model_config.setdefault("class_names", source_classes)
    task = ChangeDetectionTask(config.model, model_config, lr=config.lr, weight_decay=config.weight_decay,
                               max_steps=config.max_steps, seed=config.seed, source_classes=source_classes)
    if config.init_from:
        from tamms.models import load_pretrained as load_network

        task.net.load_state_dict(load_network(config.init_from).state_dict())
        log.info("continuing from %s", config.init_from)
    train_loader = DataLoader(ConcatDataset(datasets), batch_size=config.batch_size, shuffle=True,
                              collate_fn=collate_pairs, num_workers=0, drop_last=True)
    val_loader = DataLoader(PairDataset(val_pairs), batch_size=32, collate_fn=collate_pairs)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=config.max_steps,
                        max_time={"minutes": config.max_minutes}, logger=False, enable_checkpointing=False,
                        val_check_interval=config.val_every_steps, check_val_every_n_epoch=None,
                        enable_model_summary=False, num_sanity_val_steps=0, gradient_clip_val=1.0,
                        enable_progress_bar=progress)
    trainer.fit(task, train_loader, val_loader)
    trainer.validate(task, val_loader, verbose=False)

    out = Path(output or config.output or default_weights(config.model))
    task.net.save_pretrained(out)
    params = sum(p.numel() for p in task.net.parameters())
    (out / "train_log.json").write_text(json.dumps({
        "model": config.model, "steps": int(trainer.global_step), "minutes": round((time.time() - t0) / 60, 2),
        "parameters": params, "synthetic_train_pairs": len(train_pairs), "synthetic_val_pairs": len(val_pairs),
        "levir_cd": levir_note, "config": config.__dict__, "history": task.history,
    }, indent=1, default=str))
    return out


__all__ = ["ChangeDetectionTask", "DetectTrainConfig", "PairDataset", "collate_pairs", "synthetic_pairs",
           "levir_pairs", "sample_task", "task_targets", "train_detect"]

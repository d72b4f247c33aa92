"""Lightning task for Sat-JEPA-Diff (both variants): data pairs, losses, EMA target, schedules (appendix B.2).

`JEPAPairDataset` turns sequences into (I_t, I_{t+1}) pairs (consecutive frames and last -> future frame) with
their time gap and, for the caption variant, the triple captions. `SatJEPATask` wires a model from
`tamms.models.jepa_generator` / `tamms.models.jepa_caption` to AdamW with linear warm-up + cosine decay,
a cosine weight-decay schedule 0.04 -> 0.4, and the EMA target update after every optimiser step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from tamms.models.jepa_caption import CaptionBatch, CaptionGuidedSatJEPA, triple_captions
from tamms.models.jepa_generator import SatJEPADiff


def select_bands(seq: Any, channels: int) -> list[int]:
    """The band indices a `channels`-band model takes: RGB for 3, all bands when the counts agree."""
    if channels == seq.num_bands:
        return list(range(channels))
    if channels == 3 and seq.rgb_bands is not None:
        return list(seq.rgb_bands)
    from tamms.errors import InputError

    raise InputError(f"the model takes {channels} bands but the sequence has {seq.num_bands} (rgb_bands="
                     f"{seq.rgb_bands}); give {channels}-band data or train a model for {seq.num_bands} bands")


class JEPAPairDataset(Dataset):
    """Pairs (I_t, I_{t+1}) from sequences (RGB for the paper's 3-band models, else all bands)."""

    def __init__(self, sequences: Sequence[Any], with_captions: bool = False, channels: int = 3):
        self.items: list[dict[str, Any]] = []
        for seq in sequences:
            bands = select_bands(seq, channels)
            frames = list(seq.frames[:, bands])
            days = list(seq.days)
            if seq.future_frame is not None and seq.future_date is not None:
                frames.append(seq.future_frame[bands])
                days.append(float((seq.future_date - seq.dates[0]).days + days[0]))
            sid = str((seq.meta or {}).get("id", (seq.meta or {}).get("name", "seq")))
            for t in range(len(frames) - 1):
                item = {"current": np.asarray(frames[t], np.float32), "future": np.asarray(frames[t + 1], np.float32),
                        "gap_days": float(days[t + 1] - days[t]), "key": f"{sid}/{t + 1}"}
                if with_captions:
                    caps = triple_captions(seq, t)
                    if caps["semantic_next"] is None:
                        continue
                    item.update(caps)
                self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        out = {"current": torch.from_numpy(it["current"]), "future": torch.from_numpy(it["future"]),
               "gap_days": torch.tensor(it["gap_days"], dtype=torch.float32), "key": it["key"]}
        for k in ("informative", "geometric", "semantic_next"):
            if k in it:
                out[k] = it[k]
        return out


def collate_pairs(batch: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in batch[0]:
        vals = [b[k] for b in batch]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def lr_factor(step: int, warmup: int, total: int, base: float, start: float, final: float) -> float:
    """Multiplier of `base`: linear warm-up start -> base, then cosine decay base -> final (appendix B.2)."""
    if step < warmup:
        return (start + (base - start) * step / max(warmup, 1)) / base
    s = min(1.0, (step - warmup) / max(total - warmup, 1))
    return (final + (base - final) * 0.5 * (1 + math.cos(math.pi * s))) / base


def cosine_ramp(step: int, total: int, start: float, end: float) -> float:
    s = min(1.0, step / max(total, 1))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * s))


class SatJEPATask(L.LightningModule):
    """Trains `SatJEPADiff` (variant "rgb") or `CaptionGuidedSatJEPA` (variant "caption")."""

    def __init__(self, model: SatJEPADiff | CaptionGuidedSatJEPA, total_steps: int = 1000, lr: float = 1e-4,
                 start_lr: float = 2e-5, final_lr: float = 1e-6, warmup_steps: int = 50,
                 weight_decay: tuple[float, float] = (0.04, 0.4), seed: int = 0):
        super().__init__()
        self.model = model
        self.total_steps = int(total_steps)
        self.lr, self.start_lr, self.final_lr = lr, start_lr, final_lr
        self.warmup_steps = int(warmup_steps)
        self.weight_decay = tuple(weight_decay)
        self.gen = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, float]] = []

    def _loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if isinstance(self.model, CaptionGuidedSatJEPA):
            caps = CaptionBatch(batch["informative"], batch["geometric"], batch["semantic_next"])
            return self.model.loss(batch["current"], batch["future"], caps, batch["gap_days"], batch["key"], self.gen)
        return self.model.loss(batch["current"], batch["future"], batch["gap_days"], batch["key"], self.gen)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self._loss(batch)
        logs = {k: float(v.detach()) for k, v in out.items()}
        if getattr(self.model, "adapter", None) is not None and hasattr(self.model.adapter, "gate_logit"):
            logs["gate_alpha"] = float(torch.sigmoid(self.model.adapter.gate_logit.detach()))
        self.history.append({"step": float(self.global_step), **logs})
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=batch["current"].shape[0])
        return out["loss"]

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self._loss(batch)
        self.log("val/loss", out["loss"], batch_size=batch["current"].shape[0])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        wd = cosine_ramp(self.global_step, self.total_steps, *self.weight_decay)
        for group in self.trainer.optimizers[0].param_groups:
            if group.get("weight_decay", 0.0) > 0:
                group["weight_decay"] = wd

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # EMA after the optimiser step; global_step has already advanced to the finished step
        self.model.ijepa.update_target(self.global_step, self.total_steps)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay[0]},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, self.warmup_steps, self.total_steps, self.lr, self.start_lr, self.final_lr))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# --------------------------------------------------------------------------------------------- training entry
def training_sequences(data: dict[str, Any], split: str = "train") -> list[Any]:
    """Sequences of the synthetic world for one split (`data`: n_sequences, size, frames, seed)."""
    from tamms.pipelines.jepa import test_sequences

    return test_sequences(int(data.get("n_sequences", 200)), int(data.get("size", 64)), int(data.get("frames", 4)),
                          int(data.get("seed", 0)), split=split, limit=int(data.get("limit", 20000)))


def pretrain_text_encoder(model: CaptionGuidedSatJEPA, texts: Sequence[str], steps: int, batch_size: int = 32,
                          lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Bag-of-words pretraining of the caption text encoder, then freeze it (the card's frozen text encoders)."""
    enc = model.text_encoder
    enc.train()
    opt = torch.optim.AdamW(enc.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        pick = [texts[i] for i in rng.integers(0, len(texts), batch_size)]
        loss = enc.bow_loss(pick)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.freeze_text_encoder()
    return losses


def fit(config: dict[str, Any], variant: str, output: str | None = None, overwrite: bool = False,
        sequences: Sequence[Any] | None = None, log=print) -> tuple[Any, dict[str, Any]]:
    """Train a Sat-JEPA-Diff variant from a config dict (sections model / data / training); save if `output`."""
    import time

    from tamms.models.jepa_caption import build_tokenizer
    from tamms.models import build_model

    tr = dict(config.get("training", {}))
    if output and (Path(output) / "model.safetensors").exists() and not overwrite:
        from tamms.errors import OutputExistsError

        raise OutputExistsError(f"{output} already holds weights: choose another --output or pass --overwrite")
    seed = int(tr.get("seed", 0))
    L.seed_everything(seed, verbose=False)
    t0 = time.perf_counter()
    seqs = list(sequences) if sequences is not None else training_sequences(config.get("data", {}), "train")
    channels = int(config.get("model", {}).get("ijepa", {}).get("in_channels", 3))
    dataset = JEPAPairDataset(seqs, with_captions=(variant == "caption"), channels=channels)
    if len(dataset) == 0:
        from tamms.errors import InputError

        raise InputError("no training pairs: the sequences need at least two frames (and captions for the caption variant)")
    log(f"[jepa] {len(seqs)} sequences -> {len(dataset)} pairs ({time.perf_counter() - t0:.1f}s)")
    tokenizer = None
    if variant == "caption":
        texts = [it[k] for it in dataset.items for k in ("informative", "geometric", "semantic_next")]
        tokenizer = build_tokenizer(texts, int(config.get("model", {}).get("text", {}).get("vocab_size", 512)))
    init_from = tr.get("init_from")
    if init_from:  # continue from saved weights (same architecture); the caption tokenizer comes with them
        from tamms.models import load_pretrained

        model = load_pretrained(init_from).train()
        if model.variant != variant:
            from tamms.errors import ConfigError

            raise ConfigError(f"init_from {init_from} holds a {model.variant!r} model, not {variant!r}")
        if variant == "caption":
            model.freeze_text_encoder()
        log(f"[jepa] continuing from {init_from}")
    else:
        model = build_model("satjepa-diff-caption" if variant == "caption" else "satjepa-diff", config.get("model", {}),
                            **({"tokenizer": tokenizer} if variant == "caption" else {}))
    if variant == "caption" and not init_from:
        losses = pretrain_text_encoder(model, texts, int(tr.get("text_pretrain_steps", 300)), seed=seed)
        log(f"[jepa] text encoder bag-of-words loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    steps = int(tr.get("max_steps", 500))
    task = SatJEPATask(model, total_steps=steps, lr=float(tr.get("lr", 1e-4)), start_lr=float(tr.get("start_lr", 2e-5)),
                       final_lr=float(tr.get("final_lr", 1e-6)), warmup_steps=int(tr.get("warmup_steps", 50)),
                       weight_decay=tuple(tr.get("weight_decay", (0.04, 0.4))), seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=int(tr.get("batch_size", 8)), shuffle=True,
                                         collate_fn=collate_pairs, drop_last=True, num_workers=0)
    every = int(tr.get("log_every", 25))

    class _Progress(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            h = pl_module.history[-1]
            if trainer.global_step % every == 0 or trainer.global_step == steps:
                log(f"[jepa] step {trainer.global_step}/{steps} loss {h['loss']:.4f} ijepa {h['ijepa/loss']:.4f} "
                    f"flow {h['diff/flow']:.4f}" + (f" caption {h['caption']:.4f}" if "caption" in h else "")
                    + (f" alpha {h['gate_alpha']:.3f}" if "gate_alpha" in h else "")
                    + f" ({time.perf_counter() - t0:.0f}s)")

    max_minutes = tr.get("max_minutes")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[_Progress()],
                        max_time={"minutes": float(max_minutes)} if max_minutes else None,
                        gradient_clip_val=float(tr.get("grad_clip", 1.0)))
    trainer.fit(task, loader)
    previous = []
    if init_from:
        import json as _json

        prev_cfg = _json.loads((Path(init_from) / "config.json").read_text(encoding="utf-8"))
        previous = prev_cfg.get("training_runs", []) or ([prev_cfg["training"]] if "training" in prev_cfg else [])
    summary = {"steps": int(trainer.global_step), "pairs": len(dataset), "sequences": len(seqs),
               "seconds": round(time.perf_counter() - t0, 1),
               "final": {k: round(v, 5) for k, v in task.history[-1].items()} if task.history else {}}
    log(f"[jepa] done: {summary}")
    if output:
        extra = {"training": summary, "train_config": config, "training_runs": previous + [summary]}
        model.save_pretrained(output, overwrite=overwrite, metadata=extra)
        log(f"[jepa] saved to {output}")
    return model.eval(), summary

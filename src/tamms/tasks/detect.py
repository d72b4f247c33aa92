"""Training change detectors (`tamms train detect`): one `TammsTask` for the Siamese CNN and UniChange.

The config's `model` section is `name: siamese | unichange` plus that network's config fields; `options` is
`DetectOptions`. Samples are the data module's pairs (`image [B, 2, C, H, W]`, `mask [B, H, W]`, `landcover
[B, 2, H, W]` when known, `meta`): the synthetic world's consecutive frames (and last -> future frame) plus
the real LEVIR-CD-style folders of `data.real` (their train split; val/test pairs are held out).

Joint training over datasets whose labels differ (UniChange, "multi-source joint training"):
- pairs with land cover (the synthetic world): change = land cover differs; binary and semantic tasks with
  categories drawn at random (`sample_task`);
- pairs without land cover (real folders): binary change only, semantic terms off. A folder whose name
  contains a key of `options.real_categories` labels that category only (LEVIR-CD: "segment the changed
  building areas"); any other folder labels every change ("segment all changed areas").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tamms.config import from_dict
from tamms.errors import ConfigError, InputError
from tamms.models.change.unichange import ChangeTask, dice_loss, normalise_category, unichange_loss
from tamms.tasks.base import TammsTask

MODELS = ("siamese", "unichange", "unet_ef")  # unet_ef: the early-fusion ResNet-18 U-Net peer (benchmarks)
MODEL_TYPES = {"siamese": "siamese", "unichange": "unichange", "unet_ef": "unet-ef"}  # model.name -> model_type


@dataclass
class DetectOptions:
    """`options:` of a detect config (the network's own settings live in `model:`)."""

    bce_weight: float = 2.0  # siamese loss: bce_weight * BCE + dice_weight * Dice
    dice_weight: float = 0.5  # (UniChange: model.loss_weights)
    pos_weight: float | None = None  # BCE weight of changed pixels (rare change, e.g. OSCD ~3%: 10-30); None = 1
    # real folders (by name) whose masks label one category: UniChange asks for that category's change
    real_categories: dict[str, str] = field(default_factory=lambda: {"levir": "building"})
    source_classes: list[str] | None = None  # land-cover label order of the data (None: the synthetic world's)
    seed: int = 0  # UniChange task sampling
    # real pairs held out by name, per folder name: {oscd: {val: [pisa, ...], test: [...]}}; the pairs of a listed
    # folder that are not named train (folders not listed keep their recorded split or name hash)
    holdout: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # what is not change, drawn per date of every training pair (probability per date; 0 = off): brightness,
    # contrast, per-band gain and mixing (colour, season), gamma, haze, noise; and a 1-2 px shift of one date
    augment_real: float = 0.0  # pairs without land cover (real folders)
    augment_synthetic: float = 0.0  # pairs with land cover (the synthetic world)
    misregister: float = 0.0  # probability that a pair's later date is shifted by 1-2 px
    # the folders of data.real (by folder name) this run trains on; None = all (a stage can train on fewer)
    real_folders: list[str] | None = None
    # model selection on the real val pairs: at every validation the whole val scenes of data.real are detected
    # (tiled, as `tamms detect` does); the weights saved at the end are those with the best mean real val F1 over
    # the folders among validations whose synthetic val F1 >= synthetic_val_floor (if none reaches it: the best
    # synthetic val F1; without synthetic data: the best real val F1). False: the weights of the last step
    select_on_real_val: bool = False
    synthetic_val_floor: float = 0.9

    def __post_init__(self) -> None:
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ConfigError(f"options.pos_weight={self.pos_weight}: give a positive weight (or null for 1)")
        for name in ("augment_real", "augment_synthetic", "misregister"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"options.{name}={getattr(self, name)}: give a probability in [0, 1]")
        for folder, splits in self.holdout.items():
            wrong = sorted(set(splits) - {"val", "test"})
            if wrong:
                raise ConfigError(f"options.holdout.{folder} has splits {wrong}: list pair names under val and test")


def split_model_section(model: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`model:` -> (network name, the network's config fields)."""
    fields = dict(model)
    name = fields.pop("name", None)
    if name not in MODELS:
        raise ConfigError(f"model.name is {name!r}: set model.name to one of {list(MODELS)} (e.g. --set "
                          "model.name=siamese)")
    return str(name), fields


# ----------------------------------------------------------------------------------------------------------
# Augmenting what is not change (per date): light, colour, season, haze, noise, misregistration
# ----------------------------------------------------------------------------------------------------------

def _uniform(g: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def augment_not_change(pair: torch.Tensor, probability: torch.Tensor, misregister: float,
                       g: torch.Generator) -> torch.Tensor:
    """Each date of each pair `[B, 2, C, H, W]` (values in [0, 1]) is, with its sample's `probability` `[B]`,
    re-lit and re-coloured independently of the other date: brightness offset, contrast, per-band gain and a
    small band mixing (season, sensor colour), gamma, haze (a veil towards a bright grey) and noise. With
    probability `misregister` the later date moves by 1-2 px. The change mask stays as it is: none of this is
    change."""
    B, T, C, H, W = pair.shape
    x = pair.reshape(B * T, C, H, W)  # every date on its own
    on = (torch.rand(B * T, generator=g) < probability.repeat_interleave(T).cpu()).float().view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(g, (B * T, 1, 1, 1), 0.7, 1.3)
    brightness = _uniform(g, (B * T, 1, 1, 1), -0.12, 0.12)
    mixing = torch.eye(C) + _uniform(g, (B * T, C, C), -0.08, 0.08)  # [BT, C, C] near identity
    gain = _uniform(g, (B * T, C, 1), 0.8, 1.2)
    gamma = torch.exp(_uniform(g, (B * T, 1, 1, 1), -0.25, 0.25))
    haze = _uniform(g, (B * T, 1, 1, 1), 0.0, 0.3) * (torch.rand(B * T, 1, 1, 1, generator=g) < 0.3)
    haze_colour = _uniform(g, (B * T, 1, 1, 1), 0.6, 0.9)
    noise_sigma = _uniform(g, (B * T, 1, 1, 1), 0.0, 0.02)
    device = x.device
    y = (x - mean) * contrast.to(device) + mean + brightness.to(device)
    y = torch.einsum("ncd,ndp->ncp", (mixing * gain).to(device), y.reshape(B * T, C, H * W)).reshape(B * T, C, H, W)
    y = y.clamp(0, 1) ** gamma.to(device)
    y = y * (1 - haze.to(device)) + haze.to(device) * haze_colour.to(device)
    y = y + noise_sigma.to(device) * torch.randn(y.shape, generator=g).to(device)
    on = on.to(device)
    out = (on * y.clamp(0, 1) + (1 - on) * x).reshape(B, T, C, H, W)
    if misregister > 0:
        shifted = []
        for i in range(B):
            later = out[i, 1]
            if torch.rand((), generator=g) < misregister:
                dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
                padded = F.pad(later[None], (2, 2, 2, 2), mode="replicate")[0]  # [C, H+4, W+4]
                later = padded[:, 2 + dy: 2 + dy + H, 2 + dx: 2 + dx + W]
            shifted.append(torch.stack([out[i, 0], later]))
        out = torch.stack(shifted)
    return out


# ----------------------------------------------------------------------------------------------------------
# UniChange: the instruction each training sample gets, and its targets
# ----------------------------------------------------------------------------------------------------------

def sample_task(has_landcover: bool, class_names: list[str], rng: random.Random,
                real_category: str | None = None) -> ChangeTask:
    """The instruction a training sample gets. Without land cover (real pairs): binary change of
    `real_category` (LEVIR-CD: building) or of everything. With land cover: half semantic change over every
    class, a quarter binary change over every class, a quarter 1-3 named categories (binary or semantic)."""
    if not has_landcover:
        return ChangeTask([real_category] if real_category else None, semantic=False)
    r = rng.random()
    if r < 0.5:
        return ChangeTask(list(class_names), semantic=True, all_categories=True)
    if r < 0.75:
        return ChangeTask(None, semantic=False)
    cats = rng.sample(class_names, rng.randint(1, 3))
    return ChangeTask(cats, semantic=rng.random() < 0.5)


def task_targets(task: ChangeTask, change: torch.Tensor, lc_before: torch.Tensor, lc_after: torch.Tensor,
                 source_classes: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of one sample for its task: the change asked for (changes touching a named category), and the
    semantic class maps as indices 0 = other, k+1 = k-th named category. Unknown land cover is -1."""
    if not task.categories or task.all_categories or (lc_before < 0).all():
        target = change
    else:
        ids = torch.tensor([source_classes.index(c) for c in task.categories], device=lc_before.device)
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


def pair_landcover(batch: dict[str, Any], size: tuple[int, int]) -> tuple[torch.Tensor, list[bool]]:
    """`[B, 2, H, W]` land cover of a batch (-1 where a sample has none) and which samples have it (a batch
    may mix synthetic pairs, which have land cover, with real pairs, which do not)."""
    image = batch["image"]
    values = batch.get("landcover")
    if isinstance(values, torch.Tensor):
        return values, [True] * image.shape[0]
    values = values if values is not None else [None] * image.shape[0]
    unknown = torch.full((2, *size), -1, dtype=torch.long, device=image.device)
    known = [v is not None for v in values]
    return torch.stack([v.to(image.device) if v is not None else unknown for v in values]), known


# ----------------------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------------------

class ChangeDetectionTask(TammsTask):
    """A change network (`model.name`: "siamese" or "unichange") trained on bi-temporal pairs; validation is
    the binary F1 pooled over every pixel of the val split (`val/f1`, exact under DDP)."""

    def configure_models(self) -> None:
        from tamms.data.synthetic import CLASS_NAMES
        from tamms.models import build_model

        self.options = from_dict(DetectOptions, self.config.options, "config.options")
        self.model_name, network_config = split_model_section(self.config.model)
        # the label order of the land-cover maps (normalised names), which UniChange's class list defaults to
        self.source_classes = [normalise_category(c) for c in (self.options.source_classes or CLASS_NAMES)]
        if self.model_name == "unichange":
            network_config.setdefault("class_names", list(self.source_classes))
        try:
            self.model = build_model(MODEL_TYPES[self.model_name], network_config)
        except TypeError as exc:  # an unknown network key
            raise ConfigError(f"model: {exc}; see the {self.model_name} config fields in docs/detect.md") from None
        if self.init_from:
            self._load_weights(self.init_from)
        self.class_names = list(getattr(self.model.config, "class_names", []) or [])
        unknown = sorted(set(self.class_names) - set(self.source_classes))
        if unknown:
            raise ConfigError(f"model.class_names {unknown} are not land-cover classes of the data "
                              f"{self.source_classes}: name classes of options.source_classes")
        self.task_rng = random.Random(self.options.seed)  # checkpointed by TammsTask: exact --resume

    def _load_weights(self, folder: str) -> None:
        from tamms.models import load_pretrained

        previous = load_pretrained(folder)
        if previous.model_type != MODEL_TYPES[self.model_name]:
            raise ConfigError(f"init_from {folder} holds a {previous.model_type!r} model, not model.name "
                              f"{self.model_name!r}: start from a {self.model_name} folder")
        try:
            self.model.load_pretrained_state(previous.pretrained_state())
        except RuntimeError as exc:
            raise ConfigError(f"init_from {folder} does not fit the model config ({str(exc).splitlines()[0]}): "
                              "use the model settings it was trained with") from None

    def configure_metrics(self) -> None:
        from tamms.metrics.change import BinaryChangeMetrics

        self.val_change = BinaryChangeMetrics()
        self.val_synthetic = BinaryChangeMetrics()  # the val pairs with land cover (the synthetic world) alone
        if self.options.select_on_real_val and self.model_name == "unichange":
            raise ConfigError("options.select_on_real_val scores binary change networks (siamese, unet_ef); "
                              "UniChange answers requests: set it to false for model.name unichange")
        self.best_selection: dict[str, Any] | None = None  # {"record": {...}, "state": weights}
        self._real_val: dict[str, list] | None = None

    def datamodule(self):
        from tamms.data.datamodule import SitsDataModule

        real = list(self.config.data.real)
        if self.options.real_folders is not None:
            real = [f for f in real if Path(f).name in self.options.real_folders]
        return SitsDataModule.from_config(self.config.data, task="pair", swap_dates=True,
                                          pair_splits=self.options.holdout or None, real=real)

    # -- what each sample asks for --------------------------------------------------------------------
    def real_category(self, meta: dict[str, Any]) -> str | None:
        """The one category a real pair's mask labels (by its folder name), or None (every change)."""
        name = str(meta.get("dataset") or meta.get("source") or "").lower()
        for key, category in self.options.real_categories.items():
            if key.lower() in name:
                return normalise_category(category)
        return None

    @staticmethod
    def _change_mask(batch: dict[str, Any]) -> torch.Tensor:
        masks = batch.get("mask")
        if isinstance(masks, torch.Tensor):
            return masks
        missing = [m.get("id") for m, v in zip(batch["meta"], masks or [None] * len(batch["meta"])) if v is None]
        raise InputError(f"pairs {missing[:3]} have no change mask: change detection trains on labelled pairs "
                         "only; remove their folder from data.real")

    # -- training -------------------------------------------------------------------------------------
    def augment(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's pairs with what is not change augmented (options.augment_*, misregister); seeded from the
        task's checkpointed RNG, so a resumed run draws the same."""
        pair = batch["image"]
        o = self.options
        if not (o.augment_real or o.augment_synthetic or o.misregister):
            return pair
        _, known = pair_landcover(batch, tuple(pair.shape[-2:]))
        probability = torch.tensor([o.augment_synthetic if k else o.augment_real for k in known])
        g = torch.Generator().manual_seed(self.task_rng.getrandbits(63))
        return augment_not_change(pair, probability, o.misregister, g)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        pair = self.augment(batch)  # [B, 2, C, H, W]
        before, after = pair[:, 0], pair[:, 1]
        change = self._change_mask(batch)
        if self.model_name != "unichange":
            logits = self.model(before, after)
            pos_weight = None if self.options.pos_weight is None else logits.new_tensor(self.options.pos_weight)
            bce = F.binary_cross_entropy_with_logits(logits, change.float(), pos_weight=pos_weight)
            dice = dice_loss(logits, change)
            terms = {"loss": self.options.bce_weight * bce + self.options.dice_weight * dice, "bce": bce,
                     "dice": dice}
        else:
            terms = self._unichange_terms(batch, before, after, change)
        self.log_terms(terms, "train", pair.shape[0])
        return terms["loss"]

    def _unichange_terms(self, batch, before, after, change) -> dict[str, torch.Tensor]:
        landcover, known = pair_landcover(batch, tuple(change.shape[-2:]))
        tasks, targets, t1s, t2s = [], [], [], []
        for i, meta in enumerate(batch["meta"]):
            task = sample_task(known[i], self.class_names, self.task_rng,
                               None if known[i] else self.real_category(meta))
            target, t1, t2 = task_targets(task, change[i], landcover[i, 0], landcover[i, 1], self.source_classes)
            tasks.append(task)
            targets.append(target)
            t1s.append(t1)
            t2s.append(t2)
        out = self.model(before, after, tasks)
        has_semantic = torch.tensor([t.semantic for t in tasks], device=before.device)
        terms = unichange_loss(out, torch.stack(targets), torch.stack(t1s), torch.stack(t2s), has_semantic,
                               change_all=change, weights=self.model.config.loss_weights,
                               pos_weight=self.options.pos_weight)
        terms["loss"] = terms.pop("total")
        return terms

    # -- validation: binary change F1 pooled over the val split ---------------------------------------
    @torch.no_grad()
    def predict_change(self, batch: dict[str, Any]) -> torch.Tensor:
        """Binary change `[B, H, W]`: UniChange is asked what training asked (LEVIR: building change; else
        every change), one request per group of samples."""
        pair = batch["image"]
        before, after = pair[:, 0], pair[:, 1]
        threshold = self.model.config.threshold
        if self.model_name != "unichange":
            return torch.sigmoid(self.model(before, after)) > threshold
        _, known = pair_landcover(batch, tuple(pair.shape[-2:]))
        wanted = [None if known[i] else self.real_category(m) for i, m in enumerate(batch["meta"])]
        pred = torch.zeros(pair.shape[0], *pair.shape[-2:], dtype=torch.bool, device=pair.device)
        for category in dict.fromkeys(wanted):
            rows = torch.tensor([i for i, c in enumerate(wanted) if c == category], device=pair.device)
            task = ChangeTask([category] if category else None, semantic=False)
            out = self.model.predict(before[rows], after[rows], task, generate=False)
            pred[rows] = torch.sigmoid(out.change_logits) > threshold
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred, truth = self.predict_change(batch), self._change_mask(batch).bool()
        self.val_change.update(pred, truth)
        _, known = pair_landcover(batch, tuple(batch["image"].shape[-2:]))
        rows = [i for i, k in enumerate(known) if k]
        if rows:
            self.val_synthetic.update(pred[rows], truth[rows])

    def on_validation_epoch_end(self) -> None:
        if not self.val_change.update_called:
            return
        scores = self.val_change.compute()  # counts summed over every process first
        self.val_change.reset()
        for name in ("F1", "IoU", "precision", "recall"):
            self.log(f"val/{name.lower()}", scores[name].float(), prog_bar=name == "F1")
        row = {"step": int(self.global_step), "val_f1": round(float(scores["F1"]), 5)}
        if self.val_synthetic.update_called:
            row["val_synthetic_f1"] = round(float(self.val_synthetic.compute()["F1"]), 5)
            self.val_synthetic.reset()
        if self.options.select_on_real_val:
            self._select(row)
        self.history.append(row)

    # -- model selection on the real val scenes ---------------------------------------------------------
    def real_val_pairs(self) -> dict[str, list]:
        """{folder name: its val pairs} of data.real (whole scenes), by options.holdout or their recorded split."""
        if self._real_val is None:
            from tamms.data.datasets import pair_split

            # the data module being trained on holds the pairs already; build one only outside a fit
            attached = self._trainer is not None and self.trainer.datamodule is not None
            dm = self.trainer.datamodule if attached else self.datamodule()
            self._real_val = {}
            for pair in dm.pairs:
                if pair_split(pair) == "val":
                    self._real_val.setdefault(str(pair.meta.get("dataset")), []).append(pair)
            if not self._real_val:
                raise ConfigError("options.select_on_real_val: data.real holds no val pairs; name some under "
                                  "options.holdout.<folder>.val (or set select_on_real_val: false)")
        return self._real_val

    @torch.no_grad()
    def real_val_f1(self) -> dict[str, float]:
        """Pooled F1 of every real val folder, whole scenes detected in overlapping tiles."""
        from tamms.metrics.change import BinaryChangeMetrics
        from tamms.models.change.siamese import SiameseDetector
        from tamms.pipelines.detect import DetectPipeline

        was_training = self.model.training
        pipe = DetectPipeline(SiameseDetector(self.model, name="in training"))
        out = {}
        for folder, pairs in sorted(self.real_val_pairs().items()):
            metric = BinaryChangeMetrics()
            for pair in pairs:
                bands = list(pair.rgb_bands or (0, 1, 2))
                mask = pipe(torch.from_numpy(pair.before[bands]), torch.from_numpy(pair.after[bands])).mask[0]
                metric.update(mask.bool(), torch.from_numpy(pair.mask).bool())
            out[folder] = round(float(metric.compute()["F1"]), 5)
        self.model.train(was_training)
        return out

    def _select(self, row: dict[str, Any]) -> None:
        real = self.real_val_f1()
        row["real_val_f1"] = real
        row["real_val_mean_f1"] = round(sum(real.values()) / len(real), 5)
        synthetic = row.get("val_synthetic_f1")
        floor_met = synthetic is None or synthetic >= self.options.synthetic_val_floor  # no synthetic data: no floor
        key = (floor_met, row["real_val_mean_f1"] if floor_met else synthetic)
        best = self.best_selection
        if best is None or key > tuple(best["key"]):
            record = {k: row[k] for k in ("step", "val_synthetic_f1", "real_val_f1", "real_val_mean_f1") if k in row}
            self.best_selection = {"key": list(key), "record": record,
                                   "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
            row["selected"] = True
        shown = "-" if synthetic is None else f"{synthetic:.4f}"
        print(f"[detect] step {row['step']}: synthetic val F1 {shown}, real val F1 {real}"
              + (" (best so far)" if row.get("selected") else ""), flush=True)

    def on_fit_end(self) -> None:
        if self.best_selection is not None:  # the saved weights are the selected ones
            self.model.load_state_dict(self.best_selection["state"])
            self.history.append({"selected": self.best_selection["record"]})
            print(f"[detect] selected the weights of step {self.best_selection['record']['step']} on the real val "
                  "pairs", flush=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.best_selection is not None:
            checkpoint["detect_selection"] = self.best_selection

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.best_selection = checkpoint.get("detect_selection")


__all__ = ["ChangeDetectionTask", "DetectOptions", "augment_not_change", "sample_task", "task_targets", "pair_landcover", "MODELS"]

"""Training the describer: `DescribeTask` on the training backbone (`tamms train describe`).

Data: whole-sequence windows of the data module (`data.target: none`, `data.history: null`): frames, dates,
reference captions (first -> last frame) and, in the synthetic world, the scene text. `make_examples` turns a
batch into what the describer learns from (the one place that decides prompts and targets):

- the change task: CTP prompt (dates + scene) with one reference caption drawn at random as the target;
- with probability `options.scene_prob`, the scene task instead: `SCENE_PROMPT` with the scene as target, so
  the model can write the scene for CTP itself at inference;
- middle frames are dropped at random (`options.frame_drop`; first and last kept, so the first -> last caption
  stays true): the model sees 2..T frames.

Loss per step: `l_text * L_text + l_temp * L_temp (+ levir_weight * L_text(LEVIR-CC captions, text only))`,
the LEVIR-CC term only when `options.levir_cc` names the caption file.

Oracle input, kept for now: with `options.scene_source: truth` (the default) the CTP prompt carries the
synthetic world's ground-truth scene text, which a user does not have; `none` writes "Scene: unknown".
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from tamms.config import DataConfig, from_dict
from tamms.data.bands import rgb_indices
from tamms.data.datamodule import SitsDataModule
from tamms.data.sequence import from_days
from tamms.data.synthetic_text import NO_CHANGE_CAPTIONS, change_captions
from tamms.errors import ConfigError, InputError
from tamms.models.describer import SCENE_PROMPT, Describer, DescriberConfig, change_prompt
from tamms.pipelines.describe import DescriberInput, prepare_input
from tamms.tasks.base import TammsTask

# parameters of the visual path (vision tower + projector), which `vision_lr_scale` speeds up
VISUAL_PARAMETERS = ("vision.", "projector.", "visual_pos")


@dataclass
class DescribeOptions:
    """`options:` of a describe config."""

    l_text: float = 1.0
    l_temp: float = 0.1  # TAMMs table 4: contrastive weight 0.1
    levir_cc: str | None = None  # LEVIR-CC caption JSON: adds the text-only LM loss (None: no such term)
    levir_weight: float = 0.1
    levir_batch: int = 16  # LEVIR-CC captions per step
    scene_prob: float = 0.2  # probability of the scene task for an item
    frame_drop: float = 0.5  # probability of dropping middle frames of an item (each with probability 0.5)
    scene_source: str = "truth"  # CTP scene text: "truth" (oracle: the data's scene) or "none" ("unknown")
    user_scene_prob: float = 0.0  # with scene_source none: the fraction of prompts given the scene, as a user's --scene
    # pairs that can only be answered by looking (synthetic world: captions rewritten from its land-cover maps)
    static_prob: float = 0.0  # one frame repeated (slightly jittered) -> a no-change caption
    reverse_prob: float = 0.0  # frames in reverse order (dates kept) -> captions of the reversed change
    window_prob: float = 0.0  # a random sub-window (any first/last frame) -> captions of its own change
    jitter: float = 0.02  # brightness/noise amplitude of repeated frames
    vision_lr_scale: float = 1.0  # learning-rate factor of the visual path (the LM's gradient alone moves it slowly)
    tokenizer_vocab: int = 2048  # BPE vocabulary trained on the training captions (new models only)

    def __post_init__(self) -> None:
        if self.scene_source not in ("truth", "none"):
            raise ConfigError(f"options.scene_source {self.scene_source!r} is not 'truth' or 'none'")
        for name in ("scene_prob", "frame_drop", "user_scene_prob", "static_prob", "reverse_prob", "window_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"options.{name} must be a probability in [0, 1], got {getattr(self, name)}")


@dataclass
class DescribeExample:
    """One training item: what the describer reads and the text it must write."""

    frames: torch.Tensor  # [T, 3, S, S] in [0, 1]
    days: torch.Tensor  # [T] float64 days
    prompt: str
    target: str
    kind: str  # "change" | "scene"
    pair: str = "sequence"  # "sequence" | "static" | "reversed" | "window": how the frames were drawn


# categories whose caption templates describe the reversed change correctly (lake shrinks <-> grows, crops
# change either way, trees cut <-> grow back); the others (houses demolished, ...) have no reverse wording
REVERSIBLE = ("water_level", "crop_rotation", "deforestation", "no_change")
# parameters the continued model may take from the config: they add parts or change inference only
# model keys a continued describer may change: parts added (difference tokens start as a no-op), parts
# switched off (PTE, CTP: the ablations continue the shipped v1 without them), generation settings
EXTENDABLE_KEYS = ("delta_tokens", "generate_scene", "max_new_tokens", "use_pte", "use_ctp")


def describer_config(model: dict[str, Any]) -> DescriberConfig:
    """The `model:` section typed as a `DescriberConfig` (unknown keys name the valid ones)."""
    cfg = from_dict(DescriberConfig, model, "config.model")
    if cfg.train_mode not in ("full", "frozen", "lora"):
        raise ConfigError(f"config.model.train_mode {cfg.train_mode!r} is not one of 'full', 'frozen', 'lora'")
    return cfg


def levir_cc_texts(path: str | None) -> list[str]:
    """The distinct LEVIR-CC train/val captions of the file (or folder) `path`; [] when no path is given."""
    if not path:
        return []
    from tamms.data.readers import read_levir_cc

    pairs = read_levir_cc(path)  # a missing or unreadable file is an InputError naming it
    texts = sorted({c.strip() for v in pairs.values() if v.get("split") in ("train", "val")
                    for c in v["captions"] if c.strip()})
    if not texts:
        raise InputError(f"{path} holds no train/val LEVIR-CC captions: give the LEVIR-CC captions JSON or "
                         "drop options.levir_cc")
    return texts


def tokenizer_corpus(texts: Sequence[str], extra: Sequence[str]) -> list[str]:
    """What the tokenizer is trained on: the prompts, dates of 1970-2040, the training texts and `extra`."""
    from tamms.models.describer import CTP_INSTRUCTION, PLAIN_INSTRUCTION

    corpus = [CTP_INSTRUCTION, PLAIN_INSTRUCTION, SCENE_PROMPT]
    corpus += [f"Dates: {y}-{m:02d}-{d:02d}." for y in range(1970, 2041) for m in range(1, 13) for d in (1, 15, 28)]
    return corpus + list(texts) + list(extra)


def check_data(data: DataConfig) -> None:
    """Captions describe the whole scene from its first to its last frame: the windows must be whole,
    un-cropped, un-turned sequences (a caption saying "in the north-east" is false after a quarter turn)."""
    wrong = {"data.target": (data.target, "none"), "data.history": (data.history, None),
             "data.rotate": (data.rotate, False), "data.crop_size": (data.crop_size, None),
             "data.include_future": (data.include_future, False)}
    bad = [f"{key}={have!r}" for key, (have, want) in wrong.items() if have != want]
    if bad:
        raise ConfigError(f"describe training reads whole sequences as their captions describe them, but the config "
                          f"has {', '.join(bad)}: set data.target: none, data.history: null, data.rotate: false, "
                          "data.crop_size: null, data.include_future: false (src/tamms/configs/describe.yaml)")


class DescribeTask(TammsTask):
    """A `Describer` with its composite loss (L_text + L_temp + LEVIR-CC text), trained from window samples."""

    # -- models and data ---------------------------------------------------------------------------------
    def configure_models(self) -> None:
        self.options = from_dict(DescribeOptions, self.config.options, "config.options")
        self.rng = random.Random(self.config.trainer.seed)  # checkpointed by the base: exact --resume
        self.levir_texts = levir_cc_texts(self.options.levir_cc)
        if self.init_from:
            # a continued model keeps its own config and tokenizer
            self.model = Describer.from_pretrained(self.init_from).train()
            given = describer_config(self.config.model).to_dict() if self.config.model else {}
            extend = {k: given[k] for k in EXTENDABLE_KEYS if k in self.config.model
                      and given[k] != self.model.config.to_dict()[k]}
            if extend:  # e.g. difference tokens added to a trained describer: new parts start as a no-op
                cfg = DescriberConfig.from_dict({**self.model.config.to_dict(), **extend})
                grown = Describer(cfg, self.model.tokenizer)
                missing, unexpected = grown.load_state_dict(self.model.state_dict(), strict=False)
                if unexpected or any(not k.startswith("delta_projector.") for k in missing):
                    raise ConfigError(f"cannot extend {self.init_from} with {sorted(extend)}: missing {missing}, "
                                      f"unexpected {unexpected}")
                self.model = grown.train()
            differ = sorted(k for k in self.config.model if k not in EXTENDABLE_KEYS
                            and given.get(k) != self.model.config.to_dict().get(k))
            if differ:
                warnings.warn(f"model keys {differ} ignored: the model continued from {self.init_from} keeps its "
                              "own config", stacklevel=2)
            return
        from tamms.models.language import train_tokenizer

        model_cfg = describer_config(self.config.model)
        corpus = tokenizer_corpus(self.training_texts(), self.levir_texts)
        self.model = Describer(model_cfg, train_tokenizer(corpus, vocab_size=self.options.tokenizer_vocab))

    def datamodule(self) -> SitsDataModule:
        if getattr(self, "_data", None) is None:
            check_data(self.config.data)
            self._data = SitsDataModule.from_config(self.config.data, task="window")
        return self._data

    def training_texts(self) -> list[str]:
        """Captions and scene texts of the training split (the tokenizer's corpus)."""
        data = self.datamodule()
        data.setup("fit")
        texts: list[str] = []
        for seq in data.datasets["train"].sequences:
            texts += list(seq.captions)
            if seq.scene:
                texts.append(seq.scene)
        return texts

    # -- what the describer learns from ------------------------------------------------------------------
    def sequences_of(self, batch: dict[str, Any]) -> list[tuple[DescriberInput, dict[str, Any]]]:
        """The batch's windows as describer inputs: RGB by band name, at most `max_frames` frames, resized to
        the vision tower's size (the pipeline's `prepare_input`, as at inference), each with its training-only
        extras (land cover `[T, h, w]` and category of the synthetic world, when present)."""
        cfg = self.model.config
        inputs = []
        for i in range(batch["image"].shape[0]):
            real = batch["time_mask"][i].cpu() if "time_mask" in batch else slice(None)  # left-padded windows
            names = (batch.get("band_names") or [None] * (i + 1))[i]
            item = {"image": batch["image"][i].cpu()[real], "time": batch["time"][i].cpu()[real],
                    "rgb_bands": rgb_indices(names), "scene": batch["scene"][i], "captions": batch["captions"][i]}
            x = prepare_input(item, cfg.vision.image_size, cfg.max_frames)
            extras: dict[str, Any] = {}
            meta = batch.get("meta")
            if meta is not None:
                extras["category"] = (meta[i] if isinstance(meta, list) else {}).get("category")
            if "landcover" in batch and batch["image"].shape[1] <= cfg.max_frames:  # frames kept 1:1
                extras["landcover"] = batch["landcover"][i].cpu()[real].numpy()  # [T, h, w]
            inputs.append((x, extras))
        return inputs

    def drop_middle_frames(self, num_frames: int) -> list[int]:
        """Frames kept: all, or (with probability `frame_drop`) first, last and each middle one with p = 0.5."""
        keep = list(range(num_frames))
        if num_frames > 2 and self.rng.random() < self.options.frame_drop:
            keep = [0, *[i for i in keep[1:-1] if self.rng.random() < 0.5], num_frames - 1]
        return keep

    def rewritten_captions(self, first: np.ndarray, last: np.ndarray, category: str | None) -> list[str]:
        """Captions of the change between two land-cover maps, in the synthetic world's own templates."""
        rng = np.random.default_rng(self.rng.randrange(2 ** 32))
        return change_captions(first, last, category or "no_change", [], rng)

    def looking_pair(self, x: DescriberInput, extras: dict[str, Any]) -> DescribeExample | None:
        """With the options' probabilities, a pair only the images can answer: one frame repeated -> "no change",
        frames reversed -> the reversed change, a sub-window -> its own change (None: the ordinary item)."""
        opts, n = self.options, len(x.dates)
        lc, category = extras.get("landcover"), extras.get("category")
        draw = self.rng.random()
        if draw < opts.static_prob:
            count = self.rng.randint(2, n)
            keep = sorted(self.rng.sample(range(n), count))
            base = x.frames[self.rng.randrange(n)]
            frames = []
            for _ in keep:  # nearly identical frames: brightness and pixel noise only
                gain = 1 + opts.jitter * (2 * self.rng.random() - 1)
                noise = opts.jitter * 0.5 * torch.randn(base.shape, generator=self._torch_generator())
                frames.append((base * gain + noise).clamp(0, 1))
            target = self.rng.choice(NO_CHANGE_CAPTIONS)
            return DescribeExample(torch.stack(frames), x.days[keep], "", target, "change", "static")
        draw -= opts.static_prob
        if lc is None or len(lc) != n:
            return None
        if draw < opts.reverse_prob:
            if category not in REVERSIBLE:
                return None
            keep = self.drop_middle_frames(n)
            captions = self.rewritten_captions(lc[keep[-1]], lc[keep[0]], category)
            frames = x.frames[keep].flip(0)  # latest image first, under the same increasing dates
            return DescribeExample(frames, x.days[keep], "", self.rng.choice(captions), "change", "reversed")
        draw -= opts.reverse_prob
        if draw < opts.window_prob and n > 2:
            start, end = sorted(self.rng.sample(range(n), 2))
            keep = [start, *[i for i in range(start + 1, end) if self.rng.random() < 0.5], end]
            captions = self.rewritten_captions(lc[start], lc[end], category)
            return DescribeExample(x.frames[keep], x.days[keep], "", self.rng.choice(captions), "change", "window")
        return None

    def _torch_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.rng.randrange(2 ** 31))

    def prompt_scene(self, x: DescriberInput) -> str | None:
        """The scene of a change prompt: the truth (oracle recipe), or "unknown" except for `user_scene_prob`."""
        if self.options.scene_source == "truth":
            return x.scene  # an oracle input
        return x.scene if x.scene and self.rng.random() < self.options.user_scene_prob else None

    def make_examples(self, batch: dict[str, Any], train: bool) -> list[DescribeExample]:
        """Prompts and targets of a batch. Training: the looking pairs (`looking_pair`), random frame drops,
        the scene task with probability `scene_prob`, a random reference caption; validation: every frame,
        the first caption, the prompt a user without a scene gives (scene_source none) or the oracle one."""
        use_ctp = self.model.config.use_ctp
        examples = []
        for x, extras in self.sequences_of(batch):
            if train and x.scene and use_ctp and self.rng.random() < self.options.scene_prob:
                keep = self.drop_middle_frames(len(x.dates))
                examples.append(DescribeExample(x.frames[keep].to(self.device), x.days[keep], SCENE_PROMPT, x.scene,
                                                "scene"))
                continue
            pair = self.looking_pair(x, extras) if train else None
            if pair is not None:
                dates = [from_days(float(d)).isoformat() for d in pair.days]
                scene = self.prompt_scene(x) if pair.pair != "static" else None  # a repeated frame: no scene
                pair.prompt = change_prompt(dates, scene, use_ctp)
                pair.frames = pair.frames.to(self.device)
                examples.append(pair)
            elif x.captions:
                keep = self.drop_middle_frames(len(x.dates)) if train else list(range(len(x.dates)))
                frames, days = x.frames[keep].to(self.device), x.days[keep]
                dates = [x.dates[i] for i in keep]
                target = self.rng.choice(x.captions) if train else x.captions[0]
                scene = self.prompt_scene(x) if train else (x.scene if self.options.scene_source == "truth" else None)
                examples.append(DescribeExample(frames, days, change_prompt(dates, scene, use_ctp), target, "change"))
            # else: a sequence without captions teaches nothing here (the scene task was not drawn)
        if not examples:
            raise InputError("no captioned sequence in this batch: describe training needs reference captions "
                             "(the synthetic world, or `captions` in sequence.json)")
        return examples

    # -- losses --------------------------------------------------------------------------------------------
    def example_losses(self, examples: Sequence[DescribeExample]) -> dict[str, torch.Tensor]:
        opts = self.options
        out = self.model([e.frames for e in examples], [e.days for e in examples], [e.prompt for e in examples],
                         [e.target for e in examples])
        terms = {"loss_text": out["loss_text"]}
        loss = opts.l_text * out["loss_text"]
        change = [i for i, e in enumerate(examples) if e.kind == "change"]
        if opts.l_temp > 0 and len(change) > 1:  # InfoNCE needs at least one negative
            terms["loss_temp"] = self.model.temporal_loss(out["semantic"][change], [examples[i].target for i in change])
            loss = loss + opts.l_temp * terms["loss_temp"]
        terms["loss"] = loss
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        examples = self.make_examples(batch, train=True)
        terms = self.example_losses(examples)
        opts = self.options
        if self.levir_texts and opts.levir_weight > 0:
            texts = self.rng.sample(self.levir_texts, min(opts.levir_batch, len(self.levir_texts)))
            terms["loss_levir"] = self.model.lm_loss_text_only(texts)
            terms["loss"] = terms["loss"] + opts.levir_weight * terms["loss_levir"]
        self.log_terms(terms, "train", len(examples))
        return terms["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        examples = self.make_examples(batch, train=False)
        terms = self.example_losses(examples)
        self.log_terms({"loss_text": terms["loss_text"]}, "val", len(examples))

    # -- optimiser -------------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Matrices with weight decay, the rest without; the visual path at `vision_lr_scale` x the rate."""
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                groups.setdefault((p.ndim >= 2, name.startswith(VISUAL_PARAMETERS)), []).append(p)
        return [{"params": ps, "weight_decay": self.config.optim.weight_decay if decay else 0.0,
                 "lr_scale": self.options.vision_lr_scale if visual else 1.0}
                for (decay, visual), ps in groups.items()]

"""`DescribePipeline`: dated frames -> change description, semantic vector M_t and text embeddings.

    pipe = DescribePipeline.from_pretrained()            # shipped weights (weights/describer-v2, else describer)
    out = pipe([sequence], num_beams=3)                  # SitsSequence(s), sample dict(s) or folders
    out.texts[0], out.semantic.shape                     # [B, D] = M_t

Steps of `__call__`: 1. check and prepare the inputs (RGB view, resized, at most `max_frames` frames);
2. generate the scene description where none is given (CTP); 3. generate the change description
(greedy, or beam search with `num_beams`); 4. one teacher-forced pass on the generated text for M_t and
the text embeddings. `encode(...)` does step 4 alone on given texts (batched, for precomputing the
forecaster's conditioning).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tamms.data.sequence import SitsSequence, from_days
from tamms.errors import InputError


@dataclass
class DescriberInput:
    """One sequence ready for the describer."""

    frames: torch.Tensor  # [T, 3, S, S] float32 in [0, 1]
    days: torch.Tensor  # [T] float64, days since 1970-01-01
    dates: list[str]  # ISO dates of the frames
    scene: str | None = None
    captions: list[str] | None = None
    name: str = ""


@dataclass
class DescribeOutput:
    texts: list[str]  # one description per sequence
    semantic: torch.Tensor  # [B, D] M_t: last-layer hidden state at [ANSWER]
    text_embeddings: torch.Tensor  # [B, L, D] last-layer hidden states of the description tokens (+ EOS)
    text_mask: torch.Tensor  # [B, L] True on real tokens
    dates: list[list[str]]  # the dates each description covers (first .. last frame used)
    scenes: list[str | None] | None = None  # scene text used in the CTP prompt (given or generated)


def select_frames(num_frames: int, max_frames: int) -> list[int]:
    """Evenly spaced frame indices, first and last always kept."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, max_frames)})


def prepare_input(item: Any, image_size: int = 64, max_frames: int = 10) -> DescriberInput:
    """A `SitsSequence`, a sample dict (docs/data.md) or a sequence folder -> `DescriberInput`."""
    if isinstance(item, DescriberInput):
        return item
    if isinstance(item, (str, os.PathLike)):
        from tamms.data.readers import read_sequence

        item = read_sequence(item)
    if isinstance(item, SitsSequence):
        rgb = item.rgb()  # [T, 3, H, W]
        days = item.days
        scene, captions = item.scene, list(item.captions)
        name = str(item.meta.get("id", item.meta.get("name", "")))
    elif isinstance(item, dict) and "image" in item and "time" in item:
        image = torch.as_tensor(item["image"])
        rgb_bands = item.get("rgb_bands") or (item.get("meta") or {}).get("rgb_bands") or (0, 1, 2)
        rgb = image[:, list(rgb_bands)] if image.shape[1] >= 3 else image[:, :1].repeat(1, 3, 1, 1)
        days = np.asarray(torch.as_tensor(item["time"], dtype=torch.float64))
        scene, captions = item.get("scene") or None, list(item.get("captions") or [])
        name = str((item.get("meta") or {}).get("id", ""))
    else:
        raise InputError(
            f"cannot describe a {type(item).__name__}: give a SitsSequence, a sample dict with 'image' [T,C,H,W] "
            "and 'time' [T], or a sequence folder"
        )
    frames = torch.as_tensor(np.asarray(rgb), dtype=torch.float32)
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise InputError(
            f"describing change needs at least 2 dated frames as [T, C, H, W], got shape {tuple(frames.shape)}; "
            "add another image of the same place with its date"
        )
    if not torch.isfinite(frames).all():
        raise InputError("frames contain NaN or infinite values: fill or mask them (readers set nodata to 0)")
    days_t = torch.as_tensor(np.asarray(days, dtype=np.float64))
    if bool((days_t[1:] <= days_t[:-1]).any()):
        raise InputError("frame dates must be strictly increasing: sort the frames by date and drop duplicates")
    keep = select_frames(frames.shape[0], max_frames)
    frames, days_t = frames[keep], days_t[keep]
    if frames.shape[-1] != image_size or frames.shape[-2] != image_size:
        frames = F.interpolate(frames, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)  # [T, 3, S, S]
    dates = [from_days(float(d)).isoformat() for d in days_t]
    return DescriberInput(frames.contiguous(), days_t, dates, scene or None, captions, name)


class DescribePipeline:
    """Describe the change in a sequence of dated images (TAM: PTE + CTP on a small VLM)."""

    def __init__(self, model, batch_size: int = 16):
        self.model = model.eval()
        self.batch_size = batch_size

    # --- loading / saving ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike | None = None, **kwargs: Any) -> "DescribePipeline":
        """Load from a folder written by `save_pretrained` (default: the shipped describer for `tamms describe`,
        `default_describing_weights()`)."""
        from tamms.models.describer import Describer

        return cls(Describer.from_pretrained(folder or default_describing_weights()), **kwargs)

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False, dtype: str | None = None,
                        metadata: dict | None = None) -> Path:
        return self.model.save_pretrained(folder, overwrite=overwrite, dtype=dtype, metadata=metadata)

    @property
    def config(self):
        return self.model.config

    def prepare(self, items: Any) -> list[DescriberInput]:
        if isinstance(items, (SitsSequence, dict, str, os.PathLike, DescriberInput)):
            items = [items]
        items = list(items)
        if not items:
            raise InputError("nothing to describe: give at least one sequence")
        cfg = self.model.config
        return [prepare_input(it, cfg.vision.image_size, cfg.max_frames) for it in items]

    # --- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, items: Any, scene: str | Sequence[str | None] | None = None, num_beams: int = 1,
                 use_data_scene: bool = True) -> DescribeOutput:
        """Describe each sequence. `scene`: one text for all, one per sequence, or None (data, else generated)."""
        # 1. inputs
        inputs = self.prepare(items)
        if scene is None or isinstance(scene, str):
            scenes = [scene for _ in inputs]
        else:
            scenes = list(scene)
            if len(scenes) != len(inputs):
                raise InputError(f"{len(scenes)} scenes for {len(inputs)} sequences: give one scene per sequence")
        scenes = [s if s else (x.scene if use_data_scene else None) for s, x in zip(scenes, inputs)]
        texts, sem, embs, used = [], [], [], []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start: start + self.batch_size]
            # 2.-4. scene (where missing), description, M_t and text embeddings
            out = self.model.describe([x.frames for x in chunk], [x.days for x in chunk], [x.dates for x in chunk],
                                      scenes[start: start + self.batch_size], num_beams=num_beams)
            texts += out["texts"]
            used += out["scenes"]
            sem.append(out["semantic"])
            embs.append((out["text_embeddings"], out["text_mask"]))
        text_embeddings, text_mask = _pad_cat(embs)
        return DescribeOutput(texts, torch.cat(sem), text_embeddings, text_mask, [x.dates for x in inputs], used)

    @torch.no_grad()
    def encode(self, items: Any, texts: Sequence[str] | None = None, scene: Sequence[str | None] | None = None
               ) -> DescribeOutput:
        """M_t and text embeddings teacher-forced on `texts` (default: each sequence's first reference caption).

        One forward pass per batch, no generation: the cheap way to precompute conditioning for many
        training sequences. M_t itself does not depend on the text (it is read at [ANSWER], before it).
        """
        from tamms.models.describer import change_prompt

        inputs = self.prepare(items)
        if texts is None:
            texts = [(x.captions or [""])[0] for x in inputs]
        if len(texts) != len(inputs):
            raise InputError(f"{len(texts)} texts for {len(inputs)} sequences: give one text per sequence")
        scenes = list(scene) if scene is not None else [x.scene for x in inputs]
        sem, embs = [], []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start: start + self.batch_size]
            prompts = [change_prompt(x.dates, s or "unknown", self.model.config.use_ctp)
                       for x, s in zip(chunk, scenes[start: start + self.batch_size])]
            out = self.model([x.frames for x in chunk], [x.days for x in chunk], prompts,
                             list(texts[start: start + self.batch_size]))
            sem.append(out["semantic"])
            embs.append((out["text_embeddings"], out["text_mask"]))
        text_embeddings, text_mask = _pad_cat(embs)
        return DescribeOutput(list(texts), torch.cat(sem), text_embeddings, text_mask, [x.dates for x in inputs], scenes)


def default_describing_weights() -> Path:
    """The shipped describer that `tamms describe` uses: weights/describer-v2 (trained to read the images,
    issue 14) when shipped, else weights/describer. The forecaster keeps weights/describer (`default_describer`):
    it was trained on that model's M_t and text embeddings."""
    from tamms.utils import default_weights

    v2 = default_weights("describer-v2")
    return v2 if (v2 / "config.json").exists() else default_weights("describer")


def default_describer(folder: str | os.PathLike | None = None) -> DescribePipeline | None:
    """The describer that gives a forecaster M_t and text embeddings: from `folder`, else the shipped weights,
    else None with a warning (the forecast then runs on the structural path only)."""
    import warnings

    from tamms.errors import MissingWeightsError
    from tamms.utils import default_weights

    path = Path(folder) if folder is not None else default_weights("describer")
    if not (path / "config.json").exists():
        if folder is not None:
            raise MissingWeightsError(f"no describer weights in {path}: train them with `tamms train describe`")
        warnings.warn(f"no describer weights in {path}: forecasting without semantic conditioning", stacklevel=2)
        return None
    return DescribePipeline.from_pretrained(path)


def _pad_cat(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(e.shape[1] for e, _ in parts)
    embs = [F.pad(e, (0, 0, 0, length - e.shape[1])) for e, _ in parts]  # [b, L, D]
    masks = [F.pad(m, (0, length - m.shape[1])) for _, m in parts]  # [b, L]
    return torch.cat(embs), torch.cat(masks)

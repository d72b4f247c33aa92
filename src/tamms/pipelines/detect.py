"""`DetectPipeline`: where did it change between two dates (and from what to what).

    pipe = DetectPipeline.from_pretrained("unichange")          # or "siamese", "cva", a weights folder
    out = pipe(before, after, semantic=True, categories=["building", "road"])
    out.mask            # uint8 [B, H, W]
    out.semantic_before # int64 [B, H, W] indices into out.class_names (UniChange with semantic=True)

A `SitsSequence` (or a `[T, C, H, W]` stack) instead of two images gives the change between every pair of
consecutive frames (batch T-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tamms.data.sequence import SitsSequence
from tamms.errors import ConfigError, InputError
from tamms.models.change.base import ChangeDetector


@dataclass
class DetectOutput:
    """mask uint8 `[B, H, W]` (1 = changed); probability float `[B, H, W]` or None (CVA: None);
    semantic_before / semantic_after int64 `[B, H, W]` indices into `class_names`, or None;
    detector: the detector's name; responses: the UniChange LM's answers (empty for other detectors)."""

    mask: torch.Tensor
    probability: torch.Tensor | None = None
    semantic_before: torch.Tensor | None = None
    semantic_after: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    detector: str = ""
    responses: list[str] = field(default_factory=list)


def _as_tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, SitsSequence):
        raise InputError(f"{what} is a whole sequence: pass it alone (pipe(sequence)) to detect between its frames")
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    if t.dim() not in (3, 4):
        raise InputError(f"{what} must be [C, H, W] or [B, C, H, W], got shape {tuple(t.shape)}")
    return t


def detector_from_pretrained(name_or_folder: str | Path, **options: Any) -> ChangeDetector:
    """A `ChangeDetector`: "cva" (classical, no weights), or a trained network from a saved folder (or the shipped
    folder of that name). options: for UniChange, `categories`, `semantic`, `generate` (see UniChangeDetector)."""
    from tamms.models import load_pretrained, resolve_weights
    from tamms.models.change.siamese import SiameseChangeNet, SiameseDetector
    from tamms.models.change.unichange import UniChangeDetector, UniChangeModel

    if str(name_or_folder) == "cva" and not Path(name_or_folder).is_dir():
        from tamms.models.change.cva import CVADetector

        return CVADetector(**options)
    shipped = not Path(name_or_folder).is_dir()
    folder = resolve_weights(name_or_folder, f"tamms train detect --config src/tamms/configs/detect_{name_or_folder}.yaml"
                            if shipped else "tamms train detect --config FILE")
    net = load_pretrained(folder)
    if isinstance(net, SiameseChangeNet):
        if options:
            raise ConfigError(f"the siamese detector takes no options (got {sorted(options)}): it finds every change")
        return SiameseDetector(net, name="siamese" if shipped else f"siamese:{folder.name}")
    if isinstance(net, UniChangeModel):
        return UniChangeDetector(net, name="unichange" if shipped else f"unichange:{folder.name}", **options)
    raise ConfigError(f"{folder} holds a {net.model_type} model, not a change detector: give a detector's folder")


class DetectPipeline:
    def __init__(self, detector: ChangeDetector):
        self.detector = detector

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path, **options: Any) -> "DetectPipeline":
        """"cva", a trained detector's folder, or the name of a shipped one ("siamese", "unichange"); the registry
        (`tamms.registry.load_detector`) also knows "default", the best detector trained here."""
        return cls(detector_from_pretrained(name_or_folder, **options))

    def save_pretrained(self, folder: str | Path, overwrite: bool = False, metadata: dict | None = None) -> Path:
        model = getattr(self.detector, "model", None)
        if model is None or not hasattr(model, "save_pretrained"):
            raise ConfigError(f"the {self.detector.name} detector has no trained weights to save")
        return model.save_pretrained(folder, overwrite=overwrite, metadata=metadata)

    @torch.no_grad()
    def __call__(self, before: Any, after: Any = None, semantic: bool = False,
                 categories: Sequence[str] | None = None, batch_size: int = 8) -> DetectOutput:
        # 1. check the request and bring the inputs to pairs [B, C, H, W]
        is_unichange = hasattr(self.detector, "model") and hasattr(self.detector.model, "resolve_task")
        if (semantic or categories) and not is_unichange:
            raise ConfigError(f"the {self.detector.name} detector finds binary change only: use the unichange "
                              "detector (--model unichange) for --semantic or --categories")
        if after is None:
            frames = before.frames if isinstance(before, SitsSequence) else before
            stack = _as_tensor(frames, "the sequence")
            if stack.dim() != 4 or stack.shape[0] < 2:
                raise InputError("detecting along a sequence needs at least two frames [T, C, H, W]: add frames or "
                                 "pass two images")
            if isinstance(before, SitsSequence) and before.rgb_bands is not None:
                stack = stack[:, list(before.rgb_bands)]  # the detectors read RGB
            a, b = stack[:-1], stack[1:]
        else:
            a, b = _as_tensor(before, "before"), _as_tensor(after, "after")
            if a.dim() == 3:
                a = a.unsqueeze(0)  # [C, H, W] -> [1, C, H, W]
            if b.dim() == 3:
                b = b.unsqueeze(0)
        # 2. detect, a few pairs at a time
        kwargs = {"semantic": semantic, "categories": categories} if is_unichange else {}
        results, responses = [], []
        for i in range(0, a.shape[0], batch_size):
            results.append(self.detector.detect(a[i : i + batch_size], b[i : i + batch_size], **kwargs))
            responses += list(getattr(self.detector, "last_responses", []) or [])
        # 3. gather
        cat = lambda name: (torch.cat([getattr(r, name) for r in results])  # noqa: E731
                            if getattr(results[0], name) is not None else None)
        return DetectOutput(mask=cat("mask").to(torch.uint8), probability=cat("probability"),
                            semantic_before=cat("semantic_before"), semantic_after=cat("semantic_after"),
                            class_names=list(results[0].class_names), detector=self.detector.name, responses=responses)


__all__ = ["DetectPipeline", "DetectOutput"]

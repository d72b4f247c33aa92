"""`DetectPipeline`: where did it change between two dates (and from what to what).

    pipe = DetectPipeline.from_pretrained("unichange")          # or "siamese", "cva", a weights folder
    out = pipe(before, after, semantic=True, categories=["building", "road"])
    out.mask            # uint8 [B, H, W]
    out.semantic_before # int64 [B, H, W] indices into out.class_names (UniChange with semantic=True)

A `SitsSequence` (or a `[T, C, H, W]` stack) instead of two images gives the change between every pair of
consecutive frames (batch T-1).

Scenes larger than `tile_size` (default 256) go through a trained network as overlapping tiles, a few at a
time, so memory stays flat in the scene size: probabilities are blended with weights that fall off towards
tile edges, and the mask and class maps of each pixel come from the tile whose centre is nearest to it.
CVA, whose Otsu threshold is a property of the whole scene, always sees the whole scene.
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
    from tamms.models.change.unet_ef import UNetEF
    from tamms.models.change.unichange import UniChangeDetector, UniChangeModel

    if str(name_or_folder) == "cva" and not Path(name_or_folder).is_dir():
        from tamms.models.change.cva import CVADetector

        return CVADetector(**options)
    shipped = not Path(name_or_folder).is_dir()
    folder = resolve_weights(name_or_folder, f"tamms train detect --config src/tamms/configs/detect_"
                             f"{str(name_or_folder).replace('-', '_')}.yaml"
                            if shipped else "tamms train detect --config FILE")
    net = load_pretrained(folder)
    if isinstance(net, SiameseChangeNet):
        if options:
            raise ConfigError(f"the siamese detector takes no options (got {sorted(options)}): it finds every change")
        return SiameseDetector(net, name=str(name_or_folder) if shipped else f"siamese:{folder.name}")
    if isinstance(net, UNetEF):  # the benchmark peer: the same binary interface as the siamese net
        if options:
            raise ConfigError(f"the unet-ef detector takes no options (got {sorted(options)}): it finds every change")
        return SiameseDetector(net, name=f"unet-ef:{folder.name}")
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
                 categories: Sequence[str] | None = None, batch_size: int = 8, tile_size: int | None = 256,
                 overlap: int = 32) -> DetectOutput:
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
        if a.shape != b.shape:
            raise InputError(f"the two images differ in shape {tuple(a.shape)} vs {tuple(b.shape)}: resample them "
                             "onto one grid first (same size and bands)")
        if tile_size is not None and (tile_size < 32 or not 0 <= overlap < tile_size // 2):
            raise ConfigError(f"tile_size={tile_size}, overlap={overlap}: give tile_size >= 32 and 0 <= overlap < "
                              "tile_size / 2")
        # 2. detect, a few pairs (or tiles) at a time
        kwargs = {"semantic": semantic, "categories": categories} if is_unichange else {}
        tiled = (tile_size is not None and hasattr(self.detector, "model")
                 and max(a.shape[-2:]) > tile_size)
        results, responses = [], []
        for i in range(a.shape[0] if tiled else 0):
            result, said = detect_tiled(self.detector, a[i], b[i], tile_size, overlap, batch_size, kwargs)
            results.append(result)
            responses += said
        for i in range(0, 0 if tiled else a.shape[0], batch_size):
            results.append(self.detector.detect(a[i : i + batch_size], b[i : i + batch_size], **kwargs))
            responses += list(getattr(self.detector, "last_responses", []) or [])
        # 3. gather
        cat = lambda name: (torch.cat([getattr(r, name) for r in results])  # noqa: E731
                            if getattr(results[0], name) is not None else None)
        return DetectOutput(mask=cat("mask").to(torch.uint8), probability=cat("probability"),
                            semantic_before=cat("semantic_before"), semantic_after=cat("semantic_after"),
                            class_names=list(results[0].class_names), detector=self.detector.name, responses=responses)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` px covering `length` px, consecutive tiles sharing >= `overlap` px."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def tile_weight(height: int, width: int, overlap: int) -> torch.Tensor:
    """`[h, w]` blending weight: 1 inside, falling linearly over `overlap` px towards each edge (never 0)."""
    ramp = max(overlap, 1)
    y = torch.arange(height, dtype=torch.float32)
    x = torch.arange(width, dtype=torch.float32)
    wy = torch.minimum(torch.minimum(y + 1, height - y), torch.tensor(float(ramp))) / ramp
    wx = torch.minimum(torch.minimum(x + 1, width - x), torch.tensor(float(ramp))) / ramp
    return wy[:, None] * wx[None, :]


def detect_tiled(detector: ChangeDetector, before: torch.Tensor, after: torch.Tensor, tile: int, overlap: int,
                 batch_size: int, kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """One pair `[C, H, W]` through `detector` as overlapping `tile` px tiles, `batch_size` tiles at a time.
    Memory: the network's activations for one batch of tiles plus the `[H, W]` outputs."""
    from tamms.models.change.base import ChangeResult

    H, W = before.shape[-2:]
    boxes = [(top, left, min(tile, H), min(tile, W)) for top in tile_starts(H, tile, overlap)
             for left in tile_starts(W, tile, overlap)]
    prob_sum = torch.zeros(H, W)
    weight_sum = torch.zeros(H, W)
    owner = torch.zeros(H, W)  # weight of the tile each pixel's mask / class maps come from
    mask = torch.zeros(H, W, dtype=torch.uint8)
    sem: dict[str, torch.Tensor] = {}
    class_names: list[str] = []
    responses: list[str] = []
    has_probability = True
    for i in range(0, len(boxes), batch_size):
        group = boxes[i : i + batch_size]
        a = torch.stack([before[:, t : t + h, l : l + w] for t, l, h, w in group])  # [n, C, h, w]
        b = torch.stack([after[:, t : t + h, l : l + w] for t, l, h, w in group])
        out = detector.detect(a, b, **kwargs)
        responses += list(getattr(detector, "last_responses", []) or [])
        class_names = list(out.class_names)
        has_probability = out.probability is not None
        for k, (t, l, h, w) in enumerate(group):
            weight = tile_weight(h, w, overlap)
            region = (slice(t, t + h), slice(l, l + w))
            if has_probability:
                prob_sum[region] += weight * out.probability[k].float().cpu()
                weight_sum[region] += weight
            wins = weight > owner[region]
            mask[region][wins] = out.mask[k].to(torch.uint8).cpu()[wins]
            for name in ("semantic_before", "semantic_after"):
                value = getattr(out, name)
                if value is not None:
                    sem.setdefault(name, torch.zeros(H, W, dtype=torch.int64))[region][wins] = value[k].cpu()[wins]
            owner[region] = torch.maximum(owner[region], weight)
    probability = (prob_sum / weight_sum.clamp_min(1e-8))[None] if has_probability else None
    threshold = getattr(getattr(getattr(detector, "model", None), "config", None), "threshold", None)
    if probability is not None and threshold is not None and not kwargs.get("categories") and not kwargs.get("semantic"):
        final_mask = (probability > threshold).to(torch.uint8)  # the blended probability decides
    else:
        final_mask = mask[None]
    result = ChangeResult(mask=final_mask, probability=probability,
                          semantic_before=sem["semantic_before"][None] if "semantic_before" in sem else None,
                          semantic_after=sem["semantic_after"][None] if "semantic_after" in sem else None,
                          class_names=class_names)
    return result, responses


__all__ = ["DetectPipeline", "DetectOutput", "detect_tiled", "tile_starts"]

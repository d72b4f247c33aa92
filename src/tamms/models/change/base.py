"""The change-detector interface used by `tamms detect` and by the TCS metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass
class ChangeResult:
    """mask: uint8/bool `[B, H, W]` binary change (1 = changed); probability: float `[B, H, W]` or None;
    semantic_before / semantic_after: int64 `[B, H, W]` land-cover class maps for semantic change, or None."""

    mask: torch.Tensor
    probability: torch.Tensor | None = None
    semantic_before: torch.Tensor | None = None
    semantic_after: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)


@runtime_checkable
class ChangeDetector(Protocol):
    """`name` is reported in every metric that uses the detector (e.g. "cva-otsu", "siamese", "unichange")."""

    name: str

    def detect(self, image_a: torch.Tensor, image_b: torch.Tensor) -> ChangeResult:
        """image_a, image_b: float `[B, C, H, W]` (or `[C, H, W]`) in [0, 1] on the same grid."""
        ...

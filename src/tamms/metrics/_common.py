"""Helpers shared by the image metrics and FID: image batches, RGB band selection, hub weight files.

Kept apart so `metrics.image` and `metrics._fid` both import from here and not from each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from tamms.errors import InputError, MetricUnavailableError


def as_image_batch(x: Tensor) -> Tensor:
    """`[B, C, H, W]` float (float64 kept) from `[B, C, H, W]` or `[C, H, W]`."""
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)  # [C, H, W] -> [1, C, H, W]
    if x.ndim != 4:
        raise InputError(f"expected images [B, C, H, W] or [C, H, W], got shape {tuple(x.shape)}")
    return x.to(torch.float64) if x.dtype == torch.float64 else x.float()


def select_rgb(x: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2)) -> Tensor:
    """`[B, 3, H, W]`: the RGB bands of a multi-band batch (a single band is repeated)."""
    x = as_image_batch(x)
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)  # [B, 1, H, W] -> [B, 3, H, W]
    bands = list(rgb_bands or (0, 1, 2))
    if len(bands) != 3 or max(bands) >= x.shape[1]:
        raise InputError(f"rgb_bands {bands} do not fit images with {x.shape[1]} bands; give three band indices")
    return x[:, bands]


def hub_checkpoint_dir() -> Path:
    """Where torch keeps hub weight files (`$TORCH_HOME/hub/checkpoints`, default ~/.cache/torch/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_file_available(file_name: str) -> tuple[bool, str]:
    """(True, "") when the standard weight file is in the hub cache, else (False, the reason)."""
    path = hub_checkpoint_dir() / file_name
    return (True, "") if path.is_file() else (False, f"unavailable: needs {file_name} in {path.parent}")


def require_hub_file(file_name: str) -> Path:
    """The path of a standard weight file in the hub cache; MetricUnavailableError when absent (never downloaded)."""
    path = hub_checkpoint_dir() / file_name
    if not path.is_file():
        raise MetricUnavailableError(f"unavailable: needs {file_name} in {path.parent} (copy the standard "
                                     "weight file there; tamms never downloads)")
    return path

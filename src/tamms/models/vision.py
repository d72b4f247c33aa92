"""Vision towers: one frame `[N, 3, S, S]` in [0, 1] -> visual tokens `[N, grid*grid, C]`.

- `SmallConvTower` (default, trained here): four stride-2 conv blocks, a 64x64 frame gives a 4x4 grid
  of 16 tokens.
- `HFVisionTower`: any local `transformers` vision model folder (CLIP / SigLIP vision towers or a
  full CLIP/SigLIP checkpoint, whose `vision_model` is used), patch tokens pooled to the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VisionConfig:
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    image_size: int = 64  # frames are resized to image_size x image_size before the tower
    grid: int = 4  # visual tokens per frame = grid * grid
    pretrained: str | None = None  # local transformers vision model folder


class SmallConvTower(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in config.channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.GELU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.GELU()]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.grid = config.grid
        self.out_dim = c_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.body(images * 2 - 1)  # [N, C, h, w]
        feats = F.adaptive_avg_pool2d(feats, self.grid)  # [N, C, g, g]
        return feats.flatten(2).transpose(1, 2)  # [N, g*g, C]


class HFVisionTower(nn.Module):
    """A local transformers vision model; its patch tokens average-pooled to a `grid x grid` map."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from tamms.utils import require_hf_folder

        folder = require_hf_folder(config.pretrained, "vision model", "a CLIP or SigLIP vision tower")
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model = getattr(model, "vision_model", model)  # full CLIP/SigLIP -> its vision half
        vision_cfg = getattr(hf_config, "vision_config", hf_config)
        self.image_size = int(getattr(vision_cfg, "image_size", config.image_size))
        self.out_dim = int(vision_cfg.hidden_size)
        self.grid = config.grid
        mean, std = _normalisation(folder)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        hidden = self.model(pixel_values=(images - self.mean) / self.std).last_hidden_state  # [N, P(+1), C]
        side = int(round((hidden.shape[1]) ** 0.5))
        if side * side != hidden.shape[1]:
            hidden = hidden[:, 1:]  # drop the CLS token
            side = int(round(hidden.shape[1] ** 0.5))
        fmap = hidden.transpose(1, 2).reshape(hidden.shape[0], -1, side, side)  # [N, C, s, s]
        fmap = F.adaptive_avg_pool2d(fmap, self.grid)  # [N, C, g, g]
        return fmap.flatten(2).transpose(1, 2)  # [N, g*g, C]


def _normalisation(folder: Path) -> tuple[list[float], list[float]]:
    import json

    pre = folder / "preprocessor_config.json"
    if pre.exists():
        d = json.loads(pre.read_text())
        if "image_mean" in d and "image_std" in d:
            return list(d["image_mean"]), list(d["image_std"])
    return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def build_vision_tower(config: VisionConfig) -> nn.Module:
    return HFVisionTower(config) if config.pretrained else SmallConvTower(config)

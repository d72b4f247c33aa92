"""A Siamese convolutional change detector (FC-Siam-diff style, Daudt et al. 2018), scaled to a CPU.

One encoder with shared weights sees both dates; the decoder upsamples the absolute differences of
the two dates' features at each scale (skip connections) to a per-pixel change logit. It is the
"specialist" baseline UniChange is compared against: binary change only, no text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tamms.models.base import PretrainedModel
from tamms.models.change.base import ChangeResult


@dataclass
class SiameseConfig:
    in_channels: int = 3              # RGB: detectors read the first `in_channels` bands (RGB first)
    channels: tuple[int, ...] = (16, 32, 64)  # encoder width per scale (strides 1, 2, 4)
    threshold: float = 0.5            # probability above which a pixel is "changed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SiameseConfig":
        d = dict(d)
        d.pop("model_type", None)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch-free normalisation (GroupNorm works at batch 1 and on 256 px)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(min(8, c_out), c_out), nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(min(8, c_out), c_out), nn.GELU(),
    )


class SiameseEncoder(nn.Module):
    """Shared-weight encoder: a list of feature maps at strides 1, 2, 4, ..."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        blocks, c_prev = [], in_channels
        for c in channels:
            blocks.append(conv_block(c_prev, c))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats


class SiameseChangeNet(PretrainedModel):
    """image_a, image_b `[B, C, H, W]` -> change logits `[B, H, W]` (H, W divisible by 2**(levels-1) is not
    required: inputs are padded and the logits cropped back)."""

    model_type = "siamese"
    config_class = SiameseConfig
    train_command = "tamms train detect --config src/tamms/configs/detect_siamese.yaml"

    def __init__(self, config: SiameseConfig | None = None):
        super().__init__()
        self.config = config or SiameseConfig()
        ch = self.config.channels
        self.encoder = SiameseEncoder(self.config.in_channels, ch)
        # decoder: from the coarsest scale up, concatenating |f_a - f_b| of the next finer scale
        ups, decs = [], []
        for i in range(len(ch) - 1, 0, -1):
            ups.append(nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2))
            decs.append(conv_block(2 * ch[i - 1], ch[i - 1]))
        self.ups, self.decs = nn.ModuleList(ups), nn.ModuleList(decs)
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        h, w = image_a.shape[-2:]
        m = 2 ** (len(self.config.channels) - 1)
        pad = (0, (-w) % m, 0, (-h) % m)
        a, b = F.pad(image_a, pad, mode="replicate"), F.pad(image_b, pad, mode="replicate")
        fa, fb = self.encoder(a), self.encoder(b)
        diffs = [(x - y).abs() for x, y in zip(fa, fb)]
        x = diffs[-1]
        for up, dec, skip in zip(self.ups, self.decs, reversed(diffs[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
        logits = self.head(x)[:, 0]  # [B, H', W']
        return logits[:, :h, :w]


class SiameseDetector:
    """The `ChangeDetector` wrapper: [0, 1] images in, binary mask + probability out."""

    def __init__(self, model: SiameseChangeNet, name: str = "siamese"):
        self.model = model.eval()
        self.name = name

    @torch.no_grad()
    def detect(self, image_a: torch.Tensor, image_b: torch.Tensor) -> ChangeResult:
        a, b = prepare_pair(image_a, image_b, self.model.config.in_channels)
        prob = torch.sigmoid(self.model(a, b))
        return ChangeResult(mask=(prob > self.model.config.threshold).to(torch.uint8), probability=prob)


def prepare_pair(image_a: torch.Tensor, image_b: torch.Tensor, in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a pair and bring it to `[B, in_channels, H, W]` float32 (bands are RGB first; extra bands dropped)."""
    from tamms.errors import AlignmentError, InputError

    a, b = torch.as_tensor(image_a), torch.as_tensor(image_b)
    if a.dim() == 3:
        a = a.unsqueeze(0)  # [C, H, W] -> [1, C, H, W]
    if b.dim() == 3:
        b = b.unsqueeze(0)
    if a.dim() != 4 or b.dim() != 4:
        raise InputError(f"images must be [C, H, W] or [B, C, H, W]; got {tuple(image_a.shape)} and "
                         f"{tuple(image_b.shape)}: pass one image per date")
    if a.shape != b.shape:
        raise AlignmentError(f"the two images differ in shape {tuple(a.shape)} vs {tuple(b.shape)}: "
                             "resample them onto one grid first (same size and bands)")
    if a.shape[1] < in_channels:
        if a.shape[1] == 1:  # grey: repeat so an RGB model can still run
            a, b = a.repeat(1, in_channels, 1, 1), b.repeat(1, in_channels, 1, 1)
        else:
            raise InputError(f"the detector needs {in_channels} bands (RGB first) and the images have "
                             f"{a.shape[1]}: pass RGB images")
    a, b = a[:, :in_channels].float(), b[:, :in_channels].float()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InputError("the images hold NaN or infinite values: fill or mask them before detecting change")
    return a.clamp(0, 1), b.clamp(0, 1)


__all__ = ["SiameseConfig", "SiameseChangeNet", "SiameseDetector", "prepare_pair"]

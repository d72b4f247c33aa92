"""The same-data peer of the change benchmark: an early-fusion U-Net with a ResNet-18 encoder, as torchgeo's
change-detection task builds it (segmentation_models_pytorch `Unet("resnet18", in_channels=6, classes=1)`,
random initialisation), written with plain torch (no torchvision, no timm).

Early fusion: the two dates are stacked as one 6-band image; the encoder is ResNet-18 (7x7 stem at stride 2,
max-pool, four stages of two BasicBlocks, 64-128-256-512 channels); the decoder has smp's five blocks
(256, 128, 64, 32, 16 channels: nearest x2 upsampling, skip concatenation, two 3x3 conv-BN-ReLU) and a 3x3 head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tamms.models.base import PretrainedModel


@dataclass
class UNetEFConfig:
    in_channels: int = 3                 # bands per date (RGB first); the network sees 2 x in_channels
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # smp's default
    threshold: float = 0.5               # probability above which a pixel is "changed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetEFConfig":
        d = dict(d)
        d.pop("model_type", None)
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18Encoder(nn.Module):
    """Feature maps at strides 1 (the input), 2, 4, 8, 16, 32 with 6*, 64, 64, 128, 256, 512 channels."""

    widths = (64, 64, 128, 256, 512)

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, c_prev = [], 64
        for i, c in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_prev, c, stride), BasicBlock(c, c)))
            c_prev = c
        self.layers = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        x = F.relu(self.bn1(self.conv1(x)))
        feats.append(x)
        x = F.max_pool2d(x, 3, 2, 1)
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class UNetEF(PretrainedModel):
    """image_a, image_b `[B, C, H, W]` -> change logits `[B, H, W]` (inputs padded to a multiple of 32, the
    logits cropped back)."""

    model_type = "unet-ef"
    config_class = UNetEFConfig
    train_command = "tamms train detect --config src/tamms/configs/detect_siamese.yaml --set model.name=unet_ef"

    def __init__(self, config: UNetEFConfig | None = None):
        super().__init__()
        self.config = config or UNetEFConfig()
        self.encoder = ResNet18Encoder(2 * self.config.in_channels)
        skips = [512, 256, 128, 64, 64, 0]  # encoder channels from the deepest up; the input is not a skip
        blocks, c_prev = [], skips[0]
        for i, c in enumerate(self.config.decoder_channels):
            blocks.append(nn.Sequential(conv_bn_relu(c_prev + skips[i + 1], c), conv_bn_relu(c, c)))
            c_prev = c
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c_prev, 1, 3, padding=1)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        h, w = image_a.shape[-2:]
        pad = (0, (-w) % 32, 0, (-h) % 32)
        x = F.pad(torch.cat([image_a, image_b], dim=1), pad, mode="replicate")  # [B, 2C, H', W']
        feats = self.encoder(x)
        x = feats[-1]
        skips = list(reversed(feats[1:-1]))  # strides 16, 8, 4, 2
        for i, block in enumerate(self.decoder):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i < len(skips):
                x = torch.cat([x, skips[i]], dim=1)
            x = block(x)
        return self.head(x)[:, 0, :h, :w]


__all__ = ["UNetEF", "UNetEFConfig"]

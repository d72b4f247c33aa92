"""FID as pytorch-fid computes it, without torchvision and without downloading.

Network: the "FID Inception" (TensorFlow's 2015-12-05 Inception v3 ported by pytorch-fid), i.e.
torchvision's Inception3 layout with pytorch-fid's patches (average pools that ignore padding,
max pool in the last block), written here in plain torch so the standard weight file
`pt_inception-2015-12-05-6726825d.pth` loads by its own key names. The file is read from the torch hub
cache (`<torch.hub.get_dir()>/checkpoints/`); when it is missing FID is unavailable, never downloaded.

Input: RGB in [0, 1], resized bilinearly to 299x299 (align_corners=False), mapped to [-1, 1].
Features: "FID" = 2048-d output of the final average pool (pool3); "FID-64" = 64-d output of the first
max pool (pytorch-fid `--dims 64`), a different, much weaker number, only ever reported under its name.
Distance: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)) with unbiased covariances and scipy's sqrtm,
with pytorch-fid's 1e-6 diagonal offset when the product is singular.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchmetrics import Metric

from tamms.errors import InputError, MetricUnavailableError
from tamms.metrics._common import hub_file_available, require_hub_file, select_rgb

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_DIMS = {"FID": 2048, "FID-64": 64}


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:  # TensorFlow's average pool ignores the zero padding
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for k in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{k}")(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # pytorch-fid: the last block (Mixed_7c) pools with max, as TF's graph
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception; forward returns {64: [B, 64], 2048: [B, 2048]} features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.eval().requires_grad_(False)

    @classmethod
    def from_hub_cache(cls) -> "FIDInceptionV3":
        model = cls()
        state = torch.load(require_hub_file(FID_FILE), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}  # classifier unused
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise MetricUnavailableError(f"{FID_FILE} does not match the FID Inception layout "
                                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}); use pytorch-fid's file")
        return model

    def forward(self, rgb: Tensor, dims: Sequence[int] = (2048,)) -> dict[int, Tensor]:
        """rgb: `[B, 3, H, W]` in [0, 1]."""
        x = F.interpolate(rgb, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        out = {}
        if 64 in dims:
            out[64] = F.adaptive_avg_pool2d(x, 1).flatten(1)  # [B, 64, h, w] -> [B, 64] (pytorch-fid dims=64)
        if 2048 in dims:
            x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            out[2048] = F.adaptive_avg_pool2d(x, 1).flatten(1)  # [B, 2048, 8, 8] -> [B, 2048]
        return out


def fid_available() -> tuple[bool, str]:
    return hub_file_available(FID_FILE)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """pytorch-fid's `calculate_frechet_distance`."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the FID matrix square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def statistics_from_sums(total: Tensor, outer: Tensor, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (np.cov(rowvar=False)) from feature sums and outer-product sums."""
    if count < 2:
        raise InputError(f"FID needs at least 2 images per set, got {count}")
    total, outer = total.double().numpy(), outer.double().numpy()
    mu = total / count
    sigma = (outer - count * np.outer(mu, mu)) / (count - 1)
    return mu, sigma


_NET: FIDInceptionV3 | None = None


def inception_features(images: Tensor, dims: int = 2048, rgb_bands: Sequence[int] | None = (0, 1, 2),
                       batch_size: int = 32, net: FIDInceptionV3 | None = None) -> Tensor:
    global _NET
    if net is None:
        if _NET is None:
            _NET = FIDInceptionV3.from_hub_cache()
        net = _NET
    rgb = select_rgb(images, rgb_bands).float()
    with torch.no_grad():
        return torch.cat([net(rgb[i : i + batch_size], dims=(dims,))[dims] for i in range(0, len(rgb), batch_size)])


def fid(real: Tensor, fake: Tensor, dims: int = 2048, rgb_bands: Sequence[int] | None = (0, 1, 2),
        net: FIDInceptionV3 | None = None) -> float:
    """FID (dims 2048) or FID-64 (dims 64) between two image sets `[N, C, H, W]` in [0, 1]."""
    stats = []
    for images in (real, fake):
        feats = inception_features(images, dims, rgb_bands, net=net).double()
        stats.append(statistics_from_sums(feats.sum(0), feats.T @ feats, len(feats)))
    return frechet_distance(*stats[0], *stats[1])


# ----------------------------------------------------------------------------------------- torchmetrics
class FID(Metric):
    """FID with feature sums and outer-product sums as "sum" states (exact under DDP).
    update(images, real: bool). dims=2048 -> "FID", dims=64 -> "FID-64"."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, dims: int = 2048, rgb_bands: Sequence[int] | None = (0, 1, 2), net=None, **kwargs: Any):
        super().__init__(**kwargs)
        if dims not in (64, 2048):
            raise InputError("FID dims must be 2048 (FID) or 64 (FID-64)")
        if net is None:
            ok, reason = fid_available()
            if not ok:
                raise MetricUnavailableError(reason)
        self.dims, self.rgb_bands, self.net = dims, rgb_bands, net
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", default=torch.zeros(dims, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", default=torch.zeros(dims, dims, dtype=torch.float64),
                           dist_reduce_fx="sum")
            self.add_state(f"{side}_count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images: Tensor, real: bool) -> None:  # type: ignore[override]
        feats = inception_features(images, self.dims, self.rgb_bands, net=self.net).double()
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + feats.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + feats.T @ feats)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + len(feats))

    def compute(self) -> Tensor:
        real = statistics_from_sums(self.real_sum, self.real_outer, int(self.real_count))
        fake = statistics_from_sums(self.fake_sum, self.fake_outer, int(self.fake_count))
        return torch.tensor(frechet_distance(*real, *fake))

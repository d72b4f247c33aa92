"""Image metrics for forecasts: PSNR, SSIM, GSSIM, L1, MSE and LPIPS (definitions: docs/metrics.md).

Images are float tensors in [0, 1], `[B, C, H, W]` (or `[C, H, W]`), data_range = 1.
- PSNR: `10 log10(1 / MSE)` per image (over C, H, W), then the mean over images (torchmetrics functional,
  reduction "none"). Identical images give inf.
- SSIM: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, per image (mean over channels and over the
  map where the window lies inside the image, as scikit-image's `gaussian_weights=True,
  use_sample_covariance=False` and Wang et al.'s code), then the mean. torchmetrics computes the map;
  its own mean also covers a reflect-padded 5 px border, which we crop (that alone moves SSIM by ~1e-3).
- GSSIM (as Sat-JEPA-Diff evaluates it; pinned in docs/metrics.md): grey = mean of the RGB bands; at each scale
  s in (1, 0.5, 0.25) the grey image is resized bilinearly (align_corners=False, no antialias), its 3x3
  Sobel gradient magnitude `sqrt(gx^2 + gy^2 + 1e-8)` is taken (reflect padding), each map is
  min-max normalised to [0, 1] per image, and SSIM (settings above) compares them; GSSIM = mean over the
  scales. Scales whose image side falls under the 11 px window are skipped (reported in `gssim_scales`).
- L1, MSE: mean absolute / squared error per image, then the mean.
- LPIPS: AlexNet, v0.1 linear heads (the `alex.pth` shipped in torchmetrics), inputs mapped to [-1, 1],
  spatial average. The AlexNet backbone is torchvision's ImageNet file `alexnet-owt-7be5be79.pth`, read
  from the torch hub cache (`<torch.hub.get_dir()>/checkpoints/`), never downloaded; a plain-torch copy
  of torchvision's `alexnet.features` loads it (torchvision itself breaks torchmetrics here).
- FID: `tamms.metrics._fid` (Inception pool3, 2048-d; "FID-64" is the 64-d first-pool variant); it and this
  module share their helpers through `tamms.metrics._common` and never import each other.

Multi-band images: metrics that need RGB (GSSIM, LPIPS, FID) use the bands given by `rgb_bands`
(the sequence's `rgb_bands`, default (0, 1, 2)); single-band images are repeated to 3 bands.
PSNR, SSIM, L1 and MSE use all bands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from tamms.errors import InputError, MetricUnavailableError
from tamms.metrics._common import as_image_batch, hub_file_available, require_hub_file, select_rgb

SSIM_SETTINGS = {"gaussian_kernel": True, "kernel_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0}
GSSIM_SCALES = (1.0, 0.5, 0.25)
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


# ------------------------------------------------------------------------------------------------ inputs
_batch = as_image_batch


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred, target = _batch(pred), _batch(target)
    if pred.shape != target.shape:
        raise InputError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}; "
                         "resample the prediction onto the target grid first")
    return pred, target.to(pred.dtype)


# ----------------------------------------------------------------------------------- per-image functions
def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    pred, target = _pair(pred, target)
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim_per_image(pred: Tensor, target: Tensor) -> Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, target = _pair(pred, target)
    if min(pred.shape[-2:]) < SSIM_SETTINGS["kernel_size"]:
        raise InputError(f"images of {tuple(pred.shape[-2:])} px are smaller than the 11 px SSIM window")
    # torchmetrics averages its map over the reflect-padded border too; like scikit-image (and Wang et
    # al.'s reference code) we average only where the 11x11 window lies inside the image
    _, full = structural_similarity_index_measure(pred, target, reduction="none", return_full_image=True,
                                                  **SSIM_SETTINGS)
    pad = (SSIM_SETTINGS["kernel_size"] - 1) // 2
    return full[..., pad:-pad, pad:-pad].flatten(1).mean(1)  # [B, C, H-10, W-10] -> [B]


def l1_per_image(pred: Tensor, target: Tensor) -> Tensor:
    pred, target = _pair(pred, target)
    return (pred - target).abs().flatten(1).mean(1)


def mse_per_image(pred: Tensor, target: Tensor) -> Tensor:
    pred, target = _pair(pred, target)
    return (pred - target).pow(2).flatten(1).mean(1)


def sobel_magnitude(grey: Tensor) -> Tensor:
    """`[B, 1, H, W]` -> `[B, 1, H, W]`: sqrt(gx^2 + gy^2 + 1e-8) with 3x3 Sobel kernels, reflect padding."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=grey.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2, 1, 3, 3]
    grads = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="reflect"), kernels)  # [B, 2, H, W]
    return (grads.pow(2).sum(1, keepdim=True) + 1e-8).sqrt()


def _minmax(x: Tensor) -> Tensor:
    flat = x.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def gssim_scales(height: int, width: int) -> list[float]:
    return [s for s in GSSIM_SCALES if min(int(height * s), int(width * s)) >= SSIM_SETTINGS["kernel_size"]]


def gssim_per_image(pred: Tensor, target: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2)) -> Tensor:
    pred, target = _pair(pred, target)
    grey_p = select_rgb(pred, rgb_bands).mean(1, keepdim=True)  # [B, 1, H, W]
    grey_t = select_rgb(target, rgb_bands).mean(1, keepdim=True)
    scales = gssim_scales(*pred.shape[-2:])
    if not scales:
        raise InputError(f"images of {tuple(pred.shape[-2:])} px are smaller than the 11 px SSIM window; "
                         "GSSIM needs at least 11x11 pixels")
    per_scale = []
    for s in scales:
        if s == 1.0:
            gp, gt = grey_p, grey_t
        else:
            gp = F.interpolate(grey_p, scale_factor=s, mode="bilinear", align_corners=False)
            gt = F.interpolate(grey_t, scale_factor=s, mode="bilinear", align_corners=False)
        per_scale.append(ssim_per_image(_minmax(sobel_magnitude(gp)), _minmax(sobel_magnitude(gt))))
    return torch.stack(per_scale).mean(0)


# ------------------------------------------------------------------------------------- functional twins
def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR (dB), per image then mean, data_range 1."""
    return psnr_per_image(pred, target).mean()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM (Gaussian 11x11, sigma 1.5, K1 .01, K2 .03, data_range 1), per image then mean."""
    return ssim_per_image(pred, target).mean()


def gssim(pred: Tensor, target: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2)) -> Tensor:
    """Gradient SSIM (Sat-JEPA-Diff), per image then mean."""
    return gssim_per_image(pred, target, rgb_bands).mean()


def l1(pred: Tensor, target: Tensor) -> Tensor:
    return l1_per_image(pred, target).mean()


def mse(pred: Tensor, target: Tensor) -> Tensor:
    return mse_per_image(pred, target).mean()


# ------------------------------------------------------------------------------------------------ LPIPS
_require = require_hub_file


def alexnet_features() -> torch.nn.Sequential:
    """torchvision's `alexnet().features` layer for layer (same indices, so its state dict loads)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class LPIPSAlex(torch.nn.Module):
    """LPIPS v0.1 with AlexNet, the computation of torchmetrics' `_LPIPS(net="alex")` without torchvision.
    Slices end at relu1..relu5 (feature indices 2, 5, 8, 10, 12)."""

    CUTS = (0, 2, 5, 8, 10, 12)

    def __init__(self, features: torch.nn.Sequential | None = None, lin_path: str | Path | None = None):
        super().__init__()
        from torchmetrics.functional.image.lpips import NetLinLayer, ScalingLayer

        features = features if features is not None else alexnet_features()
        self.scaling_layer = ScalingLayer()
        self.slices = torch.nn.ModuleList(
            torch.nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in zip(self.CUTS[:-1], self.CUTS[1:])
        )
        self.lins = torch.nn.ModuleList(NetLinLayer(c, use_dropout=True) for c in (64, 192, 384, 256, 256))
        if lin_path is None:
            import torchmetrics.functional.image.lpips as tm_lpips

            lin_path = Path(tm_lpips.__file__).parent / "lpips_models" / "alex.pth"
        state = torch.load(lin_path, map_location="cpu", weights_only=True)
        for k in range(5):
            self.lins[k].load_state_dict({"model.1.weight": state[f"lin{k}.model.1.weight"]})
        self.eval().requires_grad_(False)

    @classmethod
    def from_hub_cache(cls) -> "LPIPSAlex":
        features = alexnet_features()
        state = torch.load(_require(ALEXNET_FILE), map_location="cpu", weights_only=True)
        features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        return cls(features)

    def forward(self, img0: Tensor, img1: Tensor) -> Tensor:
        """img0, img1: `[B, 3, H, W]` in [0, 1] -> `[B]` distances."""
        from torchmetrics.functional.image.lpips import _normalize_tensor

        x0, x1 = self.scaling_layer(2 * img0 - 1), self.scaling_layer(2 * img1 - 1)
        total = 0
        for k, block in enumerate(self.slices):
            x0, x1 = block(x0), block(x1)
            diff = (_normalize_tensor(x0) - _normalize_tensor(x1)) ** 2
            total = total + self.lins[k](diff).mean([2, 3], keepdim=True)
        return total.flatten()  # [B, 1, 1, 1] -> [B]


_LPIPS_NET: LPIPSAlex | None = None


def lpips_available() -> tuple[bool, str]:
    return hub_file_available(ALEXNET_FILE)


def lpips_per_image(pred: Tensor, target: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2),
                    net: LPIPSAlex | None = None) -> Tensor:
    global _LPIPS_NET
    pred, target = _pair(pred, target)
    if net is None:
        if _LPIPS_NET is None:
            _LPIPS_NET = LPIPSAlex.from_hub_cache()
        net = _LPIPS_NET
    with torch.no_grad():
        return net(select_rgb(pred, rgb_bands).float(), select_rgb(target, rgb_bands).float())


def lpips(pred: Tensor, target: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2)) -> Tensor:
    """LPIPS (AlexNet, v0.1), per image then mean. Raises MetricUnavailableError without the weight file."""
    return lpips_per_image(pred, target, rgb_bands).mean()


# ------------------------------------------------------------------------------------------ all at once
def image_scores(pred: Tensor, target: Tensor, rgb_bands: Sequence[int] | None = (0, 1, 2),
                 perceptual: bool = True) -> dict[str, Any]:
    """Every per-image metric averaged over the batch; LPIPS is None (with the reason) when unavailable."""
    pred, target = _pair(pred, target)
    out: dict[str, Any] = {
        "PSNR": float(psnr(pred, target)), "SSIM": float(ssim(pred, target)),
        "GSSIM": float(gssim(pred, target, rgb_bands)), "L1": float(l1(pred, target)), "MSE": float(mse(pred, target)),
        "LPIPS": None,
    }
    notes = {"gssim_scales": gssim_scales(*pred.shape[-2:])}
    if perceptual:
        ok, reason = lpips_available()
        if ok:
            out["LPIPS"] = float(lpips(pred, target, rgb_bands))
        else:
            notes["LPIPS"] = reason
    out["notes"] = notes
    return out


# ----------------------------------------------------------------------------------------- torchmetrics
class ImageQuality(Metric):
    """PSNR, SSIM, GSSIM, L1, MSE (and LPIPS when its weight file is present): per-image values are
    summed in "sum"-reduced states, so under DDP the result is the exact mean over all images."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, rgb_bands: Sequence[int] | None = (0, 1, 2), lpips: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.rgb_bands = tuple(rgb_bands) if rgb_bands is not None else None
        self.use_lpips = lpips
        if lpips:
            ok, reason = lpips_available()
            if not ok:
                raise MetricUnavailableError(reason)
        self._names = ["PSNR", "SSIM", "GSSIM", "L1", "MSE"] + (["LPIPS"] if lpips else [])
        for name in self._names:
            self.add_state(f"sum_{name}", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:  # type: ignore[override]
        pred, target = _pair(pred, target)
        values = {"PSNR": psnr_per_image(pred, target), "SSIM": ssim_per_image(pred, target),
                  "GSSIM": gssim_per_image(pred, target, self.rgb_bands),
                  "L1": l1_per_image(pred, target), "MSE": mse_per_image(pred, target)}
        if self.use_lpips:
            values["LPIPS"] = lpips_per_image(pred, target, self.rgb_bands)
        for name in self._names:
            setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + values[name].double().sum())
        self.count += pred.shape[0]

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"sum_{name}") / self.count for name in self._names}

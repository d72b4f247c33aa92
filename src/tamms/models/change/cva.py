"""Classical change detection: change vector analysis (CVA) + Otsu threshold + minimum region size.

The default detector `C` inside TCS and the future-change F1 until a learned one is chosen, and the
`cva` detector of `tamms detect`. No training, no weights:

1. magnitude = sqrt(mean over bands of (b - a)^2) per pixel (RMS change vector length; dividing by the
   band count keeps one threshold meaningful for RGB and multispectral images alike);
2. threshold = max(Otsu's threshold of that image's magnitudes (256-bin histogram over its range, as
   scikit-image's `threshold_otsu`), `min_magnitude`): Otsu always splits an image in two, so the
   floor keeps two near-identical images from "changing" in their noise;
3. pixels above the threshold are change; 8-connected regions smaller than `min_region` pixels are
   dropped (speckle from misregistration and noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tamms.models.change.base import ChangeResult


def otsu_threshold(values: np.ndarray, nbins: int = 256) -> float:
    """Otsu's threshold of a float array, computed like scikit-image's `threshold_otsu`."""
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return lo
    hist, edges = np.histogram(values, bins=nbins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    hist = hist.astype(np.float64)
    weight1 = np.cumsum(hist)
    weight2 = np.cumsum(hist[::-1])[::-1]
    mean1 = np.cumsum(hist * centers) / np.maximum(weight1, 1e-300)
    mean2 = (np.cumsum((hist * centers)[::-1]) / np.maximum(weight2[::-1], 1e-300))[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centers[int(np.argmax(variance12))])


def remove_small_regions(mask: np.ndarray, min_region: int) -> np.ndarray:
    """Drop 8-connected True regions with fewer than `min_region` pixels."""
    if min_region <= 1 or not mask.any():
        return mask
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_region
    keep[0] = False
    return keep[labels]


@dataclass
class CVADetector:
    """Change vector analysis with an Otsu threshold (see the module doc). Implements `ChangeDetector`."""

    min_magnitude: float = 0.05
    min_region: int = 8
    name: str = "cva-otsu"

    def magnitude(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        """`[B, H, W]` RMS change vector length."""
        a, b = _batch(image_a), _batch(image_b)
        if a.shape != b.shape:
            from tamms.errors import AlignmentError

            raise AlignmentError(f"images to compare have shapes {tuple(a.shape)} and {tuple(b.shape)}; "
                                 "bring them onto one grid (same bands and size) first")
        return (b.float() - a.float()).pow(2).mean(1).sqrt()  # [B, C, H, W] -> [B, H, W]

    def threshold(self, magnitude: torch.Tensor) -> float:
        """The threshold used for one `[H, W]` magnitude map."""
        return max(otsu_threshold(magnitude.detach().cpu().numpy()), self.min_magnitude)

    @torch.no_grad()
    def detect(self, image_a: torch.Tensor, image_b: torch.Tensor) -> ChangeResult:
        magnitude = self.magnitude(image_a, image_b)
        masks = []
        for mag in magnitude:
            mask = mag.cpu().numpy() > self.threshold(mag)
            masks.append(remove_small_regions(mask, self.min_region))
        mask = torch.from_numpy(np.stack(masks).astype(np.uint8))  # [B, H, W]
        return ChangeResult(mask=mask.to(magnitude.device))


def _batch(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.ndim == 3 else x  # [C, H, W] -> [1, C, H, W]

"""Metrics for SITS descriptions, forecasts and change maps (definitions: docs/metrics.md).

- `tamms.metrics.text`: `caption_scores` (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, lengths; identical to the
  COCO caption evaluation), `CaptionScores` metric.
- `tamms.metrics.image`: psnr, ssim, gssim, l1, mse, lpips; `image_scores`, `ImageQuality`; FID / FID-64
  (`tamms.metrics._fid`: `fid`, `FID`).
- `tamms.metrics.temporal`: `tcs` (SPS, ACS, TCS), `future_change_f1`, `TemporalConsistency`; all take
  their change detector as an argument (this layer never loads trained models).
- `tamms.metrics.change`: `binary_change_scores`, `semantic_change_scores` (SECOND mIoU, SeK, Fscd),
  `BinaryChangeMetrics`, `SemanticChangeMetrics`.

Every metric is a module-level torchmetrics `Metric` (picklable, "sum" states, exact under DDP) with a
functional twin. Scores for a whole evaluation (pooled counts, per-case rows): `tamms.evaluation`.
Submodules are imported on first use, so `import tamms.metrics` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "caption_scores": "text", "CaptionScores": "text",
    "psnr": "image", "ssim": "image", "gssim": "image", "l1": "image", "mse": "image", "lpips": "image",
    "image_scores": "image", "ImageQuality": "image",
    "fid": "_fid", "FID": "_fid",
    "tcs": "temporal", "future_change_f1": "temporal", "TemporalConsistency": "temporal",
    "binary_change_scores": "change", "semantic_change_scores": "change",
    "BinaryChangeMetrics": "change", "SemanticChangeMetrics": "change",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tamms.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tamms.metrics' has no attribute {name!r}")

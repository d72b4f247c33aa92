"""Temporal metrics of forecasts: TCS (TAMMs sec. 2.3) and the future-change F1 (ours).

TCS compares where and how much the forecast changes with where and how much the place changed just
before: `M_hist = C(I_{t-1}, I_t)`, `M_pred = C(I_t, I^_{t+1})` with a change detector `C`, given by the
caller: any object with `.name` and `.detect(a, b) -> result with .mask [B, H, W]` (a `ChangeDetector`).
This module never loads one: `tamms.evaluation.load_change_detector()` gives the default (the best
detector trained here), and the CLI, the demo and the benchmarks pass it. Its name is in every result.

- centroid mu(M): mean pixel-centre position of the changed pixels in normalised coordinates,
  ((col + 0.5) / W, (row + 0.5) / H) in [0, 1]^2;
- SPS = exp(-||mu(M_pred) - mu(M_hist)||_2 / sigma), sigma = 0.2;
- ACS = exp(-|beta |M_pred| - |M_hist|| / (max(|M_pred|, |M_hist|) + eps)), beta = 1, eps = 1e-6,
  |M| = pixel count. The paper prints the numerator without the absolute value, which would reward a
  forecast for changing LESS than the past (ACS > 1); we take the absolute value (docs/metrics.md, "TCS");
- both masks empty: SPS = ACS = TCS = 1 (nothing changed and nothing is predicted to);
  exactly one empty: SPS = 0 (no centroid to compare), so TCS = 0; ACS follows its formula;
- TCS = SPS * ACS per sequence; reported: the means of SPS, ACS and TCS over sequences.

Future-change F1: F1 between `C(I_t, I^_{t+1})` and the true change, i.e. `C(I_t, I_{t+1})` (or the
exact mask when the data has one, as the synthetic world does), pooled over all pixels of all
sequences (summed TP/FP/FN). TCS rewards a forecast that repeats the past's change wherever it was;
this cannot be fooled that way. With no true and no predicted change at all, F1 = 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from tamms.errors import InputError

SIGMA = 0.2
BETA = 1.0
EPS = 1e-6


def _masks(m: Tensor) -> Tensor:
    m = torch.as_tensor(m)
    if m.ndim == 2:
        m = m.unsqueeze(0)  # [H, W] -> [1, H, W]
    if m.ndim != 3:
        raise InputError(f"change masks must be [B, H, W] or [H, W], got shape {tuple(m.shape)}")
    return m.bool()


def centroid(mask: Tensor) -> tuple[float, float] | None:
    """Normalised (x, y) centroid of a 2-D mask's True pixels, or None when it is empty."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if rows.numel() == 0:
        return None
    h, w = mask.shape
    return ((cols.double() + 0.5).mean().item() / w, (rows.double() + 0.5).mean().item() / h)


def sps_acs_tcs(m_hist: Tensor, m_pred: Tensor, sigma: float = SIGMA, beta: float = BETA,
                eps: float = EPS) -> tuple[float, float, float]:
    """(SPS, ACS, TCS) of one pair of 2-D binary masks."""
    m_hist, m_pred = torch.as_tensor(m_hist).bool(), torch.as_tensor(m_pred).bool()
    if m_hist.shape != m_pred.shape:
        raise InputError(f"mask shapes differ: {tuple(m_hist.shape)} vs {tuple(m_pred.shape)}")
    area_hist, area_pred = int(m_hist.sum()), int(m_pred.sum())
    if area_hist == 0 and area_pred == 0:
        return 1.0, 1.0, 1.0
    acs = math.exp(-abs(beta * area_pred - area_hist) / (max(area_pred, area_hist) + eps))
    if area_hist == 0 or area_pred == 0:
        return 0.0, acs, 0.0
    (xh, yh), (xp, yp) = centroid(m_hist), centroid(m_pred)  # type: ignore[misc]
    sps = math.exp(-math.hypot(xp - xh, yp - yh) / sigma)
    return sps, acs, sps * acs


def tcs_from_masks(m_hist: Tensor, m_pred: Tensor, sigma: float = SIGMA, beta: float = BETA,
                   eps: float = EPS) -> dict[str, Any]:
    """Mean SPS, ACS, TCS over a batch of mask pairs `[B, H, W]`, plus the per-item values."""
    m_hist, m_pred = _masks(m_hist), _masks(m_pred)
    if m_hist.shape != m_pred.shape:
        raise InputError(f"mask shapes differ: {tuple(m_hist.shape)} vs {tuple(m_pred.shape)}")
    per = [sps_acs_tcs(h, p, sigma, beta, eps) for h, p in zip(m_hist, m_pred)]
    n = len(per)
    return {"SPS": sum(p[0] for p in per) / n, "ACS": sum(p[1] for p in per) / n, "TCS": sum(p[2] for p in per) / n,
            "per_item": [{"SPS": s, "ACS": a, "TCS": t} for s, a, t in per], "n": n}


def check_detector(detector) -> Any:
    """The detector itself when it looks like a `ChangeDetector` (`.name`, `.detect(a, b)`), else an error."""
    if detector is None:
        raise InputError("TCS and the future-change F1 need a change detector: pass one (e.g. "
                         "tamms.evaluation.load_change_detector() for the default)")
    if not hasattr(detector, "detect") or not hasattr(detector, "name"):
        raise InputError(f"{detector!r} is not a ChangeDetector (needs .name and .detect(a, b))")
    return detector


def _images(*xs: Tensor) -> list[Tensor]:
    out = []
    for x in xs:
        x = torch.as_tensor(x)
        out.append(x.unsqueeze(0) if x.ndim == 3 else x)  # [C, H, W] -> [1, C, H, W]
    shapes = {tuple(x.shape) for x in out}
    if len(shapes) != 1:
        raise InputError(f"images to compare have different shapes {sorted(shapes)}; bring them onto one grid")
    return out


def tcs(prev: Tensor, last: Tensor, pred: Tensor, detector, sigma: float = SIGMA, beta: float = BETA,
        eps: float = EPS) -> dict[str, Any]:
    """TCS of forecasts `pred` (I^_{t+1}) given the last two history frames `prev` (I_{t-1}) and `last`
    (I_t), all `[B, C, H, W]` in [0, 1], with change detector `detector`.
    Returns {"SPS", "ACS", "TCS", "detector", "n", "per_item"}."""
    detector = check_detector(detector)
    prev, last, pred = _images(prev, last, pred)
    m_hist = detector.detect(prev, last).mask
    m_pred = detector.detect(last, pred).mask
    out = tcs_from_masks(m_hist, m_pred, sigma, beta, eps)
    out["detector"] = detector.name
    return out


def confusion_counts(pred_mask: Tensor, true_mask: Tensor) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of binary masks."""
    p, t = _masks(pred_mask), _masks(true_mask)
    if p.shape != t.shape:
        raise InputError(f"mask shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return tp, fp, fn, p.numel() - tp - fp - fn


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def future_change_f1(last: Tensor, pred: Tensor, target: Tensor | None = None, true_mask: Tensor | None = None,
                     *, detector) -> dict[str, Any]:
    """F1 of the change the forecast makes (`C(I_t, I^_{t+1})`) against the true change: `true_mask`
    `[B, H, W]` when given, else `C(I_t, I_{t+1})` from the real `target` frames. Pooled over every pixel
    of the batch (TP, FP, FN summed; returned too, so callers can pool over batches)."""
    detector = check_detector(detector)
    last, pred = _images(last, pred)
    true_mask_given = true_mask is not None
    if true_mask is None:
        if target is None:
            raise InputError("future-change F1 needs the real next frame (target) or the true change mask")
        true_mask = detector.detect(*_images(last, target)).mask
    tp, fp, fn, _ = confusion_counts(detector.detect(last, pred).mask, true_mask)
    return {"future_change_F1": f1_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn,
            "detector": detector.name, "truth": "mask" if true_mask_given else "detector"}


# ----------------------------------------------------------------------------------------- torchmetrics
class TemporalConsistency(Metric):
    """TCS (with SPS, ACS) and the future-change F1 over many forecasts; sums as "sum" states, so
    the DDP result is the exact mean over all sequences.

    update(prev, last, pred, target=None, true_mask=None): `[B, C, H, W]` frames I_{t-1}, I_t, the
    forecast I^_{t+1}, and (for the F1) the real I_{t+1} or the true change mask `[B, H, W]`."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, detector, sigma: float = SIGMA, beta: float = BETA, eps: float = EPS, **kwargs: Any):
        super().__init__(**kwargs)
        self.detector = check_detector(detector)
        self.sigma, self.beta, self.eps = sigma, beta, eps
        for name in ("sum_SPS", "sum_ACS", "sum_TCS"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("count", "tp", "fp", "fn", "f1_count"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prev: Tensor, last: Tensor, pred: Tensor, target: Tensor | None = None,  # type: ignore[override]
               true_mask: Tensor | None = None) -> None:
        out = tcs(prev, last, pred, self.detector, self.sigma, self.beta, self.eps)
        self.sum_SPS += out["SPS"] * out["n"]
        self.sum_ACS += out["ACS"] * out["n"]
        self.sum_TCS += out["TCS"] * out["n"]
        self.count += out["n"]
        if target is not None or true_mask is not None:
            f1 = future_change_f1(last, pred, target, true_mask, detector=self.detector)
            self.tp += f1["tp"]
            self.fp += f1["fp"]
            self.fn += f1["fn"]
            self.f1_count += out["n"]

    def compute(self) -> dict[str, Any]:
        n = self.count.clamp_min(1)
        out: dict[str, Any] = {"SPS": self.sum_SPS / n, "ACS": self.sum_ACS / n, "TCS": self.sum_TCS / n}
        if int(self.f1_count) > 0:  # only when a truth was given
            out["future_change_F1"] = torch.tensor(f1_from_counts(int(self.tp), int(self.fp), int(self.fn)))
        return out

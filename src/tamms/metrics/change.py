"""Change detection metrics: binary (precision, recall, F1, IoU, OA, kappa) and semantic (SECOND style).

Binary, from the pooled confusion counts over all pixels of all images (TP, FP, FN, TN; change = 1):
  precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN),
  IoU = TP / (TP + FP + FN) (of the change class), OA = (TP + TN) / N,
  kappa = (OA - pe) / (1 - pe), pe = ((TP+FP)(TP+FN) + (FN+TN)(FP+TN)) / N^2 (Cohen).
  A zero denominator gives 0, except when there is no change in the truth AND none predicted: then
  precision = recall = F1 = IoU = 1. kappa is 0 when pe = 1 (one class only), as in the SCD code.

Semantic change, as the SECOND benchmark (Yang et al., "Asymmetric Siamese Networks for Semantic
Change Detection in Aerial Images", TGRS 2021) and the SCD code that reports it (Ding et al., Bi-SRNet
/ SCanNet `SCDD_eval_all`) define it. Each image of a pair has a semantic map where 0 = no change and
1..K-1 = the land-cover class of a changed pixel; the confusion matrix Q (rows = prediction, columns =
truth, K x K) is accumulated over the maps of both dates of every pair:
  IoU_nc = q00 / (sum_j q0j + sum_i qi0 - q00)      (no change)
  IoU_c  = sum_{i,j>=1} qij / (N - q00)             (change, any class)
  mIoU   = (IoU_nc + IoU_c) / 2
  SeK    = kappa(Q with q00 set to 0) * exp(IoU_c - 1)   (kappa as above, on the K-class matrix)
  Pscd   = sum_{i>=1} qii / (N - sum_j q0j),  Rscd = sum_{i>=1} qii / (N - sum_i qi0),
  Fscd   = 2 Pscd Rscd / (Pscd + Rscd)
  OA     = trace(Q) / N;  Score = 0.3 mIoU + 0.7 SeK (the SECOND challenge score).
Truth pixels outside [0, K) (e.g. 255) are ignored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from tamms.errors import InputError


# ------------------------------------------------------------------------------------------------ binary
def binary_confusion(pred: Tensor, target: Tensor) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of binary masks of the same shape (nonzero = change)."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise InputError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    p, t = pred.bool(), target.bool()
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return tp, fp, fn, p.numel() - tp - fp - fn


def binary_scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    n = tp + fp + fn + tn
    if n == 0:
        raise InputError("no pixels to evaluate")
    if tp + fp + fn == 0:  # no change anywhere, none predicted
        precision = recall = f1 = iou = 1.0
    else:
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
    oa = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    kappa = 0.0 if pe == 1 else (oa - pe) / (1 - pe)
    return {"precision": precision, "recall": recall, "F1": f1, "IoU": iou, "OA": oa, "kappa": kappa}


def binary_change_scores(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Precision, recall, F1, IoU, OA, kappa of binary change masks `[B, H, W]` (pooled over pixels)."""
    return binary_scores_from_counts(*binary_confusion(pred, target))


# ---------------------------------------------------------------------------------------------- semantic
def semantic_confusion(pred: Tensor, target: Tensor, num_classes: int) -> np.ndarray:
    """K x K matrix, rows = predicted class, columns = true class; truth outside [0, K) ignored."""
    pred, target = torch.as_tensor(pred).long(), torch.as_tensor(target).long()
    if pred.shape != target.shape:
        raise InputError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    valid = (target >= 0) & (target < num_classes)
    p, t = pred[valid], target[valid]
    if p.numel() and (p.min() < 0 or p.max() >= num_classes):
        raise InputError(f"predicted classes must lie in [0, {num_classes}); got {int(p.min())}..{int(p.max())}")
    counts = torch.bincount(p * num_classes + t, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).double().numpy()


def _kappa(hist: np.ndarray) -> float:
    total = hist.sum()
    if total == 0:
        return 0.0
    po = np.trace(hist) / total
    pe = float(hist.sum(1) @ hist.sum(0)) / total**2
    return 0.0 if pe == 1 else float((po - pe) / (1 - pe))


def semantic_scores_from_confusion(hist: np.ndarray) -> dict[str, float]:
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total == 0:
        raise InputError("no labelled pixels to evaluate")
    q00 = hist[0, 0]
    pred_nc, true_nc = hist[0, :].sum(), hist[:, 0].sum()
    union_nc = pred_nc + true_nc - q00
    iou_nc = q00 / union_nc if union_nc else 1.0
    change_both = hist[1:, 1:].sum()
    iou_c = change_both / (total - q00) if total - q00 else 1.0
    no_q00 = hist.copy()
    no_q00[0, 0] = 0
    sek = _kappa(no_q00) * math.exp(iou_c - 1)
    correct_change = np.trace(hist[1:, 1:])
    pred_change, true_change = total - pred_nc, total - true_nc
    p_scd = correct_change / pred_change if pred_change else 0.0
    r_scd = correct_change / true_change if true_change else 0.0
    f_scd = 2 * p_scd * r_scd / (p_scd + r_scd) if p_scd + r_scd else 0.0
    miou = (iou_nc + iou_c) / 2
    return {"OA": float(np.trace(hist) / total), "mIoU": float(miou), "SeK": float(sek), "Fscd": float(f_scd),
            "Pscd": float(p_scd), "Rscd": float(r_scd), "IoU_nc": float(iou_nc), "IoU_c": float(iou_c),
            "Score": float(0.3 * miou + 0.7 * sek)}


def semantic_change_scores(pred: Tensor, target: Tensor, num_classes: int) -> dict[str, float]:
    """SECOND-style mIoU, SeK, Fscd (and OA, Pscd, Rscd, Score) of semantic change maps
    (0 = no change); pass the maps of both dates (e.g. stacked on the batch axis)."""
    return semantic_scores_from_confusion(semantic_confusion(pred, target, num_classes))


# ----------------------------------------------------------------------------------------- torchmetrics
class BinaryChangeMetrics(Metric):
    """Precision, recall, F1, IoU, OA, kappa from summed confusion counts (exact under DDP)."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:  # type: ignore[override]
        tp, fp, fn, tn = binary_confusion(pred, target)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += tn

    def compute(self) -> dict[str, Tensor]:
        scores = binary_scores_from_counts(int(self.tp), int(self.fp), int(self.fn), int(self.tn))
        return {k: torch.tensor(v) for k, v in scores.items()}

class SemanticChangeMetrics(Metric):
    """SECOND-style OA, mIoU, SeK, Fscd from a summed K x K confusion matrix (exact under DDP).
    update(pred, target): semantic change maps `[B, H, W]` (0 = no change), both dates."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:  # type: ignore[override]
        self.confusion += torch.from_numpy(semantic_confusion(pred, target, self.num_classes))

    def compute(self) -> dict[str, Tensor]:
        scores = semantic_scores_from_confusion(self.confusion.cpu().numpy())
        return {k: torch.tensor(v) for k, v in scores.items()}

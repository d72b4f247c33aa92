"""Change detection metrics on LEVIR-CD labels with known predictions, and SECOND-style SCD metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from tamms.errors import InputError
from tamms.metrics.change import (
    binary_change_scores,
    binary_scores_from_counts,
    semantic_change_scores,
    semantic_scores_from_confusion,
)
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def levir_labels():
    root = shared_path("levir_cd", "label")
    masks = [np.asarray(Image.open(p).convert("L")) > 127 for p in sorted(root.iterdir())]
    return torch.from_numpy(np.stack(masks))  # [6, 256, 256] bool


def numpy_binary(pred: np.ndarray, true: np.ndarray) -> dict:
    """The textbook formulas, written out independently."""
    tp = np.sum(pred & true)
    fp = np.sum(pred & ~true)
    fn = np.sum(~pred & true)
    tn = np.sum(~pred & ~true)
    n = tp + fp + fn + tn
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    oa = (tp + tn) / n
    p_yes = ((tp + fp) / n) * ((tp + fn) / n)
    p_no = ((tn + fn) / n) * ((tn + fp) / n)
    pe = p_yes + p_no
    return {"precision": precision, "recall": recall, "F1": 2 * precision * recall / (precision + recall),
            "IoU": tp / (tp + fp + fn), "OA": oa, "kappa": (oa - pe) / (1 - pe)}


@pytest.mark.parametrize("kind", ["eroded", "shifted", "dilated"])
def test_binary_metrics_on_levir_cd_with_known_predictions(levir_labels, kind):
    labels = levir_labels.numpy()
    if kind == "eroded":
        pred = np.stack([ndimage.binary_erosion(m, iterations=2) for m in labels])
    elif kind == "dilated":
        pred = np.stack([ndimage.binary_dilation(m, iterations=3) for m in labels])
    else:
        pred = np.roll(labels, shift=(4, -6), axis=(1, 2))
    got = binary_change_scores(torch.from_numpy(pred), levir_labels)
    want = numpy_binary(pred, labels)
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), rel=1e-12), key
    if kind == "eroded":  # an eroded label predicts nothing false: precision 1, recall < 1
        assert got["precision"] == 1.0 and got["recall"] < 1.0
    if kind == "dilated":
        assert got["recall"] == 1.0 and got["precision"] < 1.0


def test_binary_metrics_equal_torchmetrics(levir_labels):
    from torchmetrics.functional.classification import (
        binary_accuracy,
        binary_cohen_kappa,
        binary_f1_score,
        binary_jaccard_index,
        binary_precision,
        binary_recall,
    )

    pred = torch.from_numpy(np.roll(levir_labels.numpy(), shift=3, axis=2))
    target = levir_labels.long()
    got = binary_change_scores(pred, target)
    p = pred.long()
    want = {"precision": binary_precision(p, target), "recall": binary_recall(p, target),
            "F1": binary_f1_score(p, target), "IoU": binary_jaccard_index(p, target),
            "OA": binary_accuracy(p, target), "kappa": binary_cohen_kappa(p, target)}
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), abs=1e-6), key


def test_binary_edge_cases():
    empty = torch.zeros(2, 8, 8, dtype=torch.uint8)
    out = binary_change_scores(empty, empty)
    assert (out["precision"], out["recall"], out["F1"], out["IoU"], out["OA"], out["kappa"]) == (1, 1, 1, 1, 1, 0)
    full = torch.ones(2, 8, 8)
    assert binary_change_scores(empty, full)["F1"] == 0.0 and binary_change_scores(empty, full)["precision"] == 0.0
    assert binary_scores_from_counts(5, 0, 0, 5)["kappa"] == 1.0
    with pytest.raises(InputError, match="differs from target shape"):
        binary_change_scores(empty, torch.zeros(2, 8, 9))


def test_semantic_hand_computed():
    # rows = prediction, columns = truth; classes: 0 no change, 1, 2
    q = np.array([[50, 5, 5],
                  [10, 20, 5],
                  [0, 5, 0]], dtype=float)
    out = semantic_scores_from_confusion(q)
    n = 100
    iou_nc = 50 / (60 + 60 - 50)
    iou_c = (20 + 5 + 5 + 0) / (n - 50)
    assert out["mIoU"] == pytest.approx((iou_nc + iou_c) / 2)
    # kappa of Q with q00 = 0: total 50, po = 20 / 50, pe = sum(row_i * col_i) / 50^2
    rows, cols = np.array([10, 35, 5]), np.array([10, 30, 10])
    po, pe = 20 / 50, float(rows @ cols) / 50**2
    assert out["SeK"] == pytest.approx((po - pe) / (1 - pe) * math.exp(iou_c - 1))
    p_scd, r_scd = 20 / (n - 60), 20 / (n - 60)
    assert out["Fscd"] == pytest.approx(2 * p_scd * r_scd / (p_scd + r_scd))
    assert out["OA"] == pytest.approx(70 / 100)
    assert out["Score"] == pytest.approx(0.3 * out["mIoU"] + 0.7 * out["SeK"])


def test_semantic_maps_with_ignore_and_perfect_prediction():
    g = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 4, (2, 16, 16), generator=g)
    perfect = semantic_change_scores(truth, truth, num_classes=4)
    assert perfect["mIoU"] == 1.0 and perfect["Fscd"] == 1.0 and perfect["SeK"] == pytest.approx(1.0)
    noisy = truth.clone()
    noisy[:, :4] = (noisy[:, :4] + 1) % 4
    truth_ignored = truth.clone()
    truth_ignored[:, :4] = 255  # ignored pixels cannot hurt
    assert semantic_change_scores(noisy, truth_ignored, 4)["mIoU"] == 1.0
    assert semantic_change_scores(noisy, truth, 4)["mIoU"] < 1.0
    with pytest.raises(InputError, match="predicted classes"):
        semantic_change_scores(truth + 4, truth, 4)


def test_metric_classes_in_batches_equal_functional(levir_labels):
    from tamms.metrics.change import BinaryChangeMetrics, SemanticChangeMetrics

    pred = torch.from_numpy(np.roll(levir_labels.numpy(), shift=5, axis=1))
    metric = BinaryChangeMetrics()
    metric.update(pred[:4], levir_labels[:4])
    metric.update(pred[4:], levir_labels[4:])
    want = binary_change_scores(pred, levir_labels)
    assert {k: float(v) for k, v in metric.compute().items()} == pytest.approx(want)
    g = torch.Generator().manual_seed(1)
    truth = torch.randint(0, 5, (4, 12, 12), generator=g)
    guess = torch.where(torch.rand(4, 12, 12, generator=g) < 0.3, torch.randint(0, 5, (4, 12, 12), generator=g), truth)
    sem = SemanticChangeMetrics(num_classes=5)
    sem.update(guess[:1], truth[:1])
    sem.update(guess[1:], truth[1:])
    assert {k: float(v) for k, v in sem.compute().items()} == pytest.approx(semantic_change_scores(guess, truth, 5))

"""tamms.evaluation: one place for forecast, change and caption scores; F1/IoU from pooled counts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tamms.errors import InputError
from tamms.evaluation import (
    ChangeEvaluation,
    ForecastEvaluation,
    caption_evaluation,
    change_scores,
    forecast_scores,
)
from tamms.metrics.change import binary_change_scores, semantic_change_scores
from tamms.metrics.image import image_scores
from tamms.metrics.temporal import tcs
from tamms.metrics.text import caption_scores
from tamms.models.change.base import ChangeResult


class BandZeroDetector:
    """Change where band 0 moves by more than 0.5 (deterministic, no weights)."""

    name = "band0>0.5"

    def detect(self, a, b):
        return ChangeResult(mask=((b[:, 0] - a[:, 0]).abs() > 0.5).to(torch.uint8))


def test_future_change_f1_is_pooled_and_the_per_case_mean_is_named():
    """Persistence predicts no change: on a case without true change it scores a free 1 on its own, but
    pooled over both cases its F1 is 0 (it finds none of the true change)."""
    last = torch.zeros(3, 12, 12)
    quiet_truth = torch.zeros(12, 12, dtype=torch.bool)
    busy_truth = torch.zeros(12, 12, dtype=torch.bool)
    busy_truth[2:6, 2:6] = True
    evaluation = ForecastEvaluation(BandZeroDetector(), lpips=False, fid=False)
    evaluation.add("quiet", last, last, last=last, true_change=quiet_truth)
    evaluation.add("busy", last, last, last=last, true_change=busy_truth)
    result = evaluation.result()
    assert result.per_case["quiet"]["future_change_F1"] == 1.0 and result.per_case["busy"]["future_change_F1"] == 0.0
    assert result.scores["future_change_F1_per_case_mean"] == 0.5
    assert result.scores["future_change_F1"] == 0.0
    assert result.counts == {"tp": 0, "fp": 0, "fn": 16}
    assert result.settings["detector"] == "band0>0.5"


def test_forecast_scores_equal_the_metric_functions():
    g = torch.Generator().manual_seed(0)
    prev, last, pred, target = (torch.rand(3, 3, 24, 24, generator=g) for _ in range(4))
    cases = [{"name": f"c{i}", "pred": pred[i], "target": target[i], "last": last[i], "prev": prev[i]}
             for i in range(3)]
    result = forecast_scores(cases, detector=BandZeroDetector(), lpips=False, fid=False)
    want = image_scores(pred, target, perceptual=False)
    for key in ("PSNR", "SSIM", "GSSIM", "L1", "MSE"):
        assert result.scores[key] == pytest.approx(want[key], rel=1e-5)
    assert result.scores["TCS"] == pytest.approx(tcs(prev, last, pred, BandZeroDetector())["TCS"], abs=1e-12)
    masks_pred = (pred[:, 0] - last[:, 0]).abs() > 0.5
    masks_true = (target[:, 0] - last[:, 0]).abs() > 0.5  # no exact truth: C(I_t, target)
    assert result.scores["future_change_F1"] == pytest.approx(binary_change_scores(masks_pred, masks_true)["F1"])
    assert result.scores["LPIPS"] is None and result.scores["FID"] is None
    assert any(n.startswith("LPIPS") for n in result.notes)
    assert pickle.loads(pickle.dumps(result)).scores == result.scores


def test_forecast_evaluation_errors_are_clear():
    image = torch.rand(3, 16, 16)
    with pytest.raises(InputError, match="need a change detector"):
        ForecastEvaluation(lpips=False, fid=False).add("a", image, image, last=image)
    evaluation = ForecastEvaluation(lpips=False, fid=False)
    evaluation.add("a", image, image)  # no history: image scores only
    with pytest.raises(InputError, match="already added"):
        evaluation.add("a", image, image)
    result = evaluation.result()
    assert result.scores["TCS"] is None and result.scores["future_change_F1"] is None
    assert result.scores["SSIM"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="no forecasts"):
        ForecastEvaluation(lpips=False, fid=False).result()


def test_change_evaluation_pools_counts_over_cases():
    rng = np.random.default_rng(0)
    truth = rng.random((3, 20, 20)) < 0.2
    truth[0] = False  # a case without change
    pred = np.where(rng.random((3, 20, 20)) < 0.1, ~truth, truth)
    pred[0] = False  # ... and none predicted: a free 1 on its own
    evaluation = ChangeEvaluation()
    for i in range(3):
        evaluation.add(f"p{i}", pred[i], truth[i])
    result = evaluation.result()
    pooled = binary_change_scores(torch.from_numpy(pred), torch.from_numpy(truth))
    for key, value in pooled.items():
        assert result.scores[key] == pytest.approx(value, rel=1e-12)
    assert result.per_case["p0"]["F1"] == 1.0
    per_case = np.mean([binary_change_scores(torch.from_numpy(pred[i]), torch.from_numpy(truth[i]))["F1"]
                        for i in range(3)])
    assert result.scores["F1_per_case_mean"] == pytest.approx(per_case)
    assert result.scores["F1_per_case_mean"] > result.scores["F1"]
    assert result.counts["tp"] + result.counts["fn"] == int(truth.sum())


def test_change_scores_valid_pixels_and_semantic():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, (2, 16, 16))
    guess = np.where(rng.random((2, 16, 16)) < 0.3, rng.integers(0, 4, (2, 16, 16)), truth)
    scores = change_scores(guess, truth, num_classes=4)
    want = semantic_change_scores(torch.from_numpy(guess), torch.from_numpy(truth), 4)
    for key in ("mIoU", "SeK", "Fscd"):
        assert scores[f"SCD {key}"] == pytest.approx(want[key], rel=1e-12)
    valid = np.ones_like(truth, dtype=bool)
    valid[:, :, :8] = False  # the left half of every map
    left_out = change_scores(guess, truth, valid=valid)
    assert left_out["F1"] == pytest.approx(binary_change_scores(torch.from_numpy(guess[:, :, 8:] > 0),
                                                                torch.from_numpy(truth[:, :, 8:] > 0))["F1"])
    with pytest.raises(InputError, match="differs from target shape"):
        change_scores(guess[:, :8], truth)


def test_caption_evaluation_is_caption_scores():
    cands = {1: "a road is built", 2: "nothing changed"}
    refs = {1: ["a road is built across the field", "a new road"], 2: ["there is no change", "nothing changed"]}
    result = caption_evaluation(cands, refs, meteor=False)
    assert result.scores == caption_scores(cands, refs, meteor=False)
    assert result.settings["n"] == 2 and "METEOR" in result.notes[0]

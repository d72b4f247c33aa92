"""TCS (every branch, hand-computed), future-change F1, and the CVA detector."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tamms.errors import InputError
from tamms.metrics.temporal import centroid, future_change_f1, sps_acs_tcs, tcs, tcs_from_masks
from tamms.models.change.base import ChangeDetector, ChangeResult
from tamms.models.change.cva import CVADetector, otsu_threshold, remove_small_regions


def mask(h, w, pixels):
    m = torch.zeros(h, w, dtype=torch.bool)
    for r, c in pixels:
        m[r, c] = True
    return m


def test_centroid_is_normalised_pixel_centre():
    assert centroid(mask(4, 8, [(1, 3)])) == (3.5 / 8, 1.5 / 4)
    assert centroid(mask(4, 8, [])) is None


def test_both_empty_is_perfect():
    assert sps_acs_tcs(mask(5, 5, []), mask(5, 5, [])) == (1.0, 1.0, 1.0)


def test_exactly_one_empty_has_zero_sps():
    sps, acs, t = sps_acs_tcs(mask(10, 10, []), mask(10, 10, [(0, 0), (0, 1), (1, 0), (1, 1)]))
    assert sps == 0.0 and t == 0.0 and acs == pytest.approx(math.exp(-4 / (4 + 1e-6)))
    sps, acs, t = sps_acs_tcs(mask(10, 10, [(3, 3)]), mask(10, 10, []))
    assert (sps, t) == (0.0, 0.0) and acs == pytest.approx(math.exp(-1 / (1 + 1e-6)))


def test_identical_masks():
    m = mask(10, 10, [(2, 2), (2, 3), (7, 7)])
    assert sps_acs_tcs(m, m) == pytest.approx((1.0, 1.0, 1.0))


def test_hand_computed_general_case():
    hist = mask(10, 10, [(0, 0)])  # centroid (0.05, 0.05), area 1
    pred = mask(10, 10, [(0, 4), (0, 5)])  # centroid (0.5, 0.05), area 2
    sps, acs, t = sps_acs_tcs(hist, pred)
    assert sps == pytest.approx(math.exp(-0.45 / 0.2), rel=1e-12)
    assert acs == pytest.approx(math.exp(-1 / (2 + 1e-6)), rel=1e-12)
    assert t == pytest.approx(sps * acs, rel=1e-12)


def test_acs_uses_the_absolute_difference():
    hist = mask(6, 6, [(0, 0), (0, 1), (1, 0), (1, 1)])
    pred = mask(6, 6, [(0, 0)])  # changes LESS than the past: must not score above 1
    _, acs, _ = sps_acs_tcs(hist, pred)
    assert acs == pytest.approx(math.exp(-3 / (4 + 1e-6)))
    assert acs < 1


def test_batch_means_and_errors():
    hist = torch.stack([mask(4, 4, []), mask(4, 4, [(0, 0)])])
    pred = torch.stack([mask(4, 4, []), mask(4, 4, [])])
    out = tcs_from_masks(hist, pred)
    assert out["TCS"] == 0.5 and out["SPS"] == 0.5 and out["n"] == 2
    assert out["ACS"] == pytest.approx((1 + math.exp(-1 / (1 + 1e-6))) / 2)
    with pytest.raises(InputError, match="mask shapes differ"):
        tcs_from_masks(mask(4, 4, []), mask(4, 5, []))


@dataclass
class BandZeroDetector:
    """A tiny deterministic detector: change where band 0 moves by more than 0.5."""

    name: str = "band0>0.5"

    def detect(self, a, b):
        return ChangeResult(mask=((b[:, 0] - a[:, 0]).abs() > 0.5).to(torch.uint8))


def test_tcs_wires_the_detector_and_names_it():
    assert isinstance(BandZeroDetector(), ChangeDetector)
    prev = torch.zeros(1, 3, 10, 10)
    last = prev.clone()
    last[0, 0, 0, 0] = 1  # past change at (0, 0)
    pred = last.clone()
    pred[0, 0, 0, 4] = 1
    pred[0, 0, 0, 5] = 1  # forecast change at (0, 4), (0, 5)
    out = tcs(prev, last, pred, detector=BandZeroDetector())
    want = sps_acs_tcs(mask(10, 10, [(0, 0)]), mask(10, 10, [(0, 4), (0, 5)]))
    assert (out["SPS"], out["ACS"], out["TCS"]) == pytest.approx(want)
    assert out["detector"] == "band0>0.5"
    f1 = future_change_f1(last, pred, true_mask=mask(10, 10, [(0, 4), (9, 9)]).unsqueeze(0), detector=BandZeroDetector())
    assert f1["future_change_F1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1)) and f1["detector"] == "band0>0.5"
    target = pred.clone()
    assert future_change_f1(last, pred, target=target, detector=BandZeroDetector())["future_change_F1"] == 1.0
    no_change = future_change_f1(last, last, target=last, detector=BandZeroDetector())
    assert no_change["future_change_F1"] == 1.0  # nothing changed, nothing predicted


def test_temporal_metric_class_in_batches_equals_functional():
    from tamms.metrics.temporal import TemporalConsistency

    g = torch.Generator().manual_seed(0)
    prev, last, pred, target = (torch.rand(4, 3, 12, 12, generator=g) for _ in range(4))
    metric = TemporalConsistency(detector=BandZeroDetector())
    metric.update(prev[:2], last[:2], pred[:2], target=target[:2])
    metric.update(prev[2:], last[2:], pred[2:], target=target[2:])
    got = metric.compute()
    want = tcs(prev, last, pred, detector=BandZeroDetector())
    for key in ("SPS", "ACS", "TCS"):
        assert float(got[key]) == pytest.approx(want[key], abs=1e-12)
    f1 = future_change_f1(last, pred, target=target, detector=BandZeroDetector())["future_change_F1"]
    assert float(got["future_change_F1"]) == pytest.approx(f1)


# ------------------------------------------------------------------------------------------------ CVA
def test_otsu_matches_scikit_image():
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.02, 2000), rng.normal(0.5, 0.1, 300)])
    assert otsu_threshold(values) == threshold_otsu(values)


def test_cva_finds_a_square_and_ignores_noise():
    g = torch.Generator().manual_seed(0)
    a = 0.4 + 0.02 * torch.randn(2, 3, 48, 48, generator=g)
    b = a + 0.01 * torch.randn(2, 3, 48, 48, generator=g)
    b[0, :, 10:20, 30:40] += 0.4  # a 10x10 change in the first pair only
    b[0, :, 40, 5] += 0.4  # a 1-pixel speckle: below min_region
    result = CVADetector().detect(a, b)
    assert result.mask.shape == (2, 48, 48) and result.mask.dtype == torch.uint8
    truth = torch.zeros(48, 48, dtype=torch.bool)
    truth[10:20, 30:40] = True
    assert torch.equal(result.mask[0].bool(), truth)
    assert result.mask[1].sum() == 0  # only noise: the magnitude floor keeps it unchanged
    assert CVADetector().detect(a[0], a[0]).mask.sum() == 0
    assert CVADetector().name == "cva-otsu"


def test_remove_small_regions_uses_8_connectivity():
    m = np.zeros((6, 6), dtype=bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal: one 8-connected region of 3
    m[5, 5] = True
    kept = remove_small_regions(m, 3)
    assert kept[0, 0] and kept[2, 2] and not kept[5, 5]


def test_tcs_and_future_f1_take_their_detector_as_an_argument():
    """metrics/ never loads a trained detector: without one, TCS and the F1 say how to pass it."""
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(1, 3, 16, 16, generator=g) for _ in range(3))
    with pytest.raises(InputError, match="need a change detector"):
        tcs(a, b, c, None)
    with pytest.raises(TypeError):
        future_change_f1(b, c, target=a)  # detector is a required keyword
    with pytest.raises(InputError, match="not a ChangeDetector"):
        tcs(a, b, c, detector=object())


def test_metric_classes_live_at_module_level_and_pickle():
    import pickle

    from tamms.metrics.change import BinaryChangeMetrics, SemanticChangeMetrics
    from tamms.metrics.image import ImageQuality
    from tamms.metrics.temporal import TemporalConsistency
    from tamms.metrics.text import CaptionScores

    for cls in (BinaryChangeMetrics, SemanticChangeMetrics, ImageQuality, TemporalConsistency, CaptionScores):
        assert "<locals>" not in cls.__qualname__
    metric = TemporalConsistency(detector=BandZeroDetector())
    g = torch.Generator().manual_seed(1)
    prev, last, pred, target = (torch.rand(2, 3, 12, 12, generator=g) for _ in range(4))
    metric.update(prev, last, pred, target=target)
    clone = pickle.loads(pickle.dumps(metric))
    assert float(clone.compute()["TCS"]) == pytest.approx(float(metric.compute()["TCS"]))
    quality = pickle.loads(pickle.dumps(ImageQuality()))
    quality.update(pred, target)
    assert float(quality.compute()["L1"]) == pytest.approx(float((pred - target).abs().mean()), rel=1e-6)


def test_metrics_layer_imports_no_model_and_no_circle():
    """metrics/ sits below models/: no module of it imports tamms.models, tamms.registry or tamms.evaluation,
    and image.py / _fid.py do not import each other."""
    import ast
    from pathlib import Path

    import tamms.metrics

    folder = Path(tamms.metrics.__file__).parent
    imported = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        imported[path.stem] = names
    for stem, names in imported.items():
        bad = [n for n in names if n.startswith(("tamms.models", "tamms.registry", "tamms.evaluation",
                                                  "tamms.tasks", "tamms.pipelines"))]
        assert not bad, f"metrics/{stem}.py imports {bad}"
    assert not any(n.startswith("tamms.metrics._fid") for n in imported["image"])
    assert not any(n.startswith("tamms.metrics.image") for n in imported["_fid"])

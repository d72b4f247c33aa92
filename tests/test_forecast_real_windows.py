"""benchmarks/forecast_real_windows.py: every window of a real series, the last one marked held out, and the
count of windows where a model is above persistence."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_windows_cover_the_series_and_mark_the_held_out_one(tmp_path):
    from forecast_quality import real_cases
    from forecast_real_windows import scores, summary

    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.writers import save_sequence

    scene = generate_sequence(3, SyntheticWorldConfig(size=24, frames=6), seed=1)
    save_sequence(replace(scene, change_masks=None, landcover=None), tmp_path / "naip_nd_a")
    cases = real_cases(tmp_path, every_window=True)
    assert [c.name.endswith("(held out)") for c in cases] == [False, False, True]  # targets 3, 4, 5 of 6 frames
    assert all(c.sequence.num_frames == 3 for c in cases)
    assert [c.name for c in real_cases(tmp_path)] == ["naip_nd_a"]  # forecast_quality's one held-out case
    np.testing.assert_array_equal(real_cases(tmp_path)[0].target, cases[-1].target)
    assert cases[0].target_date == scene.dates[3] and cases[-1].target_date == scene.dates[5]
    np.testing.assert_array_equal(cases[1].sequence.rgb()[-1], cases[0].target)  # window k ends where k-1 aimed

    last = [c.sequence.rgb()[-1].astype(np.float32) for c in cases]
    exact = {c.name: scores(c.target, c.target) for c in cases}  # the truth itself beats persistence everywhere
    per_window = {"persistence": {c.name: scores(p, c.target) for c, p in zip(cases, last)}, "truth": exact}
    rows = summary(per_window, "naip_nd_a")
    assert rows["truth"]["above_persistence"] == 3 and rows["truth"]["windows"] == 3
    assert rows["truth"]["held_out_GSSIM"] == 1.0 and rows["persistence"]["held_out_GSSIM"] < 1.0
    assert rows["persistence"]["above_persistence"] == 0
    from forecast_real_windows import markdown, quadrant_gssim

    held = cases[-1]
    crops = {"persistence": quadrant_gssim(last[-1], held.target), "truth": quadrant_gssim(held.target, held.target)}
    assert len(crops["truth"]) == 4 and all(v == 1.0 for v in crops["truth"])
    quarter = last[-1].copy()
    quarter[:, :12, :12] = held.target[:, :12, :12]  # right in the top-left crop only
    crops["quarter"] = quadrant_gssim(quarter, held.target)
    assert crops["quarter"][0] == 1.0 and crops["quarter"][1:] == crops["persistence"][1:]
    per_window["quarter"] = {c.name: scores(quarter if c is held else l, c.target) for c, l in zip(cases, last)}
    rows = summary(per_window, "naip_nd_a", crops)
    assert rows["truth"]["held_out_quadrants_above"] == 4 and rows["truth"]["quadrants"] == 4
    assert rows["quarter"]["held_out_quadrants_above"] == (crops["persistence"][0] < 1.0)
    table = markdown({"command": "c", "date": "d", "samples": 1, "per_window": per_window,
                      "held_out_quadrants": {"naip_nd_a": crops}, "summary": {"naip_nd_a": rows}})
    assert "quadrants above persistence |" in table and "| 4 of 4 |" in table

    from io import BytesIO

    from PIL import Image

    from forecast_real_windows import grid

    preds = {"persistence": last, "truth": [c.target for c in cases]}
    picture = Image.open(BytesIO(grid(cases, preds, per_window, "naip_nd_a")))
    # 3 windows (rows) x 3 columns (last frame, truth, the one forecast) of 1.7 x 2.15 inch tiles at 100 dpi
    assert picture.size[0] < picture.size[1] and picture.size[1] > 3 * 150
    assert picture.mode == "P" and len(picture.getpalette()) <= 3 * 256  # a palette PNG: a quarter of the bytes


def test_sampler_choice_reports_the_earlier_real_windows(tmp_path):
    from forecast_quality import real_cases
    from forecast_sampler_val import markdown, real_columns

    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.writers import save_sequence

    scene = generate_sequence(3, SyntheticWorldConfig(size=24, frames=6), seed=1)
    save_sequence(replace(scene, change_masks=None, landcover=None), tmp_path / "landsat_pucallpa_a")
    windows = [c for c in real_cases(tmp_path, every_window=True) if not c.name.endswith("(held out)")]
    last = [c.sequence.rgb()[-1].astype(np.float32) for c in windows]
    truth = real_columns(windows, [c.target for c in windows], last)
    assert truth["landsat_pucallpa_a_GSSIM"] == 1.0 and truth["landsat_pucallpa_a_above_persistence"] == "2 of 2"
    same = real_columns(windows, last, last)
    assert same["landsat_pucallpa_a_GSSIM"] == same["landsat_pucallpa_a_persistence_GSSIM"] < 1.0
    assert same["landsat_pucallpa_a_above_persistence"] == "0 of 2"
    rows = {"noise": {"future_change_F1": 0.4, "GSSIM": 0.7, "PSNR": 24.0, "TCS": 0.3, "seconds": 1, **truth}}
    table = markdown({"command": "c", "date": "d", "cases": 2, "weights": "w", "samples": 1, "detector": "siamese",
                      "real_windows": [c.name for c in windows], "rows": rows, "chosen": "noise"})
    assert "| landsat_pucallpa_a GSSIM | landsat_pucallpa_a above persistence |" in table
    assert "| noise **(chosen)** | 0.4000 | 0.7000 | 24.0000 | 0.3000 | 1.0000 (" in table and "| 2 of 2 | 1 |" in table


def test_rows_for_folders_that_are_not_shipped(tmp_path):
    """`--weights LABEL=FOLDER[@noise]`: a training run's folder as a row, with its own sampler or from noise."""
    import pytest

    from forecast_real_windows import markdown, weights_rows

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    noise = {"strength": 1.0, "start_from": None}
    rows = weights_rows([f"exp={tmp_path / 'run'}", f"exp-noise={tmp_path / 'run'}@noise"], noise)
    assert rows == {"exp": (str(tmp_path / "run"), {}, None), "exp-noise": (str(tmp_path / "run"), noise, 2)}
    for bad in ("exp", "=x", f"exp={tmp_path / 'run'}@noisy", f"exp={tmp_path}"):
        with pytest.raises(ValueError, match="--weights"):
            weights_rows([bad], noise)
    table = markdown({"command": "c", "date": "d", "samples": 1, "summary": {}, "per_window": {"persistence": {}},
                      "weights": {"exp": "runs/exp"},
                      "samplers": {"exp": {"steps": 2, "strength": 1.0, "start": "pure noise"}}})
    assert "exp = `runs/exp` (2 steps, strength 1.0, start pure noise)" in table


def test_blend_weight_is_chosen_on_the_earlier_windows_only(tmp_path):
    """forecast_real_limits.blend_rows: lam comes from the earlier windows; the held-out window's own best lam is
    reported apart, as a ceiling."""
    from forecast_quality import real_cases
    from forecast_real_limits import LAMS, blend_rows, markdown

    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.writers import save_sequence

    scene = generate_sequence(3, SyntheticWorldConfig(size=24, frames=6), seed=1)
    save_sequence(replace(scene, change_masks=None, landcover=None), tmp_path / "landsat_pucallpa_a")
    cases = real_cases(tmp_path, every_window=True)
    last = [c.sequence.rgb()[-1].astype(np.float32) for c in cases]
    # the forecast is the truth on the earlier windows and the last frame on the held-out one: the earlier windows
    # choose lam 0 (the forecast alone), so the held-out score at it is persistence's
    forecast = [c.target if not c.name.endswith("(held out)") else l for c, l in zip(cases, last)]

    def gssim(pred, target):
        return float(1.0 - np.abs(pred - target).mean())  # any score that is highest for the truth

    rows = blend_rows(cases, forecast, gssim)["landsat_pucallpa_a"]
    assert rows["chosen_lam"] == 0.0 and set(rows["per_lam"]) == {str(x) for x in LAMS}
    assert rows["held_out_at_chosen"] == round(gssim(last[-1], cases[-1].target), 4)
    assert rows["held_out_at_test_best"] == rows["held_out_at_chosen"]  # every lam gives the last frame there
    prior = {"persistence": {"landsat_pucallpa_a": {"held_out": 0.5, "earlier_mean": 0.4}}}
    table = markdown({"command": "c", "date": "d", "series": ["landsat_pucallpa_a"], "prior": prior,
                      "blend": {"m": {"landsat_pucallpa_a": rows}}})
    assert "| landsat_pucallpa_a | m |" in table and "| 0.0 |" in table


def test_location_probe_scores_the_oracle_location_and_its_degradations(tmp_path):
    """forecast_real_location: a forecast may change only the chosen share of pixels; the true location is
    ranked perfectly (AUC 1) and its noisy versions less well; a fill with the truth at the true location beats
    persistence, the same fill at the models' locations is scored apart."""
    import pytest
    from forecast_quality import real_cases
    from forecast_real_location import (NOISE_LEVELS, auc, degraded_location, fill, learned_locations,
                                        location_features, locations_grid, markdown, series_summary, top_share,
                                        window_rows)

    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.writers import save_sequence

    score = np.arange(100, dtype=np.float32).reshape(10, 10)
    mask = top_share(score, 0.2)
    assert mask.sum() == 20 and mask.ravel()[80:].all()  # exactly the share, the highest scores
    last, content = np.zeros((3, 10, 10), np.float32), np.ones((3, 10, 10), np.float32)
    assert (fill(last, content, mask)[:, mask] == 1).all() and (fill(last, content, mask)[:, ~mask] == 0).all()
    aucs = []
    for level in (0.0, 0.5, 4.0):
        change = np.random.default_rng(0).random((32, 32))
        aucs.append(auc(degraded_location(change, level, np.random.default_rng(1)), top_share(change, 0.2)))
    assert aucs[0] == pytest.approx(1.0) and aucs[0] > aucs[1] > aucs[2]  # more noise, a worse location
    # the learned location: a feature that marks the location in the training windows is found again in another
    rng = np.random.default_rng(2)
    truths = [rng.random((16, 16)) > 0.8 for _ in range(3)]
    features = [np.stack([t.ravel() + 0.3 * rng.standard_normal(256), rng.standard_normal(256)], 1).astype(np.float32)
                for t in truths]
    learned = learned_locations(features, truths, [[1, 2], [0, 2], [0, 1]], steps=60)
    assert all(auc(s, t) > 0.9 for s, t in zip(learned, truths))

    scene = generate_sequence(3, SyntheticWorldConfig(size=24, frames=6), seed=1)
    save_sequence(replace(scene, change_masks=None, landcover=None), tmp_path / "landsat_pucallpa_a")
    cases = real_cases(tmp_path, every_window=True)

    def gssim(pred, target):
        return float(1.0 - np.abs(pred - target).mean())  # any score that is highest for the truth

    per_window = {}
    for i, c in enumerate(cases):
        last = c.sequence.rgb()[-1].astype(np.float32)
        rows = window_rows(c, {"tamms": c.target, "change-trend": last},
                           {"zeros": np.zeros(last.shape[1:])}, 0.2, gssim, seed=i)
        assert set(rows["needed_auc"]) == {str(x) for x in NOISE_LEVELS}
        assert rows["needed_auc"]["0.0"] == pytest.approx(1.0)
        if np.abs(c.target - last).max() > 0:  # the truth at the true location beats the last frame
            assert rows["oracle"]["tamms forecast"] > rows["persistence"]["last frame"]
        # a fill that is the last frame scores as persistence
        assert rows["oracle"]["change-trend forecast"] == rows["persistence"]["last frame"]
        per_window[c.name] = rows
    history = cases[0].sequence.rgb().astype(np.float32)
    features = location_features(history, history[-1], np.zeros(history.shape[-2:]))
    assert features.shape == (history.shape[-2] * history.shape[-1], 19) and np.isfinite(features).all()
    summary = series_summary(cases, per_window)
    located = {"zeros": [np.zeros(c.target.shape[1:]) for c in cases]}
    assert locations_grid(cases, "landsat_pucallpa_a", per_window, located, 0.2).startswith(b"\x89PNG")
    table = markdown({"command": "c", "date": "d", "share": 0.2, "summary": summary})
    assert "| tamms forecast |" in table and "| noise 0.5 |" in table and "ORACLE" in table

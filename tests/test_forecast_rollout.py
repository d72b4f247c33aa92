"""Long horizons are reached through intermediate dates (each step at most the longest observed gap)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from tamms.data.sequence import SitsSequence, to_days
from tamms.errors import InputError
from tamms.pipelines.forecast import FunctionForecastModel, ForecastPipeline, rollout_days


def test_rollout_days_spaces_long_gaps_evenly():
    days, requested = rollout_days(0.0, [100.0], limit=365.0)
    assert days == [100.0] and requested == [True]
    days, requested = rollout_days(0.0, [1000.0, 1100.0], limit=365.0)
    assert days == pytest.approx([333.0, 667.0, 1000.0, 1100.0]) and requested == [False, False, True, True]
    assert rollout_days(0.0, [5000.0], limit=None) == ([5000.0], [True])


def _sequence(gaps_days=(365, 365)):
    dates = [dt.date(2015, 1, 1)]
    for g in gaps_days:
        dates.append(dates[-1] + dt.timedelta(days=g))
    frames = np.full((len(dates), 3, 8, 8), 0.2, np.float32)
    return SitsSequence(frames=frames, dates=dates)


def _stepper():
    """A model that brightens the last frame by 0.1 per call, recording the gaps it was asked for."""
    gaps = []

    def fn(history, history_days, target_days):
        gaps.append(float(target_days[0] - history_days[0, -1]))
        return (history[:, -1] + 0.1).clamp(0, 1)

    return FunctionForecastModel("stepper", fn, history=2), gaps


def test_a_long_horizon_continues_the_change_step_by_step():
    model, gaps = _stepper()
    pipe = ForecastPipeline(model)  # max_step_days="auto": the longest observed gap, 365 days
    seq = _sequence()
    near = pipe(seq, seq.dates[-1] + dt.timedelta(days=60))
    assert gaps == [60.0] and torch.allclose(near.mean, torch.full_like(near.mean, 0.3))
    gaps.clear()
    far = pipe(seq, seq.dates[-1] + dt.timedelta(days=3 * 365))
    assert gaps == [365.0, 365.0, 365.0]  # three observed intervals, three steps
    assert torch.allclose(far.mean, torch.full_like(far.mean, 0.5))
    assert far.target_days.tolist() == [float(to_days([seq.dates[-1] + dt.timedelta(days=3 * 365)])[0])]
    assert far.trajectory == []  # intermediate dates are not returned
    gaps.clear()
    pipe.max_step_days = None
    pipe(seq, seq.dates[-1] + dt.timedelta(days=3 * 365))
    assert gaps == [3 * 365.0]


def test_models_trained_on_any_gap_take_one_step_to_any_date():
    """Sat-JEPA-Diff (any_gap): "auto" does not split a long horizon by its (one-gap) history window."""
    from tamms.pipelines.jepa import SatJEPAForecastModel

    assert SatJEPAForecastModel.any_gap
    model, gaps = _stepper()
    model.any_gap = True
    pipe = ForecastPipeline(model)
    seq = _sequence()
    pipe(seq, seq.dates[-1] + dt.timedelta(days=3 * 365))
    assert gaps == [3 * 365.0]
    gaps.clear()
    pipe(seq, [seq.dates[-1] + dt.timedelta(days=365), seq.dates[-1] + dt.timedelta(days=3 * 365)])
    assert gaps == [365.0, 2 * 365.0]  # asked dates are still forecast one after another


def test_sequences_with_different_rollouts_in_one_call():
    model, gaps = _stepper()
    pipe = ForecastPipeline(model)
    short, long_ = _sequence((30, 30)), _sequence((365, 365))
    date = long_.dates[-1] + dt.timedelta(days=400)
    short = SitsSequence(frames=short.frames, dates=[d + (long_.dates[-1] - short.dates[-1]) for d in short.dates])
    out = pipe([short, long_], date)
    assert out.mean.shape[0] == 2
    # the short-gap history needs 14 steps of at most 30 days, the yearly one 2 steps
    assert torch.allclose(out.mean[0], torch.ones_like(out.mean[0]))
    assert torch.allclose(out.mean[1], torch.full_like(out.mean[1], 0.4))


def test_bad_step_limit_is_an_error():
    model, _ = _stepper()
    with pytest.raises(InputError, match="max_step_days"):
        ForecastPipeline(model, max_step_days=-3)

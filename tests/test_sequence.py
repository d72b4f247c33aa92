"""SitsSequence: dates parsed once, frames sorted, the sample dict of DESIGN.md, clear errors."""

import datetime as dt

import numpy as np
import pytest

from tamms.data.sequence import SitsSequence, date_from_filename, from_days, parse_date, to_days
from tamms.errors import DateError, InputError


def test_parse_date_forms():
    assert parse_date("2019-09-04") == dt.date(2019, 9, 4)
    assert parse_date("20190904") == dt.date(2019, 9, 4)
    assert parse_date("1985") == dt.date(1985, 7, 1)
    assert parse_date(dt.datetime(2020, 1, 2, 3, 4)) == dt.date(2020, 1, 2)
    with pytest.raises(DateError, match="YYYY-MM-DD"):
        parse_date("last summer")
    with pytest.raises(DateError, match="impossible date"):
        parse_date("2019-02-30")


def test_date_from_filename():
    assert date_from_filename("2019-09-04.tif") == dt.date(2019, 9, 4)
    assert date_from_filename("S2A_20190904_B04.tif") == dt.date(2019, 9, 4)
    assert date_from_filename("landsat_1985.png") == dt.date(1985, 7, 1)
    assert date_from_filename("scene.tif") is None


def test_days_round_trip():
    dates = [dt.date(1970, 1, 1), dt.date(2000, 2, 29)]
    days = to_days(dates)
    assert days.dtype == np.float64 and days[0] == 0
    assert from_days(days[1]) == dates[1]


def _frames(t, c=3, h=4, w=5):
    return np.stack([np.full((c, h, w), i / 10, dtype=np.float32) for i in range(t)])


def test_frames_sorted_by_date_with_their_masks():
    seq = SitsSequence(_frames(3), ["2020-01-01", "2010-01-01", "2015-06-01"],
                       landcover=np.arange(3)[:, None, None] * np.ones((3, 4, 5), dtype=np.int64))
    assert seq.dates == [dt.date(2010, 1, 1), dt.date(2015, 6, 1), dt.date(2020, 1, 1)]
    assert [float(f.mean()) for f in seq.frames] == pytest.approx([0.1, 0.2, 0.0])
    assert seq.landcover[:, 0, 0].tolist() == [1, 2, 0]
    assert seq.gaps_days.tolist() == [(dt.date(2015, 6, 1) - dt.date(2010, 1, 1)).days,
                                      (dt.date(2020, 1, 1) - dt.date(2015, 6, 1)).days]


def test_duplicate_dates_and_count_mismatch_are_clear_errors():
    with pytest.raises(DateError, match="duplicate dates"):
        SitsSequence(_frames(2), ["2020-01-01", "2020-01-01"])
    with pytest.raises(DateError, match="one date per frame"):
        SitsSequence(_frames(2), ["2020-01-01"])
    with pytest.raises(InputError, match=r"\[T, C, H, W\]"):
        SitsSequence(np.zeros((3, 4, 5)), ["2020-01-01"] * 3)


def test_future_must_follow_history():
    with pytest.raises(DateError, match="not after the last frame"):
        SitsSequence(_frames(2), ["2020-01-01", "2021-01-01"], future_frame=_frames(1)[0], future_date="2020-06-01")


def test_require_frames_names_the_fix():
    seq = SitsSequence(_frames(1), ["2020-01-01"])
    with pytest.raises(InputError, match="at least 2 dated frames"):
        seq.require_frames(2, "change description")


def test_sample_dict_contract():
    seq = SitsSequence(_frames(3), ["2010", "2012", "2015"], change_masks=np.zeros((2, 4, 5), np.uint8),
                       future_frame=_frames(1)[0], future_date="2018-01-01", captions=["a", "b"], scene="s")
    s = seq.to_sample()
    assert tuple(s["image"].shape) == (3, 3, 4, 5) and str(s["image"].dtype) == "torch.float32"
    assert str(s["time"].dtype) == "torch.float64" and s["time"][0].item() == to_days([dt.date(2010, 7, 1)])[0]
    assert tuple(s["mask"].shape) == (2, 4, 5)
    assert tuple(s["target"].shape) == (3, 4, 5) and s["target_time"].item() > s["time"][-1].item()
    assert s["captions"] == ["a", "b"] and s["scene"] == "s"
    sub = seq.select([1, 2])
    assert sub.num_frames == 2 and sub.change_masks.shape == (1, 4, 5)


def test_band_names_set_the_rgb_view_and_travel_in_the_sample():
    frames = np.zeros((2, 4, 3, 3), np.float32)
    dates = ["2020-01-01", "2021-01-01"]
    seq = SitsSequence(frames, dates, band_names=["nir", "blue", "green", "red"])
    assert seq.rgb_bands == (3, 2, 1) and seq.to_sample()["band_names"] == ["nir", "blue", "green", "red"]
    # without red/green/blue names the first three bands make a (false-colour) view
    assert SitsSequence(frames, dates, band_names=["swir1", "nir", "red", "green"]).rgb_bands == (0, 1, 2)
    assert SitsSequence(frames[:, :2], dates).rgb_bands is None
    with pytest.raises(InputError, match="3 band_names .* for 4 bands"):
        SitsSequence(frames, dates, band_names=["red", "green", "blue"])

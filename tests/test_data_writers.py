"""Writers: GeoTIFF round trips keep CRS, transform, nodata and values; PNG; save_sequence; no clobbering."""

from __future__ import annotations

import numpy as np
import pytest

from tamms.data.readers import read_image, read_sequence
from tamms.data.sequence import SitsSequence
from tamms.data.writers import save_sequence, write_geotiff, write_png
from tamms.errors import InputError, OutputExistsError
from tests.conftest import shared_path
from tests.test_data_readers import GRID, UTM, write_tif


def test_geotiff_round_trip_uint8_with_nodata(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(1, 255, (2, 4, 10, 12), dtype=np.uint8)
    frames[1, :, :3, :3] = 0  # nodata corner in the last frame
    for i in range(2):
        write_tif(tmp_path / f"f_{2000 + i}.tif", frames[i], nodata=0)
    seq = read_sequence(tmp_path)
    assert seq.nodata_mask[1, :3, :3].all()
    out = write_geotiff(tmp_path / "out" / "pred.tif", seq.frames[-1], seq, nodata_mask=seq.nodata_mask[-1])
    back = read_image(out)
    assert back.crs == UTM and back.transform == GRID and back.nodata == 0.0 and back.dtype == "uint8"
    np.testing.assert_array_equal(back.data, frames[1].astype(np.float32))
    with pytest.raises(OutputExistsError, match="already exists.*--overwrite"):
        write_geotiff(out, seq.frames[-1], seq)
    write_geotiff(out, np.zeros_like(seq.frames[-1]) + 0.5, seq, overwrite=True)
    assert read_image(out).data.max() == 128  # 0.5 * 255 rounded


def test_geotiff_round_trip_percentile_scaling(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(300, 3000, (2, 3, 16, 16), dtype=np.uint16)
    for i in range(2):
        write_tif(tmp_path / f"s_{2010 + i}.tif", data[i])
    seq = read_sequence(tmp_path, scaling="percentile", percentiles=(0, 100))
    out = write_geotiff(tmp_path / "back.tif", seq.frames[-1], seq)
    back = read_image(out)
    assert back.dtype == "uint16"
    np.testing.assert_allclose(back.data, data[1], atol=1)  # only float rounding


def test_real_naip_round_trip_and_rgb_of_four_bands(tmp_path):
    seq = read_sequence(shared_path("naip_nd_a"))
    out = write_geotiff(tmp_path / "last.tif", seq.frames[-1], seq)
    back = read_image(out)
    assert back.crs == "EPSG:26914" and back.transform == seq.transform
    valid = ~seq.nodata_mask[-1]
    np.testing.assert_allclose(back.data[:, valid], np.rint(seq.frames[-1][:, valid] * 255))
    rgb = read_image(write_geotiff(tmp_path / "rgb.tif", seq.rgb()[-1], seq))
    assert rgb.count == 3 and rgb.dtype == "uint8"
    half = read_image(write_geotiff(tmp_path / "half.tif", seq.frames[-1][:, ::2, ::2], seq))
    assert half.transform[0] == 10.0 and half.transform[2] == seq.transform[2]  # same footprint, bigger pixels
    with pytest.raises(InputError, match="cannot scale back 2 channels"):
        write_geotiff(tmp_path / "bad.tif", seq.frames[-1][:2], seq)


def test_write_png_image_and_mask(tmp_path):
    img = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    p = write_png(tmp_path / "img.png", img)
    back = read_image(p)
    assert back.count == 3 and back.data.max() == 255 and back.data.min() == 0
    mask = np.zeros((8, 8), bool)
    mask[2:4] = True
    m = read_image(write_png(tmp_path / "mask.png", mask))
    assert m.count == 1 and set(np.unique(m.data)) == {0, 255} and (m.data[0, 2:4] == 255).all()
    with pytest.raises(OutputExistsError):
        write_png(tmp_path / "mask.png", mask)
    with pytest.raises(InputError, match="1 \\(grey\\), 3 \\(RGB\\) or 4"):
        write_png(tmp_path / "five.png", np.zeros((5, 4, 4), np.float32))
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary files left behind


def test_save_sequence_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.random((3, 4, 16, 16)).astype(np.float32)
    lc = rng.integers(0, 5, (3, 16, 16))
    seq = SitsSequence(
        frames=frames, dates=["2001-02-03", "2004-05-06", "2010-01-01"], crs=UTM, transform=GRID,
        band_names=["red", "green", "blue", "nir"], captions=["a new road appears"], scene="farmland",
        landcover=lc, change_masks=(lc[1:] != lc[:-1]).astype(np.uint8), future_frame=frames[0],
        future_date="2015-01-01", future_landcover=lc[0], future_change_mask=(lc[0] != lc[2]).astype(np.uint8),
        events=[{"kind": "road", "start": "2003-01-01"}],
        meta={"id": "s1", "category": "road", "frame_descriptions": ["a", "b", "c"], "future_description": "d"},
    )
    folder = save_sequence(seq, tmp_path / "s1")
    back = read_sequence(folder)
    np.testing.assert_allclose(back.frames, frames, atol=1e-6)  # no scaling: float32 written as is
    assert back.dates == seq.dates and back.crs == UTM and back.transform == GRID
    np.testing.assert_array_equal(back.landcover, lc)
    np.testing.assert_array_equal(back.change_masks, seq.change_masks)
    np.testing.assert_array_equal(back.future_change_mask, seq.future_change_mask)
    assert back.future_date == seq.future_date and back.captions == seq.captions and back.scene == "farmland"
    assert back.meta["frame_descriptions"] == ["a", "b", "c"] and back.meta["future_description"] == "d"
    assert back.events == seq.events and back.band_names == seq.band_names and back.meta["category"] == "road"
    with pytest.raises(OutputExistsError):
        save_sequence(seq, folder)
    save_sequence(seq.select([0, 1]), folder, overwrite=True)
    assert read_sequence(folder).num_frames == 2


def test_save_pairs_round_trip_keeps_bands_dates_georeferencing(tmp_path):
    from tamms.data import ChangePair, Scaling, read_dataset
    from tamms.data.writers import save_pairs

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 10000, (2, 4, 10, 12)).astype(np.float32)
    scaling = Scaling("divisor", [0.0] * 4, [10000.0] * 4, {"divisor": 10000.0}, "uint16")
    mask = (rng.random((10, 12)) > 0.7).astype(np.uint8)
    pair = ChangePair("train/city", raw[0] / 10000, raw[1] / 10000, mask, band_names=["blue", "green", "red", "nir"],
                      dates=("2017-02-02", "2018-03-27"), scaling=scaling, crs="EPSG:32633",
                      transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0))
    out = save_pairs([pair], tmp_path / "pairs")
    back = read_dataset(out, scaling=10000).pairs[0]
    assert back.name == "train/city" and back.split == "train" and back.dates == pair.dates
    assert back.band_names == pair.band_names and back.crs == pair.crs and back.transform == pair.transform
    np.testing.assert_allclose(back.before * 10000, raw[0], atol=0.51)  # uint16 raw units, rounded
    np.testing.assert_array_equal(back.mask, mask)
    with pytest.raises(OutputExistsError):
        save_pairs([pair], out)

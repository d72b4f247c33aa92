"""Readers: the real data in ../shared/data, dated folders, alignment, scaling, and every bad input."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tamms.data.readers import read_image, read_levir_cc, read_levir_cd, read_sequence, read_sequences
from tamms.data.sequence import date_from_filename
from tamms.errors import AlignmentError, DateError, EmptyInputError, InputError, TammsError
from tests.conftest import shared_path

UTM = "EPSG:32633"
GRID = (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def write_tif(path: Path, data: np.ndarray, crs: str | None = UTM, transform=GRID, nodata=None) -> Path:
    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
               "dtype": data.dtype.name}
    if crs:
        profile.update(crs=crs, transform=Affine(*transform))
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
    return path


def write_pngs(folder: Path, names_sizes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (h, w) in names_sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return folder


def write_json(folder: Path, frames: list[dict], **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sequence.json").write_text(json.dumps({"frames": frames, **extra}))
    return folder


# --- real data -----------------------------------------------------------------------------------
def test_naip_sequence_dates_alignment_scaling():
    seq = read_sequence(shared_path("naip_nd_a"))
    assert seq.frames.shape == (10, 4, 256, 256) and seq.frames.dtype == np.float32
    assert [d.isoformat() for d in seq.dates] == [
        "2009-08-18", "2010-06-29", "2012-07-31", "2014-07-20", "2015-09-26",
        "2016-08-16", "2017-08-27", "2018-07-16", "2019-09-04", "2020-08-31"]
    assert seq.gaps_days.tolist() == [315, 763, 719, 433, 325, 376, 323, 415, 362]
    # the grid (and the georeferencing of every output) is the newest frame's
    assert seq.crs == "EPSG:26914" and seq.transform == (5.0, 0.0, 486099.0, 0.0, -5.0, 5209051.0)
    assert read_image(shared_path("naip_nd_a", "2020-08-31.tif")).transform == seq.transform
    assert seq.scaling.method == "divisor" and seq.scaling.scale == [255.0] * 4 and seq.scaling.dtype == "uint8"
    assert 0.0 <= seq.frames.min() and seq.frames.max() <= 1.0 and not np.isnan(seq.frames).any()
    # frames off by < 1 px were reprojected onto the last frame's grid; the uncovered edge is nodata
    shifts = {r["path"]: r["shift_px"] for r in seq.meta["alignment"]}
    assert len(shifts) == 8 and shifts["2016-08-16.tif"] == [-0.68, -0.04] and "2019-09-04.tif" not in shifts
    assert not seq.nodata_mask[-1].any() and seq.nodata_mask[5].sum() == 256
    # the newest frame is never resampled: it keeps its exact values
    raw = read_image(shared_path("naip_nd_a", "2020-08-31.tif"))
    np.testing.assert_allclose(seq.frames[-1] * 255.0, raw.data, atol=1e-3)
    # 2014 has NIR == 0 over water: one band at nodata does not make a pixel nodata
    assert (read_image(shared_path("naip_nd_a", "2014-07-20.tif")).data[3] == 0).sum() == 710
    assert not seq.nodata_mask[3][5:-5, 5:-5].any()


def test_landsat_nodata_zero_is_masked():
    seq = read_sequence(shared_path("landsat_pucallpa_a"))
    assert seq.num_frames == 8 and seq.dates[0] == dt.date(1985, 7, 1) and seq.crs == "EPSG:4326"
    raw = read_image(shared_path("landsat_pucallpa_a", "2010-07-01.tif"))
    assert raw.nodata == 0.0
    all_zero = (raw.data == 0).all(axis=0)
    assert all_zero.sum() == 14
    assert np.array_equal(seq.nodata_mask[5], all_zero)
    assert (seq.frames[5][:, all_zero] == 0).all()
    assert seq.nodata_mask.sum() == 14  # pixels with only some bands at 0 stay valid


def test_geotiff_rgb_byte_and_single_frame():
    img = read_image(shared_path("geotiff", "RGB.byte.tif"))
    assert img.data.shape == (3, 718, 791) and img.dtype == "uint8" and img.crs == "EPSG:32618"
    assert img.nodata == 0.0 and 0.3 < img.nodata_mask.mean() < 0.35
    seq = read_sequence(shared_path("geotiff", "RGB.byte.tif"), dates=["2020-01-01"])
    assert seq.num_frames == 1
    with pytest.raises(InputError, match="at least 2 dated frames"):
        seq.require_frames(2, "forecasting")


def test_levir_cd_pairs():
    pairs = read_levir_cd(shared_path("levir_cd"))
    assert len(pairs) == 6
    for p in pairs:
        assert p.before.shape == p.after.shape == (3, 256, 256) and p.before.dtype == np.float32
        assert p.mask.dtype == np.uint8 and set(np.unique(p.mask)) <= {0, 1}
        assert 0.0 <= p.before.min() and p.after.max() <= 1.0
    assert sum(int(p.mask.sum()) for p in pairs) > 0
    # every pair carries its band names, one scaling for both images, and no invented dates
    assert all(p.band_names == ["red", "green", "blue"] and p.rgb_bands == (0, 1, 2) for p in pairs)
    assert all(p.scaling.scale == [255.0] * 3 and p.dates is None and p.meta["source"] == "levir-cd" for p in pairs)
    np.testing.assert_allclose(pairs[0].before * 255.0, read_image(pairs[0].meta["paths"][0]).data, atol=1e-3)


def test_levir_cc_captions():
    caps = read_levir_cc(shared_path("levir_cc", "captions_trainval.json"))
    assert len(caps) == 8148
    splits = [v["split"] for v in caps.values()]
    assert splits.count("train") == 6815 and splits.count("val") == 1333
    assert all(len(v["captions"]) == 5 for v in caps.values())
    small = read_levir_cc(shared_path("levir_cc", "captions_images.json"))
    assert set(small) == {"train_000016.png", "train_000051.png", "train_000054.png"}


# --- dates, folders, sequence.json extras ------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("2019-09-04.tif", dt.date(2019, 9, 4)),
    ("S2_20190904_B04.tif", dt.date(2019, 9, 4)),
    ("landsat_1985.png", dt.date(1985, 7, 1)),
    ("scene.tif", None),
])
def test_date_from_filename(name, expected):
    assert date_from_filename(name) == expected


def test_dated_folder_sorted_by_date(tmp_path):
    names = {"b_20190904.png": (16, 16), "a_2021-01-02.png": (16, 16), "c_2005.png": (16, 16)}
    folder = write_pngs(tmp_path / "site", names)
    seq = read_sequence(folder)
    assert seq.dates == [dt.date(2005, 7, 1), dt.date(2019, 9, 4), dt.date(2021, 1, 2)]
    assert [Path(p).name for p in seq.meta["paths"]] == ["c_2005.png", "b_20190904.png", "a_2021-01-02.png"]
    assert seq.crs is None and seq.transform is None and seq.meta["format"] == "dated-folder"
    # the frames follow their dates
    np.testing.assert_allclose(seq.frames[0] * 255, read_image(folder / "c_2005.png").data, atol=1e-3)


def test_explicit_files_and_dates(tmp_path):
    folder = write_pngs(tmp_path, {"x.png": (8, 8), "y.png": (8, 8)})
    seq = read_sequence([folder / "y.png", folder / "x.png"], dates=["2020-05-01", "2001"])
    assert seq.dates == [dt.date(2001, 7, 1), dt.date(2020, 5, 1)]
    assert Path(seq.meta["paths"][0]).name == "x.png"


def test_sequence_json_unsorted_and_extras(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    rng = np.random.default_rng(1)
    frames = []
    for i, date in enumerate(["2018-03-01", "2010-01-01", "2014-06-30"]):
        write_tif(folder / f"f{i}.tif", rng.integers(0, 255, (4, 12, 12), dtype=np.uint8))
        lc = np.full((12, 12), i, dtype=np.uint8)
        from PIL import Image
        Image.fromarray(lc).save(folder / f"lc{i}.png")
        Image.fromarray(np.full((12, 12), i % 2, dtype=np.uint8)).save(folder / f"cm{i}.png")
        frames.append({"path": f"f{i}.tif", "date": date, "landcover": f"lc{i}.png", "change_mask": f"cm{i}.png",
                       "description": f"frame {i}"})
    write_tif(folder / "fut.tif", rng.integers(0, 255, (4, 12, 12), dtype=np.uint8))
    write_json(folder, frames, scene="a lake", captions=["c1", "c2"], category="urban", events=[{"kind": "x"}],
               band_names=["red", "green", "blue", "nir"], rgb_bands=[0, 1, 2], classes=["water", "forest"],
               id="syn-7", future={"path": "fut.tif", "date": "2020-01-01", "landcover": "lc0.png",
                                    "change_mask": "cm1.png", "description": "later"})
    seq = read_sequence(folder)
    assert [d.year for d in seq.dates] == [2010, 2014, 2018]
    assert seq.meta["frame_descriptions"] == ["frame 1", "frame 2", "frame 0"]
    assert seq.landcover.shape == (3, 12, 12) and seq.landcover[:, 0, 0].tolist() == [1, 2, 0]
    # change masks follow frames 1.. after sorting: change into 2014 (cm2 = 0) and into 2018 (cm0 = 0)
    assert seq.change_masks.shape == (2, 12, 12) and seq.change_masks.max() == 0
    assert seq.scene == "a lake" and seq.captions == ["c1", "c2"] and seq.events == [{"kind": "x"}]
    assert seq.meta["id"] == "syn-7" and seq.meta["category"] == "urban" and seq.meta["classes"] == ["water", "forest"]
    assert seq.future_frame.shape == (4, 12, 12) and seq.future_date == dt.date(2020, 1, 1)
    assert seq.future_change_mask.max() == 1 and seq.meta["future_description"] == "later"
    # band selection by name keeps the RGB view right
    nir_first = read_sequence(folder, bands=["nir", "red", "green", "blue"])
    np.testing.assert_array_equal(nir_first.frames[:, 0], seq.frames[:, 3])
    assert nir_first.band_names == ["nir", "red", "green", "blue"] and nir_first.rgb_bands == (1, 2, 3)
    assert read_sequence(folder, bands=[2]).frames.shape == (3, 1, 12, 12)
    with pytest.raises(DateError, match="already gives the dates"):
        read_sequence(folder, dates=["2001", "2002", "2003"])


def test_read_sequences_collection(tmp_path):
    for k in range(3):
        write_pngs(tmp_path / f"site{k}", {"2001.png": (8, 8), "2002.png": (8, 8)}, seed=k)
    seqs = read_sequences(tmp_path)
    assert [s.meta["id"] for s in seqs] == ["site0", "site1", "site2"]


# --- scaling ------------------------------------------------------------------------------------
def test_scaling_uint16_percentile_divisor_none(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(200, 4000, (2, 3, 16, 16), dtype=np.uint16)
    for i in range(2):
        write_tif(tmp_path / f"s_{2010 + i}.tif", data[i])
    auto = read_sequence(tmp_path)
    assert auto.scaling.method == "percentile" and auto.scaling.params["p_low"] == 2.0
    lo, hi = np.percentile(data[:, 0].astype(np.float64), [2, 98])
    assert auto.scaling.offset[0] == pytest.approx(lo) and auto.scaling.scale[0] == pytest.approx(hi - lo)
    assert auto.frames.min() == 0.0 and auto.frames.max() == 1.0
    wide = read_sequence(tmp_path, scaling="percentile", percentiles=(0, 100))
    assert wide.scaling.offset[1] == data[:, 1].min()
    div = read_sequence(tmp_path, scaling=10000)
    np.testing.assert_allclose(div.frames, data / 10000.0, rtol=1e-6)
    raw = read_sequence(tmp_path, scaling="none")
    np.testing.assert_array_equal(raw.frames, data.astype(np.float32))
    small = tmp_path / "small"
    small.mkdir()
    for i in range(2):
        write_tif(small / f"s_{2010 + i}.tif", (data[i] % 200).astype(np.uint16))
    assert read_sequence(small).scaling.method == "divisor"  # uint16 holding 0..255 values


def test_float_nan_is_nodata(tmp_path):
    a = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    b = a.copy()
    b[:, :2, :] = np.nan
    write_tif(tmp_path / "2001.tif", a)
    write_tif(tmp_path / "2002.tif", b)
    seq = read_sequence(tmp_path)
    assert seq.scaling.method == "identity"
    assert not np.isnan(seq.frames).any()
    assert seq.nodata_mask[1, :2].all() and not seq.nodata_mask[1, 2:].any() and not seq.nodata_mask[0].any()
    assert (seq.frames[1][:, :2] == 0).all()


# --- alignment ----------------------------------------------------------------------------------
def test_one_pixel_shift_is_aligned(tmp_path):
    base = np.arange(3 * 20 * 20, dtype=np.uint16).reshape(3, 20, 20) % 251
    write_tif(tmp_path / "2001.tif", base.astype(np.uint8))
    # the second frame starts one pixel to the right: its column 0 is the first frame's column 1
    shifted = (10.0, 0.0, GRID[2] + 10.0, 0.0, -10.0, GRID[5])
    write_tif(tmp_path / "2002.tif", base[:, :, 1:].astype(np.uint8), transform=shifted)
    seq = read_sequence(tmp_path)
    assert seq.size == (20, 19) and seq.transform == shifted  # the newest frame's grid
    np.testing.assert_allclose(seq.frames[1] * 255.0, base[:, :, 1:], atol=1e-3)  # the newest frame as it is
    np.testing.assert_array_equal(seq.frames[0], seq.frames[1])  # the first frame moved onto it
    assert not seq.nodata_mask.any()
    assert seq.meta["alignment"][0]["shift_px"] == [-1.0, 0.0]


def test_png_one_pixel_size_difference_is_padded(tmp_path):
    write_pngs(tmp_path, {"2001.png": (16, 16), "2002.png": (17, 15)})
    seq = read_sequence(tmp_path)
    assert seq.size == (17, 15)  # the newest frame's size: 2001 is cropped to 15 columns, padded to 17 rows
    assert seq.nodata_mask[0][16].all() and not seq.nodata_mask[0][:16].any() and not seq.nodata_mask[1].any()
    assert seq.meta["alignment"][0]["method"] == "crop/pad"


# --- bad inputs: each a TammsError naming the problem and the fix ------------------------------
def test_corrupt_files(tmp_path):
    (tmp_path / "2001.tif").write_bytes(b"II*\x00 this is not a tiff")
    (tmp_path / "2002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match="corrupt or not an image.*re-export"):
        read_image(tmp_path / "2001.tif")
    with pytest.raises(InputError, match="corrupt or not an image"):
        read_image(tmp_path / "2002.png")
    with pytest.raises(InputError, match="2001.tif"):
        read_sequence(tmp_path)


def test_non_georeferenced_different_sizes(tmp_path):
    write_pngs(tmp_path, {"2001.png": (32, 32), "2002.png": (48, 40)})
    with pytest.raises(AlignmentError, match="2001.png is 32x32 px but 2002.png is 48x40.*resize or crop"):
        read_sequence(tmp_path)


def test_crs_far_apart(tmp_path):
    write_tif(tmp_path / "2001.tif", np.ones((3, 8, 8), np.uint8))
    write_tif(tmp_path / "2002.tif", np.ones((3, 8, 8), np.uint8), crs="EPSG:4326",
              transform=(0.001, 0.0, 100.0, 0.0, -0.001, -30.0))
    with pytest.raises(AlignmentError, match="do not show the same place"):
        read_sequence(tmp_path)


def test_georeferenced_mixed_with_plain(tmp_path):
    write_tif(tmp_path / "2001.tif", np.ones((3, 8, 8), np.uint8))
    write_pngs(tmp_path, {"2002.png": (8, 8)})
    with pytest.raises(AlignmentError, match="georeferenced but 2002.png is not"):
        read_sequence(tmp_path)


def test_mismatched_band_counts(tmp_path):
    write_tif(tmp_path / "2001.tif", np.ones((4, 8, 8), np.uint8))
    write_tif(tmp_path / "2002.tif", np.ones((3, 8, 8), np.uint8))
    with pytest.raises(AlignmentError, match="2002.tif has 3 bands but 2001.tif has 4.*bands="):
        read_sequence(tmp_path)
    assert read_sequence(tmp_path, bands=[0, 1, 2]).num_bands == 3  # the fix the message gives works


def test_duplicate_and_unparseable_dates(tmp_path):
    a = tmp_path / "a"
    write_pngs(a, {"x.png": (8, 8), "y.png": (8, 8)})
    write_json(a, [{"path": "x.png", "date": "2019-09-04"}, {"path": "y.png", "date": "2019-09-04"}])
    with pytest.raises(DateError, match="x.png and y.png .*same date 2019-09-04"):
        read_sequence(a)
    write_json(a, [{"path": "x.png", "date": "2019-09-04"}, {"path": "y.png", "date": "Sept 5th"}])
    with pytest.raises(DateError, match="y.png.*cannot parse date 'Sept 5th'.*YYYY-MM-DD"):
        read_sequence(a)
    write_json(a, [{"path": "x.png", "date": "2019-02-30"}, {"path": "y.png", "date": "2020"}])
    with pytest.raises(DateError, match="impossible date"):
        read_sequence(a)
    b = write_pngs(tmp_path / "b", {"2019-01-01.png": (8, 8), "2019_01_01.png": (8, 8)})
    (b / "2019_01_01.png").rename(b / "20190101.png")
    with pytest.raises(DateError, match="same date"):
        read_sequence(b)


def test_folder_without_dates(tmp_path):
    write_pngs(tmp_path, {"2019-01-01.png": (8, 8), "scene.png": (8, 8)})
    with pytest.raises(DateError, match="no date in the name of scene.png.*sequence.json"):
        read_sequence(tmp_path)


def test_nodata_only_and_nan_only_frames(tmp_path):
    write_tif(tmp_path / "2001.tif", np.full((3, 8, 8), 7, np.uint8), nodata=0)
    write_tif(tmp_path / "2002.tif", np.zeros((3, 8, 8), np.uint8), nodata=0)
    with pytest.raises(InputError, match="2002.tif has no valid pixels.*remove this frame"):
        read_sequence(tmp_path)
    nan = tmp_path / "nan"
    nan.mkdir()
    write_tif(nan / "2001.tif", np.ones((2, 8, 8), np.float32))
    write_tif(nan / "2002.tif", np.full((2, 8, 8), np.nan, np.float32))
    with pytest.raises(InputError, match="no valid pixels"):
        read_sequence(nan)


def test_empty_inputs(tmp_path):
    with pytest.raises(EmptyInputError, match="holds no images"):
        read_sequence(tmp_path)
    write_json(tmp_path / "j", [])
    with pytest.raises(EmptyInputError, match="lists no frames"):
        read_sequence(tmp_path / "j")
    (tmp_path / "cd" / "A").mkdir(parents=True)
    (tmp_path / "cd" / "B").mkdir()
    with pytest.raises(EmptyInputError, match="read_levir_cd"):
        read_sequence(tmp_path / "cd")
    with pytest.raises(TammsError, match="does not exist"):
        read_sequence(tmp_path / "nowhere")


def test_missing_file_in_sequence_json(tmp_path):
    write_pngs(tmp_path, {"a.png": (8, 8)})
    write_json(tmp_path, [{"path": "a.png", "date": "2001-01-01"}, {"path": "gone.tif", "date": "2002-01-01"}])
    with pytest.raises(InputError, match="lists 'gone.tif'.*does not exist.*fix the path"):
        read_sequence(tmp_path)
    (tmp_path / "sequence.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_sequence(tmp_path)


def test_levir_cd_unpaired(tmp_path):
    write_pngs(tmp_path / "A", {"1.png": (8, 8), "2.png": (8, 8)})
    write_pngs(tmp_path / "B", {"1.png": (8, 8)})
    with pytest.raises(InputError, match="2.png .*only one of A/ and B/"):
        read_levir_cd(tmp_path)


def test_jpeg_and_rgba_png(tmp_path):
    from PIL import Image

    ramp = np.linspace(20, 230, 16, dtype=np.float32)
    rgb = np.stack([ramp[:, None] + 0 * ramp[None], ramp[None] + 0 * ramp[:, None], np.full((16, 16), 90.0)], -1)
    rgb = rgb.astype(np.uint8)  # smooth, so JPEG keeps it close
    Image.fromarray(rgb).save(tmp_path / "2001.jpg", quality=95)
    rgba = np.dstack([rgb, np.full((16, 16), 255, np.uint8)])
    rgba[:2, :, 3] = 0  # transparent rows are nodata
    Image.fromarray(rgba).save(tmp_path / "2002.png")
    jpg = read_image(tmp_path / "2001.jpg")
    assert jpg.count == 3 and jpg.dtype == "uint8" and np.abs(jpg.data - np.moveaxis(rgb, -1, 0)).mean() < 8
    seq = read_sequence(tmp_path)
    assert seq.num_bands == 3 and seq.nodata_mask[1, :2].all() and not seq.nodata_mask[1, 2:].any()

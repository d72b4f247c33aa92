"""`tamms detect` on files: georeferencing kept, overlays, sequence folders, semantic bands, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from tamms.cli import main
from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0)


def _write_tif(path, data, crs="EPSG:32633", transform=TRANSFORM):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint8", crs=crs, transform=transform) as dst:
        dst.write(data)


@pytest.fixture(scope="module")
def siamese_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights") / "siamese"
    SiameseChangeNet(SiameseConfig(channels=(8, 16))).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def unichange_folder(tmp_path_factory):
    from tamms.models.change.unichange import UniChangeConfig, UniChangeModel

    from tests.test_detect import TINY

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights") / "unichange"
    UniChangeModel(UniChangeConfig.from_dict(TINY)).save_pretrained(folder)
    return folder


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(40, 90, (3, 40, 48), dtype=np.uint8)
    b = a.copy()
    b[:, 10:20, 12:30] = 230
    _write_tif(tmp_path / "before.tif", a)
    _write_tif(tmp_path / "after.tif", b)
    return tmp_path / "before.tif", tmp_path / "after.tif"


def test_detect_pair_keeps_georeferencing(pair, siamese_folder, tmp_path, capsys):
    out = tmp_path / "out" / "change.tif"
    main(["detect", str(pair[0]), str(pair[1]), "--out", str(out), "--model", str(siamese_folder)])
    with rasterio.open(pair[1]) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform == src.transform
        assert (dst.height, dst.width) == (src.height, src.width)
        assert dst.count == 1 and dst.dtypes[0] == "uint8"
        assert set(np.unique(dst.read(1))) <= {0, 1}
        assert dst.tags()["detector"].startswith("siamese")
    assert (out.parent / "change_overlay.png").is_file()
    assert "changed" in capsys.readouterr().out
    # no clobbering without --overwrite: one-line error, exit 2
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(pair[0]), str(pair[1]), "--out", str(out), "--model", str(siamese_folder)])
    assert exc.value.code == 2
    main(["detect", str(pair[0]), str(pair[1]), "--out", str(out), "--model", str(siamese_folder), "--overwrite"])


def test_detect_semantic_bands(pair, unichange_folder, tmp_path):
    out = tmp_path / "sem.tif"
    main(["detect", str(pair[0]), str(pair[1]), "--out", str(out), "--model", str(unichange_folder), "--semantic",
          "--categories", "building,road", "--no-overlay"])
    with rasterio.open(out) as dst:
        assert dst.count == 3 and dst.descriptions == ("change", "class_before", "class_after")
        change, before = dst.read(1), dst.read(2)
        assert (before[change == 0] == 0).all()  # classes only where it changed (SECOND style)
        assert before.max() <= 3
        assert json.loads(dst.tags()["classes"]) == {"1": "building", "2": "road", "3": "other"}
        assert "[CHANGE]" in dst.tags()["response"]
    assert not (tmp_path / "sem_overlay.png").exists()


def test_detect_semantic_needs_unichange(pair, siamese_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "x.tif"), "--model", str(siamese_folder),
              "--semantic"])
    assert exc.value.code == 2
    assert "unichange" in capsys.readouterr().err


def test_detect_sequence_folder(tmp_path, siamese_folder):
    from tamms.data.synthetic import write_world

    seq_dir = write_world(tmp_path / "world", 1, size=32, frames=3)[0]
    out = tmp_path / "changes"
    main(["detect", str(seq_dir), "--out", str(out), "--model", str(siamese_folder)])
    summary = json.loads((out / "detect_summary.json").read_text())
    assert len(summary["pairs"]) == 2
    first_frame = sorted(p for p in seq_dir.iterdir() if p.suffix == ".tif")[0]
    for entry in summary["pairs"]:
        tif = out / entry["mask"]
        assert tif.is_file() and tif.with_name(tif.stem + "_overlay.png").is_file()
        with rasterio.open(tif) as dst, rasterio.open(first_frame) as src:
            assert dst.crs == src.crs and dst.transform == src.transform


def test_detect_rejects_bad_inputs(tmp_path, pair, siamese_folder):
    for args in (["detect", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "m.png")],
                 ["detect", str(pair[0]), str(tmp_path / "missing.tif"), "--out", str(tmp_path / "m.tif")],
                 ["detect", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "m.tif"), "--model", "nope"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2

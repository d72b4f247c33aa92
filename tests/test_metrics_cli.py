"""`tamms evaluate captions|forecasts|changes` end to end on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from tamms.cli import main
from tests.conftest import shared_path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_captions(tmp_path, capsys):
    from tamms.metrics.text import caption_scores

    pairs = json.loads(shared_path("levir_cc", "captions_trainval.json").read_text())["pairs"]
    names = sorted(pairs)[100:130]
    cands = {n: pairs[n]["captions"][0] for n in names}
    refs = {n: pairs[n]["captions"][1:] for n in names}
    (tmp_path / "p.json").write_text(json.dumps(cands))
    (tmp_path / "r.json").write_text(json.dumps(refs))
    out = tmp_path / "scores.json"
    code, stdout, _ = run(["evaluate", "captions", "--pred", str(tmp_path / "p.json"), "--refs",
                           str(tmp_path / "r.json"), "--no-meteor", "--json", str(out)], capsys)
    assert code == 0 and "CIDEr-D" in stdout and "BLEU-4" in stdout
    result = json.loads(out.read_text())
    want = caption_scores(cands, refs, meteor=False)
    for key in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "mean_length", "length_gap"):
        assert result["scores"][key] == want[key]
    assert result["scores"]["METEOR"] is None and "disabled" in result["settings"]["METEOR"]
    # no clobbering without --overwrite
    code, _, err = run(["evaluate", "captions", "--pred", str(tmp_path / "p.json"), "--refs",
                        str(tmp_path / "r.json"), "--no-meteor", "--json", str(out)], capsys)
    assert code == 2
    # mismatched ids are named
    del cands[names[3]]
    (tmp_path / "p.json").write_text(json.dumps(cands))
    code, _, err = run(["evaluate", "captions", "--pred", str(tmp_path / "p.json"), "--refs",
                        str(tmp_path / "r.json"), "--no-meteor"], capsys)
    assert code == 2 and names[3] in err and "missing candidates" in err


@pytest.fixture(scope="module")
def levir_pngs(tmp_path_factory):
    """Folders of 64x64 crops: target = B, pred = B + noise, history last = A, prev = A shifted; masks."""
    root = shared_path("levir_cd")
    base = tmp_path_factory.mktemp("levir")
    rng = np.random.default_rng(0)
    folders = {k: base / k for k in ("pred", "target", "hist/last", "hist/prev", "mask_true", "mask_pred")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for path in sorted((root / "A").iterdir())[:3]:
        a = np.asarray(Image.open(path).convert("RGB"))[:64, :64]
        b = np.asarray(Image.open(root / "B" / path.name).convert("RGB"))[:64, :64]
        noisy = np.clip(b.astype(int) + rng.integers(-20, 21, b.shape), 0, 255).astype(np.uint8)
        Image.fromarray(b).save(folders["target"] / path.name)
        Image.fromarray(noisy).save(folders["pred"] / path.name)
        Image.fromarray(a).save(folders["hist/last"] / path.name)
        Image.fromarray(np.roll(a, 3, axis=1)).save(folders["hist/prev"] / path.name)
        label = np.asarray(Image.open(root / "label" / path.name).convert("L")) > 127
        Image.fromarray((label * 255).astype(np.uint8)).save(folders["mask_true"] / path.name)
        Image.fromarray((ndimage.binary_erosion(label, iterations=2) * 255).astype(np.uint8)).save(
            folders["mask_pred"] / path.name)
    return base


def test_evaluate_forecasts(levir_pngs, tmp_path, capsys):
    from tamms.metrics import image as im
    from tamms.metrics.temporal import tcs

    out = tmp_path / "f.json"
    code, stdout, err = run(["evaluate", "forecasts", "--pred", str(levir_pngs / "pred"), "--target",
                             str(levir_pngs / "target"), "--history", str(levir_pngs / "hist"), "--json", str(out),
                             "--detector", "cva"],
                            capsys)
    assert code == 0, err
    assert "TCS" in stdout and "cva-otsu" in stdout
    result = json.loads(out.read_text())

    def load(folder):
        return torch.from_numpy(np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255
                                          for p in sorted((levir_pngs / folder).iterdir())])).permute(0, 3, 1, 2)

    pred, target, last, prev = load("pred"), load("target"), load("hist/last"), load("hist/prev")
    assert result["scores"]["PSNR"] == pytest.approx(float(im.psnr(pred, target)), abs=1e-4)
    assert result["scores"]["SSIM"] == pytest.approx(float(im.ssim(pred, target)), abs=1e-5)
    from tamms.models.change.cva import CVADetector

    assert result["scores"]["TCS"] == pytest.approx(tcs(prev, last, pred, CVADetector())["TCS"], abs=1e-9)
    assert result["settings"]["detector"] == "cva-otsu"
    assert 0 <= result["scores"]["future_change_F1"] <= 1
    assert result["scores"]["LPIPS"] is None or result["scores"]["LPIPS"] >= 0
    assert set(result["per_item"]) == {p.name for p in (levir_pngs / "pred").iterdir()}


def test_evaluate_forecasts_size_mismatch_names_the_item(levir_pngs, tmp_path, capsys):
    bad = tmp_path / "pred"
    bad.mkdir()
    for path in sorted((levir_pngs / "pred").iterdir()):
        img = Image.open(path)
        (img.resize((32, 32)) if path == sorted((levir_pngs / "pred").iterdir())[1] else img).save(bad / path.name)
    code, _, err = run(["evaluate", "forecasts", "--pred", str(bad), "--target", str(levir_pngs / "target")], capsys)
    name = sorted((levir_pngs / "pred").iterdir())[1].name
    assert code == 2 and name in err and "same grid" in err
    (bad / name).unlink()
    code, _, err = run(["evaluate", "forecasts", "--pred", str(bad), "--target", str(levir_pngs / "target")], capsys)
    assert code == 2 and name in err and "targets without prediction" in err


def test_evaluate_changes(levir_pngs, tmp_path, capsys):
    from tamms.metrics.change import binary_change_scores

    out = tmp_path / "c.json"
    code, stdout, err = run(["evaluate", "changes", "--pred", str(levir_pngs / "mask_pred"), "--target",
                             str(levir_pngs / "mask_true"), "--json", str(out)], capsys)
    assert code == 0, err
    result = json.loads(out.read_text())

    def load(folder):
        return torch.from_numpy(np.stack([np.asarray(Image.open(p)) > 0 for p in sorted((levir_pngs / folder).iterdir())]))

    want = binary_change_scores(load("mask_pred"), load("mask_true"))
    for key, value in want.items():
        assert result["scores"][key] == pytest.approx(value, rel=1e-12)
    assert result["scores"]["precision"] == 1.0  # an eroded label has no false alarms


def test_evaluate_semantic_changes(tmp_path, capsys):
    from tamms.metrics.change import semantic_change_scores

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (2, 24, 24)).astype(np.uint8)
    guess = np.where(rng.random((2, 24, 24)) < 0.3, rng.integers(0, 4, (2, 24, 24)), truth).astype(np.uint8)
    for folder, maps in (("t", truth), ("p", guess)):
        (tmp_path / folder).mkdir()
        for i, m in enumerate(maps):
            Image.fromarray(m).save(tmp_path / folder / f"pair{i}.png")
    out = tmp_path / "s.json"
    code, stdout, err = run(["evaluate", "changes", "--pred", str(tmp_path / "p"), "--target", str(tmp_path / "t"),
                             "--num-classes", "4", "--json", str(out)], capsys)
    assert code == 0, err
    result = json.loads(out.read_text())["scores"]
    want = semantic_change_scores(torch.from_numpy(guess), torch.from_numpy(truth), 4)
    for key in ("mIoU", "SeK", "Fscd", "OA"):
        assert result[f"SCD {key}"] == pytest.approx(want[key], rel=1e-12)

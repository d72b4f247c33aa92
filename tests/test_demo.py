"""`tamms demo` end to end on a tiny configuration, and the report rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from tamms.demo import DemoConfig, run_demo
    from tamms.utils import default_weights

    # the package ships these weights: their absence is a failure, not a skip
    assert (default_weights("describer") / "config.json").exists(), "the shipped describer weights are missing"
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(n_sequences=2, samples=2, steps=2, max_real_series=1, max_levir_pairs=1, real_size=64)
    data = SHARED_DATA if SHARED_DATA.is_dir() else None
    return run_demo(out, data_dir=data, config=cfg, progress=False), data


def test_demo_writes_report_and_sane_numbers(demo_run):
    result, data = demo_run
    assert result.index_html.is_file() and result.results_json.is_file()
    summary = json.loads(result.results_json.read_text())
    assert len(summary["sequences"]) == 2
    for model in ("tamms", "persistence"):
        row = summary["forecast_synthetic"][model]
        assert 5 < row["PSNR"] < 60 and 0 <= row["SSIM"] <= 1 and 0 <= row["GSSIM"] <= 1
        assert 0 <= row["TCS"] <= 1 and 0 <= row["SPS"] <= 1 and 0 <= row["ACS"] <= 1
        assert 0 <= row["future_change_F1"] <= 1 and 0 <= row["future_change_F1_per_case_mean"] <= 1
        # the headline future-change F1 is pooled: TP, FP, FN summed over the sequences, then one F1
        counts = {k: sum(seq["metrics"][model][k] for seq in summary["sequences"]) for k in ("tp", "fp", "fn")}
        pooled = 1.0 if not any(counts.values()) else 2 * counts["tp"] / (2 * counts["tp"] + counts["fp"] + counts["fn"])
        assert row["future_change_F1"] == pytest.approx(pooled)
        per_case = [seq["metrics"][model]["future_change_F1"] for seq in summary["sequences"]]
        assert row["future_change_F1_per_case_mean"] == pytest.approx(sum(per_case) / len(per_case))
    detection = summary["detection_synthetic"]
    assert 0 <= detection["F1"] <= 1 and "F1_per_case_mean" in detection
    for seq in summary["sequences"]:
        assert seq["description"].strip()
        assert len(seq["references"]) == 5
    text = summary["description"]
    assert 0 <= text["BLEU-4"] <= 1 and text["CIDEr-D"] >= 0 and text["mean_length"] > 0
    assert summary["settings"]["tcs_detector"]
    html = result.index_html.read_text()
    assert html.count("<img ") >= 2 * 4  # history, forecast, change strips per sequence + plots
    assert summary["settings"]["tcs_detector"] in html
    if data is not None:
        assert summary["real_series"] and summary["levir_pairs"]
        # every real pair is described beside its images; pairs without dates say their dates are placeholders
        for pair in summary["levir_pairs"]:
            assert pair["description"].strip()
            assert pair["placeholder_dates"] == pair["id"].split("/")[0].startswith(("levir", "sztaki"))
            assert f"described: \u201c{pair['description']}\u201d" in html


def test_demo_cli_reads_real_data_only_when_given(tmp_path, monkeypatch):
    """Nothing defaults to ../shared/data: `tamms demo` passes a data folder only when --data names one."""
    import tamms.demo
    from tamms.cli import main

    seen = []

    def fake_run_demo(out, data_dir=None, config=None, overwrite=False):
        seen.append(data_dir)
        summary = {"description": {}, "forecast_synthetic": {}, "settings": {"tcs_detector": "x"}}
        return tamms.demo.DemoResult(out, out / "index.html", out / "results.json", 0.0, summary)

    monkeypatch.setattr(tamms.demo, "run_demo", fake_run_demo)
    work = tmp_path / "checkout"
    (tmp_path / "shared" / "data").mkdir(parents=True)  # a ../shared/data beside the working folder
    work.mkdir()
    monkeypatch.chdir(work)
    main(["demo", "--out", str(tmp_path / "d1")])
    main(["demo", "--out", str(tmp_path / "d2"), "--data", str(tmp_path / "shared" / "data")])
    assert seen == [None, tmp_path / "shared" / "data"]


def test_demo_refuses_to_overwrite(demo_run):
    from tamms.demo import DemoConfig, run_demo
    from tamms.errors import OutputExistsError

    result, _ = demo_run
    before = result.index_html.read_text()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_demo(result.out_dir, config=DemoConfig(n_sequences=1), progress=False)
    assert result.index_html.read_text() == before


def test_report_images_load_in_headless_chromium(demo_run):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    result, _ = demo_run
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={result.out_dir / '.chromium'}", "--virtual-time-budget=5000", "--dump-dom",
           result.index_html.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert found, "the report's load check did not run in Chromium"
    ok, total = int(found.group(1)), int(found.group(2))
    assert total >= 8 and ok == total


def test_demo_train_retrains_every_model_from_scratch(tmp_path):
    """`--train` at 1% of the shipped training: the report is built from freshly trained weights."""
    from tamms.demo import DemoConfig, run_demo

    cfg = DemoConfig(n_sequences=1, samples=1, steps=1, train=True, train_scale=0.01)
    # with the demo's own progress bars on, as `tamms demo --train` runs: no training loop may open a second
    # live display inside them (a nested rich Live broke the report at exit)
    result = run_demo(tmp_path / "demo", config=cfg, progress=True)
    weights = tmp_path / "demo" / "weights"
    for name in ("describer", "siamese", "forecast"):
        assert any((weights / name).rglob("*.safetensors")), f"{name} was not trained"
    settings = result.summary["settings"]
    assert settings["tcs_detector"].startswith("siamese:")  # the retrained detector, named by its folder
    assert result.index_html.is_file()

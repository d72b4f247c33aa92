"""`tamms data inspect` and `tamms data synth`: tables, contact sheets, no clobbering, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from tamms.cli import main
from tamms.data.readers import read_image
from tests.conftest import shared_path

NAIP_DATES = ["2009-08-18", "2010-06-29", "2012-07-31", "2014-07-20", "2015-09-26",
              "2016-08-16", "2017-08-27", "2018-07-16", "2019-09-04", "2020-08-31"]
NAIP_GAPS = [315, 763, 719, 433, 325, 376, 323, 415, 362]


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_naip_prints_dates_gaps_and_writes_sheet(tmp_path, capsys, monkeypatch):
    naip = shared_path("naip_nd_a")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["data", "inspect", str(naip)], capsys)
    assert code == 0
    for date in NAIP_DATES:
        assert date in out
    for gap in NAIP_GAPS:
        assert f" {gap} " in out
    assert "EPSG:26914" in out and "256x256" in out and "uint8" in out
    sheet = tmp_path / "naip_nd_a_contact_sheet.png"
    img = read_image(sheet)
    assert img.count == 3 and img.shape[0] > 2 * 192 and img.shape[1] > 5 * 192  # 2 rows of 5 frames
    assert img.data.std() > 20  # real imagery, not a blank canvas
    # run again in the same folder: it replaces its own sheet
    sheet.write_bytes(sheet.read_bytes())  # same bytes, new mtime
    before = sheet.stat().st_mtime_ns
    code, out, err = run(["data", "inspect", str(naip)], capsys)
    assert code == 0, err
    assert sheet.stat().st_mtime_ns != before and read_image(sheet).shape == img.shape
    # a file there that is not a contact sheet is kept, and the error says how to replace it
    sheet.write_bytes(b"my notes")
    code, _, err = run(["data", "inspect", str(naip)], capsys)
    assert code == 2 and "not a contact sheet" in err and "--overwrite" in err and err.count("\n") == 1
    assert sheet.read_bytes() == b"my notes"
    code, _, _ = run(["data", "inspect", str(naip), "--overwrite"], capsys)
    assert code == 0 and read_image(sheet).shape == img.shape


def test_inspect_levir_cd_and_landsat(tmp_path, capsys):
    code, out, _ = run(["data", "inspect", str(shared_path("levir_cd")), "--sheet", str(tmp_path / "cd.png")], capsys)
    assert code == 0 and "test_2_0000_0000" in out and "6 before/after pairs" in out
    assert read_image(tmp_path / "cd.png").shape[0] > 6 * 160
    code, out, _ = run(["data", "inspect", str(shared_path("landsat_pucallpa_a")), "--no-sheet"], capsys)
    assert code == 0 and "1985-07-01" in out and "1826" in out and "EPSG:4326" in out


def test_inspect_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from PIL import Image

    for name in ("2001.png", "photo.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    code, out, err = run(["data", "inspect", str(tmp_path), "--no-sheet"], capsys)
    assert code == 2 and err.startswith("error: no date in the name of photo.png") and err.count("\n") == 1
    code, _, err = run(["data", "inspect", str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in err


def test_synth_then_inspect(tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "world"
    code, out, _ = run(["data", "synth", "--out", str(out_dir), "--n", "3", "--size", "32", "--frames", "4",
                        "--seed", "5"], capsys)
    assert code == 0 and "wrote 3 sequences" in out and " s (seed 5)" in out
    folders = sorted(p for p in out_dir.iterdir() if (p / "sequence.json").is_file())
    assert len(folders) == 3
    code, _, err = run(["data", "synth", "--out", str(out_dir), "--n", "3", "--size", "32"], capsys)
    assert code == 2 and "--overwrite" in err
    monkeypatch.chdir(tmp_path)
    # the whole world: one row per sequence, and one sequence: its frames with dates and its future frame
    code, out, _ = run(["data", "inspect", str(out_dir)], capsys)
    assert code == 0 and "3 sequences" in out and all(f.name in out for f in folders)
    assert (tmp_path / "world_contact_sheet.png").is_file()
    code, out, err = run(["data", "inspect", str(out_dir)], capsys)  # again, same folder: replaces its sheet
    assert code == 0 and "3 sequences" in out, err
    code, out, _ = run(["data", "inspect", str(folders[0]), "--sheet", str(tmp_path / "one.png")], capsys)
    assert code == 0 and "future" in out and "4 frames" in out
    from tamms.data.readers import read_sequence

    seq = read_sequence(folders[0])
    for d in seq.dates:
        assert d.isoformat() in out
    assert seq.landcover.shape == (4, 32, 32) and seq.change_masks.shape == (3, 32, 32)
    assert seq.future_frame.shape == (4, 32, 32) and len(seq.meta["frame_descriptions"]) == 4
    sheet = read_image(tmp_path / "one.png")
    assert sheet.shape[1] >= 5 * 64  # 4 frames and the future frame in one row


def test_help_is_fast_and_lists_commands(capsys):
    code, out, _ = run(["data", "--help"], capsys)
    assert code == 0 and "inspect" in out and "synth" in out


def test_inspect_dated_image_folder(tmp_path, capsys):
    from PIL import Image

    site = tmp_path / "site"
    site.mkdir()
    rng = np.random.default_rng(0)
    for name in ("img_20200105.png", "img_2018-03-01.png", "img_1999.png"):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(site / name)
    code, out, _ = run(["data", "inspect", str(site), "--sheet", str(tmp_path / "s.png")], capsys)
    assert code == 0
    assert out.index("1999-07-01") < out.index("2018-03-01") < out.index("2020-01-05")  # sorted by date
    assert " 6818 " in out and " 675 " in out and "CRS none" in out and "20x24" in out
    assert read_image(tmp_path / "s.png").count == 3


def test_inspect_single_geotiff_with_explicit_date(tmp_path, capsys):
    tif = shared_path("geotiff", "RGB.byte.tif")
    code, _, err = run(["data", "inspect", str(tif), "--no-sheet"], capsys)
    assert code == 2 and "no date in the name of RGB.byte.tif" in err
    code, out, _ = run(["data", "inspect", str(tif), "--dates", "2020-01-01", "--sheet", str(tmp_path / "r.png")],
                       capsys)
    assert code == 0 and "2020-01-01" in out and "EPSG:32618" in out and "718x791" in out and "32.5%" in out


@pytest.mark.parametrize("command", [["train", "describe"], ["train", "forecast"], ["train", "detect"],
                                     ["train", "jepa"]])
def test_train_commands_explain_a_bad_config(command, tmp_path, capsys):
    """Every `tamms train` reads its config the same way: missing, unparsable or not a mapping -> the fix."""
    missing, broken, listy = tmp_path / "nope.yaml", tmp_path / "broken.yaml", tmp_path / "list.json"
    broken.write_text("model: [unclosed\n")
    listy.write_text("[1, 2]")
    for path, needle in ((missing, "not found"), (broken, "cannot parse"), (listy, "must hold")):
        code, out, err = run([*command, "--config", str(path)], capsys)
        assert code != 0 and needle in err + out, (command, path.name, err + out)
        assert "Traceback" not in err + out


def test_cli_reference_lists_every_command_and_is_current():
    """docs/cli.md is generated from the commands' own help: every command is in it, and it is not stale."""
    import runpy
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    module = runpy.run_path(str(root / "scripts" / "cli_docs.py"))
    text = module["render"]()
    for command in ("tamms forecast", "tamms train forecast", "tamms train jepa", "tamms evaluate forecasts",
                    "tamms data synth", "tamms detect", "tamms demo", "tamms benchmark"):
        assert f"## `{command}`" in text
    assert "--resume" in text and "--set" in text  # every `tamms train` subcommand shares them
    argv, sys.argv = sys.argv, ["cli_docs.py", "--check"]
    try:
        assert module["main"]() == 0, "docs/cli.md is stale: run python scripts/cli_docs.py"
    finally:
        sys.argv = argv

"""`tamms benchmark` lays our results out in the papers' tables, theirs marked as theirs."""

import json

import pytest

from tamms.benchmark import build_tables, run_benchmarks, tables_markdown
from tamms.errors import InputError
from tamms.report.paper_numbers import TAMMS_TABLE1


def _write(folder, name, data):
    (folder / name).write_text(json.dumps(data))


def test_tables_take_our_numbers_from_each_benchmark(tmp_path):
    _write(tmp_path, "describe_quality.json", {"command": "describe cmd", "rows": [
        {"model": "TAMMs-small default (greedy)", "BLEU-4": 0.5, "METEOR": 0.4, "ROUGE-L": 0.6, "CIDEr-D": 2.5},
        {"model": "NN retrieval baseline", "BLEU-4": 0.2, "METEOR": 0.2, "ROUGE-L": 0.4, "CIDEr-D": 1.0},
        {"model": "w/o PTE (ablation)", "BLEU-4": 0.45, "METEOR": 0.3, "ROUGE-L": 0.5, "CIDEr-D": 2.0}]})
    _write(tmp_path, "forecast_quality.json", {"command": "forecast cmd", "detector": "siamese", "metrics": {
        "tamms": {"synthetic": {"PSNR": 24.0, "SSIM": 0.8, "LPIPS": None, "TCS": 0.6, "GSSIM": 0.7}},
        "persistence": {"synthetic": {"PSNR": 22.0, "SSIM": 0.81, "LPIPS": None, "TCS": 0.1, "GSSIM": 0.71}}}})
    _write(tmp_path, "jepa_forecast.json", {"command": "jepa cmd", "rows": [
        {"model": "satjepa", "L1": 0.07, "MSE": 0.01, "PSNR": 20.4, "SSIM": 0.57, "GSSIM": 0.49}]})
    t = build_tables([tmp_path])
    ours1 = dict(t["tamms_table1"]["ours"])
    assert ours1["TAMMs-small (ours)"] == [0.5, 0.4, 0.6, 2.5, 24.0, 0.8, None, 0.6]
    assert ours1["NN retrieval captioner (ours, baseline)"][3] == 1.0
    assert dict(t["tamms_table2"]["ours"])["w/o PTE (ours)"][3] == 2.0
    sat = dict(t["satjepa_table"]["ours"])
    assert sat["Sat-JEPA-Diff coarse RGB (ours)"][:5] == [0.07, 0.01, 20.4, 0.57, 0.49]
    assert sat["Default / persistence (ours)"][2] == 22.0  # from the forecast benchmark when jepa lacks the row
    assert dict(t["tamms_table1"]["theirs"])["TAMMs"] == TAMMS_TABLE1["TAMMs"]
    md = tables_markdown(t)
    assert "*TAMMs (paper)*" in md and "forecast cmd" in md and "siamese" in md


def test_unknown_part_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="choose from"):
        run_benchmarks(tmp_path, parts=["nope"])


def test_benchmarks_folder_is_explicit(tmp_path, monkeypatch):
    """The scripts are found in --benchmarks (default ./benchmarks), never next to the installed package."""
    from pathlib import Path

    from tamms.benchmark import find_benchmarks_dir

    monkeypatch.chdir(tmp_path)  # no benchmarks/ here
    with pytest.raises(InputError, match="--benchmarks"):
        run_benchmarks(tmp_path / "out", run=False)
    repo_benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    assert find_benchmarks_dir(repo_benchmarks) == repo_benchmarks
    monkeypatch.chdir(repo_benchmarks.parent)
    assert find_benchmarks_dir() == repo_benchmarks


def test_tables_only_reads_the_results_of_the_given_folder(tmp_path):
    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    (bench / "forecast_quality.py").write_text("# placeholder: --tables-only never runs it\n")
    _write(bench / "results", "forecast_quality.json", {"command": "fq", "detector": "siamese", "metrics": {
        "tamms": {"synthetic": {"PSNR": 24.0, "SSIM": 0.8, "LPIPS": None, "TCS": 0.6}}}})
    result = run_benchmarks(benchmarks_dir=bench, run=False)
    assert bench / "results" / "paper_tables.md" in result.written
    tables = json.loads((bench / "results" / "paper_tables.json").read_text())
    assert dict(tables["tamms_table1"]["ours"])["TAMMs-small (ours)"][4:] == [24.0, 0.8, None, 0.6]


def test_write_results_writes_both_files_and_refuses_to_clobber(tmp_path):
    from tamms.errors import OutputExistsError
    from tamms.utils import results_paths, write_results

    result = {"command": "python benchmarks/x.py", "rows": {"a": 0.5}}
    json_path, md_path = write_results(tmp_path / "results", "x", result, "# x\n\n| a |")
    assert json.loads(json_path.read_text()) == result
    assert md_path.read_text() == "# x\n\n| a |\n"  # a final newline is added when missing
    write_results(tmp_path / "results", "x", {"rows": {}}, "# y")  # overwrite is the default
    assert json.loads(json_path.read_text()) == {"rows": {}}
    # overwrite=False: refused when either file exists, and neither is touched
    json_path.unlink()
    with pytest.raises(OutputExistsError, match="x.md already exists"):
        results_paths(tmp_path / "results", "x", overwrite=False)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_results(tmp_path / "results", "x", result, "# z", overwrite=False)
    assert not json_path.exists() and md_path.read_text() == "# y\n"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["x.md"]  # no temporary file left behind


def test_command_line_records_the_thread_count_and_arguments(monkeypatch):
    from tamms.utils import command_line

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert command_line("x.py", ["--n", "4"]) == "OMP_NUM_THREADS=2 python benchmarks/x.py --n 4"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert command_line("x.py", []) == "python benchmarks/x.py"  # no arguments, no trailing space

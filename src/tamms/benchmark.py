"""`tamms benchmark`: run the quality benchmarks, then write the tables that mirror the papers'.

Each benchmark is a script in the `benchmarks/` folder of a source checkout, given explicitly
(`benchmarks_dir`, default `./benchmarks` of the current directory: run from the checkout's root). The
scripts need the synthetic world and, for the real rows, a data folder (`data_dir`, passed on as
`--data`). This module runs them with the same Python, then reads their JSON results and lays our
numbers out with the rows and columns of TAMMs tables 1 and 2 and of the Sat-JEPA-Diff table, the
papers' numbers alongside, marked as theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamms.errors import InputError
from tamms.report import paper_numbers as paper
from tamms.report.html import HtmlReport, markdown_table
from tamms.utils import write_text_atomic

# per part: script, arguments for --quick, arguments for the full run
SCRIPT_ARGS_WITH_DATA = ("describe", "forecast", "detect")
PARTS: dict[str, tuple[str, list[str], list[str]]] = {
    "describe": ("describe_quality.py", ["--limit", "40", "--skip-beam", "--parts", "default,baselines,ablations"], []),
    "forecast": ("forecast_quality.py", ["--max-synthetic", "8", "--sweep", "2", "--no-timing"], []),
    "detect": ("detect_quality.py", ["--sequences", "10"], []),
    "jepa": ("jepa_forecast.py", ["--n", "8", "--steps", "5", "--overwrite"], ["--overwrite"]),
}


@dataclass
class BenchmarkResult:
    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def find_benchmarks_dir(benchmarks_dir: str | Path | None = None) -> Path:
    """The benchmarks folder (default `./benchmarks`); a clear error naming the fix when it is not there."""
    folder = Path(benchmarks_dir) if benchmarks_dir is not None else Path.cwd() / "benchmarks"
    if not (folder / PARTS["forecast"][0]).is_file():
        raise InputError(f"no tamms benchmark scripts in {folder.resolve()}: run from the root of a tamms source "
                         "checkout, or pass --benchmarks PATH/TO/tamms/benchmarks")
    return folder.resolve()


def run_benchmarks(out: str | Path | None = None, benchmarks_dir: str | Path | None = None, quick: bool = False,
                   parts: list[str] | None = None, data_dir: str | Path | None = None,
                   run: bool = True) -> BenchmarkResult:
    """Run the chosen benchmark scripts of `benchmarks_dir` (all by default) and write the mirrored tables
    into `out` (default `benchmarks_dir/results`)."""
    from rich.console import Console

    chosen = parts or list(PARTS)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise InputError(f"unknown benchmark part(s) {unknown}: choose from {', '.join(PARTS)}")
    scripts = find_benchmarks_dir(benchmarks_dir)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise InputError(f"--data {data_dir} is not a folder: give the folder that holds the real data")
    out_dir = Path(out) if out is not None else scripts / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    result = BenchmarkResult()
    for part in chosen if run else []:
        script, quick_args, full_args = PARTS[part]
        args = [sys.executable, str(scripts / script), *(quick_args if quick else full_args)]
        if part in ("describe", "detect"):
            args += ["--out", str(out_dir)]
        if data_dir is not None and part in SCRIPT_ARGS_WITH_DATA:
            args += ["--data", str(Path(data_dir).resolve())]
        console.print(f"[bold]benchmark {part}[/]: {' '.join(args[1:])}")
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=scripts.parent, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            result.failed[part] = lines[-1] if lines else f"exit status {proc.returncode}"
            console.print(f"[red]{part} failed[/]: {result.failed[part]}")
        else:
            console.print(f"{part} done in {time.perf_counter() - start:.0f} s")
    # the scripts that write to benchmarks/results by default: read them from there when out differs
    sources = [out_dir, scripts / "results"]
    tables = build_tables(sources, quick=quick)
    tables["failed"] = result.failed
    stem = out_dir / "paper_tables"
    write_text_atomic(stem.with_suffix(".json"), json.dumps(tables, indent=2, default=str), overwrite=True)
    write_text_atomic(stem.with_suffix(".md"), tables_markdown(tables), overwrite=True)
    tables_html(tables).save(stem.with_suffix(".html"), overwrite=True)
    result.written += [stem.with_suffix(s) for s in (".json", ".md", ".html")]
    return result


# ------------------------------------------------------------------------------------------------
# reading our results
# ------------------------------------------------------------------------------------------------


def _load(sources: list[Path], name: str) -> dict[str, Any] | None:
    for folder in sources:
        path = Path(folder) / name
        if path.is_file():
            return json.loads(path.read_text())
    return None


def _caption_row(rows: list[dict], model: str) -> list[Any]:
    row = next((r for r in rows if r.get("model") == model), {})
    return [row.get("BLEU-4"), row.get("METEOR"), row.get("ROUGE-L"), row.get("CIDEr-D")]


def _forecast_cols(metrics: dict, model: str, split: str = "synthetic") -> list[Any]:
    m = (metrics.get(model) or {}).get(split) or {}
    return [m.get("PSNR"), m.get("SSIM"), m.get("LPIPS"), m.get("TCS")]


def build_tables(sources: list[Path], quick: bool = False) -> dict[str, Any]:
    describe = _load(sources, "describe_quality.json") or {}
    forecast = _load(sources, "forecast_quality.json") or {}
    jepa = _load(sources, "jepa_forecast.json") or {}
    detect = _load(sources, "detect_quality.json") or {}
    drows = describe.get("rows", [])
    fmet = forecast.get("metrics", {})
    blank4 = [None] * 4

    table1 = [
        ("RSICC-style bi-temporal captioner (ours, baseline)", _caption_row(drows, "RSICC-style bi-temporal baseline") + blank4),
        ("NN retrieval captioner (ours, baseline)", _caption_row(drows, "NN retrieval baseline") + blank4),
        ("persistence (ours, baseline)", blank4 + _forecast_cols(fmet, "persistence")),
        ("linear trend (ours, baseline)", blank4 + _forecast_cols(fmet, "linear-trend")),
        ("SimVP (ours, baseline)", blank4 + _forecast_cols(fmet, "simvp")),
        ("ConvLSTM / PredRNN-style (ours, baseline)", blank4 + _forecast_cols(fmet, "convlstm")),
        ("TAMMs-small (ours)", _caption_row(drows, "TAMMs-small default (greedy)") + _forecast_cols(fmet, "tamms")),
    ]
    abl = {r.get("model", ""): r for r in drows}
    ablation_key = lambda word: next((k for k in abl if word in k.lower()), None)  # noqa: E731
    table2 = []
    for label, word in (("SFT only", "sft"), ("w/o PTE", "w/o pte"), ("w/o CTP", "w/o ctp")):
        key = ablation_key(word)
        table2.append((f"{label} (ours)", (_caption_row(drows, key) if key else [None] * 4) + blank4))
    for label, model in (("w/o Semantic Fusion", "tamms-no-semantic"), ("w/o Text Guidance", "tamms-no-text"),
                         ("Base Control Block", "tamms-base-control"), ("TAMMs (Full)", "tamms")):
        caps = _caption_row(drows, "TAMMs-small default (greedy)") if model == "tamms" else [None] * 4
        table2.append((f"{label} (ours)", caps + _forecast_cols(fmet, model)))

    jrows = {r.get("model"): r for r in jepa.get("rows", [])}
    sat = []
    for label, model in (("Default / persistence (ours)", "persistence"), ("ConvLSTM / PredRNN-style (ours)", "convlstm"),
                         ("SimVP (ours)", "simvp"), ("TAMMs-small (ours)", "tamms"),
                         ("Sat-JEPA-Diff coarse RGB (ours)", "satjepa"),
                         ("Sat-JEPA-Diff caption-guided (ours)", "satjepa-caption")):
        r = jrows.get(model) or next((v for k, v in jrows.items() if k and k.startswith(model + " ")), None)
        if r is None:
            m = (fmet.get(model) or {}).get("synthetic") or {}
            r = {**m, "GSSIM": m.get("GSSIM")}
        sat.append((label, [r.get(c) for c in paper.SATJEPA_COLUMNS]))

    return {
        "quick": quick,
        "notes": [
            "Ours: small models trained on this CPU, scored on the held-out synthetic test split (exact truth); "
            "theirs: the papers' GPU models on their own datasets. Compare rows within ours; read theirs as context.",
            f"TCS detector: {forecast.get('detector', 'see forecast_quality.json')}; LPIPS/FID need their standard "
            "weight files in the torch hub cache (never downloaded) and are blank where absent.",
            f"Sat-JEPA-Diff table: rows come from jepa_forecast.json ({jepa.get('split', {}).get('n', '?') if isinstance(jepa.get('split'), dict) else jepa.get('split', '?')} "
            f"test sequences) where it has them, else from forecast_quality.json ({forecast.get('counts', {}).get('synthetic', '?')} "
            "test sequences of the same split); L1/MSE are blank where a benchmark did not record them.",
        ],
        "tamms_table1": {"columns": paper.TAMMS_COLUMNS, "ours": table1, "theirs": list(paper.TAMMS_TABLE1.items())},
        "tamms_table2": {"columns": paper.TAMMS_COLUMNS, "ours": table2, "theirs": list(paper.TAMMS_TABLE2.items())},
        "satjepa_table": {"columns": paper.SATJEPA_COLUMNS, "ours": sat, "theirs": list(paper.SATJEPA_TABLE.items())},
        "detection": detect.get("rows", []),
        "sources": {"describe": describe.get("command"), "forecast": forecast.get("command"),
                    "jepa": jepa.get("command"), "detect": detect.get("command")},
    }


_TITLES = {
    "tamms_table1": "TAMMs table 1 — change description and forecasting",
    "tamms_table2": "TAMMs table 2 — ablations",
    "satjepa_table": "Sat-JEPA-Diff table — next-frame forecasting",
}


def tables_markdown(tables: dict[str, Any]) -> str:
    parts = ["# Our numbers in the papers' tables\n", *[f"- {n}\n" for n in tables["notes"]], "\n"]
    for key, title in _TITLES.items():
        t = tables[key]
        rows = [[name, *vals] for name, vals in t["ours"]] + [[f"*{name} (paper)*", *vals] for name, vals in t["theirs"]]
        parts += [f"## {title}\n\n", markdown_table(["model", *t["columns"]], rows), "\n"]
    if tables.get("detection"):
        cols = sorted({k for r in tables["detection"] for k in r if not isinstance(r[k], (dict, list))})
        parts += ["## Change detection\n\n", markdown_table(cols, [[r.get(c) for c in cols] for r in tables["detection"]]), "\n"]
    parts.append("Commands: " + "; ".join(f"{k}: `{v}`" for k, v in tables["sources"].items() if v) + "\n")
    if tables.get("failed"):
        parts.append("Failed parts: " + "; ".join(f"{k}: {v}" for k, v in tables["failed"].items()) + "\n")
    return "".join(parts)


def tables_html(tables: dict[str, Any]) -> HtmlReport:
    rep = HtmlReport("tamms benchmark — our numbers in the papers' tables")
    for note in tables["notes"]:
        rep.paragraph(note, css_class="note")
    for key, title in _TITLES.items():
        t = tables[key]
        rows = [[name, *vals] for name, vals in t["ours"]] + [[f"{name} (paper)", *vals] for name, vals in t["theirs"]]
        classes = [None] * len(t["ours"]) + ["theirs"] * len(t["theirs"])
        rep.heading(title)
        rep.table(["model", *t["columns"]], rows, row_classes=classes)
    if tables.get("detection"):
        cols = sorted({k for r in tables["detection"] for k in r if not isinstance(r[k], (dict, list))})
        rep.heading("Change detection")
        rep.table(cols, [[r.get(c) for c in cols] for r in tables["detection"]])
    return rep

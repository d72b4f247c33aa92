"""`tamms demo` (the main job) and `tamms benchmark` (the quality tables of the papers, with our numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for index.html, results.json and figures."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of real series (sequence folders, LEVIR-CD "
                                        "pairs) to add to the report; without it, synthetic sequences only."),
    train: bool = typer.Option(False, "--train", help="Retrain the small models from scratch first (minutes)."),
    n: int = typer.Option(4, "--n", min=1, help="Held-out synthetic sequences to show."),
    samples: int = typer.Option(4, "--samples", min=1, help="Forecast samples per sequence (for the spread map)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampler steps per forecast (default: the "
                                        "forecaster weights' setting, 2 for the shipped ones)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic world and of the samplers."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report in --out."),
) -> None:
    """Describe, forecast and detect on held-out synthetic sequences (and real data), evaluate, write an HTML report."""
    from tamms.demo import DemoConfig, run_demo

    cfg = DemoConfig(n_sequences=n, samples=samples, steps=steps, seed=seed, train=train)
    result = run_demo(out, data_dir=data, config=cfg, overwrite=overwrite)
    s = result.summary
    fs = s["forecast_synthetic"]
    typer.echo(f"report: {result.index_html}  ({result.seconds:.0f} s)")
    typer.echo(f"description CIDEr-D {_fmt(s['description'].get('CIDEr-D'))}, BLEU-4 {_fmt(s['description'].get('BLEU-4'))}")
    for model in fs:
        typer.echo(f"forecast {model:<12} PSNR {_fmt(fs[model].get('PSNR'))}  SSIM {_fmt(fs[model].get('SSIM'))}  "
                   f"TCS {_fmt(fs[model].get('TCS'))}  future-change F1 (pooled) {_fmt(fs[model].get('future_change_F1'))}")
    if s.get("detection_synthetic"):
        typer.echo(f"detection ({s['settings']['tcs_detector']}) F1 (pooled) {_fmt(s['detection_synthetic'].get('F1'))}")


def benchmark(
    benchmarks: Path = typer.Option(Path("benchmarks"), "--benchmarks", help="The benchmarks/ folder of a tamms "
                                    "source checkout (its scripts and results/)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the tables (Markdown, JSON, HTML); "
                                       "default BENCHMARKS/results."),
    quick: bool = typer.Option(False, "--quick", help="Small splits and few steps: fits in about 10 minutes."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated subset: describe,forecast,detect,jepa."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of real data passed to the scripts "
                                        "(default: each script's own, ../shared/data beside the checkout)."),
    tables_only: bool = typer.Option(False, "--tables-only", help="Do not run the benchmarks: rebuild the tables "
                                     "from the results already in --out and BENCHMARKS/results."),
) -> None:
    """Run the quality benchmarks and write the tables that mirror TAMMs tables 1-2 and the Sat-JEPA-Diff table."""
    from tamms.benchmark import run_benchmarks

    parts = [p.strip() for p in only.split(",")] if only else None
    result = run_benchmarks(out, benchmarks_dir=benchmarks, quick=quick, parts=parts, data_dir=data,
                            run=not tables_only)
    for path in result.written:
        typer.echo(f"wrote {path}")


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("benchmark")(benchmark)

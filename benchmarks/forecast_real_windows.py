"""Forecasts of the real series, window by window: is a forecaster above persistence on more than one case?

benchmarks/forecast_quality.py scores one case per real series: its 3 frames before the last -> the last frame,
the only frame no model trained on. One case is a coin toss for an image score, so this script also forecasts
every earlier window of each series (3 consecutive frames -> the next one). Those earlier targets are NOT held
out: the models trained with `data.real` (tamms, change-trend) saw them in training, so their rows there are
optimistic; persistence, linear trend, SimVP and ConvLSTM trained on the synthetic world only. The table gives,
per series and model, the GSSIM of the held-out window, the mean GSSIM over the earlier windows, and in how many
windows (of all) the model is above persistence. Diffusion models: the mean of `--samples` samples, each model's
own sampler (as forecast_quality.py). One picture per series shows every window: its last history frame (=
persistence), the truth and each forecast, with its GSSIM. The held-out window is also scored on its 2 x 2
quadrants: in how many of them each model is above persistence.

    OMP_NUM_THREADS=1 python benchmarks/forecast_real_windows.py [--data DIR] [--models tamms,persistence,...]
                                                                 [--cache DIR --reuse MODEL,...]
                                                                 [--weights LABEL=FOLDER[@noise] ... --out DIR]

`--weights` adds rows for forecasters that are not shipped (a training run's folder, e.g. an experiment and its
control): LABEL=FOLDER forecasts with the sampler saved in the folder, LABEL=FOLDER@noise from pure noise in 2
steps. Give such runs their own `--out`, so the shipped models' table stays theirs.

Writes benchmarks/results/forecast_real_windows.{json,md} (tables regenerated here, never edited by hand) and
forecast_real_windows_<series>.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MODELS = ["persistence", "tamms", "tamms-from-noise", "tamms-trend", "tamms-trend-from-noise", "change-trend",
          "linear-trend", "simvp", "convlstm"]
METRICS = ("GSSIM", "PSNR", "SSIM")


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """GSSIM, PSNR and SSIM of one forecast [3, H, W] (tamms.metrics.image.image_scores)."""
    from tamms.metrics.image import image_scores

    out = image_scores(torch.from_numpy(np.clip(pred, 0, 1)).float(), torch.from_numpy(target).float(),
                       perceptual=False)
    return {k: out[k] for k in METRICS}


def quadrant_gssim(pred: np.ndarray, target: np.ndarray, parts: int = 2) -> list[float]:
    """GSSIM of each of the parts x parts equal crops of one forecast [3, H, W], row by row: does one part of
    the scene carry a whole-scene score? (A stand-in for other crops of the same place.)"""
    h, w = target.shape[-2] // parts, target.shape[-1] // parts
    return [scores(pred[:, y:y + h, x:x + w], target[:, y:y + h, x:x + w])["GSSIM"]
            for y in range(0, parts * h, h) for x in range(0, parts * w, w)]


def summary(per_window: dict[str, dict[str, dict]], series: str,
            quadrants: dict[str, list[float]] | None = None) -> dict[str, dict]:
    """Per model: GSSIM of the held-out window, mean over the earlier windows, windows above persistence, and
    (given the held-out window's `quadrants` {model: GSSIM per crop}) its crops above persistence's."""
    base = per_window["persistence"]
    out = {}
    for model, windows in per_window.items():
        names = [n for n in windows if n.startswith(series + ":")]
        earlier = [n for n in names if not n.endswith("(held out)")]
        held = [n for n in names if n.endswith("(held out)")]
        out[model] = {"held_out_GSSIM": round(windows[held[0]]["GSSIM"], 4) if held else None,
                      "earlier_mean_GSSIM": round(float(np.mean([windows[n]["GSSIM"] for n in earlier])), 4),
                      "earlier_mean_PSNR": round(float(np.mean([windows[n]["PSNR"] for n in earlier])), 2),
                      "above_persistence": sum(windows[n]["GSSIM"] > base[n]["GSSIM"] for n in names),
                      "windows": len(names)}
        if quadrants is not None:
            out[model]["held_out_quadrants_above"] = sum(q > p for q, p in zip(quadrants[model],
                                                                               quadrants["persistence"]))
            out[model]["quadrants"] = len(quadrants[model])
    return out


def by_series(cases: list, values: list[float]) -> dict[str, dict[str, float]]:
    """Per series: the held-out window's value and the mean over its earlier windows."""
    out: dict[str, dict[str, float]] = {}
    for series in dict.fromkeys(c.source for c in cases):
        held = [v for c, v in zip(cases, values) if c.source == series and c.name.endswith("(held out)")]
        earlier = [v for c, v in zip(cases, values) if c.source == series and not c.name.endswith("(held out)")]
        out[series] = {"held_out": round(held[0], 4), "earlier_mean": round(float(np.mean(earlier)), 4)}
    return out


def grid(cases: list, predictions: dict[str, list[np.ndarray]], per_window: dict, series: str) -> bytes:
    """Rows: the windows of one series; columns: last history frame (= persistence), truth, each forecast."""
    from tamms.data.transforms import display_stretch
    from tamms.report.figures import labelled_grid

    models = [m for m in predictions if m != "persistence"]
    rows, labels, titles = [], [], []
    for i, c in enumerate(cases):
        if c.source != series:
            continue
        stack = np.stack([c.sequence.rgb()[-1], c.target] + [predictions[m][i] for m in models])  # [2+M, 3, H, W]
        shown = (display_stretch(np.clip(stack, 0, 1)) * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # [N, H, W, 3]
        rows.append(list(shown))
        labels.append([f"GSSIM {per_window['persistence'][c.name]['GSSIM']:.3f}", str(c.target_date)]
                      + [f"GSSIM {per_window[m][c.name]['GSSIM']:.3f}" for m in models])
        titles.append(c.name.split(":", 1)[1])
    return labelled_grid(rows, labels, row_titles=titles, column_titles=["last frame = persistence", "truth"] + models,
                         title=f"{series}: every window (3 frames -> the next), GSSIM of each forecast against "
                               "the truth", colors=256)


def cache_path(cache: Path, model: str, samples: int, seed: int, cases: int) -> Path:
    """Where a model's predictions of the windows are kept (`--cache`, reused with `--reuse`)."""
    return Path(cache) / f"{model}_k{samples}_seed{seed}_n{cases}.npz"


def cached_forecasts(cache: Path, models: list[str], samples: int, cases: int) -> dict[str, list[np.ndarray]]:
    """Each model's cached predictions of the windows (seed 0), for scripts that analyse them; a missing cache
    stops with the command that writes it."""
    out = {}
    for model in models:
        path = cache_path(cache, model, samples, 0, cases)
        if not path.is_file():
            raise SystemExit(f"no cached forecasts of {model} at {path}: run benchmarks/forecast_real_windows.py "
                             f"--cache {cache} --models {model} first, or give --cache")
        with np.load(path) as z:
            out[model] = [z[f"p{i}"] for i in range(cases)]
    return out


def analysis_arguments(ap: argparse.ArgumentParser) -> None:
    """--data, --cache, --samples and --out of the scripts that analyse this script's cached forecasts."""
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder of the real series (naip_nd_a, landsat_pucallpa_a)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/tamms-real-windows"),
                    help="the --cache folder of forecast_real_windows.py, holding its predictions")
    ap.add_argument("--samples", type=int, default=4, help="the --samples of the cached forecasts")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")


def weights_rows(items: list[str], from_noise: dict) -> dict[str, tuple[str, dict, int | None]]:
    """`--weights` items LABEL=FOLDER[@noise] -> {label: (folder, from_pretrained settings, steps)}: the folder's
    saved sampler, or pure noise in 2 steps. A ValueError names a malformed item or a folder without a config."""
    rows = {}
    for item in items:
        label, sep, rest = item.partition("=")
        folder, noise, tail = rest.partition("@noise")
        if not sep or not label or not folder or tail:
            raise ValueError(f"--weights {item!r}: give LABEL=FOLDER or LABEL=FOLDER@noise")
        if not (Path(folder) / "config.json").is_file():
            raise ValueError(f"--weights {item!r}: {folder} holds no config.json; give a saved forecaster's folder")
        rows[label] = (folder, from_noise, 2) if noise else (folder, {}, None)
    return rows


def markdown(r: dict) -> str:
    lines = ["# Real series, window by window (`benchmarks/forecast_real_windows.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. Each window: 3 dated frames -> the next frame; "
             f"diffusion models: the mean of {r['samples']} samples, each model's own sampler.", "",
             "Only the last window of each series is held out. tamms and change-trend trained on the earlier "
             "windows (`data.real`), so their earlier-window numbers are optimistic; persistence, linear trend, "
             "SimVP and ConvLSTM trained on the synthetic world only.", ""]
    if r.get("held_out_quadrants"):
        lines += ["Quadrants: the held-out window's forecast and next frame cut into 2 x 2 equal crops, GSSIM per "
                  "crop (`held_out_quadrants` in the json): whether a score holds across the scene, a stand-in for "
                  "other crops of the same place.", ""]
    if r.get("weights"):
        samplers = r.get("samplers", {})
        lines += ["Rows of forecasters that are not shipped (`--weights`), each with the sampler it ran: "
                  + ", ".join(f"{k} = `{v}`" + (f" ({samplers[k]['steps']} steps, strength {samplers[k]['strength']}, "
                                                f"start {samplers[k]['start']})" if k in samplers else "")
                              for k, v in r["weights"].items()) + ".", ""]
    for series, rows in r["summary"].items():
        crops = "quadrants" in next(iter(rows.values()))
        lines += [f"## {series}", "",
                  "| model | GSSIM, held-out window | GSSIM, mean of earlier windows | PSNR, earlier | "
                  "windows above persistence (GSSIM) |" + (" held-out window: quadrants above persistence |"
                                                           if crops else ""),
                  "|---|---|---|---|---|" + ("---|" if crops else "")]
        for model, s in rows.items():
            above = "-" if model == "persistence" else f"{s['above_persistence']} of {s['windows']}"
            line = (f"| {model} | {s['held_out_GSSIM']} | {s['earlier_mean_GSSIM']} | {s['earlier_mean_PSNR']} | "
                    f"{above} |")
            if crops:
                line += " - |" if model == "persistence" else f" {s['held_out_quadrants_above']} of {s['quadrants']} |"
            lines.append(line)
        lines += ["", f"![{series}](forecast_real_windows_{series}.png)", ""]
    lines += ["## GSSIM per window", "", "| window | " + " | ".join(r["per_window"]) + " |",
              "|---|" + "---|" * len(r["per_window"])]
    for name in next(iter(r["per_window"].values())):
        lines.append(f"| {name} | " + " | ".join(f"{w[name]['GSSIM']:.4f}" for w in r["per_window"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder of the real series (naip_nd_a, landsat_pucallpa_a)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated; persistence is always included")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/tamms-real-windows"),
                    help="folder keeping each model's predictions (npz) for --reuse")
    ap.add_argument("--reuse", default="", help="comma-separated models whose cached predictions are reused")
    ap.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FOLDER[@noise]",
                    help="rows for forecaster folders that are not shipped (@noise: from pure noise, 2 steps)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from forecast_quality import (FROM_NOISE, REAL_SERIES, SAMPLER_VARIANTS, cached_run, real_cases, run_model,
                                  sampler_of)

    try:
        extra = weights_rows(args.weights, FROM_NOISE)
    except ValueError as exc:
        ap.error(str(exc))
    SAMPLER_VARIANTS.update(extra)  # run_model and sampler_of read a row's folder and sampler there

    cases = real_cases(args.data, every_window=True)
    if not cases:
        raise SystemExit(f"no real series under {args.data}: give --data, the folder holding "
                         f"{', '.join(REAL_SERIES)}")
    models = ["persistence"] + [m for m in args.models.split(",") if m and m != "persistence"] + list(extra)
    from tamms.utils import command_line

    result = {"command": command_line("forecast_real_windows.py", argv),
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "samples": args.samples,
              "seed": args.seed, "samplers": {}, "weights": {k: v[0] for k, v in extra.items()},
              "per_window": {}, "held_out_quadrants": {}, "summary": {}}
    args.cache.mkdir(parents=True, exist_ok=True)
    reuse = {m for m in args.reuse.split(",") if m}
    predictions = {}
    for model in models:
        preds, secs = cached_run(cache_path(args.cache, model, args.samples, args.seed, len(cases)),
                                 model in reuse, lambda: run_model(model, cases, None, args.seed, args.samples))
        predictions[model] = preds
        result["per_window"][model] = {c.name: {k: round(v, 4) for k, v in scores(p, c.target).items()}
                                       for c, p in zip(cases, preds)}
        if (sampler := sampler_of(model, None)) is not None:
            result["samplers"][model] = sampler
        print(model, f"{secs:.0f}s", flush=True)
    for series in dict.fromkeys(c.source for c in cases):
        held = [i for i, c in enumerate(cases) if c.source == series and c.name.endswith("(held out)")][0]
        quadrants = {m: quadrant_gssim(predictions[m][held], cases[held].target) for m in models}
        result["held_out_quadrants"][series] = {m: [round(v, 4) for v in q] for m, q in quadrants.items()}
        result["summary"][series] = summary(result["per_window"], series, quadrants)
    args.out.mkdir(parents=True, exist_ok=True)
    for series in result["summary"]:
        (args.out / f"forecast_real_windows_{series}.png").write_bytes(
            grid(cases, predictions, result["per_window"], series))
    from tamms.utils import write_results

    write_results(args.out, "forecast_real_windows", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

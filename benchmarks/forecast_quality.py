"""Forecast quality: the TAMMs forecaster, its three ablations and four baselines, on one table.

Test data:
  synthetic   held-out test split of the synthetic world (sequences 0..N-1 whose split is "test"):
              the last 3 input frames -> the future frame; the true future change mask is exact.
  naip_nd_a, landsat_pucallpa_a (../shared/data): the 3 frames before the last -> the last frame
              (never seen in training); the "true" change is C(I_t, I_{t+1}) of the detector.
Metrics (tamms.evaluation, definitions in docs/metrics.md): PSNR, SSIM, GSSIM, L1, MSE, LPIPS (when its
weights are in the torch hub cache), TCS with SPS and ACS (detector named, mean over cases), and the
future-change F1 pooled over all pixels of all cases of a source (its per-case mean shown beside it,
named so: a case without change scores a free 1 there). Diffusion models: the mean of `--samples` samples (what
`tamms forecast --samples K` writes), DDIM, each model's own sampler settings (chosen on the validation split,
benchmarks/forecast_sampler_val.py) unless `--steps`. Two rows are the shipped `tamms` weights with another sampler
start, as controls of its start forecast: `tamms-from-noise` (the previous default: pure noise, 2 steps, rollout)
and `tamms-from-last-frame` (the shipped strength, from the last frame instead of change-trend's forecast).
Also: the time of one 64x64 forecast with 20 sampler steps.

    OMP_NUM_THREADS=1 python benchmarks/forecast_quality.py [--max-synthetic 48] [--steps 20] [--data DIR]

Writes benchmarks/results/forecast_quality.{json,md} and forecast_strip_*.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
MODELS = ["tamms", "tamms-from-noise", "tamms-from-last-frame", "tamms-no-semantic", "tamms-no-text",
          "tamms-base-control", "tamms-trend", "tamms-trend-from-noise", "tamms-trend-from-noise-persistence-frame",
          "persistence", "linear-trend", "simvp", "convlstm", "change-trend"]
# shipped weights with another sampler start, or (the control of tamms-trend from noise) persistence's forecast in
# place of change-trend's as its trend frame: (weights, from_pretrained settings, steps)
FROM_NOISE = {"strength": 1.0, "start_from": None}
SAMPLER_VARIANTS = {"tamms-from-noise": ("tamms", FROM_NOISE, 2),
                    "tamms-from-last-frame": ("tamms", {"start_from": None}, None),
                    "tamms-trend-from-noise": ("tamms-trend", FROM_NOISE, 2),
                    "tamms-trend-from-noise-persistence-frame": ("tamms-trend",
                                                                 {**FROM_NOISE, "trend_from": "persistence"}, 2)}
DETERMINISTIC = ["persistence", "linear-trend", "simvp", "convlstm", "change-trend"]


@dataclass
class Case:
    name: str
    source: str
    sequence: object  # SitsSequence of the history frames (RGB)
    target: np.ndarray  # [3, H, W]
    target_date: dt.date
    true_change: np.ndarray | None  # [H, W] exact future change (synthetic), else None


def synthetic_cases(n_pool: int, limit: int, split: str = "test") -> list[Case]:
    """The first `limit` sequences of that split of the synthetic world (0..n_pool-1): 3 frames -> the future."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    cfg = SyntheticWorldConfig(size=64, frames=4)
    cases = []
    for i in range(n_pool):
        seq = generate_sequence(i, cfg, seed=0)
        if split_of(str(seq.meta.get("id"))) != split:
            continue
        hist = seq.select(range(seq.num_frames - 3, seq.num_frames))
        target = seq.future_frame[list(seq.rgb_bands)]
        cases.append(Case(str(seq.meta.get("id")), "synthetic", hist, target.astype(np.float32), seq.future_date,
                          None if seq.future_change_mask is None else seq.future_change_mask.astype(bool)))
        if len(cases) >= limit:
            break
    return cases


REAL_SERIES = ("naip_nd_a", "landsat_pucallpa_a")


def real_cases(data_dir: Path = SHARED, every_window: bool = False) -> list[Case]:
    """Each real series: its 3 frames before the last -> the last frame (held out; the case is named by the
    series). every_window: every window of 3 consecutive frames -> the next, named "series:date", the last one
    "series:date (held out)"."""
    from tamms.data.readers import read_sequence

    cases = []
    for name in REAL_SERIES:
        path = Path(data_dir) / name
        if not path.exists():
            continue
        seq = read_sequence(path)
        n = seq.num_frames
        rgb = seq.rgb()  # [T, 3, H, W]
        for k in range(3 if every_window else n - 1, n):
            label = f"{name}:{seq.dates[k]}{' (held out)' if k == n - 1 else ''}" if every_window else name
            cases.append(Case(label, name, seq.select(range(k - 3, k)), rgb[k].astype(np.float32), seq.dates[k], None))
    return cases


def run_model(name: str, cases: list[Case], steps: int | None, seed: int, samples: int = 1, batch: int = 16
              ) -> tuple[list[np.ndarray], float]:
    """Forecast every case; cases of the same size go through the pipeline together (each its own date)."""
    from tamms.pipelines.forecast import ForecastPipeline

    weights, settings, variant_steps = SAMPLER_VARIANTS.get(name, (name, {}, None))
    pipe = ForecastPipeline.from_pretrained(weights, model=name, **settings)
    start = time.time()
    preds = forecast_cases(pipe, cases, samples, steps or variant_steps, seed, batch)
    return preds, time.time() - start


def forecast_cases(pipe, cases: list[Case], samples: int = 1, steps: int | None = None, seed: int = 0,
                   batch: int = 16) -> list[np.ndarray]:
    """The pipeline's forecast (the mean of `samples` samples) of every case, in order; cases of the same size
    go through the pipeline together, each with its own date."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(c.target.shape, []).append(i)
    out: dict[int, np.ndarray] = {}
    k = samples if pipe.model.stochastic else 1
    for idxs in groups.values():
        for s in range(0, len(idxs), batch):
            ids = idxs[s:s + batch]
            dates = [[cases[i].target_date] for i in ids]
            res = pipe([cases[i].sequence for i in ids], dates, num_samples=k, num_inference_steps=steps, seed=seed)
            for j, i in enumerate(ids):
                out[i] = res.mean[j].numpy()
    return [out[i] for i in range(len(cases))]


def sampler_of(name: str, steps: int | None) -> dict | None:
    """The sampler settings `run_model` forecasts `name` with (None: a deterministic model)."""
    from tamms.pipelines.forecast import forecast_model_from_pretrained

    if name in DETERMINISTIC:
        return None
    weights, settings, variant_steps = SAMPLER_VARIANTS.get(name, (name, {}, None))
    model = forecast_model_from_pretrained(weights, **settings)
    out = {"steps": steps or variant_steps or getattr(model, "default_steps", None) or 20,
           "strength": getattr(model, "strength", 1.0), "start": getattr(model, "start_name", "pure noise")}
    if getattr(model, "trend", None) is not None:
        out["trend"] = model.trend.name
    return out


def shipped_sampler() -> dict:
    """The sampler settings saved with the shipped tamms weights."""
    from tamms.utils import default_weights

    saved = json.loads((default_weights("tamms") / "config.json").read_text())["config"]
    return {"steps": saved["default_steps"], "strength": saved["strength"], "start_from": saved.get("start_from")}


def cached_run(path: Path, reuse: bool, compute) -> tuple[list[np.ndarray], float]:
    """(predictions, seconds): read from `path` when `reuse` and it exists, else `compute()` and kept there."""
    if reuse and path.exists():
        z = np.load(path)
        return [z[f"p{i}"] for i in range(len(z.files) - 1)], float(z["seconds"])
    preds, secs = compute()
    np.savez_compressed(path, seconds=secs, **{f"p{i}": p for i, p in enumerate(preds)})
    return preds, secs


def time_one_forecast(steps: int = 20, repeats: int = 3) -> dict:
    from tamms.pipelines.forecast import ForecastPipeline

    pipe = ForecastPipeline.from_pretrained("tamms")
    case = synthetic_cases(60, 1)[0]
    pipe(case.sequence, case.target_date, num_inference_steps=2)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        pipe(case.sequence, case.target_date, num_inference_steps=steps, seed=r)
        times.append(time.perf_counter() - t0)
    return {"steps": steps, "size": 64, "seconds_median": float(np.median(times)), "seconds_all": times,
            "threads": torch.get_num_threads(), "includes": "describer (M_t) + history encoding + sampling",
            "load_average": os.getloadavg()[0]}


def evaluate(cases: list[Case], preds: list[np.ndarray], detector) -> dict[str, dict[str, float]]:
    """Per source: the scores of tamms.evaluation over its cases (future-change F1 pooled over pixels)."""
    from tamms.evaluation import ForecastEvaluation

    by_source: dict[str, ForecastEvaluation] = {}
    for i, (c, p) in enumerate(zip(cases, preds)):
        frames = c.sequence.rgb()  # [T, 3, H, W]
        evaluation = by_source.setdefault(c.source, ForecastEvaluation(detector, fid=False))
        evaluation.add(f"{i}:{c.name}", np.clip(p, 0, 1), c.target, last=frames[-1], prev=frames[-2],
                       true_change=c.true_change)  # no exact truth (real data): C(I_t, I_t+1)
    out = {}
    for src, evaluation in by_source.items():
        result = evaluation.result()
        lpips_note = next((n for n in result.notes if n.startswith("LPIPS")), None)
        if lpips_note:
            evaluate.lpips_note = lpips_note
        out[src] = {**result.scores, "future_change_counts": result.counts}
    return out


def strips(cases: list[Case], predictions: dict[str, list[np.ndarray]], which: list[int]) -> list[str]:
    from tamms.data.transforms import display_stretch
    from tamms.report.figures import labelled_strip

    names = []
    for i in which:
        c = cases[i]
        frames = c.sequence.rgb()
        stack = np.concatenate([frames, c.target[None]] + [predictions[m][i][None] for m in predictions])
        shown = (display_stretch(np.clip(stack, 0, 1)) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        labels = [d.isoformat() for d in c.sequence.dates] + [f"truth {c.target_date}"] + list(predictions)
        png = labelled_strip(list(shown), labels, title=f"{c.name}: history | truth | forecasts")
        path = RESULTS / f"forecast_strip_{c.name}.png"
        path.write_bytes(png)
        names.append(path.name)
    return names


def markdown(result: dict) -> str:
    cols = ["PSNR", "SSIM", "GSSIM", "LPIPS", "TCS", "SPS", "ACS", "future_change_F1", "future_change_F1_per_case_mean"]
    lines = ["# Forecast quality\n", f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
             f"Change detector in TCS and future-change F1: **{result['detector']}**  ",
             f"Sampler: DDIM, mean of {result.get('samples', 1)} samples, seed {result['seed']}; per model: DDIM "
             "steps, strength (the share of the steps that runs), start: "
             + "; ".join(f"{m} {v['steps']}, {v['strength']}, {v['start']}"
                         + (f" (trend frame: {v['trend']})" if v.get("trend") else "")
                         for m, v in result.get("samplers", {}).items())
             + "  ",
             "Test cases: " + ", ".join(f"{k}: {v}" for k, v in result["counts"].items()) + "  ",
             "future_change_F1: pooled over all pixels of all cases of a source (TP, FP, FN summed); "
             "future_change_F1_per_case_mean: the mean of per-case F1s, where a case without true or "
             "predicted change scores 1\n"]
    for src in result["counts"]:
        lines.append(f"\n## {src}\n")
        lines.append("| model | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for model, per in result["metrics"].items():
            m = per.get(src)
            if not m:
                continue
            vals = [("-" if m.get(c) is None else f"{m[c]:.4f}") for c in cols]
            lines.append(f"| {model} | " + " | ".join(vals) + " |")
    if result.get("cross_check"):
        cols_x = ["TCS", "SPS", "ACS", "future_change_F1", "future_change_F1_per_case_mean"]
        lines.append(f"\n## Cross-check: TCS and future-change F1 with {result['cross_check_detector']}\n")
        lines.append("| source | model | " + " | ".join(cols_x) + " |")
        lines.append("|---|---|" + "---|" * len(cols_x))
        for src in result["counts"]:
            for model, per in result["cross_check"].items():
                if per.get(src):
                    lines.append(f"| {src} | {model} | " + " | ".join(f"{per[src][c]:.4f}" for c in cols_x) + " |")
    t = result.get("timing")
    if t:
        lines.append(f"\nOne 64x64 forecast with {t['steps']} DDIM steps (tamms, incl. describer): median "
                     f"{t['seconds_median']:.2f} s over {len(t['seconds_all'])} runs, {t['threads']} thread(s), "
                     f"load average {t['load_average']:.1f} on this shared 2-core machine.")
    if result.get("notes"):
        lines.append("\n" + "\n".join(f"- {n}" for n in result["notes"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-synthetic", type=int, default=96)
    ap.add_argument("--pool", type=int, default=1000, help="synthetic sequences 0..pool-1 (test split kept)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: each model's own setting)")
    ap.add_argument("--samples", type=int, default=4, help="samples averaged per forecast (diffusion models)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--detector", default="siamese",
                    help="change detector C of TCS and future-change F1: siamese (learnt the synthetic world; the "
                         "one these results name), siamese-real, unichange, cva or default (tamms evaluate's)")
    ap.add_argument("--cache", default="/tmp/tamms-forecast-bench",
                    help="folder keeping each model's predictions (npz) for --reuse")
    ap.add_argument("--reuse", default="", help="comma-separated models whose cached predictions are reused")
    ap.add_argument("--data", type=Path, default=SHARED, help="folder of the real sequences (naip_nd_a, "
                    "landsat_pucallpa_a); default ../shared/data beside the checkout")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from tamms.evaluation import load_change_detector

    RESULTS.mkdir(parents=True, exist_ok=True)
    cases = synthetic_cases(args.pool, args.max_synthetic) + real_cases(args.data)
    detector = load_change_detector(args.detector)  # named: the forecasts are judged with a fixed detector
    # TCS and F1 again with the classical detector: a result should not hinge on C
    cross_check = load_change_detector("cva")
    from tamms.utils import command_line

    result = {"command": command_line("forecast_quality.py", argv),
              "samples": args.samples,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "detector": getattr(detector, "name", type(detector).__name__),
              "cross_check_detector": cross_check.name, "steps": args.steps, "seed": args.seed,
              "counts": {}, "metrics": {}, "cross_check": {}, "seconds": {}, "notes": []}
    for c in cases:
        result["counts"][c.source] = result["counts"].get(c.source, 0) + 1
    predictions: dict[str, list[np.ndarray]] = {}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    reuse = {m for m in args.reuse.split(",") if m}
    key = f"s{args.steps or 'default'}_k{args.samples}_seed{args.seed}_n{len(cases)}"
    for name in [m for m in args.models.split(",") if m]:
        try:
            preds, secs = cached_run(cache / f"{name}_{key}.npz", name in reuse,
                                     lambda: run_model(name, cases, args.steps, args.seed, args.samples))
        except Exception as exc:  # a model without weights is reported, not fatal
            result["notes"].append(f"{name}: not evaluated ({exc})")
            print(f"{name}: skipped ({exc})", flush=True)
            continue
        predictions[name] = preds
        result["seconds"][name] = secs
        if name not in DETERMINISTIC:
            result.setdefault("samplers", {})[name] = sampler_of(name, args.steps)
        result["metrics"][name] = evaluate(cases, preds, detector)
        result["cross_check"][name] = {src: {k: m[k] for k in ("TCS", "SPS", "ACS", "future_change_F1",
                                                                 "future_change_F1_per_case_mean")}
                                       for src, m in evaluate(cases, preds, cross_check).items()}
        print(name, json.dumps(result["metrics"][name]), f"{secs:.0f}s", flush=True)
    if getattr(evaluate, "lpips_note", None):
        result["notes"].append(f"LPIPS unavailable: {evaluate.lpips_note}")
    n_syn = result["counts"].get("synthetic", 0)
    which = list(range(min(4, n_syn))) + list(range(n_syn, len(cases)))
    result["strips"] = strips(cases, predictions, which) if predictions else []
    if not args.no_timing and "tamms" in predictions:
        result["timing"] = time_one_forecast(20)
    result["notes"] += comparison_notes(result["metrics"])
    from tamms.utils import write_results

    write_results(RESULTS, "forecast_quality", result, markdown(result))
    print(markdown(result))


def comparison_notes(metrics: dict) -> list[str]:
    """Say plainly where the full model does not beat persistence (TCS, F1) or a deterministic baseline (GSSIM)."""
    notes = []
    full = metrics.get("tamms")
    if not full:
        return ["the full model was not evaluated"]
    for src, m in full.items():
        p = metrics.get("persistence", {}).get(src)
        if p:
            for k in ("TCS", "future_change_F1"):
                if m.get(k) is not None and p.get(k) is not None:
                    verdict = "beats" if m[k] > p[k] else "does NOT beat"
                    notes.append(f"{src}: tamms {verdict} persistence on {k} ({m[k]:.4f} vs {p[k]:.4f})")
        for b in DETERMINISTIC:
            q = metrics.get(b, {}).get(src)
            if q and m.get("GSSIM") is not None:
                verdict = "beats" if m["GSSIM"] > q["GSSIM"] else "does NOT beat"
                notes.append(f"{src}: tamms {verdict} {b} on GSSIM ({m['GSSIM']:.4f} vs {q['GSSIM']:.4f})")
    return notes


if __name__ == "__main__":
    main()

"""Sat-JEPA-Diff benchmark: the paper's table (L1, MSE, PSNR, SSIM, GSSIM, LPIPS, FID) with persistence, SimVP,
ConvLSTM and TAMMs-small in the same run, the IJEPA ablation, multi-step rollouts and the rollout figure.

    OMP_NUM_THREADS=1 python benchmarks/jepa_forecast.py [--n 96] [--n-val 32] [--overwrite] [--write-sampler]
        [--satjepa DIR] [--satjepa-caption DIR]

Data: the synthetic world (64 x 64, seed 0), held-out by `tamms.data.synthetic.split_of(id)`:
  1. validation split: the start noise and sampler steps of each Sat-JEPA-Diff variant are chosen here (best PSNR
     over the grid `--noises` x `--grid-steps`; the grid is in the json);
  2. test split, next frame: the 4 input frames and their dates -> the future frame at its date (every model reads
     what it needs of the history: Sat-JEPA-Diff the last frame, its caption variant captions the last two with
     the shipped describer + change detector; SimVP/ConvLSTM/TAMMs the last 3). No text, land cover or other
     ground truth reaches any model. Controls: persistence (the last frame) and each Sat-JEPA-Diff variant with its
     IJEPA prediction zeroed at inference;
  3. test split, rollout: sequences of the same world with 8 frames; history frames 0-2 -> frames 3..7 and the
     future frame, every forecast fed back as input (`ForecastPipeline` with a list of dates); scores per step.
Every model runs through `tamms.pipelines.forecast.ForecastPipeline` (what `tamms forecast` runs), one sample
(TAMMs-small: the mean of `--tamms-samples`), scored by `tamms.evaluation.forecast_scores` on RGB in [0, 1] (mean
over cases; LPIPS/FID only when their weight files are in the torch hub cache).
Writes benchmarks/results/jepa_forecast.{json,md} and benchmarks/results/jepa_rollout.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
COLUMNS = ["L1", "MSE", "PSNR", "SSIM", "GSSIM", "LPIPS", "FID"]
BASELINES = ["persistence", "simvp", "convlstm", "tamms"]  # registry names; "tamms" = TAMMs-small
LABELS = {"persistence": "persistence (control: the last frame)", "simvp": "SimVP", "convlstm": "ConvLSTM",
          "tamms": "TAMMs-small", "satjepa": "Sat-JEPA-Diff coarse RGB",
          "satjepa-caption": "Sat-JEPA-Diff caption-guided (captions from the history images)",
          "satjepa (IJEPA zeroed)": "control: satjepa, IJEPA prediction zeroed",
          "satjepa-caption (IJEPA zeroed)": "control: satjepa-caption, IJEPA prediction zeroed"}


def sequences(split: str, n: int, frames: int = 4):
    from tamms.pipelines.jepa import test_sequences

    return test_sequences(n, size=64, frames=frames, seed=0, split=split)


def score(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """tamms.evaluation on `[N, 3, H, W]` forecasts and truths (RGB, clipped to [0, 1])."""
    from tamms.evaluation import forecast_scores

    cases = [{"name": str(i), "pred": p.float().clamp(0, 1), "target": t.float().clamp(0, 1)}
             for i, (p, t) in enumerate(zip(pred, target))]
    result = forecast_scores(cases)
    notes = dict(n.split(": ", 1) for n in result.notes if n.startswith(("LPIPS", "FID")))
    return {**{k: result.scores.get(k) for k in COLUMNS}, "n": len(cases), "notes": notes}


def load(name: str, folders: dict, zero_ijepa: bool = False, sampler: dict | None = None):
    """A ForecastPipeline for a registry name (Sat-JEPA-Diff from `folders` when given), sampler set in memory."""
    from tamms.pipelines.jepa import set_sampler
    from tamms.registry import load_forecast_pipeline

    pipe = load_forecast_pipeline(name, weights=folders.get(name))
    if name.startswith("satjepa"):
        pipe.model.zero_ijepa = zero_ijepa
        if sampler:
            set_sampler(pipe.model.pipeline.model, sampler["start_noise"], sampler["steps"], sampler.get("end_sigma", 0.0))
            pipe.model.default_steps = sampler["steps"]
    return pipe


def forecast(pipe, seqs, dates, samples: int = 1, seed: int = 0) -> list[torch.Tensor]:
    """Forecast every sequence at its dates (one list per sequence); returns one [N, C, H, W] per date."""
    out = pipe(seqs, dates, num_samples=samples, seed=seed)
    steps = out.trajectory or [out]
    return [step.mean for step in steps]


def rgb(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32)[:3]


def next_frame(pipe, seqs, samples: int = 1) -> tuple[dict, float]:
    start = time.perf_counter()
    pred = forecast(pipe, seqs, [[s.future_date] for s in seqs], samples)[0]
    seconds = (time.perf_counter() - start) / len(seqs)
    target = torch.stack([rgb(s.future_frame) for s in seqs])
    return score(pred[:, :3], target), seconds


def choose_sampler(name: str, folders: dict, val, noises, grid_steps, end_sigmas) -> tuple[dict, list[dict]]:
    """The (start noise, steps, end sigma) of best validation PSNR (ties: fewer steps, less noise, end sigma 0)."""
    grid = []
    for noise, steps, end in itertools.product(noises, grid_steps, end_sigmas):
        row, _ = next_frame(load(name, folders, sampler={"start_noise": noise, "steps": steps, "end_sigma": end}), val)
        grid.append({"start_noise": noise, "steps": steps, "end_sigma": end, "PSNR": row["PSNR"], "GSSIM": row["GSSIM"]})
        print(f"[val] {name} noise {noise} steps {steps} end sigma {end}: PSNR {row['PSNR']:.3f} "
              f"GSSIM {row['GSSIM']:.4f}", flush=True)
    best = max(grid, key=lambda r: (round(r["PSNR"], 3), -r["steps"], -r["start_noise"], -r["end_sigma"]))
    return {"start_noise": best["start_noise"], "steps": best["steps"], "end_sigma": best["end_sigma"]}, grid


def rollout_rows(pipes: dict, seqs) -> list[dict]:
    """History frames 0-2 -> frames 3.. and the future frame, every forecast fed back; one row per model and step."""
    history = [s.select([0, 1, 2]) for s in seqs]
    dates = [list(s.dates[3:]) + [s.future_date] for s in seqs]
    truths = [torch.stack([rgb(f) for f in s.frames[3:]] + [rgb(s.future_frame)]) for s in seqs]  # [S, 3, H, W] each
    rows = []
    for name, (pipe, samples) in pipes.items():
        preds = forecast(pipe, history, dates, samples)
        for k, pred in enumerate(preds):
            days = sum((d[k] - h.dates[-1]).days for d, h in zip(dates, history)) / len(seqs)
            row = score(pred[:, :3], torch.stack([t[k] for t in truths]))
            rows.append({"model": name, "step": k + 1, "mean_days_ahead": round(days, 1),
                         **{c: row[c] for c in ("L1", "MSE", "PSNR", "SSIM", "GSSIM")}})
        print(f"[rollout] {name}: " + ", ".join(f"{r['PSNR']:.2f}" for r in rows if r["model"] == name), flush=True)
    return rows


def fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def render(result: dict) -> str:
    """The markdown of a result (`--render-only` rewrites it from the json)."""
    lines = [f"# Sat-JEPA-Diff table: next frame on the synthetic test split ({result['split']['n']} sequences)", "",
             f"Command: `{result['command']}` ({result['seconds']:.0f} s)", "",
             result["task"] + "; " + result["metrics"] + ". Frames and dates only: no ground-truth text or land cover "
             "reaches any model; the caption variant's captions come from the shipped describer and change detector "
             "reading the last two input frames.", "",
             "| model | " + " | ".join(COLUMNS) + " | s/image |", "|" + "---|" * (len(COLUMNS) + 2)]
    for r in result['rows']:
        lines.append(f"| {r['label']} | " + " | ".join(fmt(r.get(c)) for c in COLUMNS)
                     + f" | {r['seconds_per_image']:.2f} |")
    lines += ["", "Sampler (start noise in model space [-1, 1], Euler steps from the last frame, the sigma it stops at: "
              "the predicted change scaled by 1 - end sigma), chosen by PSNR on "
              f"{result['split']['val_n']} validation sequences: " + "; ".join(
                  f"{k}: noise {v['start_noise']}, {v['steps']} steps, end sigma {v['end_sigma']}"
                  for k, v in result['sampler_choice'].items()), ""]
    lines += ["| model | start noise | steps | end sigma | val PSNR | val GSSIM |", "|---|---|---|---|---|---|"]
    for name, grid in result['sampler_grid'].items():
        lines += [f"| {name} | {g['start_noise']} | {g['steps']} | {g['end_sigma']} | {g['PSNR']:.3f} | "
                  f"{g['GSSIM']:.4f} |" for g in grid]
    ablation = result.get('ablation') or []
    if ablation:
        lines += ["", "## Training recipe at equal budget (coarse-RGB weights, satjepa's sampler, the seed named in "
                  "each row)", "",
                  "| weights | val PSNR | val GSSIM | test PSNR | test GSSIM |", "|---|---|---|---|---|"]
        lines += [f"| {a['label']} | {a['val_PSNR']:.3f} | {a['val_GSSIM']:.4f} | {a['test_PSNR']:.3f} | "
                  f"{a['test_GSSIM']:.4f} |" for a in ablation]
    roll, roll_models = result['rollout'], list(dict.fromkeys(r['model'] for r in result['rollout']))
    lines += ["", f"## Multi-step rollout ({result['split']['rollout_n']} test sequences of 8 frames; history frames "
              "0-2, every forecast fed back)", "", "| model | " + " | ".join(
                  f"step {k} PSNR / GSSIM" for k in sorted({r['step'] for r in roll})) + " |",
              "|" + "---|" * (1 + len({r['step'] for r in roll}))]
    for m in roll_models:
        cells = [f"{r['PSNR']:.2f} / {r['GSSIM']:.3f}" for r in roll if r["model"] == m]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    days = [r["mean_days_ahead"] for r in roll if r["model"] == roll_models[0]]
    lines += ["", "Mean days ahead of the last input frame per step: " + ", ".join(f"{d:.0f}" for d in days)]
    notes = {f"{k}: {v}" for r in result['rows'] for k, v in r.get("notes", {}).items()}
    if notes:
        lines += ["", "Unavailable metrics: " + "; ".join(sorted(notes))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96, help="test sequences (next frame)")
    ap.add_argument("--n-val", type=int, default=32, help="validation sequences (sampler choice)")
    ap.add_argument("--n-rollout", type=int, default=12, help="test sequences with 8 frames (rollout)")
    ap.add_argument("--noises", type=float, nargs="+", default=[0.0, 0.05], help="start noise grid")
    ap.add_argument("--end-sigmas", type=float, nargs="+", default=[0.0, 0.25, 0.5],
                    help="end sigma grid (the sampler stops there: the predicted change scaled by 1 - end sigma)")
    ap.add_argument("--write-sampler", action="store_true",
                    help="write the sampler chosen on validation into each Sat-JEPA-Diff weights folder's config.json")
    ap.add_argument("--grid-steps", type=int, nargs="+", default=[1, 2],
                    help="sampler steps grid (the shipped models train at sigmas 0.5-1: 1 and 2 steps stay there)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps: replaces the grid's (tamms benchmark --quick)")
    ap.add_argument("--tamms-samples", type=int, default=2, help="TAMMs-small: mean of this many samples")
    ap.add_argument("--satjepa", default=None, help="coarse-RGB weights folder (default: shipped)")
    ap.add_argument("--satjepa-caption", default=None, help="caption-guided weights folder (default: shipped)")
    ap.add_argument("--ablation", action="append", default=[],
                    help="LABEL=FOLDER: other coarse-RGB weights scored with satjepa's sampler (repeatable)")
    ap.add_argument("--skip-baselines", action="store_true", help="only the Sat-JEPA-Diff rows (quick checks)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="rewrite jepa_forecast.md from jepa_forecast.json")
    args = ap.parse_args(argv)
    if args.render_only:
        from tamms.utils import write_text_atomic

        result = json.loads((RESULTS / "jepa_forecast.json").read_text())
        write_text_atomic(RESULTS / "jepa_forecast.md", render(result), overwrite=True)
        return 0
    if args.steps is not None:
        args.grid_steps = [args.steps]
    torch.set_num_threads(1)
    from tamms.utils import results_paths, write_results

    results_paths(RESULTS, "jepa_forecast", args.overwrite)  # refuse now, not after the run

    t0 = time.perf_counter()
    folders = {k: v for k, v in (("satjepa", args.satjepa), ("satjepa-caption", args.satjepa_caption)) if v}
    val, test = sequences("val", args.n_val), sequences("test", args.n)

    # 1. sampler choice on validation
    chosen, grids = {}, {}
    for name in ("satjepa", "satjepa-caption"):
        chosen[name], grids[name] = choose_sampler(name, folders, val, args.noises, args.grid_steps, args.end_sigmas)
        if args.write_sampler:  # the weights folder's config.json holds the chosen sampler (safetensors untouched)
            from tamms.pipelines.jepa import SatJEPAPipeline, set_sampler
            from tamms.utils import default_weights

            folder = folders.get(name) or default_weights(name)
            model = SatJEPAPipeline.from_pretrained(folder, variant="caption" if "caption" in name else "rgb").model
            set_sampler(model, chosen[name]["start_noise"], chosen[name]["steps"], chosen[name]["end_sigma"])
            model.save_pretrained(folder, overwrite=True)
            print(f"[val] {name}: sampler {chosen[name]} written to {folder}/config.json", flush=True)

    # 2. next frame on test
    rows = []
    models = ([] if args.skip_baselines else BASELINES) + ["satjepa", "satjepa (IJEPA zeroed)", "satjepa-caption",
                                                          "satjepa-caption (IJEPA zeroed)"]
    if args.skip_baselines:
        models = ["persistence"] + models
    for name in models:
        base = name.split(" ")[0]
        pipe = load(base, folders, zero_ijepa="zeroed" in name, sampler=chosen.get(base))
        samples = args.tamms_samples if base == "tamms" else 1
        row, seconds = next_frame(pipe, test, samples)
        extra = {"sampler": chosen[base]} if base in chosen else ({"samples": samples} if base == "tamms" else {})
        rows.append({"model": name, "label": LABELS[name], **row, "seconds_per_image": seconds, **extra})
        print(f"[test] {name}: PSNR {row['PSNR']:.3f} GSSIM {row['GSSIM']:.4f}", flush=True)

    # 2b. ablation of the training recipe: other coarse-RGB weights (e.g. the GSSIM weight at equal budget), each
    # with the sampler chosen for satjepa, on validation and test
    ablation = []
    for item in args.ablation:
        label, _, folder = item.partition("=")
        pipe = load("satjepa", {"satjepa": folder}, sampler=chosen["satjepa"])
        (val_row, _), (test_row, _) = next_frame(pipe, val), next_frame(pipe, test)
        ablation.append({"label": label, "folder": folder, "val_PSNR": val_row["PSNR"], "val_GSSIM": val_row["GSSIM"],
                         "test_PSNR": test_row["PSNR"], "test_GSSIM": test_row["GSSIM"]})
        print(f"[ablation] {label}: val {val_row['PSNR']:.3f} / {val_row['GSSIM']:.4f}, test {test_row['PSNR']:.3f} / "
              f"{test_row['GSSIM']:.4f}", flush=True)
    if args.ablation:
        persistence_val, _ = next_frame(load("persistence", folders), val)
        ablation.insert(0, {"label": "persistence", "folder": None, "val_PSNR": persistence_val["PSNR"],
                            "val_GSSIM": persistence_val["GSSIM"],
                            **{f"test_{k}": next(r[k] for r in rows if r["model"] == "persistence")
                               for k in ("PSNR", "GSSIM")}})

    # 3. rollouts
    roll_seqs = sequences("test", args.n_rollout, frames=8)
    roll_models = ["persistence", "satjepa", "satjepa-caption"] + ([] if args.skip_baselines else ["simvp", "convlstm"])
    roll = rollout_rows({m: (load(m, folders, sampler=chosen.get(m)), 1) for m in roll_models}, roll_seqs)

    command = "OMP_NUM_THREADS=1 python benchmarks/jepa_forecast.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "split": {"name": "synthetic test (split_of == 'test'), 64x64, seed 0", "n": len(test), "val_n": len(val),
                  "rollout_n": len(roll_seqs)},
        "task": "next frame: 4 input frames + dates -> the future frame at its date",
        "metrics": "tamms.evaluation.forecast_scores on RGB in [0, 1], data_range 1; mean over cases",
        "sampler_choice": chosen, "sampler_grid": grids, "rows": rows, "rollout": roll, "ablation": ablation,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}, 1 thread",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS, "jepa_forecast", result, render(result), overwrite=args.overwrite)

    # rollout figure: the test sequence with the longest span, rolled out from its first frame
    from tamms.pipelines.jepa import SatJEPAPipeline, rollout_figure, set_sampler

    seq = max(test, key=lambda s: (s.future_date - s.dates[0]).days)
    pipes = {}
    for name, variant in (("satjepa", "rgb"), ("satjepa-caption", "caption")):
        pipes[name] = SatJEPAPipeline.from_pretrained(folders.get(name), variant=variant)
        set_sampler(pipes[name].model, chosen[name]["start_noise"], chosen[name]["steps"], chosen[name]["end_sigma"])
    rollout_figure(RESULTS / "jepa_rollout.png", seq, pipes, num_inference_steps=None, seed=0,
                   overwrite=args.overwrite)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sat-JEPA-Diff rows of the forecasting benchmark, and the multi-step rollout figure.

    OMP_NUM_THREADS=1 python benchmarks/jepa_forecast.py [--n 32] [--steps 20] [--overwrite]

Held-out synthetic split (`tamms.data.synthetic.split_of(id) == "test"`, 64 x 64, 4 frames, seed 0): each
model forecasts the future frame from the last input frame at the future date; metrics on RGB in [0, 1]
from `tamms.evaluation` (PSNR, SSIM, GSSIM, L1, MSE: mean over sequences; LPIPS/FID when their weight
files exist).
Persistence (copy the last frame) is computed alongside for context. The caption variant gets its
captions from the data (frame description + land-cover layout of the last frame), as documented.
Writes benchmarks/results/jepa_forecast.{json,md} and benchmarks/results/jepa_rollout.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def score_row(model: str, pred: torch.Tensor, target: torch.Tensor, rgb, **extra) -> dict:
    """One table row: tamms.evaluation on the RGB bands of `[N, C, H, W]` forecasts and truths, clipped to [0, 1]."""
    from tamms.evaluation import forecast_scores

    rgb = list(rgb)
    cases = [{"name": str(i), "pred": p[rgb].float().clamp(0, 1), "target": t[rgb].float().clamp(0, 1)}
             for i, (p, t) in enumerate(zip(pred, target))]
    result = forecast_scores(cases)
    notes = dict(n.split(": ", 1) for n in result.notes if n.startswith(("LPIPS", "FID")))
    scores = {k: result.scores[k] for k in ("L1", "MSE", "PSNR", "SSIM", "GSSIM", "LPIPS", "FID")}
    return {"model": model, "n": len(cases), **extra, **scores, "notes": notes}


def persistence_row(sequences) -> dict:
    last = torch.stack([torch.as_tensor(s.frames[-1]) for s in sequences])
    target = torch.stack([torch.as_tensor(s.future_frame) for s in sequences])
    return score_row("persistence (context)", last, target, sequences[0].rgb_bands or (0, 1, 2), steps=0)


def model_rows(models: dict, sequences, num_inference_steps: int, seed: int) -> list[dict]:
    """Rows of satjepa (coarse RGB) and satjepa-caption: last input frame -> future frame."""
    from tamms.pipelines.jepa import SatJEPAPipeline

    rows = []
    for name, folder in models.items():
        pipe = SatJEPAPipeline.from_pretrained(folder, variant="caption" if name.endswith("caption") else "rgb")
        target = torch.stack([torch.as_tensor(s.future_frame[pipe.bands(s)], dtype=torch.float32) for s in sequences])
        rgb = (0, 1, 2) if target.shape[1] == 3 else (sequences[0].rgb_bands or (0, 1, 2))
        start = time.perf_counter()
        out = pipe(sequences, num_inference_steps=num_inference_steps, seed=seed)
        seconds = time.perf_counter() - start
        rows.append(score_row(name, out.mean, target, rgb, steps=num_inference_steps,
                              seconds_per_image=seconds / len(sequences)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="test sequences")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from tamms.pipelines.jepa import SatJEPAPipeline, rollout_figure, test_sequences

    t0 = time.perf_counter()
    seqs = test_sequences(args.n, seed=args.seed)
    rows = [persistence_row(seqs)] + model_rows({"satjepa": None, "satjepa-caption": None}, seqs, args.steps,
                                                args.seed)
    # how the number of sampler steps moves the coarse-RGB model (all steps are taken from sigma 0.35 to 0)
    sweep = []
    for n in (1, 5):
        r = model_rows({"satjepa": None}, seqs, n, args.seed)[0]
        sweep.append({k: r[k] for k in ("steps", "PSNR", "SSIM", "GSSIM", "L1", "seconds_per_image")})
    command = "OMP_NUM_THREADS=1 python benchmarks/jepa_forecast.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "split": "synthetic test (split_of == 'test'), 64x64, 4 frames, seed 0",
              "task": "last input frame -> future frame (one step, gap = future date - last date)",
              "metrics": "tamms.evaluation on RGB in [0, 1], data_range 1; mean over sequences",
              "rows": rows, "satjepa_steps_sweep": sweep, "seconds": round(time.perf_counter() - t0, 1),
              "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}, 1 thread"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    from tamms.utils import write_text_atomic

    write_text_atomic(RESULTS / "jepa_forecast.json", json.dumps(result, indent=2), overwrite=args.overwrite)
    cols = ["model", "L1", "MSE", "PSNR", "SSIM", "GSSIM", "LPIPS", "FID", "seconds_per_image"]
    lines = [f"# Sat-JEPA-Diff on the synthetic test split ({len(seqs)} sequences, {args.steps} sampler steps)", "",
             f"Command: `{result['command']}`", "", result["task"] + "; " + result["metrics"] + ".", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "satjepa with fewer sampler steps: " + "; ".join(
        f"{r['steps']} steps PSNR {r['PSNR']:.2f} SSIM {r['SSIM']:.4f} GSSIM {r['GSSIM']:.4f}" for r in sweep)]
    notes = {f"{k}: {v}" for r in rows for k, v in r.get("notes", {}).items() if k in ("LPIPS", "FID")}
    if notes:
        lines += ["", "Unavailable metrics: " + "; ".join(sorted(notes))]
    write_text_atomic(RESULTS / "jepa_forecast.md", "\n".join(lines) + "\n", overwrite=args.overwrite)

    # rollout figure: the test sequence with the longest span, rolled out from its first frame
    seq = max(seqs, key=lambda s: (s.future_date - s.dates[0]).days)
    pipes = {"satjepa": SatJEPAPipeline.from_pretrained(variant="rgb"),
             "satjepa-caption": SatJEPAPipeline.from_pretrained(variant="caption")}
    rollout_figure(RESULTS / "jepa_rollout.png", seq, pipes, num_inference_steps=args.steps, seed=args.seed,
                   overwrite=args.overwrite)
    print("\n".join(lines))
    print(f"rollout figure: {RESULTS / 'jepa_rollout.png'} ({seq.meta.get('id')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

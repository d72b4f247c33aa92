"""Does the forecast's amount of change grow with the horizon? (issue 15)

For held-out synthetic test sequences (frames and dates only), forecast +60 days and +3 years after the last
frame, and measure the mean |forecast - last frame| over pixels. Reported per model and rollout setting:
the fraction of sequences whose +3-year forecast changes more than their +60-day forecast, and the mean
amounts. Rollout settings: "auto" (a long horizon is reached through intermediate dates, each step at most
the longest observed gap; the pipeline's default) and "one step" (the model jumps straight to the date).

    OMP_NUM_THREADS=1 python benchmarks/forecast_horizon.py [--n 16] [--models tamms,convlstm,linear-trend]

Writes benchmarks/results/forecast_horizon.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

HORIZONS_DAYS = (60, 3 * 365)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="held-out synthetic test sequences")
    parser.add_argument("--models", default="tamms,convlstm,linear-trend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    from tamms.data.splits import hash_split
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.pipelines.forecast import ForecastPipeline

    world = SyntheticWorldConfig(size=64, frames=4)
    sequences, index = [], 0
    while len(sequences) < args.n:  # the test split, in id order
        seq = generate_sequence(index, world, seed=0)
        if hash_split(seq.meta["id"]) == "test":
            sequences.append(seq)
        index += 1

    rows: dict[str, dict] = {}
    start = time.perf_counter()
    for name in args.models.split(","):
        pipe = ForecastPipeline.from_pretrained(name)
        for label, limit in (("auto", "auto"), ("one step", None)):
            pipe.max_step_days = limit
            amounts = np.zeros((len(sequences), len(HORIZONS_DAYS)))
            for i, seq in enumerate(sequences):
                last = torch.from_numpy(seq.rgb()[-1])
                for j, days in enumerate(HORIZONS_DAYS):
                    date = seq.dates[-1] + dt.timedelta(days=days)
                    out = pipe(seq, date, num_samples=1, seed=args.seed)
                    amounts[i, j] = float((out.mean[0] - last).abs().mean())
            grows = amounts[:, 1] > amounts[:, 0]
            rows[f"{name} ({label})"] = {
                "model": name, "rollout": label, "sequences": len(sequences),
                "fraction_growing": float(grows.mean()),
                "mean_change_60d": float(amounts[:, 0].mean()), "mean_change_3y": float(amounts[:, 1].mean()),
                "per_sequence": amounts.round(5).tolist(),
            }
            print(f"{name:14s} {label:8s} grows in {grows.mean():.0%}  |f-last| 60 d {amounts[:, 0].mean():.4f} "
                  f"3 y {amounts[:, 1].mean():.4f}  ({time.perf_counter() - start:.0f}s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    command = f"OMP_NUM_THREADS=1 python benchmarks/forecast_horizon.py --n {args.n} --models {args.models}"
    lines = [
        "# Forecast amount of change vs horizon (synthetic test split)", "",
        f"Made by `{command}`. Frames and dates only; one sample per forecast, each model's default sampler steps.",
        "Mean |forecast - last frame| over pixels for a forecast 60 days and 3 years after the last frame;",
        "'grows' = the fraction of sequences whose 3-year forecast changes more than the 60-day one.",
        "'auto' reaches a date more than the longest observed gap away through intermediate dates (the default);",
        "'one step' jumps straight to the date.", "",
        "| model | rollout | grows | mean change, +60 d | mean change, +3 y |", "|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(f"| {r['model']} | {r['rollout']} | {r['fraction_growing']:.0%} | {r['mean_change_60d']:.4f} | "
                     f"{r['mean_change_3y']:.4f} |")
    from tamms.utils import write_results

    write_results(args.out, "forecast_horizon", {"command": command, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()

"""How long does one 64x64 forecast with 20 sampler steps take? (issue 15: "< 2 s")

Times `ForecastPipeline.from_pretrained(model)(sequence, date, num_inference_steps=20)` on one held-out synthetic
test sequence (4 frames of 64x64; the describer's M_t and text included), the median of `--runs` calls after one
warm-up call, for each thread count asked, with two sampler starts: the weights' own (for the shipped tamms: the
change-trend forecast noised to strength 0.5, so 10 of the 20 steps run, change-trend and its detector included)
and pure noise (strength 1: all 20 steps run). The machine's load average is recorded beside each timing: other
processes on these 2 cores slow it down.

    python benchmarks/forecast_speed.py [--models tamms] [--threads 1 2] [--runs 5]

Writes benchmarks/results/forecast_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def render(result: dict) -> str:
    lines = ["# One 64x64 forecast, 20 sampler steps", "",
             f"Command: `{result['command']}` ({result['date']}). One synthetic test sequence (4 frames, 64x64), "
             "describer included, median of the runs after a warm-up call; the load average says how busy the "
             "2 shared cores were.", "",
             "| model | sampler start | threads | steps asked | steps run | median s | runs (s) | load average (1 min) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['start']} | {r['threads']} | {r['steps']} | {r['steps_run']} | "
                     f"{r['median_s']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in r['runs_s'])} | {r['load_1min']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tamms")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from tamms.pipelines.forecast import ForecastPipeline, steps_to_run
    from tamms.pipelines.jepa import test_sequences
    from tamms.utils import results_paths, write_results

    results_paths(RESULTS, "forecast_speed", args.overwrite)  # refuse now, not after the run

    seq = test_sequences(1, size=64, frames=4, seed=0, split="test")[0]
    rows = []
    for name, strength in [(m, s) for m in args.models.split(",") for s in (None, 1.0)]:
        pipe = ForecastPipeline.from_pretrained(name, strength=strength)
        strength = getattr(pipe.model, "strength", 1.0)
        begins = getattr(pipe.model, "start_name", "pure noise")
        begins += f", strength {strength}" if strength < 1 else ""
        steps_run = steps_to_run(args.steps, strength)
        for threads in args.threads:
            torch.set_num_threads(threads)
            pipe(seq, seq.future_date, num_inference_steps=args.steps)  # warm-up
            runs = []
            for _ in range(args.runs):
                start = time.perf_counter()
                pipe(seq, seq.future_date, num_inference_steps=args.steps)
                runs.append(time.perf_counter() - start)
            row = {"model": name, "start": begins, "threads": threads, "steps": args.steps, "steps_run": steps_run,
                   "median_s": statistics.median(runs),
                   "runs_s": runs, "load_1min": os.getloadavg()[0]}
            rows.append(row)
            print(row, flush=True)
    result = {"command": "python benchmarks/forecast_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS, "forecast_speed", result, render(result), overwrite=args.overwrite)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

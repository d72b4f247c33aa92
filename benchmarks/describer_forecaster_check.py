"""The shipped TAMMs forecaster with each describer giving it M_t and text embeddings (issue 14).

The forecaster (weights/tamms) was trained on the v1 describer's M_t and text embeddings; this checks what
happens to its forecasts when another describer feeds it. Same cases, same seeds and noise, only the
describer differs. Cases: the first `--cases` synthetic test cases of benchmarks/forecast_quality.py
(last 3 frames -> the future frame) and the two real series. Scores: tamms.evaluation (forecast_quality's
`evaluate`, detector "siamese", the synthetic-world detector its results name).

    OMP_NUM_THREADS=1 python benchmarks/describer_forecaster_check.py --cases 24

Writes benchmarks/results/describer_forecaster_check.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import forecast_quality as fq  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--describers", default="describer,describer-v2", help="shipped names or folders")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=fq.SHARED)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    from tamms.evaluation import load_change_detector
    from tamms.pipelines.describe import DescribePipeline
    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.utils import default_weights

    cases = fq.synthetic_cases(1000, args.cases) + fq.real_cases(args.data)
    detector = load_change_detector("siamese")
    rows = {}
    for name in args.describers.split(","):
        folder = Path(name) if Path(name).exists() else default_weights(name)
        pipe = ForecastPipeline.from_pretrained("tamms", describer=DescribePipeline.from_pretrained(folder))
        start = time.time()
        preds = []
        for c in cases:
            res = pipe([c.sequence], [[c.target_date]], num_samples=1, num_inference_steps=args.steps, seed=args.seed)
            preds.append(res.mean[0].numpy())
        scores = fq.evaluate(cases, preds, detector)
        rows[name] = {src: {k: v for k, v in s.items() if isinstance(v, float)} for src, s in scores.items()}
        rows[name]["seconds"] = round(time.time() - start, 1)
        print(name, json.dumps(rows[name])[:400], flush=True)
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/describer_forecaster_check.py " + " ".join(argv or sys.argv[1:]),
              "cases": {"synthetic": sum(c.source == "synthetic" for c in cases),
                        "real": [c.name for c in cases if c.source != "synthetic"]},
              "forecaster": "tamms (shipped)", "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    cols = ["PSNR", "SSIM", "L1", "TCS", "future_change_F1"]
    lines = ["# The shipped forecaster (tamms) with each describer", "", f"Command: `{result['command']}`  ",
             f"Cases: {result['cases']}; one sample each, seed {args.seed}, the same noise for every describer.", ""]
    sources = sorted({s for r in rows.values() for s in r if s != "seconds"})
    for src in sources:
        lines += [f"## {src}", "", "| describer | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{r[src].get(c, float('nan')):.4f}" for c in cols) + " |")
        lines.append("")
    from tamms.utils import write_results

    write_results(args.out, "describer_forecaster_check", result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

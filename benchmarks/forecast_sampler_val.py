"""Choose the TAMMs forecaster's sampler on the synthetic VALIDATION split (never on test).

Where the sampler starts and how far: from pure noise (strength 1), or from a forecast for the same date noised
part-way (SDEdit, strength < 1): the last frame, or the forecast of `change-trend` (which places the change,
docs/forecast.md). Each setting forecasts the first `--n` validation sequences of the synthetic world (3 frames
+ dates -> the future frame), the mean of `--samples` samples, one step to the date or the pipeline's "auto"
rollout. The rule, fixed before these runs (after a first probe of strengths 0.25-0.75 on the same split with
the previous change-trend): the setting with the highest future-change F1 + GSSIM (F1 pooled over
pixels, detector `siamese`). The chosen setting is what `src/tamms/weights/tamms/config.json` stores.

    OMP_NUM_THREADS=1 python benchmarks/forecast_sampler_val.py [--n 96] [--weights tamms]

Writes benchmarks/results/forecast_sampler_val.{json,md} (tables regenerated here, never edited by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
# name: (steps, strength, start_from, one step to the date)
SETTINGS = {
    "noise, 2 steps, rollout (the previous default)": (2, 1.0, None, False),
    "last frame, strength 0.25 of 4 steps, rollout": (4, 0.25, None, False),
    "change-trend, strength 0.25 of 4 steps, one step": (4, 0.25, "change-trend", True),
    "change-trend, strength 0.25 of 4 steps, rollout": (4, 0.25, "change-trend", False),
    "change-trend, strength 0.5 of 4 steps, one step": (4, 0.5, "change-trend", True),
    "change-trend, strength 0.25 of 8 steps, one step": (8, 0.25, "change-trend", True),
}
METRICS = ("future_change_F1", "GSSIM", "PSNR", "TCS")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--pool", type=int, default=1200)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--weights", default="tamms", help="the forecaster (shipped name or folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--apply", nargs="*", default=[], metavar="FOLDER",
                    help="forecaster folders whose config.json gets the chosen setting as its sampler defaults "
                         "(default_steps, strength, start_from; the weights are not touched)")
    ap.add_argument("--from-results", action="store_true",
                    help="no runs: take the chosen setting from the existing results file (with --apply), and "
                         "render its table again")
    args = ap.parse_args(argv)
    if args.from_results:
        result = json.loads((args.out / "forecast_sampler_val.json").read_text())
        apply(result, args.apply)
        (args.out / "forecast_sampler_val.md").write_text(markdown(result))
        return
    from forecast_quality import evaluate, forecast_cases, run_model, synthetic_cases

    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.registry import load_detector

    cases = synthetic_cases(args.pool, args.n, split="val")
    detector = load_detector("siamese")
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/forecast_sampler_val.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": len(cases), "split": "val",
              "detector": detector.name, "samples": args.samples, "weights": args.weights, "rows": {}}
    start = time.time()
    preds, _ = run_model("change-trend", cases, None, 0)
    result["rows"]["change-trend alone (the start forecast)"] = {
        **{k: round(float(v), 4) for k, v in evaluate(cases, preds, detector)["synthetic"].items() if k in METRICS},
        "seconds": round(time.time() - start, 1)}
    for name, (steps, strength, start_from, one_step) in SETTINGS.items():
        start = time.time()
        pipe = ForecastPipeline.from_pretrained(args.weights, strength=strength, start_from=start_from,
                                                max_step_days=None if one_step else "auto")
        pipe.model.any_gap = one_step  # "auto" rolls out through the observed interval unless the model is any-gap
        preds = forecast_cases(pipe, cases, args.samples, steps)
        scores = evaluate(cases, preds, detector)["synthetic"]
        result["rows"][name] = {**{k: round(float(scores[k]), 4) for k in METRICS}, "steps": steps,
                                "strength": strength, "start_from": start_from, "one_step": one_step,
                                "seconds": round(time.time() - start, 1)}
        print(name, result["rows"][name], flush=True)
    chosen = max(SETTINGS, key=lambda n: result["rows"][n]["future_change_F1"] + result["rows"][n]["GSSIM"])
    result["chosen"] = chosen
    apply(result, args.apply)
    args.out.mkdir(parents=True, exist_ok=True)
    from tamms.utils import write_results

    write_results(args.out, "forecast_sampler_val", result, markdown(result))
    print(markdown(result))


def apply(result: dict, folders: list[str]) -> None:
    """Write the chosen setting into each forecaster folder's config.json as its sampler defaults."""
    row = result["rows"][result["chosen"]]
    for folder in folders:
        path = Path(folder) / "config.json"
        saved = json.loads(path.read_text())
        saved["config"].update(default_steps=row["steps"], strength=row["strength"], start_from=row["start_from"])
        saved["sampler_chosen_by"] = {"command": result["command"], "setting": result["chosen"],
                                      "results": "benchmarks/results/forecast_sampler_val.md"}
        path.write_text(json.dumps(saved, indent=1) + "\n")
        print(f"sampler defaults of {folder}: {row['steps']} steps, strength {row['strength']}, start from "
              f"{row['start_from']}")


def markdown(r: dict) -> str:
    lines = ["# TAMMs sampler chosen on the validation split (`benchmarks/forecast_sampler_val.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. {r['cases']} synthetic **validation** sequences "
             f"(3 frames + dates -> the future frame), forecaster `{r['weights']}`, mean of {r['samples']} samples; "
             f"future-change F1 pooled over pixels, detector `{r['detector']}`. Rule: the "
             "highest F1 + GSSIM (fixed before these runs, after a first probe of strengths 0.25-0.75 on the same "
             "split with the previous change-trend).", "",
             "| sampler start | future-change F1 | GSSIM | PSNR | TCS | seconds |", "|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        mark = " **(chosen)**" if name == r.get("chosen") else ""
        lines.append(f"| {name}{mark} | " + " | ".join(f"{row[k]:.4f}" for k in METRICS) + f" | {row['seconds']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Choose a TAMMs forecaster's sampler on VALIDATION data (never on test).

Where the sampler starts and how far: from pure noise (strength 1), or from a forecast for the same date noised
part-way (SDEdit, strength < 1): the last frame, or the forecast of `change-trend` (which places the change,
docs/forecast.md). Each setting forecasts the first `--n` validation sequences of the synthetic world (3 frames
+ dates -> the future frame), the mean of `--samples` samples, one step to the date or the pipeline's "auto"
rollout. The rule, fixed before these runs (after a first probe of strengths 0.25-0.75 on the same split with
the previous change-trend): the setting with the highest future-change F1 + GSSIM (F1 pooled over
pixels, detector `siamese`). The chosen setting is what the forecaster's config.json stores (`--apply`).

Beside the rule, each setting also forecasts every window of the real series but the held-out last one (3
frames -> the next; `--data`): their GSSIM and in how many windows it is above persistence. The forecasters
trained on those windows (`data.real`), so these columns flatter them; they are shown, not used by the rule.

    OMP_NUM_THREADS=1 python benchmarks/forecast_sampler_val.py [--n 96] [--weights tamms] [--settings a,b,...]

Writes benchmarks/results/forecast_sampler_val.{json,md} for the shipped `tamms`, and
forecast_sampler_val_<weights folder name>.{json,md} for other weights (tables regenerated here, never edited by
hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
# key: (label, steps, strength, start_from, one step to the date)
SETTINGS = {
    "noise2-rollout": ("noise, 2 steps, rollout (the previous default)", 2, 1.0, None, False),
    "last0.25-rollout": ("last frame, strength 0.25 of 4 steps, rollout", 4, 0.25, None, False),
    "ct0.25": ("change-trend, strength 0.25 of 4 steps, one step", 4, 0.25, "change-trend", True),
    "ct0.25-rollout": ("change-trend, strength 0.25 of 4 steps, rollout", 4, 0.25, "change-trend", False),
    "ct0.5": ("change-trend, strength 0.5 of 4 steps, one step", 4, 0.5, "change-trend", True),
    "ct0.25x8": ("change-trend, strength 0.25 of 8 steps, one step", 8, 0.25, "change-trend", True),
    "noise2": ("noise, 2 steps, one step", 2, 1.0, None, True),
    "noise4": ("noise, 4 steps, one step", 4, 1.0, None, True),
}
DEFAULT_SETTINGS = "noise2-rollout,last0.25-rollout,ct0.25,ct0.25-rollout,ct0.5,ct0.25x8"
METRICS = ("future_change_F1", "GSSIM", "PSNR", "TCS")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--pool", type=int, default=1200)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--weights", default="tamms", help="the forecaster (shipped name or folder)")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder of the real series (their earlier windows are scored beside the rule)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--apply", nargs="*", default=[], metavar="FOLDER",
                    help="forecaster folders whose config.json gets the chosen setting as its sampler defaults "
                         "(default_steps, strength, start_from; the weights are not touched)")
    ap.add_argument("--from-results", action="store_true",
                    help="no runs: take the chosen setting from the existing results file (with --apply), and "
                         "render its table again")
    args = ap.parse_args(argv)
    keys = args.settings.split(",")
    unknown = [k for k in keys if k not in SETTINGS]
    if unknown:
        ap.error(f"unknown --settings {unknown}: choose from {', '.join(SETTINGS)}")
    stem = "forecast_sampler_val" if args.weights == "tamms" else f"forecast_sampler_val_{Path(args.weights).name}"
    if args.from_results:
        result = json.loads((args.out / f"{stem}.json").read_text())
        apply(result, args.apply, stem)
        (args.out / f"{stem}.md").write_text(markdown(result))
        return
    from forecast_quality import evaluate, forecast_cases, real_cases, run_model, synthetic_cases

    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.registry import load_detector

    cases = synthetic_cases(args.pool, args.n, split="val")
    windows = [c for c in real_cases(args.data, every_window=True) if not c.name.endswith("(held out)")]
    detector = load_detector("siamese")
    from tamms.utils import command_line

    result = {"command": command_line("forecast_sampler_val.py", argv),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "cases": len(cases), "split": "val", "detector": detector.name, "samples": args.samples,
              "weights": args.weights, "real_windows": [c.name for c in windows], "rows": {}}
    persistence = [c.sequence.rgb()[-1].astype("float32") for c in windows]

    def row(synthetic_preds, window_preds, start: float) -> dict:
        scores = evaluate(cases, synthetic_preds, detector)["synthetic"]
        return {**{k: round(float(scores[k]), 4) for k in METRICS}, **real_columns(windows, window_preds, persistence),
                "seconds": round(time.time() - start, 1)}

    start = time.time()
    alone = [run_model("change-trend", some, None, 0)[0] for some in (cases, windows)]
    result["rows"]["change-trend alone (the start forecast)"] = row(*alone, start)
    for key in keys:
        label, steps, strength, start_from, one_step = SETTINGS[key]
        start = time.time()
        pipe = ForecastPipeline.from_pretrained(args.weights, strength=strength, start_from=start_from,
                                                max_step_days=None if one_step else "auto")
        pipe.model.any_gap = one_step  # "auto" rolls out through the observed interval unless the model is any-gap
        result["rows"][label] = {**row(forecast_cases(pipe, cases, args.samples, steps),
                                       forecast_cases(pipe, windows, args.samples, steps), start),
                                 "steps": steps, "strength": strength, "start_from": start_from, "one_step": one_step}
        print(label, result["rows"][label], flush=True)
    labels = [SETTINGS[k][0] for k in keys]
    result["chosen"] = max(labels, key=lambda n: result["rows"][n]["future_change_F1"] + result["rows"][n]["GSSIM"])
    apply(result, args.apply, stem)
    from tamms.utils import write_results

    write_results(args.out, stem, result, markdown(result))
    print(markdown(result))


def real_columns(windows: list, preds: list, persistence: list) -> dict:
    """Per real series: the mean GSSIM of its windows (and persistence's) and how many are above persistence
    (forecast_real_windows' scores and summary)."""
    from forecast_real_windows import scores, summary

    per_window = {"persistence": {c.name: scores(p, c.target) for c, p in zip(windows, persistence)},
                  "model": {c.name: scores(p, c.target) for c, p in zip(windows, preds)}}
    out = {}
    for series in dict.fromkeys(c.source for c in windows):
        rows = summary(per_window, series)
        out[f"{series}_GSSIM"] = rows["model"]["earlier_mean_GSSIM"]
        out[f"{series}_persistence_GSSIM"] = rows["persistence"]["earlier_mean_GSSIM"]
        out[f"{series}_above_persistence"] = f"{rows['model']['above_persistence']} of {rows['model']['windows']}"
    return out


def apply(result: dict, folders: list[str], stem: str = "forecast_sampler_val") -> None:
    """Write the chosen setting into each forecaster folder's config.json as its sampler defaults."""
    row = result["rows"][result["chosen"]]
    for folder in folders:
        path = Path(folder) / "config.json"
        saved = json.loads(path.read_text())
        saved["config"].update(default_steps=row["steps"], strength=row["strength"], start_from=row["start_from"])
        saved["sampler_chosen_by"] = {"command": result["command"], "setting": result["chosen"],
                                      "results": f"benchmarks/results/{stem}.md"}
        path.write_text(json.dumps(saved, indent=1) + "\n")
        print(f"sampler defaults of {folder}: {row['steps']} steps, strength {row['strength']}, start from "
              f"{row['start_from']}")


def markdown(r: dict) -> str:
    lines = ["# TAMMs sampler chosen on the validation split (`benchmarks/forecast_sampler_val.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. {r['cases']} synthetic **validation** sequences "
             f"(3 frames + dates -> the future frame), forecaster `{r['weights']}`, mean of {r['samples']} samples; "
             f"future-change F1 pooled over pixels, detector `{r['detector']}`. Rule: the "
             "highest F1 + GSSIM (fixed before these runs, after a first probe of strengths 0.25-0.75 on the same "
             "split with the previous change-trend).", ""]
    first = next(iter(r["rows"].values()))
    series = [k[:-len("_above_persistence")] for k in first if k.endswith("_above_persistence")]
    if series:
        lines += [f"Real columns (not in the rule): the {len(r['real_windows'])} earlier windows of the real series "
                  "(3 frames -> the next; the held-out last window is never used here), on which the forecasters "
                  "trained: mean GSSIM (persistence's in brackets) and windows above persistence.", ""]
    head = ["sampler start", "future-change F1", "GSSIM", "PSNR", "TCS"] + [
        f"{s} {col}" for s in series for col in ("GSSIM", "above persistence")] + ["seconds"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in r["rows"].items():
        mark = " **(chosen)**" if name == r.get("chosen") else ""
        real = [f"{row[s + '_GSSIM']:.4f} ({row[s + '_persistence_GSSIM']:.4f}) | {row[s + '_above_persistence']}"
                for s in series]
        lines.append(f"| {name}{mark} | " + " | ".join([f"{row[k]:.4f}" for k in METRICS] + real) +
                     f" | {row['seconds']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

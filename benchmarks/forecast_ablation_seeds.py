"""TAMMs table 2 ablations over seeds, at equal budget: full model, w/o semantic fusion, w/o text guidance.

Each variant retrains stages `semantic` and `anneal` of `src/tamms/configs/forecast.yaml` from the shipped
structural ECM (`tamms-base-control`, the shared stage 1), with the same number of steps for every variant
(`--semantic-steps`, `--anneal-steps`; the shipped weights used 800 and 400) and `--seeds` training seeds. Every
run is then scored on the first `--n` synthetic test cases of benchmarks/forecast_quality.py (3 frames + dates ->
the future frame; frames and dates only) with the sampler settings of the shipped `tamms` weights, the mean of
`--samples` samples, future-change F1 pooled over pixels with the `siamese` detector. A variant is below the full
model when the full model's mean exceeds the variant's by more than the larger spread (max - min) over seeds.
The gates (sigmoid, mean per ECM level over the cases' M_t) and alphas of each run are reported beside.

    OMP_NUM_THREADS=1 python benchmarks/forecast_ablation_seeds.py [--seeds 0 1 2] [--semantic-steps 150]
        [--anneal-steps 75] [--n 96] [--runs runs/ablation_seeds]

Runs already trained in `--runs` are reused (a run is one folder per variant and seed). Writes
benchmarks/results/forecast_ablation_seeds.{json,md} (tables regenerated here, never edited by hand).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
VARIANTS = {"full": {}, "w/o semantic fusion": {"use_semantic": False}, "w/o text guidance": {"use_text": False}}
METRICS = ("future_change_F1", "GSSIM", "PSNR", "TCS")


def recipe(variant: str, seed: int, semantic_steps: int, anneal_steps: int) -> dict:
    """forecast.yaml with stages semantic + anneal only, from the shipped structural ECM, the shipped sampler."""
    from forecast_quality import shipped_sampler

    from tamms.utils import default_weights

    cfg = yaml.safe_load((ROOT / "src" / "tamms" / "configs" / "forecast.yaml").read_text())
    cfg["stages"] = [s for s in cfg["stages"] if s["name"] in ("semantic", "anneal")]
    for stage in cfg["stages"]:
        stage["set"]["trainer.max_steps"] = semantic_steps if stage["name"] == "semantic" else anneal_steps
    cfg["init_from"] = str(default_weights("tamms-base-control"))
    cfg["model"]["ecm"].update(VARIANTS[variant])
    sampler = shipped_sampler()
    cfg["model"].update(default_steps=sampler["steps"], strength=sampler["strength"], start_from=sampler["start_from"])
    cfg["trainer"]["seed"] = seed
    return cfg


def train_run(folder: Path, cfg: dict) -> Path:
    from tamms.config import load_train_config
    from tamms.tasks.base import train

    if (folder / "model.safetensors").is_file():
        return folder
    return train(load_train_config(cfg), folder, resume=(folder / "checkpoints").exists())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--semantic-steps", type=int, default=150)
    ap.add_argument("--anneal-steps", type=int, default=75)
    ap.add_argument("--n", type=int, default=96, help="synthetic test cases")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablation_seeds")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--train-only", action="store_true", help="train the runs (the scores need the sampler settings "
                    "of the shipped tamms weights at scoring time: runs trained before are scored with those)")
    args = ap.parse_args(argv)
    runs = [(variant, seed, args.runs / f"{variant.replace('/', '').replace(' ', '-')}_s{seed}")
            for variant in VARIANTS for seed in args.seeds]
    train_seconds = {}
    for variant, seed, folder in runs:
        start = time.time()
        train_run(folder, recipe(variant, seed, args.semantic_steps, args.anneal_steps))
        train_seconds[folder] = round(time.time() - start, 1)
    if args.train_only:
        return
    from forecast_quality import evaluate, forecast_cases, shipped_sampler, synthetic_cases
    from forecast_semantic_use import gates_and_alphas

    from tamms.pipelines.describe import DescribePipeline
    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.registry import load_detector
    from tamms.utils import default_weights

    cases = synthetic_cases(1000, args.n)
    detector = load_detector("siamese")
    describer_v2 = DescribePipeline.from_pretrained(default_weights("describer-v2"))
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/forecast_ablation_seeds.py "
                         + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": len(cases),
              "detector": detector.name, "samples": args.samples, "semantic_steps": args.semantic_steps,
              "anneal_steps": args.anneal_steps, "seeds": args.seeds, "runs": {}}
    sampler = shipped_sampler()
    for variant, seed, folder in runs:
        start = time.time()
        # the shipped sampler, whatever the run's folder recorded when it was trained
        pipe = ForecastPipeline.from_pretrained(folder, strength=sampler["strength"], start_from=sampler["start_from"])
        pipe.model.default_steps = sampler["steps"]
        preds = forecast_cases(pipe, cases, args.samples)
        scores = evaluate(cases, preds, detector)["synthetic"]
        row = {"variant": variant, "seed": seed, "folder": str(folder.relative_to(ROOT)),
               **{k: round(float(scores[k]), 4) for k in METRICS},
               "gates": gates_and_alphas(pipe, cases[:32], describer_v2), "sampler": sampler,
               "train_seconds_this_call": train_seconds[folder], "score_seconds": round(time.time() - start, 1)}
        result["runs"][f"{variant} s{seed}"] = row
        print(variant, seed, {k: row[k] for k in METRICS}, flush=True)
        write(result, args.out)  # after every run: a stop loses nothing measured
    result["summary"] = summary(result)
    write(result, args.out)
    print(markdown(result))


def summary(result: dict) -> dict:
    rows = list(result["runs"].values())
    out = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            out[variant] = {k: {"mean": round(float(np.mean([r[k] for r in mine])), 4),
                                "spread": round(float(np.ptp([r[k] for r in mine])), 4), "seeds": len(mine)}
                            for k in METRICS}
    full = out.get("full")
    for variant, s in out.items():
        if variant == "full" or full is None:
            continue
        for k in METRICS:
            gap = full[k]["mean"] - s[k]["mean"]
            s[k]["full_minus_this"] = round(gap, 4)
            s[k]["below_full_beyond_spread"] = bool(gap > max(full[k]["spread"], s[k]["spread"]))
    return out


def write(result: dict, out: Path) -> None:
    from tamms.utils import write_results

    write_results(out, "forecast_ablation_seeds", result, markdown(result))


def markdown(r: dict) -> str:
    lines = ["# TAMMs ablations over seeds at equal budget (`benchmarks/forecast_ablation_seeds.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. Each run: stages semantic ({r['semantic_steps']} "
             f"steps) + anneal ({r['anneal_steps']} steps) of `src/tamms/configs/forecast.yaml` from the shipped "
             f"structural ECM, seeds {r['seeds']}. Scored on {r['cases']} synthetic test cases, mean of "
             f"{r['samples']} samples, future-change F1 pooled over pixels, detector `{r['detector']}`.", "",
             "| variant | seed | future-change F1 | GSSIM | PSNR | TCS | gate mean per level | alpha per level |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["runs"].values():
        g = row["gates"]
        lines.append(f"| {row['variant']} | {row['seed']} | " + " | ".join(f"{row[k]:.4f}" for k in METRICS)
                     + f" | {g.get('gate_mean_per_level', '-')} | {g.get('alpha_per_level', '-')} |")
    if "summary" in r:
        lines += ["", "Mean over seeds (spread = max - min); \"below full\": the full model's mean is higher by more "
                  "than the larger spread.", "",
                  "| variant | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for variant, s in r["summary"].items():
            cells = []
            for k in METRICS:
                cell = f"{s[k]['mean']:.4f} (spread {s[k]['spread']:.4f})"
                if "below_full_beyond_spread" in s[k]:
                    cell += f" (full - this {s[k]['full_minus_this']:+.4f}: " + (
                        "below full" if s[k]["below_full_beyond_spread"] else "not below") + ")"
                cells.append(cell)
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

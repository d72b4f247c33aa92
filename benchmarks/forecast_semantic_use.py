"""Does the TAMMs forecaster use its semantic path? Gates, alphas and input controls, per forecaster folder.

For each forecaster (`--model NAME=FOLDER`, default the shipped `tamms`), on the first `--n` synthetic test
cases of benchmarks/forecast_quality.py (3 frames -> the future frame, frames and dates only), every model with
the sampler shipped with the `tamms` weights (its start, strength and steps), so the rows differ in weights only:
- the SFCI gates (sigmoid, mean over cases and channels, per ECM level) given the describer's M_t of each case,
  and the TempTrans mixing weights alpha per level;
- the forecast scores (PSNR, GSSIM, TCS, future-change F1 pooled over pixels, the `siamese` detector named)
  with the conditioning as given, M_t zeroed, the text removed (the U-Net's null token), and the M_t and text
  of another case (case i gets those of case (i + n/2) mod n). A model that uses its semantic path loses score
  under the last three.

    OMP_NUM_THREADS=1 python benchmarks/forecast_semantic_use.py --model shipped=tamms --model oncrop=runs/tamms-oncrop

Writes benchmarks/results/forecast_semantic_use.{json,md} (tables regenerated here, never edited by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CONTROLS = ("as given", "M_t zeroed", "text removed", "M_t and text of another case")


def controlled(cond: dict, control: str) -> dict:
    """The conditioning of a batch under one control (see the module docstring)."""
    if control == "as given" or not cond:
        return cond
    cond = dict(cond)
    if control == "M_t zeroed" and "semantic" in cond:
        cond["semantic"] = torch.zeros_like(cond["semantic"])
    elif control == "text removed":
        cond.pop("text_embeddings", None)
        cond.pop("text_mask", None)
    elif control == "M_t and text of another case":
        n = next(iter(cond.values())).shape[0]
        other = (torch.arange(n) + n // 2) % n
        cond = {k: v[other] for k, v in cond.items()}
    return cond


@torch.no_grad()
def gates_and_alphas(pipe, cases, describer_v2) -> dict:
    """Mean gate per ECM level over the cases' M_t, and alpha per level; the M_t spread with the model's
    describer and with `describer_v2`."""
    from tamms.data.sequence import SitsSequence, from_days, to_days

    forecaster = pipe.model.model
    history = torch.from_numpy(np.stack([c.sequence.rgb()[-forecaster.cfg.history:] for c in cases]))
    days = torch.from_numpy(np.stack([np.asarray(to_days(c.sequence.dates[-forecaster.cfg.history:]))
                                      for c in cases]))
    cond, _ = pipe._conditioning(history.float(), days)
    if "semantic" not in cond:
        return {"note": "the model has no semantic path"}
    gates, alphas = forecaster.ecm.gates_and_alphas(cond["semantic"])
    # how much M_t differs between cases, with the model's describer and with the shipped describer-v2
    seqs = [SitsSequence(frames=h.numpy(), dates=[from_days(float(x)) for x in d]) for h, d in zip(history, days)]
    return {"M_t_std_over_cases": round(float(cond["semantic"].std(0).mean()), 4),
            "M_t_std_over_cases_describer_v2": round(float(describer_v2(seqs).semantic.float().std(0).mean()), 4),
            "gate_mean_per_level": [round(float(g.mean()), 4) for g in gates],
            "gate_std_over_cases_per_level": [round(float(g.mean(dim=1).std()), 4) for g in gates],
            "alpha_per_level": [round(float(a), 4) for a in alphas],
            "gate_bias_init_sigmoid": round(float(torch.sigmoid(torch.tensor(forecaster.ecm.cfg.gate_bias_init))), 4),
            "alpha_init_sigmoid": round(float(torch.sigmoid(torch.tensor(forecaster.ecm.cfg.alpha_init))), 4)}


def run(pipe, cases, control: str, samples: int, seed: int, steps: int | None = None) -> list[np.ndarray]:
    original = pipe._conditioning

    def conditioning(history, days):  # the describer runs once per batch, its conditioning then controlled
        cond, texts = original(history, days)
        return controlled(cond, control), texts

    pipe._conditioning = conditioning
    try:
        from forecast_quality import forecast_cases

        return forecast_cases(pipe, cases, samples, steps, seed=seed)
    finally:
        pipe._conditioning = original


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="NAME=FOLDER (or a shipped name)")
    ap.add_argument("--n", type=int, default=48, help="synthetic test cases")
    ap.add_argument("--samples", type=int, default=2, help="samples averaged per forecast")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--gates-only", action="store_true",
                    help="recompute gates and M_t spread; keep the controls of the existing results for the same folders")
    args = ap.parse_args(argv)
    from forecast_quality import evaluate, shipped_sampler, synthetic_cases

    from tamms.pipelines.describe import DescribePipeline
    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.registry import load_detector
    from tamms.utils import default_weights

    models = dict(m.partition("=")[::2] for m in (args.model or ["shipped=tamms"]))
    cases = synthetic_cases(1000, args.n)
    detector = load_detector("siamese")
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/forecast_semantic_use.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": len(cases),
              "detector": detector.name, "samples": args.samples, "sampler": shipped_sampler(), "models": {}}
    sampler = result["sampler"]
    describer_v2 = DescribePipeline.from_pretrained(default_weights("describer-v2"))
    results_file = args.out / "forecast_semantic_use.json"
    previous = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name, folder in models.items():
        start = time.time()
        # with the describer it was trained with, and the shipped sampler
        pipe = ForecastPipeline.from_pretrained(folder, strength=sampler["strength"], start_from=sampler["start_from"])
        row = {"folder": folder, "gates": gates_and_alphas(pipe, cases, describer_v2), "controls": {}}
        kept = previous.get("models", {}).get(name, {})
        if args.gates_only and kept.get("folder") == folder and previous.get("cases") == len(cases):
            row["controls"], row["controls_command"] = kept["controls"], kept.get("controls_command",
                                                                                  previous["command"])
            result["models"][name] = row
            continue
        row["controls_command"] = result["command"]
        for control in CONTROLS:
            preds = run(pipe, cases, control, args.samples, args.seed, sampler["steps"])
            scores = evaluate(cases, preds, detector)["synthetic"]
            row["controls"][control] = {k: round(float(scores[k]), 4)
                                        for k in ("PSNR", "GSSIM", "TCS", "future_change_F1") if k in scores}
            print(name, control, row["controls"][control], flush=True)
        row["seconds"] = round(time.time() - start, 1)
        result["models"][name] = row
    args.out.mkdir(parents=True, exist_ok=True)
    from tamms.utils import write_results

    write_results(args.out, "forecast_semantic_use", result, markdown(result))
    print(markdown(result))


def sampler_line(sampler: dict | None) -> str:
    if not sampler:
        return " Each model with the sampler saved in its own folder."
    return (f" Every model with the shipped tamms sampler: DDIM, {sampler['steps']} steps, strength {sampler['strength']}"
            f", start {sampler['start_from'] or 'the last frame'}.")


def markdown(r: dict) -> str:
    lines = ["# Does the forecaster use its semantic path? (`benchmarks/forecast_semantic_use.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. {r['cases']} synthetic test cases (3 frames + "
             f"dates -> the future frame), mean of {r['samples']} samples; future-change F1 pooled over pixels, "
             f"detector `{r['detector']}`." + sampler_line(r.get("sampler")), "",
             "## Gates and alphas", "",
             "M_t spread: the standard deviation over cases of the describer's M_t (mean over its dimensions), with "
             "the describer the model was trained with and, for comparison, with the shipped describer-v2.", "",
             "| model | M_t spread (its describer / v2) | gate mean per level | gate spread over cases per level | "
             "alpha per level | at init (gate, alpha) |",
             "|---|---|---|---|---|---|"]
    for name, row in r["models"].items():
        g = row["gates"]
        if "note" in g:
            lines.append(f"| {name} | {g['note']} | | | |")
            continue
        lines.append(f"| {name} | {g.get('M_t_std_over_cases')} / {g.get('M_t_std_over_cases_describer_v2')} | "
                     f"{g['gate_mean_per_level']} | {g['gate_std_over_cases_per_level']} | "
                     f"{g['alpha_per_level']} | {g['gate_bias_init_sigmoid']}, {g['alpha_init_sigmoid']} |")
    commands = sorted({row.get("controls_command", r["command"]) for row in r["models"].values()})
    lines += ["", "## Controls", "", "Measured by " + "; ".join(f"`{c}`" for c in commands) + ".", "",
              "| model | conditioning | PSNR | GSSIM | TCS | future-change F1 |",
              "|---|---|---|---|---|---|"]
    for name, row in r["models"].items():
        for control, s in row["controls"].items():
            lines.append(f"| {name} | {control} | " + " | ".join(f"{s.get(k, float('nan')):.4f}" for k in
                                                                  ("PSNR", "GSSIM", "TCS", "future_change_F1")) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Why no forecaster here beats persistence on the held-out Landsat window: two measurements.

1. The image prior. The frozen U-Net alone (the ECM switched off), started from the last frame noised to
   strength 0.25 of 4 DDIM steps (one step runs), null text, one sample: how much of a real frame's structure
   survives a pass through the image model, before any forecasting. Scored (GSSIM) against the next frame, like
   every forecast, beside persistence (the last frame itself). `--unets LABEL=FOLDER`: any forecaster folders,
   e.g. ones whose U-Net was fine-tuned on real frames.
2. How much of a forecast is worth keeping. Each model's forecast (read from the cache of
   `benchmarks/forecast_real_windows.py`, the mean of 4 samples) is blended with the last frame,
   lam * last + (1 - lam) * forecast. lam is chosen per series on its earlier windows (the highest mean GSSIM;
   the forecasters trained on those windows) and the held-out window is scored at that lam. The lam that is best
   on the held-out window itself is shown too, labelled as chosen on the test window: it is the ceiling of any
   such mix, not a result.

    OMP_NUM_THREADS=1 python benchmarks/forecast_real_limits.py [--data DIR] [--cache DIR]
                                                                [--blend tamms,change-trend,...]
                                                                [--unets LABEL=FOLDER ...] [--out DIR]

Writes benchmarks/results/forecast_real_limits.{json,md} (tables regenerated here, never edited by hand).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
LAMS = (0.0, 0.25, 0.5, 0.75, 0.9)
PRIOR_STRENGTH, PRIOR_STEPS = 0.25, 4


def image_prior_forecasts(folder: str, cases: list, seed: int = 0) -> list[np.ndarray]:
    """The U-Net of a forecaster folder alone, img2img from each case's last frame (see the module doc)."""
    from forecast_quality import forecast_cases

    from tamms.pipelines.forecast import ForecastPipeline

    pipe = ForecastPipeline.from_pretrained(folder, strength=PRIOR_STRENGTH, start_from=None)
    forecaster = pipe.model.model
    forecaster.ecm.structural_only = True  # null text: the text adapter is the ECM's, not the image model's
    with_control = forecaster.forward
    # the sampler calls forecaster(...); control=False runs the plain U-Net (SFCIForecaster.forward)
    forecaster.forward = lambda *args, **kwargs: with_control(*args, **{**kwargs, "control": False})
    return forecast_cases(pipe, cases, samples=1, steps=PRIOR_STEPS, seed=seed)


def blend_rows(cases: list, forecast: list[np.ndarray], gssim) -> dict[str, dict]:
    """Per series: GSSIM of each lam's blend (held out, earlier mean), the lam chosen on the earlier windows and
    the held-out GSSIM at it, and the lam best on the held-out window (a ceiling, chosen on the test)."""
    from forecast_real_windows import by_series

    table = {lam: by_series(cases, [gssim(lam * c.sequence.rgb()[-1].astype(np.float32) + (1 - lam) * p, c.target)
                                    for c, p in zip(cases, forecast)]) for lam in LAMS}
    out = {}
    for series in table[LAMS[0]]:
        chosen = max(LAMS, key=lambda lam: table[lam][series]["earlier_mean"])
        ceiling = max(LAMS, key=lambda lam: table[lam][series]["held_out"])
        out[series] = {"per_lam": {str(lam): table[lam][series] for lam in LAMS}, "chosen_lam": chosen,
                       "held_out_at_chosen": table[chosen][series]["held_out"], "test_best_lam": ceiling,
                       "held_out_at_test_best": table[ceiling][series]["held_out"]}
    return out


def markdown(r: dict) -> str:
    lines = ["# Why no forecaster beats persistence on the held-out Landsat window "
             "(`benchmarks/forecast_real_limits.py`)", "", f"Command: `{r['command']}`  ",
             f"Date: {r['date']}. Each window: 3 dated frames -> the next frame; "
             "GSSIM against the next frame. Only the last window of each series is held out.", "",
             f"## 1. The image prior: the U-Net alone from the last frame (strength {PRIOR_STRENGTH} of {PRIOR_STEPS} "
             "DDIM steps, one sample, null text)", "",
             "| U-Net of | " + " | ".join(f"{s}, held out | {s}, earlier mean" for s in r["series"]) + " |",
             "|---|" + "---|---|" * len(r["series"])]
    for label, row in r["prior"].items():
        lines.append(f"| {label} | " + " | ".join(f"{row[s]['held_out']} | {row[s]['earlier_mean']}"
                                                   for s in r["series"]) + " |")
    lines += ["", "## 2. Forecasts blended with the last frame: lam * last + (1 - lam) * forecast", "",
              "lam chosen per series on its earlier windows; the last column is chosen on the held-out window itself "
              "(a ceiling of any such blend, not a result).", "",
              "| series | forecast | GSSIM held out, lam = " + ", ".join(str(x) for x in LAMS)
              + " | lam chosen on earlier windows | held out at it | persistence | lam best on the held-out window "
              "(ceiling) |", "|---|---|---|---|---|---|---|"]
    for model, rows in r["blend"].items():
        for series, b in rows.items():
            held = ", ".join(f"{b['per_lam'][str(lam)]['held_out']:.4f}" for lam in LAMS)
            lines.append(f"| {series} | {model} | {held} | {b['chosen_lam']} | {b['held_out_at_chosen']} | "
                         f"{r['prior']['persistence'][series]['held_out']} | {b['test_best_lam']}: "
                         f"{b['held_out_at_test_best']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from forecast_real_windows import analysis_arguments, by_series, cached_forecasts, scores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    analysis_arguments(ap)
    ap.add_argument("--blend", default="tamms,tamms-trend,change-trend,convlstm",
                    help="comma-separated models of that cache to blend with the last frame")
    ap.add_argument("--unets", nargs="*", default=["tamms=tamms"], metavar="LABEL=FOLDER",
                    help="forecasters (shipped name or folder) whose U-Net alone is scored")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from forecast_quality import real_cases

    from tamms.utils import command_line, write_results

    unets = {}
    for item in args.unets:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            ap.error(f"--unets {item!r}: give LABEL=FOLDER (a forecaster folder or shipped name)")
        unets[label] = folder
    cases = real_cases(args.data, every_window=True)
    if not cases:
        raise SystemExit(f"no real series under {args.data}: give --data, the folder holding them")
    cached = cached_forecasts(args.cache, [m for m in args.blend.split(",") if m], args.samples, len(cases))

    def gssim(pred, target):
        return scores(pred, target)["GSSIM"]

    result = {"command": command_line("forecast_real_limits.py", argv),
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "series": list(dict.fromkeys(c.source for c in cases)), "unets": unets,
              "prior": {"persistence": by_series(cases, [gssim(c.sequence.rgb()[-1], c.target) for c in cases])},
              "blend": {}}
    for label, folder in unets.items():
        preds = image_prior_forecasts(folder, cases)
        result["prior"][label] = by_series(cases, [gssim(p, c.target) for c, p in zip(cases, preds)])
        print("prior", label, result["prior"][label], flush=True)
    for model, preds in cached.items():
        result["blend"][model] = blend_rows(cases, preds, gssim)
    write_results(args.out, "forecast_real_limits", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Where the next change falls: what a forecast of the real series gains from knowing it, and how well the
models here know it.

No forecaster beats persistence on the held-out Landsat window (benchmarks/forecast_real_limits.py). This script
asks whether the missing piece is *what* the changed land looks like or *where* it changes. For every window
(3 dated frames -> the next frame) it builds forecasts that keep the last frame everywhere except on a chosen
`--share` of the pixels, and scores them (GSSIM against the next frame):

1. The true location (an ORACLE: it reads the target frame, which no user has): the share of pixels where the
   next frame differs most from the last one, filled with the tamms forecast, with change-trend's, or with no
   model at all, the last frame blurred (Gaussian, sigma 3 px). If the blur scores as well as a forecast there,
   the gain comes from the location, not from the forecast's content.
2. The location the models can see: four per-pixel scores computed from what a user has (the frames and
   dates): change-trend's probability that the pixel changes by the target date, how far the tamms forecast
   departs from the last frame, how much the pixel changed across the history (smoothed, sigma 4 px), and a
   location learned from the real windows: a per-pixel classifier (MLP on 19 features: these three and more,
   `location_features`) trained to find the true location on the earlier windows of both series, each window
   scored by one trained without it (the held-out windows by one trained on all earlier windows; an earlier window
   by one trained on the others, later ones included, so its rows are optimistic). Each is ranked
   against the true location (ROC AUC, torchmetrics' binary_auroc), and its top share is filled with the tamms
   forecast.
3. How good a location must be: the true location's ranks plus spatially smooth noise (sigma 4 px) of growing
   size, so the location degrades as a blob-shaped prediction would; each level's AUC and the GSSIM of its top
   share filled with the blurred last frame and with the tamms forecast. The AUC at which the fill crosses
   persistence is what a location predictor would need.

The tamms and change-trend forecasts are the cached predictions of benchmarks/forecast_real_windows.py (the mean
of 4 samples, seed 0), read from its --cache folder.

    OMP_NUM_THREADS=1 python benchmarks/forecast_real_location.py [--data DIR] [--cache DIR] [--share 0.2]
                                                                   [--out DIR]

Writes benchmarks/results/forecast_real_location.{json,md} (tables regenerated here, never edited by hand) and
forecast_real_location_<series>.png (each window's true location beside where each score puts it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
NOISE_LEVELS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
BLUR_SIGMA, SCORE_SIGMA = 3.0, 4.0
FORECASTS = ("tamms", "change-trend")  # read from forecast_real_windows.py's cache
LEARNED = "learned from the earlier windows (all three above and more)"


def top_share(score: np.ndarray, share: float) -> np.ndarray:
    """The `share` of pixels [H, W] with the highest score (ties broken by position) -> bool [H, W]."""
    order = np.argsort(score.ravel(), kind="stable")[::-1]
    mask = np.zeros(score.size, dtype=bool)
    mask[order[:int(round(share * score.size))]] = True
    return mask.reshape(score.shape)


def fill(last: np.ndarray, content: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The last frame [C, H, W] with the pixels `where` [H, W] taken from `content` [C, H, W]."""
    return np.where(where[None], content, last).astype(np.float32)


def blurred(frame: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Each band of a frame [C, H, W] blurred by a Gaussian of `sigma` px (no model: a neutral fill)."""
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(band, sigma) for band in frame]).astype(np.float32)


def auc(score: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC of a per-pixel score against a bool location (torchmetrics' binary_auroc)."""
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(torch.from_numpy(score.ravel().astype(np.float32)),
                              torch.from_numpy(truth.ravel().astype(np.int64))))


def degraded_location(change: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The true change's ranks in [0, 1] plus smooth noise of standard deviation `level` (Gaussian field,
    sigma 4 px, scaled to unit std): a location score whose skill falls as `level` grows."""
    from scipy.ndimage import gaussian_filter

    ranks = np.argsort(np.argsort(change.ravel(), kind="stable"), kind="stable").reshape(change.shape) / change.size
    field = gaussian_filter(rng.standard_normal(change.shape), SCORE_SIGMA)
    return ranks + level * field / (field.std() + 1e-12)


def history_change(history: np.ndarray) -> np.ndarray:
    """How much each pixel changed across the history [T, C, H, W]: |last - first|, band mean, smoothed."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.abs(history[-1] - history[0]).mean(0), SCORE_SIGMA)


def change_trend_probability(cases: list) -> list[np.ndarray]:
    """The shipped change-trend's probability [H, W] that each pixel changes by each case's target date."""
    from tamms.models import load_pretrained
    from tamms.pipelines.detect import detector_from_pretrained
    from tamms.pipelines.forecast import detected_changes
    from tamms.utils import default_weights

    net = load_pretrained(default_weights("change-trend")).eval()
    detector = detector_from_pretrained(net.cfg.detector)
    epoch = dt.date(1970, 1, 1)
    out = []
    for c in cases:
        history = torch.from_numpy(c.sequence.rgb().astype(np.float32))[None]  # [1, T, 3, H, W]
        days = torch.tensor([[(d - epoch).days for d in c.sequence.dates]], dtype=torch.float64)  # [1, T]
        target = torch.tensor([(c.target_date - epoch).days], dtype=torch.float64)  # [1]
        with torch.no_grad():
            logits = net.predict(history, detected_changes(detector, history), days, target).change_logits
        out.append(torch.sigmoid(logits)[0].numpy())
    return out


def location_features(history: np.ndarray, tamms_forecast: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Per-pixel inputs of the learned location [H*W, 19], from what a user has: the change between each pair of
    history frames [T, C, H, W] (as is, smoothed at 2 and 8 px), the last frame's bands, its brightness smoothed
    at 4 and 16 px and local contrast (3 px), how far the tamms forecast departs from the last frame (as is and
    smoothed), change-trend's change probability (as is and smoothed)."""
    from scipy.ndimage import gaussian_filter

    last = history[-1]
    planes = []
    for a, b in ((-1, -2), (-2, -3), (-1, -3)):
        step = np.abs(history[a] - history[b]).mean(0)
        planes += [step, gaussian_filter(step, 2), gaussian_filter(step, 8)]
    grey = last.mean(0)
    contrast = np.sqrt(np.maximum(gaussian_filter(grey ** 2, 3) - gaussian_filter(grey, 3) ** 2, 0))
    planes += [*last, gaussian_filter(grey, 4), gaussian_filter(grey, 16), contrast]
    departs = np.abs(tamms_forecast - last).mean(0)
    planes += [departs, gaussian_filter(departs, 3), probability, gaussian_filter(probability, 3)]
    return np.stack(planes).reshape(len(planes), -1).T.astype(np.float32)  # [H*W, F]


def learned_locations(features: list[np.ndarray], truths: list[np.ndarray], train_on: list[list[int]],
                      steps: int = 300, seed: int = 0) -> list[np.ndarray]:
    """For each window i, a per-pixel classifier (MLP, 32 hidden units, BCE, Adam) trained on the windows
    train_on[i] to find the true location (features [H*W, F], truths bool [H, W]), scoring window i -> [H, W]."""
    out = []
    for i, train in enumerate(train_on):
        x = np.concatenate([features[j] for j in train])  # [N, F]
        y = torch.from_numpy(np.concatenate([truths[j].ravel() for j in train]).astype(np.float32))
        mean, std = x.mean(0), x.std(0) + 1e-6
        x = torch.from_numpy((x - mean) / std)
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(steps):
            batch = torch.randint(0, len(x), (8192,))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch])[:, 0], y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            score = net(torch.from_numpy((features[i] - mean) / std))[:, 0]  # [H*W]
        out.append(score.numpy().reshape(truths[i].shape))
    return out


def true_location(case, share: float) -> np.ndarray:
    """ORACLE: the `share` of pixels where the target frame differs most from the last frame -> bool [H, W]."""
    return top_share(np.abs(case.target - case.sequence.rgb()[-1].astype(np.float32)).mean(0), share)


def window_rows(case, forecasts: dict[str, np.ndarray], located_by: dict[str, np.ndarray], share: float, gssim,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """Every score of one window (see the module doc): {"oracle": {fill: GSSIM}, "auc": {score: AUC},
    "seen": {score: GSSIM}, "needed_auc": {level: AUC}, "needed_gssim"/"needed_gssim_tamms": {level: GSSIM}}.
    located_by: the location scores [H, W] computed from what a user has (section 2)."""
    history = case.sequence.rgb().astype(np.float32)  # [T, 3, H, W]
    last, target = history[-1], case.target
    change = np.abs(target - last).mean(0)  # [H, W], read from the target: oracle only
    truth = true_location(case, share)
    blur = blurred(last)
    rows: dict[str, dict[str, float]] = {"persistence": {"last frame": gssim(last, target)}}
    rows["oracle"] = {**{f"{m} forecast": gssim(fill(last, p, truth), target) for m, p in forecasts.items()},
                      "last frame blurred (no model)": gssim(fill(last, blur, truth), target)}
    rows["auc"] = {k: auc(s, truth) for k, s in located_by.items()}
    rows["seen"] = {k: gssim(fill(last, forecasts["tamms"], top_share(s, share)), target)
                    for k, s in located_by.items()}
    rng = np.random.default_rng(seed)
    located = {str(level): degraded_location(change, level, rng) for level in NOISE_LEVELS}
    rows["needed_auc"] = {k: auc(s, truth) for k, s in located.items()}
    rows["needed_gssim"] = {k: gssim(fill(last, blur, top_share(s, share)), target) for k, s in located.items()}
    rows["needed_gssim_tamms"] = {k: gssim(fill(last, forecasts["tamms"], top_share(s, share)), target)
                                  for k, s in located.items()}
    return rows


def locations_grid(cases: list, series: str, per_window: dict, located: dict[str, list[np.ndarray]],
                   share: float) -> bytes:
    """Rows: the windows of one series; columns: the last frame, the next frame, the true location (oracle) and
    the top `share` of each location score (white), with its AUC."""
    from tamms.data.transforms import display_stretch
    from tamms.report.figures import labelled_grid

    rows, labels, titles = [], [], []
    for i, c in enumerate(cases):
        if c.source != series:
            continue
        frames = np.stack([c.sequence.rgb()[-1], c.target])  # [2, 3, H, W]
        shown = list((display_stretch(np.clip(frames, 0, 1)) * 255).astype(np.uint8).transpose(0, 2, 3, 1))
        masks = [true_location(c, share)] + [top_share(scores[i], share) for scores in located.values()]
        rows.append(shown + [np.repeat(m[..., None].astype(np.uint8) * 255, 3, axis=2) for m in masks])
        labels.append([str(c.sequence.dates[-1]), str(c.target_date), "oracle"]
                      + [f"AUC {per_window[c.name]['auc'][k]:.2f}" for k in located])
        titles.append(c.name.split(":", 1)[1])
    short = {LEARNED: "learned location", "tamms forecast departs from the last frame": "tamms departs"}
    return labelled_grid(rows, labels, row_titles=titles,
                         column_titles=["last frame", "next frame", "true location"]
                         + [short.get(k, k) for k in located],
                         title=f"{series}: where the next frame differs most ({round(100 * share)}% of pixels) and "
                               "where each score puts it", colors=64)


def series_summary(cases: list, per_window: dict[str, dict]) -> dict[str, dict]:
    """Per series, table and row: the held-out window's value and the mean over the earlier windows
    (forecast_real_windows.by_series of each row)."""
    from forecast_real_windows import by_series

    first = per_window[cases[0].name]
    out: dict[str, dict] = {}
    for table, rows in first.items():
        for row in rows:
            for series, value in by_series(cases, [per_window[c.name][table][row] for c in cases]).items():
                out.setdefault(series, {}).setdefault(table, {})[row] = value
    return out


def markdown(r: dict) -> str:
    series = list(r["summary"])
    pct = round(100 * r["share"])

    def table(title: str, key: str, rows_of: list[tuple[str, str]], head: str) -> list[str]:
        lines = [title, "", f"| {head} | " + " | ".join(f"{s}, held out | {s}, earlier mean" for s in series) + " |",
                 "|---|" + "---|---|" * len(series)]
        for label, row in rows_of:
            lines.append(f"| {label} | " + " | ".join(f"{r['summary'][s][key][row]['held_out']} | "
                                                      f"{r['summary'][s][key][row]['earlier_mean']}"
                                                      for s in series) + " |")
        return lines + [""]

    first = series[0]
    lines = ["# Where the next change falls, on the real series (`benchmarks/forecast_real_location.py`)", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}. Each window: 3 dated frames -> the next frame; "
             f"GSSIM against the next frame. Every forecast below keeps the last frame except on {pct}% of the "
             "pixels. Only the last window of each series is held out; tamms and change-trend trained on the "
             "earlier ones.", ""]
    lines += table("## Persistence", "persistence", [("last frame", "last frame")], "forecast")
    lines += table(f"## 1. ORACLE location: the {pct}% of pixels where the next frame differs most from the last "
                   "(read from the target), filled with", "oracle",
                   [(k, k) for k in r["summary"][first]["oracle"]], "fill")
    lines += table("## 2a. The location the models can see: ROC AUC of each score against the oracle location",
                   "auc", [(k, k) for k in r["summary"][first]["auc"]], "score (from frames and dates only)")
    lines += table(f"## 2b. ... its top {pct}% filled with the tamms forecast: GSSIM", "seen",
                   [(k, k) for k in r["summary"][first]["seen"]], "location from")
    levels = list(r["summary"][first]["needed_auc"])
    lines += table("## 3. How good a location must be: the oracle ranks plus smooth noise (sigma 4 px) of each "
                   "standard deviation; the AUC of that location", "needed_auc",
                   [(f"noise {k}", k) for k in levels], "location")
    lines += table("... GSSIM, filled with the blurred last frame", "needed_gssim",
                   [(f"noise {k}", k) for k in levels], "location")
    lines += table("... GSSIM, filled with the tamms forecast", "needed_gssim_tamms",
                   [(f"noise {k}", k) for k in levels], "location")
    lines += [f"![{s}](forecast_real_location_{s}.png)" for s in series]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from forecast_real_windows import analysis_arguments, cached_forecasts, scores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    analysis_arguments(ap)
    ap.add_argument("--share", type=float, default=0.2, help="the share of pixels a forecast may change")
    args = ap.parse_args(argv)
    if not 0.0 < args.share < 1.0:
        ap.error(f"--share {args.share}: give a fraction in (0, 1), e.g. 0.2")
    warnings.filterwarnings("ignore")
    from forecast_quality import real_cases

    from tamms.utils import command_line, write_results

    cases = real_cases(args.data, every_window=True)
    if not cases:
        raise SystemExit(f"no real series under {args.data}: give --data, the folder holding them")
    forecasts = cached_forecasts(args.cache, list(FORECASTS), args.samples, len(cases))
    probability = change_trend_probability(cases)
    histories = [c.sequence.rgb().astype(np.float32) for c in cases]
    # the learned location: each window scored by a classifier trained on the other earlier windows (both series)
    earlier = [j for j, c in enumerate(cases) if not c.name.endswith("(held out)")]
    learned = learned_locations([location_features(h, t, p) for h, t, p in zip(histories, forecasts["tamms"],
                                                                             probability)],
                                [true_location(c, args.share) for c in cases],
                                [[j for j in earlier if j != i] for i in range(len(cases))])

    def gssim(pred, target):
        return scores(pred, target)["GSSIM"]

    per_window, located = {}, {}
    for i, c in enumerate(cases):
        departs = np.abs(forecasts["tamms"][i] - histories[i][-1]).mean(0)  # [H, W]
        located_by = {"change-trend probability": probability[i],
                      "tamms forecast departs from the last frame": departs,
                      "history change (last - first frame)": history_change(histories[i]),
                      LEARNED: learned[i]}
        per_window[c.name] = window_rows(c, {m: p[i] for m, p in forecasts.items()}, located_by, args.share, gssim,
                                         seed=i)
        for k, v in located_by.items():
            located.setdefault(k, []).append(v)
        print(c.name, flush=True)
    result = {"command": command_line("forecast_real_location.py", argv),
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "share": args.share,
              "samples": args.samples, "per_window": per_window, "summary": series_summary(cases, per_window)}
    args.out.mkdir(parents=True, exist_ok=True)
    for series in result["summary"]:
        (args.out / f"forecast_real_location_{series}.png").write_bytes(
            locations_grid(cases, series, per_window, located, args.share))
    write_results(args.out, "forecast_real_location", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

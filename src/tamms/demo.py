"""`tamms demo`: the whole toolkit on the embedded default, as one HTML report.

Steps (each shown with a progress bar):
1. generate a few held-out sequences of the synthetic world (exact truth: future frame, change masks);
2. load the shipped weights (or, with `train=True`, retrain small models from scratch first);
3. per sequence: describe the changes, forecast the future date (K samples -> mean + spread) with the
   TAMMs forecaster and with persistence, detect the changes between frames and into the future;
4. real series found under `data_dir` (only when one is given: sequence folders, LEVIR-CD pairs) get the
   same treatment without the synthetic truth;
5. score everything against the truth and against persistence with `tamms.evaluation` (the module
   `tamms evaluate` and the benchmarks use: F1 and IoU pooled over all pixels); write `index.html` +
   `results.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamms.data.sequence import SitsSequence
from tamms.errors import InputError, OutputExistsError
from tamms.report import figures as fig
from tamms.report.html import HtmlReport


@dataclass
class DemoConfig:
    n_sequences: int = 4  # held-out synthetic sequences
    size: int = 64
    frames: int = 4
    seed: int = 0
    samples: int = 4  # forecast samples per sequence (spread map)
    steps: int | None = None  # sampler steps (None: the forecaster weights' own setting)
    beams: int = 1
    detector: str = "default"
    forecaster: str = "tamms"
    real_size: int = 128  # real series are resampled to this size to keep the demo fast
    max_real_series: int = 3
    max_levir_pairs: int = 6
    train: bool = False
    train_scale: float = 0.25  # fraction of the shipped training (steps, minutes, data) used by --train
    weights_dir: Path | None = None  # where --train writes the retrained weights (default OUT/weights)


@dataclass
class DemoResult:
    out_dir: Path
    index_html: Path
    results_json: Path
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def held_out_sequences(cfg: DemoConfig) -> list:
    """`n_sequences` synthetic sequences of the test split, one per kind of event before any repeats."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    world = SyntheticWorldConfig(size=cfg.size, frames=cfg.frames)
    chosen, spare, seen, index = [], [], set(), 0
    while len(chosen) < cfg.n_sequences and (index < 400 or len(chosen) + len(spare) < cfg.n_sequences):
        if split_of(f"syn_{index:06d}") == "test":
            seq = generate_sequence(index, world, seed=cfg.seed)
            category = seq.meta.get("category")
            (spare if category in seen else chosen).append(seq)
            seen.add(category)
        index += 1
    return (chosen + spare)[: cfg.n_sequences]


def find_real_data(data_dir: Path | None, cfg: DemoConfig) -> tuple[list, list]:
    """Sequence folders and LEVIR-CD pairs under `data_dir` (searched one level deep)."""
    if data_dir is None:
        return [], []
    from tamms.data.readers import find_sequence_folders, is_levir_cd, read_levir_cd, read_sequence

    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"--data {root} is not a folder: give the folder that holds your sequence folders")
    series = []
    for folder in find_sequence_folders(root)[: cfg.max_real_series]:
        try:
            seq = read_sequence(folder)
        except Exception as exc:  # noqa: BLE001 - one unreadable folder must not stop the demo
            series.append((folder, exc))
            continue
        if seq.num_frames >= 3:
            series.append((folder, _resample(seq, cfg.real_size)))
    pairs = []  # up to max_levir_pairs labelled pairs of EVERY change-pair folder (LEVIR-CD, OSCD, SZTAKI, ...)
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if is_levir_cd(folder) and (folder / "label").is_dir():
            pairs += held_out_first(read_levir_cd(folder), folder.name)[: cfg.max_levir_pairs]
    return series, pairs


def held_out_first(pairs: list, dataset: str) -> list:
    """Pairs of one folder, those no shipped detector trained on first (recorded test split, or the test names
    of the shipped siamese config's options.holdout), smallest first; each pair's meta names its dataset."""
    from tamms.config import read_mapping
    from tamms.data.datasets import pair_split

    config = Path(__file__).resolve().parent / "configs" / "detect_siamese.yaml"
    holdout = read_mapping(config).get("options", {}).get("holdout", {}).get(dataset, {})
    for pair in pairs:
        pair.meta["dataset"] = dataset
    test = set(holdout.get("test", []))
    return sorted(pairs, key=lambda p: (not (p.name in test or (not holdout and pair_split(p) == "test")),
                                        p.before.shape[-2] * p.before.shape[-1]))  # then the smallest scenes


def _resample(seq, size: int):
    """Area-average a sequence down to about `size` px on its long side (keeps georeferencing consistent)."""
    import torch
    import torch.nn.functional as F
    from dataclasses import replace

    h, w = seq.size
    factor = max(h, w) / size
    if factor <= 1:
        return seq
    nh, nw = int(round(h / factor)), int(round(w / factor))
    frames = F.interpolate(torch.from_numpy(seq.frames), size=(nh, nw), mode="area").numpy()  # [T, C, h, w]
    transform = None
    if seq.transform is not None:
        a, b, c, d, e, f = seq.transform
        transform = (a * w / nw, b, c, d, e * h / nh, f)
    nodata = None
    if seq.nodata_mask is not None:
        nodata = F.interpolate(torch.from_numpy(seq.nodata_mask[:, None].astype(np.float32)), size=(nh, nw),
                               mode="area")[:, 0].numpy() > 0.5  # [T, h, w]
    return replace(seq, frames=frames, transform=transform, nodata_mask=nodata, change_masks=None, landcover=None,
                   meta={**seq.meta, "resampled_from": [h, w]})


# ------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------


def _rgb(x: np.ndarray, rgb_bands) -> np.ndarray:
    return x[list(rgb_bands)] if x.shape[0] >= 3 and rgb_bands is not None else np.repeat(x[:1], 3, axis=0)


MODELS = ("tamms", "persistence")


@dataclass
class Evaluations:
    """The demo's evaluations (tamms.evaluation), filled sequence by sequence, summarised once."""

    forecast_synthetic: dict[str, Any]
    forecast_real: dict[str, Any]
    detection_synthetic: Any
    detection_levir: Any
    detection_real: dict[str, Any] = field(default_factory=dict)  # {pair folder name: ChangeEvaluation}

    @classmethod
    def create(cls, detector) -> "Evaluations":
        from tamms.evaluation import ChangeEvaluation, ForecastEvaluation

        # FID needs one image size and many images: not meaningful for a handful of mixed-size cases
        forecasts = lambda: {m: ForecastEvaluation(detector, fid=False) for m in MODELS}  # noqa: E731
        return cls(forecasts(), forecasts(), ChangeEvaluation(), ChangeEvaluation())


def _result_scores(evaluation) -> dict[str, Any]:
    return evaluation.result().scores if evaluation.per_case else {}


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    index = out_dir / "index.html"
    if index.exists() and not overwrite:
        raise OutputExistsError(f"{index} already exists: choose another --out or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def _train_small_models(cfg: DemoConfig, weights_dir: Path, progress) -> dict[str, Path]:
    """Retrain the describer, forecaster and detector from scratch (the `--train` option)."""
    from tamms.demo_training import train_demo_models

    return train_demo_models(weights_dir, scale=cfg.train_scale, progress=progress)


def run_demo(out_dir: str | Path, data_dir: str | Path | None = None, config: DemoConfig | None = None,
             overwrite: bool = False, progress: bool = True) -> DemoResult:
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tamms.evaluation import caption_evaluation, load_change_detector
    from tamms.pipelines.describe import DescribePipeline
    from tamms.pipelines.detect import DetectPipeline
    from tamms.pipelines.forecast import ForecastPipeline

    cfg = config or DemoConfig()
    out = Path(out_dir)
    _prepare_out(out, overwrite)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        # 1-2. data and models
        seqs = held_out_sequences(cfg)
        series, pairs = find_real_data(Path(data_dir) if data_dir else None, cfg)
        weights: dict[str, Path] = {}
        if cfg.train:
            weights = _train_small_models(cfg, Path(cfg.weights_dir or out / "weights"), bar)
        t = bar.add_task("loading models", total=4)
        describer = DescribePipeline.from_pretrained(weights.get("describer"))
        bar.advance(t)
        # the forecaster keeps the describer it was trained with (the shipped v1, or the one --train retrained)
        forecaster = ForecastPipeline.from_pretrained(str(weights.get("forecast", cfg.forecaster)),
                                                      describer=describer if "describer" in weights else "default")
        bar.advance(t)
        persistence = ForecastPipeline.from_pretrained("persistence")
        bar.advance(t)
        detector = load_change_detector(cfg.detector, weights=weights.get("detector"))
        detect = DetectPipeline(detector)
        bar.advance(t)
        evals = Evaluations.create(detector)

        # 3. synthetic sequences
        records = []
        t = bar.add_task("synthetic sequences", total=len(seqs))
        for seq in seqs:
            records.append(_run_sequence(seq, cfg, describer, forecaster, persistence, detect, evals))
            bar.advance(t)
        cands = {r["id"]: r["description"] for r in records}
        refs = {r["id"]: r["references"] for r in records}
        text = caption_evaluation(cands, refs, meteor=True).scores

        # 4. real data
        real_records = []
        t = bar.add_task("real series", total=len(series) + len(pairs))
        for folder, seq in series:
            if isinstance(seq, Exception):
                real_records.append({"id": Path(folder).name, "error": str(seq)})
            else:
                real_records.append(_run_real_series(seq, Path(folder).name, cfg, describer, forecaster, persistence,
                                                     detect, evals))
            bar.advance(t)
        levir = []
        for pair in pairs:
            res = detect(pair.before, pair.after)
            mask = res.mask[0].numpy()
            from tamms.evaluation import ChangeEvaluation

            dataset = pair.meta.get("dataset", "levir_cd")
            scores = evals.detection_real.setdefault(dataset, ChangeEvaluation()).add(pair.name, mask, pair.mask)
            if "levir" in dataset:
                evals.detection_levir.add(pair.name, mask, pair.mask)
            description, dated = _describe_pair(describer, pair, cfg)
            levir.append({"id": f"{dataset}/{pair.name}", "before": pair.before, "after": pair.after, "pred": mask,
                          "truth": pair.mask, "scores": scores, "description": description, "dated": dated})
            bar.advance(t)

    seconds = time.perf_counter() - start
    summary = _summarise(records, real_records, levir, text, evals, cfg, detector.name, forecaster, seconds)
    results_json = out / "results.json"
    _write_json(results_json, summary, overwrite=True)
    index = out / "index.html"
    _render_report(index, records, real_records, levir, summary, cfg).save(index, overwrite=True)
    return DemoResult(out, index, results_json, seconds, summary)


def _run_sequence(seq, cfg: DemoConfig, describer, forecaster, persistence, detect, evals: Evaluations
                  ) -> dict[str, Any]:
    sid = str(seq.meta.get("id", "sequence"))
    desc = describer([seq], num_beams=cfg.beams)
    fc = forecaster(seq, seq.future_date, num_samples=cfg.samples, num_inference_steps=cfg.steps, seed=cfg.seed)
    pers = persistence(seq, seq.future_date)
    rgb = seq.rgb_bands or (0, 1, 2)
    truth = _rgb(seq.future_frame, rgb)
    last, prev = _rgb(seq.frames[-1], rgb), _rgb(seq.frames[-2], rgb)
    pred = fc.mean[0].numpy()
    pers_img = pers.mean[0].numpy()
    models = {name: evals.forecast_synthetic[name].add(sid, img, truth, last=last, prev=prev,
                                                       true_change=seq.future_change_mask)
              for name, img in (("tamms", pred), ("persistence", pers_img))}
    hist_masks = detect(seq).mask.numpy()  # [T-1, H, W]
    future_mask = detect(last, pred).mask[0].numpy()
    detection = (evals.detection_synthetic.add(sid, hist_masks, seq.change_masks)
                 if seq.change_masks is not None else None)
    return {
        "id": sid, "dates": [d.isoformat() for d in seq.dates], "future_date": seq.future_date.isoformat(),
        "gap_days": float((seq.future_date - seq.dates[-1]).days), "category": seq.meta.get("category"),
        "scene": seq.scene, "description": desc.texts[0], "references": list(seq.captions),
        "history": [_rgb(f, rgb) for f in seq.frames], "truth": truth, "forecast": pred,
        "samples": fc.images[0].numpy(), "spread": None if fc.spread is None else fc.spread[0].numpy(),
        "persistence": pers_img, "history_masks_pred": hist_masks, "history_masks_true": seq.change_masks,
        "future_mask_pred": future_mask, "future_mask_true": seq.future_change_mask,
        "metrics": models, "detection": detection,
    }


PLACEHOLDER_DATES = (dt.date(2015, 6, 1), dt.date(2018, 6, 1))  # for pairs whose data gives no dates


def _describe_pair(describer, pair, cfg: DemoConfig) -> tuple[str, bool]:
    """The describer's sentence for a real pair (RGB view, its dates or placeholder dates, said so)."""
    rgb = list(pair.rgb_bands or (0, 1, 2))
    dates = list(pair.dates) if pair.dates is not None else list(PLACEHOLDER_DATES)
    seq = SitsSequence(frames=np.stack([pair.before[rgb], pair.after[rgb]]), dates=dates)
    return describer([seq], num_beams=cfg.beams).texts[0], pair.dates is not None


def _run_real_series(seq, name: str, cfg: DemoConfig, describer, forecaster, persistence, detect,
                     evals: Evaluations) -> dict[str, Any]:
    """Forecast the last frame from the earlier ones (the truth we have), describe the whole series."""
    history = seq.select(range(seq.num_frames - 1))
    target_date = seq.dates[-1]
    rgb = seq.rgb_bands or (0, 1, 2)
    desc = describer([seq], num_beams=cfg.beams)
    fc = forecaster(history, target_date, num_samples=max(2, cfg.samples // 2), num_inference_steps=cfg.steps,
                    seed=cfg.seed)
    pers = persistence(history, target_date)
    truth = _rgb(seq.frames[-1], rgb)
    last, prev = _rgb(history.frames[-1], rgb), _rgb(history.frames[-2], rgb)
    pred, pers_img = fc.mean[0].numpy(), pers.mean[0].numpy()
    true_change = detect(last, truth).mask[0].numpy()  # no exact truth here: the detector on the real pair
    models = {model: evals.forecast_real[model].add(name, img, truth, last=last, prev=prev, true_change=true_change)
              for model, img in (("tamms", pred), ("persistence", pers_img))}
    return {
        "id": name, "dates": [d.isoformat() for d in seq.dates], "description": desc.texts[0],
        "history": [_rgb(f, rgb) for f in history.frames], "truth": truth, "forecast": pred,
        "spread": None if fc.spread is None else fc.spread[0].numpy(), "persistence": pers_img,
        "future_mask_pred": detect(last, pred).mask[0].numpy(), "future_mask_true": true_change,
        "metrics": models, "resampled_from": seq.meta.get("resampled_from"), "size": list(seq.size),
    }


def _summarise(records, real_records, levir, text, evals: Evaluations, cfg: DemoConfig, detector_name: str,
               forecaster, seconds: float) -> dict[str, Any]:
    from tamms.metrics.image import lpips_available

    lpips_ok, lpips_reason = lpips_available()

    return {
        "seconds": seconds,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "settings": {
            "forecaster": forecaster.model.name, "samples": cfg.samples,
            "sampler_steps": cfg.steps or getattr(forecaster.model, "default_steps", None),
            "tcs_detector": detector_name, "ssim": "Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1",
            "gssim": "Sat-JEPA-Diff: Sobel magnitude of grey, min-max normalised, SSIM, mean over scales 1, 0.5, 0.25",
            "lpips": "AlexNet v0.1" if lpips_ok else lpips_reason,
            "captions": "COCO caption evaluation definitions (BLEU corpus level, ROUGE-L beta 1.2, CIDEr-D sigma 6)",
            "pooling": "F1 and IoU (future-change F1 included) from TP/FP/FN summed over all pixels of all "
                       "sequences; per-sequence means are named *_per_case_mean",
        },
        "description": text,
        "forecast_synthetic": {m: _result_scores(evals.forecast_synthetic[m]) for m in MODELS},
        "forecast_real": {m: _result_scores(evals.forecast_real[m]) for m in MODELS},
        "detection_synthetic": _result_scores(evals.detection_synthetic),
        "detection_levir": _result_scores(evals.detection_levir),
        "detection_real": {d: _result_scores(e) for d, e in evals.detection_real.items()},
        "sequences": [{k: r[k] for k in ("id", "dates", "future_date", "gap_days", "category", "description",
                                          "references", "metrics", "detection") if k in r} for r in records],
        "real_series": [{k: r[k] for k in ("id", "dates", "description", "metrics", "error") if k in r}
                        for r in real_records],
        "levir_pairs": [{"id": p["id"], **p["scores"], "description": p["description"],
                         "placeholder_dates": not p["dated"]} for p in levir],
    }


def _write_json(path: Path, data: dict[str, Any], overwrite: bool) -> None:
    from tamms.utils import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, default=float), overwrite=overwrite)


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------

_FORECAST_COLS = ["PSNR", "SSIM", "GSSIM", "LPIPS", "TCS", "SPS", "ACS", "future_change_F1",
                  "future_change_F1_per_case_mean"]


def _render_report(index: Path, records, real_records, levir, summary, cfg: DemoConfig) -> HtmlReport:
    rep = HtmlReport("tamms demo — describe, forecast, detect, evaluate")
    s = summary["settings"]
    rep.paragraph(
        f"{len(records)} held-out sequences of the synthetic world ({cfg.frames} frames, {cfg.size}x{cfg.size} px, "
        f"seed {cfg.seed}), {len(real_records)} real series and {len(levir)} LEVIR-CD pairs; "
        f"run took {summary['seconds']:.0f} s on this CPU. Forecaster: {s['forecaster']} "
        f"({s['samples']} samples, {s['sampler_steps']} sampler steps); change detector (also inside TCS): "
        f"{s['tcs_detector']}."
    )
    rep.paragraph(
        "The synthetic-world numbers measure small models trained on this machine against exact ground truth; "
        "they are not comparable with the papers' numbers, which come from GPU-sized models on other data "
        "(see docs/reproduction.md).", css_class="note")

    # headline tables
    rep.heading("Scores", anchor="scores")
    t = summary["description"]
    rep.table(["captions", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "mean length", "length gap"],
              [["describer vs 5 references", t.get("BLEU-4"), t.get("METEOR"), t.get("ROUGE-L"), t.get("CIDEr-D"),
                t.get("mean_length"), t.get("length_gap")]],
              caption="Change descriptions on the held-out synthetic sequences (COCO caption evaluation definitions)")
    for key, label in (("forecast_synthetic", "synthetic (exact truth)"), ("forecast_real", "real series (last frame)")):
        rows = [[m] + [summary[key][m].get(c) for c in _FORECAST_COLS] for m in summary[key] if summary[key][m]]
        if rows:
            rep.table(["forecaster"] + _FORECAST_COLS, rows,
                      caption=f"Forecasts, {label}; TCS detector: {s['tcs_detector']}; LPIPS: {s['lpips']}; "
                              "future-change F1 pooled over all pixels (the per-case mean gives a sequence "
                              "without change a free 1)")
    det_rows = []
    for key, label in (("detection_synthetic", "synthetic, between consecutive frames"),
                       ("detection_levir", "LEVIR-CD pairs (building change labels)")):
        if summary[key]:
            det_rows.append([label] + [summary[key].get(c) for c in ("precision", "recall", "F1", "IoU", "kappa")])
    for dataset, scores in summary.get("detection_real", {}).items():
        if "levir" not in dataset and scores:
            det_rows.append([f"{dataset} pairs (whole scenes)"] + [scores.get(c) for c in
                                                                 ("precision", "recall", "F1", "IoU", "kappa")])
    if det_rows:
        rep.table(["change detection (" + s["tcs_detector"] + ")", "precision", "recall", "F1", "IoU", "kappa"],
                  det_rows, caption="Change detection against the true masks (pooled over all pixels)")
    _plots(rep, records)

    # per sequence
    rep.heading("Synthetic sequences", anchor="synthetic")
    for r in records:
        _sequence_section(rep, r)
    if real_records:
        rep.heading("Real series", anchor="real")
        for r in real_records:
            if "error" in r:
                rep.paragraph(f"{r['id']}: could not be read: {r['error']}", css_class="note")
            else:
                _sequence_section(rep, r, real=True)
    if levir:
        rep.heading("Real change pairs (LEVIR-CD, OSCD, SZTAKI, ...)", anchor="levir")
        for p in levir:
            after = fig.to_display_rgb(p["after"])
            imgs = [fig.to_display_rgb(p["before"]), after, fig.change_overlay(after, p["truth"]),
                    fig.change_overlay(after, p["pred"])]
            said = f"described: \u201c{p['description']}\u201d" + ("" if p["dated"] else
                                                                      " (no dates in the data: placeholder dates)")
            rep.image(fig.labelled_strip(imgs, ["before", "after", "true change", "detected"]),
                      f"{p['id']}: F1 {p['scores']['F1']:.3f}, IoU {p['scores']['IoU']:.3f}; {said}")
    return rep


def _sequence_section(rep: HtmlReport, r: dict[str, Any], real: bool = False) -> None:
    rep.heading(f"{r['id']}" + (f" — {r['category']}" if r.get("category") else ""), level=3)
    dates = r["dates"][: len(r["history"])]
    tiles = [fig.to_display_rgb(h, stretch=real) for h in r["history"]]
    labels = list(dates)
    rep.image(fig.labelled_strip(tiles, labels), "history with dates")
    rep.text_box("description:", r["description"], r.get("references", []))
    target_date = r.get("future_date") or r["dates"][-1]
    imgs = [fig.to_display_rgb(r["truth"], stretch=real), fig.to_display_rgb(r["forecast"], stretch=real),
            fig.to_display_rgb(r["persistence"], stretch=real)]
    labels = [f"truth {target_date}", "TAMMs forecast (mean)", "persistence"]
    if r.get("spread") is not None:
        imgs.append(fig.heatmap(r["spread"]))
        labels.append("spread (std over samples)")
    m = r["metrics"]
    rep.image(fig.labelled_strip(imgs, labels),
              f"forecast for {target_date}: TAMMs PSNR {m['tamms']['PSNR']:.2f} / TCS {m['tamms']['TCS']:.3f}; "
              f"persistence PSNR {m['persistence']['PSNR']:.2f} / TCS {m['persistence']['TCS']:.3f}")
    last = fig.to_display_rgb(r["history"][-1], stretch=real)
    truth_img = fig.to_display_rgb(r["truth"], stretch=real)
    over = [fig.change_overlay(truth_img, r["future_mask_true"]),
            fig.change_overlay(fig.to_display_rgb(r["forecast"], stretch=real), r["future_mask_pred"])]
    over_labels = ["true future change" if not real else "detected real change", "change in the forecast"]
    if r.get("history_masks_pred") is not None:
        over = [fig.change_overlay(last, r["history_masks_true"][-1]), fig.change_overlay(last, r["history_masks_pred"][-1])] + over
        over_labels = ["true last change", "detected last change"] + over_labels
    rep.image(fig.labelled_strip(over, over_labels), "changes (tinted)")


def _plots(rep: HtmlReport, records) -> None:
    if not records:
        return
    gaps = [r["gap_days"] for r in records]
    for metric in ("PSNR", "TCS"):
        series = {m: (gaps, [r["metrics"][m][metric] for r in records]) for m in ("tamms", "persistence")}
        rep.image(fig.line_plot(series, "days from the last frame to the forecast date", metric,
                                title=f"{metric} vs time gap"), f"{metric} against the forecast horizon")
    comps = ["SPS", "ACS", "TCS"]
    values = {m: [float(np.mean([r["metrics"][m][c] for r in records])) for c in comps] for m in ("tamms", "persistence")}
    rep.image(fig.grouped_bars(comps, values, "score", title="TCS components (mean)"), "TCS = SPS x ACS per sequence, then mean")

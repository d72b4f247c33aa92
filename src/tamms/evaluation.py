"""One place that turns predictions and truths into the scores `tamms evaluate`, the demo and the benchmarks show.

Three evaluations, each fed one case at a time and summarised once (definitions: docs/metrics.md):

- `ForecastEvaluation`: PSNR, SSIM, GSSIM, L1, MSE (mean over cases), LPIPS (when its weight file is in
  the torch hub cache), FID / FID-64 over the set (when theirs is, and there are >= 2 cases), SPS, ACS, TCS
  (per case, then the mean: TCS is defined per sequence) and the future-change F1.
- `ChangeEvaluation`: precision, recall, F1, IoU, OA, kappa of binary change masks; with `num_classes`
  the SECOND semantic scores (mIoU, SeK, Fscd, ...) too.
- `caption_evaluation`: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (COCO caption evaluation), caption lengths.

Pooled counts are the headline of every F1 and IoU: TP, FP, FN (and TN) are summed over all pixels of all
cases, then the score is computed once (`F1`, `IoU`, `future_change_F1`). Per-case means are given only
under names that say so (`F1_per_case_mean`, `future_change_F1_per_case_mean`): a case without any true
or predicted change scores a free 1 on its own, which pooling does not give.

TCS and the future-change F1 need a change detector `C`; it is an argument (`detector=`), never chosen
here. `load_change_detector(name)` loads one by name ("default" is the best detector trained here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from tamms.errors import InputError
from tamms.metrics import change as change_metrics
from tamms.metrics import image as image_metrics
from tamms.metrics import temporal as temporal_metrics

IMAGE_KEYS = ("PSNR", "SSIM", "GSSIM", "L1", "MSE", "LPIPS")
TEMPORAL_KEYS = ("SPS", "ACS", "TCS")
FORECAST_KEYS = (*IMAGE_KEYS, "FID", "FID-64", *TEMPORAL_KEYS, "future_change_F1", "future_change_F1_per_case_mean")
BINARY_KEYS = ("precision", "recall", "F1", "IoU", "OA", "kappa")


@dataclass
class EvaluationResult:
    """Scores of a whole evaluation.

    scores: the headline numbers (pooled where counts exist); per_case: {case name: its own scores};
    counts: the pooled confusion counts behind the F1/IoU scores; settings: how the numbers were made
    (detector name, bands, metric settings); notes: why a score is missing (None)."""

    task: str
    scores: dict[str, Any]
    per_case: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_change_detector(name: str = "default", weights: str | Path | None = None, **options: Any):
    """A change detector by name ("default": the best trained here; "siamese", "unichange", "cva") or
    from a weights folder; what the CLI, the demo and the benchmarks pass to the evaluations below."""
    from tamms.registry import load_detector

    return load_detector(name, weights=weights, **options)


def _image(x: Any, what: str) -> Tensor:
    """`[1, C, H, W]` float from a `[C, H, W]` array or tensor (or `[1, C, H, W]`)."""
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if t.ndim == 3:
        t = t.unsqueeze(0)  # [C, H, W] -> [1, C, H, W]
    if t.ndim != 4 or t.shape[0] != 1:
        raise InputError(f"{what} must be one image [C, H, W], got shape {tuple(t.shape)}")
    return t.float()


def _mask(x: Any, what: str) -> Tensor:
    """`[1, H, W]` bool from a `[H, W]` (or `[1, H, W]`) mask."""
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if t.ndim == 2:
        t = t.unsqueeze(0)  # [H, W] -> [1, H, W]
    if t.ndim != 3 or t.shape[0] != 1:
        raise InputError(f"{what} must be one mask [H, W], got shape {tuple(t.shape)}")
    return t.bool()


# ------------------------------------------------------------------------------------------------ forecasts
class ForecastEvaluation:
    """Scores of forecasts, one case at a time.

        evaluation = ForecastEvaluation(detector=load_change_detector())
        evaluation.add("seq_1", pred, target, last=I_t, prev=I_t_minus_1, true_change=mask)
        result = evaluation.result()   # EvaluationResult

    Images are `[C, H, W]` in [0, 1] on one grid. With `last` (I_t) the future-change F1 is computed against
    `true_change` `[H, W]` when given (exact truth, e.g. the synthetic world) else against C(I_t, target);
    with `prev` (I_{t-1}) too, SPS, ACS and TCS. `lpips`/`fid`: None = when their weight files exist."""

    def __init__(self, detector=None, rgb_bands: Sequence[int] | None = (0, 1, 2), lpips: bool | None = None,
                 fid: bool | None = None):
        self.detector = None if detector is None else temporal_metrics.check_detector(detector)
        self.rgb_bands = tuple(rgb_bands) if rgb_bands is not None else (0, 1, 2)
        lpips_ok, self._lpips_reason = image_metrics.lpips_available()
        self.use_lpips = lpips_ok if lpips is None else lpips
        from tamms.metrics._fid import fid_available

        fid_ok, self._fid_reason = fid_available()
        self.use_fid = fid_ok if fid is None else fid
        self.per_case: dict[str, dict[str, Any]] = {}
        self._real: list[Tensor] = []
        self._fake: list[Tensor] = []

    def add(self, name: str, pred: Any, target: Any, last: Any | None = None, prev: Any | None = None,
            true_change: Any | None = None) -> dict[str, Any]:
        """Score one forecast; returns its row (also kept in `per_case[name]`)."""
        name = str(name)
        if name in self.per_case:
            raise InputError(f"case {name!r} was already added: give every case its own name")
        p, t = _image(pred, f"{name}: prediction"), _image(target, f"{name}: target")
        scores = image_metrics.image_scores(p, t, self.rgb_bands, perceptual=self.use_lpips)
        row: dict[str, Any] = {k: scores[k] for k in IMAGE_KEYS if k != "LPIPS" or self.use_lpips}
        if self.use_fid:
            self._real.append(t)
            self._fake.append(p)
        if prev is not None and last is None:
            raise InputError(f"{name}: TCS needs the last history frame (last) as well as prev")
        if last is not None:
            if self.detector is None:
                raise InputError("TCS and the future-change F1 need a change detector: ForecastEvaluation("
                                 "detector=tamms.evaluation.load_change_detector())")
            last_t = _image(last, f"{name}: last history frame")
            if prev is not None:
                out = temporal_metrics.tcs(_image(prev, f"{name}: previous history frame"), last_t, p, self.detector)
                row.update({k: out[k] for k in TEMPORAL_KEYS})
            if true_change is not None:
                f1 = temporal_metrics.future_change_f1(last_t, p, true_mask=_mask(true_change, f"{name}: true change"),
                                                       detector=self.detector)
            else:
                f1 = temporal_metrics.future_change_f1(last_t, p, target=t, detector=self.detector)
            row.update({"future_change_F1": f1["future_change_F1"], "tp": f1["tp"], "fp": f1["fp"], "fn": f1["fn"],
                        "future_change_truth": f1["truth"]})
        self.per_case[name] = row
        return row

    def result(self) -> EvaluationResult:
        rows = list(self.per_case.values())
        if not rows:
            raise InputError("no forecasts were evaluated: add at least one case")
        scores: dict[str, Any] = {}
        notes: list[str] = []
        for key in IMAGE_KEYS:
            values = [r[key] for r in rows if key in r]
            scores[key] = float(np.mean(values)) if values else None
        if not self.use_lpips:
            notes.append(f"LPIPS: {self._lpips_reason or 'not requested'}")
        scores["FID"] = scores["FID-64"] = None
        if self.use_fid and len(self._real) >= 2:
            from tamms.metrics._fid import fid

            real, fake = torch.cat(self._real), torch.cat(self._fake)
            scores["FID"] = fid(real, fake, 2048, self.rgb_bands)
            scores["FID-64"] = fid(real, fake, 64, self.rgb_bands)
        else:
            notes.append(f"FID: {self._fid_reason or 'not requested'}" if not self.use_fid
                         else "FID: needs at least 2 forecasts")
        temporal_rows = [r for r in rows if "TCS" in r]
        for key in TEMPORAL_KEYS:  # defined per sequence, reported as the mean over sequences
            scores[key] = float(np.mean([r[key] for r in temporal_rows])) if temporal_rows else None
        if not temporal_rows:
            notes.append("TCS: needs the last two history frames (prev and last) of each forecast")
        f1_rows = [r for r in rows if "future_change_F1" in r]
        counts: dict[str, int] = {}
        if f1_rows:
            counts = {k: int(sum(r[k] for r in f1_rows)) for k in ("tp", "fp", "fn")}
            scores["future_change_F1"] = temporal_metrics.f1_from_counts(**counts)  # pooled over all pixels
            scores["future_change_F1_per_case_mean"] = float(np.mean([r["future_change_F1"] for r in f1_rows]))
        else:
            scores["future_change_F1"] = scores["future_change_F1_per_case_mean"] = None
            notes.append("future-change F1: needs the last history frame (last) of each forecast")
        settings = {"n": len(rows), "rgb_bands": list(self.rgb_bands),
                    "detector": None if self.detector is None else self.detector.name,
                    "ssim": image_metrics.SSIM_SETTINGS, "gssim_scales": list(image_metrics.GSSIM_SCALES),
                    "lpips": "AlexNet v0.1" if self.use_lpips else self._lpips_reason or "not requested",
                    "future_change_F1": "pooled: TP, FP, FN summed over all pixels of all cases"}
        return EvaluationResult("forecasts", scores, dict(self.per_case), counts, settings, notes)


def forecast_scores(cases: Sequence[Mapping[str, Any]], detector=None, rgb_bands: Sequence[int] | None = (0, 1, 2),
                    lpips: bool | None = None, fid: bool | None = None) -> EvaluationResult:
    """`ForecastEvaluation` over a list of cases, each a mapping with the arguments of `add`
    (name, pred, target, and optionally last, prev, true_change)."""
    evaluation = ForecastEvaluation(detector, rgb_bands, lpips=lpips, fid=fid)
    for case in cases:
        evaluation.add(**case)
    return evaluation.result()


# -------------------------------------------------------------------------------------------------- changes
class ChangeEvaluation:
    """Scores of change maps, one case (image pair) at a time; binary scores from pooled counts.

    add(name, pred, target, valid=None, semantic_pred=None, semantic_target=None): `pred`, `target` are
    `[H, W]` (or `[B, H, W]`) maps, value > 0 = change; `valid` a bool mask of the pixels to score (e.g.
    outside nodata). With `num_classes`, the SECOND semantic scores are computed from `semantic_pred` /
    `semantic_target` (class ids 0..K-1, 0 = no change; the maps of both dates may be stacked on the first
    axis), or from `pred` / `target` themselves when these are not given."""

    def __init__(self, num_classes: int | None = None):
        if num_classes is not None and num_classes < 2:
            raise InputError(f"num_classes must be at least 2 (0 = no change plus one class), got {num_classes}")
        self.num_classes = num_classes
        self.per_case: dict[str, dict[str, Any]] = {}
        self.counts = np.zeros(4, dtype=np.int64)  # TP, FP, FN, TN
        self.confusion = np.zeros((num_classes, num_classes)) if num_classes else None

    def add(self, name: str, pred: Any, target: Any, valid: Any | None = None, semantic_pred: Any | None = None,
            semantic_target: Any | None = None) -> dict[str, Any]:
        name = str(name)
        if name in self.per_case:
            raise InputError(f"case {name!r} was already added: give every case its own name")
        p, t = torch.as_tensor(np.asarray(pred)), torch.as_tensor(np.asarray(target))
        if p.shape != t.shape:
            raise InputError(f"{name}: prediction shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}; "
                             "predict on the target grid")
        keep = None if valid is None else torch.as_tensor(np.asarray(valid)).bool()
        pick = (lambda x: x) if keep is None else (lambda x: x[keep])  # noqa: E731
        c = np.array(change_metrics.binary_confusion(pick(p > 0), pick(t > 0)), dtype=np.int64)
        self.counts += c
        row: dict[str, Any] = change_metrics.binary_scores_from_counts(*map(int, c))
        if self.confusion is not None:
            sp = p if semantic_pred is None else torch.as_tensor(np.asarray(semantic_pred))
            st = t if semantic_target is None else torch.as_tensor(np.asarray(semantic_target))
            if semantic_pred is not None and keep is not None and sp.shape != keep.shape:
                raise InputError(f"{name}: valid mask shape {tuple(keep.shape)} does not fit the semantic maps "
                                 f"{tuple(sp.shape)}")
            self.confusion += change_metrics.semantic_confusion(pick(sp), pick(st), self.num_classes)
        self.per_case[name] = row
        return row

    def result(self) -> EvaluationResult:
        if not self.per_case:
            raise InputError("no change maps were evaluated: add at least one case")
        tp, fp, fn, tn = map(int, self.counts)
        scores: dict[str, Any] = change_metrics.binary_scores_from_counts(tp, fp, fn, tn)
        rows = list(self.per_case.values())
        scores["F1_per_case_mean"] = float(np.mean([r["F1"] for r in rows]))
        scores["IoU_per_case_mean"] = float(np.mean([r["IoU"] for r in rows]))
        if self.confusion is not None:
            semantic = change_metrics.semantic_scores_from_confusion(self.confusion)
            scores.update({f"SCD {k}": v for k, v in semantic.items()})
        settings = {"n": len(rows), "num_classes": self.num_classes, "change": "value > 0",
                    "pooling": "confusion counts summed over all pixels of all cases",
                    "semantic_definition": "SECOND (Yang et al. 2021)" if self.num_classes else None}
        return EvaluationResult("changes", scores, dict(self.per_case), {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
                                settings)


def change_scores(pred: Any, target: Any, valid: Any | None = None, num_classes: int | None = None,
                  semantic_pred: Any | None = None, semantic_target: Any | None = None) -> dict[str, Any]:
    """The pooled scores of one set of change maps `[B, H, W]` (a one-case `ChangeEvaluation`)."""
    evaluation = ChangeEvaluation(num_classes)
    evaluation.add("all", pred, target, valid, semantic_pred, semantic_target)
    scores = evaluation.result().scores
    return {k: v for k, v in scores.items() if not k.endswith("_per_case_mean")}


# ------------------------------------------------------------------------------------------------- captions
def caption_evaluation(candidates: Mapping[Any, str], references: Mapping[Any, Sequence[str]], meteor: bool = True,
                       meteor_jar=None, use_java_tokenizer: bool | None = None) -> EvaluationResult:
    """BLEU-1..4, METEOR (None with the reason when Java is missing), ROUGE-L, CIDEr-D, mean_length and
    length_gap of {id: candidate} against {id: [references]} (corpus level, COCO caption evaluation)."""
    from tamms.metrics.text import caption_scores

    scores = caption_scores(candidates, references, meteor=meteor, use_java_tokenizer=use_java_tokenizer,
                            meteor_jar=meteor_jar, return_info=True)
    info = scores.pop("info")
    notes = [] if scores["METEOR"] is not None else [f"METEOR: {info['METEOR']}"]
    return EvaluationResult("captions", scores, settings=info, notes=notes)


__all__ = ["EvaluationResult", "ForecastEvaluation", "ChangeEvaluation", "forecast_scores", "change_scores",
           "caption_evaluation", "load_change_detector", "FORECAST_KEYS", "BINARY_KEYS", "IMAGE_KEYS"]

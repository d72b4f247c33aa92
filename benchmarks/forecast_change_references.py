"""Mask-level reference rows for future-change F1 (issue 15), on the cases of `forecast_quality.py`.

Future-change F1 scores the change a forecast implies, C(last frame, forecast), against the true future
change. These rows put the forecasters' numbers in context, with the same detector C:
- "repeat the last detected change": C(previous frame, last frame) taken as the future change (no forecast);
- simple trend extrapolations of the detected changes, from the frames alone: the union of the last two detected
  changes; the last one dilated by 1 or 2 px (a front that advances); the last one shifted by the motion of its
  centroid between the last two detected changes;
- "oracle: the last TRUE change mask" (ground truth of the history, which no user has);
- "oracle": C(last frame, true future frame), what this detector allows when the forecast is perfect.
Synthetic test split (the exact future change mask as truth), counts pooled over all pixels of all cases.

    OMP_NUM_THREADS=1 python benchmarks/forecast_change_references.py [--detector default]

Writes benchmarks/results/forecast_change_references.{json,md}; the forecasters' rows are in
forecast_quality.md (same cases, same detectors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_quality import RESULTS, synthetic_cases  # noqa: E402  (the same cases)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-synthetic", type=int, default=96)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--detector", default="siamese")  # the C of forecast_quality.py
    args = ap.parse_args(argv)

    from tamms.evaluation import ChangeEvaluation, load_change_detector

    cases = synthetic_cases(args.pool, args.max_synthetic)
    rows: dict[str, dict[str, dict]] = {}
    for det_name in (args.detector, "cva"):
        detector = load_change_detector(det_name)
        labels = ["repeat the last detected change", "union of the last two detected changes",
                  "the last detected change dilated by 1 px", "the last detected change dilated by 2 px",
                  "the last detected change shifted by its centroid's motion",
                  "oracle: the last TRUE change mask", "oracle: C(last frame, true future frame)"]
        evals = {label: ChangeEvaluation() for label in labels}
        for c in cases:
            frames = torch.from_numpy(np.ascontiguousarray(c.sequence.rgb()))  # [T, 3, H, W]
            truth = torch.from_numpy(c.true_change.astype(np.uint8))
            before = detector.detect(frames[-3][None], frames[-2][None]).mask[0].numpy().astype(bool)
            last = detector.detect(frames[-2][None], frames[-1][None]).mask[0].numpy().astype(bool)
            perfect = detector.detect(frames[-1][None], torch.from_numpy(c.target)[None]).mask[0]
            shifted = last
            if before.any() and last.any():
                motion = np.subtract(ndimage.center_of_mass(last), ndimage.center_of_mass(before))
                shifted = ndimage.shift(last.astype(np.float32), motion, order=0) > 0.5
            masks = [last, before | last, ndimage.binary_dilation(last, iterations=1),
                     ndimage.binary_dilation(last, iterations=2), shifted,
                     np.asarray(c.sequence.change_masks[-1]).astype(bool), perfect]
            for label, mask in zip(labels, masks):
                evals[label].add(c.name, torch.as_tensor(np.asarray(mask, dtype=np.uint8)), truth)
        name = getattr(detector, "name", det_name)
        rows[name] = {label: e.result().scores for label, e in evals.items()}
        for label, scores in rows[name].items():
            print(f"{name:10s} {label:42s} F1 {scores['F1']:.4f} (per-case mean {scores['F1_per_case_mean']:.4f})")

    from tamms.utils import command_line

    command = command_line("forecast_change_references.py", argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["# Future-change F1: mask-level reference rows (synthetic test split)", "",
             f"Command: `{command.strip()}`. {len(cases)} test sequences (the cases of forecast_quality.py); truth: the "
             "exact future change mask; F1 pooled over all pixels (TP, FP, FN summed). The forecasters' rows, with "
             "the same detectors, are in forecast_quality.md.", "",
             "| detector C | row | F1 (pooled) | IoU | precision | recall | F1 per-case mean |",
             "|---|---|---|---|---|---|---|"]
    for det, per in rows.items():
        for label, s in per.items():
            lines.append(f"| {det} | {label} | {s['F1']:.4f} | {s['IoU']:.4f} | {s['precision']:.4f} | "
                         f"{s['recall']:.4f} | {s['F1_per_case_mean']:.4f} |")
    from tamms.utils import write_results

    result = json.loads(json.dumps({"command": command.strip(), "cases": len(cases), "rows": rows}, default=float))
    write_results(RESULTS, "forecast_change_references", result, "\n".join(lines))


if __name__ == "__main__":
    main()

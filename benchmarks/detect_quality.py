"""Change-detection quality and speed of the shipped detectors (cva, siamese, siamese-real, unichange), one table.

- Held-out synthetic split: the "test" split sequences of the synthetic world (never trained on), every
  consecutive pair plus last frame -> future frame, 64x64; ground truth = land cover differs (binary) and the
  land-cover classes (semantic, SECOND style: 0 = no change).
- LEVIR-CD: the 4 `test_*` tiles of ../shared/data/levir_cd (256x256; the 2 `train_*` tiles were used for
  training); building change. UniChange is asked for "the changed building areas" there.
- Speed: wall time to detect one 256x256 pair (median of 5 after a warm-up), one thread.

Scores are dataset-level (confusion counts summed over all pixels of the split; tamms.evaluation), fractions
not percent.

    OMP_NUM_THREADS=1 python benchmarks/detect_quality.py [--sequences 40] [--out benchmarks/results] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def binary_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pooled binary scores of change masks `[B, H, W]` (tamms.evaluation)."""
    from tamms.evaluation import change_scores

    return change_scores(pred, target)


def semantic_scores(pred_before, pred_after, true_before, true_after, num_classes: int) -> dict[str, float]:
    """SECOND style: maps of both dates (0 = no change, k + 1 = class k where changed) stacked on the batch axis."""
    from tamms.evaluation import change_scores

    pred, target = np.concatenate([pred_before, pred_after]), np.concatenate([true_before, true_after])
    scores = change_scores(pred, target, num_classes=num_classes)
    return {k[len("SCD "):]: v for k, v in scores.items() if k.startswith("SCD ")}


def synthetic_test_pairs(n_sequences: int):
    """Consecutive-frame pairs (and last -> future frame) of the first `n_sequences` test-split sequences."""
    from tamms.data.datasets import SitsPairDataset, sequence_split
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    config, sequences, index = SyntheticWorldConfig(size=64, frames=4), [], 0
    while len(sequences) < n_sequences:
        if split_of(f"syn_{index:06d}") == "test":  # the world's id format, checked below
            sequences.append(generate_sequence(index, config, seed=0))
            assert sequence_split(sequences[-1]) == "test", sequences[-1].meta["id"]
        index += 1
    pairs = SitsPairDataset(sequences, future=True, random_crop=False)
    return [{"before": s["image"][0].numpy(), "after": s["image"][1].numpy(), "change": s["mask"].numpy(),
             "lc_before": s["landcover"][0].numpy(), "lc_after": s["landcover"][1].numpy(), "name": s["name"]}
            for s in (pairs[i] for i in range(len(pairs)))]


def levir_test_pairs(folder: Path):
    from tamms.data.datasets import pair_split
    from tamms.data.readers import read_levir_cd

    return [{"before": p.before, "after": p.after, "change": p.mask.astype(np.uint8), "name": p.name}
            for p in read_levir_cd(folder) if pair_split(p) == "test"]


def run_detector(det, pairs, categories=None, semantic=False, batch=16):
    """Masks (and semantic maps) for a list of pairs, batched."""
    masks, before, after, responses = [], [], [], []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        a = torch.from_numpy(np.stack([p["before"] for p in chunk]))
        b = torch.from_numpy(np.stack([p["after"] for p in chunk]))
        kwargs = {}
        if categories is not None or semantic:
            kwargs = {"categories": categories, "semantic": semantic}
        res = det.detect(a, b, **kwargs)
        masks.append(res.mask.numpy())
        if res.semantic_before is not None:
            before.append(res.semantic_before.numpy())
            after.append(res.semantic_after.numpy())
        responses += list(getattr(det, "last_response_ok", []) or [])
    out = {"mask": np.concatenate(masks)}
    if before:
        out["semantic_before"], out["semantic_after"] = np.concatenate(before), np.concatenate(after)
        out["class_names"] = res.class_names
    out["answer_ok"] = responses  # UniChange: the LM wrote an answer with the right special tokens
    return out


def time_detector(det, size=256, repeats=5, **kwargs) -> float:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)
    det.detect(a, b, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        det.detect(a, b, **kwargs)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=40, help="test-split synthetic sequences")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--data", type=Path, default=SHARED, help="real data folder holding levir_cd/ "
                        "(default ../shared/data beside the checkout)")
    args = parser.parse_args(argv)
    levir_dir = args.data / "levir_cd"
    torch.set_num_threads(1)

    from tamms.registry import DEFAULT_DETECTOR, load_detector
    from tamms.models.change.unichange import normalise_category

    t0 = time.time()
    syn = synthetic_test_pairs(args.sequences)
    syn_change = np.stack([p["change"] for p in syn])
    lc_b, lc_a = np.stack([p["lc_before"] for p in syn]), np.stack([p["lc_after"] for p in syn])
    levir = []
    if levir_dir.is_dir():
        levir = levir_test_pairs(levir_dir)
    print(f"{len(syn)} synthetic test pairs from {args.sequences} sequences, {len(levir)} LEVIR-CD test tiles "
          f"({time.time() - t0:.1f} s)", flush=True)

    rows, notes = [], []
    for name in ("cva", "siamese", "siamese-real", "unichange"):
        try:
            det = load_detector(name)
        except Exception as exc:  # noqa: BLE001 - report a missing detector instead of stopping
            notes.append(f"{name}: not available ({exc})")
            print(notes[-1], flush=True)
            continue
        row = {"detector": det.name}
        t = time.time()
        r = run_detector(det, syn)
        row["synthetic"] = binary_scores(r["mask"], syn_change)
        if r["answer_ok"]:
            row["lm_answer_ok_fraction"] = float(np.mean(r["answer_ok"]))
        if name == "unichange":
            # semantic change over every class, from the same model (SCD instruction)
            s = run_detector(det, syn, semantic=True)
            classes = s["class_names"]
            from tamms.data.synthetic import CLASS_NAMES

            assert classes == [normalise_category(c) for c in CLASS_NAMES], classes
            row["synthetic_semantic"] = {
                **semantic_scores(np.where(s["mask"] > 0, s["semantic_before"] + 1, 0),
                                  np.where(s["mask"] > 0, s["semantic_after"] + 1, 0),
                                  np.where(syn_change > 0, lc_b + 1, 0), np.where(syn_change > 0, lc_a + 1, 0),
                                  num_classes=len(classes) + 1),
                "binary_from_scd": binary_scores(s["mask"], syn_change),
            }
            row["lm_answer_ok_fraction_semantic"] = float(np.mean(s["answer_ok"])) if s["answer_ok"] else None
        if levir:
            kw = {"categories": ["building"]} if name == "unichange" else {}
            r = run_detector(det, levir, batch=4, **kw)
            row["levir_cd_test"] = binary_scores(r["mask"], np.stack([p["change"] for p in levir]))
            if name == "unichange":
                row["levir_instruction"] = "segment the changed building areas ."
                r = run_detector(det, levir, batch=4)  # the same model asked for every change
                row["levir_cd_test_all_changes"] = binary_scores(r["mask"], np.stack([p["change"] for p in levir]))
        row["seconds_256_pair"] = round(time_detector(det), 4)
        if name == "unichange":
            row["seconds_256_pair_semantic"] = round(time_detector(det, semantic=True), 4)
            row["seconds_256_pair_template_answer"] = round(time_detector(load_detector(name, generate=False)), 4)
        row["eval_seconds"] = round(time.time() - t, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/detect_quality.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, torch "
                   f"{torch.__version__}, 1 thread",
        "synthetic_test_pairs": len(syn), "synthetic_sequences": args.sequences,
        "levir_cd_test_tiles": [p["name"] for p in levir],
        "default_detector": DEFAULT_DETECTOR, "rows": rows, "notes": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    from tamms.utils import write_results

    write_results(args.out, "detect_quality", result, markdown(result))
    print(markdown(result))
    return 0


def _f(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def markdown(result: dict) -> str:
    lines = [
        "# Change detection quality (`benchmarks/detect_quality.py`)", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}; {result['machine']}.", "",
        f"Synthetic: {result['synthetic_test_pairs']} held-out pairs (test split, {result['synthetic_sequences']} "
        "sequences, 64x64). LEVIR-CD: test tiles " + ", ".join(result["levir_cd_test_tiles"]) +
        " (256x256; the train_* tiles were used in training). Dataset-level scores (pixels pooled), fractions.", "",
        "| detector | syn F1 | syn IoU | syn kappa | syn mIoU | syn SeK | syn Fscd | LEVIR F1 | LEVIR IoU | "
        "LEVIR kappa | s / 256x256 pair |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        s, lv, sem = r.get("synthetic", {}), r.get("levir_cd_test", {}), r.get("synthetic_semantic", {})
        lines.append(f"| {r['detector']} | {_f(s.get('F1'))} | {_f(s.get('IoU'))} | {_f(s.get('kappa'))} | "
                     f"{_f(sem.get('mIoU'))} | {_f(sem.get('SeK'))} | {_f(sem.get('Fscd'))} | {_f(lv.get('F1'))} | "
                     f"{_f(lv.get('IoU'))} | {_f(lv.get('kappa'))} | {r['seconds_256_pair']:.3f} |")
    lines.append("")
    for r in result["rows"]:
        if "seconds_256_pair_semantic" in r:
            lines.append(f"UniChange timing: binary {r['seconds_256_pair']:.3f} s (LM writes its answer), semantic "
                         f"(10 classes) {r['seconds_256_pair_semantic']:.3f} s, binary with the template answer fed "
                         f"{r['seconds_256_pair_template_answer']:.3f} s. On LEVIR-CD it is asked: "
                         f"\"{r.get('levir_instruction', '')}\" (F1 {_f(r['levir_cd_test']['F1'])}); asked for every "
                         f"change instead: F1 {_f(r['levir_cd_test_all_changes']['F1'])}. LM answers with the right "
                         f"special tokens: binary {r.get('lm_answer_ok_fraction')}, semantic "
                         f"{r.get('lm_answer_ok_fraction_semantic')} (else the template answer is fed).")
    lines.append(f"\nDefault detector (the TCS `C`): `{result['default_detector']}`.")
    for n in result["notes"]:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

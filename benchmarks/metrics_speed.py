"""Speed and equality of tamms' caption metrics against the COCO caption evaluation (pycocoevalcap 1.2).

Same 1,000 candidates x 5 references from LEVIR-CC in one run. LEVIR-CC has 5 captions per image pair:
the candidate is caption i of a randomly drawn pair, its 5 references are that pair's 4 other captions
plus caption i of the next pair in name order (a near miss, so every candidate has 5 references).
Timed: tokenisation + BLEU-1..4 + ROUGE-L + CIDEr-D.
  tamms:         tamms.metrics.text.caption_scores(..., meteor=False)
  pycocoevalcap: PTBTokenizer on references and on candidates (two Java calls, as COCOEvalCap.evaluate
                 does) + Bleu(4) + Rouge() + Cider()
Values must be identical (asserted, exact float equality). Reports the median of `--repeats` runs.

    python benchmarks/metrics_speed.py [--repeats 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

LEVIR_CC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "levir_cc" / "captions_trainval.json"


def load_pairs(n: int = 1000, seed: int = 0):
    pairs = json.loads(LEVIR_CC.read_text())["pairs"]
    names = sorted(pairs)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(names) - 1), n))
    candidates, references = {}, {}
    for idx in chosen:
        caps = pairs[names[idx]]["captions"]
        nxt = pairs[names[idx + 1]]["captions"]
        i = rng.randrange(len(caps))
        candidates[names[idx]] = caps[i]
        references[names[idx]] = caps[:i] + caps[i + 1 :] + [nxt[i]]
    return candidates, references


def run_tamms(candidates, references):
    from tamms.metrics.text import caption_scores

    t0 = time.perf_counter()
    out = caption_scores(candidates, references, meteor=False)
    return time.perf_counter() - t0, [out[f"BLEU-{k}"] for k in range(1, 5)] + [out["ROUGE-L"], out["CIDEr-D"]]


def run_coco(candidates, references):
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
        res = tokenizer.tokenize({k: [{"caption": candidates[k]}] for k in references})
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    return time.perf_counter() - t0, list(bleu) + [float(rouge), float(cider)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    candidates, references = load_pairs(args.n)
    t_tamms, t_coco = [], []
    for _ in range(args.repeats):  # interleaved, so load on the shared machine hits both alike
        dt, ours = run_tamms(candidates, references)
        t_tamms.append(dt)
        dt, theirs = run_coco(candidates, references)
        t_coco.append(dt)
    names = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    diffs = {n: abs(a - b) for n, a, b in zip(names, ours, theirs)}
    assert ours == theirs, f"values differ: {diffs}"
    med_t, med_c = statistics.median(t_tamms), statistics.median(t_coco)
    result = {
        "command": "python benchmarks/metrics_speed.py " + " ".join(sys.argv[1:]),
        "n_candidates": len(candidates), "references_per_candidate": 5,
        "timed": "tokenisation + BLEU-1..4 + ROUGE-L + CIDEr-D",
        "values_tamms": dict(zip(names, ours)), "values_pycocoevalcap": dict(zip(names, theirs)),
        "max_abs_difference": max(diffs.values()), "identical": ours == theirs,
        "seconds_tamms": t_tamms, "seconds_pycocoevalcap": t_coco,
        "median_seconds_tamms": med_t, "median_seconds_pycocoevalcap": med_c, "speedup": med_c / med_t,
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}, shared 2-core VM",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    md = [
        "# Caption metric speed: tamms vs pycocoevalcap 1.2", "",
        f"Command: `{result['command']}`", "",
        f"{len(candidates)} LEVIR-CC candidates x 5 references; timed: {result['timed']}; "
        f"median of {args.repeats} interleaved runs.", "",
        "| | seconds (median) |", "|---|---|",
        f"| tamms (Python tokenizer + metrics) | {med_t:.3f} |",
        f"| pycocoevalcap (Java PTBTokenizer x2 + Bleu + Rouge + Cider) | {med_c:.3f} |",
        f"| **speed-up** | **{med_c / med_t:.1f}x** |", "",
        "| metric | tamms | pycocoevalcap |", "|---|---|---|",
        *[f"| {n} | {a!r} | {b!r} |" for n, a, b in zip(names, ours, theirs)], "",
        f"Values identical (exact float equality): {ours == theirs}.", "",
    ]
    from tamms.utils import write_results

    write_results(args.out, "metrics_speed", result, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

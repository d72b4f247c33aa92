"""Change-description quality on the held-out synthetic test split, with controls, baselines, per-category
scores, "no change" precision/recall, a gap-sensitive set for PTE, real imagery and speed.

Every headline row gives the describer what a user has: frames and dates (no scene text; a model whose
recipe generates its scene first does so). Rows that feed the synthetic world's ground-truth scene into
the prompt are labelled "oracle".

- Controls (each model): true frames; frames swapped between sequences (sequence i gets the frames of
  sequence (i + n/2) mod n, its own dates); grey frames (all 0.5); dates shuffled (the dates of sequence
  (i + n/2) mod n, its own frames). A describer that reads the images loses most of its score with
  swapped or grey frames.
- Baselines: nearest-neighbour retrieval (first/last-frame features, captions of the nearest training
  sequence), RSICC-style bi-temporal captioner trained here on the same train split (first + last frame).
- Per category (the synthetic world's event of each test sequence): CIDEr-D of the subset (its IDF from
  that subset's references) and the fraction said "no change".
- "No change": a description says no change when it holds one of the world's no-change phrasings;
  a sequence is a no-change one when its references are no-change captions. Precision and recall.
- Gap-sensitive set: the same frames under two date sets, frames 30 days apart (one growing season) and
  2 years apart; the fraction of sequences whose description differs between the two, and CIDEr-D of each.
- Ablations (SFT only, w/o PTE, w/o CTP, full; 3 seeds each at one budget): evaluated when their folders
  exist (<ablations>/<key>-seed<k>), else listed as not trained.
- Real imagery (`--data`, default ../shared/data beside the checkout): NAIP and Landsat series, OSCD,
  SZTAKI and LEVIR-CD pairs (pairs without dates get placeholder dates, said so).

    OMP_NUM_THREADS=1 python benchmarks/describe_quality.py

Writes benchmarks/results/describe_quality.json and .md (tables regenerated here, never edited by hand).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ABLATIONS = {"full": "TAM (PTE + CTP)", "sft_only": "SFT only (no PTE, no CTP)", "no_pte": "w/o PTE",
             "no_ctp": "w/o CTP"}
CONTROLS = ("true frames", "frames swapped", "grey frames", "dates shuffled")
CATEGORY_ORDER = ("urban_expansion", "road_extension", "deforestation", "water_level", "crop_rotation",
                  "construction", "no_change")
NO_CHANGE_MARKERS = ("no difference", "identical", "same as before", "no change", "nothing has changed",
                     "remains unchanged", "no obvious change", "almost nothing")
METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "mean_length")


def says_no_change(text: str) -> bool:
    return any(m in text.lower() for m in NO_CHANGE_MARKERS)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="describer under test (default: shipped describer-v2, else describer)")
    ap.add_argument("--reference-model", default=None,
                    help="describer to compare with (default: the shipped describer, the forecaster's; 'none': "
                         "only --model, rows of other models are kept from the results JSON)")
    ap.add_argument("--reference-controls", default="true frames,frames swapped,grey frames,dates shuffled,oracle",
                    help="the controls run for the reference model (comma list; the model under test runs all)")
    ap.add_argument("--reference-parts", default="models,gap,real,speed",
                    help="the parts run for the reference model (of models, gap, real, speed)")
    ap.add_argument("--ablations", default="/tmp/tamms-describe-ablations", help="folder of ablation models")
    ap.add_argument("--n", type=int, default=4000, help="synthetic world size (as in describe.yaml)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N test sequences only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--data", type=Path, default=SHARED, help="real data folder (default ../shared/data)")
    ap.add_argument("--parts", default="models,baselines,gap,ablations,real,speed",
                    help="comma list of parts to run; the others are kept from an existing results JSON")
    args = ap.parse_args(argv)

    from tamms.data.datasets import split_sequences
    from tamms.data.synthetic import SyntheticWorldConfig, generate_world
    from tamms.metrics.text import MeteorJar, meteor_available
    from tamms.pipelines.describe import DescribePipeline, prepare_input
    from tamms.utils import default_weights

    torch.manual_seed(0)
    t0 = time.time()
    world = generate_world(args.n, SyntheticWorldConfig(size=64, frames=6), seed=0)
    train_seqs, test_seqs = (split_sequences(world, split) for split in ("train", "test"))
    test_seqs = test_seqs[: args.limit]
    train = [prepare_input(s, 64, 10) for s in train_seqs]
    test = [prepare_input(s, 64, 10) for s in test_seqs]
    categories = [s.meta.get("category") for s in test_seqs]
    print(f"data: {len(train)} train / {len(test)} test sequences ({time.time() - t0:.0f} s)", flush=True)

    parts = set(args.parts.split(","))
    out = Path(args.out)
    previous = json.loads((out / "describe_quality.json").read_text()) if (out / "describe_quality.json").exists() else {}
    jar = MeteorJar() if meteor_available() else None
    ev = Evaluator(test, categories, jar, t0)

    v2, v1 = default_weights("describer-v2").resolve(), default_weights("describer").resolve()
    model_path = Path(args.model).resolve() if args.model else (v2 if (v2 / "config.json").exists() else v1)
    names = {v2: "describer-v2", v1: "describer (v1, the forecaster's)"}
    models = {names.get(model_path, str(model_path)): model_path}
    if args.reference_model != "none":
        ref_path = Path(args.reference_model).resolve() if args.reference_model else v1
        if ref_path != model_path:
            models[names.get(ref_path, str(ref_path))] = ref_path
    pipes = {name: DescribePipeline.from_pretrained(path, batch_size=32) for name, path in models.items()}
    inputs = control_inputs(test)

    # per-model parts are merged into the previous results (a model run alone keeps the other models' rows)
    same_split = previous.get("test_split", {}).get("sequences") == len(test)
    result = {key: (previous.get(key) if same_split else None) or {}
              for key in ("models", "baselines", "gap_sensitive", "ablations", "real", "speed")}
    under_test = next(iter(models))
    ref_parts = set(args.reference_parts.split(","))

    def run_for(part):  # the pipelines a part runs for
        return {name: pipe for name, pipe in pipes.items() if name == under_test or part in ref_parts}

    if "models" in parts:
        result["models"].update({name: run_model(pipe, inputs, ev, None if name == under_test else
                                                 args.reference_controls.split(","))
                                 for name, pipe in run_for("models").items()})
    if "baselines" in parts:
        result["baselines"] = run_baselines(pipes[under_test], train, inputs, ev)
    if "gap" in parts:
        result["gap_sensitive"].update({name: run_gap(pipe, test, ev) for name, pipe in run_for("gap").items()})
    if "ablations" in parts:
        result["ablations"] = run_ablations(Path(args.ablations), inputs, test, ev)
    if "real" in parts:
        result["real"].update({name: run_real(pipe, args.data) for name, pipe in run_for("real").items()})
    if "speed" in parts:
        result["speed"].update({name: run_speed(pipe) for name, pipe in run_for("speed").items()})
    for key in ("models", "gap_sensitive", "real", "speed"):  # the model under test first
        result[key] = {k: result[key][k] for k in sorted(result[key], key=lambda k: k != under_test)}
    if jar is not None:
        jar.close()
    command = "OMP_NUM_THREADS=1 python benchmarks/describe_quality.py " + " ".join(argv or sys.argv[1:])
    earlier = previous.get("commands", []) if same_split else []  # files of the older format: none kept
    result = {
        "command": command,
        "commands": [c for c in earlier if c != command] + [command],  # the runs whose rows this file holds
        "test_split": {"world": {"n": args.n, "size": 64, "frames": 6, "seed": 0}, "sequences": len(test),
                       "references_per_sequence": 5,
                       "categories": {c: categories.count(c) for c in CATEGORY_ORDER}},
        "meteor": "METEOR 1.5 jar (Java)" if jar is not None else "unavailable (no Java): METEOR column empty",
        "model_under_test": under_test,
        "model_folders": {**previous.get("model_folders", {}), **{k: str(v) for k, v in models.items()}},
        **result, "done_when": None,
        "torch_threads": torch.get_num_threads(), "minutes_this_run": round((time.time() - t0) / 60, 1),
    }
    result["done_when"] = done_when(result)
    out.mkdir(parents=True, exist_ok=True)
    from tamms.utils import write_results

    write_results(out, "describe_quality", result, markdown(result))
    print(markdown(result))


# --- scoring -----------------------------------------------------------------------------------------
class Evaluator:
    """Caption metrics, per-category scores and "no change" precision/recall against the test references."""

    def __init__(self, test, categories, jar, t0):
        self.refs = {i: x.captions for i, x in enumerate(test)}
        self.categories = categories
        self.no_change_truth = [all(says_no_change(c) for c in x.captions) for x in test]
        self.jar = jar
        self.t0 = t0

    def metrics(self, texts: list[str], idx: list[int] | None = None) -> dict:
        from tamms.evaluation import caption_evaluation

        idx = list(range(len(texts))) if idx is None else idx
        s = caption_evaluation({i: texts[i] for i in idx}, {i: self.refs[i] for i in idx},
                               meteor=self.jar is not None, meteor_jar=self.jar).scores
        return {k: s.get(k) for k in METRICS}

    def score(self, label: str, texts: list[str], seconds: float | None = None, per_category: bool = False) -> dict:
        said = [says_no_change(t) for t in texts]
        truth = self.no_change_truth
        tp = sum(s and t for s, t in zip(said, truth))
        row = {**self.metrics(texts),
               "no_change_precision": tp / max(1, sum(said)), "no_change_recall": tp / max(1, sum(truth)),
               "no_change_said_on_no_change": tp / max(1, sum(truth)),
               "no_change_said_on_others": sum(s and not t for s, t in zip(said, truth)) / max(1, len(truth) - sum(truth)),
               "said_no_change": sum(said) / max(1, len(said)), "distinct_texts": len(set(texts)),
               "seconds": None if seconds is None else round(seconds, 1), "examples": texts[:4]}
        if per_category:
            row["per_category"] = {}
            for c in CATEGORY_ORDER:
                idx = [i for i, k in enumerate(self.categories) if k == c]
                if idx:
                    row["per_category"][c] = {"n": len(idx), "CIDEr-D": self.metrics(texts, idx)["CIDEr-D"],
                                              "said_no_change": sum(said[i] for i in idx) / len(idx)}
        print(f"{label:70s} CIDEr-D {row['CIDEr-D']:.4f}  no-change P {row['no_change_precision']:.2f} "
              f"R {row['no_change_recall']:.2f}  ({time.time() - self.t0:.0f} s)", flush=True)
        return row


def other(i: int, n: int) -> int:
    """The partner of sequence i in the swap controls (a fixed derangement: half the split away)."""
    return (i + max(1, n // 2)) % n


def control_inputs(test) -> dict[str, list]:
    """The four inputs of the controls (see the module docstring)."""
    n = len(test)
    swapped, grey, dates = [], [], []
    for i, x in enumerate(test):
        y = test[other(i, n)]
        pick = np.linspace(0, y.frames.shape[0] - 1, x.frames.shape[0]).round().astype(int)  # same frame count
        swapped.append(dataclasses.replace(x, frames=y.frames[pick].clone()))
        grey.append(dataclasses.replace(x, frames=torch.full_like(x.frames, 0.5)))
        dpick = np.linspace(0, len(y.dates) - 1, len(x.dates)).round().astype(int)
        if len(set(dpick.tolist())) < len(dpick):  # the other sequence has fewer dates: keep own dates
            dates.append(x)
        else:
            dates.append(dataclasses.replace(x, days=y.days[dpick].clone(), dates=[y.dates[k] for k in dpick]))
    return {"true frames": list(test), "frames swapped": swapped, "grey frames": grey, "dates shuffled": dates}


def run_texts(pipe, items, **kw) -> tuple[list[str], float]:
    start = time.time()
    texts: list[str] = []
    for s in range(0, len(items), 32):
        texts += pipe(items[s: s + 32], **kw).texts
    return texts, time.time() - start


def run_model(pipe, inputs, ev, controls: list[str] | None = None) -> dict:
    """Each control with frames and dates only, then the oracle row (ground-truth scene in the prompt)."""
    rows = {}
    controls = list(CONTROLS) + ["oracle"] if controls is None else controls
    for control in (c for c in CONTROLS if c in controls):
        texts, sec = run_texts(pipe, inputs[control], use_data_scene=False)
        rows[control] = ev.score(f"{pipe.model.config.generate_scene and 'scene generated' or 'no scene'} "
                                 f"{control}", texts, sec, per_category=control == "true frames")
    if "oracle" in controls:
        texts, sec = run_texts(pipe, inputs["true frames"], use_data_scene=True)
        rows["oracle: true frames + ground-truth scene"] = ev.score("oracle scene", texts, sec)
    return rows


def run_baselines(pipe, train, inputs, ev) -> dict:
    from tamms.models.baselines.captioners import BiTemporalCaptioner, BiTemporalConfig, RetrievalCaptioner

    rows = {}
    start = time.time()
    retrieval = RetrievalCaptioner().fit([x.frames for x in train], [x.captions for x in train])
    fit_s = time.time() - start
    for control in ("true frames", "frames swapped"):
        start = time.time()
        texts = retrieval.predict([x.frames for x in inputs[control]])
        rows[f"NN retrieval, {control}"] = ev.score(f"NN retrieval {control}", texts, fit_s + time.time() - start,
                                                    per_category=control == "true frames")
    torch.manual_seed(0)
    rsicc = BiTemporalCaptioner(BiTemporalConfig(), pipe.model.tokenizer)
    fit = rsicc.fit([x.frames for x in train], [x.captions for x in train], steps=300, batch_size=16, lr=1.5e-3)
    for control in ("true frames", "frames swapped"):
        start = time.time()
        texts = rsicc.predict([x.frames for x in inputs[control]])
        rows[f"RSICC-style bi-temporal, {control}"] = ev.score(f"RSICC {control}", texts, time.time() - start,
                                                               per_category=control == "true frames")
        rows[f"RSICC-style bi-temporal, {control}"]["note"] = f"{fit['steps']} steps x 16, {fit['minutes']} min"
    return rows


def gap_dates(x, gap_days: float):
    """The same frames under dates `gap_days` apart, ending on the sequence's last date."""
    from tamms.data.sequence import from_days

    n = x.frames.shape[0]
    days = x.days[-1] - gap_days * torch.arange(n - 1, -1, -1, dtype=torch.float64)  # [T]
    return dataclasses.replace(x, days=days, dates=[from_days(float(d)).isoformat() for d in days])


def run_gap(pipe, test, ev) -> dict:
    short = [gap_dates(x, 30.0) for x in test]
    long = [gap_dates(x, 730.0) for x in test]
    a, _ = run_texts(pipe, short, use_data_scene=False)
    b, _ = run_texts(pipe, long, use_data_scene=False)
    return {"frames 30 days apart": {k: v for k, v in ev.score("gap 30 d", a).items() if k != "examples"},
            "frames 2 years apart": {k: v for k, v in ev.score("gap 730 d", b).items() if k != "examples"},
            "descriptions that differ": sum(p != q for p, q in zip(a, b)) / len(a),
            "examples": [{"30 days": p, "2 years": q} for p, q in zip(a[:4], b[:4])]}


def run_ablations(folder: Path, inputs, test, ev) -> dict:
    """Each ablation's seeds on true frames, frames swapped and the gap-sensitive set: mean and spread
    (max - min over seeds) of every score."""
    from tamms.pipelines.describe import DescribePipeline

    rows = {}
    for key, label in ABLATIONS.items():
        per_seed = []
        for seed in range(3):
            path = folder / f"{key}-seed{seed}"
            if not (path / "model.safetensors").exists():
                continue
            pipe = DescribePipeline.from_pretrained(path, batch_size=32)
            texts, _ = run_texts(pipe, inputs["true frames"], use_data_scene=False)
            swapped, _ = run_texts(pipe, inputs["frames swapped"], use_data_scene=False)
            gap = run_gap(pipe, test, ev)
            true = ev.score(f"{label} seed {seed}", texts)
            per_seed.append({"CIDEr-D": true["CIDEr-D"], "distinct_texts": true["distinct_texts"],
                             "CIDEr-D frames swapped": ev.score(f"{label} seed {seed} swapped", swapped)["CIDEr-D"],
                             "gap CIDEr-D": (gap["frames 30 days apart"]["CIDEr-D"]
                                             + gap["frames 2 years apart"]["CIDEr-D"]) / 2,
                             "gap descriptions that differ": gap["descriptions that differ"],
                             "steps": json.loads((path / "config.json").read_text())["training"].get("steps")})
        if not per_seed:
            rows[label] = {"seeds": 0, "note": f"not trained ({folder}/{key}-seed0..2 missing)"}
            continue
        row = {"seeds": len(per_seed), "per_seed": per_seed, "steps": [s["steps"] for s in per_seed]}
        for metric in ("CIDEr-D", "CIDEr-D frames swapped", "gap CIDEr-D", "gap descriptions that differ",
                       "distinct_texts"):
            values = [s[metric] for s in per_seed]
            row[f"{metric} mean"] = statistics.mean(values)
            row[f"{metric} spread"] = max(values) - min(values) if len(values) > 1 else None
        rows[label] = row
    return rows


def run_real(pipe, data_dir: Path) -> dict:
    """Descriptions of the real series and pairs (no references): frames and dates only."""
    from tamms.data.readers import read_pairs, read_sequence
    from tamms.data.sequence import SitsSequence

    data_dir = Path(data_dir)
    real: dict = {}
    for name in ("naip_nd_a", "landsat_pucallpa_a"):
        folder = data_dir / name
        if not folder.exists():
            real[name] = "data not available"
            continue
        seq = read_sequence(folder)
        if name == "landsat_pucallpa_a":  # bands SWIR1, NIR, Red, Green: Red, Green, Green is the nearest to RGB
            seq.rgb_bands = (2, 3, 3)
        out = pipe([seq], use_data_scene=False)
        real[name] = {"dates": out.dates[0], "description": out.texts[0], "rgb_bands": list(seq.rgb_bands)}
    placeholder = (dt.date(2015, 6, 1), dt.date(2018, 6, 1))
    for name in ("oscd", "sztaki", "levir_cd"):
        folder = data_dir / name
        if not folder.exists():
            real[name] = "data not available"
            continue
        items = []
        for pair in read_pairs(folder):
            dates = pair.dates or placeholder
            rgb = list(pair.rgb_bands or (0, 1, 2))
            items.append((pair.name, pair.dates is None,
                          SitsSequence(frames=np.stack([pair.before[rgb], pair.after[rgb]]), dates=list(dates))))
        out = pipe([s for _, _, s in items], use_data_scene=False)
        real[name] = {"pairs": {n: {"dates": d, "placeholder_dates": ph, "description": t}
                                for (n, ph, _), d, t in zip(items, out.dates, out.texts)},
                      "distinct_descriptions": len(set(out.texts)), "pairs_described": len(items)}
    return real


def run_speed(pipe) -> dict:
    """DescribePipeline on one 4-frame 64x64 sequence after loading, frames and dates only."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence

    seq = generate_sequence(1, SyntheticWorldConfig(size=64, frames=4), seed=123)
    batch = pipe.batch_size
    pipe.batch_size = 1
    pipe([seq], use_data_scene=False)  # warm-up
    speed = {}
    for label, kw in (("greedy", {}), ("beam 3", {"num_beams": 3})):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            pipe([seq], use_data_scene=False, **kw)
            times.append(time.perf_counter() - start)
        speed[label] = {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}
    pipe.batch_size = batch
    speed["load_average_1min"] = round(__import__("os").getloadavg()[0], 1)  # other jobs on the CPU slow this
    return speed


# --- report ------------------------------------------------------------------------------------------
def done_when(r: dict) -> dict:
    """The issue's "done when" bars, checked on the model under test (the first model)."""
    name = r["model_under_test"]
    rows = (r.get("models") or {}).get(name)
    if rows is None or any(c not in rows for c in CONTROLS):
        return {}
    true = rows["true frames"]["CIDEr-D"]
    nn = (r.get("baselines") or {}).get("NN retrieval, true frames", {}).get("CIDEr-D")
    swapped = rows["frames swapped"]["CIDEr-D"]
    real = [v for v in (r.get("real") or {}).get(name, {}).values() if isinstance(v, dict)]
    real_texts = [v["description"] for v in real if "description" in v]
    real_texts += [p["description"] for v in real for p in v.get("pairs", {}).values()]
    speed = ((r.get("speed") or {}).get(name) or {}).get("greedy", {}).get("median_s")
    return {
        "model": name,
        "CIDEr-D >= 0.6": {"value": true, "met": true >= 0.6},
        "CIDEr-D >= 1.2 x NN retrieval": {"value": None if nn is None else true / nn,
                                          "met": None if nn is None else true >= 1.2 * nn},
        "swapped <= 50% of true": {"value": swapped / true if true else None, "met": swapped <= 0.5 * true},
        "no change said on >= 80% of no-change": {"value": rows["true frames"]["no_change_said_on_no_change"],
                                                  "met": rows["true frames"]["no_change_said_on_no_change"] >= 0.8},
        "no change said on <= 10% of others": {"value": rows["true frames"]["no_change_said_on_others"],
                                               "met": rows["true frames"]["no_change_said_on_others"] <= 0.1},
        "describe < 0.5 s (4 x 64x64, greedy)": {"value": speed, "met": None if speed is None else speed < 0.5},
        "real descriptions not all the same": {"value": f"{len(set(real_texts))} distinct of {len(real_texts)}",
                                               "met": len(set(real_texts)) > 1 if real_texts else None},
        "w/o PTE below full on the gap set by more than the seed spread": pte_criterion(r.get("ablations") or {}),
    }


def pte_criterion(ablations: dict) -> dict:
    """Full minus w/o PTE on the gap-sensitive set (mean CIDEr-D of the 30-day and 2-year dates), against the
    larger of the two seed spreads."""
    full, no_pte = ablations.get(ABLATIONS["full"], {}), ablations.get(ABLATIONS["no_pte"], {})
    if full.get("seeds", 0) < 3 or no_pte.get("seeds", 0) < 3:
        return {"value": None, "met": None, "note": "needs the w/o PTE and full ablations over 3 seeds "
                                                    "(benchmarks/train_describe_ablations.py)"}
    margin = full["gap CIDEr-D mean"] - no_pte["gap CIDEr-D mean"]
    spread = max(full["gap CIDEr-D spread"], no_pte["gap CIDEr-D spread"])
    return {"value": f"full - w/o PTE = {margin:+.4f}, seed spread {spread:.4f}", "met": margin > spread,
            "note": "the docs say why when not met (docs/describe.md)"}


def markdown(r: dict) -> str:
    f = lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["# Describer quality (held-out synthetic test split)", "",
             "Commands (the runs whose rows are here, the last one last): " +
             "; ".join(f"`{c}`" for c in r.get("commands", [r["command"]])) + "  ",
             f"Test split: {r['test_split']['sequences']} sequences of the synthetic world {r['test_split']['world']}, "
             f"5 references each; categories {r['test_split']['categories']}. METEOR: {r['meteor']}. "
             "Fractions, not x100. Models: " + ", ".join(f"{k} = `{v}`" for k, v in r["model_folders"].items()), "",
             "Inputs are frames and dates only unless the row says oracle (the synthetic world's ground-truth scene "
             "text in the prompt: a user has no such text).", "",
             "| model | input | BLEU-4 | METEOR | ROUGE-L | CIDEr-D | no-change P | no-change R | no change said on others | distinct texts |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def row(model, control, s):
        return (f"| {model} | {control} | " + " | ".join(f(s.get(k)) for k in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D",
                "no_change_precision", "no_change_recall", "no_change_said_on_others", "distinct_texts")) + " |")

    for model, rows in (r.get("models") or {}).items():
        for control, s in rows.items():
            lines.append(row(model, control, s))
    for name, s in (r.get("baselines") or {}).items():
        model, control = name.split(", ")
        lines.append(row(model + " baseline", control, s))
    lines += ["", "## Per category (true frames; CIDEr-D of each subset, IDF from its own references; "
              "fraction said 'no change')", "",
              "| model | " + " | ".join(CATEGORY_ORDER) + " |", "|---|" + "---|" * len(CATEGORY_ORDER)]
    per = [(m, rows["true frames"]) for m, rows in (r.get("models") or {}).items()]
    per += [(k, v) for k, v in (r.get("baselines") or {}).items() if "true frames" in k]
    for model, s in per:
        pc = s.get("per_category", {})
        lines.append(f"| {model} | " + " | ".join(
            f"{pc[c]['CIDEr-D']:.3f} / {pc[c]['said_no_change']:.2f}" if c in pc else "-" for c in CATEGORY_ORDER) + " |")
    lines += ["", "## Gap-sensitive set (the same test frames; dates 30 days apart vs 2 years apart)", "",
              "| model | CIDEr-D, 30 days | CIDEr-D, 2 years | 'no change' said, 30 d / 2 y (all) | descriptions that differ |",
              "|---|---|---|---|---|"]
    for model, g in (r.get("gap_sensitive") or {}).items():
        a, b = g["frames 30 days apart"], g["frames 2 years apart"]
        lines.append(f"| {model} | {f(a['CIDEr-D'])} | {f(b['CIDEr-D'])} | "
                     f"{f(a['said_no_change'])} / {f(b['said_no_change'])} | {f(g['descriptions that differ'])} |")
    lines += ["", "## Ablations (the describer-v2 recipe at one budget, each variant continuing the shipped v1 "
              "with its parts switched off; mean and spread (max - min) over seeds)", "",
              "Trained by `benchmarks/train_describe_ablations.py` (each run's full config is in its folder's "
              "config.json). Gap set: mean CIDEr-D of the 30-day and the 2-year dates.", "",
              "| ablation | seeds | steps | CIDEr-D | CIDEr-D, frames swapped | gap set CIDEr-D | "
              "gap descriptions that differ | distinct texts |", "|---|---|---|---|---|---|---|---|"]
    for label, s in (r.get("ablations") or {}).items():
        if not s.get("seeds"):
            lines.append(f"| {label} | 0 | - | {s['note']} | | | | |")
            continue
        cell = lambda m: f"{s[m + ' mean']:.4f} ± {f(s[m + ' spread'])}"  # noqa: E731
        lines.append(f"| {label} | {s['seeds']} | {'/'.join(map(str, s['steps']))} | {cell('CIDEr-D')} | "
                     f"{cell('CIDEr-D frames swapped')} | {cell('gap CIDEr-D')} | "
                     f"{cell('gap descriptions that differ')} | {cell('distinct_texts')} |")
    lines += ["", "## Real imagery (no references; frames and dates only)", ""]
    for model, real in (r.get("real") or {}).items():
        lines.append(f"### {model}")
        for name, v in real.items():
            if isinstance(v, str):
                lines.append(f"- {name}: {v}")
            elif "pairs" in v:
                lines.append(f"- **{name}**: {v['distinct_descriptions']} distinct descriptions of {v['pairs_described']} pairs")
                for pname, p in v["pairs"].items():
                    note = " (placeholder dates: the data has none)" if p["placeholder_dates"] else ""
                    lines.append(f"  - {pname} {p['dates'][0]} -> {p['dates'][-1]}{note}: {p['description']}")
            else:
                lines.append(f"- **{name}** ({v['dates'][0]} .. {v['dates'][-1]}, {len(v['dates'])} frames, bands "
                             f"{v['rgb_bands']} as RGB): {v['description']}")
        lines.append("")
    lines += ["## Speed of `DescribePipeline` on one 4-frame 64x64 sequence after loading", ""]
    for model, sp in (r.get("speed") or {}).items():
        lines.append(f"- {model}: " + ", ".join(f"{k} median {v['median_s']} s (min {v['min_s']} s)"
                                                for k, v in sp.items() if isinstance(v, dict))
                     + f"; load average {sp.get('load_average_1min')} during the run")
    lines += ["", "## Done when (the model under test)", ""]
    for k, v in (r.get("done_when") or {}).items():
        if k == "model":
            lines.append(f"Model: {v}  ")
            continue
        met = {True: "met", False: "NOT met", None: "not measured"}[v["met"]]
        lines.append(f"- {k}: {f(v['value'])} -> {met}" + (f" ({v['note']})" if v.get("note") else ""))
    lines += ["", "## Examples (first test sequences, true frames)", ""]
    for model, rows in (r.get("models") or {}).items():
        lines.append(f"- {model}: " + " / ".join(rows["true frames"]["examples"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Change detection on real pairs that no training or selection saw: LEVIR-CD, OSCD, SZTAKI AirChange.

Splits (fixed in `src/tamms/configs/detect_siamese.yaml`, options.holdout, before any score was looked at):
- val  (model selection only): OSCD pisa, hongkong, nantes; SZTAKI szada_5, tiszadob_2 (LEVIR-CD has none);
- test (reported, never used for training or selection): LEVIR-CD `test_*` tiles; OSCD beirut, paris, rennes;
  SZTAKI szada_7, tiszadob_5.
Every scene is detected whole (networks by overlapping 256 px tiles, `DetectPipeline`), and F1 / IoU / kappa are
pooled over every pixel of a dataset's split (tamms.evaluation). Rows:
- `cva`: change vector analysis + Otsu threshold (no training);
- `siamese` (shipped, learnt the synthetic world) and `siamese-real` (shipped, the default of `tamms detect`:
  fine-tuned on the real train pairs too, weights selected on the real val scenes); `--candidate NAME=FOLDER` adds
  trained folders; the rule fixed beforehand selects, among every siamese row and threshold, the best mean real val
  F1 (OSCD, SZTAKI) among those keeping synthetic val F1 >= 0.9;
- `unichange`: the shipped UniChange, asked for "building" change on LEVIR-CD and every change elsewhere;
- `unet-ef` (`--peer [NAME=]FOLDER`, repeatable): the same-data peer, an early-fusion ResNet-18 U-Net trained with the same config,
  data and wall-clock budget (`--set 'model={name: unet_ef}'`);
- control `... (after = before)`: the selected network given the before image twice; F1 must fall to ~0 (its
  second input matters).
Synthetic test F1 of every network row: the same 160 held-out synthetic pairs as benchmarks/detect_quality.py.
Speed: OSCD beirut (1180x1070) and the same scene tiled 2 x 2, each detected in a fresh process with 2 threads:
wall time, peak memory, and the memory detection adds (flat in the scene size).

    OMP_NUM_THREADS=1 python benchmarks/detect_real.py [--data DIR] [--candidate NAME=FOLDER ...] [--peer FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIG = ROOT / "src" / "tamms" / "configs" / "detect_siamese.yaml"
DATASETS = ("levir_cd", "oscd", "sztaki")
REQUESTS = {"levir_cd": ["building"]}  # UniChange: what each dataset's masks label (None: every change)
DAUDT_2018 = "not found: the search tool found the paper's text but not its result tables; no published numbers shown"


def holdout_splits(data: Path) -> dict[str, dict[str, list]]:
    """{dataset: {"val": [pairs], "test": [pairs]}} by the config's options.holdout (LEVIR-CD: recorded split)."""
    from tamms.config import read_mapping
    from tamms.data.datasets import pair_split
    from tamms.data.readers import read_dataset

    holdout = read_mapping(CONFIG)["options"]["holdout"]
    out: dict[str, dict[str, list]] = {}
    for name in DATASETS:
        folder = data / name
        if not folder.is_dir():
            continue
        pairs = read_dataset(folder).pairs
        named = {p: s for s, ps in holdout.get(name, {}).items() for p in ps}
        split_of = (lambda p: named.get(p.name, "train")) if name in holdout else pair_split
        out[name] = {s: [p for p in pairs if split_of(p) == s] for s in ("val", "test")}
    return out


class RecordingDetector:
    """A detector whose every call's UniChange answer check (`last_response_ok`) is kept in `ok`."""

    def __init__(self, detector):
        self.detector, self.ok = detector, []

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def detect(self, *args, **kwargs):
        result = self.detector.detect(*args, **kwargs)
        self.ok += list(getattr(self.detector, "last_response_ok", []) or [])
        return result


def detect_scene(pipe, pair, categories=None, control: bool = False) -> np.ndarray:
    """Binary mask `[H, W]` of one whole scene (tiled by the pipeline)."""
    before = torch.from_numpy(pair.before[list(pair.rgb_bands or (0, 1, 2))])
    after = before if control else torch.from_numpy(pair.after[list(pair.rgb_bands or (0, 1, 2))])
    kwargs = {"categories": categories} if categories else {}
    return pipe(before, after, **kwargs).mask[0].numpy()


def pooled(masks: list[np.ndarray], pairs: list) -> dict[str, float]:
    from tamms.evaluation import ChangeEvaluation

    evaluation = ChangeEvaluation()
    for mask, pair in zip(masks, pairs):
        evaluation.add(pair.name, mask[None], pair.mask.astype(np.uint8)[None])
    scores = evaluation.result().scores
    return {k: round(float(scores[k]), 4) for k in ("F1", "IoU", "kappa", "precision", "recall")}


def synthetic_val_pairs(n_sequences: int = 40) -> list[dict]:
    """Consecutive-frame pairs (and last -> future frame) of the first `n_sequences` VAL-split synthetic
    sequences (for choosing a threshold; the test split is only scored)."""
    from tamms.data.datasets import SitsPairDataset
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, split_of

    config, sequences, index = SyntheticWorldConfig(size=64, frames=4), [], 0
    while len(sequences) < n_sequences:
        if split_of(f"syn_{index:06d}") == "val":
            sequences.append(generate_sequence(index, config, seed=0))
        index += 1
    pairs = SitsPairDataset(sequences, future=True, random_crop=False)
    return [{"before": s["image"][0], "after": s["image"][1], "change": s["mask"].numpy()}
            for s in (pairs[i] for i in range(len(pairs)))]


def threshold_sweep(source: str, splits: dict, synthetic_val: list[dict],
                    thresholds=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) -> dict[str, dict[float, float]]:
    """A network's mean real val F1 (OSCD, SZTAKI) and synthetic val F1 at each probability threshold
    (validation pairs only)."""
    from tamms.evaluation import change_scores
    from tamms.pipelines.detect import DetectPipeline

    pipe = DetectPipeline.from_pretrained(source)
    probs = {}
    for dataset in ("oscd", "sztaki"):
        pairs = splits.get(dataset, {}).get("val", [])
        probs[dataset] = [pipe(torch.from_numpy(p.before[:3]), torch.from_numpy(p.after[:3])).probability[0].numpy()
                          for p in pairs]
    syn = pipe.detector.detect(torch.stack([p["before"] for p in synthetic_val]),
                               torch.stack([p["after"] for p in synthetic_val])).probability.numpy()
    syn_truth = np.stack([p["change"] for p in synthetic_val])
    return {"real": {t: round(float(np.mean([pooled([pr > t for pr in probs[d]], splits[d]["val"])["F1"]
                                            for d in probs if probs[d]])), 4) for t in thresholds},
            "synthetic": {t: round(float(change_scores(syn > t, syn_truth)["F1"]), 4) for t in thresholds}}


def choose_threshold(sweep: dict[str, dict[float, float]], synthetic_floor: float = 0.9) -> tuple[float, bool]:
    """The threshold with the best real val F1 among those keeping synthetic val F1 >= the floor (else the best
    real val F1 overall); and whether the floor was kept."""
    kept = [t for t, f in sweep["synthetic"].items() if f >= synthetic_floor]
    pool = kept or list(sweep["real"])
    return max(pool, key=lambda t: sweep["real"][t]), bool(kept)


def synthetic_f1(detector, n_sequences: int = 40) -> float:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from detect_quality import binary_scores, run_detector, synthetic_test_pairs

    pairs = synthetic_test_pairs(n_sequences)
    pred = run_detector(detector, pairs)["mask"]
    return round(float(binary_scores(pred, np.stack([p["change"] for p in pairs]))["F1"]), 4)


SPEED_CHILD = r"""
import os, sys, time, json
import numpy as np, torch
torch.set_num_threads(2)
from tamms.pipelines.detect import DetectPipeline
def peak_mb():  # VmHWM starts afresh at exec (ru_maxrss would carry the parent's peak over)
    with open("/proc/self/status") as status:
        return round(int(next(l for l in status if l.startswith("VmHWM")).split()[1]) / 1024)
pipe = DetectPipeline.from_pretrained(sys.argv[1])
a, b = (torch.from_numpy(np.load(os.path.join(sys.argv[2], f"{n}.npy"))) for n in ("before", "after"))
before_mb = peak_mb()  # torch, the model and the two input images
start = time.perf_counter()
mask = pipe(a, b).mask
seconds = time.perf_counter() - start
print(json.dumps({"seconds": round(seconds, 2), "load_average_1min": round(os.getloadavg()[0], 2),
                  "peak_mb": peak_mb(), "detection_mb": peak_mb() - before_mb, "shape": list(a.shape[-2:])}))
"""


def speed(detector: str, scenes: dict[str, Path]) -> dict:
    """Each scene (a folder of before.npy / after.npy) detected in a fresh process with 2 threads: seconds, the
    process's peak memory, and what detection added to it (peak minus the peak after loading model and images)."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = {}
    for name, folder in scenes.items():
        run = subprocess.run([sys.executable, "-c", SPEED_CHILD, detector, str(folder)], capture_output=True,
                             text=True, env=env, cwd=ROOT)
        out[name] = ({"error": run.stderr.strip().splitlines()[-1]} if run.returncode != 0
                     else json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def speed_scenes(splits: dict, folder: Path) -> dict[str, Path]:
    """OSCD beirut (1180x1070, as read) and the same scene tiled 2 x 2 (2360x2140): memory should not grow with
    the scene."""
    pair = next(p for p in splits["oscd"]["test"] if p.name == "beirut")
    scenes = {}
    for name, reps in (("1180x1070", 1), ("2360x2140 (beirut tiled 2 x 2)", 2)):
        sub = folder / f"x{reps}"
        sub.mkdir(parents=True, exist_ok=True)
        for which in ("before", "after"):
            np.save(sub / f"{which}.npy", np.tile(np.asarray(getattr(pair, which)), (1, reps, reps)))  # [C, H, W]
        scenes[name] = sub
    return scenes


def training_budget(source: str) -> dict | None:
    """Minutes and steps of every training stage behind a weights folder: its own, its run's earlier stages
    (`stages/*`) and, through `init_from`, the runs it continued. None for cva / shipped names."""
    from tamms.utils import default_weights

    folder = Path(source) if Path(source).is_dir() else default_weights(source)
    minutes, steps, seen, todo = 0.0, 0, set(), [folder]
    while todo:
        f = Path(todo.pop()).resolve()
        if f in seen or not (f / "config.json").is_file():
            continue
        seen.add(f)
        training = json.loads((f / "config.json").read_text()).get("training") or {}
        minutes += float(training.get("minutes") or 0.0)
        steps += int(training.get("steps") or 0)
        todo += [str(x) for x in sorted((f / "stages").glob("*")) if x.is_dir()]
        if training.get("init_from"):
            todo.append(str(training["init_from"]))
    return {"minutes": round(minutes, 1), "steps": steps, "folders": len(seen)} if seen else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="folder holding levir_cd/, oscd/, sztaki/ "
                        "(default ../shared/data beside the checkout)")
    parser.add_argument("--candidate", action="append", default=[], help="NAME=FOLDER of a trained siamese")
    parser.add_argument("--peer", action="append", default=[],
                        help="[NAME=]FOLDER of a trained unet-ef (same-data peer); repeat for peers of other budgets")
    parser.add_argument("--wait-peer-minutes", type=float, default=0.0,
                        help="wait this long for --peer to hold a saved model (its training still running)")
    parser.add_argument("--no-unichange", action="store_true", help="skip UniChange (slow: its LM runs per tile)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true",
                        help="measure speed and memory again for the rows of the existing results, keep the rest")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from tamms.pipelines.detect import DetectPipeline

    if not (args.data / "oscd").is_dir():
        print(f"no real data in {args.data}: give --data DIR holding levir_cd/, oscd/, sztaki/", file=sys.stderr)
        return 2
    splits = holdout_splits(args.data)
    if args.speed_only:
        result = json.loads((args.out / "detect_real.json").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            scenes = speed_scenes(splits, Path(tmp))
            result["speed"] = {label: speed(result["rows"][label]["source"] if label != "cva" else "cva", scenes)
                               for label in result["speed"] if " @ " not in label}
        result["speed_command"] = "OMP_NUM_THREADS=1 python benchmarks/detect_real.py " + " ".join(argv or sys.argv[1:])
        result["speed_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_results(args.out, result)
        return 0
    detectors: dict[str, str] = {"cva": "cva", "siamese (shipped)": "siamese",
                                 "siamese-real (shipped, default)": "siamese-real"}
    for item in args.candidate:
        name, _, folder = item.partition("=")
        detectors[f"siamese:{name}"] = folder
    if not args.no_unichange:
        detectors["unichange"] = "unichange"
    for item in args.peer:
        name, _, folder = item.rpartition("=")
        detectors[f"unet-ef{':' + name if name else ''} (same-data peer)"] = folder

    rows: dict[str, dict] = {}
    for label, source in detectors.items():
        deadline = time.time() + 60 * args.wait_peer_minutes
        while label.startswith("unet-ef") and not (Path(source) / "config.json").is_file() and time.time() < deadline:
            time.sleep(20)  # the peer's training run is still going (--wait-peer-minutes)
        t0 = time.perf_counter()
        row: dict = {"source": source}
        for dataset, by_split in splits.items():
            for split, pairs in by_split.items():
                if not pairs:
                    continue
                categories = REQUESTS.get(dataset) if source == "unichange" else None
                pipe = DetectPipeline.from_pretrained(source)
                pipe.detector = RecordingDetector(pipe.detector)
                masks = [detect_scene(pipe, p, categories) for p in pairs]
                row[f"{dataset}/{split}"] = pooled(masks, pairs)
                if source == "unichange":
                    row.setdefault("answer_ok", {})[f"{dataset}/{split}"] = round(float(np.mean(pipe.detector.ok)), 4) \
                        if pipe.detector.ok else None
        if source != "cva":
            detector = DetectPipeline.from_pretrained(source).detector
            if source != "unichange":
                row["synthetic_test_F1"] = synthetic_f1(detector)
            row["training"] = training_budget(source)
            threshold = getattr(getattr(detector.model, "config", None), "threshold", None)
            if threshold is not None:
                row["threshold"] = float(threshold)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows[label] = row
        print(label, {k: v["F1"] for k, v in row.items() if isinstance(v, dict) and "F1" in v}, flush=True)

    # model selection on the validation pairs only (OSCD and SZTAKI real val pairs; LEVIR-CD has none): each
    # trained siamese at the threshold that is best on real val while keeping synthetic VAL F1 >= 0.9
    siamese_rows = [k for k in rows if k.startswith("siamese")]
    synthetic_val = synthetic_val_pairs()
    sweeps = {k: threshold_sweep(rows[k]["source"], splits, synthetic_val) for k in siamese_rows}
    choice = {k: choose_threshold(sweeps[k]) for k in siamese_rows}
    val_f1 = {k: sweeps[k]["real"][choice[k][0]] for k in siamese_rows}
    selected = max(siamese_rows, key=lambda k: (choice[k][1], val_f1[k]))
    best_threshold = choice[selected][0]
    # the peer gets the same chance: its threshold chosen on the same real val pairs (no synthetic floor)
    peers = [k for k in rows if k.startswith("unet-ef")]
    for peer in peers:
        sweeps[peer] = threshold_sweep(rows[peer]["source"], splits, synthetic_val)
        choice[peer] = choose_threshold(sweeps[peer], synthetic_floor=0.0)
        val_f1[peer] = sweeps[peer]["real"][choice[peer][0]]
    for label in [selected, *peers]:
        threshold = choice[label][0]
        pipe = DetectPipeline.from_pretrained(rows[label]["source"])
        if threshold == pipe.detector.model.config.threshold:
            continue  # its own row is at that threshold already
        pipe.detector.model.config.threshold = threshold
        row = {"source": rows[label]["source"], "threshold": threshold}
        for dataset, by_split in splits.items():
            pairs = by_split["test"]
            row[f"{dataset}/test"] = pooled([detect_scene(pipe, p) for p in pairs], pairs)
        row["synthetic_test_F1"] = synthetic_f1(pipe.detector)
        rows[f"{label} @ threshold {threshold}"] = row

    # control: the selected network with the before image given twice (no second date)
    control_label = f"{selected} (after = before)"
    pipe = DetectPipeline.from_pretrained(rows[selected]["source"])
    control = {}
    for dataset, by_split in splits.items():
        pairs = by_split["test"]
        control[f"{dataset}/test"] = pooled([detect_scene(pipe, p, control=True) for p in pairs], pairs)
    rows[control_label] = control

    timing = {}
    if not args.no_speed:
        with tempfile.TemporaryDirectory() as tmp:
            scenes = speed_scenes(splits, Path(tmp))
            timing = {label: speed(rows[label]["source"], scenes)
                      for label in ["cva", selected] + [k for k in rows if k.startswith("unet-ef") and " @ " not in k]}
    result = {"splits": {d: {s: [p.name for p in ps] for s, ps in v.items()} for d, v in splits.items()},
              "rows": rows, "val_mean_F1": val_f1, "selected": selected, "selected_threshold": best_threshold,
              "threshold_sweeps_val": sweeps, "speed": timing,
              "daudt_2018": DAUDT_2018,
              "command": "OMP_NUM_THREADS=1 python benchmarks/detect_real.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores shared, torch {torch.__version__}"}
    write_results(args.out, result)
    print(render(result))
    return 0


def write_results(out: Path, result: dict) -> None:
    from tamms.utils import write_results as write

    write(out, "detect_real", result, render(result))


def render(result: dict) -> str:
    lines = ["# Change detection on held-out real pairs (`benchmarks/detect_real.py`)", "",
             f"Command: `{result['command']}`  ", f"Date: {result['date']}; {result['machine']}.", "",
             "Pooled over every pixel of a dataset's split (whole scenes, 256 px overlapping tiles); fractions. "
             "Splits fixed in `src/tamms/configs/detect_siamese.yaml` (options.holdout) before any score was seen:",
             ""]
    for dataset, by_split in result["splits"].items():
        lines.append(f"- {dataset}: val {', '.join(by_split['val']) or '(none)'}; test {', '.join(by_split['test'])}")
    datasets = list(result["splits"])
    lines += ["", "## Test pairs (never used for training or selection)", "",
              "Training: minutes and steps summed over every stage behind the weights (earlier stages and the runs "
              "continued via init_from) as recorded in their config.json; the shipped folders record their last "
              "stage only.", "",
              "| detector | " + " | ".join(f"{d} F1 | {d} IoU | {d} kappa" for d in datasets)
              + " | synthetic test F1 | training (min / steps, recorded) |",
              "|---|" + "---|" * (3 * len(datasets) + 2)]
    for label, row in result["rows"].items():
        cells = []
        for d in datasets:
            s = row.get(f"{d}/test")
            cells += [f"{s['F1']:.4f}", f"{s['IoU']:.4f}", f"{s['kappa']:.4f}"] if s else ["-"] * 3
        syn = row.get("synthetic_test_F1")
        budget = row.get("training")
        budget = "-" if not budget else f"{budget['minutes']} / {budget['steps']}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'-' if syn is None else f'{syn:.4f}'} | {budget} |")
    own = {label: row["threshold"] for label, row in result["rows"].items() if "threshold" in row}
    own_text = "; ".join(f"{label}: {t:g}" for label, t in own.items()) if own else "in its config.json"
    lines += ["", "## Validation pairs (model selection)", "",
              f"At each detector's configured threshold ({own_text}); `mean @ chosen` = mean real val F1 "
              "at the threshold chosen on validation (best real "
              "val F1 among thresholds keeping synthetic VAL F1 >= 0.9; for the peer, the best real val F1).", "",
              "| detector | oscd val F1 | sztaki val F1 | mean @ chosen (threshold) |", "|---|---|---|---|"]
    for label, row in result["rows"].items():
        if "oscd/val" not in row:
            continue
        mean = result["val_mean_F1"].get(label)
        sweep = result["threshold_sweeps_val"].get(label)
        floor = 0.0 if label.startswith("unet-ef") else 0.9
        chosen = "-" if mean is None else f"{mean:.4f} ({choose_threshold(sweep, floor)[0]})"
        lines.append(f"| {label} | {row['oscd/val']['F1']:.4f} | {row['sztaki/val']['F1']:.4f} | {chosen} |")
    sweep = result["threshold_sweeps_val"][result["selected"]]
    lines += ["", f"Selected on validation: **{result['selected']}** at threshold {result['selected_threshold']} "
              f"(mean real val F1 by threshold {sweep['real']}; synthetic val F1 {sweep['synthetic']}).", ""]
    if result.get("speed"):
        lines += ["## Speed and memory: OSCD beirut (1180x1070) and the same scene tiled 2 x 2, fresh process, "
                  "2 threads", ""]
        if result.get("speed_command"):
            lines += [f"Measured again by `{result['speed_command']}` ({result['speed_date']}).", ""]
        lines += [
                  "Peak memory is the process's (torch, model, images); detection adds = that peak minus the peak "
                  "after loading the model and the two images.", "",
                  "| detector | scene | seconds | peak memory (MB) | detection adds (MB) | machine load (1 min) |",
                  "|---|---|---|---|---|---|"]
        for label, by_scene in result["speed"].items():
            for scene, t in by_scene.items():
                lines.append(f"| {label} | {scene} | {t.get('seconds', t.get('error'))} | {t.get('peak_mb', '-')} | "
                             f"{t.get('detection_mb', '-')} | {t.get('load_average_1min', '-')} |")
        lines.append("")
    uni = result["rows"].get("unichange", {}).get("answer_ok")
    if uni:
        lines += [f"UniChange: share of its language model's answers (one per tile) that carry the special tokens "
                  f"the request needs (else the template answer is fed): {uni}. Requests: LEVIR-CD \"building\", "
                  "OSCD and SZTAKI every change.", ""]
    lines += [f"Daudt et al. 2018 (FC-EF, FC-Siam-conc, FC-Siam-diff on OSCD RGB and AirChange): {result['daudt_2018']}.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

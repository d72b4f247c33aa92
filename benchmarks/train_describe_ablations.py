"""Train the describer ablations of benchmarks/describe_quality.py: full (PTE + CTP), w/o PTE, w/o CTP and
SFT only (neither), 3 seeds each, all at one budget, with the describer-v2 recipe
(src/tamms/configs/describe_v2.yaml: no ground-truth scene in the prompts, pairs that force looking,
difference tokens, L_temp).

Two starts (`--start`):
- `v1` (default): each variant continues the shipped describer v1 (as describer-v2 does) for `--steps` steps
  with its parts switched off. v1 learned with PTE and CTP, so this measures what a model trained this long
  without a part loses, from a start that had it.
- `scratch`: from scratch on describe.yaml's network. At 300 steps x 16 every seed of every variant collapsed
  to one sentence ("no change" for every sequence): this budget cannot train a describer from nothing.

    OMP_NUM_THREADS=1 python benchmarks/train_describe_ablations.py --out runs/describe-ablations --steps 120 --jobs 2

Each run is `tamms train describe --config src/tamms/configs/describe_v2.yaml --set ...` (printed before it
starts) into OUT/<key>-seed<k>; finished runs are skipped, a killed run resumes from its checkpoint. Then:

    OMP_NUM_THREADS=1 python benchmarks/describe_quality.py --parts ablations --ablations runs/describe-ablations
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"full": (True, True), "no_pte": (False, True), "no_ctp": (True, False), "sft_only": (False, False)}
NETWORK = ("{vision: {channels: [16, 32, 64, 128], image_size: 64, grid: 4}, "
           "language: {arch: llama, hidden_size: 192, num_layers: 3, num_heads: 6, intermediate_size: 512}, "
           "delta_tokens: true, generate_scene: false, use_pte: %s, use_ctp: %s}")


def command(out: Path, key: str, seed: int, steps: int, batch: int, start: str = "v1") -> list[str]:
    pte, ctp = (str(v).lower() for v in VARIANTS[key])
    cmd = ["tamms", "train", "describe", "--config", str(ROOT / "src/tamms/configs/describe_v2.yaml"),
           "--out", str(out / f"{key}-seed{seed}")]
    if start == "scratch":
        cmd += ["--set", "init_from=null", "--set", "model=" + NETWORK % (pte, ctp),
                "--set", "optim.lr=0.0015", "--set", "optim.warmup_steps=20"]
    else:  # describe_v2.yaml's init_from (the shipped v1), its own learning rate
        cmd += ["--set", f"model.use_pte={pte}", "--set", f"model.use_ctp={ctp}"]
    return cmd + ["--set", f"trainer.max_steps={steps}", "--set", f"data.batch_size={batch}",
                  "--set", f"trainer.seed={seed}", "--set", f"trainer.val_every={steps}",
                  "--set", "trainer.limit_val_batches=2", "--set", "trainer.checkpoint_every=50"]


def run(out: Path, key: str, seed: int, steps: int, batch: int, start: str) -> str:
    folder = out / f"{key}-seed{seed}"
    if (folder / "model.safetensors").exists():
        return f"{folder.name}: already trained"
    cmd = command(out, key, seed, steps, batch, start)
    if (folder / "checkpoints").exists():
        cmd.append("--resume")
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.time()
    with open(out / f"{key}-seed{seed}.log", "a") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    return f"{folder.name}: exit {code} after {(time.time() - t0) / 60:.1f} min"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/describe-ablations"))
    ap.add_argument("--start", choices=("v1", "scratch"), default="v1", help="see above")
    ap.add_argument("--steps", type=int, default=120, help="training steps of every run (the shared budget)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (one core each: OMP_NUM_THREADS=1)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of " + ", ".join(VARIANTS))
    args = ap.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        sys.exit(f"error: unknown variants {sorted(unknown)}: give some of {list(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # seed-major order: with a stop part-way every variant has the same number of seeds
    jobs = [(key, seed) for seed in range(args.seeds) for key in args.variants.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda j: run(args.out, j[0], j[1], args.steps, args.batch_size, args.start), jobs):
            print(message, flush=True)


if __name__ == "__main__":
    main()

"""How fast the synthetic world is made and written (single process, one thread).

    OMP_NUM_THREADS=1 python benchmarks/synthetic_speed.py --n 1000 --size 64 --frames 4

Writes benchmarks/results/synthetic_speed.json and .md (with the command that made them).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, write_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--write-n", type=int, default=1000, help="sequences written to disk (0 = skip)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic_speed"))
    args = parser.parse_args()
    config = SyntheticWorldConfig(size=args.size, frames=args.frames)

    generate_sequence(0, config)  # warm-up: imports, first allocations
    t0, c0 = time.perf_counter(), time.process_time()
    cats: Counter[str] = Counter()
    changed, no_change_captions = [], 0
    for i in range(args.n):
        seq = generate_sequence(i, config)
        cats[seq.meta["category"]] += 1
        changed.append(float((seq.landcover[0] != seq.landcover[-1]).mean()))
        no_change_captions += seq.captions[0] in ("there is no difference", "the two scenes seem identical",
                                                 "the scene is the same as before", "no change has occurred",
                                                 "almost nothing has changed", "nothing has changed in the scene",
                                                 "the scene remains unchanged", "there is no obvious change")
    gen_s, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    load = os.getloadavg()[0]

    write_s = None
    if args.write_n > 0:
        tmp = Path(tempfile.mkdtemp(prefix="tamms_synth_"))
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            write_world(tmp / "world", args.write_n, size=args.size, frames=args.frames, progress=False)
            write_s, write_cpu = time.perf_counter() - t0, time.process_time() - c0
            disk_mb = sum(f.stat().st_size for f in (tmp / "world").rglob("*") if f.is_file()) / 1e6
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    command = "OMP_NUM_THREADS=1 python " + " ".join([os.path.relpath(__file__, Path.cwd())] + sys.argv[1:])
    result = {
        "command": command,
        "n": args.n, "size": args.size, "frames": args.frames,
        "generate_seconds": round(gen_s, 2),
        "generate_cpu_seconds": round(gen_cpu, 2),
        "ms_per_sequence": round(1000 * gen_s / args.n, 2),
        "load_average_1min_at_end": round(load, 2),
        "write_n": args.write_n,
        "write_world_seconds": None if write_s is None else round(write_s, 2),
        "write_world_cpu_seconds": None if write_s is None else round(write_cpu, 2),
        "written_megabytes": None if write_s is None else round(disk_mb, 1),
        "categories": dict(sorted(cats.items())),
        "mean_changed_fraction_first_last": round(float(np.mean(changed)), 4),
        "no_change_caption_fraction": round(no_change_captions / args.n, 3),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, single process, "
                   f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        "python": platform.python_version(), "numpy": np.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = [
        "# Synthetic world speed", "", f"Command: `{command}`", "",
        "| what | value |", "|---|---|",
        f"| generate {args.n} sequences ({args.frames} frames + future, {args.size}x{args.size}, 4 bands) | "
        f"{gen_s:.1f} s wall ({1000 * gen_s / args.n:.1f} ms / sequence), {gen_cpu:.1f} s CPU |",
    ]
    if write_s is not None:
        md.append(f"| `write_world` {args.write_n} sequences (generate + GeoTIFF + PNG + JSON) | {write_s:.1f} s wall, "
                  f"{write_cpu:.1f} s CPU, {disk_mb:.0f} MB |")
    md += [f"| categories | {', '.join(f'{k} {v}' for k, v in sorted(cats.items()))} |",
           f"| mean changed fraction first->last | {np.mean(changed):.3f} |",
           f"| sequences with no-change captions | {no_change_captions / args.n:.1%} |",
           f"| machine | {result['machine']}; 1-min load average {load:.1f} (machine shared: wall time "
           "exceeds CPU time when other jobs run) |", ""]
    from tamms.utils import write_results

    write_results(out.parent, out.stem, result, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

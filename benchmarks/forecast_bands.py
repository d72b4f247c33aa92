"""Every input band comes back: how good are the bands no model forecasts itself? (issue 15)

The forecasters read and forecast RGB; `ForecastPipeline` returns every input band (`ForecastOutput.bands`): the
other bands (here the synthetic world's NIR) follow the RGB forecast by the change relation fitted on the history
(`tamms.pipelines.forecast.transfer_bands`). For held-out synthetic test sequences (4 dated frames -> the future
frame, frames and dates only) this reports, per model, the mean |forecast - truth| of each band, and for NIR the
same forecast with NIR simply kept from the last frame (the control: what the band transfer adds).

    OMP_NUM_THREADS=1 python benchmarks/forecast_bands.py [--n 96] [--models tamms,simvp,linear-trend,persistence]

Writes benchmarks/results/forecast_bands.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def test_sequences(n: int):
    from tamms.data.splits import hash_split
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence

    world = SyntheticWorldConfig(size=64, frames=4)
    sequences, index = [], 0
    while len(sequences) < n:  # the test split, in id order (the cases of forecast_quality.py)
        seq = generate_sequence(index, world, seed=0)
        if hash_split(seq.meta["id"]) == "test":
            sequences.append(seq)
        index += 1
    return sequences


def render(result: dict) -> str:
    names = result["band_names"]
    lines = ["# Every input band: mean |forecast - truth| per band (synthetic test split)", "",
             f"Command: `{result['command']}` ({result['seconds']:.0f} s). {result['n']} held-out test sequences, "
             "4 dated frames -> the future frame, frames and dates only; values in [0, 1]. The models forecast RGB; "
             "the other bands come from `transfer_bands` (the last frame plus the change the RGB forecast implies, "
             "fitted on the history's frame-to-frame changes). Control: the same forecast with NIR kept from the "
             "last frame.", "",
             "| model | " + " | ".join(f"{b} MAE" for b in names) + " | NIR MAE, NIR kept from the last frame |",
             "|---|" + "---|" * (len(names) + 1)]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row['mae'][b]:.4f}" for b in names)
                     + f" | {row['nir_kept_mae']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--models", default="tamms,simvp,linear-trend,persistence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    import sys

    import torch

    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.utils import results_paths, write_results

    results_paths(RESULTS, "forecast_bands", args.overwrite)  # refuse now, not after the run

    torch.set_num_threads(1)
    start = time.perf_counter()
    seqs = test_sequences(args.n)
    names = list(seqs[0].band_names)
    nir = names.index("nir")
    truth = np.stack([s.future_frame for s in seqs])  # [N, C, H, W]
    last = np.stack([s.frames[-1] for s in seqs])
    rows = {}
    for name in args.models.split(","):
        pipe = ForecastPipeline.from_pretrained(name)
        bands = []
        for i in range(0, len(seqs), 16):
            chunk = seqs[i:i + 16]
            out = pipe(chunk, [[s.future_date] for s in chunk], num_samples=1, seed=args.seed)
            if out.bands is None or out.band_names != names:
                raise SystemExit(f"{name}: the forecast does not hold every input band {names}")
            bands.append(out.bands.numpy())
        pred = np.concatenate(bands)  # [N, C, H, W]
        mae = {b: round(float(np.abs(pred[:, k] - truth[:, k]).mean()), 5) for k, b in enumerate(names)}
        kept = round(float(np.abs(last[:, nir] - truth[:, nir]).mean()), 5)
        rows[name] = {"mae": mae, "nir_kept_mae": kept}
        print(name, mae, "NIR kept:", kept, flush=True)
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/forecast_bands.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "n": len(seqs), "band_names": names, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS, "forecast_bands", result, render(result), overwrite=args.overwrite)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Small helpers shared by every part: atomic, no-clobber output paths (and benchmark results written that way)
and the shipped weights folder."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from tamms.errors import OutputExistsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    Refuses to replace an existing file unless `overwrite` is set, so nothing the user had is lost,
    and a crash half-way leaves the old file (or nothing) rather than a truncated one.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists: choose another path or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def command_line(script: str, argv: list[str] | None = None) -> str:
    """How a benchmark script was run, for its results file: `OMP_NUM_THREADS=N python benchmarks/SCRIPT ARGS`
    (the thread count when it was set; argv default: this process's arguments)."""
    import sys

    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    return (f"{threads}python benchmarks/{script} " + " ".join(sys.argv[1:] if argv is None else argv)).strip()


def results_paths(folder: str | os.PathLike, stem: str, overwrite: bool = True) -> tuple[Path, Path]:
    """FOLDER/STEM.json and FOLDER/STEM.md, a benchmark's results; with overwrite=False an OutputExistsError when
    either exists (call it before a long run, so the refusal does not come after the work)."""
    paths = Path(folder) / f"{stem}.json", Path(folder) / f"{stem}.md"
    for path in paths if not overwrite else ():
        if path.exists():
            raise OutputExistsError(f"{path} already exists: choose another --out or pass --overwrite")
    return paths


def write_results(folder: str | os.PathLike, stem: str, result: dict, markdown: str, overwrite: bool = True
                  ) -> tuple[Path, Path]:
    """A benchmark's results: FOLDER/STEM.json (the numbers) and FOLDER/STEM.md (the tables rendered from them),
    each written atomically. With overwrite=False neither is written when either exists."""
    import json

    json_path, md_path = results_paths(folder, stem, overwrite)
    write_text_atomic(json_path, json.dumps(result, indent=1) + "\n", overwrite=True)
    write_text_atomic(md_path, markdown if markdown.endswith("\n") else markdown + "\n", overwrite=True)
    return json_path, md_path


def default_weights(name: str) -> Path:
    """Folder of the weights shipped with the package for model `name` (config.json + model.safetensors)."""
    return WEIGHTS_DIR / name


def require_hf_folder(folder: str | os.PathLike, what: str, example: str) -> Path:
    """A local transformers folder (config.json present), else MissingWeightsError naming what to give."""
    from tamms.errors import MissingWeightsError

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise MissingWeightsError(
            f"no {what} at {folder} (config.json missing): give a local folder saved with transformers' "
            f"save_pretrained, e.g. {example}"
        )
    return folder

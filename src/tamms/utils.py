"""Small helpers shared by every part: atomic, no-clobber output paths and the shipped weights folder."""

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

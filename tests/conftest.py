"""Shared test set-up: offline hubs, one thread per process, and the real data beside the project."""

from __future__ import annotations

import os
from pathlib import Path

# Tests never reach a hub, and stay on one core each so the suite behaves the same on 2-core CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (it lives beside the project, not in it)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The real imagery folder ../shared/data (tests using it skip where it is absent)."""
    return shared_path()

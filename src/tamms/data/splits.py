"""The one split function of tamms: train / val / test by a stable hash of a name."""

from __future__ import annotations

import hashlib

from tamms.errors import InputError

SPLITS = ("train", "val", "test")


def hash_split(name: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """THE split of tamms: "train" | "val" | "test" from a hash of a name (a sequence id, a pair name).

    The same name always lands in the same split, on any machine; synthetic sequences, real sequences and
    change pairs all use it, so no place is ever in two splits."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise InputError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum "
                         "below 1")
    u = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"

"""Change detectors by name: "cva" (classical), "siamese", "unichange".

`load_detector(name)` gives a ready `ChangeDetector` (the trained ones from the weights shipped in
`src/tamms/weights/<name>/`, or from a folder); `default_detector()` is the best detector trained here, the
default `C` of the TCS metric (TAMMs sec. 2.3; the paper used P2V-CD). Its choice is measured, not assumed:
see benchmarks/results/detect_quality.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tamms.errors import ConfigError, MissingWeightsError
from tamms.models.change.base import ChangeDetector

DETECTORS = ("cva", "siamese", "unichange")
# Picked from benchmarks/results/detect_quality.md (held-out synthetic F1 and LEVIR-CD test-tile F1).
DEFAULT_DETECTOR = "siamese"


def build_network(name: str, config: dict[str, Any] | None = None):
    """A fresh (untrained) network for training: "siamese" or "unichange"."""
    config = dict(config or {})
    if name == "siamese":
        from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig

        return SiameseChangeNet(SiameseConfig.from_dict(config))
    if name == "unichange":
        from tamms.models.change.unichange import UniChangeConfig, UniChangeModel

        return UniChangeModel(UniChangeConfig.from_dict(config))
    raise ConfigError(f"cannot train change detector {name!r}: choose 'siamese' or 'unichange' ('cva' needs no training)")


def load_network(folder: str | Path):
    """The trained network saved in `folder` (its config.json says which kind)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise MissingWeightsError(f"no config.json in {folder}: give a folder written by `tamms train detect` "
                                  "(config.json + model.safetensors)")
    kind = json.loads(cfg_path.read_text()).get("model_type")
    if kind == "siamese":
        from tamms.models.change.siamese import SiameseChangeNet

        return SiameseChangeNet.from_pretrained(folder)
    if kind == "unichange":
        from tamms.models.change.unichange import UniChangeModel

        return UniChangeModel.from_pretrained(folder)
    raise ConfigError(f"{cfg_path} names model_type {kind!r}: expected 'siamese' or 'unichange'")


def load_detector(name: str = "default", weights: str | Path | None = None, **options: Any) -> ChangeDetector:
    """A `ChangeDetector` by name ("cva", "siamese", "unichange", "default") or from a weights folder.

    options: for "unichange", `categories` (list of names), `semantic` (bool), `generate` (bool: let the LM
    write its answer, the default; False feeds the template answer, a little faster).
    """
    if name in (None, "", "default"):
        name = DEFAULT_DETECTOR
    path = Path(name)
    if weights is None and name not in DETECTORS and path.is_dir():
        weights, name = path, None
    if name == "cva":
        from tamms.models.change.cva import CVADetector

        return CVADetector(**options)
    if name is not None and name not in DETECTORS:
        raise ConfigError(f"unknown change detector {name!r}: choose one of {', '.join(DETECTORS)} or give a "
                          "weights folder")
    from tamms.utils import default_weights

    folder = Path(weights) if weights else default_weights(name)
    if weights is None and not (folder / "model.safetensors").is_file():
        raise MissingWeightsError(f"the {name} detector has no shipped weights in {folder}: train them with "
                                  f"`tamms train detect --config src/tamms/configs/detect_{name}.yaml`")
    net = load_network(folder)
    from tamms.models.change.siamese import SiameseChangeNet, SiameseDetector

    if isinstance(net, SiameseChangeNet):
        if options:
            raise ConfigError(f"the siamese detector takes no options (got {sorted(options)}): it finds every change")
        return SiameseDetector(net, name="siamese" if weights is None else f"siamese:{Path(folder).name}")
    from tamms.models.change.unichange import UniChangeDetector

    return UniChangeDetector(net, name="unichange" if weights is None else f"unichange:{Path(folder).name}", **options)


def default_detector() -> ChangeDetector:
    """The best change detector trained here: the default `C` of TCS (its `.name` goes in every TCS result)."""
    return load_detector(DEFAULT_DETECTOR)


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "build_network", "load_network", "load_detector", "default_detector"]

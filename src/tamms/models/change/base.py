"""The change-detector interface used by `tamms detect` and by the TCS metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass
class ChangeResult:
    """mask: uint8/bool `[B, H, W]` binary change (1 = changed); probability: float `[B, H, W]` or None;
    semantic_before / semantic_after: int64 `[B, H, W]` land-cover class maps for semantic change, or None."""

    mask: torch.Tensor
    probability: torch.Tensor | None = None
    semantic_before: torch.Tensor | None = None
    semantic_after: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)


@runtime_checkable
class ChangeDetector(Protocol):
    """`name` is reported in every metric that uses the detector (e.g. "cva-otsu", "siamese", "unichange")."""

    name: str

    def detect(self, image_a: torch.Tensor, image_b: torch.Tensor) -> ChangeResult:
        """image_a, image_b: float `[B, C, H, W]` (or `[C, H, W]`) in [0, 1] on the same grid."""
        ...


# --- files of the trained networks (config.json + model.safetensors) ----------------------------------
def save_network(model: torch.nn.Module, folder, model_type: str, tensors: dict | None = None):
    """Write `config.json` (`model_type` + the network's config) and `model.safetensors` (`tensors` when
    only part of the state is kept, else the whole module)."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file, save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, **model.config.to_dict()}, indent=2))
    if tensors is None:
        save_model(model, str(folder / "model.safetensors"))
    else:
        save_file({n: t.detach().contiguous() for n, t in tensors.items()}, str(folder / "model.safetensors"))
    return folder


def read_network_config(folder, model_type: str, train_config: str) -> dict:
    """The config.json of a folder written by `save_network`, checked to hold a `model_type` network."""
    import json
    from pathlib import Path

    from tamms.errors import ConfigError, MissingWeightsError

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise MissingWeightsError(f"{folder} lacks config.json or model.safetensors: train the {model_type} detector "
                                  f"with `tamms train detect --config src/tamms/configs/{train_config}`")
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("model_type", model_type) != model_type:
        raise ConfigError(f"{folder} holds a {cfg.get('model_type')!r} model, not {model_type}")
    return cfg

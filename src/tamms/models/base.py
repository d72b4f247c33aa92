"""The one save format of every tamms network: a folder with

    config.json        {"model_type": "...", "config": {...the network's config...}, + optional metadata}
    model.safetensors  the weights (tensors that share storage, e.g. tied embeddings, are stored once)
    tokenizer files    for networks with a tokenizer (the describer, Sat-JEPA-Diff caption, ...)

`PretrainedModel` gives every network `save_pretrained(folder)` / `from_pretrained(folder)`;
`load_pretrained(folder)` (in `tamms.models`) builds whichever network a folder holds.

Metadata: any other top-level key of config.json (e.g. "training": how the weights were trained) is kept
as `model.pretrained_metadata` and written back by `save_pretrained(metadata=...)`.

Hooks a network overrides when it needs them:
- `pretrained_config()` / `config_from_dict(d)`: the config <-> dict (default: `self.config.to_dict()` (or
  `self.cfg`) and
  `cls.config_class.from_dict(d)` or `cls.config_class(**d)`);
- `build_pretrained(config, folder)`: build the network before its weights are loaded (load a tokenizer or a
  frozen part kept elsewhere; default `cls(config)`);
- `pretrained_state()` / `load_pretrained_state(tensors)`: what goes into model.safetensors (default: the whole
  state; a network with a frozen backbone stored elsewhere saves only its own part);
- `save_extra_files(folder)`: tokenizer files and other parts; `extra_files`: the ones `from_pretrained` needs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from tamms.errors import ConfigError, MissingWeightsError, OutputExistsError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound="PretrainedModel")


def read_pretrained_config(folder: str | os.PathLike, train_command: str = "tamms train ...") -> dict[str, Any]:
    """The parsed config.json of a saved-model folder (MissingWeightsError naming `train_command` if absent)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing: give a folder written by save_pretrained, or train one with "
                                  f"`{train_command}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): save the model again") from None
    if not isinstance(data, dict) or "model_type" not in data or not isinstance(data.get("config"), dict):
        raise ConfigError(f"{path} lacks 'model_type' and a 'config' mapping: it was not written by save_pretrained; "
                          "save the model again with save_pretrained")
    return data


def _dedupe_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep one name per shared storage (safetensors stores no aliases); returns (tensors, {dropped: kept})."""
    kept: dict[tuple, str] = {}
    tensors, aliases = {}, {}
    for name in sorted(state):
        t = state[name]
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and key in kept:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        tensors[name] = t
    return tensors, aliases


class PretrainedModel(nn.Module):
    """Mixin of every tamms network: one `save_pretrained` / `from_pretrained` (see the module docstring)."""

    model_type: ClassVar[str] = ""
    config_class: ClassVar[type | None] = None
    train_command: ClassVar[str] = "tamms train ..."  # named in the error when weights are missing
    extra_files: ClassVar[tuple[str, ...]] = ()  # files besides config.json + model.safetensors that loading needs
    pretrained_metadata: dict[str, Any]

    # --- hooks -----------------------------------------------------------------------------------------
    def pretrained_config(self) -> dict[str, Any]:
        config = self.config if hasattr(self, "config") else self.cfg  # networks name it either way
        return config.to_dict()

    @classmethod
    def config_from_dict(cls, d: dict[str, Any]):
        if cls.config_class is None:
            raise NotImplementedError(f"{cls.__name__} sets no config_class")
        if hasattr(cls.config_class, "from_dict"):
            return cls.config_class.from_dict(d)
        try:
            return cls.config_class(**d)
        except TypeError as exc:
            raise ConfigError(f"bad {cls.model_type} config ({exc}); valid keys: "
                              f"{list(cls.config_class.__dataclass_fields__)}") from None

    @classmethod
    def build_pretrained(cls: type[M], config, folder: Path) -> M:
        return cls(config)

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    def load_pretrained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(tensors)

    def save_extra_files(self, folder: Path) -> None:
        pass

    # --- save ------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False, dtype: torch.dtype | str | None = None,
                        metadata: dict[str, Any] | None = None) -> Path:
        """Write config.json + model.safetensors (+ extra files) into `folder`.

        The files are written to a temporary folder beside it first and then moved in, so a crash leaves the
        old model (or nothing), never half of one. An existing model is replaced only with `overwrite`.
        dtype: store floating tensors in this dtype (e.g. "float16" halves the file; loading upcasts to the
        network's dtype). metadata: extra top-level keys of config.json (default: the ones it was loaded with).
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        if (folder / CONFIG_NAME).exists() or (folder / WEIGHTS_NAME).exists():
            if not overwrite:
                raise OutputExistsError(f"{folder} already holds a saved model: choose another folder or pass "
                                        "--overwrite (overwrite=True) to replace it")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        meta = dict(getattr(self, "pretrained_metadata", {}) if metadata is None else metadata)
        for key in ("model_type", "config"):
            meta.pop(key, None)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            state = {k: v.detach() for k, v in self.pretrained_state().items()}
            tensors, aliases = _dedupe_shared(state)
            if dtype is not None:
                tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME),
                      metadata={"format": "pt", **aliases})
            self.save_extra_files(tmp)
            config = {"model_type": self.model_type, "config": self.pretrained_config(), **meta}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
            for path in tmp.rglob("*"):  # temporary files are created private; saved weights are for everyone
                path.chmod(0o755 if path.is_dir() else 0o644)
            tmp.chmod(0o755)
            if not folder.exists():
                os.replace(tmp, folder)
            else:  # keep what else the folder holds; config.json last marks the model complete
                names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n == CONFIG_NAME)
                for name in names:
                    if (folder / name).is_dir():
                        shutil.rmtree(folder / name)
                    os.replace(tmp / name, folder / name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return folder

    # --- load ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls: type[M], folder: str | os.PathLike) -> M:
        """The network saved in `folder` by `save_pretrained`, in eval mode."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        folder = Path(folder)
        data = read_pretrained_config(folder, cls.train_command)
        if data["model_type"] != cls.model_type:
            raise ConfigError(f"{folder / CONFIG_NAME} holds a {data['model_type']!r} model, not {cls.model_type!r}: "
                              "load it with tamms.models.load_pretrained, or give a folder of the right model")
        for name in (WEIGHTS_NAME, *cls.extra_files):
            if not (folder / name).is_file():
                raise MissingWeightsError(f"{folder / name} is missing: give a complete folder written by "
                                          f"save_pretrained, or train one with `{cls.train_command}`")
        model = cls.build_pretrained(cls.config_from_dict(data["config"]), folder)
        weights = str(folder / WEIGHTS_NAME)
        tensors = load_file(weights)
        with safe_open(weights, "pt") as f:
            aliases = {k: v for k, v in (f.metadata() or {}).items() if k != "format"}
        for dropped, kept in aliases.items():
            tensors[dropped] = tensors[kept]
        model.load_pretrained_state(tensors)
        model.pretrained_metadata = {k: v for k, v in data.items() if k not in ("model_type", "config")}
        return model.eval()


# model_type -> "module:Class", imported only when a folder of that type is loaded
MODEL_TYPES: dict[str, str] = {
    "tamms-describer": "tamms.models.describer:Describer",
    "tamms-sfci": "tamms.models.forecaster:SFCIForecaster",
    "simvp": "tamms.models.baselines.forecast:SimVP",
    "convlstm": "tamms.models.baselines.forecast:ConvLSTM",
    "change-trend": "tamms.models.change_trend:ChangeTrendForecaster",
    "satjepa-diff": "tamms.models.jepa_generator:SatJEPADiff",
    "satjepa-diff-caption": "tamms.models.jepa_caption:CaptionGuidedSatJEPA",
    "siamese": "tamms.models.change.siamese:SiameseChangeNet",
    "unichange": "tamms.models.change.unichange:UniChangeModel",
    "unet-ef": "tamms.models.change.unet_ef:UNetEF",
}


def model_class(model_type: str) -> type[PretrainedModel]:
    import importlib

    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown model_type {model_type!r}: known types are {sorted(MODEL_TYPES)}")
    module, name = MODEL_TYPES[model_type].split(":")
    return getattr(importlib.import_module(module), name)


def resolve_weights(name_or_folder: str | os.PathLike, train_command: str = "tamms train ...") -> Path:
    """An existing folder as given, else the shipped weights of that name (`src/tamms/weights/<name>/`);
    MissingWeightsError naming `train_command` when neither holds a config.json."""
    from tamms.utils import default_weights

    path = Path(name_or_folder)
    folder = path if path.is_dir() else default_weights(str(name_or_folder))
    if not (folder / CONFIG_NAME).is_file():
        raise MissingWeightsError(f"no weights for {str(name_or_folder)!r} (looked in {path} and {folder}): give a "
                                  f"folder written by save_pretrained, or train one with `{train_command}`")
    return folder


def load_pretrained(folder: str | os.PathLike) -> PretrainedModel:
    """Whichever network `folder` holds (its config.json's model_type says which)."""
    return model_class(read_pretrained_config(folder)["model_type"]).from_pretrained(folder)


def build_model(model_type: str, config: dict[str, Any] | None = None, **kwargs: Any) -> PretrainedModel:
    """A fresh (untrained) network of `model_type` from a config dict (for training); kwargs go to its
    constructor (e.g. `tokenizer=` for the describer, `unet=` for the SFCI forecaster)."""
    cls = model_class(model_type)
    return cls(cls.config_from_dict(dict(config or {})), **kwargs)


__all__ = ["PretrainedModel", "MODEL_TYPES", "CONFIG_NAME", "WEIGHTS_NAME", "load_pretrained", "build_model",
           "model_class", "read_pretrained_config", "resolve_weights"]

"""One typed config schema for every `tamms train` command.

A training config is YAML (or JSON) loaded into dataclasses: `TrainConfig` holds the sections every task
shares (`data`, `optim`, `trainer`) plus the task's own `model` and `options` mappings, which the task parses
into its own dataclasses with the same strictness. An unknown key is an error naming the valid ones.

Overrides (`--set trainer.max_steps=50 optim.lr=1e-4`) are applied to the raw mapping before it is typed, so an
ablation is one override, not a copied file. A multi-stage recipe is one config with `stages`: each stage is a
name and the overrides it applies on top of the base config; every stage starts from the previous stage's model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

from tamms.errors import ConfigError

T = TypeVar("T")


# --- shared sections -------------------------------------------------------------------------------------
@dataclass
class SyntheticConfig:
    """Sequences of the synthetic world, generated in memory (split by sequence id)."""

    n: int = 200
    size: int = 64
    frames: int = 4
    seed: int = 0
    world: dict[str, Any] = field(default_factory=dict)  # extra SyntheticWorldConfig fields


@dataclass
class DataConfig:
    """What a task trains on: the synthetic world and/or real folders, read by `tamms.data` readers."""

    synthetic: SyntheticConfig | None = field(default_factory=SyntheticConfig)
    real: list[str] = field(default_factory=list)  # folders of any layout the readers know; absent ones skipped
    bands: list[str] | None = None  # input bands by name (None: the model's default)
    crop_size: int | None = None  # random training crops (None: whole frames)
    rotate: bool = True  # random quarter turns + flips in training
    batch_size: int = 16
    val_batch_size: int | None = None
    num_workers: int = 0
    history: int | None = 3  # frames per window (None: every frame before the target)
    min_history: int = 2
    target: str = "next"  # windows: "next" frame, the sequence's "future" frame, or "none" (describing)
    pair_mode: str = "consecutive"  # pairs: "consecutive", "first_last", "all"
    include_future: bool = True  # the synthetic world's future frame counts as one more frame
    # each real pair / real series of `real` appears this many times per training pass (a new random crop each
    # time): a few real folders beside many synthetic sequences
    real_repeats: int = 1

    def __post_init__(self) -> None:
        if self.real_repeats < 1:
            raise ConfigError(f"data.real_repeats={self.real_repeats}: give 1 or more")


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up and a cosine decay (or a constant rate)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine" | "constant"
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    schedule_steps: int | None = None  # the cosine spans this many steps (None: trainer.max_steps); a run stopped
    # early on purpose (max_steps < schedule_steps) keeps the learning rates of the longer run it was cut from
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"optim.schedule {self.schedule!r} is not 'cosine' or 'constant'")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise ConfigError(f"optim.schedule_steps {self.schedule_steps} must be >= 1 (or null: trainer.max_steps)")


@dataclass
class TrainerConfig:
    """How Lightning runs: the same command on a laptop CPU, a GPU, or several GPUs with DDP."""

    max_steps: int = 1000
    max_minutes: float | None = None  # wall-clock cap; the LR schedule still follows max_steps
    accelerator: str = "auto"  # "cpu", "gpu", "auto"
    devices: int | str = 1  # or "auto"
    strategy: str = "auto"  # "ddp", "ddp_spawn", ...
    precision: str = "32-true"
    grad_clip: float | None = 1.0
    val_every: int | None = None  # validate every N steps (None: no validation loop)
    limit_val_batches: int | None = None
    log_every: int = 25  # one plain progress line every N steps
    checkpoint_every: int = 100  # steps between checkpoints; --resume continues exactly from the last one
    seed: int = 0
    progress_bar: bool = False


@dataclass
class StageConfig:
    """One stage of a recipe: a name and the dotted overrides it applies to the base config."""

    name: str
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Every `tamms train` config: `task` picks the LightningModule; `model`/`options` are typed by the task."""

    task: str
    model: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init_from: str | None = None  # a saved model folder to start from
    out: str | None = None  # where the model is saved (the CLI's --out wins)
    save_dtype: str | None = None  # "float16" halves the saved weights (loading upcasts); None keeps float32
    stages: list[StageConfig] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- typing raw mappings -----------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """`value` as type `tp` (dataclasses recursively), or a ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of "
                          f"{[_type_name(a) for a in args]}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of {_type_name(tp)} settings, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]: any length
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where} must be a list, got {value!r}")
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or (args and len(value) != len(args)):
            raise ConfigError(f"{where} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be text, got {value!r}")
        return str(value)
    return value


def from_dict(schema: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `schema` from a mapping; unknown keys and wrong types are errors naming the fix."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {unknown} in {where}: valid keys are "
                          f"{sorted(fields)}")
    hints = typing.get_type_hints(schema)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return schema(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}; valid keys are {sorted(fields)}") from None


# --- files and overrides -----------------------------------------------------------------------------------
def read_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A mapping from a YAML (.yaml/.yml) or JSON file, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: give a YAML file (examples in src/tamms/configs/)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - yaml and json raise their own error types
        raise ConfigError(f"cannot parse {path}: {str(exc).splitlines()[0]}; fix the file's syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings (task, model, data, optim, trainer, ...)")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`"optim.lr=1e-4"` -> ("optim.lr", 0.0001); the value is read as YAML (numbers, lists, true/null)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value: write it like trainer.max_steps=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str] | dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `data` with dotted keys set (`model.ecm.use_text=false`); mappings are created as needed."""
    import copy

    out = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def load_train_config(source: str | os.PathLike | dict[str, Any], overrides: Sequence[str] = (),
                      task: str | None = None) -> TrainConfig:
    """A `TrainConfig` from a file or mapping, with `--set` overrides; `task` checks the file is for that command."""
    data = read_mapping(source) if not isinstance(source, dict) else dict(source)
    if task is not None:
        data.setdefault("task", task)
    given = dict(parse_override(o) for o in overrides)
    data = apply_overrides(data, given)
    # the user's --set wins over a stage's own setting of the same key (e.g. trainer.max_steps of a recipe stage)
    for stage in data.get("stages") or []:
        if isinstance(stage, dict) and isinstance(stage.get("set"), dict):
            stage["set"] = {k: given.get(k, v) for k, v in stage["set"].items()}
    if isinstance(data.get("options"), dict) and "real_repeats" in data["options"]:
        raise ConfigError("options.real_repeats is now data.real_repeats: move it under data: (or --set "
                          "data.real_repeats=N)")
    cfg = from_dict(TrainConfig, data, "config")
    if task is not None and cfg.task != task:
        raise ConfigError(f"this config is for `tamms train {cfg.task}`, not `tamms train {task}`: run that command "
                          "or give a config with task: " + task)
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names {names} repeat: give every stage its own name")
    return cfg


def stage_config(cfg: TrainConfig, stage: str) -> TrainConfig:
    """The config one stage runs with: the base config with the stage's overrides applied (stages removed)."""
    match = [s for s in cfg.stages if s.name == stage]
    if not match:
        raise ConfigError(f"no stage {stage!r} in the config: its stages are {[s.name for s in cfg.stages]}")
    base = cfg.to_dict()
    base["stages"] = []
    return from_dict(TrainConfig, apply_overrides(base, match[0].set), f"stage {stage!r}")


def to_yaml(cfg: Any) -> str:
    import yaml

    data = asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return yaml.safe_dump(json.loads(json.dumps(data, default=list)), sort_keys=False)

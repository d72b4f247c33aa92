"""`tamms demo --train`: retrain the small default models from scratch, with the shipped configs.

The same configs (`src/tamms/configs/*.yaml`) that reproduce the shipped weights run through the one
training backbone (`tamms.tasks.base.train`), with every stage's step count, time cap and the synthetic world's
size multiplied by `scale` (1.0 = the shipped training; the demo uses a fraction so it fits in minutes). Order
matters: the forecaster's semantic stage needs the describer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tamms.config import TrainConfig, load_train_config

CONFIGS = Path(__file__).resolve().parent / "configs"


def _scaled(value: float, scale: float, minimum: int = 2) -> int:
    return max(minimum, int(round(value * scale)))


def scaled_config(name: str, task: str, scale: float, overrides: list[str] | None = None,
                  last_stage: str | None = None) -> TrainConfig:
    """A shipped config with its steps, minutes and synthetic-world size scaled (stages after `last_stage` dropped)."""
    cfg = load_train_config(CONFIGS / name, overrides or [], task=task)
    names = [s.name for s in cfg.stages]
    if last_stage is not None:
        cfg.stages = cfg.stages[: names.index(last_stage) + 1]
    for stage in cfg.stages:
        steps = stage.set.get("trainer.max_steps", cfg.trainer.max_steps)
        minutes = stage.set.get("trainer.max_minutes", cfg.trainer.max_minutes)
        stage.set["trainer.max_steps"] = _scaled(steps, scale)
        stage.set["trainer.max_minutes"] = max(0.2, float(minutes or 10) * scale)
        stage.set["trainer.checkpoint_every"] = max(1, stage.set["trainer.max_steps"])
        if stage.set.get("trainer.val_every") is not None or cfg.trainer.val_every is not None:
            stage.set["trainer.val_every"] = max(1, stage.set["trainer.max_steps"])
    cfg.trainer.max_steps = _scaled(cfg.trainer.max_steps, scale)
    cfg.trainer.max_minutes = max(0.2, float(cfg.trainer.max_minutes or 10) * scale)
    cfg.trainer.checkpoint_every = max(1, cfg.trainer.max_steps)
    if cfg.trainer.val_every is not None:
        cfg.trainer.val_every = max(1, cfg.trainer.max_steps)
    if cfg.data.synthetic is not None:
        cfg.data.synthetic.n = _scaled(cfg.data.synthetic.n, scale, minimum=40)
    cfg.data.real = []  # the demo retrains on the synthetic world only
    return cfg


def train_demo_models(weights_dir: str | Path, scale: float = 0.25, progress: Any = None) -> dict[str, Path]:
    """Train describer, siamese detector and TAMMs forecaster (stages unet, structural, semantic) into `weights_dir`."""
    from tamms.tasks.base import train

    root = Path(weights_dir)
    root.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("training (describer, detector, forecaster stages 0-2)", total=3) if progress else None

    def step() -> None:
        if progress is not None:
            progress.advance(task)

    describer = train(scaled_config("describe.yaml", "describe", scale), out=root / "describer", overwrite=True)
    step()
    detector = train(scaled_config("detect_siamese.yaml", "detect", scale), out=root / "siamese", overwrite=True)
    step()
    forecast = train(scaled_config("forecast.yaml", "forecast", scale, [f"options.describer={describer}"],
                                   last_stage="semantic"), out=root / "forecast", overwrite=True)
    step()
    return {"describer": describer, "detector": detector, "forecast": forecast}

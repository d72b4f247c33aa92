"""`tamms demo --train`: retrain the small default models from scratch, with the shipped configs.

The same configs (`src/tamms/configs/*.yaml`) that reproduce the shipped weights are used, with their
step counts, time caps and data sizes multiplied by `scale` (1.0 = the shipped training; the demo uses
a fraction so it fits in minutes). Order matters: the forecaster's semantic stage needs the describer.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent / "configs"


def _scaled(value: float, scale: float, minimum: int = 2) -> int:
    return max(minimum, int(round(value * scale)))


def describer_config(scale: float, output: Path) -> dict[str, Any]:
    from tamms.tasks.describe import load_config

    cfg = copy.deepcopy(load_config(CONFIGS / "describe.yaml"))
    train, data = cfg.setdefault("train", {}), cfg.setdefault("data", {})
    train["max_steps"] = _scaled(train.get("max_steps", 600), scale)
    train["max_minutes"] = max(0.2, float(train.get("max_minutes", 20)) * scale)
    train["val_every"] = max(1, min(int(train.get("val_every", 100)), train["max_steps"]))
    syn = data.setdefault("synthetic", {})
    syn["n"] = _scaled(syn.get("n", 4000), scale, minimum=40)
    cfg["output"] = str(output)
    return cfg


def detector_config(scale: float, output: Path):
    from tamms.tasks.detect import DetectTrainConfig

    cfg = DetectTrainConfig.load(CONFIGS / "detect_siamese.yaml")
    cfg.max_steps = _scaled(cfg.max_steps, scale)
    cfg.max_minutes = max(0.2, cfg.max_minutes * scale)
    cfg.val_every_steps = max(1, min(cfg.val_every_steps, cfg.max_steps))
    cfg.synthetic = {**cfg.synthetic, "train_sequences": _scaled(cfg.synthetic.get("train_sequences", 300), scale,
                                                                  minimum=8)}
    cfg.init_from = None
    cfg.output = str(output)
    return cfg


def forecaster_config(scale: float, describer: Path) -> dict[str, Any]:
    from tamms.tasks.forecast import load_config

    cfg = copy.deepcopy(load_config(CONFIGS / "forecast.yaml"))
    for key in ("unet_pretrain", "stage1", "stage2"):
        section = cfg.setdefault(key, {})
        section["steps"] = _scaled(section.get("steps", 100), scale)
        section["max_minutes"] = max(0.2, float(section.get("max_minutes", 10)) * scale)
    syn = cfg.setdefault("data", {}).setdefault("synthetic", {})
    syn["n"] = _scaled(syn.get("n", 600), scale, minimum=20)
    cfg["describer"] = str(describer)
    return cfg


def train_demo_models(weights_dir: str | Path, scale: float = 0.25, progress: Any = None) -> dict[str, Path]:
    """Train describer, siamese detector and TAMMs forecaster (stages 0-2) into `weights_dir`."""
    from tamms.tasks.describe import train_describer
    from tamms.tasks.detect import train_detect
    from tamms.tasks.forecast import train_forecast

    root = Path(weights_dir)
    root.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("training (describer, detector, forecaster stages 0-2)", total=5) if progress else None

    def step() -> None:
        if progress is not None:
            progress.advance(task)

    describer = root / "describer"
    train_describer(describer_config(scale, describer), output=describer, overwrite=True, progress=False)
    step()
    detector = root / "siamese"
    train_detect(detector_config(scale, detector), output=detector, overwrite=True, progress=False)
    step()
    forecast = root / "forecast"
    cfg = forecaster_config(scale, describer)
    for stage in (0, 1, 2):
        train_forecast(cfg, stage, out_dir=forecast)
        step()
    return {"describer": describer, "detector": detector, "forecast": forecast}

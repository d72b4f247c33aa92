"""`tamms train jepa`: train Sat-JEPA-Diff (coarse-RGB or caption-guided Zero-RGB) from a YAML/JSON config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def load_config(path: Path) -> dict:
    from tamms.utils import read_config

    return read_config(path, "src/tamms/configs/jepa*.yaml", "a mapping with sections model, data, training")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    @train_app.command("jepa")
    def train_jepa(
        config: Path = typer.Option(..., "--config", help="YAML/JSON config (sections model, data, training)."),
        variant: Optional[str] = typer.Option(None, "--variant", help="rgb (coarse-RGB adapter) or caption (Zero-RGB); "
                                              "defaults to the config's `variant`."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Weights folder (default: the config's `output`)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing weights in the output folder."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override training.max_steps."),
        init_from: Optional[Path] = typer.Option(None, "--init-from", help="Continue from these weights "
                                                 "(a folder written by this command)."),
    ) -> None:
        """Train Sat-JEPA-Diff: IJEPA forecaster + conditioning adapter + rectified-flow U-Net."""
        from tamms.errors import ConfigError
        from tamms.tasks.jepa import fit

        cfg = load_config(config)
        v = variant or cfg.get("variant", "rgb")
        if v not in ("rgb", "caption"):
            raise ConfigError(f"--variant must be rgb or caption, got {v!r}")
        if max_steps is not None:
            cfg.setdefault("training", {})["max_steps"] = int(max_steps)
        if init_from is not None:
            cfg.setdefault("training", {})["init_from"] = str(init_from)
        out = output or cfg.get("output")
        fit(cfg, v, str(out) if out else None, overwrite=overwrite, log=typer.echo)

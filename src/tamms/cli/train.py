"""`tamms train describe|forecast|detect|jepa`: one set of options for every training command.

    tamms train TASK --config FILE [--out DIR] [--resume] [--overwrite] [--set key=value ...]
                     [--stage NAME] [--max-minutes M]

The config is one typed schema (`tamms.config.TrainConfig`); ablations are `--set` overrides; a multi-stage
recipe is one config with `stages`. `--resume` continues a killed run from its last checkpoint (written every
`trainer.checkpoint_every` steps) and gives the weights an uninterrupted run would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

TASK_HELP = {
    "describe": "Train the change describer (TAMMs: PTE + CTP on a small VLM). Example config: "
                "src/tamms/configs/describe.yaml",
    "forecast": "Train forecasters: the TAMMs U-Net + SFCI control module (stages unet, structural, semantic, "
                "anneal) or the SimVP / ConvLSTM baselines. Example config: src/tamms/configs/forecast.yaml",
    "detect": "Train a change detector (siamese CNN or UniChange). Example config: "
              "src/tamms/configs/detect_siamese.yaml",
    "jepa": "Train Sat-JEPA-Diff (coarse-RGB or caption-guided Zero-RGB). Example config: "
            "src/tamms/configs/jepa.yaml",
}


def run_train(task: str, config: Path, out: Optional[Path], resume: bool, overwrite: bool,
              overrides: List[str], stage: Optional[str], max_minutes: Optional[float]) -> Path:
    from tamms.config import load_train_config
    from tamms.tasks.base import train

    cfg = load_train_config(config, overrides, task=task)
    folder = train(cfg, out=out, resume=resume, overwrite=overwrite, stage=stage, max_minutes=max_minutes)
    typer.echo(f"saved {folder}")
    return folder


def _command(task: str):
    def command(
        config: Path = typer.Option(..., "--config", "-c", help="Training config (YAML or JSON)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the trained model (default: the "
                                           "config's `out`)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out "
                                    "(finished stages are skipped)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
        overrides: List[str] = typer.Option([], "--set", help="Override a config value: --set optim.lr=1e-4 "
                                            "(repeatable; dotted keys; wins over a recipe stage's own value)."),
        stage: Optional[str] = typer.Option(None, "--stage", help="Run the stages up to this one only (earlier "
                                            "stages must have run in --out; with init_from set, this stage alone "
                                            "starts from it)."),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Wall-clock cap per stage "
                                                    "(overrides trainer.max_minutes)."),
    ) -> None:
        run_train(task, config, out, resume, overwrite, overrides, stage, max_minutes)

    command.__doc__ = TASK_HELP[task]
    return command


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    for task in TASK_HELP:
        train_app.command(task)(_command(task))

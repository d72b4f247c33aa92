"""`tamms data`: look at data (`inspect`) and make the synthetic world (`synth`).

Heavy libraries (rasterio, torch) are imported inside the commands so `tamms --help` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Inspect SITS data and generate the synthetic world.", no_args_is_help=True)


def _parse_bands(bands: Optional[str]) -> Optional[list]:
    if not bands:
        return None
    return [int(b) if b.strip().lstrip("-").isdigit() else b.strip() for b in bands.split(",") if b.strip()]


@data_app.command("inspect")
def inspect_command(
    path: Path = typer.Argument(..., help="A sequence folder, a folder of dated images, a LEVIR-CD folder, "
                                          "or a folder of sequence folders."),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Contact sheet PNG to write "
                                         "(default ./<name>_contact_sheet.png; a contact sheet already there is "
                                         "replaced, so inspect can be run again)."),
    no_sheet: bool = typer.Option(False, "--no-sheet", help="Only print the table."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file at the sheet path even "
                                   "when it is not a contact sheet."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Bands to read, by 0-based index or name: 0,1,2"),
    scaling: str = typer.Option("auto", "--scaling", help="auto | percentile | none | a divisor (10000)."),
    limit: int = typer.Option(20, "--limit", help="Rows shown for a folder of many sequences."),
    dates: Optional[str] = typer.Option(None, "--dates", help="Dates of the images (comma-separated, in file "
                                        "name order) when their names carry none: 2019-09-04,2020-08-31"),
) -> None:
    """Print a summary table (dates, gaps, bands, dtype, CRS, size, nodata) and write a contact sheet."""
    from rich.console import Console
    from rich.table import Table

    from tamms.data.inspect import contact_sheet, inspect_path, is_contact_sheet
    from tamms.errors import OutputExistsError

    read_kwargs = {"scaling": scaling}
    if bands:
        read_kwargs["bands"] = _parse_bands(bands)
    if dates:
        read_kwargs["dates"] = [d.strip() for d in dates.split(",") if d.strip()]
    out = None
    if not no_sheet:
        out = sheet or Path.cwd() / f"{path.resolve().name}_contact_sheet.png"
        if out.exists() and not overwrite and not is_contact_sheet(out):  # fail before the reading work
            raise OutputExistsError(f"{out} already exists and is not a contact sheet: choose another --sheet path "
                                    "or pass --overwrite")
    report = inspect_path(path, limit=limit, **read_kwargs)
    console = Console()
    if not console.is_terminal:  # pipes and tests: wide enough that dates are never cut
        console = Console(width=160)
    table = Table(title=f"{report.name} ({report.kind})", title_justify="left")
    for col in report.columns:
        table.add_column(col, justify="right" if col in ("#", "gap (days)", "bands", "frames", "nodata",
                                                           "changed") else "left", no_wrap=True)
    for row in report.rows:
        table.add_row(*row)
    console.print(table)
    for line in report.summary:
        console.print(line, highlight=False)
    if out is not None:
        contact_sheet(report, out, overwrite=overwrite)
        console.print(f"contact sheet: {out}", highlight=False)


@data_app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the synthetic world into."),
    n: int = typer.Option(100, "--n", min=1, help="Number of sequences."),
    size: int = typer.Option(64, "--size", min=8, help="Frame size in pixels."),
    frames: int = typer.Option(4, "--frames", min=2, help="Frames per sequence (plus a future frame)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same world)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing sequence folders."),
) -> None:
    """Write N synthetic sequences (sequence.json folders with exact ground truth)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tamms.data import synthetic

    console = Console()
    start = time.perf_counter()
    with Progress(TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("synth", total=n)
        paths = _write_with_progress(synthetic, out, n, size, frames, seed, overwrite,
                                     lambda k: progress.update(task, completed=k))
    took = time.perf_counter() - start
    console.print(f"wrote {len(paths)} sequences of {frames} frames at {size}x{size} px to {out} "
                  f"in {took:.1f} s (seed {seed})", highlight=False)


def _write_with_progress(synthetic, out, n, size, frames, seed, overwrite, report) -> list:  # noqa: ANN001
    """Run `write_world`, moving the bar by counting the sequence folders it has finished."""
    import inspect
    import threading

    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            report(min(n, sum(1 for _ in Path(out).glob("*/sequence.json"))) if Path(out).is_dir() else 0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        kwargs = {"progress": False} if "progress" in inspect.signature(synthetic.write_world).parameters else {}
        paths = synthetic.write_world(out, n, size=size, frames=frames, seed=seed, overwrite=overwrite, **kwargs)
    finally:
        done.set()
        watcher.join()
    report(n)
    return list(paths)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

"""The `tamms` command.

Each command group lives in its own module of this package and adds itself through
`register(app, train_app)`; modules are found by name, so a new group needs no edit here.
Command modules import heavy libraries inside the command functions, so `tamms --help` stays fast.

Errors: a `TammsError` is printed on one line and the process exits with status 2;
`--debug` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click
import typer

from tamms.errors import TammsError

app = typer.Typer(
    name="tamms",
    help="Satellite image time series: describe what changed, forecast what comes next, "
    "detect where it changed, and evaluate all of it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the models (configs in YAML or JSON; defaults reproduce the shipped weights).",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

# groups listed first in --help, in this order; others follow alphabetically
_ORDER = ["demo", "data", "describe", "forecast", "detect", "evaluate", "benchmark"]


def _command_modules() -> list[str]:
    import tamms.cli as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


for _name in _command_modules():
    _module = importlib.import_module(f"tamms.cli.{_name}")
    if hasattr(_module, "register"):
        _module.register(app, train_app)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        from tamms import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    try:
        result = app(args=args, prog_name="tamms", standalone_mode=False)
    except TammsError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    if isinstance(result, int) and result:
        sys.exit(result)


if __name__ == "__main__":  # pragma: no cover
    main()

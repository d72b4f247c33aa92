"""Errors that tell the user what is wrong and what to do.

Every error raised for bad input is a `TammsError` subclass whose message names the problem and the
fix. The CLI prints it on one line and exits with status 2 (`--debug` shows the traceback).
"""

from __future__ import annotations


class TammsError(Exception):
    """Base class of all user-facing errors."""

    exit_code = 2


class InputError(TammsError, ValueError):
    """The input data is unusable as given (corrupt file, NaN frame, one frame where two are needed...)."""


class DateError(InputError):
    """Dates missing, unparseable, duplicated, or not in the expected order."""


class AlignmentError(InputError):
    """Frames cannot be brought onto one grid (different CRS far apart, different band counts...)."""


class EmptyInputError(InputError):
    """A folder or file list holds nothing usable."""


class OutputExistsError(TammsError, FileExistsError):
    """Refusing to overwrite an existing file without `overwrite=True` / `--overwrite`."""


class ConfigError(TammsError, ValueError):
    """A configuration file or option is invalid."""


class MissingWeightsError(TammsError, FileNotFoundError):
    """Model weights or a pretrained backbone folder are not where they were expected."""


class MetricUnavailableError(TammsError, RuntimeError):
    """A metric cannot be computed here (for example its weight file is not in the local cache)."""

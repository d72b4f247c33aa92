"""tamms: satellite image time series — describe, forecast, detect, and measure change.

Heavy libraries (torch, diffusers, transformers, lightning) are imported by the modules that need
them, not here, so `import tamms` and the `tamms` command start fast.
"""

__version__ = "0.1.0"

from tamms.errors import TammsError  # noqa: E402

__all__ = ["TammsError", "__version__"]

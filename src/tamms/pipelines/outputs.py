"""What forecasting pipelines return (shared by `ForecastPipeline` and `SatJEPAPipeline`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import torch

from tamms.data.sequence import from_days


@dataclass
class ForecastOutput:
    images: torch.Tensor  # [B, K, C, H, W] samples in [0, 1]
    mean: torch.Tensor  # [B, C, H, W]
    spread: torch.Tensor | None  # [B, C, H, W] per-pixel standard deviation over the K samples (K > 1)
    target_days: torch.Tensor  # [B] days since 1970-01-01
    texts: list[str] | None = None  # the descriptions that conditioned the forecast, when used
    trajectory: list["ForecastOutput"] = field(default_factory=list)  # one output per date of a rollout
    # every band of the input, in its order [B, C_in, H, W] in [0, 1]: the RGB forecast (`mean`) in the RGB bands,
    # the other bands (NIR, SWIR, ...) carried along by `tamms.pipelines.forecast.transfer_bands`
    bands: torch.Tensor | None = None
    band_names: list[str] | None = None

    @property
    def target_dates(self) -> list[dt.date]:
        return [from_days(float(d)) for d in self.target_days]

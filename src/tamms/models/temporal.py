"""Physical Time Encoder (PTE, TAMMs sec. 3.1, eq. 4) and the time-feature map phi(dt).

PTE makes the time gap between two frames an explicit input of the language model: one learnable
`[TIME_DIFF]` token is inserted between the visual tokens of each consecutive pair of frames, and its
embedding is

    t_i = e_[TIME_DIFF] + MLP_time(phi(dt_i))                                   (eq. 4)

`phi` must cover gaps from a few days to several decades (satellite archives reach back to the
1980s), so it mixes a log-scaled gap, a linear gap in decades, sinusoids of the log gap at several
frequencies (fine resolution at every scale) and the season phase of the gap (a 12-month gap looks
alike in season, a 6-month gap does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

DAYS_PER_YEAR = 365.25
# log1p of a century in days: the log feature is ~1 at 100 years
_LOG_CENTURY = math.log1p(100 * DAYS_PER_YEAR)


def time_features(dt_days: torch.Tensor, num_frequencies: int = 6) -> torch.Tensor:
    """phi(dt): `[...]` gaps in days (>= 0) -> `[..., 4 + 2 * num_frequencies]` float features.

    Features: log1p(days)/log1p(century), years/10, sin/cos(2 pi days/365.25) (season phase),
    and sin/cos(w_k * log1p(days)) for w_k geometric in [0.5, 8].
    """
    days = dt_days.to(torch.float32).clamp(min=0.0)
    log_days = torch.log1p(days)
    feats = [
        (log_days / _LOG_CENTURY).unsqueeze(-1),
        (days / DAYS_PER_YEAR / 10.0).unsqueeze(-1),
        torch.sin(2 * math.pi * days / DAYS_PER_YEAR).unsqueeze(-1),
        torch.cos(2 * math.pi * days / DAYS_PER_YEAR).unsqueeze(-1),
    ]
    if num_frequencies > 0:
        freqs = torch.logspace(math.log10(0.5), math.log10(8.0), num_frequencies, device=days.device)
        angles = log_days.unsqueeze(-1) * freqs  # [..., K]
        feats += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(feats, dim=-1)


@dataclass
class PTEConfig:
    hidden_size: int = 192  # the language model's embedding size
    num_frequencies: int = 6
    mlp_hidden: int = 128

    @property
    def num_features(self) -> int:
        return 4 + 2 * self.num_frequencies


class PhysicalTimeEncoder(nn.Module):
    """gaps `[B, T-1]` (days) -> `[B, T-1, D]` embeddings of the `[TIME_DIFF]` tokens (eq. 4)."""

    def __init__(self, config: PTEConfig):
        super().__init__()
        self.config = config
        # e_[TIME_DIFF]: PTE's own learnable vector, so it trains even when the LM's embedding table is frozen
        self.time_token = nn.Parameter(torch.randn(config.hidden_size) * 0.02)
        self.mlp = nn.Sequential(
            nn.Linear(config.num_features, config.mlp_hidden),
            nn.SiLU(),
            nn.Linear(config.mlp_hidden, config.hidden_size),
        )

    def forward(self, dt_days: torch.Tensor) -> torch.Tensor:
        phi = time_features(dt_days, self.config.num_frequencies).to(self.time_token.dtype)  # [..., F]
        return self.time_token + self.mlp(phi)  # [..., D]


def gaps_from_days(days: torch.Tensor) -> torch.Tensor:
    """`[T]` days since epoch -> `[T-1]` gaps in days between consecutive frames."""
    return days[1:] - days[:-1]

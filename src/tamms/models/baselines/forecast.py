"""Forecasting baselines: persistence, linear per-pixel trend, SimVP, ConvLSTM (PredRNN-style).

All take history frames `[B, T, C, H, W]` in [0, 1], their dates and the target date (days since
1970-01-01) and return the forecast `[B, C, H, W]`. The learned ones see the same time information
as the TAMMs forecaster: each history frame carries its gap to the target date as an extra input plane
(log(1 + gap / 1 year)), so they can be asked for any date. Both learned baselines predict the change
from the last frame (output = last frame + network output): the network only has to learn what moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tamms.models.base import PretrainedModel


def gap_planes(history_days: torch.Tensor, target_days: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, T] and [B] days -> [B, T, 1, H, W] planes of log(1 + (target - frame) / 365.25)."""
    gaps = (target_days[:, None] - history_days).float().clamp(min=0)  # [B, T]
    feat = torch.log1p(gaps / 365.25)
    return feat[:, :, None, None, None].expand(-1, -1, 1, *size)  # [B, T, 1, H, W]


def persistence(history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor) -> torch.Tensor:
    """Copy the last frame."""
    return history[:, -1]


def linear_trend(history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor) -> torch.Tensor:
    """Least-squares line through each pixel's history, evaluated at the target date, clipped to [0, 1]."""
    t = history_days.float()  # [B, T]
    t_mean = t.mean(dim=1, keepdim=True)
    dt = (t - t_mean)[:, :, None, None, None]  # [B, T, 1, 1, 1]
    y_mean = history.mean(dim=1, keepdim=True)  # [B, 1, C, H, W]
    denom = (dt**2).sum(dim=1).clamp(min=1e-6)  # [B, 1, 1, 1]
    slope = (dt * (history - y_mean)).sum(dim=1) / denom  # [B, C, H, W] per day
    target_offset = (target_days.float() - t_mean[:, 0])[:, None, None, None]  # [B, 1, 1, 1]
    return (y_mean[:, 0] + slope * target_offset).clamp(0, 1)


@dataclass
class SimVPConfig:
    """SimVP (Gao et al. 2022): per-frame conv encoder, a conv translator over stacked time, decoder."""

    channels: int = 3
    history: int = 3
    hidden: int = 32  # spatial encoder width
    translator: int = 128  # width of the translator over T*hidden channels
    translator_blocks: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(4, c_out), nn.SiLU())


class InceptionBlock(nn.Module):
    """SimVP's gInception translator block: parallel grouped convs of several kernel sizes."""

    def __init__(self, channels: int):
        super().__init__()
        self.inp = nn.Conv2d(channels, channels // 2, 1)
        self.branches = nn.ModuleList([nn.Conv2d(channels // 2, channels, k, 1, k // 2, groups=8) for k in (3, 5, 7)])
        self.norm = nn.GroupNorm(8, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return x + F.silu(self.norm(sum(branch(h) for branch in self.branches)))


class SimVP(PretrainedModel):
    model_type = "simvp"
    config_class = SimVPConfig
    train_command = "tamms train forecast --config src/tamms/configs/forecast_simvp.yaml"
    multiple_of = 4  # two stride-2 convs: inputs are padded to a multiple of 4

    def __init__(self, cfg: SimVPConfig, in_planes: int = 1, out_channels: int | None = None):
        """in_planes: input planes per frame besides its bands (the gap plane); out_channels: head outputs (the
        change of every band). A network built on this trunk with other inputs or outputs passes its own."""
        super().__init__()
        self.cfg = cfg
        c, hid = cfg.channels, cfg.hidden
        self.enc1 = _conv(c + in_planes, hid)
        self.enc2 = nn.Sequential(_conv(hid, hid, 2), _conv(hid, hid, 2))  # H/4
        self.translate_in = nn.Conv2d(cfg.history * hid, cfg.translator, 1)
        self.translator = nn.Sequential(*[InceptionBlock(cfg.translator) for _ in range(cfg.translator_blocks)])
        self.translate_out = nn.Conv2d(cfg.translator, hid, 1)
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(hid, hid),
                                 nn.Upsample(scale_factor=2, mode="nearest"), _conv(hid, hid))
        self.head = nn.Conv2d(2 * hid, c if out_channels is None else out_channels, 3, 1, 1)  # decoder + last skip
        if out_channels is None:  # SimVP predicts the change from the last frame: it starts as persistence
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, P, H, W] (each frame's planes) -> the head's output [B, out_channels, H, W]."""
        b, t, p, h, w = x.shape
        skip = self.enc1(x.reshape(b * t, p, h, w))  # [B*T, hid, H, W]
        z = self.enc2(skip)  # [B*T, hid, H/4, W/4]
        z = z.reshape(b, t * z.shape[1], *z.shape[2:])  # [B, T*hid, H/4, W/4]
        z = self.translate_out(self.translator(self.translate_in(z)))  # [B, hid, H/4, W/4]
        y = self.dec(z)  # [B, hid, H, W]
        last_skip = skip.reshape(b, t, -1, h, w)[:, -1]  # [B, hid, H, W]
        return self.head(torch.cat([y, last_skip], dim=1))

    def forward(self, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor) -> torch.Tensor:
        h, w = history.shape[-2:]
        x = torch.cat([history, gap_planes(history_days, target_days, (h, w))], dim=2)  # [B, T, C+1, H, W]
        return (history[:, -1] + self.trunk(x)).clamp(0, 1)


@dataclass
class ConvLSTMConfig:
    """Stacked ConvLSTM (Shi et al. 2015) as PredRNN runs it: a stack of cells unrolled over time."""

    channels: int = 3
    hidden: int = 32
    layers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class ConvLSTMCell(nn.Module):
    def __init__(self, c_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(c_in + hidden, 4 * hidden, 3, 1, 1)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(PretrainedModel):
    model_type = "convlstm"
    config_class = ConvLSTMConfig
    train_command = "tamms train forecast --config src/tamms/configs/forecast_convlstm.yaml"
    multiple_of = 2
    history = 3  # frames it is fed (it runs on any number; the shipped weights were trained on 3)

    def __init__(self, cfg: ConvLSTMConfig):
        super().__init__()
        self.cfg = cfg
        c, hid = cfg.channels, cfg.hidden
        self.enc = nn.Sequential(_conv(c + 1, hid), _conv(hid, hid, 2))  # H/2
        self.cells = nn.ModuleList([ConvLSTMCell(hid, hid) for _ in range(cfg.layers)])
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(hid, hid))
        self.head = nn.Conv2d(hid, c, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = history.shape
        planes = gap_planes(history_days, target_days, (h, w))  # [B, T, 1, H, W]
        # the last step reads the last frame with a zero gap plane replaced by its gap to the target
        x = torch.cat([history, planes], dim=2)  # [B, T, C+1, H, W]
        feats = self.enc(x.reshape(b * t, c + 1, h, w))  # [B*T, hid, H/2, W/2]
        feats = feats.reshape(b, t, *feats.shape[1:])  # [B, T, hid, H/2, W/2]
        states = [(torch.zeros_like(feats[:, 0]), torch.zeros_like(feats[:, 0])) for _ in self.cells]
        for step in range(t):
            inp = feats[:, step]
            for i, cell in enumerate(self.cells):
                states[i] = cell(inp, states[i])
                inp = states[i][0]
        delta = self.head(self.dec(inp))  # [B, C, H, W]
        return (history[:, -1] + delta).clamp(0, 1)

"""Semantic-Fused Control Injection (TAMMs sec. 3.2, appendix A.5): the Enhanced Control Module.

The ECM runs in parallel with a frozen diffusion U-Net. For every level l of the U-Net encoder
(every entry of `down_block_res_samples`, plus the mid block) it

1. structural path (eq. 5): stacks the encoder features of the history frames and of the current noisy
   sample along time, `[B, C_l, T+1, H_l, W_l]`, and runs a 3D control block (spatial 1x3x3 conv,
   FiLM by a per-frame time embedding, temporal 3x1x1 conv) -> `h_ctrl`;
2. semantic path (eq. 6): `SemProc_l(M_t)` -> `s_proj [B, C_l]`, tiled over time and space -> `s`;
3. adaptive gated fusion (eq. 7): `g = tile(sigmoid(Gate_l(s_proj)))`, `f = (1 - g) * h_ctrl + g * s`;
4. temporal refinement (eq. 8): a transformer over the T+1 time steps of every pixel,
   `z = alpha_l * TempTrans(f) + (1 - alpha_l) * f` with `alpha_l = sigmoid(a_l)` in [0, 1];
5. aggregates z over time (learned per-pixel softmax weights) and adds it, through a zero-initialised
   1x1 conv, to the decoder's skip connection (`down_block_additional_residuals`,
   `mid_block_additional_residual` of diffusers), as ControlNet does.

Additions the paper leaves open, chosen here: every time step carries an embedding of its distance (in
days) to the requested target date, so any future date can be asked for (the paper only does t+1); the
noisy sample's step carries the diffusion timestep instead. The description's text embeddings reach the
U-Net's cross-attention through a small adapter (text guidance).

Parameter sets (A.5): `structural_parameters()` = control blocks, time embeddings, aggregation and
output convs (theta_st, stage 1); `semantic_parameters()` = SemProc, gates, temporal transformers,
alphas and the text adapter (theta_s-t, stages 2 and 3).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import ConfigError, MissingWeightsError
from tamms.models.base import PretrainedModel
from tamms.models.unet import decode_unet, encode_unet, residual_channels, residual_resolutions


@dataclass
class ECMConfig:
    """Enhanced Control Module. `semantic_dim`/`text_dim` must match the describer's M_t and text embeddings."""

    semantic_dim: int = 256
    text_dim: int = 256
    cross_attention_dim: int = 64  # of the U-Net
    time_embed_dim: int = 64
    # 3D control blocks per level in the structural path. The paper's control branch is a trainable copy
    # of the encoder; on CPU it is scaled down to `control_depth` blocks per resolution.
    control_depth: int = 1
    semproc_hidden: int = 128
    temporal_heads: int = 4
    gate_bias_init: float = -3.0  # gates start nearly closed, so stage 2 begins from stage 1's output
    alpha_init: float = -3.0  # alpha = sigmoid(-3) ~ 0.05 at the start of stage 2
    gap_scale_days: float = 365.25
    # ablations (TAMMs table 2): switch the semantic fusion, text guidance or temporal transformer off
    use_semantic: bool = True
    use_text: bool = True
    use_temporal: bool = True

    def __post_init__(self) -> None:
        if self.control_depth < 1:  # 0 would otherwise build one block silently
            raise ConfigError(f"ecm.control_depth is {self.control_depth}: give 1 or more control blocks per level")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[N] -> [N, dim] sinusoidal features (as diffusion timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values.float()[:, None] * freqs[None, :]  # [N, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class FrameTimeEmbedding(nn.Module):
    """One embedding per time step: history frames by their gap to the target, the noisy sample by tau."""

    def __init__(self, dim: int, gap_scale_days: float):
        super().__init__()
        self.dim = dim
        self.gap_scale_days = gap_scale_days
        self.kind = nn.Embedding(2, dim)  # 0 = history frame, 1 = noisy sample
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, gaps_days: torch.Tensor, diffusion_t: torch.Tensor) -> torch.Tensor:
        """gaps_days [B, T] (target minus frame date, > 0), diffusion_t [B] -> [B, T+1, dim]."""
        b, t = gaps_days.shape
        # gaps from days to decades: embed log-years so both ends get resolution
        log_gap = torch.log1p(gaps_days.float().clamp(min=0) / self.gap_scale_days) * 1000.0
        gap_feat = sinusoidal(log_gap.reshape(-1), self.dim).reshape(b, t, self.dim)  # [B, T, dim]
        tau_feat = sinusoidal(diffusion_t.float().reshape(-1), self.dim).reshape(b, 1, self.dim)  # [B, 1, dim]
        feats = torch.cat([gap_feat, tau_feat], dim=1)  # [B, T+1, dim]
        kinds = torch.cat([torch.zeros(b, t, dtype=torch.long), torch.ones(b, 1, dtype=torch.long)], 1).to(feats.device)
        return self.mlp(torch.cat([feats, self.kind(kinds)], dim=-1))  # [B, T+1, dim]


def _groups(channels: int) -> int:
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class ControlBlock3D(nn.Module):
    """Structural path of one level (eq. 5): a factorised 3D conv block, FiLM-modulated per time step.

    Spatial 3x3 conv per frame, then a temporal conv of kernel 3 written as one 1x1 conv to 3C channels
    whose thirds are summed from the previous, same and next frame (same result as Conv3d(3,1,1), but
    it runs on the fast 2D conv kernels and needs no transposes).
    """

    def __init__(self, channels: int, time_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.spatial = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(time_dim, 2 * channels)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        self.temporal = nn.Conv2d(channels, 3 * channels, 1)

    def taps(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Per-frame part: x [N, C, H, W], temb [N, time_dim] -> [N, 3C, H, W] (taps for t-1, t, t+1)."""
        y = self.spatial(F.silu(self.norm1(x)))
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)  # [N, C, 1, 1] each
        return self.temporal(F.silu(self.norm2(y) * (1 + scale) + shift))

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cached_taps: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, C, H, W], temb [B, T, time_dim] -> [B, T, C, H, W].

        cached_taps: the per-frame part of the first k frames, `[B*k, 3C, H, W]`, computed once per forecast
        (frames whose input does not depend on the noisy sample are the same at every sampler step).
        """
        b, t, c, h, w = x.shape
        k = 0 if cached_taps is None else cached_taps.shape[0] // b
        new = self.taps(x[:, k:].reshape(b * (t - k), c, h, w), temb[:, k:].reshape(b * (t - k), -1))
        y = new.reshape(b, t - k, 3, c, h, w)  # [B, T-k, 3, C, H, W]
        if k:
            y = torch.cat([cached_taps.reshape(b, k, 3, c, h, w), y], dim=1)  # [B, T, 3, C, H, W]
        out = y[:, :, 1].clone()
        out[:, 1:] += y[:, :-1, 0]  # frame t-1 seen from t
        out[:, :-1] += y[:, 1:, 2]  # frame t+1 seen from t
        return x + out


class SemanticProcessor(nn.Module):
    """SemProc_l (eq. 6): M_t [B, D] -> s_proj [B, C_l]; and Gate_l (eq. 7)."""

    def __init__(self, semantic_dim: int, hidden: int, channels: int, gate_bias_init: float):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(semantic_dim), nn.Linear(semantic_dim, hidden), nn.SiLU(),
                                  nn.Linear(hidden, channels))
        self.gate = nn.Linear(channels, channels)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, gate_bias_init)

    def forward(self, semantic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_proj = self.proj(semantic)  # [B, C]
        gate = torch.sigmoid(self.gate(s_proj))  # [B, C], in (0, 1)
        return s_proj, gate


class TemporalRefiner(nn.Module):
    """TempTrans_l with the learned mixing weight alpha_l in [0, 1] (eq. 8)."""

    def __init__(self, channels: int, heads: int, alpha_init: float):
        super().__init__()
        heads = max(1, min(heads, channels // 8)) if channels >= 8 else 1
        while channels % heads:
            heads -= 1
        self.layer = nn.TransformerEncoderLayer(channels, heads, dim_feedforward=2 * channels, dropout=0.0,
                                                batch_first=True, norm_first=True)
        self.alpha_logit = nn.Parameter(torch.tensor(float(alpha_init)))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = f.shape
        seq = f.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)  # Psi: [B*H*W, T, C], time is the sequence
        out = self.layer(seq)
        out = out.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)  # Psi^-1: [B, T, C, H, W]
        return self.alpha * out + (1 - self.alpha) * f


class ECMLevel(nn.Module):
    """One resolution of the U-Net: control block, semantic processor + gate, temporal transformer, pooling."""

    def __init__(self, channels: int, cfg: ECMConfig):
        super().__init__()
        self.ctrl = ControlBlock3D(channels, cfg.time_embed_dim)
        # each block lets the noisy sample reach one more history frame: block j caches T-j frames' taps
        self.ctrl_more = nn.ModuleList([ControlBlock3D(channels, cfg.time_embed_dim)
                                        for _ in range(cfg.control_depth - 1)])
        self.semantic = SemanticProcessor(cfg.semantic_dim, cfg.semproc_hidden, channels, cfg.gate_bias_init)
        self.temporal = TemporalRefiner(channels, cfg.temporal_heads, cfg.alpha_init)
        self.pool = nn.Conv2d(channels, 1, kernel_size=1)  # per-pixel logits of each time step


def zero_conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class EnhancedControlModule(nn.Module):
    """The ECM for a given U-Net; `forward` returns (down residuals, mid residual) for that U-Net.

    A level is one resolution of the U-Net encoder: its input is the deepest feature map at that
    resolution (the mid block output for the lowest), its output feeds, through one zero conv each,
    every skip connection at that resolution (and the mid block at the lowest).
    """

    def __init__(self, cfg: ECMConfig, level_channels: list[int], residual_channels: list[int],
                 residual_levels: list[int]):
        super().__init__()
        self.cfg = cfg
        self.level_channels = list(level_channels)
        self.residual_levels = list(residual_levels)  # level of each down residual; the mid is the last level
        self.time_embed = FrameTimeEmbedding(cfg.time_embed_dim, cfg.gap_scale_days)
        self.levels = nn.ModuleList([ECMLevel(c, cfg) for c in level_channels])
        self.zero_convs = nn.ModuleList([zero_conv(level_channels[lv], c)
                                         for lv, c in zip(residual_levels, residual_channels)])
        self.mid_zero_conv = zero_conv(level_channels[-1], level_channels[-1])
        self.text_adapter = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, cfg.cross_attention_dim))
        # stage 1 bypasses the semantic-temporal path (A.5.1: "zeroing out its output")
        self.structural_only = False

    @classmethod
    def for_unet(cls, cfg: ECMConfig, unet) -> "EnhancedControlModule":
        chans, mid = residual_channels(unet)
        levels, last = residual_resolutions(unet)
        level_channels = [chans[max(i for i, lv in enumerate(levels) if lv == r)] for r in range(last)] + [mid]
        cfg.cross_attention_dim = unet.config.cross_attention_dim
        return cls(cfg, level_channels, chans, levels)

    def level_inputs(self, res_samples: list[torch.Tensor], mid: torch.Tensor) -> list[torch.Tensor]:
        """The feature map each level reads: the last residual of each resolution, and the mid output."""
        n = len(self.levels)
        last = {lv: i for i, lv in enumerate(self.residual_levels)}
        return [res_samples[last[r]] for r in range(n - 1)] + [mid]

    # --- parameter sets of the staged training ---------------------------------------------------
    def structural_parameters(self) -> list[nn.Parameter]:
        params = [*self.time_embed.parameters(), *self.zero_convs.parameters(), *self.mid_zero_conv.parameters()]
        for level in self.levels:
            params += [*level.ctrl.parameters(), *level.ctrl_more.parameters(), *level.pool.parameters()]
        return params

    def semantic_parameters(self) -> list[nn.Parameter]:
        params = list(self.text_adapter.parameters())
        for level in self.levels:
            params += [*level.semantic.parameters(), *level.temporal.parameters()]
        return params

    def gates_and_alphas(self, semantic: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        gates = [level.semantic(semantic)[1] for level in self.levels]
        return gates, [level.temporal.alpha for level in self.levels]

    # --- conditioning ------------------------------------------------------------------------------
    def text_states(self, text_embeddings: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        """Cross-attention input of the U-Net: adapted description tokens, or one null token."""
        if text_embeddings is None or self.structural_only or not self.cfg.use_text:
            return torch.zeros(batch, 1, self.cfg.cross_attention_dim, device=device)
        return self.text_adapter(text_embeddings)  # [B, L, cross_dim]

    def forward(self, history_features: list[torch.Tensor], noisy_features: list[torch.Tensor],
                gaps_days: torch.Tensor, diffusion_t: torch.Tensor,
                semantic: torch.Tensor | None = None, cache: dict | None = None
                ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """history_features[l] [B, T, C_l, H_l, W_l], noisy_features[l] [B, C_l, H_l, W_l] -> residuals.

        cache: a dict kept across the sampler steps of one forecast; it holds the history frames' part
        of the control blocks, which does not depend on the noisy sample or the diffusion step.
        """
        temb = self.time_embed(gaps_days, diffusion_t)  # [B, T+1, time_dim]
        use_sem = semantic is not None and self.cfg.use_semantic and not self.structural_only
        use_temp = self.cfg.use_temporal and not self.structural_only
        outputs = []
        for i, (level, hist, cur) in enumerate(zip(self.levels, history_features, noisy_features)):
            f = torch.cat([hist, cur.unsqueeze(1)], dim=1)  # [B, T+1, C, H, W]
            b, t = hist.shape[:2]
            for j, block in enumerate([level.ctrl, *level.ctrl_more]):  # h_ctrl, eq. 5
                # the noisy sample (frame T) reaches one more frame per block through the temporal conv, so
                # the input of block j's first T-j frames is the same at every sampler step: cache their taps
                fixed = t - j
                if cache is None or fixed <= 0:
                    f = block(f, temb)
                    continue
                if (i, j) not in cache:
                    cache[(i, j)] = block.taps(f[:, :fixed].reshape(b * fixed, *f.shape[2:]),
                                               temb[:, :fixed].reshape(b * fixed, -1))  # [B*(T-j), 3C, H, W]
                f = block(f, temb, cache[(i, j)])
            if use_sem:
                s_proj, gate = level.semantic(semantic)  # [B, C] each, eq. 6-7
                s = s_proj[:, None, :, None, None]  # tiled over T, H, W by broadcasting
                g = gate[:, None, :, None, None]
                f = (1 - g) * f + g * s
            if use_temp:
                f = level.temporal(f)  # eq. 8
            b, t, c, h, w = f.shape
            logits = level.pool(f.reshape(b * t, c, h, w)).reshape(b, t, 1, h, w)  # [B, T+1, 1, H, W]
            outputs.append((torch.softmax(logits, dim=1) * f).sum(dim=1))  # aggregated over time: [B, C, H, W]
        down = tuple(conv(outputs[lv]) for conv, lv in zip(self.zero_convs, self.residual_levels))
        return down, self.mid_zero_conv(outputs[-1])


@dataclass
class SFCIConfig:
    """The whole forecaster: frozen U-Net + ECM, how the diffusion is parameterised, and its saved form.

    unet: the frozen U-Net's folder (diffusers format: config.json + diffusion_pytorch_model.safetensors, e.g.
    the shipped `weights/tamms-unet/` or a DiffusionSat checkpoint), relative to the saved folder or absolute.
    structural_only: the stage-1 ECM ("base control"): the semantic-temporal path is bypassed.
    default_steps / strength / start_from: the sampler settings the weights were tuned with (`tamms forecast`
    defaults); with strength < 1 the sampler starts from the forecast of the forecaster `start_from` names (a
    shipped name or folder, e.g. "change-trend"), or from the last frame when it is None.
    trend_from: a deterministic forecaster (shipped name or folder, e.g. "change-trend") whose forecast for the
    target date the ECM reads as one more frame after the history, at gap 0: the diffusion model learns how
    far to follow that trend (as DiffCast conditions its diffusion on a deterministic forecast) instead of the
    sampler being started from it. Part of the architecture: the ECM is trained with it.
    """

    history: int = 3
    prediction_type: str = "sample"  # the U-Net predicts the clean image (see docs/forecast.md)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    channels: int = 3
    ecm: ECMConfig = field(default_factory=ECMConfig)
    unet: str = "unet"
    structural_only: bool = False
    default_steps: int | None = None
    strength: float = 1.0
    start_from: str | None = None
    trend_from: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SFCIConfig":
        d = dict(d)
        try:
            ecm = ECMConfig(**dict(d.pop("ecm", {})))
        except TypeError as exc:
            raise ConfigError(f"bad ecm config ({exc}); valid keys: {list(ECMConfig.__dataclass_fields__)}") from None
        try:
            return cls(ecm=ecm, **d)
        except TypeError as exc:
            raise ConfigError(f"bad forecaster config ({exc}); valid keys: {list(cls.__dataclass_fields__)}") from None


class SFCIForecaster(PretrainedModel):
    """Frozen U-Net + Enhanced Control Module: predicts the model output for a noisy future frame.

    Saved form: config.json (`SFCIConfig`, whose `unet` names the U-Net folder) + model.safetensors holding the
    ECM only; the frozen U-Net is stored once, in its own diffusers folder, and shared by every ECM variant.
    """

    model_type = "tamms-sfci"
    config_class = SFCIConfig
    train_command = "tamms train forecast"

    def __init__(self, unet, ecm: EnhancedControlModule, cfg: SFCIConfig):
        super().__init__()
        self.unet = unet
        self.ecm = ecm
        self.cfg = cfg
        self.unet_folder: Path | None = None  # where the U-Net was loaded from (kept by save_pretrained)
        ecm.structural_only = ecm.structural_only or cfg.structural_only
        self.unet.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: SFCIConfig, unet) -> "SFCIForecaster":
        """A forecaster with a fresh ECM for `unet` (a diffusers UNet2DConditionModel)."""
        cfg.channels = int(unet.config.in_channels)
        return cls(unet, EnhancedControlModule.for_unet(cfg.ecm, unet), cfg)

    # --- saving: the ECM and the config; the U-Net stays in its own folder --------------------------
    @classmethod
    def build_pretrained(cls, cfg: SFCIConfig, folder: Path) -> "SFCIForecaster":
        from tamms.models.unet import load_unet

        unet_dir = Path(cfg.unet) if Path(cfg.unet).is_absolute() else Path(folder) / cfg.unet
        if not (unet_dir / "config.json").is_file():
            raise MissingWeightsError(f"no U-Net in {unet_dir} (named by {Path(folder) / 'config.json'}): give the "
                                      "U-Net folder there, or train one with `tamms train forecast "
                                      "--config src/tamms/configs/forecast.yaml --stage unet`")
        model = cls.from_config(cfg, load_unet(unet_dir))
        model.unet_folder = unet_dir.resolve()
        return model

    def pretrained_config(self) -> dict:
        cfg = self.cfg.to_dict()
        cfg["ecm"] = self.ecm.cfg.to_dict()
        cfg["structural_only"] = bool(self.ecm.structural_only)
        return cfg

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        return self.ecm.state_dict()

    def load_pretrained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.ecm.load_state_dict(tensors)

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None, metadata=None,
                        unet_folder: str | os.PathLike | None = None) -> Path:
        """Save the ECM + config into `folder`. The U-Net: `unet_folder` if given (written there in diffusers
        format when it holds none yet), else the folder it was loaded from, else `folder/unet/`."""
        folder = Path(folder)
        if (folder / "config.json").exists() and not overwrite:  # refuse before writing a U-Net there
            return super().save_pretrained(folder, overwrite=False)
        if unet_folder is None and self.unet_folder is not None and (self.unet_folder / "config.json").is_file():
            unet_folder = self.unet_folder
        if unet_folder is None:
            unet_folder = folder / "unet"
        target = Path(unet_folder) if Path(unet_folder).is_absolute() else folder / unet_folder
        if not (target / "config.json").is_file():
            self.unet.save_pretrained(str(target), safe_serialization=True)
        rel = os.path.relpath(target.resolve(), folder.resolve())
        # sibling or inner folders are named relatively (the folders move together); others absolutely
        self.cfg.unet = rel if not rel.startswith(os.path.join("..", "..")) else str(target.resolve())
        return super().save_pretrained(folder, overwrite=overwrite, dtype=dtype, metadata=metadata)

    def null_text(self, batch: int, device) -> torch.Tensor:
        return torch.zeros(batch, 1, self.unet.config.cross_attention_dim, device=device)

    def encode_history(self, history: torch.Tensor) -> list[torch.Tensor]:
        """Clean history frames [B, T, C, H, W] in [-1, 1] -> per level [B, T, C_l, H_l, W_l] (no grad)."""
        b, t = history.shape[:2]
        with torch.no_grad():
            flat = history.reshape(b * t, *history.shape[2:])  # [B*T, C, H, W]
            zeros = torch.zeros(b * t, device=history.device, dtype=torch.long)
            res, mid, _, _ = encode_unet(self.unet, flat, zeros, self.null_text(b * t, history.device))
            feats = self.ecm.level_inputs(res, mid)
        return [f.reshape(b, t, *f.shape[1:]) for f in feats]  # [B, T, C_l, H_l, W_l]

    def forward(self, noisy: torch.Tensor, diffusion_t: torch.Tensor, history_features: list[torch.Tensor],
                gaps_days: torch.Tensor, semantic: torch.Tensor | None = None,
                text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                control: bool = True, cache: dict | None = None) -> torch.Tensor:
        """noisy [B, C, H, W] in the diffusion space, diffusion_t [B] -> U-Net output [B, C, H, W]."""
        b = noisy.shape[0]
        states = self.ecm.text_states(text_embeddings, b, noisy.device)
        mask = text_mask if (text_embeddings is not None and states.shape[1] == text_embeddings.shape[1]) else None
        if not control:
            return self.unet(noisy, diffusion_t, states, encoder_attention_mask=mask).sample
        # one pass through the frozen encoder; its features feed both the ECM and the decoder's skips
        res, mid, emb, bias = encode_unet(self.unet, noisy, diffusion_t, states, mask)
        down_res, mid_res = self.ecm(history_features, self.ecm.level_inputs(res, mid), gaps_days, diffusion_t,
                                     semantic, cache)
        return decode_unet(self.unet, res, mid, emb, states, bias, down_res, mid_res)

"""IJEPA temporal predictor of Sat-JEPA-Diff (paper sec. 3 "IJEPA Temporal Prediction", appendix B.1-B.4).

Read top to bottom:
  1. `IJEPAConfig`                   sizes, masking (B.4), EMA schedule (B.1/B.2) and loss weights (B.3).
  2. `MultiBlockMaskGenerator`       I-JEPA multi-block masks: context kept from I_t, target block(s) to predict.
  3. `ViTEncoder`                    patch embedding + transformer; can run on a subset of patches.
  4. `TemporalPredictor`             transformer that forecasts the tokens of I_{t+1} from the context of I_t.
  5. `momentum_at` / `ema_update_`   EMA target encoder, momentum 0.999 -> 1.0 (cosine, or linear as in B.2).
  6. target-embedding providers     what the projection head is supervised with (the paper: AlphaEarth):
                                     `EMATargetProvider` (default) or `PrecomputedEmbeddingProvider` (files).
  7. `ijepa_hybrid_loss`             L1 20, cosine 2, spatial variance 2, InfoNCE 0.5 (T 0.1), feature regression 5.
  8. `IJEPA`                         the module tying them together.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import ConfigError, InputError, MissingWeightsError


# --------------------------------------------------------------------------------------------- config
@dataclass
class IJEPAConfig:
    image_size: int = 64
    patch_size: int = 8
    in_channels: int = 3
    embed_dim: int = 96
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 2.0
    predictor_dim: int = 96
    predictor_depth: int = 2
    predictor_heads: int = 4
    # projection head output; the paper projects to the 64-d AlphaEarth space. 0 = embed_dim (EMA targets)
    target_dim: int = 0
    # condition the predictor on the time gap (an extension: our synthetic gaps vary from months to a decade)
    use_time_gap: bool = True
    # also condition on the season of the current and the target date (sin/cos of the day of the year): what a
    # frame looks like at the target date depends on its season, which the gap alone does not give
    use_season: bool = False
    # B.4 multi-block masking
    enc_mask_scale: tuple[float, float] = (0.7, 1.0)
    pred_mask_scale: tuple[float, float] = (0.2, 0.5)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    num_enc_masks: int = 1
    num_pred_masks: int = 1
    min_keep: int = 6
    allow_overlap: bool = True
    # B.1/B.2 EMA momentum
    ema_momentum: tuple[float, float] = (0.999, 1.0)
    ema_schedule: str = "cosine"  # "cosine" (B.1) or "linear" (the formula printed in B.2)
    # B.3 loss weights
    w_l1: float = 20.0
    w_cos: float = 2.0
    w_var: float = 2.0
    w_nce: float = 0.5
    w_feat: float = 5.0
    nce_temperature: float = 0.1

    def __post_init__(self) -> None:
        for name in ("enc_mask_scale", "pred_mask_scale", "aspect_ratio", "ema_momentum"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}; "
                "choose sizes so the image splits into whole patches"
            )
        if self.embed_dim % self.num_heads or self.predictor_dim % self.predictor_heads:
            raise ConfigError("embed_dim / predictor_dim must be divisible by their number of heads")
        if self.ema_schedule not in ("cosine", "linear"):
            raise ConfigError(f"ema_schedule must be 'cosine' or 'linear', got {self.ema_schedule!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def out_dim(self) -> int:
        return self.target_dim or self.embed_dim

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------- masks
@dataclass
class BlockMasks:
    """Indices into the flattened patch grid (row-major). Every sample of a batch keeps the same count."""

    context: torch.Tensor  # long [B, Nc]
    targets: list[torch.Tensor]  # num_pred_masks x long [B, Nt]
    block_shapes: list[tuple[int, int]] = field(default_factory=list)  # (h, w) of every block drawn


class MultiBlockMaskGenerator:
    """I-JEPA multi-block masking (appendix B.4), as Meta's `MaskCollator`.

    One block size per batch and mask kind (scale and aspect ratio drawn uniformly in their ranges),
    a random position per sample; `h = round(sqrt(n * ar))`, `w = round(sqrt(n / ar))` with
    `n = scale * N`, clipped to the grid. Context = union of the encoder blocks (minus the target
    blocks unless overlap is allowed); resampled until at least `min_keep` patches remain.
    """

    def __init__(self, config: IJEPAConfig):
        self.grid = config.grid
        self.enc_scale = config.enc_mask_scale
        self.pred_scale = config.pred_mask_scale
        self.aspect = config.aspect_ratio
        self.n_enc = config.num_enc_masks
        self.n_pred = config.num_pred_masks
        self.min_keep = config.min_keep
        self.allow_overlap = config.allow_overlap

    def block_size(self, scale: tuple[float, float], aspect: tuple[float, float], gen: torch.Generator) -> tuple[int, int]:
        s = scale[0] + float(torch.rand(1, generator=gen)) * (scale[1] - scale[0])
        ar = aspect[0] + float(torch.rand(1, generator=gen)) * (aspect[1] - aspect[0])
        n = s * self.grid * self.grid
        h = min(self.grid, max(1, int(round(math.sqrt(n * ar)))))
        w = min(self.grid, max(1, int(round(math.sqrt(n / ar)))))
        return h, w

    def _place(self, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
        top = int(torch.randint(0, self.grid - h + 1, (1,), generator=gen))
        left = int(torch.randint(0, self.grid - w + 1, (1,), generator=gen))
        m = torch.zeros(self.grid, self.grid, dtype=torch.bool)
        m[top: top + h, left: left + w] = True
        return m

    def __call__(self, batch_size: int, gen: torch.Generator | None = None) -> BlockMasks:
        gen = gen if gen is not None else torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
        shapes = []
        pred_hw = self.block_size(self.pred_scale, self.aspect, gen)
        enc_hw = self.block_size(self.enc_scale, self.aspect, gen)
        shapes += [pred_hw] * self.n_pred + [enc_hw] * self.n_enc
        contexts, targets = [], [[] for _ in range(self.n_pred)]
        for _ in range(batch_size):
            for _attempt in range(100):
                tgt = [self._place(*pred_hw, gen) for _ in range(self.n_pred)]
                ctx = torch.zeros(self.grid, self.grid, dtype=torch.bool)
                for _ in range(self.n_enc):
                    ctx |= self._place(*enc_hw, gen)
                if not self.allow_overlap:
                    for t in tgt:
                        ctx &= ~t
                if int(ctx.sum()) >= self.min_keep:
                    break
            contexts.append(ctx.flatten().nonzero().squeeze(1))
            for k, t in enumerate(tgt):
                targets[k].append(t.flatten().nonzero().squeeze(1))
        # equal counts across the batch so indices stack (Meta truncates to the smallest, as here)
        n_ctx = min(len(c) for c in contexts)
        context = torch.stack([c[torch.randperm(len(c), generator=gen)[:n_ctx].sort().values] for c in contexts])
        return BlockMasks(context=context, targets=[torch.stack(t) for t in targets], block_shapes=shapes)


def gather_tokens(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """tokens [B, N, D], idx long [B, M] -> [B, M, D]."""
    return torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


# --------------------------------------------------------------------------------------------- networks
def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class ViTEncoder(nn.Module):
    """E_theta: image [B, C, H, W] -> patch tokens [B, N, D] (optionally only the patches in `keep`)."""

    def __init__(self, config: IJEPAConfig):
        super().__init__()
        self.config = config
        self.patch_embed = nn.Conv2d(config.in_channels, config.embed_dim, config.patch_size, config.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, config.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = _blocks(config.embed_dim, config.depth, config.num_heads, config.mlp_ratio)
        self.norm = nn.LayerNorm(config.embed_dim)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = self.patch_embed(images)  # [B, D, g, g]
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # [B, N, D]
        if keep is not None:
            x = gather_tokens(x, keep)  # [B, Nc, D]
        return self.norm(self.blocks(x))


def time_gap_features(gap_days: torch.Tensor) -> torch.Tensor:
    """[B] days -> [B, 2]: log-years and a season phase would be natural; we keep log(1 + years) and years/10."""
    years = gap_days.float().clamp(min=0) / 365.25
    return torch.stack([torch.log1p(years), years / 10.0], dim=-1)


def season_features(current_days: torch.Tensor, gap_days: torch.Tensor) -> torch.Tensor:
    """[B] days since 1970-01-01 of the current frame, [B] gap -> [B, 4]: sin/cos of the year phase of both dates."""
    phases = torch.stack([current_days.double(), current_days.double() + gap_days.double()], -1) / 365.25  # [B, 2]
    angle = 2 * math.pi * torch.remainder(phases, 1.0)
    return torch.cat([torch.sin(angle), torch.cos(angle)], -1).float()  # [B, 4]


class TemporalPredictor(nn.Module):
    """P_phi: context tokens of I_t -> predicted tokens of I_{t+1} at the requested positions.

    As in I-JEPA, the context tokens are projected to the predictor width, a learned mask token plus
    the position embedding of each target position is appended, and only the target outputs are read.
    """

    def __init__(self, config: IJEPAConfig):
        super().__init__()
        self.config = config
        d = config.predictor_dim
        self.embed = nn.Linear(config.embed_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        n_time = 2 + (4 if config.use_season else 0)
        self.gap_mlp = nn.Sequential(nn.Linear(n_time, d), nn.GELU(), nn.Linear(d, d)) if config.use_time_gap else None
        self.blocks = _blocks(d, config.predictor_depth, config.predictor_heads, config.mlp_ratio)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, config.embed_dim)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                gap_days: torch.Tensor | None = None, current_days: torch.Tensor | None = None) -> torch.Tensor:
        b = context.shape[0]
        pos = self.pos_embed.expand(b, -1, -1)  # [B, N, d]
        x = self.embed(context) + gather_tokens(pos, context_idx)  # [B, Nc, d]
        q = self.mask_token.expand(b, target_idx.shape[1], -1) + gather_tokens(pos, target_idx)  # [B, Nt, d]
        if self.gap_mlp is not None:
            gap = gap_days if gap_days is not None else torch.full((b,), 365.25, device=context.device)
            feats = time_gap_features(gap.to(context.device))  # [B, 2]
            if self.config.use_season:
                if current_days is None:
                    raise InputError("this IJEPA predictor reads the season: give the date of the current frame")
                feats = torch.cat([feats, season_features(current_days.to(context.device), gap.to(context.device))], -1)
            g = self.gap_mlp(feats)[:, None, :]  # [B, 1, d]
            x, q = x + g, q + g
        h = self.blocks(torch.cat([x, q], dim=1))  # [B, Nc + Nt, d]
        return self.out(self.norm(h[:, x.shape[1]:]))  # [B, Nt, D]


# --------------------------------------------------------------------------------------------- EMA
def momentum_at(step: int, total_steps: int, base: float = 0.999, final: float = 1.0, schedule: str = "cosine") -> float:
    """EMA momentum at optimiser step `step` of `total_steps`.

    cosine (B.1):  tau = final - (final - base) * (1 + cos(pi * s / S)) / 2
    linear (B.2):  tau = base + s * (final - base) / S
    """
    s = min(max(step, 0), total_steps) / max(total_steps, 1)
    if schedule == "linear":
        return base + s * (final - base)
    return final - (final - base) * (1.0 + math.cos(math.pi * s)) / 2.0


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """xi <- tau * xi + (1 - tau) * theta, parameter by parameter (buffers copied)."""
    for p_t, p_o in zip(target.parameters(), online.parameters()):
        p_t.mul_(momentum).add_(p_o.detach(), alpha=1.0 - momentum)
    for b_t, b_o in zip(target.buffers(), online.buffers()):
        b_t.copy_(b_o)


# --------------------------------------------------------------------------------------------- target providers
class TargetEmbeddingProvider(Protocol):
    """Gives the per-patch target embedding of the future frame, [B, N, target_dim]."""

    dim: int

    def __call__(self, future_images: torch.Tensor, keys: Sequence[str] | None = None) -> torch.Tensor: ...


class EMATargetProvider:
    """The default: the EMA target encoder's tokens of I_{t+1} (what I-JEPA itself regresses)."""

    def __init__(self, target_encoder: ViTEncoder):
        self.target_encoder = target_encoder
        self.dim = target_encoder.config.embed_dim

    @torch.no_grad()
    def __call__(self, future_images: torch.Tensor, keys: Sequence[str] | None = None) -> torch.Tensor:
        return self.target_encoder(future_images)


class PrecomputedEmbeddingProvider:
    """Per-pixel embeddings a user computed elsewhere (the paper uses 64-d AlphaEarth fields).

    `root/<key>.npy` (or `.pt`) holds float `[D, H, W]` for one frame; `key` names the future frame of
    each sample (e.g. "<sequence_id>/<YYYY-MM-DD>"). Fields are average-pooled onto the patch grid.
    """

    def __init__(self, root: str | Path, dim: int, grid: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingWeightsError(f"embedding folder {self.root} does not exist: give the folder holding <key>.npy files")
        self.dim, self.grid = dim, grid

    def load(self, key: str) -> torch.Tensor:
        for suffix in (".npy", ".pt"):
            path = self.root / f"{key}{suffix}"
            if path.exists():
                arr = np.load(path) if suffix == ".npy" else torch.load(path, map_location="cpu")
                t = torch.as_tensor(np.asarray(arr), dtype=torch.float32)
                if t.ndim != 3 or t.shape[0] != self.dim:
                    raise InputError(f"{path} has shape {tuple(t.shape)}; expected [{self.dim}, H, W] per-pixel embeddings")
                return t
        raise MissingWeightsError(f"no embedding file for {key!r} in {self.root} (expected {key}.npy or {key}.pt)")

    def __call__(self, future_images: torch.Tensor, keys: Sequence[str] | None = None) -> torch.Tensor:
        if keys is None:
            raise InputError("precomputed target embeddings need a key per sample (the future frame's name)")
        fields = torch.stack([F.adaptive_avg_pool2d(self.load(k), self.grid) for k in keys])  # [B, D, g, g]
        return fields.flatten(2).transpose(1, 2).to(future_images.device)  # [B, N, D]


# --------------------------------------------------------------------------------------------- loss
def l1_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def cosine_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over tokens of 1 - cos(pred, target) along the feature axis."""
    return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()


def spatial_variance_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|Var_tokens(pred) - Var_tokens(target)| per sample and channel: penalises spatially flat (collapsed) maps."""
    return (pred.var(dim=1, unbiased=False) - target.var(dim=1, unbiased=False)).abs().mean()


def info_nce_term(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE over the batch on token-averaged, L2-normalised embeddings (positives on the diagonal)."""
    p = F.normalize(pred.mean(dim=1), dim=-1)  # [B, D]
    t = F.normalize(target.mean(dim=1), dim=-1)  # [B, D]
    logits = p @ t.T / temperature  # [B, B]
    return F.cross_entropy(logits, torch.arange(p.shape[0], device=p.device))


def feature_regression_term(pred_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """MSE between the predictor's raw tokens and the EMA target encoder's tokens (the I-JEPA regression)."""
    return F.mse_loss(pred_features, target_features)


def ijepa_hybrid_loss(projected: torch.Tensor, target_embedding: torch.Tensor, pred_features: torch.Tensor,
                      target_features: torch.Tensor, config: IJEPAConfig) -> dict[str, torch.Tensor]:
    """L_IJEPA (eq. in sec. 3, weights B.3). Returns every weighted term and `loss`, their sum."""
    terms = {
        "l1": config.w_l1 * l1_term(projected, target_embedding),
        "cos": config.w_cos * cosine_term(projected, target_embedding),
        "var": config.w_var * spatial_variance_term(projected, target_embedding),
        "nce": config.w_nce * info_nce_term(projected, target_embedding, config.nce_temperature),
        "feat": config.w_feat * feature_regression_term(pred_features, target_features),
    }
    terms["loss"] = sum(terms.values())
    return terms


# --------------------------------------------------------------------------------------------- module
class IJEPA(nn.Module):
    """Encoder E_theta, predictor P_phi, EMA target encoder E_xi and projection head to the target space."""

    def __init__(self, config: IJEPAConfig, target_provider: TargetEmbeddingProvider | None = None):
        super().__init__()
        self.config = config
        self.encoder = ViTEncoder(config)
        self.predictor = TemporalPredictor(config)
        self.target_encoder = copy.deepcopy(self.encoder)
        for p in self.target_encoder.parameters():
            p.requires_grad_(False)
        self.proj_head = nn.Linear(config.embed_dim, config.out_dim)
        self.masks = MultiBlockMaskGenerator(config)
        self.target_provider = target_provider  # None -> EMA target encoder
        if target_provider is not None and target_provider.dim != config.out_dim:
            raise ConfigError(f"target_dim {config.out_dim} differs from the provider's embedding size {target_provider.dim}; "
                              "set target_dim to the size of the precomputed embeddings")

    def provider(self) -> TargetEmbeddingProvider:
        return self.target_provider if self.target_provider is not None else EMATargetProvider(self.target_encoder)

    def all_index(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.arange(self.config.num_patches, device=device).expand(batch, -1)  # [B, N]

    def predict(self, images: torch.Tensor, gap_days: torch.Tensor | None = None,
                current_days: torch.Tensor | None = None) -> torch.Tensor:
        """Full-context forecast of every token of I_{t+1}: [B, N, D] (what conditions the generator)."""
        idx = self.all_index(images.shape[0], images.device)
        return self.predictor(self.encoder(images), idx, idx, gap_days, current_days)

    def momentum(self, step: int, total_steps: int) -> float:
        base, final = self.config.ema_momentum
        return momentum_at(step, total_steps, base, final, self.config.ema_schedule)

    def update_target(self, step: int, total_steps: int) -> float:
        tau = self.momentum(step, total_steps)
        ema_update_(self.target_encoder, self.encoder, tau)
        return tau

    def loss(self, current: torch.Tensor, future: torch.Tensor, gap_days: torch.Tensor | None = None,
             keys: Sequence[str] | None = None, gen: torch.Generator | None = None,
             current_days: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Masked I-JEPA forecasting loss: context blocks of I_t predict target blocks of I_{t+1}."""
        b = current.shape[0]
        masks = self.masks(b, gen)
        masks.context, masks.targets = masks.context.to(current.device), [t.to(current.device) for t in masks.targets]
        context = self.encoder(current, masks.context)  # [B, Nc, D]
        with torch.no_grad():
            target_tokens = self.target_encoder(future)  # [B, N, D]
            target_embed = self.provider()(future, keys)  # [B, N, D_target]
        preds, feats, embeds, tfeat = [], [], [], []
        for tidx in masks.targets:
            z = self.predictor(context, masks.context, tidx, gap_days, current_days)  # [B, Nt, D]
            feats.append(z)
            preds.append(self.proj_head(z))
            tfeat.append(gather_tokens(target_tokens, tidx))
            embeds.append(gather_tokens(target_embed, tidx))
        return ijepa_hybrid_loss(torch.cat(preds, 1), torch.cat(embeds, 1), torch.cat(feats, 1), torch.cat(tfeat, 1),
                                 self.config)

"""The token-driven decoder of UniChange (summary, "Key Designs" 2), on a small CNN backbone.

Queries (the projected LM hidden states of `[CHANGE]`, `[T1]`, `[T2]`) are refined against the
flattened bi-temporal features of one backbone level per layer, coarse to fine, by SAM-style two-way
attention: query self-attention, query -> image cross-attention, MLP, image -> query cross-attention,
all with positional encodings. The refined image sequences are folded back into maps, upsampled and
fused into `F_t1`, `F_t2` and `F_change` (the latter from the feature difference `F_1 - F_2`), and each
query "filters" its feature map by an einsum into a mask.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TokenDecoderConfig:
    in_channels: int = 3
    backbone_channels: tuple[int, ...] = (16, 32, 48, 64)  # strides 1, 2, 4, 8
    dim: int = 64            # width of queries and image tokens in the decoder
    heads: int = 4
    mlp_dim: int = 128
    mask_dim: int = 32       # width of the full-resolution maps the queries filter (kept small: they cost the most)
    # the decoder attends over every level but the full-resolution stem, coarse to fine
    # (one two-way layer per level, as the paper's four levels -> four layers)

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class MultiScaleBackbone(nn.Module):
    """A small CNN shared by both dates: feature maps at strides 1, 2, 4, 8 (one per channel entry)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        stages, c_prev = [], in_channels
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(
                nn.Conv2d(c_prev, c, 3, stride=stride, padding=1), _norm(c), nn.GELU(),
                nn.Conv2d(c, c, 3, padding=1), _norm(c), nn.GELU(),
            ))
            c_prev = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def sine_position_encoding(h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    """2D sinusoidal encoding `[h*w, dim]` of normalised (y, x), so it means the same at any image size."""
    quarter = dim // 4
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(1000.0) / max(quarter, 1)))
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 * math.pi
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 * math.pi
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # [h, w] each
    ang_y = yy.reshape(-1, 1) * freqs * 8  # [h*w, quarter]
    ang_x = xx.reshape(-1, 1) * freqs * 8
    pe = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)  # [h*w, 4*quarter]
    return F.pad(pe, (0, dim - pe.shape[1]))


class TwoWayAttentionLayer(nn.Module):
    """SAM's two-way block: queries attend to themselves and to the image; the image attends to the queries."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_q2i = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.cross_i2q = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm4 = nn.LayerNorm(dim)

    def forward(self, queries, query_pe, query_pad, image, image_pe):
        """queries/query_pe `[B, Q, D]`, query_pad bool `[B, Q]` (True = padding), image/image_pe `[B, N, D]`."""
        q = queries + query_pe
        queries = self.norm1(queries + self.self_attn(q, q, queries, key_padding_mask=query_pad, need_weights=False)[0])
        q, k = queries + query_pe, image + image_pe
        queries = self.norm2(queries + self.cross_q2i(q, k, image, need_weights=False)[0])
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        image = self.norm4(image + self.cross_i2q(k, q, queries, key_padding_mask=query_pad, need_weights=False)[0])
        return queries, image


class TokenDrivenDecoder(nn.Module):
    """Bi-temporal multi-scale features + token queries -> one mask logit map per query.

    forward(feats_1, feats_2, queries, query_pad, groups, size) where feats_* are the backbone's lists,
    `queries` `[B, Q, D]`, and `groups` a long tensor `[Q]` saying which feature map each query slot filters
    (0 = F_change, 1 = F_t1, 2 = F_t2). Returns logits `[B, Q, H, W]` at `size`, plus `F_t1`, `F_t2` (for the
    semantic-change loss).
    """

    def __init__(self, config: TokenDecoderConfig):
        super().__init__()
        self.config = config
        d, ch = config.dim, config.backbone_channels
        self.attn_levels = list(range(len(ch) - 1, 0, -1))  # coarse to fine, the stem excluded
        self.level_proj = nn.ModuleDict({str(i): nn.Conv2d(ch[i], d, 1) for i in self.attn_levels})
        self.time_embed = nn.Parameter(torch.zeros(2, d))  # which date an image token comes from
        nn.init.normal_(self.time_embed, std=0.02)
        self.layers = nn.ModuleList(TwoWayAttentionLayer(d, config.heads, config.mlp_dim) for _ in self.attn_levels)
        self.final_attn = nn.MultiheadAttention(d, config.heads, batch_first=True)  # SAM's last token->image step
        self.final_norm = nn.LayerNorm(d)
        n = len(self.attn_levels)
        # fusion of the upsampled levels; the T1 and T2 paths share weights (same land-cover semantics).
        # 1x1 convolutions: 3x3 ones here cost most of the decoder's time on a CPU; the stem features bring the
        # local detail at full resolution
        self.fuse_sem = nn.Sequential(nn.Conv2d(n * d, d, 1), _norm(d), nn.GELU())
        self.fuse_change = nn.Sequential(nn.Conv2d(n * d, d, 1), _norm(d), nn.GELU())
        # full-resolution refinement with the stem features (sharp edges at the pixel level)
        m = config.mask_dim

        def refine() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(d + ch[0], m, 1), _norm(m), nn.GELU(), nn.Conv2d(m, m, 1))

        self.refine_sem, self.refine_change = refine(), refine()
        # per-group hypernetwork MLP: refined query -> the vector that filters its feature map
        self.hyper = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, m)) for _ in range(3))

    def forward(self, feats_1, feats_2, queries, query_pad, groups, size):
        b = queries.shape[0]
        query_pe = queries  # SAM uses the initial queries as their positional encoding
        refined_1, refined_2 = {}, {}
        for layer, lvl in zip(self.layers, self.attn_levels):
            f1, f2 = self.level_proj[str(lvl)](feats_1[lvl]), self.level_proj[str(lvl)](feats_2[lvl])
            h, w = f1.shape[-2:]
            pe = sine_position_encoding(h, w, self.config.dim, f1.device)  # [h*w, D]
            image = torch.cat([f1.flatten(2).transpose(1, 2), f2.flatten(2).transpose(1, 2)], dim=1)  # [B, 2hw, D]
            image_pe = torch.cat([pe + self.time_embed[0], pe + self.time_embed[1]], dim=0).expand(b, -1, -1)
            queries, image = layer(queries, query_pe, query_pad, image, image_pe)
            # fold the refined sequence back into the two dates' maps: [B, 2hw, D] -> 2 x [B, D, h, w]
            refined_1[lvl] = image[:, : h * w].transpose(1, 2).reshape(b, -1, h, w)
            refined_2[lvl] = image[:, h * w :].transpose(1, 2).reshape(b, -1, h, w)
        # last query -> image attention over the finest level
        q = queries + query_pe
        queries = self.final_norm(queries + self.final_attn(q, image + image_pe, image, need_weights=False)[0])

        fine = refined_1[self.attn_levels[-1]].shape[-2:]
        up = lambda x: F.interpolate(x, size=fine, mode="bilinear", align_corners=False)  # noqa: E731
        cat_1 = torch.cat([up(refined_1[lvl]) for lvl in self.attn_levels], dim=1)  # [B, n*D, h, w]
        cat_2 = torch.cat([up(refined_2[lvl]) for lvl in self.attn_levels], dim=1)
        f_t1, f_t2 = self.fuse_sem(cat_1), self.fuse_sem(cat_2)
        f_change = self.fuse_change(cat_1 - cat_2)  # the change path is built from the feature difference
        stem_1, stem_2 = feats_1[0], feats_2[0]
        full = stem_1.shape[-2:]
        upf = lambda x: F.interpolate(x, size=full, mode="bilinear", align_corners=False)  # noqa: E731
        f_t1 = self.refine_sem(torch.cat([upf(f_t1), stem_1], dim=1))  # [B, D, H, W]
        f_t2 = self.refine_sem(torch.cat([upf(f_t2), stem_2], dim=1))
        f_change = self.refine_change(torch.cat([upf(f_change), (stem_1 - stem_2).abs()], dim=1))  # [B, M, H, W]

        maps = (f_change, f_t1, f_t2)
        logits = queries.new_zeros(b, queries.shape[1], *full)  # [B, Q, H, W]
        for g, fmap in enumerate(maps):
            idx = (groups == g).nonzero().flatten()
            if idx.numel() == 0:
                continue
            filters = self.hyper[g](queries[:, idx])  # [B, Qg, M]
            # each query filters its feature map: mask_q(h, w) = <e_q, F(h, w)>
            logits[:, idx] = torch.einsum("bqm,bmhw->bqhw", filters, fmap) / math.sqrt(self.config.mask_dim)
        if logits.shape[-2:] != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits, f_t1, f_t2


__all__ = ["TokenDecoderConfig", "MultiScaleBackbone", "TokenDrivenDecoder", "TwoWayAttentionLayer",
           "sine_position_encoding"]

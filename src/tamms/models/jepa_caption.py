"""Caption-guided Zero-RGB Sat-JEPA-Diff (the model card "Sat-JEPA-Diff (Caption-Guided Zero-RGB)").

No coarse RGB: the generator sees only IJEPA's forecast tokens and three captions:
  informative (t)   a dense description of the current frame,
  geometric (t)     where things are (spatial layout),
  semantic (t+1)    the forecast description of the next frame, produced by the caption forecaster.
and starts its flow from pure noise, so no pixel of the input reaches it at generation time.

Read top to bottom:
  1. `triple_captions`          the three captions from a `SitsSequence` (frame descriptions + land cover).
  2. `CaptionTextEncoder`       a tiny transformer over a `tokenizers` word-level tokenizer, pretrained here with a
                                bag-of-words objective and then frozen (the card freezes CLIP x2 + T5).
  3. `CaptionForecaster`        cross-attention layers over IJEPA tokens + the t captions, gated residual delta
                                on the informative embedding: e_sem(t+1) = e_inf(t) + tanh(g) * delta.
  4. `MultiStreamAdapter`       four streams (3 captions + IJEPA tokens), stream and time embeddings, temporal
                                self-attention across them -> cross-attention tokens + pooled vector.
  5. `CaptionGuidedSatJEPA`     L = L_IJEPA + l_sd L_diff + l_cap L_caption.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import ConfigError, InputError
from tamms.models.base import PretrainedModel
from tamms.models.jepa import IJEPA, IJEPAConfig
from tamms.models.jepa_generator import Conditioning, FlowGenerator, FlowGeneratorConfig, mlp

# --------------------------------------------------------------------------------------------- captions
_REGIONS = [["top-left", "top", "top-right"], ["left", "centre", "right"], ["bottom-left", "bottom", "bottom-right"]]


def class_names() -> list[str]:
    try:
        from tamms.data.synthetic import CLASS_NAMES

        return list(CLASS_NAMES)
    except Exception:  # the synthetic world not installed: generic names
        return [f"class {k}" for k in range(32)]


def geometric_caption(landcover: np.ndarray, names: Sequence[str] | None = None) -> str:
    """Spatial layout: the dominant land cover of each cell of a 3x3 grid, e.g. "water in the top-left, ..."."""
    names = list(names or class_names())
    h, w = landcover.shape
    parts = []
    for i in range(3):
        for j in range(3):
            cell = landcover[i * h // 3:(i + 1) * h // 3, j * w // 3:(j + 1) * w // 3]
            k = int(np.bincount(cell.ravel().astype(np.int64)).argmax())
            name = (names[k] if k < len(names) else f"class {k}").replace("_", " ")
            parts.append(f"{name} in the {_REGIONS[i][j]}")
    return ", ".join(parts)


def change_layout_caption(mask: np.ndarray | torch.Tensor) -> str:
    """Where a change map [H, W] says things change, on a 3x3 grid: "much change in the top-left, some change in
    the centre, little change elsewhere" (shares > 30% "much", > 5% "some")."""
    m = torch.as_tensor(mask).float()
    h, w = m.shape
    much, some = [], []
    for i in range(3):
        for j in range(3):
            share = float(m[i * h // 3:(i + 1) * h // 3, j * w // 3:(j + 1) * w // 3].mean())
            if share > 0.3:
                much.append(_REGIONS[i][j])
            elif share > 0.05:
                some.append(_REGIONS[i][j])
    if not much and not some:
        return "no change detected"
    parts = ([f"much change in the {', '.join(much)}"] if much else []) + (
        [f"some change in the {', '.join(some)}"] if some else [])
    return ", ".join(parts) + ", little change elsewhere"


SINGLE_FRAME_CAPTION = "a single image with no earlier date"


class HistoryCaptioner:
    """Captions made from the history images only (what a user has): never from the data's text or land cover.

    informative (t): the describer's description of the last two dated frames (`use_data_scene=False`);
    geometric (t):   the change detector's map between them, as a 3x3 layout (`change_layout_caption`);
    one frame only (nothing to compare): informative "a single image with no earlier date", geometric
    "no change detected" (the describer reads change between at least two frames).
    `describer`: a `DescribePipeline`; `detector`: a `ChangeDetector` (`tamms.registry.load_describer`,
    `load_detector`). Also makes the training target of the t+1 caption: the same describer on (t, t+1).
    """

    def __init__(self, describer, detector):
        if describer is None or detector is None:
            raise InputError("the caption-guided model needs a describer and a change detector to caption the history "
                             "(tamms.registry.load_describer(), load_detector()); train them or pass weights folders")
        self.describer = describer
        self.detector = detector

    def describe(self, frames: torch.Tensor, days: torch.Tensor) -> list[str]:
        """frames [B, T, C, H, W] (RGB, [0, 1]), days [B, T] -> one description per sample."""
        from tamms.data.sequence import SitsSequence, from_days

        seqs = [SitsSequence(frames=f.float().cpu().numpy(), dates=[from_days(float(d)) for d in dd])
                for f, dd in zip(frames, days)]
        return [str(t) for t in self.describer(seqs, use_data_scene=False).texts]

    def layout(self, frames: torch.Tensor) -> list[str]:
        if frames.shape[1] < 2:
            return ["no change detected"] * frames.shape[0]
        mask = self.detector.detect(frames[:, -2].float(), frames[:, -1].float()).mask  # [B, H, W]
        return [change_layout_caption(m) for m in mask]

    @torch.no_grad()
    def __call__(self, history: torch.Tensor, history_days: torch.Tensor) -> CaptionBatch:
        """history [B, T, C, H, W] (the last two frames are used), history_days [B, T] -> informative + geometric."""
        frames, days = history[:, -2:], history_days[:, -2:]
        if frames.shape[1] < 2:
            return CaptionBatch([SINGLE_FRAME_CAPTION] * frames.shape[0], self.layout(frames))
        return CaptionBatch(self.describe(frames, days), self.layout(frames))


def frame_description(seq, index: int) -> str | None:
    """The data's description of frame `index` (index == T means the future frame), if it has one."""
    descs = (seq.meta or {}).get("frame_descriptions")
    if descs is not None and 0 <= index < len(descs):
        return str(descs[index])
    if index == seq.num_frames:
        fut = (seq.meta or {}).get("future_description")
        if fut:
            return str(fut)
    return None


def triple_captions(seq, index: int, describer=None) -> dict[str, str | None]:
    """Captions of frame `index` of a SitsSequence: informative (t), geometric (t), semantic (t+1, None if unknown).

    informative: the frame description from the data, else the describer's text, else the scene text.
    geometric:   3x3 layout of the land-cover map of frame t when the data has one, else the informative text.
    semantic:    the description of frame t+1 (training target of the caption forecaster).
    """
    informative = frame_description(seq, index)
    if informative is None and describer is not None:
        informative = describer(seq.select(list(range(index + 1)))).texts[0]
    if informative is None:
        informative = seq.scene
    if informative is None:
        raise InputError("the caption-guided model needs a description of the current frame: give sequences with "
                         "meta['frame_descriptions'] or a scene text, or pass a describer (tamms describe)")
    if seq.landcover is not None and index < seq.num_frames:
        geometric = geometric_caption(seq.landcover[index])
    elif index == seq.num_frames and seq.future_landcover is not None:
        geometric = geometric_caption(seq.future_landcover)
    else:
        geometric = informative
    return {"informative": informative, "geometric": geometric, "semantic_next": frame_description(seq, index + 1)}


# --------------------------------------------------------------------------------------------- text encoder
@dataclass
class TextEncoderConfig:
    vocab_size: int = 512
    dim: int = 64
    depth: int = 2
    heads: int = 4
    max_len: int = 64


def build_tokenizer(texts: Sequence[str], vocab_size: int = 512):
    """A word-level `tokenizers` tokenizer (lower case, punctuation split) trained on the caption corpus."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]"]))
    return tok


class CaptionTextEncoder(nn.Module):
    """text -> token embeddings [B, L, D], mask [B, L] and pooled [B, D] (masked mean)."""

    def __init__(self, config: TextEncoderConfig, tokenizer=None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.embed = nn.Embedding(config.vocab_size, config.dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, config.max_len, config.dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, 2 * config.dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        self.bow_head = nn.Linear(config.dim, config.vocab_size)  # pretraining only

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.tokenizer is None:
            raise ConfigError("the caption text encoder has no tokenizer: build one with build_tokenizer(texts)")
        ids = [e.ids[: self.config.max_len] or [1] for e in self.tokenizer.encode_batch(list(texts))]
        length = max(len(i) for i in ids)
        out = torch.zeros(len(ids), length, dtype=torch.long)
        for k, seq in enumerate(ids):
            out[k, : len(seq)] = torch.tensor(seq, dtype=torch.long).clamp(max=self.config.vocab_size - 1)
        return out, out != 0  # [B, L], [B, L]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]  # [B, L, D]
        x = self.norm(self.blocks(x, src_key_padding_mask=~mask))
        x = x * mask[..., None]
        pooled = x.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # [B, D]
        return x, mask, pooled

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        dev = self.pos.device
        return self.forward(ids.to(dev), mask.to(dev))

    def bow_loss(self, texts: Sequence[str]) -> torch.Tensor:
        """Bag-of-words BCE from the pooled vector: makes the embedding carry what the caption says."""
        ids, mask = self.tokenize(texts)
        _, _, pooled = self.forward(ids, mask)
        target = torch.zeros(len(texts), self.config.vocab_size)
        target.scatter_(1, ids, 1.0)
        target[:, 0] = 0.0
        return F.binary_cross_entropy_with_logits(self.bow_head(pooled), target)


# --------------------------------------------------------------------------------------------- caption forecaster
@dataclass
class CaptionForecasterConfig:
    ijepa_dim: int = 96
    text_dim: int = 64
    hidden_dim: int = 96
    num_layers: int = 3
    heads: int = 4


class CaptionForecaster(nn.Module):
    """e_sem(t+1) = e_inf(t) + tanh(g) * delta, delta from cross-attention over [IJEPA tokens; caption tokens at t]."""

    def __init__(self, config: CaptionForecasterConfig):
        super().__init__()
        c = config
        self.config = c
        self.query = nn.Linear(c.text_dim, c.hidden_dim)
        self.kv_ijepa = nn.Linear(c.ijepa_dim, c.hidden_dim)
        self.kv_text = nn.Linear(c.text_dim, c.hidden_dim)
        self.norms_q = nn.ModuleList(nn.LayerNorm(c.hidden_dim) for _ in range(c.num_layers))
        self.attn = nn.ModuleList(nn.MultiheadAttention(c.hidden_dim, c.heads, batch_first=True) for _ in range(c.num_layers))
        self.norms_ff = nn.ModuleList(nn.LayerNorm(c.hidden_dim) for _ in range(c.num_layers))
        self.ff = nn.ModuleList(mlp([c.hidden_dim, 2 * c.hidden_dim, c.hidden_dim]) for _ in range(c.num_layers))
        self.out = nn.Linear(c.hidden_dim, c.text_dim)
        self.gate = nn.Parameter(torch.full((), 0.1))  # small: start close to "the future reads like the present"

    def forward(self, informative_pooled: torch.Tensor, ijepa_tokens: torch.Tensor, text_tokens: torch.Tensor,
                text_mask: torch.Tensor) -> torch.Tensor:
        q = self.query(informative_pooled)[:, None]  # [B, 1, H]
        kv = torch.cat([self.kv_ijepa(ijepa_tokens), self.kv_text(text_tokens)], dim=1)  # [B, N + L, H]
        pad = torch.cat([torch.zeros(ijepa_tokens.shape[:2], dtype=torch.bool, device=kv.device), ~text_mask], dim=1)
        for norm_q, attn, norm_ff, ff in zip(self.norms_q, self.attn, self.norms_ff, self.ff):
            q = q + attn(norm_q(q), kv, kv, key_padding_mask=pad, need_weights=False)[0]
            q = q + ff(norm_ff(q))
        return informative_pooled + torch.tanh(self.gate) * self.out(q[:, 0])  # [B, D_text]


def caption_loss(forecast: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_caption = MSE + (1 - cos) between the forecast and the true embedding of the t+1 caption."""
    return F.mse_loss(forecast, target) + (1.0 - F.cosine_similarity(forecast, target, dim=-1)).mean()


# --------------------------------------------------------------------------------------------- multi-stream adapter
@dataclass
class MultiStreamAdapterConfig:
    ijepa_dim: int = 96
    text_dim: int = 64
    hidden_dim: int = 128
    cross_dim: int = 64
    pooled_dim: int = 64
    max_ijepa_tokens: int = 1024
    heads: int = 4
    temporal_layers: int = 1


class MultiStreamAdapter(nn.Module):
    """Fuses informative(t), geometric(t), semantic(t+1) and the IJEPA forecast (t+1) into cross-attention tokens.

    Each stream is projected to the cross-attention width, tagged with a stream embedding and a time embedding
    (t or t+1), and the concatenation goes through self-attention ("temporal attention": present captions attend
    to the forecast and back). A learned softmax weight per stream scales its tokens (the four-signal fusion).
    """

    STREAMS = ("informative", "geometric", "semantic", "ijepa")
    TIME = (0, 0, 1, 1)  # t, t, t+1, t+1

    def __init__(self, config: MultiStreamAdapterConfig):
        super().__init__()
        c = self.config = config
        self.ijepa_pos = nn.Parameter(torch.zeros(1, c.max_ijepa_tokens, c.ijepa_dim))
        nn.init.trunc_normal_(self.ijepa_pos, std=0.02)
        self.proj = nn.ModuleDict({
            "informative": mlp([c.text_dim, c.hidden_dim, c.cross_dim]),
            "geometric": mlp([c.text_dim, c.hidden_dim, c.cross_dim]),
            "semantic": mlp([c.text_dim, c.hidden_dim, c.cross_dim]),
            "ijepa": mlp([c.ijepa_dim, c.hidden_dim, c.hidden_dim, c.cross_dim]),
        })
        self.stream_embed = nn.Embedding(4, c.cross_dim)
        self.time_embed = nn.Embedding(2, c.cross_dim)
        self.stream_logits = nn.Parameter(torch.zeros(4))
        layer = nn.TransformerEncoderLayer(c.cross_dim, c.heads, 2 * c.cross_dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, c.temporal_layers, enable_nested_tensor=False)
        self.pooled_mlp = mlp([c.ijepa_dim + c.text_dim, c.hidden_dim, c.pooled_dim])

    def forward(self, ijepa_tokens: torch.Tensor, informative: tuple[torch.Tensor, torch.Tensor],
                geometric: tuple[torch.Tensor, torch.Tensor], semantic_next: torch.Tensor) -> Conditioning:
        """ijepa_tokens [B, N, D]; informative/geometric = (tokens [B, L, Dt], mask [B, L]); semantic_next [B, Dt]."""
        b, n = ijepa_tokens.shape[:2]
        inputs = {
            "informative": informative,
            "geometric": geometric,
            "semantic": (semantic_next[:, None], torch.ones(b, 1, dtype=torch.bool, device=semantic_next.device)),
            "ijepa": (ijepa_tokens + self.ijepa_pos[:, :n], torch.ones(b, n, dtype=torch.bool, device=ijepa_tokens.device)),
        }
        weights = torch.softmax(self.stream_logits, 0) * 4  # mean 1
        tokens, masks = [], []
        for k, name in enumerate(self.STREAMS):
            x, m = inputs[name]
            ids = torch.full((1, 1), k, device=x.device)
            t_ids = torch.full((1, 1), self.TIME[k], device=x.device)
            tokens.append(weights[k] * self.proj[name](x) + self.stream_embed(ids) + self.time_embed(t_ids))  # [B, L_k, cross]
            masks.append(m)
        x, mask = torch.cat(tokens, 1), torch.cat(masks, 1)  # [B, M, cross], [B, M]
        x = self.temporal(x, src_key_padding_mask=~mask) * mask[..., None]
        pooled = self.pooled_mlp(torch.cat([ijepa_tokens.mean(1), semantic_next], dim=-1))  # [B, pooled]
        return Conditioning(tokens=x, pooled=pooled, token_mask=mask)

    @torch.no_grad()
    def init_from_coarse_adapter(self, coarse) -> None:
        """Start as a trained coarse-RGB `ConditioningAdapter` with its reference dropped: the IJEPA stream and the
        pooled vector copied from it, every caption token zero (the zero tokens a dropped reference gave), and the
        temporal layer an identity (its residual branches' output layers zeroed). The generator trained with that
        adapter then draws the same forecast at step 0, and training adds what the captions carry."""
        c = self.config
        if (coarse.config.ijepa_dim, coarse.config.hidden_dim, coarse.config.cross_dim, coarse.config.pooled_dim) != \
                (c.ijepa_dim, c.hidden_dim, c.cross_dim, c.pooled_dim):
            raise ConfigError("the coarse-RGB adapter has other sizes than model.adapter (ijepa_dim, hidden_dim, "
                              "cross_dim, pooled_dim): use the same sizes as the rgb model's config")
        alpha = torch.sigmoid(coarse.gate_logit) if coarse.config.use_coarse else torch.tensor(1.0)
        n = min(self.ijepa_pos.shape[1], coarse.ijepa_pos.shape[1])
        self.ijepa_pos[:, :n] = coarse.ijepa_pos[:, :n]
        self.proj["ijepa"].load_state_dict(coarse.ijepa_mlp.state_dict())
        last = self.proj["ijepa"][-1]
        last.weight.mul_(alpha)  # the rgb adapter gave alpha * h_sem
        last.bias.mul_(alpha)
        for name in ("informative", "geometric", "semantic"):
            nn.init.zeros_(self.proj[name][-1].weight)
            nn.init.zeros_(self.proj[name][-1].bias)
        nn.init.zeros_(self.stream_embed.weight)
        nn.init.zeros_(self.time_embed.weight)
        self.stream_logits.zero_()
        for layer in self.temporal.layers:  # pre-norm residual blocks: zero outputs make x + 0 + 0
            nn.init.zeros_(layer.self_attn.out_proj.weight)
            nn.init.zeros_(layer.self_attn.out_proj.bias)
            nn.init.zeros_(layer.linear2.weight)
            nn.init.zeros_(layer.linear2.bias)
        first, rest = self.pooled_mlp[0], coarse.pooled_mlp
        first.weight.zero_()
        first.weight[:, :c.ijepa_dim] = rest[0].weight  # the text columns stay zero
        first.bias.copy_(rest[0].bias)
        for mine, theirs in zip(list(self.pooled_mlp)[1:], list(rest)[1:]):
            mine.load_state_dict(theirs.state_dict())


# --------------------------------------------------------------------------------------------- full model
@dataclass
class CaptionSatJEPAConfig:
    ijepa: IJEPAConfig = field(default_factory=IJEPAConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    forecaster: CaptionForecasterConfig = field(default_factory=CaptionForecasterConfig)
    adapter: MultiStreamAdapterConfig = field(default_factory=MultiStreamAdapterConfig)
    generator: FlowGeneratorConfig = field(default_factory=FlowGeneratorConfig)
    sd_weight: float = 1.0  # l_sd
    caption_weight: float = 1.0  # l_cap
    teacher_forcing: float = 0.5  # share of training samples conditioned on the true t+1 caption embedding

    @classmethod
    def from_dict(cls, d: dict) -> "CaptionSatJEPAConfig":
        return cls(ijepa=IJEPAConfig(**d.get("ijepa", {})), text=TextEncoderConfig(**d.get("text", {})),
                   forecaster=CaptionForecasterConfig(**d.get("forecaster", {})),
                   adapter=MultiStreamAdapterConfig(**d.get("adapter", {})),
                   generator=FlowGeneratorConfig(**d.get("generator", {})),
                   **{k: float(d[k]) for k in ("sd_weight", "caption_weight", "teacher_forcing") if k in d})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CaptionBatch:
    informative: list[str]
    geometric: list[str]
    semantic_next: list[str] | None = None  # training only


class CaptionGuidedSatJEPA(PretrainedModel):
    """Caption-guided Zero-RGB Sat-JEPA-Diff; saved with its word-level tokenizer (tokenizer.json)."""

    variant = "caption"
    model_type = "satjepa-diff-caption"
    config_class = CaptionSatJEPAConfig
    train_command = "tamms train jepa --config src/tamms/configs/jepa_caption.yaml"
    extra_files = ("tokenizer.json",)

    @classmethod
    def build_pretrained(cls, config: CaptionSatJEPAConfig, folder: Path) -> "CaptionGuidedSatJEPA":
        return cls(config, cls.load_tokenizer(folder))

    def save_extra_files(self, folder: Path) -> None:
        self.save_tokenizer(folder)

    def __init__(self, config: CaptionSatJEPAConfig, tokenizer=None, target_provider=None):
        super().__init__()
        c = config
        if c.ijepa.embed_dim != c.forecaster.ijepa_dim or c.ijepa.embed_dim != c.adapter.ijepa_dim:
            raise ConfigError("forecaster.ijepa_dim and adapter.ijepa_dim must equal ijepa.embed_dim")
        if not (c.text.dim == c.forecaster.text_dim == c.adapter.text_dim):
            raise ConfigError("text.dim, forecaster.text_dim and adapter.text_dim must be equal")
        if c.adapter.cross_dim != c.generator.cross_dim or c.adapter.pooled_dim != c.generator.pooled_dim:
            raise ConfigError("adapter and generator must agree on cross_dim and pooled_dim")
        self.config = c
        self.ijepa = IJEPA(c.ijepa, target_provider)
        self.text_encoder = CaptionTextEncoder(c.text, tokenizer)
        self.caption_forecaster = CaptionForecaster(c.forecaster)
        self.adapter = MultiStreamAdapter(c.adapter)
        self.generator = FlowGenerator(c.generator)

    def init_from_rgb(self, rgb) -> None:
        """Start from a trained coarse-RGB `SatJEPADiff` of the same sizes: its IJEPA module and flow U-Net, and an
        adapter that gives the U-Net what the rgb adapter gave it without the coarse image
        (`MultiStreamAdapter.init_from_coarse_adapter`)."""
        for part in ("ijepa", "generator"):
            try:
                getattr(self, part).load_state_dict(getattr(rgb, part).state_dict())
            except RuntimeError as exc:
                first = str(exc).splitlines()
                raise ConfigError(f"the {part} of the rgb model has other sizes than model.{part} "
                                  f"({first[1].strip() if len(first) > 1 else exc}); use the same model.ijepa / "
                                  "model.generator settings as its config") from None
        self.adapter.init_from_coarse_adapter(rgb.adapter)

    def freeze_text_encoder(self) -> None:
        self.text_encoder.requires_grad_(False)
        self.text_encoder.eval()

    def encode_captions(self, captions: CaptionBatch):
        with torch.no_grad():  # the text encoder is frozen, as the card's CLIP/T5
            inf = self.text_encoder.encode(captions.informative)
            geo = self.text_encoder.encode(captions.geometric)
            nxt = self.text_encoder.encode(captions.semantic_next)[2] if captions.semantic_next is not None else None
        return inf, geo, nxt

    def forecast_caption(self, ijepa_tokens, inf, geo) -> torch.Tensor:
        text_tokens = torch.cat([inf[0], geo[0]], 1)  # [B, Li + Lg, Dt]
        text_mask = torch.cat([inf[1], geo[1]], 1)
        return self.caption_forecaster(inf[2], ijepa_tokens, text_tokens, text_mask)

    def loss(self, current: torch.Tensor, future: torch.Tensor, captions: CaptionBatch,
             gap_days: torch.Tensor | None = None, keys=None, generator: torch.Generator | None = None,
             current_days: torch.Tensor | None = None):
        if captions.semantic_next is None:
            raise InputError("training the caption-guided model needs the t+1 caption (semantic_next)")
        jepa = self.ijepa.loss(current, future, gap_days, keys, generator, current_days)
        inf, geo, nxt = self.encode_captions(captions)
        z_hat = self.ijepa.predict(current, gap_days, current_days)  # [B, N, D]
        sem = self.forecast_caption(z_hat, inf, geo)  # [B, Dt]
        cap = caption_loss(sem, nxt)
        # condition the generator on the forecast caption, or on the true one for a share of the batch
        tf = (torch.rand(sem.shape[0], generator=generator) < self.config.teacher_forcing)[:, None].to(sem.device)
        sem_cond = torch.where(tf, nxt, sem)
        cond = self.adapter(z_hat, inf[:2], geo[:2], sem_cond)
        diff = self.generator.loss(future, cond, generator, start=current)
        out = {f"ijepa/{k}": v for k, v in jepa.items()} | {f"diff/{k}": v for k, v in diff.items()}
        out["caption"] = cap
        out["loss"] = jepa["loss"] + self.config.sd_weight * diff["loss"] + self.config.caption_weight * cap
        return out

    @torch.no_grad()
    def condition(self, ijepa_tokens: torch.Tensor, captions: CaptionBatch) -> tuple[Conditioning, torch.Tensor]:
        """Everything the generator gets: built from IJEPA tokens and captions only (no pixels)."""
        inf, geo, _ = self.encode_captions(CaptionBatch(captions.informative, captions.geometric))
        sem = self.forecast_caption(ijepa_tokens, inf, geo)
        return self.adapter(ijepa_tokens, inf[:2], geo[:2], sem), sem

    @torch.no_grad()
    def forecast(self, current: torch.Tensor, gap_days: torch.Tensor | None = None, captions: CaptionBatch | None = None,
                 num_inference_steps: int | None = None, generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None, zero_ijepa: bool = False, current_days: torch.Tensor | None = None,
                 **_: object) -> torch.Tensor:
        """I_t + captions -> I_hat_{t+1}. The conditioning holds no pixels (IJEPA tokens + captions); the flow starts
        from pure noise ("noise" source: Zero-RGB) or from the last frame ("last" source: it learns the change).
        `zero_ijepa`: the ablation without the IJEPA forecast (its tokens zeroed, for the captions and the adapter)."""
        if captions is None:
            raise InputError("the caption-guided model needs captions of the current frame (informative and geometric)")
        shape = tuple(current.shape)
        z_hat = self.ijepa.predict(current, gap_days, current_days)
        if zero_ijepa:
            z_hat = torch.zeros_like(z_hat)
        cond, _ = self.condition(z_hat, captions)
        start = current if self.generator.config.source == "last" else None
        return self.generator.sample(cond, start, shape=shape, num_inference_steps=num_inference_steps,
                                     generator=generator, noise=noise)

    def save_tokenizer(self, folder: Path) -> None:
        (Path(folder) / "tokenizer.json").write_text(self.text_encoder.tokenizer.to_str(), encoding="utf-8")

    @staticmethod
    def load_tokenizer(folder: Path):
        from tokenizers import Tokenizer

        return Tokenizer.from_str((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))


__all__ = ["HistoryCaptioner", "change_layout_caption", "CaptionBatch", "CaptionGuidedSatJEPA", "CaptionSatJEPAConfig", "CaptionTextEncoder", "CaptionForecaster",
           "MultiStreamAdapter", "build_tokenizer", "triple_captions", "geometric_caption", "caption_loss", "json"]

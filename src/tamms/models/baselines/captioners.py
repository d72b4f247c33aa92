"""Change-captioning baselines compared against the describer.

- `RetrievalCaptioner`: nearest neighbour. A sequence is summarised by pooled first-frame colours and
  pooled last-minus-first differences (signed and absolute, 4x4 cells); the caption returned is the
  consensus reference (highest mean word-F1 to its siblings) of the closest training sequence.
- `BiTemporalCaptioner`: an RSICC-style bi-temporal captioner (after RSICC-Former, Liu et al. 2022):
  it sees only the first and last frame, a shared CNN gives 4x4 feature tokens for each, the tokens
  `[a, b, b - a]` are fused by a linear layer, and a transformer decoder writes the caption
  cross-attending to them. No dates, no prompt, no middle frames.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamms.models.vision import SmallConvTower, VisionConfig


def _word_f1(a: str, b: str) -> float:
    wa, wb = Counter(a.split()), Counter(b.split())
    common = sum((wa & wb).values())
    if common == 0:
        return 0.0
    p, r = common / sum(wa.values()), common / sum(wb.values())
    return 2 * p * r / (p + r)


def consensus_caption(captions: Sequence[str]) -> str:
    """The reference that agrees most with the others (mean word F1)."""
    if len(captions) == 1:
        return captions[0]
    scores = [np.mean([_word_f1(c, o) for j, o in enumerate(captions) if j != i]) for i, c in enumerate(captions)]
    return captions[int(np.argmax(scores))]


def retrieval_features(frames: torch.Tensor) -> np.ndarray:
    """`[T, 3, S, S]` -> 1-D feature: first frame, last - first, |last - first|, each pooled to 4x4."""
    first, last = frames[0:1], frames[-1:]
    pool = lambda x: F.adaptive_avg_pool2d(x, 4).flatten()  # noqa: E731  [48]
    feat = torch.cat([pool(first), 2 * pool(last - first), 2 * pool((last - first).abs())])
    return feat.numpy().astype(np.float32)


class RetrievalCaptioner:
    name = "nn-retrieval"

    def fit(self, frames: Sequence[torch.Tensor], captions: Sequence[Sequence[str]]) -> "RetrievalCaptioner":
        self.features = np.stack([retrieval_features(f) for f in frames])  # [N, F]
        self.mean = self.features.mean(0)
        self.std = self.features.std(0) + 1e-6
        self.features = (self.features - self.mean) / self.std
        self.captions = [consensus_caption(list(c)) for c in captions]
        return self

    def predict(self, frames: Sequence[torch.Tensor]) -> list[str]:
        query = (np.stack([retrieval_features(f) for f in frames]) - self.mean) / self.std  # [Q, F]
        d2 = (query ** 2).sum(1)[:, None] - 2 * query @ self.features.T + (self.features ** 2).sum(1)[None]  # [Q, N]
        return [self.captions[int(i)] for i in d2.argmin(1)]


@dataclass
class BiTemporalConfig:
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    image_size: int = 64
    max_len: int = 48


class BiTemporalCaptioner(nn.Module):
    """RSICC-style: (first, last) frame -> caption; see the module docstring."""

    name = "rsicc-bitemporal"

    def __init__(self, config: BiTemporalConfig, tokenizer):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.encoder = SmallConvTower(VisionConfig(image_size=config.image_size, grid=4))
        c = self.encoder.out_dim
        self.fuse = nn.Sequential(nn.Linear(3 * c, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.hidden))
        self.mem_pos = nn.Parameter(torch.zeros(16, config.hidden))
        self.embed = nn.Embedding(len(tokenizer), config.hidden)
        self.pos = nn.Parameter(torch.randn(config.max_len + 2, config.hidden) * 0.02)
        layer = nn.TransformerDecoderLayer(config.hidden, config.heads, 4 * config.hidden, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.layers)
        self.norm = nn.LayerNorm(config.hidden)
        self.head = nn.Linear(config.hidden, len(tokenizer))
        self.bos, self.eos, self.pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id

    def memory(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        a, b = self.encoder(first), self.encoder(last)  # [B, 16, C] each
        return self.fuse(torch.cat([a, b, b - a], dim=-1)) + self.mem_pos  # [B, 16, H]

    def logits(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        causal = torch.triu(torch.full((n, n), float("-inf"), device=tokens.device), diagonal=1)
        x = self.embed(tokens) + self.pos[:n]
        h = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=tokens == self.pad)
        return self.head(self.norm(h))  # [B, n, V]

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        ids = [[self.bos] + self.tokenizer(" " + t, add_special_tokens=False).input_ids[: self.config.max_len] + [self.eos]
               for t in texts]
        out = torch.full((len(ids), max(len(i) for i in ids)), self.pad, dtype=torch.long)
        for k, i in enumerate(ids):
            out[k, : len(i)] = torch.tensor(i)
        return out

    def loss(self, first: torch.Tensor, last: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.encode_text(texts)
        logits = self.logits(self.memory(first, last), tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), ignore_index=self.pad)

    @torch.no_grad()
    def predict(self, frames: Sequence[torch.Tensor], batch_size: int = 64) -> list[str]:
        self.eval()
        texts: list[str] = []
        for s in range(0, len(frames), batch_size):
            chunk = frames[s: s + batch_size]
            memory = self.memory(torch.stack([f[0] for f in chunk]), torch.stack([f[-1] for f in chunk]))
            tokens = torch.full((len(chunk), 1), self.bos, dtype=torch.long)
            done = torch.zeros(len(chunk), dtype=torch.bool)
            for _ in range(self.config.max_len):
                nxt = self.logits(memory, tokens)[:, -1].argmax(-1)  # greedy
                nxt = torch.where(done, torch.full_like(nxt, self.pad), nxt)
                tokens = torch.cat([tokens, nxt[:, None]], 1)
                done |= nxt == self.eos
                if bool(done.all()):
                    break
            texts += [" ".join(t.split()) for t in self.tokenizer.batch_decode(tokens[:, 1:], skip_special_tokens=True)]
        return texts

    def fit(self, frames: Sequence[torch.Tensor], captions: Sequence[Sequence[str]], steps: int = 300,
            batch_size: int = 32, lr: float = 1e-3, max_minutes: float | None = None, seed: int = 0) -> dict:
        """Plain AdamW loop (warm-up + cosine), one random reference caption per item per step."""
        rng = random.Random(seed)
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
        start, step = time.monotonic(), 0
        self.train()
        for step in range(steps):
            progress = step / steps
            if max_minutes:
                progress = max(progress, (time.monotonic() - start) / (60 * max_minutes))
                if progress >= 1:
                    break
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / 30) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
            idx = [rng.randrange(len(frames)) for _ in range(batch_size)]
            loss = self.loss(torch.stack([frames[i][0] for i in idx]), torch.stack([frames[i][-1] for i in idx]),
                             [rng.choice(list(captions[i])) for i in idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.parameters(), 1.0)
            opt.step()
        self.eval()
        return {"steps": step + 1, "minutes": round((time.monotonic() - start) / 60, 2), "final_loss": float(loss)}

"""The describer: TAM (PTE + CTP, TAMMs sec. 3.1) on a small vision-language model.

Input sequence of the causal LM for T frames (N = grid*grid visual tokens per frame):

    [BOS] [IMG]xN  [TIME_DIFF]  [IMG]xN  [TIME_DIFF] ... [IMG]xN  <CTP text> [ANSWER] description [EOS]
          frame 1   t_1 (eq. 4)  frame 2                 frame T

- `[IMG]` embeddings are replaced by `projector(vision_tower(frame))` (+ a learned grid position).
- `[TIME_DIFF]` embeddings are replaced by PTE's `e + MLP(phi(dt))` (models/temporal.py); without PTE
  the frames simply follow each other.
- CTP text (appendix A.4): "Dates: d1, ..., dT. Scene: <scene>. Describe specific changes between these
  time-series remote sensing images in a single paragraph. Focus on ...". Without CTP the text is only
  "Describe the changes." The scene comes from the user, the data, or is generated first by this model
  with `SCENE_PROMPT` (trained on the synthetic world's scene descriptions).

Outputs (the forecaster consumes the last two):
- the description text;
- `M_t` = the last decoder layer's hidden state (after the final norm) at the `[ANSWER]` position,
  shape `[B, D]`, D = LM hidden size. It summarises frames + gaps + prompt before a word is produced,
  so it is computed in one forward pass without generation and does not depend on decoding choices;
- `text_embeddings` = last-layer hidden states at the description tokens (+ `[EOS]`) `[B, L, D]`,
  `text_mask` `[B, L]`, teacher-forced on the text given (generated or reference).

Loss: `l_text * L_text + l_temp * L_temp`. L_text: token cross-entropy of the description.
L_temp: symmetric InfoNCE (temperature `tau`) between `W_m M_t` and `W_c c`, where `c` is the mean
last-layer hidden state of the reference caption encoded alone by the same LM (no images, no prompt,
no gradient); pairs with identical captions in the batch count as positives. It asks the state the
model reaches after reading the frames and gaps to identify which change happened, which is what the
forecaster needs from `M_t`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import ConfigError
from tamms.models.base import PretrainedModel
from tamms.models.language import (ANSWER_TOKEN, IMAGE_TOKEN, TIME_TOKEN, LanguageModelConfig,
                                   build_language_model, ensure_special_tokens)
from tamms.models.temporal import PhysicalTimeEncoder, PTEConfig
from tamms.models.vision import VisionConfig, build_vision_tower

CTP_INSTRUCTION = (
    "Describe specific changes between these time-series remote sensing images in a single paragraph. "
    "Focus on concrete changes to structures, landscape, or development with precise location details."
)
PLAIN_INSTRUCTION = "Describe the changes."
SCENE_PROMPT = ("Describe the scene shown in these remote sensing images of the same area in one sentence. "
                "Do not mention changes.")


@dataclass
class DescriberConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    use_pte: bool = True
    use_ctp: bool = True
    pte_frequencies: int = 6
    max_frames: int = 10  # more frames: evenly spaced ones are kept, first and last always
    # difference tokens: each frame's visual tokens also carry MLP(features_t - features_first), cell by cell,
    # so "what changed where" is in the input itself (zero for repeated frames) instead of left to the LM
    delta_tokens: bool = False
    # with no scene from the user: generate one first (True, the old recipe) or write "Scene: unknown" (False,
    # what a model trained without ground-truth scenes in its prompts expects)
    generate_scene: bool = True
    max_target_tokens: int = 64
    max_new_tokens: int = 48
    temp_dim: int = 128  # L_temp projection size
    temp_tau: float = 0.1
    train_mode: str = "full"  # "full", "frozen" (LM + vision tower frozen) or "lora" (frozen + LoRA in the LM)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DescriberConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown describer config keys {sorted(unknown)}; known keys: {sorted(known)}")
        vision = VisionConfig(**d.pop("vision", {}))
        language = LanguageModelConfig(**d.pop("language", {}))
        cfg = cls(vision=vision, language=language, **d)
        if cfg.train_mode not in ("full", "frozen", "lora"):
            raise ConfigError(f"train_mode {cfg.train_mode!r} is not one of 'full', 'frozen', 'lora'")
        return cfg


def change_prompt(dates: Sequence[str], scene: str | None, use_ctp: bool) -> str:
    """The text part of the prompt: CTP (appendix A.4 with dates and scene) or the plain instruction."""
    if not use_ctp:
        return PLAIN_INSTRUCTION
    scene_text = (scene or "unknown").strip().rstrip(".")
    return f"Dates: {', '.join(dates)}. Scene: {scene_text}. {CTP_INSTRUCTION}"


class Describer(PretrainedModel):
    """Vision tower -> projector -> causal LM, with PTE tokens between frames.

    Saved as config.json + model.safetensors + the tokenizer files (`save_pretrained(folder, dtype="float16")`
    halves the file, as the shipped weights are; loading always gives a float32 model)."""

    model_type = "tamms-describer"
    config_class = DescriberConfig
    train_command = "tamms train describe"
    extra_files = ("tokenizer.json",)

    @classmethod
    def build_pretrained(cls, config: DescriberConfig, folder: Path) -> "Describer":
        from tamms.models.language import load_tokenizer

        return cls(config, load_tokenizer(folder))

    def save_extra_files(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder))

    def __init__(self, config: DescriberConfig, tokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = ensure_special_tokens(tokenizer)
        self.lm = build_language_model(config.language, self.tokenizer)
        hidden = self.lm.config.hidden_size
        self.hidden_size = hidden
        self.vision = build_vision_tower(config.vision)
        self.tokens_per_frame = config.vision.grid ** 2
        self.projector = nn.Sequential(nn.Linear(self.vision.out_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.visual_pos = nn.Parameter(torch.zeros(self.tokens_per_frame, hidden))
        self.delta_projector = None
        if config.delta_tokens:
            self.delta_projector = nn.Sequential(nn.Linear(self.vision.out_dim, hidden), nn.GELU(),
                                                 nn.Linear(hidden, hidden))
            nn.init.zeros_(self.delta_projector[2].weight)  # starts as a no-op: a continued model keeps its outputs
            nn.init.zeros_(self.delta_projector[2].bias)
        self.pte = PhysicalTimeEncoder(PTEConfig(hidden_size=hidden, num_frequencies=config.pte_frequencies))
        self.temp_head_m = nn.Linear(hidden, config.temp_dim)
        self.temp_head_c = nn.Linear(hidden, config.temp_dim)
        vocab = self.tokenizer.get_vocab()
        self.image_id = vocab[IMAGE_TOKEN]
        self.time_id = vocab[TIME_TOKEN]
        self.answer_id = vocab[ANSWER_TOKEN]
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        self.bos_id = self.tokenizer.bos_token_id
        self._apply_train_mode()

    # --- training modes ------------------------------------------------------------------------------
    def _apply_train_mode(self) -> None:
        mode = self.config.train_mode
        if mode == "full":
            return
        for p in self.lm.parameters():
            p.requires_grad_(False)
        for p in self.vision.parameters():
            p.requires_grad_(False)
        if mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                              target_modules=list(self.config.lora_targets), lora_dropout=0.0)
            self.lm = inject_adapter_in_model(lora, self.lm)  # LoRA weights are the only trainable LM params

    # --- inputs --------------------------------------------------------------------------------------
    def _prompt_ids(self, num_frames: int, text: str) -> list[int]:
        ids = [] if self.bos_id is None else [self.bos_id]
        for i in range(num_frames):
            if i > 0 and self.config.use_pte:
                ids.append(self.time_id)
            ids += [self.image_id] * self.tokens_per_frame
        ids += self.tokenizer(" " + text, add_special_tokens=False).input_ids
        ids.append(self.answer_id)
        return ids

    def target_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(" " + text.strip(), add_special_tokens=False).input_ids[: self.config.max_target_tokens]
        return ids + [self.eos_id]

    def visual_tokens(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """frames: list of `[T_i, 3, S, S]` -> `[sum_i T_i * N, D]` projected visual tokens, in order."""
        stacked = torch.cat(list(frames), dim=0)  # [sum T, 3, S, S]
        feats = self.vision(stacked)  # [sum T, N, Cv]
        tokens = self.projector(feats) + self.visual_pos  # [sum T, N, D]
        if self.delta_projector is not None:
            per_sequence = feats.split([f.shape[0] for f in frames])  # [T_i, N, Cv] each
            delta = torch.cat([f - f[:1] for f in per_sequence])  # [sum T, N, Cv], zero on each first frame
            tokens = tokens + self.delta_projector(delta)
        return tokens.reshape(-1, tokens.shape[-1])  # [sum T * N, D]

    def build_inputs(self, frames: Sequence[torch.Tensor], days: Sequence[torch.Tensor], prompts: Sequence[str],
                     targets: Sequence[str] | None = None, padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Embeddings of prompt (+ target) per sample, padded into a batch.

        Returns inputs_embeds `[B, L, D]`, attention_mask `[B, L]`, answer_pos `[B]` (index of [ANSWER]),
        and when targets are given: target_ids `[B, L]` (-100 outside targets, unshifted) and
        target_mask `[B, L]` (True on description tokens + EOS).
        """
        device = self.visual_pos.device
        seqs, answer_pos, target_spans = [], [], []
        for i, (f, text) in enumerate(zip(frames, prompts)):
            ids = self._prompt_ids(f.shape[0], text)
            answer_pos.append(len(ids) - 1)
            if targets is not None:
                tgt = self.target_ids(targets[i])
                target_spans.append((len(ids), len(ids) + len(tgt)))
                ids = ids + tgt
            seqs.append(ids)
        length = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        offsets = []
        for i, s in enumerate(seqs):
            off = length - len(s) if padding_side == "left" else 0
            ids[i, off: off + len(s)] = torch.tensor(s)
            mask[i, off: off + len(s)] = 1
            offsets.append(off)
        ids, mask = ids.to(device), mask.to(device)
        embeds = self.lm.get_input_embeddings()(ids)  # [B, L, D]
        image_slots = (ids == self.image_id) & mask.bool()
        embeds = embeds.masked_scatter(image_slots.unsqueeze(-1), self.visual_tokens(frames).to(embeds.dtype))
        if self.config.use_pte:
            gaps = torch.cat([(d[1:] - d[:-1]).to(device) for d in days])  # [sum (T_i - 1)]
            time_slots = (ids == self.time_id) & mask.bool()
            embeds = embeds.masked_scatter(time_slots.unsqueeze(-1), self.pte(gaps).to(embeds.dtype))
        out = {"inputs_embeds": embeds, "attention_mask": mask,
               "answer_pos": torch.tensor(answer_pos, device=device) + torch.tensor(offsets, device=device)}
        if targets is not None:
            target_ids = torch.full_like(ids, -100)
            target_mask = torch.zeros_like(mask, dtype=torch.bool)
            for i, (a, b) in enumerate(target_spans):
                target_ids[i, offsets[i] + a: offsets[i] + b] = ids[i, offsets[i] + a: offsets[i] + b]
                target_mask[i, offsets[i] + a: offsets[i] + b] = True
            out["target_ids"], out["target_mask"] = target_ids, target_mask
        return out

    # --- forward -------------------------------------------------------------------------------------
    def decoder_hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states (after the final norm) `[B, L, D]`."""
        out = self.lm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state

    def forward(self, frames, days, prompts, targets) -> dict[str, torch.Tensor]:
        """Teacher-forced pass: L_text, M_t, text embeddings for `targets`."""
        inputs = self.build_inputs(frames, days, prompts, targets, padding_side="right")
        hidden = self.decoder_hidden(inputs["inputs_embeds"], inputs["attention_mask"])  # [B, L, D]
        # next-token prediction: position p predicts target token at p + 1
        labels = inputs["target_ids"][:, 1:]  # [B, L-1]
        predict = labels != -100
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][predict])  # [n_targets, V]
        loss_text = F.cross_entropy(logits.float(), labels[predict])
        batch = torch.arange(hidden.shape[0], device=hidden.device)
        semantic = hidden[batch, inputs["answer_pos"]]  # [B, D] = M_t
        text_embeddings, text_mask = _gather_spans(hidden, inputs["target_mask"])
        return {"loss_text": loss_text, "semantic": semantic, "text_embeddings": text_embeddings,
                "text_mask": text_mask, "n_tokens": predict.sum()}

    def caption_embedding(self, captions: Sequence[str]) -> torch.Tensor:
        """Mean last-layer hidden state of each caption encoded alone `[B, D]` (the L_temp target)."""
        ids = [self.target_ids(c) for c in captions]
        length = max(len(s) for s in ids)
        device = self.visual_pos.device
        tok = torch.full((len(ids), length), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(ids), length), dtype=torch.long, device=device)
        for i, s in enumerate(ids):
            tok[i, : len(s)] = torch.tensor(s, device=device)
            mask[i, : len(s)] = 1
        hidden = self.decoder_hidden(self.lm.get_input_embeddings()(tok), mask)  # [B, L, D]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def temporal_loss(self, semantic: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """L_temp: symmetric InfoNCE between M_t and the (detached) caption embedding."""
        with torch.no_grad():
            target = self.caption_embedding(captions)
        a = F.normalize(self.temp_head_m(semantic), dim=-1)
        b = F.normalize(self.temp_head_c(target), dim=-1)
        logits = a @ b.T / self.config.temp_tau  # [B, B]
        same = torch.tensor([[ci == cj for cj in captions] for ci in captions], device=logits.device,
                            dtype=logits.dtype)
        soft = same / same.sum(1, keepdim=True)  # identical captions are all positives
        return 0.5 * (torch.sum(-soft * logits.log_softmax(1), 1).mean()
                      + torch.sum(-soft * logits.log_softmax(0).T, 1).mean())

    def lm_loss_text_only(self, texts: Sequence[str]) -> torch.Tensor:
        """Language-side loss on captions without images (LEVIR-CC text): `[BOS] [ANSWER] text [EOS]`."""
        prefix = ([] if self.bos_id is None else [self.bos_id]) + [self.answer_id]
        seqs = [prefix + self.target_ids(t) for t in texts]
        length = max(len(s) for s in seqs)
        device = self.visual_pos.device
        tok = torch.full((len(seqs), length), self.pad_id, dtype=torch.long, device=device)
        labels = torch.full_like(tok, -100)
        mask = torch.zeros_like(tok)
        for i, s in enumerate(seqs):
            tok[i, : len(s)] = torch.tensor(s, device=device)
            labels[i, len(prefix): len(s)] = tok[i, len(prefix): len(s)]
            mask[i, : len(s)] = 1
        hidden = self.decoder_hidden(self.lm.get_input_embeddings()(tok), mask)
        predict = labels[:, 1:] != -100
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][predict])
        return F.cross_entropy(logits.float(), labels[:, 1:][predict])

    # --- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, frames, days, prompts, num_beams: int = 1, max_new_tokens: int | None = None) -> list[str]:
        inputs = self.build_inputs(frames, days, prompts, padding_side="left")
        out = self.lm.generate(
            inputs_embeds=inputs["inputs_embeds"], attention_mask=inputs["attention_mask"],
            max_new_tokens=max_new_tokens or self.config.max_new_tokens, num_beams=num_beams, do_sample=False,
            eos_token_id=self.eos_id, pad_token_id=self.pad_id, early_stopping=True if num_beams > 1 else False,
        )  # [B, new tokens] (inputs_embeds: only the new tokens are returned)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    @torch.no_grad()
    def describe(self, frames, days, dates: Sequence[Sequence[str]], scenes: Sequence[str | None],
                 num_beams: int = 1) -> dict[str, Any]:
        """Scene (generated where missing) -> description -> M_t and text embeddings."""
        scenes = list(scenes)
        if self.config.use_ctp and self.config.generate_scene:
            todo = [i for i, s in enumerate(scenes) if not s]
            if todo:
                gen = self.generate([frames[i] for i in todo], [days[i] for i in todo], [SCENE_PROMPT] * len(todo),
                                    num_beams=num_beams)
                for i, s in zip(todo, gen):
                    scenes[i] = s
        prompts = [change_prompt(d, s, self.config.use_ctp) for d, s in zip(dates, scenes)]
        texts = self.generate(frames, days, prompts, num_beams=num_beams)
        enc = self.forward(frames, days, prompts, texts)
        return {"texts": texts, "scenes": scenes, "prompts": prompts, **enc}


def _gather_spans(hidden: torch.Tensor, span_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden `[B, L, D]`, span_mask `[B, L]` -> left-aligned `[B, Lmax, D]` and mask `[B, Lmax]`."""
    lengths = span_mask.sum(1)
    lmax = int(lengths.max().item()) if len(lengths) else 0
    out = hidden.new_zeros(hidden.shape[0], lmax, hidden.shape[-1])
    mask = torch.zeros(hidden.shape[0], lmax, dtype=torch.bool, device=hidden.device)
    for i in range(hidden.shape[0]):
        n = int(lengths[i])
        out[i, :n] = hidden[i][span_mask[i]]
        mask[i, :n] = True
    return out, mask

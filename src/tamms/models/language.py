"""Tokeniser and causal language model of the describer.

- `train_tokenizer(texts)`: a BPE tokeniser trained with `tokenizers` on the caption corpus (synthetic
  captions, scenes and frame descriptions plus the LEVIR-CC train/val captions), wrapped as a
  `transformers.PreTrainedTokenizerFast` with the special tokens below.
- `build_language_model(config, tokenizer)`: a small LLaMA- or Qwen2-style `AutoModelForCausalLM`
  built from a config in code (the default, trained here), or any local causal-LM folder
  (`config.pretrained="/path/to/Qwen2.5-0.5B"`): its own tokeniser is loaded from the same folder and
  gets the special tokens added (the embedding table is resized).

Special tokens: `[IMG]` (placeholder for one visual token; replaced by the projector's output),
`[TIME_DIFF]` (PTE token between frames; replaced by eq. 4), `[ANSWER]` (ends the prompt; the last
layer's hidden state here is M_t, see describer.py), plus `[PAD]`, `[BOS]`, `[EOS]`, `[UNK]` for the
default tokeniser (pretrained tokenisers keep their own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tamms.errors import ConfigError, MissingWeightsError

IMAGE_TOKEN = "[IMG]"
TIME_TOKEN = "[TIME_DIFF]"
ANSWER_TOKEN = "[ANSWER]"
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
EXTRA_TOKENS = [IMAGE_TOKEN, TIME_TOKEN, ANSWER_TOKEN]
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, *EXTRA_TOKENS]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2):
    """Train a lower-casing BPE tokeniser on `texts`; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # punctuation split off words so "corner." and "corner" share a token; Metaspace keeps spaces decodable
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation("isolated")])
    tok.decoder = decoders.Metaspace()
    # every printable ASCII character is in the alphabet, so user text (scenes, dates) never maps to [UNK]
    alphabet = [chr(c) for c in range(33, 127)] + ["\u2581"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=alphabet)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, unk_token=UNK_TOKEN,
        additional_special_tokens=EXTRA_TOKENS,
    )
    fast.padding_side = "right"
    return fast


def load_tokenizer(folder: str | os.PathLike):
    """Tokeniser saved with `save_pretrained` (tokenizer.json) or any local HF tokeniser folder."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(folder)
    if (folder / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        if not (folder / "tokenizer_config.json").exists():
            return wrap_tokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))
        # a fast tokenizer saved with save_pretrained (ours, or a pretrained LM's)
        return ensure_special_tokens(PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True))
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise MissingWeightsError(f"no tokenizer in {folder} ({exc}); give a folder holding tokenizer.json") from None
    return ensure_special_tokens(tok)


def ensure_special_tokens(tok) -> "object":
    """Add `[IMG]`, `[TIME_DIFF]`, `[ANSWER]` (and a pad/eos token if missing) to any tokeniser."""
    missing = [t for t in EXTRA_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tok.eos_token is None:
        tok.add_special_tokens({"eos_token": EOS_TOKEN})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


@dataclass
class LanguageModelConfig:
    """A small causal LM built in code, or `pretrained` = a local folder of any causal LM."""

    arch: str = "llama"  # "llama" or "qwen2" (built from config) ; ignored when `pretrained` is set
    hidden_size: int = 192
    num_layers: int = 3
    num_heads: int = 6
    intermediate_size: int = 512
    max_positions: int = 1024
    tie_embeddings: bool = True
    pretrained: str | None = None  # local folder: AutoModelForCausalLM.from_pretrained(folder)


def build_language_model(config: LanguageModelConfig, tokenizer):
    """A causal LM whose vocabulary matches `tokenizer` (embedding table resized when tokens were added)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from tamms.utils import require_hf_folder

    if config.pretrained:
        folder = require_hf_folder(config.pretrained, "language model", "a downloaded Qwen2.5 or LLaMA checkpoint")
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return model
    common = dict(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads, max_position_embeddings=config.max_positions,
        tie_word_embeddings=config.tie_embeddings, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    if config.arch == "llama":
        lm_config = LlamaConfig(**common)
    elif config.arch == "qwen2":
        lm_config = Qwen2Config(**common)
    else:
        raise ConfigError(f"unknown language model arch {config.arch!r}: use 'llama' or 'qwen2', or set pretrained")
    return AutoModelForCausalLM.from_config(lm_config)

"""UniChange-style change detection ("embedding as change"), scaled to a CPU.

From the UniChange summary (CVPR 2026):
- `[T1]`, `[T2]` and `[CHANGE]` are added to the language model's vocabulary (embeddings resized).
- The LM reads both images (pooled visual tokens put at `[IMG]` placeholders, LLaVA-style) and an
  instruction that names the categories ("segment the changed building and road areas ."), and answers
  with a template response holding the special tokens ("the changed building and road area is [CHANGE] .").
- The final-layer hidden state at each special token, through an MLP, is a query of the token-driven
  decoder (`decoder.py`); each query gives one mask: `[CHANGE]` the change mask (BCD), and for semantic
  change (SCD) one `[T1]` and one `[T2]` per named category, the category's mask at each date.
- Loss `L_txt + 2.0 BCE + 0.5 Dice + 0.5 SS + 1.0 SC`; SS and SC are zero for samples with binary labels only.

Scaled down: a 2-layer Qwen2-style LM built from a config with a word-level tokenizer of the instruction
vocabulary (trained here) instead of LLaVA-7B; a 4-level CNN backbone instead of RSBuilding-ViT-L; 3
two-way layers. `UniChangeConfig.lm_path` swaps in any local causal LM folder (then LoRA through peft).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import InputError, MissingWeightsError
from tamms.models.base import PretrainedModel
from tamms.models.change.base import ChangeResult
from tamms.models.change.decoder import MultiScaleBackbone, TokenDecoderConfig, TokenDrivenDecoder
from tamms.models.change.siamese import prepare_pair

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[T1]", "[T2]", "[CHANGE]"]
IMAGE_TOKEN = "[IMG]"
OTHER = "other"  # the class of pixels that belong to no named category

# The land-cover classes of the synthetic world (tamms.data.synthetic.CLASS_NAMES, "_" read as a space); they
# include LEVIR-CD's "building". A config may list other classes.
DEFAULT_CLASS_NAMES = ["water", "forest", "grass", "crop green", "crop ripe", "crop ploughed", "bare soil", "road",
                       "building", "construction site"]


# ----------------------------------------------------------------------------------------------------------
# Instruction and response templates
# ----------------------------------------------------------------------------------------------------------

def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else " , ".join(words[:-1]) + " and " + words[-1]


def normalise_category(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def instruction_text(categories: Sequence[str] | None, semantic: bool, all_categories: bool = False) -> str:
    """The user's request. `categories` None/empty (or `all_categories`) asks for every change."""
    target = "all changed areas" if (not categories or all_categories) else f"the changed {_join(categories)} areas"
    if semantic:
        return f"segment {target} and give the semantic masks of {_join(categories)} ."
    return f"segment {target} ."


def response_text(categories: Sequence[str] | None, semantic: bool, all_categories: bool = False) -> str:
    """The template answer the LM is trained to give: `[CHANGE]` first, then `[T1]`/`[T2]` per category."""
    what = "area" if (not categories or all_categories) else f"{_join(categories)} area"
    text = f"the changed {what} is [CHANGE] ."
    if semantic:
        parts = [f"{c} at time 1 is [T1] and at time 2 is [T2]" for c in categories]
        text += " " + " ; ".join(parts) + " ."
    return text


@dataclass
class ChangeTask:
    """What one sample asks for: the categories named (None = every change) and whether SCD masks are wanted."""

    categories: list[str] | None = None
    semantic: bool = False
    all_categories: bool = False  # the categories are the full class list (the change target is every change)


# ----------------------------------------------------------------------------------------------------------
# Language model and tokenizer
# ----------------------------------------------------------------------------------------------------------

# The LM is built by the describer's builder (`tamms.models.language.build_language_model`): the same
# Qwen2/LLaMA-from-config code path, or any local causal-LM folder.
DEFAULT_LM = {"arch": "qwen2", "hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 256,
              "max_positions": 512}


def build_instruction_tokenizer(class_names: Sequence[str]):
    """A word-level tokenizer over the instruction/response vocabulary (a closed, templated language), WITHOUT
    the change tokens: those are added after, exactly as for a pretrained tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: list[str] = []
    cats = [normalise_category(c) for c in class_names]
    for text in (instruction_text(cats, True), response_text(cats, True), instruction_text(None, False),
                 response_text(None, False), instruction_text(cats, True, True), response_text(cats, True, True)):
        for w in text.replace("[CHANGE]", " ").replace("[T1]", " ").replace("[T2]", " ").split():
            if w not in words:
                words.append(w)
    base = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {w: i for i, w in enumerate(base + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", unk_token="[UNK]")


def load_language_model(config: "UniChangeConfig"):
    """(lm, tokenizer) with `[IMG]`, `[T1]`, `[T2]`, `[CHANGE]` added and the embeddings resized.

    `config.lm_path` = a local folder of any causal LM + tokenizer (LoRA on its attention through peft);
    otherwise the tiny LM and the word-level tokenizer built here (fully trained).
    """
    from tamms.models.language import LanguageModelConfig, build_language_model, load_tokenizer

    if config.lm_path:
        path = Path(config.lm_path)
        if not (path / "config.json").is_file():
            raise MissingWeightsError(f"language model folder {path} not found: give a local folder holding a "
                                      "causal LM and its tokenizer (nothing is downloaded)")
        tokenizer = load_tokenizer(path)
        lm = build_language_model(LanguageModelConfig(pretrained=str(path)), tokenizer)
    else:
        tokenizer = build_instruction_tokenizer(config.class_names)
        lm = build_language_model(LanguageModelConfig(**config.lm), tokenizer)
    tokenizer.add_tokens([IMAGE_TOKEN] + SPECIAL_TOKENS, special_tokens=True)
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if config.lm_path:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0,
                          target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head"])
        lm = get_peft_model(lm, lora)
    return lm, tokenizer


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------

@dataclass
class UniChangeConfig:
    in_channels: int = 3
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASS_NAMES))
    decoder: dict = field(default_factory=dict)          # TokenDecoderConfig fields
    lm: dict = field(default_factory=lambda: dict(DEFAULT_LM))
    lm_path: str | None = None                           # local folder of a pretrained causal LM (then LoRA)
    lora_rank: int = 8
    image_tokens: int = 4                                 # visual tokens per date for the LM: image_tokens**2
    threshold: float = 0.5
    loss_weights: dict = field(default_factory=lambda: {"txt": 1.0, "bce": 2.0, "dice": 0.5, "ss": 0.5, "sc": 1.0})

    def __post_init__(self):
        self.class_names = [normalise_category(c) for c in self.class_names]

    def decoder_config(self) -> TokenDecoderConfig:
        d = dict(self.decoder)
        if "backbone_channels" in d:
            d["backbone_channels"] = tuple(d["backbone_channels"])
        return TokenDecoderConfig(in_channels=self.in_channels, **d)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UniChangeConfig":
        d = dict(d)
        d.pop("model_type", None)
        return cls(**d)


@dataclass
class UniChangeOutput:
    """change_logits `[B, H, W]`; t1_logits/t2_logits `[B, K, H, W]` (K = most categories in the batch) with
    category_pad `[B, K]` True where a sample has no such category; f_t1/f_t2 the semantic feature maps
    `[B, D, H, W]`; txt_loss the LM cross-entropy on the response (None when not teacher-forced);
    responses the answers the LM gave (generation) or was given (teacher forcing)."""

    change_logits: torch.Tensor
    t1_logits: torch.Tensor
    t2_logits: torch.Tensor
    category_pad: torch.Tensor
    f_t1: torch.Tensor
    f_t2: torch.Tensor
    txt_loss: torch.Tensor | None
    responses: list[str]
    response_ok: list[bool]


class UniChangeModel(PretrainedModel):
    model_type = "unichange"
    config_class = UniChangeConfig
    train_command = "tamms train detect --config src/tamms/configs/detect_unichange.yaml"

    def __init__(self, config: UniChangeConfig | None = None):
        super().__init__()
        self.config = config or UniChangeConfig()
        dcfg = self.config.decoder_config()
        self.backbone = MultiScaleBackbone(dcfg.in_channels, dcfg.backbone_channels)
        self.decoder = TokenDrivenDecoder(dcfg)
        self.lm, self.tokenizer = load_language_model(self.config)
        hidden = self.lm.get_input_embeddings().embedding_dim
        # visual tokens for the LM (LLaVA-style projector) and a learned date embedding
        self.vision_proj = nn.Sequential(nn.Linear(dcfg.backbone_channels[-1], hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.vision_date = nn.Parameter(torch.zeros(2, hidden))
        # h_task -> decoder query (the paper's MLP)
        self.query_proj = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, dcfg.dim))
        ids = self.tokenizer.convert_tokens_to_ids([IMAGE_TOKEN] + SPECIAL_TOKENS)
        self.image_id, self.t1_id, self.t2_id, self.change_id = ids

    # -- text ------------------------------------------------------------------------------------------
    def resolve_task(self, categories: Sequence[str] | None, semantic: bool) -> ChangeTask:
        """Normalise a user request; SCD without categories means every class the model knows."""
        cats = [normalise_category(c) for c in categories] if categories else None
        if cats and self.config.lm_path is None:
            unknown = [c for c in cats if c not in self.config.class_names]
            if unknown:
                raise InputError(f"unknown categories {unknown}: this model knows {self.config.class_names}; "
                                 "name some of those (or train with your classes)")
        if semantic and not cats:
            cats = list(self.config.class_names)
        full = bool(cats) and set(cats) == set(self.config.class_names)
        return ChangeTask(categories=cats, semantic=semantic, all_categories=full)

    def _prompt_ids(self, task: ChangeTask) -> list[int]:
        n_img = self.config.image_tokens ** 2
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        text = instruction_text(task.categories, task.semantic, task.all_categories)
        return bos + [self.image_id] * (2 * n_img) + self.tokenizer.encode(" " + text, add_special_tokens=False)

    def _response_ids(self, task: ChangeTask) -> list[int]:
        text = response_text(task.categories, task.semantic, task.all_categories)
        return self.tokenizer.encode(" " + text, add_special_tokens=False) + [self.tokenizer.eos_token_id]

    def encode_tasks(self, tasks: Sequence[ChangeTask]) -> dict[str, torch.Tensor]:
        """Teacher-forcing batch: prompt + template response, right padded; labels -100 outside the response."""
        seqs, labels = [], []
        for task in tasks:
            p, r = self._prompt_ids(task), self._response_ids(task)
            seqs.append(p + r)
            labels.append([-100] * len(p) + r)
        length = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(seqs), length), pad, dtype=torch.long)
        label_t = torch.full((len(seqs), length), -100, dtype=torch.long)
        attn = torch.zeros((len(seqs), length), dtype=torch.long)
        for i, (s, l) in enumerate(zip(seqs, labels)):
            input_ids[i, : len(s)] = torch.tensor(s)
            label_t[i, : len(l)] = torch.tensor(l)
            attn[i, : len(s)] = 1
        return {"input_ids": input_ids, "labels": label_t, "attention_mask": attn}

    # -- vision ----------------------------------------------------------------------------------------
    def _embed(self, input_ids: torch.Tensor, feats_1, feats_2) -> torch.Tensor:
        """Token embeddings with the pooled visual tokens of both dates put at the `[IMG]` placeholders."""
        n = self.config.image_tokens
        vis = []
        for d, feats in enumerate((feats_1, feats_2)):
            pooled = F.adaptive_avg_pool2d(feats[-1], n)  # [B, C, n, n]
            tokens = pooled.flatten(2).transpose(1, 2)  # [B, n*n, C]
            vis.append(self.vision_proj(tokens) + self.vision_date[d])
        vis = torch.cat(vis, dim=1)  # [B, 2*n*n, hidden], date 1 then date 2
        embeds = self.lm.get_input_embeddings()(input_ids)  # [B, L, hidden]
        slot = (input_ids == self.image_id).unsqueeze(-1)  # [B, L, 1]
        return embeds.masked_scatter(slot, vis.to(embeds.dtype))

    # -- queries ---------------------------------------------------------------------------------------
    def _gather_queries(self, hidden: torch.Tensor, input_ids: torch.Tensor):
        """Hidden states at the special tokens -> slots [CHANGE], T1 x K, T2 x K (padded); `[B, 1+2K, H]`."""
        b = hidden.shape[0]
        pos_c = [(input_ids[i] == self.change_id).nonzero().flatten() for i in range(b)]
        pos_1 = [(input_ids[i] == self.t1_id).nonzero().flatten() for i in range(b)]
        pos_2 = [(input_ids[i] == self.t2_id).nonzero().flatten() for i in range(b)]
        k = max(max((len(p) for p in pos_1), default=0), max((len(p) for p in pos_2), default=0))
        slots = hidden.new_zeros(b, 1 + 2 * k, hidden.shape[-1])
        pad = torch.ones(b, 1 + 2 * k, dtype=torch.bool, device=hidden.device)
        for i in range(b):
            if len(pos_c[i]) == 0:
                raise RuntimeError("the response holds no [CHANGE] token")
            slots[i, 0] = hidden[i, pos_c[i][0]]
            pad[i, 0] = False
            n1, n2 = len(pos_1[i]), len(pos_2[i])
            slots[i, 1 : 1 + n1] = hidden[i, pos_1[i]]
            slots[i, 1 + k : 1 + k + n2] = hidden[i, pos_2[i]]
            pad[i, 1 : 1 + n1] = False
            pad[i, 1 + k : 1 + k + n2] = False
        groups = torch.tensor([0] + [1] * k + [2] * k, device=hidden.device)
        return slots, pad, groups, k

    def decode(self, feats_1, feats_2, hidden, input_ids, size) -> tuple:
        slots, pad, groups, k = self._gather_queries(hidden, input_ids)
        queries = self.query_proj(slots) * (~pad).unsqueeze(-1)  # padded slots stay zero
        logits, f_t1, f_t2 = self.decoder(feats_1, feats_2, queries, pad, groups, size)
        category_pad = pad[:, 1 : 1 + k] if k else pad.new_zeros(pad.shape[0], 0)
        return logits[:, 0], logits[:, 1 : 1 + k], logits[:, 1 + k :], category_pad, f_t1, f_t2

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor, tasks: Sequence[ChangeTask],
                hidden_override=None) -> UniChangeOutput:
        """Teacher-forced pass (training): the template response is fed, its special tokens give the queries.
        `hidden_override(hidden, input_ids) -> hidden` lets tests edit the LM states before the decoder."""
        feats_1, feats_2 = self.backbone(image_a), self.backbone(image_b)
        enc = {k: v.to(image_a.device) for k, v in self.encode_tasks(tasks).items()}
        embeds = self._embed(enc["input_ids"], feats_1, feats_2)
        out = self.lm(inputs_embeds=embeds, attention_mask=enc["attention_mask"], labels=enc["labels"],
                      output_hidden_states=True)
        hidden = out.hidden_states[-1]  # [B, L, hidden], final layer
        if hidden_override is not None:
            hidden = hidden_override(hidden, enc["input_ids"])
        change, t1, t2, cpad, f_t1, f_t2 = self.decode(feats_1, feats_2, hidden, enc["input_ids"], image_a.shape[-2:])
        responses = [response_text(t.categories, t.semantic, t.all_categories) for t in tasks]
        return UniChangeOutput(change, t1, t2, cpad, f_t1, f_t2, out.loss, responses, [True] * len(tasks))

    @torch.no_grad()
    def predict(self, image_a: torch.Tensor, image_b: torch.Tensor, task: ChangeTask, generate: bool = True) -> UniChangeOutput:
        """Inference: the LM generates its answer (greedy); the hidden states at the special tokens it wrote
        drive the decoder. If the answer lacks the tokens the request needs, the template answer is used
        instead (flagged in `response_ok`)."""
        b = image_a.shape[0]
        feats_1, feats_2 = self.backbone(image_a), self.backbone(image_b)
        prompt = torch.tensor([self._prompt_ids(task)] * b, device=image_a.device)  # [B, Lp], one request per call
        template = self._response_ids(task)
        response = torch.tensor([template] * b, device=image_a.device)
        ok = [True] * b
        if generate:
            embeds = self._embed(prompt, feats_1, feats_2)
            gen = self.lm.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(prompt),
                                   max_new_tokens=len(template) + 4, do_sample=False,
                                   pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
            gen = gen[:, -(len(template) + 4):] if gen.shape[1] > len(template) + 4 else gen
            rows, ok = [], []
            k = len(task.categories) if task.semantic else 0
            for row in gen.tolist():
                if self.tokenizer.eos_token_id in row:
                    row = row[: row.index(self.tokenizer.eos_token_id) + 1]
                counts = (row.count(self.change_id), row.count(self.t1_id), row.count(self.t2_id))
                good = counts == (1, k, k) and len(row) == len(template)
                ok.append(good)
                rows.append(row if good else template)
            if not all(ok):
                log.warning("the LM's answer missed special tokens for %d of %d pairs; used the template answer",
                            ok.count(False), b)
            # rows may differ in content but all have the template's length here
            response = torch.tensor(rows, device=image_a.device)
        input_ids = torch.cat([prompt, response], dim=1)  # [B, Lp + Lr]
        embeds = self._embed(input_ids, feats_1, feats_2)
        hidden = self.lm(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
        change, t1, t2, cpad, f_t1, f_t2 = self.decode(feats_1, feats_2, hidden, input_ids, image_a.shape[-2:])
        texts = self.tokenizer.batch_decode(response, skip_special_tokens=False)
        return UniChangeOutput(change, t1, t2, cpad, f_t1, f_t2, None, texts, ok)

    # -- files -----------------------------------------------------------------------------------------
    def pretrained_state(self) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        if self.config.lm_path:  # keep only what was trained; the base LM comes from lm_path
            keep = {n for n, p in self.named_parameters() if p.requires_grad}
            state = {n: t for n, t in state.items() if n in keep or not n.startswith("lm.")}
        return state

    def load_pretrained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(tensors, strict=not self.config.lm_path)


# ----------------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------------

def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice per sample `[B, H, W]`, averaged."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.float().flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


def semantic_logits(logits: torch.Tensor, category_pad: torch.Tensor) -> torch.Tensor:
    """`[B, K, H, W]` per-category logits -> `[B, 1+K, H, W]` with a constant 0 logit for "other" in front and
    padded categories pushed to -1e4 (class index 0 = other, k+1 = category k)."""
    masked = logits.masked_fill(category_pad[:, :, None, None], -1e4)
    return torch.cat([torch.zeros_like(masked[:, :1]), masked], dim=1)


def unichange_loss(out: UniChangeOutput, change_target: torch.Tensor, t1_target: torch.Tensor | None = None,
                   t2_target: torch.Tensor | None = None, has_semantic: torch.Tensor | None = None,
                   change_all: torch.Tensor | None = None, weights: dict | None = None,
                   pos_weight: float | None = None) -> dict[str, torch.Tensor]:
    """`L_txt + 2.0 BCE + 0.5 Dice + 0.5 SS + 1.0 SC` (weights from the config).

    change_target `[B, H, W]` 0/1 (the change the instruction asked for); t1/t2_target int64 `[B, H, W]`
    class indices as in `semantic_logits` (0 = other); has_semantic bool `[B]`: SS and SC count only those
    samples and are exactly zero when there are none (binary-only datasets such as LEVIR-CD);
    change_all `[B, H, W]` every change (for SC; defaults to change_target); pos_weight: BCE weight of changed
    pixels (rare change: > 1).
    """
    w = {"txt": 1.0, "bce": 2.0, "dice": 0.5, "ss": 0.5, "sc": 1.0, **(weights or {})}
    target = change_target.float()
    terms = {
        "txt": out.txt_loss if out.txt_loss is not None else target.new_zeros(()),
        "bce": F.binary_cross_entropy_with_logits(
            out.change_logits, target, pos_weight=None if pos_weight is None else target.new_tensor(pos_weight)),
        "dice": dice_loss(out.change_logits, target),
    }
    sem = has_semantic if has_semantic is not None else torch.zeros(target.shape[0], dtype=torch.bool)
    sem = sem.to(target.device).bool()
    if sem.any() and out.t1_logits.shape[1] > 0:
        ss = 0.0
        for logits, tgt in ((out.t1_logits, t1_target), (out.t2_logits, t2_target)):
            ss = ss + F.cross_entropy(semantic_logits(logits[sem], out.category_pad[sem]), tgt[sem].long())
        terms["ss"] = ss / 2
        # SC: cosine embedding between the dates' semantic features: alike where unchanged, apart where changed
        cos = F.cosine_similarity(out.f_t1[sem], out.f_t2[sem], dim=1)  # [Bs, H, W]
        changed = (change_all if change_all is not None else change_target)[sem].bool()
        terms["sc"] = torch.where(changed, cos.clamp(min=0), 1 - cos).mean()
    else:
        terms["ss"] = target.new_zeros(())
        terms["sc"] = target.new_zeros(())
    terms["total"] = sum(w[k] * terms[k] for k in ("txt", "bce", "dice", "ss", "sc"))
    return terms


# ----------------------------------------------------------------------------------------------------------
# The ChangeDetector wrapper
# ----------------------------------------------------------------------------------------------------------

class UniChangeDetector:
    """`detect(a, b)`: binary change of the named categories (all by default); with `semantic=True` also the
    land-cover class of every pixel at each date (indices into `result.class_names`)."""

    def __init__(self, model: UniChangeModel, name: str = "unichange", categories: Sequence[str] | None = None,
                 semantic: bool = False, generate: bool = True):
        self.model = model.eval()
        self.name = name
        self.categories = list(categories) if categories else None
        self.semantic = semantic
        self.generate = generate
        self.last_responses: list[str] = []
        self.last_response_ok: list[bool] = []  # False where the LM's answer lacked tokens (template used)

    @torch.no_grad()
    def detect(self, image_a: torch.Tensor, image_b: torch.Tensor, categories: Sequence[str] | None = None,
               semantic: bool | None = None) -> ChangeResult:
        a, b = prepare_pair(image_a, image_b, self.model.config.in_channels)
        task = self.model.resolve_task(categories or self.categories, self.semantic if semantic is None else semantic)
        out = self.model.predict(a, b, task, generate=self.generate)
        self.last_responses, self.last_response_ok = out.responses, out.response_ok
        prob = torch.sigmoid(out.change_logits)
        result = ChangeResult(mask=(prob > self.model.config.threshold).to(torch.uint8), probability=prob)
        if task.semantic:
            names = list(task.categories)
            if not task.all_categories:
                names.append(OTHER)
            for attr, logits in (("semantic_before", out.t1_logits), ("semantic_after", out.t2_logits)):
                if task.all_categories:  # every class named: the most likely category
                    idx = logits.masked_fill(out.category_pad[:, :, None, None], -1e4).argmax(1)  # [B, H, W]
                else:  # 0 = other -> last name; category k+1 -> k
                    idx = semantic_logits(logits, out.category_pad).argmax(1)
                    idx = torch.where(idx == 0, len(names) - 1, idx - 1)
                setattr(result, attr, idx)
            result.class_names = names
        return result


__all__ = ["UniChangeConfig", "UniChangeModel", "UniChangeOutput", "UniChangeDetector", "ChangeTask",
           "unichange_loss", "dice_loss", "semantic_logits", "instruction_text", "response_text",
           "SPECIAL_TOKENS", "build_instruction_tokenizer", "load_language_model"]

"""Change detection: UniChange special tokens -> decoder, conditional loss, mask sizes, overfitting, registry."""

from __future__ import annotations

import json
import random

import pytest
import torch

from tamms.errors import ConfigError, InputError
from tamms.models import build_model as build_network
from tamms.registry import load_detector
from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig, SiameseDetector
from tamms.models.change.unichange import (SPECIAL_TOKENS, ChangeTask, UniChangeConfig, UniChangeDetector,
                                           UniChangeModel, unichange_loss)

CLASSES = ["water", "forest", "road", "building"]
TINY = {"class_names": CLASSES,
        "decoder": {"backbone_channels": [8, 16, 16, 24], "dim": 32, "heads": 2, "mlp_dim": 64, "mask_dim": 16},
        "lm": {"arch": "qwen2", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
               "max_positions": 256},
        "image_tokens": 2}


@pytest.fixture(scope="module")
def tiny_unichange() -> UniChangeModel:
    torch.manual_seed(0)
    return UniChangeModel(UniChangeConfig.from_dict(TINY))


def test_special_tokens_added_and_embeddings_resized(tiny_unichange):
    m = tiny_unichange
    vocab = m.tokenizer.get_vocab()
    for tok in SPECIAL_TOKENS:
        assert tok in vocab
        # one token each, never split into pieces
        assert m.tokenizer.encode(tok, add_special_tokens=False) == [vocab[tok]]
    assert m.lm.get_input_embeddings().num_embeddings == len(m.tokenizer)
    task = m.resolve_task(["building", "road"], semantic=True)
    ids = m.encode_tasks([task])["input_ids"][0]
    assert (ids == m.change_id).sum() == 1 and (ids == m.t1_id).sum() == 2 and (ids == m.t2_id).sum() == 2
    assert "building" in m.tokenizer.decode(ids)  # the instruction names the categories


def test_special_token_hidden_states_drive_the_masks(tiny_unichange):
    m = tiny_unichange.train()
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    tasks = [m.resolve_task(["building", "road"], semantic=True), ChangeTask(None, False)]
    base = m(a, b, tasks)

    # gradient of the change mask reaches the LM hidden state at [CHANGE], and not at a plain word
    captured = {}

    def keep(hidden, ids):
        hidden.retain_grad()
        captured["h"], captured["ids"] = hidden, ids
        return hidden

    out = m(a, b, tasks, hidden_override=keep)
    out.change_logits.sum().backward()
    grad, ids = captured["h"].grad, captured["ids"]
    change_pos = (ids[0] == m.change_id).nonzero().flatten()
    word_pos = (ids[0] == m.tokenizer.convert_tokens_to_ids("changed")).nonzero().flatten()
    assert grad[0, change_pos].abs().sum() > 0
    assert grad[0, word_pos].abs().sum() == 0  # only the special tokens are queries
    m.zero_grad()

    # editing the hidden state at a [T1] token changes that category's mask; at a plain word, nothing
    def edit(token_id, k):
        def fn(hidden, ids):
            hidden = hidden.clone()
            pos = (ids[0] == token_id).nonzero().flatten()[k]
            hidden[0, pos] += 5.0 * torch.randn_like(hidden[0, pos])
            return hidden
        return fn

    with torch.no_grad():
        base = m(a, b, tasks)
        edited = m(a, b, tasks, hidden_override=edit(m.t1_id, 1))
        assert not torch.allclose(edited.t1_logits[0, 1], base.t1_logits[0, 1])
        edited = m(a, b, tasks, hidden_override=edit(m.tokenizer.convert_tokens_to_ids("changed"), 0))
        torch.testing.assert_close(edited.t1_logits, base.t1_logits)
        torch.testing.assert_close(edited.change_logits, base.change_logits)
        edited = m(a, b, tasks, hidden_override=edit(m.change_id, 0))
        assert not torch.allclose(edited.change_logits[0], base.change_logits[0])


def test_binary_only_batches_have_no_semantic_loss(tiny_unichange):
    m = tiny_unichange
    a, b = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    change = (torch.rand(3, 32, 32) > 0.7).long()
    lc = torch.randint(0, 5, (3, 32, 32))
    bcd = [ChangeTask(["building"], semantic=False)] * 3  # LEVIR-CD style: binary building change
    terms = unichange_loss(m(a, b, bcd), change, lc, lc, has_semantic=torch.zeros(3, dtype=torch.bool))
    assert terms["ss"].item() == 0.0 and terms["sc"].item() == 0.0
    assert terms["bce"] > 0 and terms["dice"] > 0 and terms["txt"] > 0
    mixed = [m.resolve_task(None, semantic=True), ChangeTask(["building"], False), ChangeTask(None, False)]
    terms = unichange_loss(m(a, b, mixed), change, lc, lc, has_semantic=torch.tensor([True, False, False]))
    assert terms["ss"] > 0 and terms["sc"] > 0
    w = {"txt": 1.0, "bce": 2.0, "dice": 0.5, "ss": 0.5, "sc": 1.0}
    expected = sum(w[k] * terms[k] for k in w)
    torch.testing.assert_close(terms["total"], expected)


@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
def test_masks_have_the_input_size(tiny_unichange, size):
    a, b = torch.rand(2, 4, *size), torch.rand(2, 4, *size)  # 4 bands: the detectors read the RGB ones
    for det in (SiameseDetector(SiameseChangeNet(SiameseConfig(channels=(8, 16, 32)))),
                UniChangeDetector(tiny_unichange, generate=False)):
        res = det.detect(a, b)
        assert res.mask.shape == (2, *size) and res.mask.dtype == torch.uint8
        assert res.probability.shape == (2, *size)
    res = UniChangeDetector(tiny_unichange, generate=True).detect(a[0], b[0], categories=["road", "water"],
                                                                   semantic=True)
    assert res.semantic_before.shape == (1, *size) and res.semantic_after.shape == (1, *size)
    assert res.class_names == ["road", "water", "other"]
    assert int(res.semantic_before.max()) < 3


def _toy_pairs(n: int, size: int, seed: int = 0):
    """Pairs whose change is a bright square appearing on textured ground, under a global brightness shift
    (the detector must find the square, not the illumination)."""
    g = torch.Generator().manual_seed(seed)
    a = 0.3 + 0.1 * torch.rand(n, 3, size, size, generator=g)
    b = a * (0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=g))
    change = torch.zeros(n, size, size, dtype=torch.long)
    lc_a = torch.zeros(n, size, size, dtype=torch.long)  # class 1 (forest) everywhere ...
    lc_a += 1
    for i in range(n):
        y, x = torch.randint(0, size - 10, (2,), generator=g).tolist()
        h, w = torch.randint(5, 10, (2,), generator=g).tolist()
        b[i, :, y : y + h, x : x + w] = torch.tensor([0.9, 0.85, 0.8])[:, None, None]
        change[i, y : y + h, x : x + w] = 1
    lc_b = torch.where(change.bool(), torch.full_like(lc_a, 3), lc_a)  # ... and building where it changed
    return a, b, change, lc_a, lc_b


def _f1(pred: torch.Tensor, target: torch.Tensor) -> float:
    pred, target = pred.bool(), target.bool()
    tp = (pred & target).sum().item()
    return 2 * tp / max(2 * tp + (pred & ~target).sum().item() + (~pred & target).sum().item(), 1)


def test_siamese_overfits_a_few_pairs():
    torch.manual_seed(0)
    a, b, change, _, _ = _toy_pairs(4, 24)
    net = SiameseChangeNet(SiameseConfig(channels=(8, 16, 32)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(a, b), change.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _f1(SiameseDetector(net).detect(a, b).mask, change) > 0.9


def test_unichange_overfits_a_few_pairs():
    torch.manual_seed(0)
    random.seed(0)
    a, b, change, lc_a, lc_b = _toy_pairs(4, 24)
    model = UniChangeModel(UniChangeConfig.from_dict(TINY))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    scd = model.resolve_task(None, semantic=True)
    tasks = [scd, ChangeTask(None, False), scd, ChangeTask(["building"], False)]
    t1 = lc_a + 1  # class k -> index k + 1 (0 = other) when every class is named
    t2 = lc_b + 1
    has_sem = torch.tensor([True, False, True, False])
    history = []
    for _ in range(45):
        terms = unichange_loss(model(a, b, tasks), change, t1, t2, has_sem, change_all=change)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    det = UniChangeDetector(model, generate=True)
    assert _f1(det.detect(a, b).mask, change) > 0.9
    # the LM learnt to write the answer itself, special tokens included (no fallback to the template)
    out = model.predict(a, b, ChangeTask(None, False), generate=True)
    assert all(out.response_ok) and out.responses[0].startswith("the changed area is [CHANGE]")
    # the semantic and text terms are learnt too
    assert history[-1]["ss"] < 0.2 * history[0]["ss"]
    assert history[-1]["txt"] < 0.25 * history[0]["txt"]


def test_registry_names_and_errors(tmp_path):
    with pytest.raises(ConfigError):
        load_detector("p2v-cd")
    with pytest.raises(ConfigError):
        build_network("cva")
    net = SiameseChangeNet(SiameseConfig(channels=(8, 16)))
    net.save_pretrained(tmp_path / "s")
    det = load_detector(str(tmp_path / "s"))
    assert det.name.startswith("siamese")
    x = torch.rand(3, 16, 16)
    torch.testing.assert_close(det.detect(x, x).probability, SiameseDetector(net).detect(x, x).probability)
    with pytest.raises(InputError):
        det.detect(torch.rand(3, 16, 16), torch.rand(3, 16, 20))


def test_unichange_save_and_load_round_trip(tmp_path, tiny_unichange):
    tiny_unichange.save_pretrained(tmp_path / "u")
    loaded = load_detector(str(tmp_path / "u"), generate=False)
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    ref = UniChangeDetector(tiny_unichange, generate=False).detect(a, b)
    torch.testing.assert_close(loaded.detect(a, b).probability, ref.probability)
    with pytest.raises(InputError):
        loaded.detect(a, b, categories=["volcano"])


def test_pretrained_lm_folder_gets_lora(tmp_path):
    """A local causal-LM folder swaps in for the tiny LM: special tokens added, LoRA on its attention."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tamms.models.change.unichange import build_instruction_tokenizer

    tok = build_instruction_tokenizer(CLASSES)
    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model = UniChangeModel(UniChangeConfig.from_dict({**TINY, "lm_path": str(tmp_path / "lm"), "lora_rank": 4}))
    trainable = {n for n, p in model.lm.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert not any("mlp" in n and "lora_" not in n for n in trainable)  # the base LM stays frozen
    out = model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), [ChangeTask(["road"], True)])
    assert out.t1_logits.shape == (1, 1, 16, 16)
    model.save_pretrained(tmp_path / "u")
    reloaded = UniChangeModel.from_pretrained(tmp_path / "u")
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    task = ChangeTask(None, False)
    torch.testing.assert_close(reloaded.predict(a, b, task, generate=False).change_logits,
                               model.eval().predict(a, b, task, generate=False).change_logits)


def test_default_detector_is_a_tcs_detector():
    """The shipped default detector plugs into TCS, and the TCS result names it."""
    from tamms.registry import DEFAULT_DETECTOR, default_detector
    from tamms.utils import default_weights

    assert (default_weights(DEFAULT_DETECTOR) / "model.safetensors").is_file(), "default detector weights missing"
    from tamms.metrics.temporal import tcs

    det = default_detector()
    assert det.name == DEFAULT_DETECTOR
    g = torch.Generator().manual_seed(0)
    prev = torch.rand(2, 4, 32, 32, generator=g)
    last = prev.clone()
    last[:, :3, 4:12, 4:12] = 0.95  # a bright new block in the top-left
    pred = last.clone()
    pred[:, :3, 4:12, 12:20] = 0.95  # it grows eastward
    out = tcs(prev, last, pred, detector=det)
    assert out["detector"] == DEFAULT_DETECTOR
    assert 0.0 <= out["TCS"] <= 1.0


def test_network_files_roundtrip_and_explain_wrong_folders(tmp_path):
    """config.json + model.safetensors: same outputs after reloading; a wrong or empty folder says what to do."""
    from tamms.errors import ConfigError, MissingWeightsError
    from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig
    from tamms.models.change.unichange import UniChangeModel

    torch.manual_seed(0)
    net = SiameseChangeNet(SiameseConfig(channels=(8, 16))).eval()
    net.save_pretrained(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "config.json").read_text())["model_type"] == "siamese"
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(SiameseChangeNet.from_pretrained(tmp_path / "s")(a, b), net(a, b))
    with pytest.raises(ConfigError, match="holds a 'siamese' model, not 'unichange'"):
        UniChangeModel.from_pretrained(tmp_path / "s")
    with pytest.raises(MissingWeightsError, match="tamms train detect --config src/tamms/configs/detect_siamese.yaml"):
        SiameseChangeNet.from_pretrained(tmp_path / "empty")

"""Describer (TAM: PTE + CTP on a small VLM): tokens, shapes, save/load, other backbones, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from tamms.models.describer import Describer, DescriberConfig
from tamms.models.language import LanguageModelConfig, train_tokenizer
from tamms.models.temporal import time_features
from tamms.models.vision import VisionConfig
from tamms.pipelines.describe import DescriberInput, DescribePipeline

CAPTIONS = [
    "a new building appears in the top-left corner",
    "the forest in the east is cleared",
    "the lake shrinks in the south",
    "no change is visible",
]


def tiny_config(**kw) -> DescriberConfig:
    return DescriberConfig(
        vision=VisionConfig(channels=[8, 16], image_size=32, grid=2),
        language=LanguageModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        max_new_tokens=12, **kw,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CAPTIONS * 3 + ["Dates: 2010-01-01. Scene: a farm. Describe the changes."], vocab_size=300,
                           min_frequency=1)


def make_inputs(n_frames=(2, 3, 4, 5), seed=0) -> list[DescriberInput]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, t in enumerate(n_frames):
        gaps = [30.0 * (i + 1) * (k + 1) for k in range(t - 1)]
        days = torch.cumsum(torch.tensor([14000.0] + gaps, dtype=torch.float64), 0)
        out.append(DescriberInput(torch.rand(t, 3, 32, 32, generator=g), days, [f"20{10 + k}-01-01" for k in range(t)],
                                  "a small farm", [CAPTIONS[i % len(CAPTIONS)]]))
    return out


def test_time_features_cover_days_to_decades():
    days = torch.tensor([1.0, 10, 100, 365, 3650, 36500])
    phi = time_features(days)
    assert phi.shape == (6, 16) and torch.isfinite(phi).all()
    assert torch.cdist(phi, phi).fill_diagonal_(1.0).min() > 0.05  # every scale is told apart
    assert phi[:, 0].diff().gt(0).all()  # the log feature grows with the gap


def test_pte_one_time_token_between_frames_and_depends_on_dt(tokenizer):
    torch.manual_seed(0)
    model = Describer(tiny_config(), tokenizer).eval()
    frames = [torch.rand(4, 3, 32, 32)]
    days_a = [torch.tensor([0.0, 30, 400, 4000], dtype=torch.float64)]
    days_b = [torch.tensor([0.0, 3000, 3100, 9000], dtype=torch.float64)]
    inputs = model.build_inputs(frames, days_a, ["Describe the changes."])
    ids = model._prompt_ids(4, "Describe the changes.")
    n = model.tokens_per_frame
    time_pos = [i for i, t in enumerate(ids) if t == model.time_id]
    assert len(time_pos) == 3  # T - 1 tokens
    # each [TIME_DIFF] sits right after the N visual tokens of frame i and right before those of frame i+1
    for p in time_pos:
        assert ids[p - n: p] == [model.image_id] * n and ids[p + 1: p + 1 + n] == [model.image_id] * n
    e_a = inputs["inputs_embeds"][0, time_pos]
    e_b = model.build_inputs(frames, days_b, ["Describe the changes."])["inputs_embeds"][0, time_pos]
    assert not torch.allclose(e_a, e_b)  # the time tokens change with dt
    same_gap = model.pte(torch.tensor([30.0, 30.0]))
    assert torch.allclose(same_gap[0], same_gap[1])
    # without PTE there are no time tokens
    no_pte = Describer(tiny_config(use_pte=False), tokenizer)
    assert model.time_id not in no_pte._prompt_ids(4, "x")


@pytest.mark.parametrize("n_frames", [2, 7, 10])
def test_runs_with_2_to_10_frames_and_any_gaps(tokenizer, n_frames):
    torch.manual_seed(0)
    pipe = DescribePipeline(Describer(tiny_config(), tokenizer))
    gaps = [1.0, 20 * 365.25, 45.0, 3650.0, 2.0, 7000.0, 10.0, 400.0, 90.0][: n_frames - 1]
    days = torch.cumsum(torch.tensor([5000.0] + gaps, dtype=torch.float64), 0)
    sample = {"image": torch.rand(n_frames, 4, 40, 40), "time": days, "scene": "a town"}
    out = pipe([sample, sample])
    assert len(out.texts) == 2 and all(isinstance(t, str) for t in out.texts)
    assert out.semantic.shape == (2, 64)
    assert out.text_embeddings.shape[0] == 2 and out.text_embeddings.shape[2] == 64
    assert out.text_mask.shape == out.text_embeddings.shape[:2] and out.text_mask[:, 0].all()
    assert len(out.dates[0]) == n_frames


def test_more_than_max_frames_keeps_first_and_last(tokenizer):
    pipe = DescribePipeline(Describer(tiny_config(max_frames=10), tokenizer))
    days = torch.arange(14, dtype=torch.float64) * 100
    x = pipe.prepare({"image": torch.rand(14, 3, 32, 32), "time": days})[0]
    assert x.frames.shape[0] == 10 and x.days[0] == 0 and x.days[-1] == 1300


def test_bad_inputs_raise_clear_errors(tokenizer):
    from tamms.errors import InputError

    pipe = DescribePipeline(Describer(tiny_config(), tokenizer))
    with pytest.raises(InputError, match="at least 2"):
        pipe({"image": torch.rand(1, 3, 32, 32), "time": torch.tensor([1.0])})
    with pytest.raises(InputError, match="increasing"):
        pipe({"image": torch.rand(2, 3, 32, 32), "time": torch.tensor([5.0, 1.0])})


def test_save_load_round_trip_gives_identical_outputs(tokenizer, tmp_path):
    torch.manual_seed(1)
    pipe = DescribePipeline(Describer(tiny_config(), tokenizer))
    inputs = make_inputs()
    out1 = pipe(inputs, num_beams=2)
    pipe.save_pretrained(tmp_path / "d")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "d").iterdir()}
    out2 = DescribePipeline.from_pretrained(tmp_path / "d")(inputs, num_beams=2)
    assert out1.texts == out2.texts
    assert torch.equal(out1.semantic, out2.semantic) and torch.equal(out1.text_embeddings, out2.text_embeddings)


def test_encode_is_teacher_forced_and_semantic_does_not_depend_on_text(tokenizer):
    pipe = DescribePipeline(Describer(tiny_config(), tokenizer))
    inputs = make_inputs()
    a = pipe.encode(inputs)  # reference captions
    b = pipe.encode(inputs, texts=["the forest in the east is cleared"] * 4)
    assert torch.allclose(a.semantic, b.semantic, atol=1e-5)  # M_t is read at [ANSWER], before the text
    assert a.text_mask.sum() != b.text_mask.sum() or not torch.allclose(a.text_embeddings, b.text_embeddings)


def _tiny_qwen2_folder(tokenizer, folder):
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("mode", ["full", "frozen", "lora"])
def test_tiny_qwen2_lm_plugs_in(tokenizer, tmp_path, mode):
    from tamms.models.language import load_tokenizer

    folder = _tiny_qwen2_folder(tokenizer, tmp_path / "qwen2")
    cfg = tiny_config(train_mode=mode)
    cfg.language = LanguageModelConfig(pretrained=str(folder))
    model = Describer(cfg, load_tokenizer(folder))
    assert model.lm.config.model_type == "qwen2" and model.hidden_size == 48
    inputs = make_inputs()
    out = model([x.frames for x in inputs], [x.days for x in inputs], ["Describe the changes."] * 4, CAPTIONS)
    loss = out["loss_text"] + 0.1 * model.temporal_loss(out["semantic"], CAPTIONS)
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("pte.") for n in trainable) and any(n.startswith("projector.") for n in trainable)
    lm_trainable = {n for n in trainable if n.startswith("lm.")}
    if mode == "full":
        assert lm_trainable
    elif mode == "frozen":
        assert not lm_trainable and not any(n.startswith("vision.") for n in trainable)
    else:
        assert lm_trainable and all("lora_" in n for n in lm_trainable)
    assert model.pte.time_token.grad is not None
    texts = model.generate([x.frames for x in inputs[:2]], [x.days for x in inputs[:2]], ["Describe the changes."] * 2)
    assert len(texts) == 2
    if mode == "lora":  # LoRA weights are saved and loaded with the rest
        pipe = DescribePipeline(model)
        pipe.save_pretrained(tmp_path / "saved")
        again = DescribePipeline.from_pretrained(tmp_path / "saved")
        assert again.model.lm.config.model_type == "qwen2"
        assert torch.allclose(pipe.encode(inputs).semantic, again.encode(inputs).semantic, atol=1e-6)


def test_local_hf_vision_tower_plugs_in(tokenizer, tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(tmp_path / "clip")
    cfg = tiny_config()
    cfg.vision = VisionConfig(image_size=64, grid=2, pretrained=str(tmp_path / "clip"))
    pipe = DescribePipeline(Describer(cfg, tokenizer))
    out = pipe({"image": torch.rand(3, 3, 64, 64), "time": torch.tensor([0.0, 10.0, 5000.0], dtype=torch.float64)})
    assert out.semantic.shape == (1, 64)


def test_missing_local_hf_folders_say_what_to_give(tokenizer, tmp_path):
    from tamms.errors import MissingWeightsError
    from tamms.models.language import LanguageModelConfig, build_language_model
    from tamms.models.vision import HFVisionTower

    with pytest.raises(MissingWeightsError, match="no vision model at .*config.json missing.*CLIP"):
        HFVisionTower(VisionConfig(pretrained=str(tmp_path)))
    with pytest.raises(MissingWeightsError, match="no language model at .*config.json missing.*Qwen2.5"):
        build_language_model(LanguageModelConfig(pretrained=str(tmp_path)), tokenizer)


def test_baselines(tokenizer):
    from tamms.models.baselines.captioners import BiTemporalCaptioner, BiTemporalConfig, RetrievalCaptioner, consensus_caption

    inputs = make_inputs()
    frames, caps = [x.frames for x in inputs], [x.captions for x in inputs]
    assert RetrievalCaptioner().fit(frames, caps).predict(frames) == [c[0] for c in caps]
    assert consensus_caption(["a road is built", "a road appears", "trees grow"]) in ("a road is built", "a road appears")
    torch.manual_seed(0)
    model = BiTemporalCaptioner(BiTemporalConfig(hidden=64, image_size=32, max_len=12), tokenizer)
    first = model.loss(torch.stack([f[0] for f in frames]), torch.stack([f[-1] for f in frames]), [c[0] for c in caps])
    model.fit(frames, caps, steps=40, batch_size=4, lr=3e-3)
    after = model.loss(torch.stack([f[0] for f in frames]), torch.stack([f[-1] for f in frames]), [c[0] for c in caps])
    assert after < 0.5 * first
    # it sees only the first and last frame: changing a middle frame changes nothing
    changed = [f.clone() for f in frames]
    changed[2][1] = 0
    assert model.predict(frames) == model.predict(changed)


def test_cli_describe_on_a_synthetic_sequence_folder(tokenizer, tmp_path):
    from tamms.cli import main
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence, write_sequence

    folder = write_sequence(generate_sequence(3, SyntheticWorldConfig(size=32, frames=4)), tmp_path / "seq")
    DescribePipeline(Describer(tiny_config(), tokenizer)).save_pretrained(tmp_path / "model")
    out_json = tmp_path / "out.json"
    main(["describe", str(folder), "--model", str(tmp_path / "model"), "--json", str(out_json), "--beams", "2"])
    doc = json.loads(out_json.read_text())
    assert len(doc["dates"]) == 4 and isinstance(doc["description"], str) and len(doc["semantic"]) == 64
    with pytest.raises(SystemExit) as exc:  # no clobbering without --overwrite
        main(["describe", str(folder), "--model", str(tmp_path / "model"), "--json", str(out_json)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["describe", str(tmp_path / "missing")])
    assert exc.value.code == 2


def test_shipped_weights_describe_a_synthetic_sequence():
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.utils import default_weights

    assert (default_weights("describer") / "model.safetensors").exists(), "shipped describer weights missing"
    pipe = DescribePipeline.from_pretrained()
    seq = generate_sequence(7, SyntheticWorldConfig(size=64, frames=4), seed=5)
    out = pipe([seq])
    assert out.texts[0].strip() and out.semantic.shape == (1, pipe.model.hidden_size)
    assert out.dates[0][0] == seq.dates[0].isoformat() and out.dates[0][-1] == seq.dates[-1].isoformat()
    generated = pipe([seq], use_data_scene=False)  # frames and dates only, as a user gives them
    assert generated.texts[0].strip()
    if pipe.model.config.generate_scene:  # the v1 recipe writes its scene first (CTP)
        assert generated.scenes[0].strip()


def test_difference_tokens_are_zero_for_repeated_frames_and_follow_change(tokenizer):
    torch.manual_seed(0)
    model = Describer(tiny_config(delta_tokens=True), tokenizer).eval()
    torch.nn.init.normal_(model.delta_projector[2].weight, std=0.5)  # as after training: not a no-op
    frame = torch.rand(1, 3, 32, 32)
    still = torch.cat([frame, frame, frame])  # [3, 3, 32, 32]
    moved = torch.cat([frame, frame, torch.rand(1, 3, 32, 32)])
    plain = Describer(tiny_config(), tokenizer).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("delta_")})
    tokens_still = model.visual_tokens([still])  # [3 * N, D]
    n = model.tokens_per_frame
    delta_zero = model.delta_projector(torch.zeros(1, model.vision.out_dim))  # a repeated frame's delta: 0
    assert torch.allclose(tokens_still, plain.visual_tokens([still]) + delta_zero, atol=1e-5)
    tokens_moved = model.visual_tokens([moved])
    assert torch.allclose(tokens_moved[: 2 * n], tokens_still[: 2 * n], atol=1e-5)
    assert not torch.allclose(tokens_moved[2 * n:] - plain.visual_tokens([moved])[2 * n:], delta_zero.expand(n, -1))


def test_without_generate_scene_no_scene_is_written(tokenizer):
    pipe = DescribePipeline(Describer(tiny_config(generate_scene=False), tokenizer))
    from tamms.models.describer import change_prompt

    out = pipe(make_inputs((2, 3)), use_data_scene=False)
    assert out.scenes == [None, None]
    assert all("Scene: unknown." in change_prompt(d, s, True) for d, s in zip(out.dates, out.scenes))
    given = pipe(make_inputs((2,)), scene="a farm by a lake")
    assert given.scenes == ["a farm by a lake"]


def test_shipped_describer_v2_reads_the_images():
    """describer-v2 (the default of `tamms describe`) with frames and dates only: a frame repeated is no change,
    and the description follows the frames, not the dates (benchmarks/describe_quality.py measures this in full)."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.synthetic_text import NO_CHANGE_CAPTIONS
    from tamms.pipelines.describe import default_describing_weights
    from tamms.utils import default_weights

    assert default_describing_weights() == default_weights("describer-v2")
    pipe = DescribePipeline.from_pretrained()
    assert pipe.model.config.delta_tokens and not pipe.model.config.generate_scene
    seq = generate_sequence(7, SyntheticWorldConfig(size=64, frames=4), seed=5)
    x = pipe.prepare(seq)[0]
    still = DescriberInput(x.frames[:1].repeat(4, 1, 1, 1), x.days, x.dates)
    out = pipe([still, x], use_data_scene=False)
    assert out.texts[0] in NO_CHANGE_CAPTIONS, out.texts[0]
    assert out.texts[1] != out.texts[0] and out.scenes == [None, None]


def test_ablation_runs_share_one_budget_and_differ_only_in_pte_and_ctp(tmp_path):
    """benchmarks/train_describe_ablations.py: every variant is a valid describe config with the same start,
    steps, batch and seed; only use_pte / use_ctp differ. A continued describer applies them (not ignored)."""
    import importlib.util
    import warnings
    from pathlib import Path

    from tamms.config import load_train_config
    from tamms.tasks.describe import DescribeTask

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_describe_ablations.py"
    spec = importlib.util.spec_from_file_location("train_describe_ablations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    configs_v1 = {}
    for start in ("v1", "scratch"):
        configs = configs_v1 if start == "v1" else {}
        for key in module.VARIANTS:
            cmd = module.command(tmp_path, key, seed=1, steps=123, batch=8, start=start)
            overrides = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
            configs[key] = load_train_config(cmd[cmd.index("--config") + 1], overrides, task="describe")
        for key, cfg in configs.items():
            assert (cfg.init_from is None) == (start == "scratch")
            assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.trainer.seed) == (123, 8, 1)
            assert (cfg.model["use_pte"], cfg.model["use_ctp"]) == module.VARIANTS[key]
            rest = {k: v for k, v in cfg.model.items() if k not in ("use_pte", "use_ctp")}
            assert rest == {k: v for k, v in configs["full"].model.items() if k not in ("use_pte", "use_ctp")}
            assert cfg.options == configs["full"].options and cfg.optim == configs["full"].optim
    # the continued v1 really runs without PTE and CTP (applied, not ignored with a warning)
    cfg = configs_v1["sft_only"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task = DescribeTask(cfg, init_from=cfg.init_from)  # builds the model (configure_models)
    assert not task.model.config.use_pte and not task.model.config.use_ctp
    assert task.model.config.delta_tokens  # the v2 recipe's own extension still applies

"""`tamms train describe` on the training backbone: CLI end to end, --set, exact --resume, prompts and
targets built from the sample dict, data checks, LEVIR-CC text, and DDP with two CPU processes."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from tamms.config import load_train_config
from tamms.errors import ConfigError, InputError
from tamms.models.describer import SCENE_PROMPT, Describer
from tamms.tasks.base import StopAfterSteps, train
from tamms.tasks.describe import DescribeTask

TINY = {
    "task": "describe",
    "model": {"vision": {"channels": [8, 16], "image_size": 32, "grid": 2},
              "language": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128},
              "max_new_tokens": 12},
    "options": {"tokenizer_vocab": 300, "levir_batch": 4},
    # 18 sequences: 14 train, 1 val, 3 test (hash split by id)
    "data": {"synthetic": {"n": 18, "size": 32, "frames": 4, "seed": 0}, "target": "none", "history": None,
             "rotate": False, "include_future": False, "batch_size": 4},
    "optim": {"lr": 3e-3, "warmup_steps": 2, "weight_decay": 0.01},
    "trainer": {"max_steps": 6, "checkpoint_every": 2, "accelerator": "cpu", "log_every": 1, "val_every": 3,
                "limit_val_batches": 1},
}


def tiny_config(*overrides: str):
    return load_train_config(TINY, list(overrides), task="describe")


def write_config(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "describe.yaml"
    path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    return path


def first_batch(task: DescribeTask) -> dict:
    data = task.datamodule()
    return next(iter(data.train_dataloader()))


def test_cli_trains_saves_and_the_folder_describes(tmp_path):
    from tamms.cli import main
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.pipelines.describe import DescribePipeline

    out = tmp_path / "model"
    main(["train", "describe", "--config", str(write_config(tmp_path)), "--out", str(out),
          "--set", "model.use_pte=false", "--set", "options.scene_source=none",
          "--set", "options.scene_prob=0.1"])  # batches of 4: keep >= 2 change items for L_temp every step
    model = Describer.from_pretrained(out)
    assert model.config.use_pte is False and model.config.vision.image_size == 32  # --set reached the model
    meta = json.loads((out / "config.json").read_text())["training"]
    assert meta["steps"] == 6 and meta["config"]["options"]["scene_source"] == "none"
    history = meta["history"]
    assert history[-1]["loss_text"] < history[0]["loss_text"]  # it learns
    assert all("loss_temp" in row for row in history)  # L_temp on M_t each step
    # the saved folder describes a sequence of another size (the pipeline resizes to the tower's 32 px)
    seq = generate_sequence(99, SyntheticWorldConfig(size=48, frames=3), seed=0)
    result = DescribePipeline(model)([seq])
    assert isinstance(result.texts[0], str) and result.semantic.shape == (1, 64)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    whole = train(tiny_config(), out=tmp_path / "whole")
    with pytest.raises(RuntimeError, match="stopped after 3 steps"):
        train(tiny_config(), out=tmp_path / "killed", callbacks=[StopAfterSteps(3)])
    resumed = train(tiny_config(), out=tmp_path / "killed", resume=True)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # the tokenizer (trained from the training captions) is the same too
    assert (whole / "tokenizer.json").read_text() == (resumed / "tokenizer.json").read_text()


def test_prompts_and_targets_come_from_the_sample_dict():
    L.seed_everything(0, verbose=False)
    task = DescribeTask(tiny_config("options.scene_prob=0", "options.frame_drop=1"))
    batch = first_batch(task)
    examples = task.make_examples(batch, train=True)
    assert len(examples) == batch["image"].shape[0]
    for ex, captions, scene, days in zip(examples, batch["captions"], batch["scene"], batch["time"]):
        assert ex.kind == "change" and ex.target in captions
        assert f"Scene: {scene.rstrip('.')}" in ex.prompt  # scene_source: truth (the oracle input)
        assert ex.frames.shape[1:] == (3, 32, 32) and 2 <= ex.frames.shape[0] <= 4
        assert ex.days[0] == days[0] and ex.days[-1] == days[-1]  # first and last frames always kept
    # validation: every frame and the first reference, no random draw
    state = task.rng.getstate()
    val = task.make_examples(batch, train=False)
    assert task.rng.getstate() == state
    assert [e.target for e in val] == [c[0] for c in batch["captions"]]
    assert all(e.frames.shape[0] == 4 for e in val)


def test_scene_source_none_and_the_scene_task():
    task = DescribeTask(tiny_config("options.scene_source=none", "options.scene_prob=0"))
    batch = first_batch(task)
    assert all("Scene: unknown." in e.prompt for e in task.make_examples(batch, train=True))
    scene_task = DescribeTask(tiny_config("options.scene_prob=1"))
    examples = scene_task.make_examples(batch, train=True)
    assert all(e.kind == "scene" and e.prompt == SCENE_PROMPT for e in examples)
    assert [e.target for e in examples] == list(batch["scene"])
    terms = scene_task.example_losses(examples)
    assert "loss_temp" not in terms and torch.isfinite(terms["loss"])  # L_temp only on change items


def test_levir_cc_text_term_and_its_errors(tmp_path):
    captions = tmp_path / "levir.json"
    captions.write_text(json.dumps({"pairs": {
        "train_1.png": {"split": "train", "captions": ["a road is built", "houses appear"]},
        "test_1.png": {"split": "test", "captions": ["a held-out caption"]}}}))
    task = DescribeTask(tiny_config(f"options.levir_cc={captions}"))
    assert task.levir_texts == ["a road is built", "houses appear"]  # test captions stay out
    assert "road" in task.model.tokenizer.get_vocab() or "▁road" in task.model.tokenizer.get_vocab()
    loss = task.training_step(first_batch(task), 0)
    assert torch.isfinite(loss) and task.history and "loss_levir" in task.history[-1]
    with pytest.raises(InputError, match="does not exist"):
        DescribeTask(tiny_config(f"options.levir_cc={tmp_path / 'missing.json'}"))


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="data.rotate=True"):
        DescribeTask(tiny_config("data.rotate=true"))
    with pytest.raises(ConfigError, match="data.target='next'"):
        DescribeTask(tiny_config("data.target=next"))
    with pytest.raises(ConfigError, match="scene_source"):
        DescribeTask(tiny_config("options.scene_source=caption"))
    with pytest.raises(ConfigError, match=r"unknown key \['use_ptee'\] in config.model"):
        DescribeTask(tiny_config("model.use_ptee=false"))


def test_visual_path_learning_rate_scale():
    task = DescribeTask(tiny_config("options.vision_lr_scale=3"))
    groups = task.configure_optimizers()["optimizer"].param_groups
    visual = {id(p) for n, p in task.model.named_parameters() if n.startswith(("vision.", "projector.", "visual_pos"))}
    for group in groups:
        is_visual = {id(p) in visual for p in group["params"]}
        assert len(is_visual) == 1
        assert group["initial_lr"] == pytest.approx(3e-3 * (3 if is_visual.pop() else 1))


def test_shipped_recipe_config_loads_with_its_stages():
    from tamms.config import from_dict, stage_config
    from tamms.tasks.describe import DescribeOptions, check_data, describer_config

    path = Path(__file__).resolve().parents[1] / "src" / "tamms" / "configs" / "describe.yaml"
    cfg = load_train_config(path, task="describe")
    assert [s.name for s in cfg.stages] == ["base", "continue", "visual"]
    steps = [stage_config(cfg, s.name).trainer.max_steps for s in cfg.stages]
    assert steps == [239, 292, 640]
    last = stage_config(cfg, "visual")
    assert from_dict(DescribeOptions, last.options).vision_lr_scale == 3.0
    check_data(cfg.data)
    assert describer_config(cfg.model).language.hidden_size == 192
    ablation = load_train_config(path, ["stages=[]", "model.use_pte=false"], task="describe")
    assert ablation.stages == [] and describer_config(ablation.model).use_pte is False


class SaveRankWeights(L.Callback):
    """Each rank writes its describer weights at the end of training."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        torch.save(state, f"{self.folder}/rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_two_process_ddp_through_the_backbone_keeps_ranks_equal(tmp_path):
    cfg = tiny_config("trainer.devices=2", "trainer.strategy=ddp_spawn", "trainer.accelerator=cpu",
                      "trainer.max_steps=3", "trainer.val_every=null", "options.scene_prob=0.2")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)  # as train() does before building the task
    initial = DescribeTask(cfg).model.state_dict()  # same seed and corpus: the weights every rank starts from
    folder = train(cfg, out=tmp_path / "model", callbacks=[SaveRankWeights(str(tmp_path))])
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    for k in rank0:  # different items per rank: only gradient averaging keeps them equal
        assert torch.allclose(rank0[k], rank1[k], atol=1e-6), k
    assert sum(not torch.equal(rank0[k], initial[k]) for k in rank0) > 10  # training did update the weights
    saved = Describer.from_pretrained(folder).state_dict()
    for k in rank0:
        assert torch.allclose(saved[k], rank0[k], atol=1e-6), k


def test_looking_pairs_repeated_reversed_and_windows():
    """static_prob 1: one frame repeated (nearly identical frames) -> a no-change caption, no scene in the prompt;
    window_prob 1: captions rewritten from the land cover of the window's own first and last frames."""
    from tamms.data.synthetic_text import NO_CHANGE_CAPTIONS

    task = DescribeTask(tiny_config("options.scene_source=none", "options.scene_prob=0", "options.static_prob=1"))
    batch = first_batch(task)
    examples = task.make_examples(batch, train=True)
    for e in examples:
        assert e.pair == "static" and e.target in NO_CHANGE_CAPTIONS and "Scene: unknown." in e.prompt
        assert (e.frames - e.frames[:1]).abs().max() < 0.1  # one frame, jittered
    window = DescribeTask(tiny_config("options.scene_source=none", "options.scene_prob=0", "options.window_prob=1"))
    for e in window.make_examples(batch, train=True):
        assert e.pair == "window" and e.target and 2 <= e.frames.shape[0] <= 4
        assert sorted(e.days.tolist()) == e.days.tolist()
    rev = DescribeTask(tiny_config("options.scene_source=none", "options.scene_prob=0", "options.reverse_prob=1"))
    pairs = rev.make_examples(batch, train=True)
    cats = [m["category"] for m in batch["meta"]]
    from tamms.tasks.describe import REVERSIBLE

    assert any(c in REVERSIBLE for c in cats)
    for e, cat, (x, _) in zip(pairs, cats, rev.sequences_of(batch)):
        assert e.pair == ("reversed" if cat in REVERSIBLE else "sequence")
        if e.pair == "reversed":  # the latest image first, under increasing dates
            assert torch.allclose(e.frames[0], x.frames[-1], atol=1e-5)
            assert e.days[0] < e.days[-1]


def test_user_scene_fraction_in_prompts():
    task = DescribeTask(tiny_config("options.scene_source=none", "options.scene_prob=0", "options.user_scene_prob=1"))
    batch = first_batch(task)
    for e, scene in zip(task.make_examples(batch, train=True), batch["scene"]):
        assert f"Scene: {scene.rstrip('.')}" in e.prompt
    val = task.make_examples(batch, train=False)  # validation asks what a user without a scene asks
    assert all("Scene: unknown." in e.prompt for e in val)


def test_continued_model_gains_difference_tokens_as_a_no_op(tmp_path):
    """init_from + model.delta_tokens: the trained weights are kept and the new part starts at zero, so the
    continued model gives the outputs it gave before training goes on."""
    base = DescribeTask(tiny_config())
    base.configure_models()
    base.model.save_pretrained(tmp_path / "base")
    grown = DescribeTask(tiny_config("model.delta_tokens=true", "model.generate_scene=false"),
                         init_from=tmp_path / "base")
    grown.configure_models()
    assert grown.model.delta_projector is not None and not grown.model.config.generate_scene
    frames, days = [torch.rand(3, 3, 32, 32)], [torch.tensor([0.0, 100.0, 400.0], dtype=torch.float64)]
    old = Describer.from_pretrained(tmp_path / "base").eval()
    a = old(frames, days, ["p"], ["a road appears"])["semantic"]
    b = grown.model.eval()(frames, days, ["p"], ["a road appears"])["semantic"]
    assert torch.allclose(a, b, atol=1e-6)

"""`tamms train jepa`: both Sat-JEPA-Diff variants train end to end on the backbone (CLI, --set, stages, --resume),
the EMA target follows every optimiser step over trainer.max_steps (its base momentum scaled to the run), the weight
decay ramps, training captions are made from the images (describer + change detector), never from the data's text."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import yaml

from tamms.config import load_train_config
from tamms.errors import ConfigError, InputError


def tiny_config(variant: str = "rgb", steps: int = 3, **trainer) -> dict:
    """A model of a few thousand parameters on 10 synthetic 32 px sequences: seconds per run."""
    model = {
        "ijepa": {"image_size": 32, "patch_size": 8, "in_channels": 3, "embed_dim": 32, "depth": 1, "num_heads": 2,
                  "predictor_dim": 32, "predictor_depth": 1, "predictor_heads": 2},
        "generator": {"image_size": 32, "in_channels": 3, "block_out_channels": [16, 32, 32], "norm_num_groups": 8,
                      "cross_dim": 32, "pooled_dim": 32, "num_inference_steps": 2, "source": "last",
                      "start_noise": 0.05},
    }
    if variant == "rgb":
        model["adapter"] = {"ijepa_dim": 32, "in_channels": 3, "hidden_dim": 32, "cross_dim": 32, "pooled_dim": 32}
    else:
        model |= {"text": {"vocab_size": 128, "dim": 32, "depth": 1, "heads": 2, "max_len": 64},
                  "forecaster": {"ijepa_dim": 32, "text_dim": 32, "hidden_dim": 32, "num_layers": 1},
                  "adapter": {"ijepa_dim": 32, "text_dim": 32, "hidden_dim": 32, "cross_dim": 32, "pooled_dim": 32}}
    return {
        "task": "jepa",
        "options": {"variant": variant, "text_pretrain_steps": 5},
        "model": model,
        "data": {"synthetic": {"n": 10, "size": 32, "frames": 3}, "bands": ["red", "green", "blue"],
                 "history": 1 if variant == "rgb" else 2,
                 "target": "next", "include_future": True, "batch_size": 4, "rotate": True},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "trainer": {"max_steps": steps, "log_every": 1, "accelerator": "cpu", "checkpoint_every": 2, **trainer},
    }


def write(tmp_path, cfg: dict, name: str = "jepa.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def sequences(n: int = 2):
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence

    return [generate_sequence(i, SyntheticWorldConfig(size=32, frames=3)) for i in range(n)]


@pytest.mark.parametrize("variant", ["rgb", "caption"])
def test_cli_trains_saves_and_the_folder_forecasts(tmp_path, variant):
    from tamms.cli import main
    from tamms.models import load_pretrained
    from tamms.pipelines.jepa import SatJEPAPipeline

    out = tmp_path / "out"
    main(["train", "jepa", "--config", str(write(tmp_path, tiny_config(variant))), "--out", str(out),
          "--set", "model.generator.ssim_weight=0.25"])
    model = load_pretrained(out)
    assert model.variant == variant
    assert model.config.generator.ssim_weight == 0.25  # --set reached the model
    assert model.pretrained_metadata["training"]["steps"] == 3
    # the online encoder moved; the EMA target followed it, with its base momentum scaled to the 3-step run
    online, target = model.ijepa.encoder.pos_embed, model.ijepa.target_encoder.pos_embed
    assert not torch.equal(online, target)
    assert model.config.ijepa.ema_momentum == (0.0, 1.0)  # 1 - 2 * 3 time constants / 3 steps, floored at 0
    pipe = SatJEPAPipeline.from_pretrained(out)
    seqs = sequences()
    result = pipe(seqs, num_samples=2, num_inference_steps=2, seed=0)
    assert result.images.shape == (2, 2, 3, 32, 32) and torch.isfinite(result.images).all()
    assert float(result.spread.mean()) > 0
    assert torch.equal(result.images, pipe(seqs, num_samples=2, num_inference_steps=2, seed=0).images)  # seeded
    assert len(pipe.rollout(seqs[0], num_inference_steps=2)) == seqs[0].num_frames
    with pytest.raises(SystemExit) as exc:  # a trained model is not replaced without --overwrite
        main(["train", "jepa", "--config", str(write(tmp_path, tiny_config(variant))), "--out", str(out)])
    assert exc.value.code == 2


@pytest.fixture
def pixel_captioner(monkeypatch):
    """The caption variant's describer + detector replaced by PixelCaptioner (the CLI test runs the real ones)."""
    from tamms.tasks.jepa import SatJEPATask

    monkeypatch.setattr(SatJEPATask, "_captioner", lambda self: PixelCaptioner())


@pytest.mark.parametrize("variant", ["rgb", "caption"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, variant, pixel_captioner):
    from safetensors.torch import load_file

    from tamms.tasks.base import StopAfterSteps, train

    cfg = load_train_config(tiny_config(variant, steps=4), task="jepa")
    train(cfg, out=tmp_path / "straight")
    with pytest.raises(RuntimeError, match="stopped after"):
        train(cfg, out=tmp_path / "resumed", callbacks=[StopAfterSteps(3)])  # last checkpoint: step 2
    train(cfg, out=tmp_path / "resumed", resume=True)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    if variant == "caption":  # the tokenizer is rebuilt from the same captions
        assert (tmp_path / "straight" / "tokenizer.json").read_text() == (tmp_path / "resumed" / "tokenizer.json").read_text()


class Recorder(L.Callback):
    """Records every EMA update (step, total) and the weight decay of each optimiser step."""

    def __init__(self) -> None:
        self.ema: list[tuple[int, int]] = []
        self.decay: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        update = pl_module.model.ijepa.update_target

        def recording(step: int, total: int) -> float:
            self.ema.append((step, total))
            return update(step, total)

        pl_module.model.ijepa.update_target = recording

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.decay.append(max(g["weight_decay"] for g in optimizer.param_groups))


def test_ema_after_every_step_over_max_steps_and_the_weight_decay_ramp(tmp_path):
    from tamms.tasks.base import train
    from tamms.tasks.jepa import cosine_ramp

    recorder = Recorder()
    cfg = load_train_config(tiny_config("rgb", steps=4), ["options.weight_decay_ramp=[0.1, 0.5]"], task="jepa")
    train(cfg, out=tmp_path / "out", callbacks=[recorder])
    assert recorder.ema == [(1, 4), (2, 4), (3, 4), (4, 4)]
    expected = [0.1, 0.5 - 0.4 * 0.5 * (1 + math.cos(math.pi / 4)), 0.3, 0.5 - 0.4 * 0.5 * (1 + math.cos(3 * math.pi / 4))]
    assert recorder.decay == pytest.approx(expected)
    assert cosine_ramp(4, 4, 0.1, 0.5) == pytest.approx(0.5)
    # without the ramp the optimiser keeps optim.weight_decay
    recorder = Recorder()
    cfg = load_train_config(tiny_config("rgb", steps=2), ["options.weight_decay_ramp=null", "optim.weight_decay=0.07"],
                            task="jepa")
    train(cfg, out=tmp_path / "flat", callbacks=[recorder])
    assert recorder.decay == pytest.approx([0.07, 0.07])


def test_two_stages_continue_with_the_text_encoder_frozen(tmp_path, pixel_captioner):
    from tamms.models import load_pretrained
    from tamms.tasks.base import train

    raw = tiny_config("caption", steps=2)
    raw["stages"] = [{"name": "first"}, {"name": "continue", "set": {"trainer.max_steps": 1}}]
    folder = train(load_train_config(raw, task="jepa"), out=tmp_path / "out")
    first, last = load_pretrained(tmp_path / "out" / "stages" / "first"), load_pretrained(folder)
    assert last.pretrained_metadata["training"]["init_from"] == str(tmp_path / "out" / "stages" / "first")
    for name, p in first.text_encoder.state_dict().items():
        assert torch.equal(p, last.text_encoder.state_dict()[name]), name  # frozen after its pretraining
    assert not torch.equal(first.generator.unet.conv_in.weight, last.generator.unet.conv_in.weight)


def test_a_continued_stage_takes_new_loss_weights_but_keeps_the_network(tmp_path):
    """Stage 2 adds the GSSIM term (a training key of model:); the sizes stay those of the stage-1 model."""
    from tamms.models import load_pretrained
    from tamms.tasks.base import train

    raw = tiny_config("rgb", steps=2)
    raw["stages"] = [{"name": "base"}, {"name": "gssim", "set": {"trainer.max_steps": 2,
                                                                 "model.generator.gssim_weight": 0.5,
                                                                 "model.generator.block_out_channels": [8, 8, 8]}}]
    folder = train(load_train_config(raw, task="jepa"), out=tmp_path / "out")
    first, last = load_pretrained(tmp_path / "out" / "stages" / "base"), load_pretrained(folder)
    assert first.config.generator.gssim_weight == 0.0 and last.config.generator.gssim_weight == 0.5
    assert tuple(last.config.generator.block_out_channels) == (16, 32, 32)  # a size: never changed by a stage
    rows = [r for r in last.pretrained_metadata["training"]["history"] if "diff/gssim" in r]
    assert rows and all(r["diff/gssim"] > 0 for r in rows)  # the term was trained with


class PixelCaptioner:
    """A stand-in for HistoryCaptioner that captions from the pixels only (their mean) and counts its calls."""

    def __init__(self):
        self.calls = 0

    def describe(self, frames, days):
        self.calls += 1
        return [f"brightness {float(f[-1].mean()):.4f} after {float(d[-1] - d[0]):.0f} days" for f, d in zip(frames, days)]

    def __call__(self, history, days):
        from tamms.models.jepa_caption import CaptionBatch

        return CaptionBatch(self.describe(history, days), [f"red {float(h[-1, 0].mean()):.4f}" for h in history])


def test_training_captions_are_made_from_the_images_not_the_data_text():
    from tamms.data.datamodule import SitsDataModule
    from tamms.data.datasets import collate_sits
    from tamms.tasks.jepa import training_captions

    dm = SitsDataModule(sequences=sequences(3), history=2, target="next", split_mode="all", include_future=True,
                        flip=False)
    dm.setup("fit")
    ds = dm.datasets["train"]
    batch = collate_sits([ds[i] for i in range(len(ds))])
    captioner = PixelCaptioner()
    captions = training_captions(batch, captioner, [0, 1, 2])
    i = 0
    assert captions[i]["informative"].startswith(f"brightness {float(batch['image'][i, -1, :3].mean()):.4f}")
    # the t+1 caption (the caption forecaster's target) is the describer on (frame t, frame t+1)
    assert captions[i]["semantic_next"].startswith(f"brightness {float(batch['target'][i, :3].mean()):.4f}")
    # the data's own text and land cover do not matter; the pixels do
    batch["frame_descriptions"] = [["something else"] * 2 for _ in batch["meta"]]
    batch["landcover"] = torch.zeros_like(batch["landcover"]) if isinstance(batch["landcover"], torch.Tensor) else None
    assert training_captions(batch, captioner, [0, 1, 2]) == captions
    batch["image"] = batch["image"] * 0.5
    assert training_captions(batch, captioner, [0, 1, 2])[i]["informative"] != captions[i]["informative"]
    # a cache (whole frames, no turns) makes each window's captions once
    cache: dict = {}
    calls = captioner.calls
    first = training_captions(batch, captioner, [0, 1, 2], cache)
    assert training_captions(batch, captioner, [0, 1, 2], cache) == first and captioner.calls == calls + 2


def test_history_captioner_layout_comes_from_the_detector():
    from tamms.models.jepa_caption import HistoryCaptioner, change_layout_caption
    from tamms.models.change.base import ChangeResult

    mask = torch.zeros(30, 30)
    mask[:10, :10] = 1  # the whole top-left cell
    mask[10:20, 10:12] = 1  # 20% of the centre cell
    assert change_layout_caption(mask) == "much change in the top-left, some change in the centre, little change elsewhere"
    assert change_layout_caption(torch.zeros(9, 9)) == "no change detected"

    class Detector:
        def detect(self, a, b):
            return ChangeResult(mask=((b - a).abs().mean(1) > 0.1).to(torch.uint8))

    class Describer:
        def __call__(self, seqs, use_data_scene=True):
            assert not use_data_scene  # frames and dates only
            return type("Out", (), {"texts": [f"{s.num_frames} frames" for s in seqs]})()

    history = torch.zeros(1, 3, 3, 30, 30)
    history[0, 2, :, 20:, 20:] = 1.0  # the bottom-right corner changes between the last two frames
    caps = HistoryCaptioner(Describer(), Detector())(history, torch.tensor([[0.0, 100.0, 200.0]]))
    assert caps.informative == ["2 frames"] and caps.geometric == ["much change in the bottom-right, little change elsewhere"]
    with pytest.raises(InputError, match="describer and a change detector"):
        HistoryCaptioner(None, Detector())


def test_bad_configs_name_the_fix(tmp_path):
    from tamms.tasks.jepa import SatJEPATask

    with pytest.raises(ConfigError, match="data.history: 1"):
        SatJEPATask(load_train_config(tiny_config(), ["data.history=null"], task="jepa"))
    with pytest.raises(ConfigError, match="valid keys"):
        SatJEPATask(load_train_config(tiny_config(), ["model.ijepa.depthh=2"], task="jepa"))
    with pytest.raises(ConfigError, match="variant"):
        SatJEPATask(load_train_config(tiny_config(), ["options.variant=rgbx"], task="jepa"))
    with pytest.raises(ConfigError, match="data.bands"):
        SatJEPATask(load_train_config(tiny_config(), ["data.bands=[red, green]"], task="jepa"))


def test_shipped_configs_parse_into_the_models_they_describe():
    from pathlib import Path

    from tamms.config import from_dict
    from tamms.tasks.jepa import JEPAOptions, model_config_class

    root = Path(__file__).resolve().parents[1] / "src" / "tamms" / "configs"
    for name, variant in (("jepa.yaml", "rgb"), ("jepa_caption.yaml", "caption")):
        cfg = load_train_config(root / name, task="jepa")
        options = from_dict(JEPAOptions, cfg.options, "options")
        assert options.variant == variant and options.weight_decay_ramp == (0.04, 0.4)
        model = from_dict(model_config_class(variant), cfg.model, "model")
        assert model.ijepa.image_size == 64 and cfg.data.include_future and not cfg.data.rotate
        assert cfg.data.history == (1 if variant == "rgb" else 2)
        assert model.generator.source == "last" and model.ijepa.use_season and options.ema_time_constants == 3.0
        assert cfg.optim.lr * cfg.optim.min_lr_ratio == pytest.approx(6e-6, rel=1e-4)  # the cosine's floor
        if variant == "rgb":  # base, then a stage with the GSSIM term at half the learning rate
            assert [st.name for st in cfg.stages] == ["base", "gssim"] and model.generator.gssim_weight == 0.0
            assert cfg.stages[1].set["model.generator.gssim_weight"] > 0
        else:
            assert not cfg.stages
    assert options.init_parts_from == "src/tamms/weights/satjepa"  # the caption model starts from the RGB one

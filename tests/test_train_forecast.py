"""`tamms train forecast` on the shared backbone: the TAMMs stages (unet, structural, semantic, anneal), the
baselines, --set, --resume, ablations, stage freezing and the describer's conditioning.

Tiny networks (16 px crops, channels 8-16), a few steps; the shipped describer gives M_t (192-d).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tamms.cli import main
from tamms.config import load_train_config, stage_config
from tamms.data.datasets import collate_sits
from tamms.errors import ConfigError, MissingWeightsError
from tamms.tasks.base import StopAfterSteps, train
from tamms.tasks.forecast import ForecastTask, configure_stage, ecm_loss, make_train_scheduler

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "tamms" / "configs"
TINY_UNET = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 16, 16],
                 down_block_types=["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], layers_per_block=1,
                 cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
# the shipped describer's hidden size is 192 (M_t and text embeddings)
TINY_ECM = dict(semantic_dim=192, text_dim=192, time_embed_dim=16, semproc_hidden=16, temporal_heads=2)


def tiny_recipe(steps: int = 2, **trainer) -> dict:
    """forecast.yaml's stages on a tiny U-Net, tiny data and `steps` steps per stage."""
    recipe = yaml.safe_load((CONFIGS / "forecast.yaml").read_text())
    recipe["model"].update(unet=TINY_UNET, ecm=TINY_ECM)
    recipe["data"].update(synthetic={"n": 12, "size": 24, "frames": 4, "seed": 0}, crop_size=16, batch_size=2)
    recipe["trainer"].update(accelerator="cpu", log_every=1, checkpoint_every=2, **trainer)
    for stage in recipe["stages"]:
        stage["set"].update({"trainer.max_steps": steps, "trainer.max_minutes": None, "data.batch_size": 2})
    return recipe


def write_recipe(folder: Path, recipe: dict) -> Path:
    path = folder / "forecast.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train_to_structural(recipe: dict, out: Path) -> Path:
    """Stages unet and structural (`--stage unet`, then `--stage structural`): the structural ECM's folder."""
    train(load_train_config(recipe), out=out, stage="unet")
    return train(load_train_config(recipe), out=out, stage="structural")


def ecm_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def semantic_names(folder: Path) -> set[str]:
    """Names of the ECM's semantic-temporal parameters (theta_s-t) in a saved folder."""
    from tamms.models.forecaster import SFCIForecaster

    ecm = SFCIForecaster.from_pretrained(folder).ecm
    ids = {id(p) for p in ecm.semantic_parameters()}
    return {n for n, p in ecm.named_parameters() if id(p) in ids}


def changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in a if not torch.equal(a[k], b[k])}


# --- the shipped recipes -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["forecast", "forecast_simvp", "forecast_convlstm"])
def test_shipped_configs_type_check_in_every_stage(name):
    cfg = load_train_config(CONFIGS / f"{name}.yaml", task="forecast")
    stages = [stage_config(cfg, s.name) for s in cfg.stages] or [cfg]
    for stage in stages:
        from tamms.config import from_dict
        from tamms.tasks.forecast import ForecastModelConfig, ForecastOptions

        from_dict(ForecastModelConfig, stage.model)
        from_dict(ForecastOptions, stage.options)
        assert stage.data.crop_size == 32 and stage.data.history == 3 and stage.data.rotate
    if name == "forecast":
        assert [s.name for s in cfg.stages] == ["unet", "structural", "semantic", "anneal"]
        assert [s.options["stage"] for s in stages] == ["unet", "structural", "semantic", "anneal"]
        assert [s.trainer.max_steps for s in stages] == [6000, 3625, 800, 400]
        assert [s.optim.schedule for s in stages] == ["cosine", "constant", "constant", "cosine"]
        assert [s.options.get("l1_weight", 0) for s in stages] == [0, 1.0, 1.0, 1.0]


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="model.name 'unet' is not one of"):
        ForecastTask(load_train_config({"task": "forecast", "model": {"name": "unet"}}))
    with pytest.raises(ConfigError, match="set options.stage"):
        ForecastTask(load_train_config({"task": "forecast", "model": {"unet": TINY_UNET}}))
    with pytest.raises(ConfigError, match=r"unknown key \['l1'\] in config.options"):
        ForecastTask(load_train_config({"task": "forecast", "options": {"stage": "unet", "l1": 1}}))
    with pytest.raises(MissingWeightsError, match="run stage unet first"):
        ForecastTask(load_train_config({"task": "forecast", "options": {"stage": "structural"}}))
    with pytest.raises(MissingWeightsError, match="starts from a trained ECM"):
        ForecastTask(load_train_config({"task": "forecast", "options": {"stage": "semantic"}}))


# --- the whole recipe through the CLI --------------------------------------------------------------------
def test_recipe_runs_all_stages_and_saves_loadable_folders(tmp_path, capsys):
    from tamms.models.forecaster import SFCIForecaster
    from tamms.registry import load_forecast_model

    out = tmp_path / "tamms"
    main(["train", "forecast", "--config", str(write_recipe(tmp_path, tiny_recipe())), "--out", str(out),
          "--set", "model.ecm.control_depth=2"])
    assert f"saved {out}" in capsys.readouterr().out
    stages = out / "stages"
    # stage unet: the U-Net in diffusers format beside an untrained ECM; every later folder names that U-Net
    assert (stages / "unet" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "tamms-sfci" and saved["config"]["unet"] == "stages/unet/unet"
    assert saved["config"]["ecm"]["control_depth"] == 2  # --set reached the model
    # the sampler chosen on validation is saved with the weights
    assert (saved["config"]["default_steps"], saved["config"]["strength"], saved["config"]["start_from"]) == (
        4, 0.5, "change-trend") and saved["training"]["stage"] == "anneal"
    assert json.loads((stages / "structural" / "config.json").read_text())["config"]["structural_only"] is True
    # each stage trained its own parameter set and nothing else
    fresh, structural, semantic, anneal = (ecm_state(f) for f in (stages / "unet", stages / "structural",
                                                                   stages / "semantic", out))
    semantic_keys = semantic_names(out)
    assert changed(fresh, structural) and not changed(fresh, structural) & semantic_keys
    assert changed(structural, semantic) and changed(structural, semantic) <= semantic_keys
    assert changed(semantic, anneal) and changed(semantic, anneal) <= semantic_keys
    # the U-Net stage really trained the U-Net
    from tamms.models.unet import build_unet

    torch.manual_seed(0)
    trained = SFCIForecaster.from_pretrained(out).unet.state_dict()
    assert any(not torch.equal(v, build_unet(dict(TINY_UNET)).state_dict()[k]) for k, v in trained.items())
    # the final folder is a forecaster the registry loads, with the describer's conditioning
    model = load_forecast_model("tamms", out)
    assert model.uses_semantic and model.uses_text
    history = torch.rand(1, 3, 3, 16, 16)
    days = torch.tensor([[0.0, 300.0, 700.0]], dtype=torch.float64)
    forecast = model.forecast(history, days, torch.tensor([1000.0], dtype=torch.float64), num_samples=2,
                              num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert forecast.shape == (1, 2, 3, 16, 16) and torch.isfinite(forecast).all()
    assert load_forecast_model("tamms-base-control", stages / "structural").uses_semantic is False


def test_ablation_retrains_semantic_and_anneal_from_the_shared_structural_stage(tmp_path):
    """TAMMs table 2: --set model.ecm.use_text=false with init_from the structural ECM, stage by stage."""
    from tamms.registry import load_forecast_model

    recipe = tiny_recipe()
    base = train_to_structural(recipe, tmp_path / "tamms")
    assert base == tmp_path / "tamms" / "stages" / "structural"
    ablation = tmp_path / "tamms-no-text"
    first = train(load_train_config(recipe, ["model.ecm.use_text=false", f"init_from={base}"]),
                  out=ablation, stage="semantic")
    assert first == ablation / "stages" / "semantic" and not (ablation / "stages" / "unet").exists()
    final = train(load_train_config(recipe, ["model.ecm.use_text=false", f"init_from={first}"]), out=ablation,
                  stage="anneal")
    assert final == ablation
    saved = json.loads((final / "config.json").read_text())
    assert saved["config"]["ecm"]["use_text"] is False and saved["training"]["init_from"] == str(first)
    model = load_forecast_model("tamms-no-text", final)
    assert model.uses_semantic and not model.uses_text
    touched = changed(ecm_state(base), ecm_state(final))
    assert touched and touched <= semantic_names(final) and not any("text_adapter" in k for k in touched)
    with pytest.raises(ConfigError, match="model.ecm.control_depth is 2 but the ECM"):
        train(load_train_config(recipe, ["model.ecm.control_depth=2", f"init_from={base}"]), out=tmp_path / "x",
              stage="semantic")


# --- resume ------------------------------------------------------------------------------------------------
class StopInStage(StopAfterSteps):
    """A crash after `steps` steps of one stage only."""

    def __init__(self, stage: str, steps: int) -> None:
        super().__init__(steps)
        self.stage = stage

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.stage == self.stage:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    """Killed in stage unet, resumed, killed again in stage semantic (describer conditioning, diffusion noise),
    resumed: the weights of a run that was never killed."""
    recipe = tiny_recipe(steps=4)
    recipe["stages"] = recipe["stages"][:3]
    whole = train(load_train_config(recipe), out=tmp_path / "whole")
    killed = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="stopped after 3 steps"):
        train(load_train_config(recipe), out=killed, callbacks=[StopAfterSteps(3)])  # checkpoint at step 2
    with pytest.raises(RuntimeError, match="stopped after 3 steps"):
        train(load_train_config(recipe), out=killed, resume=True, callbacks=[StopInStage("semantic", 3)])
    assert (killed / "stages" / "structural" / "config.json").is_file() and not (killed / "config.json").exists()
    resumed = train(load_train_config(recipe), out=killed, resume=True)
    a, b = ecm_state(whole), ecm_state(resumed)
    assert a.keys() == b.keys() and not changed(a, b)
    unet = Path("stages") / "unet" / "unet" / "diffusion_pytorch_model.safetensors"
    assert not changed(load_file(str(whole / unet)), load_file(str(killed / unet)))
    assert changed(ecm_state(whole / "stages" / "structural"), a)  # the semantic stage did train


# --- baselines ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["simvp", "convlstm"])
def test_baseline_trains_through_the_cli_and_loads(tmp_path, name):
    from tamms.registry import load_forecast_model

    recipe = yaml.safe_load((CONFIGS / "forecast_simvp.yaml").read_text())
    recipe["model"].update(simvp={"hidden": 8, "translator": 16, "translator_blocks": 1}, convlstm={"hidden": 8})
    recipe["data"].update(synthetic={"n": 12, "size": 24, "frames": 4, "seed": 0}, crop_size=16, batch_size=4)
    recipe["trainer"].update(max_steps=12, max_minutes=None, accelerator="cpu", log_every=1)
    recipe["optim"].update(warmup_steps=2, lr=1e-2)
    out = tmp_path / name
    main(["train", "forecast", "--config", str(write_recipe(tmp_path, recipe)), "--out", str(out),
          "--set", f"model.name={name}"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == name and saved["config"]["hidden"] == 8
    history = [row["loss"] for row in saved["training"]["history"]]
    assert np.mean(history[-3:]) < np.mean(history[:3])  # MSE + L1 went down
    model = load_forecast_model(name, out)
    h = torch.rand(2, 3, 3, 20, 28)
    got = model.forecast(h, torch.tensor([[0.0, 50, 100]] * 2), torch.tensor([200.0, 300.0]))
    assert got.shape == (2, 1, 3, 20, 28) and not torch.equal(got[:, 0], h[:, -1])  # no longer persistence


def test_change_trend_trains_through_the_cli_loads_and_reads_the_detected_changes(tmp_path):
    """change-trend: trained on the synthetic world's future change masks, loaded by name with its detector; its
    forecast is the last frame except where it predicts change, and the detected history changes steer it."""
    from tamms.models.change_trend import ChangeTrendForecaster
    from tamms.pipelines.forecast import detected_changes
    from tamms.pipelines.detect import detector_from_pretrained
    from tamms.registry import load_forecast_model

    recipe = yaml.safe_load((CONFIGS / "forecast_change_trend.yaml").read_text())
    assert recipe["data"]["real"] == [] and recipe["data"]["crop_size"] == 64  # real folders come with --set
    assert recipe["model"]["change_trend"]["detector"] == "siamese-real" and recipe["data"]["real_repeats"] == 10
    recipe["model"]["change_trend"]["detector"] = "siamese"  # the smaller detector keeps the test quick
    recipe["model"]["change_trend"].update(hidden=8, translator=16, translator_blocks=1)
    recipe["data"].update(synthetic={"n": 12, "size": 24, "frames": 4, "seed": 0}, crop_size=24, batch_size=4)
    recipe["trainer"].update(max_steps=12, accelerator="cpu", log_every=1)
    recipe["optim"].update(warmup_steps=2, lr=1e-2)
    path = write_recipe(tmp_path, recipe)
    out = tmp_path / "ct"
    main(["train", "forecast", "--config", str(path), "--out", str(out)])
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "change-trend" and saved["config"]["detector"] == "siamese"
    history = [row["loss"] for row in saved["training"]["history"]]
    assert np.mean(history[-3:]) < np.mean(history[:3])  # BCE + Dice + L1 went down
    h = torch.rand(2, 3, 3, 20, 28)
    days, target = torch.tensor([[0.0, 50, 100]] * 2), torch.tensor([200.0, 300.0])
    loaded = load_forecast_model("change-trend", out)
    assert loaded.any_gap  # one step to any date (chosen on the synthetic val split, docs/forecast.md)
    got = loaded.forecast(h, days, target)[:, 0]  # [B, C, H, W]
    assert got.shape == (2, 3, 20, 28)
    net = ChangeTrendForecaster.from_pretrained(out)
    changes = detected_changes(detector_from_pretrained("siamese"), h)  # [B, T-1, H, W]
    assert changes.shape == (2, 2, 20, 28)
    with torch.no_grad():
        pred = net.predict(h, changes, days, target)  # 20 x 28 needs no padding (a multiple of 4)
        kept = torch.sigmoid(pred.change_logits) <= net.cfg.threshold  # [B, H, W]
        assert 0 < kept.sum() < kept.numel()
        torch.testing.assert_close(got.permute(0, 2, 3, 1)[kept], h[:, -1].permute(0, 2, 3, 1)[kept])
        torch.testing.assert_close(got.permute(0, 2, 3, 1)[~kept], pred.content.permute(0, 2, 3, 1)[~kept])
        # control: the change masks are read (all-change history masks give other change logits)
        other = net.predict(h, torch.ones(2, 2, 20, 28), days, target).change_logits
        assert (other - net.predict(h, torch.zeros(2, 2, 20, 28), days, target).change_logits).abs().max() > 1e-4


def test_change_trend_learns_real_series_from_the_detected_change_to_their_target(tmp_path):
    """A real series (no exact change mask) trains `real_repeats` times per pass, its future change being what the
    frozen detector finds from its last frame to its target; a synthetic window keeps its exact mask."""
    from dataclasses import replace

    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.data.writers import save_sequence
    from tamms.pipelines.forecast import detected_changes

    scene = generate_sequence(7, SyntheticWorldConfig(size=24, frames=6), seed=3)
    real = save_sequence(replace(scene, change_masks=None, landcover=None), tmp_path / "real")  # frames and dates
    recipe = yaml.safe_load((CONFIGS / "forecast_change_trend.yaml").read_text())
    recipe["model"]["change_trend"].update(hidden=8, translator=16, translator_blocks=1)
    recipe["data"].update(synthetic={"n": 12, "size": 24, "frames": 4, "seed": 0}, crop_size=24, batch_size=4,
                          real=[str(real)])
    recipe["data"]["real_repeats"] = 5
    task = ForecastTask(load_train_config(recipe))
    dm = task.datamodule()
    dm.setup("fit")
    windows = dm.datasets["train"].windows
    sequences = dm.datasets["train"].sequences
    real_windows = [w for w in windows if sequences[w.seq].meta.get("hold_out_last")]
    assert len(real_windows) == 5 * 2  # 5 frames train (the 6th is held out): 2 windows of 3 -> next, 5 times
    items = [dm.datasets["train"][i] for i in range(len(windows))]
    without_mask = [it for it in items if "target_mask" not in it][:2]
    batch = collate_sits(without_mask + [it for it in items if "target_mask" in it][:2])
    assert batch["target_mask"][0] is None and batch["target_mask"][2] is not None
    masks = task.future_change_masks(batch)  # [B, H, W]
    pairs = torch.stack([batch["image"][:2, -1], batch["target"][:2]], dim=1)
    assert torch.equal(masks[:2], detected_changes(task.detector, pairs)[:, 0].to(torch.uint8))
    assert torch.equal(masks[2:], torch.stack(batch["target_mask"][2:]).to(torch.uint8))
    assert torch.isfinite(task.training_step(batch, 0))


# --- pieces ---------------------------------------------------------------------------------------------
def _task(stage: str, init_from: Path | None = None, **options) -> ForecastTask:
    recipe = tiny_recipe()
    cfg = stage_config(load_train_config(recipe), stage)
    cfg.options.update(options)
    return ForecastTask(cfg, init_from=init_from)


@pytest.fixture(scope="module")
def structural_folder(tmp_path_factory) -> Path:
    return train_to_structural(tiny_recipe(steps=1), tmp_path_factory.mktemp("fc"))


def test_conditioning_is_computed_on_the_batch_the_unet_sees(structural_folder):
    task = _task("semantic", structural_folder)
    dm = task.datamodule()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[-2:] == (16, 16)  # the 16 px crop, not the 24 px frame
    cond = task.conditioning(batch)
    assert cond["semantic"].shape == (2, 192) and cond["text_embeddings"].shape[:2] == cond["text_mask"].shape
    assert not cond["semantic"].requires_grad
    turned = dict(batch, image=torch.rot90(batch["image"], 1, dims=(-2, -1)))  # another augmentation
    assert not torch.allclose(task.conditioning(turned)["semantic"], cond["semantic"])
    # the same numbers as describing the crop directly (what the pipeline does with a sequence that size)
    from tamms.pipelines.describe import prepare_input

    x = prepare_input({"image": batch["image"][0], "time": batch["time"][0]}, 64, 10)
    direct = task.describer.describe([x.frames], [x.days], [x.dates], [None])
    torch.testing.assert_close(direct["semantic"][0], cond["semantic"][0], atol=1e-5, rtol=1e-5)
    # the describer is frozen, outside the optimiser and outside the saved ECM
    assert not any(p.requires_grad for p in task.describer.parameters())
    assert all(not k.startswith("describer") for k in task.model.pretrained_state())


def test_describer_size_must_match_the_ecm(tmp_path):
    recipe = tiny_recipe()
    recipe["model"]["ecm"] = {**TINY_ECM, "semantic_dim": 12, "text_dim": 12}
    folder = train_to_structural(recipe, tmp_path / "m")
    with pytest.raises(ConfigError, match="gives 192-d M_t"):
        ForecastTask(stage_config(load_train_config(recipe), "semantic"), init_from=folder)


def test_gate_biases_and_alphas_get_their_own_learning_rate(structural_folder):
    task = _task("semantic", structural_folder, gate_lr_scale=10.0)
    opt = task.configure_optimizers()["optimizer"]
    ecm = task.model.ecm
    expected = {id(p) for level in ecm.levels for p in (level.semantic.gate.bias, level.temporal.alpha_logit)}
    scalar_groups = [g for g in opt.param_groups if {id(p) for p in g["params"]} == expected]
    assert len(scalar_groups) == 1 and scalar_groups[0]["lr"] == pytest.approx(10 * task.config.optim.lr)
    trainable = {id(p) for p in ecm.semantic_parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == trainable
    assert all(g["lr"] == pytest.approx(task.config.optim.lr) for g in opt.param_groups if g is not scalar_groups[0])
    structural = _task("structural", structural_folder.parent / "unet", gate_lr_scale=10.0)
    groups = structural.configure_optimizers()["optimizer"].param_groups
    assert all(g["lr"] == pytest.approx(structural.config.optim.lr) for g in groups)  # no gates trained


@pytest.mark.parametrize("stage", ["unet", "structural", "semantic"])
def test_stage_freezing_is_exact(stage, structural_folder):
    from tamms.models.forecaster import SFCIForecaster

    f = SFCIForecaster.from_pretrained(structural_folder)
    with torch.no_grad():  # open the output convs and gates a little so every path carries gradient
        for conv in [*f.ecm.zero_convs, f.ecm.mid_zero_conv]:
            conv.weight.normal_(0, 0.05)
        for level in f.ecm.levels:
            level.semantic.gate.weight.normal_(0, 0.1)
    configure_stage(f, stage)
    g = torch.Generator().manual_seed(1)
    cond = {"semantic": torch.randn(2, 192, generator=g), "text_embeddings": torch.randn(2, 5, 192, generator=g),
            "text_mask": torch.tensor([[1, 1, 1, 1, 0]] * 2, dtype=torch.bool)}
    days = torch.tensor([[0.0, 200.0, 500.0]] * 2, dtype=torch.float64)
    if stage == "unet":
        loss = f.unet(torch.randn(2, 3, 16, 16), torch.tensor([5, 500]), f.null_text(2, "cpu")).sample.square().mean()
        expected = list(f.unet.parameters())
    else:
        loss = ecm_loss(f, make_train_scheduler(), torch.rand(2, 3, 3, 16, 16, generator=g), days,
                        torch.rand(2, 3, 16, 16, generator=g), torch.tensor([900.0] * 2, dtype=torch.float64), cond,
                        l1_weight=1.0)["loss"]
        expected = f.ecm.structural_parameters() if stage == "structural" else f.ecm.semantic_parameters()
    loss.backward()
    expected_ids = {id(p) for p in expected}
    names = {id(p): n for n, p in f.named_parameters()}
    for p in f.parameters():
        assert p.requires_grad == (id(p) in expected_ids), names[id(p)]
        assert (p.grad is not None) == (id(p) in expected_ids), names[id(p)]
    assert len([p for p in expected if p.grad.abs().sum() > 0]) >= 0.8 * len(expected)
    assert f.ecm.structural_only == (stage != "semantic")


def test_decoder_only_unet_stage_keeps_the_encoder_features(structural_folder):
    """options.unet_trainable=decoder: a training step moves the decoder only, so every encoder feature an ECM
    reads is the same number before and after, and the ECM trained on this U-Net still applies."""
    from tamms.models.unet import encode_unet

    task = _task("unet", structural_folder.parent / "unet", unet_trainable="decoder")
    f = task.model
    names = {id(p): n for n, p in f.named_parameters()}
    trained = {names[id(p)] for p in f.parameters() if p.requires_grad}
    assert trained and all(n.startswith(("unet.up_blocks", "unet.conv_norm_out", "unet.conv_out")) for n in trained)
    x, t = torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([5, 500])
    before_res, before_mid, _, _ = encode_unet(f.unet, x, t, f.null_text(2, "cpu"))
    before_out = f.unet(x, t, f.null_text(2, "cpu")).sample
    opt = torch.optim.SGD([p for p in f.parameters() if p.requires_grad], lr=0.5)
    task._unet_terms(torch.rand(4, 3, 16, 16))["loss"].backward()
    opt.step()
    with torch.no_grad():
        res, mid, _, _ = encode_unet(f.unet, x, t, f.null_text(2, "cpu"))
        assert all(torch.equal(a, b) for a, b in zip(res, before_res)) and torch.equal(mid, before_mid)
        assert not torch.allclose(f.unet(x, t, f.null_text(2, "cpu")).sample, before_out)
    f.ecm.structural_only = False  # as a stage-3 ECM: fine-tuning its U-Net leaves its semantic path on
    configure_stage(f, "unet", "decoder")
    assert not f.ecm.structural_only
    with pytest.raises(ConfigError, match="unet_trainable"):
        _task("unet", structural_folder.parent / "unet", unet_trainable="encoder")


def test_l1_term_adds_to_the_loss(structural_folder):
    from tamms.models.forecaster import SFCIForecaster

    f = SFCIForecaster.from_pretrained(structural_folder)
    with torch.no_grad():
        for conv in [*f.ecm.zero_convs, f.ecm.mid_zero_conv]:
            conv.weight.normal_(0, 0.05)
    g = torch.Generator().manual_seed(2)
    args = (torch.rand(2, 3, 3, 16, 16, generator=g), torch.tensor([[0.0, 200.0, 500.0]] * 2, dtype=torch.float64),
            torch.rand(2, 3, 16, 16, generator=g), torch.tensor([900.0] * 2, dtype=torch.float64))
    losses = {}
    for w in (0.0, 0.5, 1.0):
        torch.manual_seed(7)  # the same diffusion steps and noise for each weight
        losses[w] = float(ecm_loss(f, make_train_scheduler(), *args, l1_weight=w)["loss"])
    l1 = losses[1.0] - losses[0.0]
    assert l1 > 0.05
    assert losses[0.5] == pytest.approx(losses[0.0] + 0.5 * l1, rel=1e-5)


# --- learning ----------------------------------------------------------------------------------------------
def moving_square_sequences(n: int, size: int = 16, seed: int = 0):
    """A bright square moving 2 px right (and wrapping) per year on a dark field, 4 yearly frames."""
    import datetime as dt

    from tamms.data.sequence import SitsSequence

    rng = np.random.default_rng(seed)
    sequences = []
    for i in range(n):
        y, x = rng.integers(0, size - 5, 2)
        frames = np.full((4, 3, size, size), 0.1, dtype=np.float32)
        for k in range(4):
            xs = (x + 2 * k + np.arange(5)) % size
            frames[k][:, y:y + 5][:, :, xs] = 0.9
        sequences.append(SitsSequence(frames=frames, dates=[dt.date(2015 + k, 6, 1) for k in range(4)],
                                      meta={"id": f"square-{seed}-{i}"}))
    return sequences


def test_tiny_model_learns_moving_square(tmp_path, monkeypatch):
    """Stages unet (the U-Net as an image model) then structural (the ECM): a moving square is forecast better
    than by copying the last frame, after a few dozen steps."""
    from tamms.data.datamodule import SitsDataModule
    from tamms.models.forecaster import SFCIForecaster
    from tamms.pipelines.forecast import sample_sfci

    squares = moving_square_sequences(64)
    monkeypatch.setattr(ForecastTask, "datamodule", lambda self: SitsDataModule(
        sequences=squares, task="window", history=3, min_history=3, split_mode="all", rgb_only=True, flip=False,
        batch_size=self.config.data.batch_size))
    recipe = tiny_recipe()
    recipe["stages"] = recipe["stages"][:2]
    recipe["stages"][0]["set"].update({"trainer.max_steps": 60, "data.batch_size": 4, "optim.lr": 3e-3,
                                       "optim.warmup_steps": 0, "optim.schedule": "constant"})
    recipe["stages"][1]["set"].update({"trainer.max_steps": 80, "data.batch_size": 16, "optim.lr": 3e-3,
                                       "options.l1_weight": 0.0})
    f = SFCIForecaster.from_pretrained(train(load_train_config(recipe), out=tmp_path / "sq"))
    losses = [row["loss"] for row in json.loads((tmp_path / "sq" / "config.json").read_text())["training"]["history"]]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    test = moving_square_sequences(8, seed=9)
    hist = torch.from_numpy(np.stack([s.frames[:3] for s in test]))
    truth = torch.from_numpy(np.stack([s.frames[3] for s in test]))
    days = torch.tensor([[0.0, 365.0, 731.0]] * 8, dtype=torch.float64)
    with torch.no_grad():
        pred = sample_sfci(f, hist, days, torch.full((8,), 1096.0, dtype=torch.float64), num_inference_steps=4,
                           generator=torch.Generator().manual_seed(0))[:, 0]
    err_model = float(((pred - truth) ** 2).mean())
    err_persist = float(((hist[:, -1] - truth) ** 2).mean())
    assert err_model < 0.5 * err_persist


# --- distributed -------------------------------------------------------------------------------------------
@pytest.mark.ddp
def test_ddp_two_ranks_end_with_equal_weights(tmp_path):
    """The structural stage on 2 CPU processes (DDP, gloo): both ranks end with the same, trained ECM."""
    recipe = tiny_recipe(steps=3)
    train(load_train_config(recipe), out=tmp_path / "fc", stage="unet")
    ddp = load_train_config(recipe, ["trainer.devices=2", "trainer.strategy=ddp_spawn"])
    train(ddp, out=tmp_path / "fc", stage="structural", callbacks=[WeightHash(str(tmp_path))])
    hashes = sorted(tmp_path.glob("rank*.txt"))
    assert len(hashes) == 2
    values = [h.read_text().split() for h in hashes]
    assert values[0][0] == values[1][0]  # identical weights on both ranks
    assert values[0][0] != values[0][1]  # and they did change during training


import lightning as _L  # noqa: E402


class WeightHash(_L.Callback):
    def __init__(self, folder: str):
        self.folder = folder
        self.start = ""

    @staticmethod
    def _digest(module) -> str:
        import hashlib

        h = hashlib.sha1()
        for p in module.model.ecm.parameters():
            h.update(p.detach().numpy().tobytes())
        return h.hexdigest()

    def on_train_start(self, trainer, pl_module):
        self.start = self._digest(pl_module)

    def on_train_end(self, trainer, pl_module):
        Path(self.folder, f"rank{trainer.global_rank}.txt").write_text(f"{self._digest(pl_module)} {self.start}")


def test_trend_frame_is_read_by_the_ecm_in_training_and_at_inference(tmp_path):
    """model.trend_from: the named forecaster's forecast for the target date is one more ECM frame, dated at the
    target, in training (computed on the crop the U-Net sees) and in the pipeline; saved with the weights."""
    from tamms.pipelines.forecast import BUILTIN_FORECASTERS, forecast_model_from_pretrained, with_trend_frame

    recipe = tiny_recipe(steps=2)
    recipe["model"]["trend_from"] = "linear-trend"
    folder = train_to_structural(recipe, tmp_path / "m")
    assert json.loads((folder / "config.json").read_text())["config"]["trend_from"] == "linear-trend"
    # the frame: the trend's forecast, dated at the target date (gap 0)
    history, days = torch.rand(2, 3, 3, 16, 16), torch.tensor([[0.0, 30, 60]] * 2)
    target_days = torch.tensor([90.0] * 2)
    persistence = BUILTIN_FORECASTERS["persistence"]()
    with_frame, with_days = with_trend_frame(persistence, history, days, target_days)
    assert with_frame.shape == (2, 4, 3, 16, 16) and torch.equal(with_frame[:, -1], history[:, -1])
    assert torch.equal(with_days[:, -1], target_days)
    # training: the trend runs on each batch's crops and the loss is computed with the extra frame
    cfg = stage_config(load_train_config(recipe), "structural")
    task = ForecastTask(cfg, init_from=folder)
    seen = []
    forecast = task.trend.forecast
    task.trend.forecast = lambda h, *a, **k: seen.append(h.shape) or forecast(h, *a, **k)
    dm = task.datamodule()
    dm.setup("fit")
    assert torch.isfinite(task.training_step(next(iter(dm.train_dataloader())), 0))
    assert seen == [(2, 3, 3, 16, 16)]  # the 16 px crops of the batch
    # inference: the pipeline's model loads the trend; another trend frame gives another forecast
    model = forecast_model_from_pretrained(folder, strength=1.0, start_from=None)
    assert model.trend is not None and model.trend.name == "linear-trend"
    noise = torch.randn(2, 1, 3, 16, 16)
    a = model.forecast(history, days, target_days, num_inference_steps=2, noise=noise)
    control = forecast_model_from_pretrained(folder, strength=1.0, start_from=None, trend_from="persistence")
    assert control.trend.name == "persistence"
    b = control.forecast(history, days, target_days, num_inference_steps=2, noise=noise)
    assert a.shape == (2, 1, 3, 16, 16) and not torch.equal(a, b)
    # an ECM trained with a trend refuses another setting, in training and without its trend at inference
    with pytest.raises(ConfigError, match="trend_from"):
        ForecastTask(stage_config(load_train_config(tiny_recipe()), "semantic"), init_from=folder)
    from tamms.errors import InputError
    from tamms.pipelines.forecast import SFCIForecastModel

    with pytest.raises(InputError, match="linear-trend"):
        SFCIForecastModel("m", model.model)


def test_decoder_fine_tune_under_a_trained_ecm_writes_a_forecaster(structural_folder, tmp_path):
    """`--stage unet --set init_from=<ECM folder> --set options.unet_trainable=decoder`: the folder written holds
    that ECM unchanged beside the fine-tuned U-Net, whose encoder is the old one, and loads as a forecaster."""
    from tamms.models.forecaster import SFCIForecaster

    out = train(load_train_config(tiny_recipe(steps=2), [f"init_from={structural_folder}",
                                                           "options.unet_trainable=decoder"]),
                out=tmp_path / "ft", stage="unet")
    assert not changed(ecm_state(structural_folder), ecm_state(out))
    before, after = SFCIForecaster.from_pretrained(structural_folder), SFCIForecaster.from_pretrained(out)
    assert after.unet_folder != before.unet_folder and after.ecm.structural_only == before.ecm.structural_only
    old, new = before.unet.state_dict(), after.unet.state_dict()
    moved = changed(old, new)
    assert moved and all(k.startswith(("up_blocks", "conv_norm_out", "conv_out")) for k in moved)

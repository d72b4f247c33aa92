"""The training backbone: typed config schema, overrides, stages, the LR schedule, fit() and exact --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tamms.config import (
    DataConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_train_config,
    stage_config,
)
from tamms.data.datamodule import SitsDataModule
from tamms.errors import ConfigError, OutputExistsError
from tamms.tasks import base
from tamms.tasks.base import StopAfterSteps, TammsTask, train, warmup_cosine


# --- config schema ---------------------------------------------------------------------------------------
def test_unknown_key_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key \['max_step'\] in config.trainer: valid keys are .*max_steps"):
        load_train_config({"task": "detect", "trainer": {"max_step": 3}})


def test_wrong_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="config.optim.lr must be a number"):
        load_train_config({"task": "detect", "optim": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="config.trainer.max_steps must be a whole number"):
        load_train_config({"task": "detect", "trainer": {"max_steps": 2.5}})


def test_real_repeats_is_a_data_setting():
    """How often real folders are drawn is data.real_repeats for every task; the old options key says where it went."""
    assert load_train_config({"task": "forecast"}, ["data.real_repeats=4"]).data.real_repeats == 4
    with pytest.raises(ConfigError, match="options.real_repeats is now data.real_repeats"):
        load_train_config({"task": "detect", "options": {"real_repeats": 3}})
    with pytest.raises(ConfigError, match="options.real_repeats is now data.real_repeats"):
        load_train_config({"task": "detect"}, ["options.real_repeats=3"])
    with pytest.raises(ConfigError, match="data.real_repeats=0: give 1 or more"):
        load_train_config({"task": "detect", "data": {"real_repeats": 0}})


def test_yaml_file_overrides_and_task_check(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: forecast\ndata: {synthetic: {n: 7}}\noptim: {lr: 1.0e-3}\n")
    cfg = load_train_config(path, ["optim.lr=5e-4", "data.synthetic.size=32", "model.ecm.use_text=false"])
    assert isinstance(cfg.data, DataConfig) and cfg.data.synthetic.n == 7 and cfg.data.synthetic.size == 32
    assert cfg.optim.lr == pytest.approx(5e-4) and cfg.model == {"ecm": {"use_text": False}}
    with pytest.raises(ConfigError, match="tamms train forecast"):
        load_train_config(path, task="detect")
    with pytest.raises(ConfigError, match="key=value"):
        load_train_config(path, ["optim.lr"])


def test_stages_apply_their_overrides_on_the_base():
    cfg = load_train_config({"task": "forecast", "optim": {"lr": 1e-3},
                             "stages": [{"name": "a", "set": {"optim.lr": 1e-4}}, {"name": "b"}]})
    assert stage_config(cfg, "a").optim.lr == pytest.approx(1e-4)
    assert stage_config(cfg, "b").optim.lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="its stages are"):
        stage_config(cfg, "c")
    with pytest.raises(ConfigError, match="repeat"):
        load_train_config({"task": "forecast", "stages": [{"name": "a"}, {"name": "a"}]})


def test_set_on_the_command_line_wins_over_a_stage_setting():
    recipe = {"task": "forecast", "optim": {"lr": 1e-3}, "trainer": {"max_steps": 10},
              "stages": [{"name": "a", "set": {"optim.lr": 1e-4, "trainer.max_steps": 3625}}, {"name": "b"}]}
    cfg = load_train_config(recipe, ["trainer.max_steps=1800"])
    assert stage_config(cfg, "a").trainer.max_steps == 1800  # the stage's 3625 gives way to --set
    assert stage_config(cfg, "a").optim.lr == pytest.approx(1e-4)  # what --set does not name stays the stage's
    assert stage_config(cfg, "b").trainer.max_steps == 1800
    assert recipe["stages"][0]["set"]["trainer.max_steps"] == 3625  # the caller's mapping is not touched


def test_overrides_do_not_touch_the_input_and_refuse_scalars_as_mappings():
    data = {"optim": {"lr": 1}}
    assert apply_overrides(data, {"optim.lr": 2})["optim"]["lr"] == 2 and data["optim"]["lr"] == 1
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides(data, ["optim.lr.x=3"])


def test_warmup_then_cosine():
    optim = from_dict(OptimConfig, {"lr": 1.0, "warmup_steps": 4, "min_lr_ratio": 0.1})
    factors = [warmup_cosine(s, optim, 14) for s in range(15)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0) and factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    constant = from_dict(OptimConfig, {"schedule": "constant"})
    assert warmup_cosine(100, constant, 10) == 1.0
    with pytest.raises(ConfigError, match="schedule"):
        from_dict(OptimConfig, {"schedule": "linear"})


def test_schedule_steps_keeps_the_learning_rates_of_the_longer_run():
    """A run cut on purpose at max_steps follows the cosine of schedule_steps, as the run it was cut from."""
    cut = load_train_config({"task": "toy", "optim": {"lr": 1.0, "warmup_steps": 2, "schedule_steps": 10},
                             "trainer": {"max_steps": 4}})
    whole = load_train_config({"task": "toy", "optim": {"lr": 1.0, "warmup_steps": 2}, "trainer": {"max_steps": 10}})

    def rates(config):
        sched = ToyTask(config).configure_optimizers()["lr_scheduler"]["scheduler"]
        return [sched.lr_lambdas[0](s) for s in range(4)]

    assert rates(cut) == pytest.approx(rates(whole))
    plain = load_train_config({"task": "toy", "optim": {"lr": 1.0, "warmup_steps": 2}, "trainer": {"max_steps": 4}})
    assert rates(plain)[3] < rates(cut)[3]  # without it the cosine would end at step 4
    with pytest.raises(ConfigError, match="schedule_steps"):
        from_dict(OptimConfig, {"schedule_steps": 0})


# --- a toy task on the real data module: fit, save, resume -----------------------------------------------
class ToyNet(torch.nn.Module):
    """A 2-layer conv next-frame regressor with dropout (so the global RNG matters)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                       torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return self.net(x)

    def save_pretrained(self, folder, overwrite=False, dtype=None, metadata=None):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"model_type": "toy", **(metadata or {})}))
        return folder


class ToyTask(TammsTask):
    def configure_models(self):
        self.model = ToyNet()
        if self.init_from:
            self.model.load_state_dict(load_file(str(Path(self.init_from) / "model.safetensors")))

    def datamodule(self):
        return SitsDataModule.from_config(self.config.data, task="window", rgb_only=True)

    def training_step(self, batch, batch_idx):
        last = batch["image"][:, -1]  # [B, C, H, W]
        noisy = last + 0.05 * torch.randn_like(last)  # global RNG: restored on resume
        loss = torch.nn.functional.mse_loss(self.model(noisy), batch["target"])
        self.log_terms({"loss": loss}, "train", last.shape[0])
        return loss


def toy_config(**trainer):
    return load_train_config({
        "task": "toy",
        "data": {"synthetic": {"n": 12, "size": 16, "frames": 4}, "crop_size": 12, "batch_size": 4},
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "trainer": {"max_steps": 6, "checkpoint_every": 2, "accelerator": "cpu", "log_every": 0, **trainer},
    })


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(base.TASKS, "toy", f"{__name__}:ToyTask")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, toy_task):
    whole = train(toy_config(), out=tmp_path / "whole")
    with pytest.raises(RuntimeError, match="stopped after 5 steps"):
        train(toy_config(), out=tmp_path / "killed", callbacks=[StopAfterSteps(5)])
    assert (tmp_path / "killed" / "checkpoints" / "main" / "last.ckpt").is_file()
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    ckpt_path = tmp_path / "killed" / "checkpoints" / "main" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt["task_minutes"] > 0
    ckpt["task_minutes"] = 5.0  # as if the killed run had trained 5 minutes
    torch.save(ckpt, ckpt_path)
    resumed = train(toy_config(), out=tmp_path / "killed", resume=True)
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    meta = json.loads((resumed / "config.json").read_text())["training"]
    assert meta["steps"] == 6 and meta["config"]["trainer"]["max_steps"] == 6
    assert 5.0 <= meta["minutes"] < 5.5  # the record counts the minutes of the run it resumed
    # a run that starts over (no --resume) from the same seed is the same run too, and differs from one step less
    fewer = train(toy_config(max_steps=5), out=tmp_path / "fewer")
    assert any(not torch.equal(a[n], _weights(fewer)[n]) for n in a)


def test_existing_model_is_kept_without_overwrite(tmp_path, toy_task):
    folder = train(toy_config(max_steps=2), out=tmp_path / "m")
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train(toy_config(max_steps=2), out=tmp_path / "m")
    assert (folder / "model.safetensors").read_bytes() == before
    train(toy_config(max_steps=2, seed=1), out=tmp_path / "m", overwrite=True)
    assert (folder / "model.safetensors").read_bytes() != before


def test_stages_chain_and_resume_skips_finished_stages(tmp_path, toy_task, capsys):
    cfg = load_train_config({
        **toy_config().to_dict(),
        "stages": [{"name": "first", "set": {"trainer.max_steps": 2}},
                   {"name": "second", "set": {"trainer.max_steps": 2, "optim.lr": 1e-3}}],
    })
    out = train(cfg, out=tmp_path / "s", stage="first")
    assert out == tmp_path / "s" / "stages" / "first" and not (tmp_path / "s" / "model.safetensors").exists()
    final = train(cfg, out=tmp_path / "s", resume=True)
    assert final == tmp_path / "s"
    assert "done before" in capsys.readouterr().out
    meta = json.loads((final / "config.json").read_text())["training"]
    assert meta["stage"] == "second" and meta["init_from"] == str(tmp_path / "s" / "stages" / "first")
    with pytest.raises(ConfigError, match="has not run"):
        train(cfg, out=tmp_path / "t", stage="second")
    # a base init_from starts the first stage only; the second starts from the first
    seeded = load_train_config({**cfg.to_dict(), "init_from": str(tmp_path / "s")})
    train(seeded, out=tmp_path / "u")
    firsts = json.loads((tmp_path / "u" / "stages" / "first" / "config.json").read_text())["training"]
    seconds = json.loads((tmp_path / "u" / "config.json").read_text())["training"]
    assert firsts["init_from"] == str(tmp_path / "s")
    assert seconds["init_from"] == str(tmp_path / "u" / "stages" / "first")


def test_train_config_round_trips():
    cfg = toy_config()
    again = load_train_config(cfg.to_dict())
    assert again == cfg and isinstance(again, TrainConfig)

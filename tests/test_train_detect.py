"""`tamms train detect` on the training backbone: Siamese and UniChange, synthetic + LEVIR-CD-style pairs,
pooled val F1, --set, stages, exact --resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tamms.cli import main
from tamms.config import load_train_config
from tamms.errors import ConfigError
from tamms.metrics.change import binary_change_scores
from tamms.models import load_pretrained
from tamms.tasks.base import StopAfterSteps, train
from tamms.tasks.detect import ChangeDetectionTask, sample_task
from tamms.utils import default_weights

TINY_UNICHANGE = {
    "name": "unichange",
    "decoder": {"backbone_channels": [8, 8, 16, 16], "dim": 16, "heads": 2, "mlp_dim": 32, "mask_dim": 8},
    "lm": {"arch": "qwen2", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
           "max_positions": 256},
    "image_tokens": 2,
}


def write_levir(root: Path, names=("train_1", "train_2", "val_1"), size: int = 24) -> Path:
    """A LEVIR-CD-style folder: A/ before, B/ after (RGB PNG), label/ (0/255): a bright block appears."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("A", "B", "label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        before = (rng.random((size, size, 3)) * 120).astype(np.uint8)
        after, label = before.copy(), np.zeros((size, size), np.uint8)
        after[4 + i: 12 + i, 6:14] = 230
        label[4 + i: 12 + i, 6:14] = 255
        Image.fromarray(before).save(root / "A" / f"{name}.png")
        Image.fromarray(after).save(root / "B" / f"{name}.png")
        Image.fromarray(label).save(root / "label" / f"{name}.png")
    return root


def tiny_config(tmp_path: Path, model: dict | None = None, real: list[str] | None = None, **trainer) -> Path:
    config = {
        "task": "detect",
        "model": model or {"name": "siamese", "channels": [8, 16]},
        "data": {"synthetic": {"n": 27, "size": 16, "frames": 3, "seed": 0}, "real": real or [], "crop_size": 16,
                 "real_repeats": 2,
                 "batch_size": 4, "val_batch_size": 8, "target": "future"},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "trainer": {"max_steps": 4, "val_every": 4, "checkpoint_every": 2, "accelerator": "cpu", "log_every": 1,
                    **trainer},
    }
    path = tmp_path / "detect.yaml"
    path.write_text(json.dumps(config))
    return path


def test_siamese_trains_through_the_cli_and_loads(tmp_path):
    levir = write_levir(tmp_path / "levir_cd")
    config = tiny_config(tmp_path, real=[str(levir)])
    out = tmp_path / "siamese"
    main(["train", "detect", "--config", str(config), "--out", str(out), "--set", "model.channels=[8,16,16]"])
    net = load_pretrained(out)
    assert net.model_type == "siamese" and tuple(net.config.channels) == (8, 16, 16)  # --set reached the model
    meta = json.loads((out / "config.json").read_text())["training"]
    assert meta["steps"] == 4 and meta["config"]["data"]["real"] == [str(levir)]
    val = [row["val_f1"] for row in meta["history"] if "val_f1" in row]
    assert len(val) == 1 and 0.0 <= val[0] <= 1.0
    # the logged F1 is the one pooled over every val pixel (not a mean of per-batch F1s)
    cfg = load_train_config(config, ["model.channels=[8,16,16]"], task="detect")
    task = ChangeDetectionTask(cfg, init_from=out).eval()
    data = task.datamodule()
    data.setup("validate")
    preds, masks = [], []
    for batch in data.val_dataloader():
        preds.append(task.predict_change(batch))
        masks.append(batch["mask"])
    assert sum(len(m) for m in masks) > cfg.data.val_batch_size  # several val batches
    assert val[0] == pytest.approx(binary_change_scores(torch.cat(preds), torch.cat(masks))["F1"], abs=1e-5)
    logits = net(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20))
    assert logits.shape == (1, 20, 20) and torch.isfinite(logits).all()


def test_real_pairs_carry_their_folder_and_repeat(tmp_path):
    levir = write_levir(tmp_path / "levir_cd")
    cfg = load_train_config(tiny_config(tmp_path, real=[str(levir)]), ["data.real_repeats=3"], task="detect")
    task = ChangeDetectionTask(cfg)
    data = task.datamodule()
    data.setup("fit")
    items = data.datasets["train"].items
    assert sum(kind == "pair" for kind, *_ in items) == 3 * 2  # 2 train tiles x 3 repeats; val_1 is held out
    real = [data.datasets["train"][i] for i, item in enumerate(items) if item[0] == "pair"]
    assert {s["meta"]["dataset"] for s in real} == {"levir_cd"} and "landcover" not in real[0]
    assert task.real_category(real[0]["meta"]) == "building"
    assert task.real_category({"id": "x", "dataset": "oscd"}) is None  # any other folder: every change
    # UniChange's instruction for real pairs: binary change of that category (or of everything)
    assert sample_task(False, ["road"], None, "building").categories == ["building"]
    assert sample_task(False, ["road"], None, None).categories is None
    assert not sample_task(False, ["road"], None, "building").semantic


def test_pos_weight_weights_the_changed_pixels(tmp_path):
    path = tiny_config(tmp_path)
    terms = {}
    for weight in ("null", "5"):
        torch.manual_seed(0)
        task = ChangeDetectionTask(load_train_config(path, [f"options.pos_weight={weight}"], task="detect"))
        data = task.datamodule()
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        assert batch["mask"].sum() > 0
        task.log_terms = lambda values, split, size: terms.__setitem__(weight, values)  # keep the terms
        task.training_step(batch, 0)
    assert terms["5"]["bce"] > terms["null"]["bce"]
    assert torch.equal(terms["5"]["dice"], terms["null"]["dice"])


def test_unichange_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    """UniChange draws an instruction per sample from its own RNG; a resumed run draws the same ones."""
    levir = write_levir(tmp_path / "levir_cd")
    cfg = load_train_config(tiny_config(tmp_path, model=TINY_UNICHANGE, real=[str(levir)], max_steps=5,
                                        val_every=None), task="detect")
    whole = train(cfg, out=tmp_path / "whole")
    with pytest.raises(RuntimeError, match="stopped after 3 steps"):
        train(cfg, out=tmp_path / "killed", callbacks=[StopAfterSteps(3)])
    resumed = train(cfg, out=tmp_path / "killed", resume=True)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    model = load_pretrained(resumed)
    assert model.model_type == "unichange" and "building" in model.config.class_names
    task = model.resolve_task(["building"], semantic=False)
    out = model.predict(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), task, generate=False)
    assert out.change_logits.shape == (1, 16, 16)


def test_shipped_recipes_are_one_config_with_three_stages():
    from tamms.config import stage_config

    configs = Path(__file__).resolve().parents[1] / "src" / "tamms" / "configs"
    assert sorted(p.name for p in configs.glob("detect*.yaml")) == [
        "detect_siamese.yaml", "detect_siamese_real.yaml", "detect_unichange.yaml"]
    for name, lrs in (("siamese", [2e-3, 1e-3, 5e-4]), ("unichange", [1e-3, 5e-4, 3e-4])):
        cfg = load_train_config(configs / f"detect_{name}.yaml", task="detect")
        assert cfg.model["name"] == name and cfg.data.real == []  # no real-data path baked into the package
        assert [stage_config(cfg, s.name).optim.lr for s in cfg.stages] == pytest.approx(lrs)
        shipped = default_weights(name)
        # the model and options sections are valid, and build the shipped network (its weights fit)
        ChangeDetectionTask(stage_config(cfg, "stage3"),
                            init_from=shipped if (shipped / "model.safetensors").is_file() else None)



def test_real_data_recipe_trains_the_wide_siamese_from_scratch_and_selects_on_real_val():
    """detect_siamese_real.yaml: one run from scratch, selected on the real val scenes, cut at step 4200 of an
    8000-step cosine; its network is the shipped siamese-real's."""
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "src" / "tamms" / "configs" /
                            "detect_siamese_real.yaml", task="detect")
    assert cfg.init_from is None and cfg.data.real == [] and cfg.stages == []
    assert cfg.options["select_on_real_val"] and cfg.options["synthetic_val_floor"] == pytest.approx(0.9)
    assert (cfg.trainer.max_steps, cfg.optim.schedule_steps) == (4200, 8000)
    shipped = default_weights("siamese-real")
    net = load_pretrained(shipped)
    assert net.config.threshold == pytest.approx(0.3)  # chosen on validation by benchmarks/detect_real.py
    assert list(net.config.channels) == [32, 64, 128]
    record = json.loads((shipped / "config.json").read_text())["training"]
    assert record["steps"] == 4200 and record["history"][-1]["selected"]["step"] == 3600  # the kept weights
    ChangeDetectionTask(cfg, init_from=shipped)  # the config's network fits the shipped weights


def test_bad_model_and_options_are_one_line_errors(tmp_path, capsys):
    path = tiny_config(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "detect", "--config", str(path), "--out", str(tmp_path / "o"), "--set", "model.name=p2v"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "model.name" in err and "siamese" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="valid keys are .*pos_weight"):
        ChangeDetectionTask(load_train_config(path, ["options.pos_wieght=3"], task="detect"))
    with pytest.raises(ConfigError, match="model"):
        ChangeDetectionTask(load_train_config(path, ["model.chanels=[8]"], task="detect"))
    siamese = tmp_path / "s"
    from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig

    SiameseChangeNet(SiameseConfig(channels=(8, 16))).save_pretrained(siamese)
    with pytest.raises(ConfigError, match="holds a 'siamese' model"):
        ChangeDetectionTask(load_train_config(path, [f"model={json.dumps(TINY_UNICHANGE)}"], task="detect"),
                            init_from=siamese)


def test_selection_on_real_val_pairs_saves_the_selected_step(tmp_path, monkeypatch):
    """options.select_on_real_val: every validation scores the whole real val scenes; the saved weights are the
    selected step's (checked against the weights of that step, kept by a callback), not the last step's."""
    import lightning as L

    levir = write_levir(tmp_path / "levir_cd", names=("train_1", "train_2", "val_1", "val_2"), size=40)
    cfg = load_train_config(tiny_config(tmp_path, real=[str(levir)], max_steps=6, val_every=2),
                            ["options.select_on_real_val=true", "options.synthetic_val_floor=0.0"], task="detect")
    kept = {}

    class KeepWeights(L.Callback):
        def on_validation_epoch_end(self, trainer, module):
            kept[int(trainer.global_step)] = {k: v.clone() for k, v in module.model.state_dict().items()}

    out = train(cfg, tmp_path / "selected", callbacks=[KeepWeights()])
    history = json.loads((out / "config.json").read_text())["training"]["history"]
    rows = [r for r in history if "real_val_f1" in r]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(set(r["real_val_f1"]) == {"levir_cd"} and 0 <= r["real_val_mean_f1"] <= 1 for r in rows)
    chosen = history[-1]["selected"]
    best = max(rows, key=lambda r: r["real_val_mean_f1"])  # floor 0: the best real val F1 (first of ties)
    assert chosen["step"] == best["step"]
    saved = load_pretrained(out).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in kept[chosen["step"]].items())
    # the scores are those of the whole val scenes through the tiled pipeline
    from tamms.models.change.siamese import SiameseDetector
    from tamms.pipelines.detect import DetectPipeline
    from tamms.data.readers import read_dataset

    pipe = DetectPipeline(SiameseDetector(load_pretrained(out)))
    pairs = [p for p in read_dataset(levir).pairs if p.name.startswith("val")]
    masks = [pipe(torch.from_numpy(p.before), torch.from_numpy(p.after)).mask[0] for p in pairs]
    f1 = binary_change_scores(torch.stack(masks).bool(), torch.stack([torch.from_numpy(p.mask) for p in pairs]).bool())
    assert float(f1["F1"]) == pytest.approx(chosen["real_val_mean_f1"], abs=1e-4)
    # a middle step selected (scores stubbed by step): its weights are saved, not the last step's
    monkeypatch.setattr(ChangeDetectionTask, "real_val_f1", lambda self: {"levir_cd": {2: 0.5, 4: 0.9, 6: 0.3}[
        int(self.global_step)]})
    kept.clear()
    out = train(cfg, tmp_path / "middle", callbacks=[KeepWeights()])
    assert json.loads((out / "config.json").read_text())["training"]["history"][-1]["selected"]["step"] == 4
    saved = load_pretrained(out).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in kept[4].items())
    assert not all(torch.equal(saved[k], v) for k, v in kept[6].items())


def test_selection_needs_val_pairs_and_a_binary_network(tmp_path):
    levir = write_levir(tmp_path / "levir_cd", names=("train_1", "train_2"))
    cfg = load_train_config(tiny_config(tmp_path, real=[str(levir)], max_steps=2, val_every=2),
                            ["options.select_on_real_val=true"], task="detect")
    with pytest.raises(ConfigError, match="no val pairs"):
        train(cfg, tmp_path / "none")
    cfg = load_train_config(tiny_config(tmp_path, model=TINY_UNICHANGE, real=[str(levir)]),
                            ["options.select_on_real_val=true"], task="detect")
    with pytest.raises(ConfigError, match="UniChange"):
        ChangeDetectionTask(cfg)


def test_selection_without_synthetic_data_ranks_by_real_val_alone(tmp_path, monkeypatch):
    """Real pairs only (data.synthetic null): no synthetic floor, the best real val F1 is kept."""
    levir = write_levir(tmp_path / "levir_cd", names=("train_1", "train_2", "val_1"), size=40)
    cfg = load_train_config(tiny_config(tmp_path, real=[str(levir)], max_steps=6, val_every=2),
                            ["options.select_on_real_val=true", "data.synthetic=null", "data.target=next"],
                            task="detect")
    monkeypatch.setattr(ChangeDetectionTask, "real_val_f1", lambda self: {"levir_cd": {2: 0.2, 4: 0.7, 6: 0.4}[
        int(self.global_step)]})
    out = train(cfg, tmp_path / "real-only")
    history = json.loads((out / "config.json").read_text())["training"]["history"]
    assert not any("val_synthetic_f1" in r for r in history)
    assert history[-1]["selected"]["step"] == 4

"""Change detection on real imagery: hold-out lists, augmentation of what is not change, whole-scene tiled
inference, the early-fusion U-Net peer trained through the backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tamms.cli import main
from tamms.config import load_train_config
from tamms.errors import ConfigError
from tamms.models import load_pretrained
from tamms.models.change.base import ChangeResult
from tamms.pipelines.detect import DetectPipeline, tile_starts
from tamms.tasks.detect import ChangeDetectionTask, augment_not_change
from tests.test_train_detect import tiny_config, write_levir

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_holdout_lists_fix_the_split_of_named_pairs(tmp_path):
    folder = write_levir(tmp_path / "oscd", names=("a", "b", "c", "d"))
    path = tiny_config(tmp_path, real=[str(folder)])
    cfg = load_train_config(path, ['options.holdout={oscd: {val: [b], test: [c, d]}}'], task="detect")
    data = ChangeDetectionTask(cfg).datamodule()
    data.setup("fit")
    assert [p.name for p in data._split_items("train")[1]] == ["a"]  # every pair not named trains
    assert [p.name for p in data._split_items("val")[1]] == ["b"]
    assert [p.name for p in data._split_items("test")[1]] == ["c", "d"]
    bad = load_train_config(path, ['options.holdout={oscd: {val: [nowhere]}}'], task="detect")
    with pytest.raises(ConfigError, match="nowhere"):
        ChangeDetectionTask(bad).datamodule().setup("fit")
    with pytest.raises(ConfigError, match="val and test"):
        ChangeDetectionTask(load_train_config(path, ['options.holdout={oscd: {train: [a]}}'], task="detect"))


def test_augmentation_changes_each_date_but_not_the_off_samples():
    g = torch.Generator().manual_seed(0)
    pair = torch.rand(4, 2, 3, 16, 16, generator=g)
    out = augment_not_change(pair, torch.tensor([1.0, 1.0, 0.0, 0.0]), 0.0, torch.Generator().manual_seed(1))
    assert out.shape == pair.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[2:], pair[2:])  # probability 0: untouched
    assert (out[:2] - pair[:2]).abs().mean() > 0.01
    # the two dates get different draws (a re-lit date is not the same transform of both)
    ratio = (out[:2, 0].mean((1, 2, 3)) / pair[:2, 0].mean((1, 2, 3))) - (out[:2, 1].mean((1, 2, 3)) /
                                                                        pair[:2, 1].mean((1, 2, 3)))
    assert ratio.abs().max() > 1e-3
    # misregistration moves the later date only, by whole pixels
    shifted = augment_not_change(pair, torch.zeros(4), 1.0, torch.Generator().manual_seed(2))
    assert torch.equal(shifted[:, 0], pair[:, 0]) and not torch.equal(shifted[:, 1], pair[:, 1])


class PixelDetector:
    """Per-pixel change (no spatial context): tiled and whole-scene results must agree exactly; records the
    largest input it was given."""

    name = "pixel"

    def __init__(self):
        self.model = torch.nn.Identity()
        self.model.config = type("C", (), {"threshold": 0.5})()
        self.largest = 0

    def detect(self, a, b):
        self.largest = max(self.largest, a.shape[-2] * a.shape[-1])
        prob = (a - b).abs().mean(1).clamp(0, 1) * 2
        return ChangeResult(mask=(prob > 0.5).to(torch.uint8), probability=prob)


def test_tiled_inference_matches_the_whole_scene_with_flat_input_size():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 150, 230, generator=g)
    b = a.clone()
    b[:, 40:90, 100:180] = 1 - b[:, 40:90, 100:180]
    whole = DetectPipeline(PixelDetector())(a, b, tile_size=None)
    detector = PixelDetector()
    tiled = DetectPipeline(detector)(a, b, tile_size=64, overlap=16)
    assert detector.largest == 64 * 64  # never more than one tile at a time
    assert torch.equal(tiled.mask, whole.mask) and torch.allclose(tiled.probability, whole.probability, atol=1e-6)
    assert tile_starts(150, 64, 16) == [0, 48, 86] and tile_starts(50, 64, 16) == [0]
    with pytest.raises(ConfigError, match="tile_size"):
        DetectPipeline(PixelDetector())(a, b, tile_size=64, overlap=40)


def test_unet_peer_trains_through_the_backbone_and_detects(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "peer"
    main(["train", "detect", "--config", str(config), "--out", str(out), "--set", "model={name: unet_ef}",
          "--set", "trainer.max_steps=2", "--set", "trainer.val_every=2"])
    net = load_pretrained(out)
    assert net.model_type == "unet-ef"
    assert sum(p.numel() for p in net.parameters()) > 14_000_000  # ResNet-18 encoder + smp decoder: 14.3 M
    result = DetectPipeline.from_pretrained(out)(torch.rand(3, 40, 50), torch.rand(3, 40, 50))
    assert result.mask.shape == (1, 40, 50) and result.detector.startswith("unet-ef")


@pytest.mark.skipif(not (SHARED / "oscd").is_dir(), reason="real data (../shared/data/oscd) absent")
def test_shipped_config_holds_out_real_pairs_of_every_dataset():
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "src/tamms/configs/detect_siamese.yaml",
                            [f"data.real=[{SHARED / 'oscd'},{SHARED / 'sztaki'}]", "data.synthetic=null"],
                            task="detect")
    data = ChangeDetectionTask(cfg).datamodule()
    data.setup("fit")
    names = {s: {p.name for p in data._split_items(s)[1]} for s in ("train", "val", "test")}
    assert names["val"] == {"pisa", "hongkong", "nantes", "szada_5", "tiszadob_2"}
    assert {"beirut", "paris", "rennes", "szada_7", "tiszadob_5"} <= names["test"]
    assert not (names["train"] & (names["val"] | names["test"]))


@pytest.mark.skipif(not (SHARED / "oscd").is_dir(), reason="real data (../shared/data/oscd) absent")
def test_demo_shows_held_out_pairs_of_every_dataset():
    from tamms.demo import DemoConfig, find_real_data

    _, pairs = find_real_data(SHARED, DemoConfig(max_real_series=0, max_levir_pairs=1))
    chosen = {p.meta["dataset"]: p.name for p in pairs}
    assert chosen == {"levir_cd": "test_121_0768_0256", "oscd": "paris", "sztaki": "szada_7"}


def test_a_stage_can_train_on_some_real_folders(tmp_path):
    levir = write_levir(tmp_path / "levir_cd")
    other = write_levir(tmp_path / "oscd", names=("a", "b"))
    path = tiny_config(tmp_path, real=[str(levir), str(other)])
    for folders, expected in (("null", {"levir_cd", "oscd"}), ("[levir_cd]", {"levir_cd"})):
        data = ChangeDetectionTask(load_train_config(path, [f"options.real_folders={folders}"],
                                                     task="detect")).datamodule()
        data.setup("fit")
        assert {p.meta["dataset"] for p in data.pairs} == expected

"""Forecasting: the ECM on a frozen U-Net (TAMMs SFCI), sampling, tiling, baselines, CLI (training: test_train_forecast.py).

Tiny configs (16-32 px, channels 8-16), 2 sampler steps, a few optimiser steps.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tamms.data.sequence import SitsSequence
from tamms.errors import DateError

TINY_UNET = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 16, 16],
                 down_block_types=["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], layers_per_block=1,
                 cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
TINY_ECM = dict(semantic_dim=12, text_dim=10, time_embed_dim=16, semproc_hidden=16, temporal_heads=2)
TINY_CFG = {"unet": TINY_UNET, "ecm": TINY_ECM, "history": 3, "prediction_type": "sample"}


def tiny_forecaster(seed: int = 0, control_depth: int = 1):
    from tamms.models.forecaster import SFCIConfig, SFCIForecaster
    from tamms.models.unet import build_unet

    torch.manual_seed(seed)
    cfg = SFCIConfig.from_dict({"history": 3, "prediction_type": "sample",
                                "ecm": {**TINY_ECM, "control_depth": control_depth}})
    return SFCIForecaster.from_config(cfg, build_unet(dict(TINY_UNET)))


def randomise_zero_convs(forecaster, std: float = 0.05) -> None:
    """Give the zero-initialised output convs some weight so gradients reach every ECM parameter."""
    with torch.no_grad():
        for conv in [*forecaster.ecm.zero_convs, forecaster.ecm.mid_zero_conv]:
            conv.weight.normal_(0, std)


def batch_of(b: int = 2, size: int = 16, t: int = 3, semantic: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    batch = {
        "history": torch.rand(b, t, 3, size, size, generator=g),
        "history_days": torch.tensor([[0.0, 200.0, 500.0]] * b, dtype=torch.float64),
        "target": torch.rand(b, 3, size, size, generator=g),
        "target_days": torch.tensor([900.0] * b, dtype=torch.float64),
    }
    if semantic:
        batch["semantic"] = torch.randn(b, TINY_ECM["semantic_dim"], generator=g)
        batch["text_embeddings"] = torch.randn(b, 5, TINY_ECM["text_dim"], generator=g)
        batch["text_mask"] = torch.tensor([[1, 1, 1, 1, 0]] * b, dtype=torch.bool)
    return batch


# --- structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("control_depth", [1, 2])
def test_ecm_residuals_match_unet_levels(control_depth):
    from tamms.models.unet import encode_unet

    f = tiny_forecaster(control_depth=control_depth)
    b = batch_of()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10, 900])
    res, mid, _, _ = encode_unet(f.unet, x, t, f.null_text(2, "cpu"))
    feats = f.encode_history(b["history"] * 2 - 1)
    gaps = (b["target_days"][:, None] - b["history_days"]).float()
    down, mid_res = f.ecm(feats, f.ecm.level_inputs(res, mid), gaps, t, b["semantic"])
    assert len(down) == len(res) == 6
    assert [d.shape for d in down] == [r.shape for r in res]
    assert mid_res.shape == mid.shape
    # three resolutions: 16, 8, 4 px
    assert [fe.shape[-1] for fe in feats] == [16, 8, 4]


@pytest.mark.parametrize("control_depth", [1, 2])
def test_zero_initialised_control_leaves_frozen_unet_unchanged(control_depth):
    f = tiny_forecaster(control_depth=control_depth)
    b = batch_of()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([3, 700])
    feats = f.encode_history(b["history"] * 2 - 1)
    gaps = (b["target_days"][:, None] - b["history_days"]).float()
    with torch.no_grad():
        plain = f.unet(x, t, f.null_text(2, "cpu")).sample  # diffusers' own forward, no control
        controlled = f(x, t, feats, gaps, semantic=b["semantic"])  # ECM on, zero output convs
        randomise_zero_convs(f)
        steered = f(x, t, feats, gaps, semantic=b["semantic"])
    torch.testing.assert_close(controlled, plain, atol=1e-5, rtol=0)
    assert (steered - plain).abs().max() > 1e-3  # and the same path does steer once the convs are trained


@pytest.mark.parametrize("control_depth", [1, 3])
def test_history_cache_gives_the_same_output(control_depth):
    """The sampler reuses the share of the control blocks that does not depend on the noisy sample: same numbers."""
    f = tiny_forecaster(control_depth=control_depth)
    randomise_zero_convs(f, 0.3)
    b = batch_of()
    feats = f.encode_history(b["history"] * 2 - 1)
    gaps = (b["target_days"][:, None] - b["history_days"]).float()
    cache: dict = {}
    with torch.no_grad():
        for t in (900, 20):  # the second call reads the cache filled by the first
            tt = torch.tensor([t, t])
            x = torch.randn(2, 3, 16, 16)
            plain = f(x, tt, feats, gaps, semantic=b["semantic"])
            cached = f(x, tt, feats, gaps, semantic=b["semantic"], cache=cache)
            torch.testing.assert_close(cached, plain, atol=1e-5, rtol=0)
    # block j of a level caches its first T-j frames (their input does not reach the noisy sample)
    frames = feats[0].shape[1]
    assert len(cache) == len(f.ecm.levels) * min(control_depth, frames)
    assert [v.shape[0] for k, v in sorted(cache.items()) if k[0] == 0] == [2 * (frames - j)
                                                                          for j in range(min(control_depth, frames))]


def test_deeper_structural_path_is_structural():
    shallow, deep = tiny_forecaster(control_depth=1), tiny_forecaster(control_depth=3)
    extra = {id(p) for level in deep.ecm.levels for p in level.ctrl_more.parameters()}
    assert len(extra) == 2 * 10 * len(deep.ecm.levels)  # 2 more blocks of 10 tensors per level
    assert extra <= {id(p) for p in deep.ecm.structural_parameters()}
    assert not extra & {id(p) for p in deep.ecm.semantic_parameters()}
    assert len(deep.ecm.structural_parameters()) == len(shallow.ecm.structural_parameters()) + len(extra)
    from tamms.errors import ConfigError

    with pytest.raises(ConfigError, match="control_depth"):
        tiny_forecaster(control_depth=0)


def test_gate_and_alpha_stay_in_range():
    f = tiny_forecaster()
    with torch.no_grad():
        for i, level in enumerate(f.ecm.levels):
            level.semantic.gate.weight.normal_(0, 50.0)
            level.temporal.alpha_logit.fill_(40.0 if i % 2 else -40.0)
    gates, alphas = f.ecm.gates_and_alphas(torch.randn(8, TINY_ECM["semantic_dim"]) * 100)
    for g in gates:
        assert g.shape == (8, g.shape[1]) and bool(((g >= 0) & (g <= 1)).all())
    for a in alphas:
        assert 0.0 <= float(a.detach()) <= 1.0


def test_sampler_and_semantic_path_change_the_output():
    from tamms.pipelines.forecast import sample_sfci

    f = tiny_forecaster()
    randomise_zero_convs(f, 0.2)
    b = batch_of(1)
    with torch.no_grad():
        for level in f.ecm.levels:
            level.semantic.gate.bias.fill_(0.0)
    kw = dict(num_inference_steps=2, noise=torch.randn(1, 1, 3, 16, 16))
    with_sem = sample_sfci(f, b["history"], b["history_days"], b["target_days"], semantic=b["semantic"], **kw)
    other = sample_sfci(f, b["history"], b["history_days"], b["target_days"], semantic=-b["semantic"], **kw)
    assert with_sem.shape == (1, 1, 3, 16, 16)
    assert float(with_sem.min()) >= 0 and float(with_sem.max()) <= 1
    assert (with_sem - other).abs().max() > 1e-4
    f.ecm.cfg.use_semantic = False  # the "w/o semantic fusion" ablation ignores M_t entirely
    a = sample_sfci(f, b["history"], b["history_days"], b["target_days"], semantic=b["semantic"], **kw)
    c = sample_sfci(f, b["history"], b["history_days"], b["target_days"], semantic=-b["semantic"], **kw)
    torch.testing.assert_close(a, c)


# --- baselines ----------------------------------------------------------------------------------


def test_linear_trend_and_persistence():
    from tamms.models.baselines.forecast import linear_trend, persistence

    days = torch.tensor([[0.0, 100.0, 300.0]], dtype=torch.float64)
    ramp = (0.1 + 0.001 * days[0]).float()  # per-pixel value grows 0.001 per day
    history = ramp[None, :, None, None, None].expand(1, 3, 3, 4, 5).clone()
    target = torch.tensor([500.0], dtype=torch.float64)
    torch.testing.assert_close(linear_trend(history, days, target), torch.full((1, 3, 4, 5), 0.6))
    assert torch.equal(persistence(history, days, target), history[:, -1])
    torch.testing.assert_close(linear_trend(history, days, torch.tensor([5000.0])), torch.ones(1, 3, 4, 5))


@pytest.mark.parametrize("name", ["simvp", "convlstm"])
def test_learned_baselines_any_size(name, tmp_path):
    from tamms.models.baselines.forecast import ConvLSTM, ConvLSTMConfig, SimVP, SimVPConfig
    from tamms.registry import load_forecast_model

    net = SimVP(SimVPConfig(hidden=8, translator=16, translator_blocks=1)) if name == "simvp" \
        else ConvLSTM(ConvLSTMConfig(hidden=8))
    net.save_pretrained(tmp_path / name)
    model = load_forecast_model(name, tmp_path / name)
    h = torch.rand(2, 3, 3, 18, 23)
    out = model.forecast(h, torch.tensor([[0.0, 50, 100]] * 2), torch.tensor([200.0, 300.0]), num_samples=2)
    assert out.shape == (2, 2, 3, 18, 23)
    torch.testing.assert_close(out[:, 0], h[:, -1])  # zero-initialised head: starts as persistence


# --- pipeline -----------------------------------------------------------------------------------


def _save_tiny_weights(folder: Path, stage: int = 1, sample_size: int = 16) -> Path:
    f = tiny_forecaster()
    f.unet.register_to_config(sample_size=sample_size)
    randomise_zero_convs(f, 0.1)
    f.ecm.structural_only = stage == 1
    return f.save_pretrained(folder)  # the fresh U-Net goes into folder/unet/


def _sequence(h: int, w: int, t: int = 3, seed: int = 0) -> SitsSequence:
    rng = np.random.default_rng(seed)
    dates = [dt.date(2015 + 2 * i, 6, 1) for i in range(t)]
    return SitsSequence(frames=rng.random((t, 3, h, w), dtype=np.float32), dates=dates)


def test_same_seed_same_forecast_and_rollout(tmp_path):
    from tamms.pipelines.forecast import ForecastPipeline

    pipe = ForecastPipeline.from_pretrained(_save_tiny_weights(tmp_path / "w"), model="tamms-base-control")
    seq = _sequence(16, 16)
    a = pipe(seq, "2022-01-01", num_samples=2, num_inference_steps=2, seed=3)
    b = pipe(seq, "2022-01-01", num_samples=2, num_inference_steps=2, seed=3)
    c = pipe(seq, "2022-01-01", num_samples=2, num_inference_steps=2, seed=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (1, 2, 3, 16, 16) and a.spread.shape == (1, 3, 16, 16)
    assert float(a.spread.mean()) > 0
    assert a.target_dates == [dt.date(2022, 1, 1)]
    roll = pipe(seq, ["2022-01-01", "2023-06-01", "2025-01-01"], num_samples=2, num_inference_steps=2, seed=3)
    assert len(roll.trajectory) == 3
    assert torch.equal(roll.trajectory[0].images, a.images)
    assert roll.images.shape == (1, 2, 3, 16, 16) and roll.target_dates == [dt.date(2025, 1, 1)]
    with pytest.raises(DateError):
        pipe(seq, "2019-01-01")  # before the last frame
    pipe.model.strength = 0.5  # img2img start from the noised last frame: one of the two steps is run
    d = pipe(seq, "2022-01-01", num_samples=2, num_inference_steps=2, seed=3)
    assert d.images.shape == a.images.shape and not torch.equal(d.images, a.images)


def test_sampler_starts_from_another_forecasters_forecast(tmp_path):
    """start_from (saved with the weights): with strength < 1 the sampler starts from that forecaster's forecast for
    the same date, noised part-way (SDEdit), instead of from the last frame; at strength 1 it is never run."""
    from tamms.models.forecaster import SFCIForecaster
    from tamms.pipelines.forecast import (FunctionForecastModel, ForecastPipeline, SFCIForecastModel, sample_sfci,
                                         steps_to_run)

    folder = _save_tiny_weights(tmp_path / "w")
    net = SFCIForecaster.from_pretrained(folder)
    net.cfg.start_from, net.cfg.strength = "linear-trend", 0.5
    net.save_pretrained(folder, overwrite=True)
    pipe = ForecastPipeline.from_pretrained(folder, model="tamms-base-control", tile_batch=4)
    assert pipe.model.start is not None and pipe.model.start.name == "linear-trend"
    seq = _sequence(16, 16)
    out = pipe(seq, "2020-06-01", num_samples=2, num_inference_steps=4, seed=3)  # one step (no rollout)
    history = torch.from_numpy(seq.frames)[None]
    days = torch.tensor([[float(d) for d in seq.days]], dtype=torch.float64)
    target = torch.tensor([float(out.target_days[0])], dtype=torch.float64)
    trend = pipe.model.start.forecast(history, days, target)[:, 0]  # [1, C, H, W]
    noise = torch.randn((1, 2, 3, 16, 16), generator=torch.Generator().manual_seed(3))
    kwargs = dict(num_samples=2, num_inference_steps=4, noise=noise, strength=0.5)
    expected = sample_sfci(net.eval(), history, days, target, init=trend, **kwargs)
    torch.testing.assert_close(out.images, expected)
    from_last = sample_sfci(net, history, days, target, **kwargs)  # control: the start image is read
    assert (from_last - expected).abs().max() > 1e-3
    assert ForecastPipeline.from_pretrained(folder, strength=1.0).model.start is None
    assert ForecastPipeline.from_pretrained(folder, start_from=None).model.start is None  # the last frame
    assert [ForecastPipeline.from_pretrained(folder, **kw).model.start_name for kw in
            ({}, {"start_from": None}, {"strength": 1.0})] == ["linear-trend", "last frame", "pure noise"]
    assert [steps_to_run(4, s) for s in (1.0, 0.5, 0.1)] == [4, 2, 1]
    # a start forecaster that reaches any date in one step (change-trend) makes the forecast one step
    assert not pipe.model.any_gap
    one_step = FunctionForecastModel("trend-any-gap", lambda h, d, t: h[:, -1], history=3, any_gap=True)
    assert SFCIForecastModel("x", net, strength=0.5, start=one_step).any_gap
    assert not SFCIForecastModel("x", net, strength=1.0, start=one_step).any_gap  # from noise: no start


def test_tiled_forecast_of_a_large_scene(tmp_path):
    from tamms.pipelines.forecast import ForecastPipeline, blend_window, tile_starts

    assert tile_starts(300, 32, 8) [0] == 0 and tile_starts(300, 32, 8)[-1] == 268
    assert float(blend_window(32, 8).min()) > 0
    pipe = ForecastPipeline.from_pretrained(_save_tiny_weights(tmp_path / "w", sample_size=32),
                                            model="tamms-base-control", tile_overlap=8, tile_batch=32)
    seq = _sequence(40, 70)  # 2 x 3 overlapping tiles
    out = pipe(seq, "2022-01-01", num_inference_steps=2, seed=0)
    assert out.images.shape == (1, 1, 3, 40, 70)
    assert torch.isfinite(out.images).all()
    small = pipe(_sequence(20, 12), "2022-01-01", num_inference_steps=2)  # smaller than a tile: padded
    assert small.images.shape == (1, 1, 3, 20, 12)


def _write_geotiff_sequence(folder: Path, h: int, w: int, t: int = 3) -> None:
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(t):
        date = f"{2014 + 2 * i}-07-0{i + 1}"
        with rasterio.open(folder / f"{date}.tif", "w", driver="GTiff", width=w, height=h, count=4, dtype="uint16",
                           crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 4600000)) as dst:
            dst.write(rng.integers(100, 3000, (4, h, w)).astype("uint16"))
        frames.append({"path": f"{date}.tif", "date": date})
    (folder / "sequence.json").write_text(json.dumps({"frames": frames, "band_names": ["red", "green", "blue", "nir"]}))


def test_cli_forecast_geotiff_keeps_georeferencing(tmp_path):
    import rasterio

    from tamms.cli import main

    seq_dir = tmp_path / "scene"
    _write_geotiff_sequence(seq_dir, 200, 300)
    weights = _save_tiny_weights(tmp_path / "w", sample_size=64)  # 6 x 4 overlapping tiles
    out = tmp_path / "out" / "forecast.tif"
    args = ["forecast", str(seq_dir), "--date", "2021-01-01", "--out", str(out), "--samples", "2", "--steps", "2",
            "--weights", str(weights), "--model", "tamms-base-control"]
    main(args)
    with rasterio.open(seq_dir / "2018-07-03.tif") as ref, rasterio.open(out) as got:
        assert (got.width, got.height, got.count) == (300, 200, 4)  # every input band, NIR too
        assert got.crs == ref.crs and got.transform == ref.transform
        assert set(got.dtypes) == {"uint16"} and got.descriptions == ("red", "green", "blue", "nir")
        assert 100 <= got.read(4).mean() <= 3000  # NIR scaled back to the input's units
    with rasterio.open(out.with_name("forecast_spread.tif")) as spread:
        assert (spread.width, spread.height) == (300, 200)
    assert out.with_suffix(".png").exists()
    with pytest.raises(SystemExit) as exit_info:  # refuses to overwrite, exit status 2
        main(args)
    assert exit_info.value.code == 2


def test_cli_forecast_on_synthetic_folder(tmp_path):
    import rasterio

    from tamms.cli import main
    from tamms.data.synthetic import write_world

    folders = write_world(tmp_path / "world", n=1, size=32, frames=4, seed=0)
    out = tmp_path / "p.tif"
    main(["forecast", str(folders[0]), "--date", "2030-01-01", "--out", str(out), "--model", "persistence"])
    with rasterio.open(out) as got:
        assert (got.width, got.height, got.count) == (32, 32, 4)  # R, G, B, NIR
    with pytest.raises(SystemExit):
        main(["forecast", str(folders[0]), "--date", "2000-01-01", "--out", str(tmp_path / "q.tif"),
              "--model", "persistence"])
    with pytest.raises(SystemExit) as exit_info:  # a misspelt model: one line naming the choices, nothing written
        main(["forecast", str(folders[0]), "--date", "2030-01-01", "--out", str(tmp_path / "r.tif"),
              "--model", "persistance"])
    assert exit_info.value.code == 2 and not (tmp_path / "r.tif").exists()


def test_cli_start_from_chooses_the_sampler_start(tmp_path):
    """--start-from NAME / last-frame reach the sampler (different forecasts); a stochastic start is refused in one
    line."""
    import rasterio

    from tamms.cli import main
    from tamms.data.synthetic import write_world

    folder = write_world(tmp_path / "world", n=1, size=32, frames=4, seed=0)[0]
    weights = _save_tiny_weights(tmp_path / "w", sample_size=32)
    common = ["--date", "2030-01-01", "--weights", str(weights), "--model", "tamms-base-control", "--strength", "0.5",
              "--steps", "2"]
    bands = {}
    for start in ("linear-trend", "last-frame"):
        out = tmp_path / f"{start}.tif"
        main(["forecast", str(folder), "--out", str(out), "--start-from", start, *common])
        with rasterio.open(out) as got:
            bands[start] = got.read().astype(np.float64)
    assert np.abs(bands["linear-trend"] - bands["last-frame"]).max() > 0
    with pytest.raises(SystemExit) as exit_info:
        main(["forecast", str(folder), "--out", str(tmp_path / "x.tif"), "--start-from", str(weights), *common])
    assert exit_info.value.code == 2


def test_pipeline_loads_the_describer_the_forecaster_was_trained_with(tmp_path):
    """describer="default": the describer named by the folder's training options (a folder or shipped name);
    a folder that records none gets the shipped describer; an explicit describer is kept."""
    import json
    import shutil

    from tamms.pipelines.describe import DescribePipeline
    from tamms.pipelines.forecast import ForecastPipeline, training_describer
    from tamms.utils import default_weights

    assert training_describer("tamms") is None  # the shipped forecaster records no describer: the shipped one
    assert training_describer("persistence") is None
    folder = tmp_path / "forecaster"
    shutil.copytree(default_weights("tamms"), folder)
    shutil.copytree(default_weights("tamms-unet"), tmp_path / "tamms-unet")  # named relative to the forecaster
    record = json.loads((folder / "config.json").read_text())
    record["training"] = {"config": {"options": {"describer": "describer-v2"}}}
    (folder / "config.json").write_text(json.dumps(record))
    assert training_describer(folder) == default_weights("describer-v2")
    v2 = DescribePipeline.from_pretrained(default_weights("describer-v2")).model
    pipe = ForecastPipeline.from_pretrained(folder)
    assert all(torch.equal(a, b) for a, b in zip(pipe.describer.model.state_dict().values(), v2.state_dict().values()))
    shipped = ForecastPipeline.from_pretrained("tamms").describer.model
    assert not all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), v2.state_dict().values()))
    record["training"]["config"]["options"]["describer"] = str(tmp_path / "missing")
    (folder / "config.json").write_text(json.dumps(record))
    from tamms.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="tamms train describe"):
        ForecastPipeline.from_pretrained(folder)


def test_transfer_bands_carries_the_other_bands_with_the_rgb_change():
    """Bands the model does not forecast follow the RGB forecast by the change relation seen in the history."""
    from tamms.pipelines.forecast import transfer_bands

    rng = np.random.default_rng(0)
    rgb_frames = rng.random((4, 3, 16, 16)) * 0.5 + 0.2  # [T, 3, H, W]
    w = np.array([-0.8, 0.3, 0.1])  # NIR change = w . RGB change (vegetation lost: red up, NIR down)
    nir = np.empty((4, 1, 16, 16))
    nir[0] = 0.5
    for t in range(1, 4):
        nir[t] = nir[t - 1] + np.tensordot(w, rgb_frames[t] - rgb_frames[t - 1], axes=1)[None]
    # band order as Landsat's SWIR-less layout: NIR first, then R, G, B (rgb indices 1, 2, 3)
    history = np.concatenate([nir, rgb_frames], axis=1).astype(np.float32)  # [T, 4, H, W]
    forecast_rgb = (rgb_frames[-1] + 0.05).astype(np.float32)
    out = transfer_bands(history, [1, 2, 3], forecast_rgb, ridge=0.0)
    assert out.shape == (4, 16, 16)
    np.testing.assert_allclose(out[1:], forecast_rgb, atol=1e-6)  # the RGB bands are the forecast
    expected = np.clip(nir[-1, 0] + np.tensordot(w, forecast_rgb - rgb_frames[-1], axes=1), 0, 1)
    np.testing.assert_allclose(out[0], expected, atol=1e-4)
    # no RGB change forecast: every band stays as the last frame; one frame: the other bands persist
    np.testing.assert_allclose(transfer_bands(history, [1, 2, 3], history[-1, 1:]), history[-1], atol=1e-6)
    np.testing.assert_allclose(transfer_bands(history[-1:], [1, 2, 3], forecast_rgb)[0], history[-1, 0], atol=1e-6)


def test_forecast_output_holds_every_input_band_in_input_order():
    from tamms.data.sequence import SitsSequence
    from tamms.pipelines.forecast import ForecastPipeline

    rng = np.random.default_rng(1)
    frames = rng.random((3, 5, 24, 24)).astype(np.float32)  # SWIR1, NIR, R, G, B
    seq = SitsSequence(frames=frames, dates=["2019-06-01", "2020-06-01", "2021-06-01"],
                       band_names=["swir1", "nir", "red", "green", "blue"])
    out = ForecastPipeline.from_pretrained("linear-trend")(seq, "2022-06-01")
    assert out.bands.shape == (1, 5, 24, 24) and out.band_names == ["swir1", "nir", "red", "green", "blue"]
    torch.testing.assert_close(out.bands[0, list(seq.rgb_bands)], out.mean[0])
    rollout = ForecastPipeline.from_pretrained("persistence")(seq, ["2022-06-01", "2023-06-01"])
    assert [t.bands.shape[1] for t in rollout.trajectory] == [5, 5]
    torch.testing.assert_close(rollout.bands[0], torch.from_numpy(frames[-1]))  # persistence: every band


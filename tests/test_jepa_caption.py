"""Caption-guided Zero-RGB Sat-JEPA-Diff, captions from the data, training, pipeline and CLI."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from tamms.errors import InputError
from tamms.models.jepa_caption import (
    CaptionBatch,
    CaptionForecaster,
    CaptionForecasterConfig,
    CaptionGuidedSatJEPA,
    CaptionSatJEPAConfig,
    MultiStreamAdapterConfig,
    TextEncoderConfig,
    build_tokenizer,
    geometric_caption,
    triple_captions,
)
from tests.test_jepa import tiny_generator, tiny_ijepa, tiny_rgb_config

TEXTS = ["a summer 2019 image showing dense forest across most of the scene",
         "a winter 2020 image showing cropland in the centre and water in the north",
         "water in the top-left, forest in the centre", "buildings spread eastward along a new road"]


def tiny_caption_config() -> CaptionSatJEPAConfig:
    return CaptionSatJEPAConfig(
        ijepa=tiny_ijepa(), text=TextEncoderConfig(vocab_size=64, dim=16, depth=1, heads=2, max_len=24),
        forecaster=CaptionForecasterConfig(ijepa_dim=32, text_dim=16, hidden_dim=16, num_layers=2, heads=2),
        adapter=MultiStreamAdapterConfig(ijepa_dim=32, text_dim=16, hidden_dim=32, cross_dim=32, pooled_dim=32, heads=2),
        generator=tiny_generator(sigma_range=(0.0, 1.0)),
    )


def tiny_caption_model() -> CaptionGuidedSatJEPA:
    torch.manual_seed(0)
    return CaptionGuidedSatJEPA(tiny_caption_config(), build_tokenizer(TEXTS, 64))


def test_zero_rgb_generator_never_receives_input_pixels():
    model = tiny_caption_model().eval()
    caps = CaptionBatch(TEXTS[:2], TEXTS[2:])
    seen: dict[str, list] = {"adapter": [], "unet": []}
    model.adapter.register_forward_pre_hook(lambda m, args: seen["adapter"].append(args))
    model.generator.unet.register_forward_pre_hook(lambda m, args, kw: seen["unet"].append((args, kw)), with_kwargs=True)
    x = torch.rand(2, 4, 32, 32)
    y = model.forecast(x, captions=caps, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    # 1. the adapter gets IJEPA tokens and caption embeddings only: no image-shaped tensor
    for args in seen["adapter"]:
        for a in args:
            for t in (a if isinstance(a, tuple) else (a,)):
                assert t.ndim != 4, "an image-shaped tensor reached the adapter"
    # 2. the flow starts from pure noise at sigma = 1, not from the (noised) input frame
    first_sample, first_t = seen["unet"][0][0][0], seen["unet"][0][0][1]
    torch.testing.assert_close(first_sample, torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    assert float(first_t.flatten()[0]) == pytest.approx(1000.0)
    # 3. with the IJEPA forecast held fixed, the input pixels cannot change the output
    z = model.ijepa.predict(x)
    model.ijepa.predict = lambda images, gap_days=None, current_days=None: z
    y1 = model.forecast(x, captions=caps, num_inference_steps=2, generator=torch.Generator().manual_seed(1))
    y2 = model.forecast(torch.rand_like(x), captions=caps, num_inference_steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)


def test_caption_forecaster_gated_residual_delta():
    fc = CaptionForecaster(CaptionForecasterConfig(ijepa_dim=8, text_dim=6, hidden_dim=8, num_layers=3, heads=2))
    assert len(fc.attn) == 3
    base = torch.randn(2, 6)
    args = (base, torch.randn(2, 5, 8), torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool))
    with torch.no_grad():
        fc.gate.zero_()
    torch.testing.assert_close(fc(*args), base)  # a closed gate returns the present caption embedding
    with torch.no_grad():
        fc.gate.fill_(0.5)
    out = fc(*args)
    assert not torch.allclose(out, base)
    # the IJEPA tokens steer the forecast
    out2 = fc(base, torch.randn(2, 5, 8), args[2], args[3])
    assert not torch.allclose(out, out2)


def test_caption_model_loss_has_three_parts_and_trains():
    model = tiny_caption_model()
    model.freeze_text_encoder()
    caps = CaptionBatch(TEXTS, TEXTS[::-1], TEXTS[1:] + TEXTS[:1])
    out = model.loss(torch.rand(4, 4, 32, 32), torch.rand(4, 4, 32, 32), caps, torch.full((4,), 300.0))
    expect = out["ijepa/loss"] + model.config.sd_weight * out["diff/loss"] + model.config.caption_weight * out["caption"]
    assert float(out["loss"]) == pytest.approx(float(expect), rel=1e-6)
    out["loss"].backward()
    assert model.caption_forecaster.gate.grad is not None
    assert all(p.grad is None for p in model.text_encoder.parameters())  # frozen, as the card's encoders
    with pytest.raises(InputError):
        model.loss(torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), CaptionBatch(TEXTS[:1], TEXTS[:1]))


def test_triple_captions_from_the_synthetic_world():
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence

    seq = generate_sequence(3, SyntheticWorldConfig(size=32, frames=3))
    caps = triple_captions(seq, 0)
    assert caps["informative"] == seq.meta["frame_descriptions"][0]
    assert caps["semantic_next"] == seq.meta["frame_descriptions"][1]
    assert "top-left" in caps["geometric"] and "bottom-right" in caps["geometric"]
    last = triple_captions(seq, seq.num_frames - 1)
    assert last["semantic_next"] == seq.meta["future_description"]
    lc = np.zeros((9, 9), dtype=np.int64)
    lc[:3, :3] = 1
    text = geometric_caption(lc, ["water", "forest"])
    assert text.startswith("forest in the top-left") and "water in the bottom-right" in text


def _tiny_train_config(variant: str) -> dict:
    cfg = tiny_caption_config() if variant == "caption" else tiny_rgb_config()
    return {"variant": variant, "model": cfg.to_dict(),
            "training": {"batch_size": 4, "max_steps": 3, "warmup_steps": 1, "text_pretrain_steps": 5, "log_every": 1}}


def test_forecast_registry_adapter_runs_in_the_forecast_pipeline(tmp_path):
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.models import build_model
    from tamms.pipelines import forecast
    from tamms.registry import load_forecast_model

    seqs = [generate_sequence(i, SyntheticWorldConfig(size=32, frames=3)) for i in range(2)]
    cfg = _tiny_train_config("rgb")["model"]
    for section in ("ijepa", "adapter", "generator"):
        cfg[section]["in_channels"] = 3  # the forecasting pipeline feeds RGB
    build_model("satjepa-diff", cfg).save_pretrained(tmp_path / "w")
    model = load_forecast_model("satjepa", tmp_path / "w")
    assert model.name == "satjepa" and model.channels == 3 and model.tile_size == 32
    pipe = forecast.ForecastPipeline(model)
    d0 = seqs[0].dates[-1]
    out = pipe(seqs[0], [d0.replace(year=d0.year + 1), d0.replace(year=d0.year + 2)], num_samples=2,
               num_inference_steps=2)
    assert out.images.shape == (1, 2, 3, 32, 32)
    assert len(out.trajectory) == 2  # a two-date rollout fed the first forecast back


def test_caption_variant_through_forecast_pipeline_with_shipped_weights():
    """`tamms forecast --model satjepa-caption`: the description model captions the history (>= 2 frames)."""
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence
    from tamms.pipelines.forecast import ForecastPipeline
    from tamms.utils import default_weights

    for name in ("satjepa-caption", "describer"):  # shipped with the package: missing is a failure
        assert (default_weights(name) / "config.json").is_file(), f"shipped {name} weights missing"
    seq = generate_sequence(3, SyntheticWorldConfig(size=64, frames=3))
    pipe = ForecastPipeline.from_pretrained("satjepa-caption")
    assert pipe.model.history == 2
    out = pipe(seq, seq.future_date, num_inference_steps=2)
    assert tuple(out.mean.shape) == (1, 3, 64, 64) and 0 <= float(out.mean.min()) <= float(out.mean.max()) <= 1


def test_cli_forecast_satjepa_caption_on_dated_geotiffs_without_captions(tmp_path):
    """`tamms forecast --model satjepa-caption` on a folder of dated GeoTIFFs: no text, no land cover, no
    sequence.json; the shipped describer and change detector caption the last two frames."""
    import rasterio
    from affine import Affine

    from tamms.cli import main
    from tamms.data.synthetic import SyntheticWorldConfig, generate_sequence

    seq = generate_sequence(3, SyntheticWorldConfig(size=64, frames=3))
    folder = tmp_path / "scene"
    folder.mkdir()
    for frame, date in zip(seq.rgb(), seq.dates):
        with rasterio.open(folder / f"{date.isoformat()}.tif", "w", driver="GTiff", width=64, height=64, count=3,
                           dtype="uint16", crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 4600000)) as dst:
            dst.write((np.clip(frame, 0, 1) * 10000).astype("uint16"))
    out = tmp_path / "forecast.tif"
    main(["forecast", str(folder), "--date", seq.future_date.isoformat(), "--out", str(out), "--model",
          "satjepa-caption"])
    with rasterio.open(out) as got:
        assert (got.width, got.height, got.count) == (64, 64, 3) and got.crs.to_epsg() == 32633
        assert got.read().std() > 0


def test_caption_model_starts_from_a_trained_rgb_model(tmp_path):
    """options.init_parts_from: the IJEPA module and the U-Net come from a coarse-RGB folder; other folders fail."""
    from tamms.errors import ConfigError
    from tamms.models.jepa_generator import SatJEPADiff
    from tamms.tasks.jepa import SatJEPATask

    torch.manual_seed(1)
    SatJEPADiff(tiny_rgb_config()).save_pretrained(tmp_path / "rgb")
    model = tiny_caption_model()
    SatJEPATask._load_rgb_parts(model, str(tmp_path / "rgb"))
    rgb = SatJEPADiff.from_pretrained(tmp_path / "rgb")
    assert torch.equal(model.generator.unet.conv_in.weight, rgb.generator.unet.conv_in.weight)
    assert torch.equal(model.ijepa.predictor.pos_embed, rgb.ijepa.predictor.pos_embed)
    tiny_caption_model().save_pretrained(tmp_path / "caption")
    with pytest.raises(ConfigError, match="no coarse-RGB"):
        SatJEPATask._load_rgb_parts(model, str(tmp_path / "caption"))


def test_caption_adapter_starts_as_the_rgb_adapter_without_its_reference():
    """init_from_rgb: IJEPA stream and pooled vector equal the rgb adapter's (alpha * h_sem), caption tokens zero."""
    from tamms.models.jepa_generator import SatJEPADiff

    torch.manual_seed(2)
    rgb = SatJEPADiff(tiny_rgb_config()).eval()
    with torch.no_grad():
        rgb.adapter.gate_logit.fill_(0.7)  # alpha != 0.5: the copy must carry the gate
    model = tiny_caption_model().eval()
    model.init_from_rgb(rgb)
    z = torch.randn(2, 16, 32)  # [B, N, D]: 16 patches of 8 px at 32 px
    caps = CaptionBatch(TEXTS[:2], TEXTS[2:])
    cond, _ = model.condition(z, caps)
    want = rgb.adapter(z, torch.rand(2, 4, 32, 32))
    n = z.shape[1]
    torch.testing.assert_close(cond.tokens[:, -n:], want.tokens[:, :n], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cond.pooled, want.pooled, rtol=1e-4, atol=1e-5)
    assert float(cond.tokens[:, :-n].abs().max()) == 0.0  # caption tokens: zero, as a dropped reference
    assert torch.equal(model.generator.unet.conv_in.weight, rgb.generator.unet.conv_in.weight)
    # the caption parts can learn: a step moves their (zeroed) projections
    out = model.loss(torch.rand(2, 4, 32, 32), torch.rand(2, 4, 32, 32),
                     CaptionBatch(TEXTS[:2], TEXTS[2:], TEXTS[1:3]), torch.tensor([30.0, 400.0]),
                     generator=torch.Generator().manual_seed(0), current_days=torch.tensor([10.0, 200.0]))
    model.train()
    out["loss"].backward()
    assert model.adapter.proj["informative"][-1].weight.grad.abs().sum() > 0

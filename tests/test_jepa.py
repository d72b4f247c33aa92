"""Sat-JEPA-Diff: EMA schedule, masks, loss terms, sampler steps, reference dropout, Zero-RGB, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tamms.errors import InputError

from tamms.models.jepa import (
    IJEPA,
    IJEPAConfig,
    MultiBlockMaskGenerator,
    cosine_term,
    ema_update_,
    feature_regression_term,
    ijepa_hybrid_loss,
    info_nce_term,
    l1_term,
    momentum_at,
    spatial_variance_term,
)
from tamms.models.jepa_generator import (
    AdapterConfig,
    ConditioningAdapter,
    FlowGenerator,
    FlowGeneratorConfig,
    SatJEPADiff,
    SatJEPADiffConfig,
)


def tiny_ijepa(**kw) -> IJEPAConfig:
    return IJEPAConfig(**{"image_size": 32, "patch_size": 8, "in_channels": 4, "embed_dim": 32, "depth": 1,
                          "num_heads": 2, "predictor_dim": 32, "predictor_depth": 1, "predictor_heads": 2, **kw})


def tiny_generator(**kw) -> FlowGeneratorConfig:
    return FlowGeneratorConfig(**{"image_size": 32, "in_channels": 4, "block_out_channels": (16, 32, 32),
                                  "norm_num_groups": 8, "cross_dim": 32, "pooled_dim": 32, **kw})


def tiny_rgb_config() -> SatJEPADiffConfig:
    return SatJEPADiffConfig(
        ijepa=tiny_ijepa(),
        adapter=AdapterConfig(ijepa_dim=32, in_channels=4, hidden_dim=32, cross_dim=32, pooled_dim=32),
        generator=tiny_generator(),
    )


# --------------------------------------------------------------------------------------------- EMA
def test_momentum_schedule_exact():
    assert momentum_at(0, 100) == pytest.approx(0.999, abs=1e-15)
    assert momentum_at(50, 100) == pytest.approx(0.9995, abs=1e-15)
    assert momentum_at(100, 100) == pytest.approx(1.0, abs=1e-15)
    assert momentum_at(25, 100) == pytest.approx(1.0 - 0.001 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    assert momentum_at(25, 100, schedule="linear") == pytest.approx(0.99925, abs=1e-15)
    assert momentum_at(500, 100) == 1.0  # clamped past the end
    vals = [momentum_at(s, 40) for s in range(41)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))


def test_ema_update_exact():
    torch.manual_seed(0)
    model = IJEPA(tiny_ijepa())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in model.target_encoder.parameters()]
    online = [p.clone() for p in model.encoder.parameters()]
    tau = model.update_target(step=30, total_steps=120)
    assert tau == momentum_at(30, 120, 0.999, 1.0, "cosine")
    for b, o, a in zip(before, online, model.target_encoder.parameters()):
        torch.testing.assert_close(a, tau * b + (1 - tau) * o, rtol=0, atol=1e-7)
    # at the end of training the target no longer moves
    frozen = [p.clone() for p in model.target_encoder.parameters()]
    model.update_target(120, 120)
    for f, a in zip(frozen, model.target_encoder.parameters()):
        assert torch.equal(f, a)
    # the target encoder never receives gradients
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_ema_update_function_on_plain_modules():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        a.weight.fill_(1.0), b.weight.fill_(3.0)
    ema_update_(a, b, 0.75)
    assert torch.allclose(a.weight, torch.full((2, 3), 1.5))


# --------------------------------------------------------------------------------------------- masks
def test_masks_respect_scales_and_aspect_ratios():
    cfg = tiny_ijepa(image_size=256)  # 32 x 32 grid: room for every shape without clipping
    gen = MultiBlockMaskGenerator(cfg)
    g = torch.Generator().manual_seed(0)
    n = cfg.num_patches
    for _ in range(200):
        h, w = gen.block_size(cfg.pred_mask_scale, cfg.aspect_ratio, g)
        # rounding h and w moves the area and the ratio by at most one row/column
        assert (cfg.pred_mask_scale[0] * n) * 0.8 <= h * w <= (cfg.pred_mask_scale[1] * n) * 1.2
        assert cfg.aspect_ratio[0] - 0.15 <= h / w <= cfg.aspect_ratio[1] + 0.15
        h, w = gen.block_size(cfg.enc_mask_scale, cfg.aspect_ratio, g)
        assert cfg.enc_mask_scale[0] * n * 0.85 <= h * w <= n
    masks = gen(6, g)
    ph, pw = masks.block_shapes[0]
    assert masks.targets[0].shape == (6, ph * pw)
    for row in masks.targets[0]:  # each target block is one rectangle on the grid
        r, c = row // cfg.grid, row % cfg.grid
        assert (r.max() - r.min() + 1, c.max() - c.min() + 1) == (ph, pw)
    assert masks.context.shape[1] >= cfg.min_keep
    assert len(masks.targets) == cfg.num_pred_masks


def test_masks_on_small_grid_are_valid_and_keep_min():
    cfg = tiny_ijepa(image_size=64)  # the default 8 x 8 grid
    masks = MultiBlockMaskGenerator(cfg)(8, torch.Generator().manual_seed(1))
    assert masks.context.min() >= 0 and masks.context.max() < cfg.num_patches
    assert masks.context.shape[1] >= cfg.min_keep
    for row in masks.context:
        assert len(set(row.tolist())) == len(row)  # no duplicated patch
    h, w = masks.block_shapes[-1]
    assert h <= cfg.grid and w <= cfg.grid


# --------------------------------------------------------------------------------------------- loss terms
def test_loss_terms_on_hand_made_tensors():
    zeros, half = torch.zeros(2, 4, 3), torch.full((2, 4, 3), 0.5)
    assert float(l1_term(zeros, half)) == pytest.approx(0.5)
    e1 = torch.tensor([1.0, 0.0, 0.0]).expand(2, 4, 3)
    e2 = torch.tensor([0.0, 1.0, 0.0]).expand(2, 4, 3)
    assert float(cosine_term(e1, e1)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_term(e1, -e1)) == pytest.approx(2.0)
    assert float(cosine_term(e1, e2)) == pytest.approx(1.0)
    # tokens 0, 2, 0, 2 have variance 1 per channel; a flat prediction misses all of it
    spread = torch.tensor([0.0, 2.0, 0.0, 2.0])[None, :, None].expand(2, 4, 3)
    assert float(spatial_variance_term(torch.ones(2, 4, 3), spread)) == pytest.approx(1.0)
    assert float(spatial_variance_term(spread + 5, spread)) == pytest.approx(0.0, abs=1e-6)
    # InfoNCE with two orthonormal, perfectly matched samples: logits diag 1/T, off-diagonal 0
    a = torch.stack([e1[0], e2[0]])  # [2, 4, 3]
    assert float(info_nce_term(a, a, 0.1)) == pytest.approx(math.log(1 + math.exp(-10.0)), abs=1e-6)
    # swapped positives: the loss is large
    assert float(info_nce_term(a, a.flip(0), 0.1)) == pytest.approx(10 + math.log(1 + math.exp(-10.0)), rel=1e-4)
    assert float(feature_regression_term(zeros, half)) == pytest.approx(0.25)


def test_hybrid_loss_uses_paper_weights():
    cfg = IJEPAConfig()
    assert (cfg.w_l1, cfg.w_cos, cfg.w_var, cfg.w_nce, cfg.w_feat, cfg.nce_temperature) == (20, 2, 2, 0.5, 5, 0.1)
    torch.manual_seed(0)
    p, t, f, g = (torch.randn(3, 5, 4) for _ in range(4))
    terms = ijepa_hybrid_loss(p, t, f, g, cfg)
    expect = (20 * l1_term(p, t) + 2 * cosine_term(p, t) + 2 * spatial_variance_term(p, t)
              + 0.5 * info_nce_term(p, t, 0.1) + 5 * feature_regression_term(f, g))
    assert float(terms["loss"]) == pytest.approx(float(expect), rel=1e-6)
    assert float(terms["l1"]) == pytest.approx(20 * float(l1_term(p, t)), rel=1e-6)


# --------------------------------------------------------------------------------------------- adapter
def test_reference_dropout_rate_and_zeroing():
    cfg = AdapterConfig(ijepa_dim=8, in_channels=3, hidden_dim=8, cross_dim=8, pooled_dim=8, coarse_size=8, coarse_patch=4)
    adapter = ConditioningAdapter(cfg).train()
    n = 4000
    cond = adapter(torch.randn(n, 4, 8), torch.rand(n, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    dropped = ~cond.reference_kept
    rate = float(dropped.float().mean())
    assert abs(rate - 0.15) < 3 * math.sqrt(0.15 * 0.85 / n)  # within 3 standard errors
    coarse_tokens = cond.tokens[:, 4:]  # [B, 4, cross] after the 4 IJEPA tokens
    assert torch.all(coarse_tokens[dropped] == 0)
    assert torch.all(coarse_tokens[~dropped].abs().sum(-1) > 0)
    adapter.eval()
    cond = adapter(torch.randn(64, 4, 8), torch.rand(64, 3, 16, 16))
    assert bool(cond.reference_kept.all())
    assert float(cond.gate) == pytest.approx(0.5)  # sigmoid(0): the gate starts balanced


# --------------------------------------------------------------------------------------------- sampler
def test_sampler_takes_every_requested_step(monkeypatch):
    from diffusers import FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    model = SatJEPADiff(tiny_rgb_config()).eval()
    calls = {"step": 0, "unet": []}
    real_step = FlowMatchEulerDiscreteScheduler.step

    def counting_step(self, *args, **kwargs):
        calls["step"] += 1
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(FlowMatchEulerDiscreteScheduler, "step", counting_step)
    hook = model.generator.unet.register_forward_pre_hook(
        lambda m, args, kwargs: calls["unet"].append((args[0].clone(), float(args[1].flatten()[0]))), with_kwargs=True)
    x = torch.rand(1, 4, 32, 32)
    outs = {}
    for n in (2, 5):
        calls["step"], calls["unet"] = 0, []
        outs[n] = model.forecast(x, num_inference_steps=n, generator=torch.Generator().manual_seed(0))
        assert calls["step"] == n and len(calls["unet"]) == n
        # the chain starts at sigma = strength 0.35 from the noised current frame, not from pure noise
        assert calls["unet"][0][1] == pytest.approx(350.0)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(calls["unet"][0][0], 0.65 * (x * 2 - 1) + 0.35 * noise, rtol=0, atol=1e-5)
        assert calls["unet"][-1][1] == pytest.approx(350.0 / n, rel=1e-4)  # the last step ends at sigma 0
    hook.remove()
    assert not torch.allclose(outs[2], outs[5])  # the number of steps changes the result


def test_generator_loss_has_flow_and_ssim_terms():
    torch.manual_seed(0)
    gen = FlowGenerator(tiny_generator())
    from tamms.models.jepa_generator import Conditioning

    cond = Conditioning(torch.randn(2, 5, 32), torch.randn(2, 32))
    out = gen.loss(torch.rand(2, 4, 32, 32), cond, torch.Generator().manual_seed(0))
    assert set(out) == {"flow", "ssim", "loss"}
    assert 0 < float(out["ssim"]) <= 0.2  # weight 0.1 times (1 - SSIM) in [0, 2]
    out["loss"].backward()
    assert gen.unet.conv_in.weight.grad is not None


def test_gssim_loss_term_is_one_minus_the_benchmark_gssim_and_trains():
    """generator.gssim_weight adds w (1 - GSSIM(x0_hat, I_t+1)), GSSIM as tamms.metrics computes it."""
    from tamms.metrics.image import gssim_per_image
    from tamms.models.jepa_generator import Conditioning, gssim_loss

    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 32, 32), torch.rand(2, 4, 32, 32)
    expected = 1 - gssim_per_image(a, b).mean()
    torch.testing.assert_close(gssim_loss(a, b), expected)
    assert float(gssim_loss(b, b)) == pytest.approx(0.0, abs=1e-5)
    gen = FlowGenerator(tiny_generator(gssim_weight=0.5))
    cond = Conditioning(torch.randn(2, 5, 32), torch.randn(2, 32))
    out = gen.loss(a, cond, torch.Generator().manual_seed(0))
    assert set(out) == {"flow", "ssim", "gssim", "loss"}
    assert 0 < float(out["gssim"].detach()) <= 0.5
    out["gssim"].backward()
    assert gen.unet.conv_in.weight.grad.abs().sum() > 0  # the term reaches the U-Net


# --------------------------------------------------------------------------------------------- from the last frame
def test_last_frame_source_starts_at_persistence_and_learns_the_change():
    from tamms.models.jepa_generator import Conditioning

    torch.manual_seed(0)
    gen = FlowGenerator(tiny_generator(source="last", train_start_noise=0.0))
    cond = Conditioning(torch.randn(2, 5, 32), torch.randn(2, 32))
    last = torch.rand(2, 4, 32, 32)
    # the output layer starts at zero: untrained, the forecast is the last frame (doing nothing)
    torch.testing.assert_close(gen.sample(cond, last, num_inference_steps=3), last, rtol=0, atol=1e-6)
    # start noise and its draw are used: a noised start moves the output
    noisy = gen.sample(cond, last, num_inference_steps=1, noise=torch.ones_like(last))
    assert torch.equal(noisy, last)  # start_noise 0 in the config: the noise is not added
    gen.config.start_noise = 0.1
    noisy = gen.sample(cond, last, num_inference_steps=1, noise=torch.full_like(last, -1.0))
    torch.testing.assert_close(noisy, (last - 0.05).clamp(0, 1), rtol=0, atol=1e-6)  # 0.1 model space = 0.05 pixels
    # the flow target is (last frame - next frame) in model space: a constant shift is learnt in a few steps
    nxt = (last + 0.2).clamp(0, 1)
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = gen.loss(nxt, cond, torch.Generator().manual_seed(0), start=last)["flow"]
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first
    gen.config.start_noise = 0.0
    err_learnt = (gen.sample(cond, last, num_inference_steps=2) - nxt).abs().mean()
    assert float(err_learnt) < 0.5 * float((last - nxt).abs().mean())  # better than persistence on this toy
    # end_sigma stops the flow early: one step to sigma 0.5 is half the predicted change
    full = gen.sample(cond, last, num_inference_steps=1)
    gen.config.end_sigma = 0.5
    half = gen.sample(cond, last, num_inference_steps=1)
    inside = (full > 0) & (full < 1)  # where the full step was not clipped to [0, 1]
    assert inside.float().mean() > 0.5 and not torch.allclose(half, full)
    torch.testing.assert_close(half[inside], (last + 0.5 * (full - last))[inside], rtol=0, atol=1e-5)
    gen.config.end_sigma = 0.0
    with pytest.raises(InputError, match="last frame"):
        gen.loss(nxt, cond, start=None)


def test_pooled_shift_offsets_each_band_from_the_pooled_vector():
    from tamms.models.jepa_generator import Conditioning

    torch.manual_seed(0)
    gen = FlowGenerator(tiny_generator(source="last", pooled_shift=True))
    cond = Conditioning(torch.randn(1, 5, 32), torch.randn(1, 32))
    last = torch.full((1, 4, 32, 32), 0.5)
    torch.testing.assert_close(gen.sample(cond, last, num_inference_steps=1), last)  # zero at the start
    with torch.no_grad():
        gen.pooled_shift.bias.copy_(torch.tensor([0.2, 0.0, 0.0, -0.2]))  # v = x1 - x0: +0.2 lowers band 0
    out = gen.sample(cond, last, num_inference_steps=1)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.4, 0.5, 0.5, 0.6]))  # 0.2 model space = 0.1 pixels


def test_season_features_condition_the_predictor_and_are_required():
    from tamms.models.jepa import season_features

    torch.manual_seed(0)
    ijepa = IJEPA(tiny_ijepa(use_season=True)).eval()
    x = torch.rand(1, 4, 32, 32)
    gap = torch.tensor([91.0])
    winter, summer = ijepa.predict(x, gap, torch.tensor([0.0])), ijepa.predict(x, gap, torch.tensor([182.6]))
    assert not torch.allclose(winter, summer)  # same gap, other season: another forecast
    f = season_features(torch.tensor([0.0]), torch.tensor([365.25 / 4]))
    torch.testing.assert_close(f, torch.tensor([[0.0, 1.0, 1.0, 0.0]]), rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="date of the current frame"):
        ijepa.predict(x, gap)


def test_zeroing_the_ijepa_prediction_changes_the_forecast():
    torch.manual_seed(0)
    model = SatJEPADiff(tiny_rgb_config()).eval()
    x = torch.rand(1, 4, 32, 32)
    noise = torch.randn(1, 4, 32, 32)
    full = model.forecast(x, torch.tensor([100.0]), num_inference_steps=2, noise=noise)
    zeroed = model.forecast(x, torch.tensor([100.0]), num_inference_steps=2, noise=noise, zero_ijepa=True)
    assert not torch.allclose(full, zeroed)
    assert torch.equal(full, model.forecast(x, torch.tensor([100.0]), num_inference_steps=2, noise=noise))


def test_lora_mode_freezes_the_pretrained_backbone(tmp_path):
    from diffusers import UNet2DConditionModel

    cfg = tiny_generator()
    base = FlowGenerator(cfg).unet
    base.save_pretrained(tmp_path / "unet")
    gen = FlowGenerator(tiny_generator(pretrained_path=str(tmp_path)))
    trainable = [n for n, p in gen.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    assert isinstance(gen.unet, UNet2DConditionModel)
    from tamms.models.jepa_generator import Conditioning

    out = gen.loss(torch.rand(1, 4, 32, 32), Conditioning(torch.randn(1, 3, 32), torch.randn(1, 32)))
    out["loss"].backward()
    assert any(p.grad is not None for n, p in gen.named_parameters() if "lora" in n)


def test_precomputed_target_embeddings_are_pooled_onto_the_patch_grid(tmp_path):
    from tamms.errors import MissingWeightsError
    from tamms.models.jepa import PrecomputedEmbeddingProvider

    field = np.zeros((5, 32, 32), np.float32)
    field[:, :8, :8] = 2.0  # the top-left patch of a 4 x 4 grid
    (tmp_path / "seq").mkdir()
    np.save(tmp_path / "seq" / "1.npy", field)
    provider = PrecomputedEmbeddingProvider(tmp_path, dim=5, grid=4)
    y = provider(torch.zeros(1, 4, 32, 32), ["seq/1"])
    assert y.shape == (1, 16, 5)
    assert torch.all(y[0, 0] == 2.0) and torch.all(y[0, 1:] == 0.0)
    with pytest.raises(MissingWeightsError):
        provider(torch.zeros(1, 4, 32, 32), ["seq/2"])
    # the IJEPA projection head then regresses onto these 5-d targets
    model = IJEPA(tiny_ijepa(target_dim=5), provider)
    out = model.loss(torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), keys=["seq/1"],
                     gen=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and model.proj_head.out_features == 5


def test_caption_loss_on_hand_made_tensors():
    from tamms.models.jepa_caption import caption_loss

    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert float(caption_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    b = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # first row orthogonal: MSE 2/4, (1 - cos) mean 1/2
    assert float(caption_loss(a, b)) == pytest.approx(0.5 + 0.5)

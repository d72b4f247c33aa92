"""Image metrics: PSNR/SSIM against scikit-image, GSSIM against a numpy re-derivation, LPIPS/FID plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tamms.errors import InputError, MetricUnavailableError
from tamms.metrics import image as im
from tamms.metrics._fid import FIDInceptionV3, fid, frechet_distance, statistics_from_sums
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def levir_images():
    root = shared_path("levir_cd")
    names = sorted(p.name for p in (root / "A").iterdir())[:3]

    def load(folder):  # [3, 3, 128, 128]: a 128 px crop keeps the test fast
        arrays = [np.asarray(Image.open(root / folder / n).convert("RGB"), dtype=np.float32)[:128, :128] / 255 for n in names]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    return load("A"), load("B")


def test_psnr_ssim_match_scikit_image(levir_images):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    before, after = levir_images
    noisy = (after + 0.05 * torch.randn(after.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    for pred, target in ((before, after), (noisy, after)):
        want_ssim = [structural_similarity(p.double().numpy(), t.double().numpy(), gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1, channel_axis=0)
                     for p, t in zip(pred, target)]
        want_psnr = [peak_signal_noise_ratio(t.double().numpy(), p.double().numpy(), data_range=1)
                     for p, t in zip(pred, target)]
        assert im.ssim_per_image(pred, target).double().numpy() == pytest.approx(want_ssim, abs=1e-4)
        assert im.psnr_per_image(pred, target).double().numpy() == pytest.approx(want_psnr, abs=1e-4)
        assert float(im.ssim(pred, target)) == pytest.approx(np.mean(want_ssim), abs=1e-4)
        assert float(im.psnr(pred, target)) == pytest.approx(np.mean(want_psnr), abs=1e-4)
    assert float(im.l1(before, after)) == pytest.approx(float(np.mean(np.abs(before.numpy() - after.numpy()))), rel=1e-5)
    assert float(im.mse(before, after)) == pytest.approx(float(np.mean((before.numpy() - after.numpy()) ** 2)), rel=1e-5)


def _gssim_numpy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """The GSSIM of docs/metrics.md with scipy's Sobel and scikit-image's SSIM (torch only for the bilinear resize)."""
    from scipy import ndimage
    from skimage.metrics import structural_similarity

    values = []
    for p, t in zip(pred.double(), target.double()):
        per_scale = []
        for s in (1.0, 0.5, 0.25):
            maps = []
            for x in (p, t):
                grey = x.mean(0, keepdim=True)[None]
                if s != 1.0:
                    grey = torch.nn.functional.interpolate(grey, scale_factor=s, mode="bilinear", align_corners=False)
                g = grey[0, 0].numpy()
                gx, gy = ndimage.sobel(g, axis=1, mode="mirror"), ndimage.sobel(g, axis=0, mode="mirror")
                mag = np.sqrt(gx**2 + gy**2 + 1e-8)
                maps.append((mag - mag.min()) / (mag.max() - mag.min()))
            per_scale.append(structural_similarity(maps[0], maps[1], gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False, data_range=1))
        values.append(np.mean(per_scale))
    return float(np.mean(values))


def test_gssim_definition(levir_images):
    before, after = levir_images
    assert float(im.gssim(before, after)) == pytest.approx(_gssim_numpy(before, after), abs=1e-4)
    assert float(im.gssim(after, after)) == pytest.approx(1.0, abs=1e-6)
    # min-max normalised gradients: an affine change of brightness/contrast barely moves GSSIM ...
    assert float(im.gssim(0.5 * after + 0.2, after)) > 0.999
    # ... while blurring (lost edges) does
    blurred = torch.nn.functional.avg_pool2d(after, 5, stride=1, padding=2, count_include_pad=False)
    assert float(im.gssim(blurred, after)) < 0.9
    # multi-band: GSSIM uses the rgb bands only (a changed NIR band does not matter)
    four = torch.cat([after, torch.rand(3, 1, 128, 128)], 1)
    four_changed = torch.cat([after, torch.rand(3, 1, 128, 128)], 1)
    assert float(im.gssim(four_changed, four, rgb_bands=(0, 1, 2))) == pytest.approx(1.0, abs=1e-6)
    assert im.gssim_scales(32, 32) == [1.0, 0.5] and im.gssim_scales(20, 20) == [1.0]


def test_errors_name_the_problem():
    with pytest.raises(InputError, match="differs from target shape"):
        im.psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(InputError, match="rgb_bands"):
        im.gssim(torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16), rgb_bands=(0, 1, 5))


def test_image_quality_metric_in_batches_equals_functional(levir_images):
    before, after = levir_images
    metric = im.ImageQuality()
    metric.update(before[:2], after[:2])
    metric.update(before[2:], after[2:])
    got = metric.compute()
    want = im.image_scores(before, after, perceptual=False)
    for name in ("PSNR", "SSIM", "GSSIM", "L1", "MSE"):
        assert float(got[name]) == pytest.approx(want[name], abs=1e-6), name


def test_lpips_unavailable_and_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(im, "_LPIPS_NET", None)
    ok, reason = im.lpips_available()
    assert not ok and "needs alexnet-owt-7be5be79.pth in" in reason and str(tmp_path) in reason
    out = im.image_scores(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert out["LPIPS"] is None and "alexnet-owt-7be5be79.pth" in out["notes"]["LPIPS"]
    with pytest.raises(MetricUnavailableError, match="needs alexnet-owt-7be5be79.pth"):
        im.lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    # a file with torchvision's key names loads into our plain-torch AlexNet
    features = im.alexnet_features()
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, ckpt / im.ALEXNET_FILE)
    net = im.LPIPSAlex.from_hub_cache()
    for a, b in zip(net.slices.parameters(), features.parameters()):
        assert torch.equal(a, b)
    x = torch.rand(2, 3, 64, 64)
    assert float(im.lpips(x, x)) == pytest.approx(0.0, abs=1e-7)
    assert float(im.lpips(x, torch.rand(2, 3, 64, 64))) > 0.01


def test_lpips_forward_equals_torchmetrics_lpips(monkeypatch):
    """Same backbone weights in both: our module computes exactly torchmetrics' _LPIPS (net="alex")."""
    import torchmetrics.functional.image.lpips as tm

    features = im.alexnet_features()
    monkeypatch.setattr(tm, "_get_tv_model_features", lambda net, pretrained=False: features)
    reference = tm._LPIPS(pretrained=True, net="alex", pnet_rand=True).eval()
    ours = im.LPIPSAlex(features)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = reference(a, b, normalize=True).flatten()
        got = ours(a, b)
    assert torch.allclose(got, want, atol=1e-6)


def test_frechet_distance_and_statistics():
    rng = np.random.default_rng(0)
    s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    want = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(want, rel=1e-9)
    feats = torch.from_numpy(rng.normal(size=(20, 4)))
    mu, sigma = statistics_from_sums(feats.sum(0), feats.T @ feats, 20)
    assert np.allclose(mu, feats.numpy().mean(0)) and np.allclose(sigma, np.cov(feats.numpy(), rowvar=False))


def test_fid_unavailable_and_metric_class(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from tamms.metrics._fid import FID, fid_available

    ok, reason = fid_available()
    assert not ok and "needs pt_inception-2015-12-05-6726825d.pth in" in reason
    with pytest.raises(MetricUnavailableError, match="pt_inception"):
        FID()
    torch.manual_seed(0)
    net = FIDInceptionV3()  # random weights: checks the plumbing, not the published numbers
    real, fake = torch.rand(6, 3, 32, 32), torch.rand(6, 3, 32, 32) * 0.5
    metric = FID(dims=64, net=net)
    for i in (0, 3):
        metric.update(real[i : i + 3], real=True)
        metric.update(fake[i : i + 3], real=False)
    assert float(metric.compute()) == pytest.approx(fid(real, fake, dims=64, net=net), rel=1e-6)
    assert fid(real, real, dims=64, net=net) == pytest.approx(0.0, abs=1e-6)

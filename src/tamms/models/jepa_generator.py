"""Sat-JEPA-Diff generator: conditioning adapter + rectified-flow U-Net (paper sec. 3, appendix B.1, B.3, B.5).

Read top to bottom:
  1. `AdapterConfig`, `ConditioningAdapter`  IJEPA token MLP, coarse 32x32 patch tokens, pooled projection,
                                             learned sigmoid fusion gate, learnable position embeddings,
                                             reference dropout (p = 0.15 while training).
  2. `FlowGeneratorConfig`, `FlowGenerator`  a `diffusers.UNet2DConditionModel` that predicts the velocity
                                             v = eps - x0 (rectified flow), cross-attending to the adapter
                                             tokens; pooled vector through the U-Net's projection class
                                             embedding. `loss` = flow MSE + 0.1 (1 - SSIM(x0_hat, x0)).
                                             `sample` = `FlowMatchEulerDiscreteScheduler` from the noised
                                             current frame (strength 0.35) over all requested steps.
                                             Frozen pretrained U-Net (+ optional VAE) with LoRA (peft) when
                                             a local folder is given.
  3. `SatJEPADiff`                           IJEPA + adapter + generator, loss L_IJEPA + l_sd L_diff.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamms.errors import ConfigError, InputError, MissingWeightsError
from tamms.models.base import PretrainedModel
from tamms.models.jepa import IJEPA, IJEPAConfig


def mlp(dims: list[int]) -> nn.Sequential:
    """LayerNorm + GELU MLP as the paper's projections (768 -> 1024 -> 1024 -> 4096 there)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.LayerNorm(b), nn.GELU()]
    return nn.Sequential(*layers)


def patchify(images: torch.Tensor, size: int, patch: int) -> torch.Tensor:
    """images [B, C, H, W] -> area-downsampled to size x size -> tokens [B, (size/patch)^2, C*patch*patch]."""
    coarse = F.interpolate(images, size=(size, size), mode="area")  # [B, C, s, s]
    b, c = coarse.shape[:2]
    g = size // patch
    x = coarse.reshape(b, c, g, patch, g, patch)  # [B, C, g, p, g, p]
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * patch * patch)  # [B, g*g, C*p*p]


# --------------------------------------------------------------------------------------------- adapter
@dataclass
class AdapterConfig:
    ijepa_dim: int = 96
    in_channels: int = 3
    hidden_dim: int = 128
    cross_dim: int = 64
    pooled_dim: int = 64
    coarse_size: int = 32
    coarse_patch: int = 4
    max_ijepa_tokens: int = 1024
    reference_dropout: float = 0.15
    use_coarse: bool = True

    @property
    def coarse_tokens(self) -> int:
        return (self.coarse_size // self.coarse_patch) ** 2


@dataclass
class Conditioning:
    tokens: torch.Tensor  # [B, M, cross_dim]: encoder_hidden_states of the U-Net
    pooled: torch.Tensor  # [B, pooled_dim]: global vector (U-Net projection class embedding)
    gate: torch.Tensor | None = None  # alpha in (0, 1)
    reference_kept: torch.Tensor | None = None  # bool [B]: False where reference dropout removed the coarse image
    token_mask: torch.Tensor | None = None  # bool [B, M]: False on padding tokens (caption streams)


class ConditioningAdapter(nn.Module):
    """A_psi(z_hat_{t+1}, I_t^c) -> (h, p).

    h = [alpha * h_semantic ; (1 - alpha) * h_coarse], alpha = sigmoid(learned scalar). The paper writes
    the blend as a sum; its token counts differ (256 IJEPA vs 64 coarse), so the gated streams are
    concatenated along the token axis, which is the same blend seen through cross-attention.
    """

    def __init__(self, config: AdapterConfig):
        super().__init__()
        self.config = config
        c = config
        self.ijepa_pos = nn.Parameter(torch.zeros(1, c.max_ijepa_tokens, c.ijepa_dim))
        self.ijepa_mlp = mlp([c.ijepa_dim, c.hidden_dim, c.hidden_dim, c.cross_dim])
        self.pooled_mlp = mlp([c.ijepa_dim, c.hidden_dim, c.pooled_dim])
        if c.use_coarse:
            patch_dim = c.in_channels * c.coarse_patch ** 2
            self.coarse_pos = nn.Parameter(torch.zeros(1, c.coarse_tokens, patch_dim))
            self.coarse_mlp = mlp([patch_dim, c.hidden_dim, c.hidden_dim, c.cross_dim])
            self.gate_logit = nn.Parameter(torch.zeros(()))  # alpha starts at 0.5 (the paper's equilibrium)
            nn.init.trunc_normal_(self.coarse_pos, std=0.02)
        nn.init.trunc_normal_(self.ijepa_pos, std=0.02)

    def forward(self, ijepa_tokens: torch.Tensor, current: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> Conditioning:
        c = self.config
        n = ijepa_tokens.shape[1]
        if n > c.max_ijepa_tokens:
            raise ConfigError(f"{n} IJEPA tokens exceed max_ijepa_tokens={c.max_ijepa_tokens}; raise it in the adapter config")
        h_sem = self.ijepa_mlp(ijepa_tokens + self.ijepa_pos[:, :n])  # [B, N, cross]
        pooled = self.pooled_mlp(ijepa_tokens.mean(dim=1))  # [B, pooled]
        if not c.use_coarse:
            return Conditioning(h_sem, pooled)
        if current is None:
            raise InputError("the coarse-RGB adapter needs the current frame I_t")
        h_coarse = self.coarse_mlp(patchify(current, c.coarse_size, c.coarse_patch) + self.coarse_pos)  # [B, 64, cross]
        kept = torch.ones(current.shape[0], dtype=torch.bool, device=current.device)
        if self.training and c.reference_dropout > 0:
            u = torch.rand(current.shape[0], generator=generator, device=current.device)
            kept = u >= c.reference_dropout
            h_coarse = h_coarse * kept[:, None, None].to(h_coarse.dtype)  # dropped reference -> zero tokens
        alpha = torch.sigmoid(self.gate_logit)
        tokens = torch.cat([alpha * h_sem, (1 - alpha) * h_coarse], dim=1)  # [B, N + 64, cross]
        return Conditioning(tokens, pooled, alpha, kept)


# --------------------------------------------------------------------------------------------- generator
@dataclass
class FlowGeneratorConfig:
    image_size: int = 64
    in_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    cross_dim: int = 64
    pooled_dim: int = 64
    ssim_weight: float = 0.1
    # weight of 1 - GSSIM(x0_hat, I_{t+1}) (SSIM of Sobel gradient maps, the benchmark's metric): our extension.
    # A regression to the mean change blurs the edges of the scene; this term keeps them (0 = the paper's loss)
    gssim_weight: float = 0.0
    # where the chain starts. "noise": the paper's flow from Gaussian noise (SDEdit from the noised current
    # frame at `strength`, or pure noise for Zero-RGB). "last": a rectified flow (bridge) from the last frame
    # plus a little noise (sigma 1) to the next frame (sigma 0): the U-Net learns the change, its output layer
    # starts at zero, so the untrained model returns the last frame (persistence) and training can only add.
    source: str = "noise"
    start_noise: float = 0.0  # "last": std of the noise added to the last frame at inference (model space, [-1, 1])
    # "last": the sampler stops at this sigma instead of 0: the forecast is that far back on the straight path
    # towards the last frame (the predicted change scaled by 1 - end_sigma; chosen on validation: a one-frame
    # model's change estimate is noisy, and shrinking it can score better)
    end_sigma: float = 0.0
    train_start_noise: float = 0.1  # "last": training start noise std ~ U(0, this) per sample
    # a per-band velocity offset from the pooled conditioning (zero at the start): the change of the whole scene's
    # colour with season and light, learnt directly instead of through every U-Net block
    pooled_shift: bool = False
    # training sigmas ~ U(sigma_range); inference starts at `strength` ("noise" source)
    sigma_range: tuple[float, float] = (0.0, 1.0)
    strength: float = 0.35
    num_inference_steps: int = 20
    num_train_timesteps: int = 1000
    # frozen backbone + LoRA (appendix B.1) when a local pretrained folder is given
    pretrained_path: str | None = None
    lora_rank: int = 8
    lora_alpha: int = 16

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(self.block_out_channels)
        self.down_block_types = tuple(self.down_block_types)
        self.up_block_types = tuple(self.up_block_types)
        self.sigma_range = tuple(float(v) for v in self.sigma_range)
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if self.source not in ("noise", "last"):
            raise ConfigError(f"generator.source must be 'noise' or 'last', got {self.source!r}")
        if self.start_noise < 0 or self.train_start_noise < 0:
            raise ConfigError("generator.start_noise and train_start_noise must be >= 0")
        if not 0.0 <= self.end_sigma < 1.0:
            raise ConfigError(f"generator.end_sigma must be in [0, 1), got {self.end_sigma}")


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (11x11 Gaussian, sigma 1.5, data range 1), differentiable (torchmetrics functional)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1.0 - structural_similarity_index_measure(pred.clamp(0, 1), target.clamp(0, 1), data_range=1.0)


def gssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GSSIM (the benchmark's gradient SSIM on the mean of the first three bands), differentiable."""
    from tamms.metrics.image import gssim_per_image

    if pred.shape[1] < 3:  # one or two bands: their mean as the grey image
        pred, target = pred.mean(1, keepdim=True), target.mean(1, keepdim=True)
    return 1.0 - gssim_per_image(pred.clamp(0, 1), target.clamp(0, 1)).mean()


class FlowGenerator(nn.Module):
    """Rectified-flow velocity model: v_theta(x_sigma, sigma, c) with x_sigma = (1 - sigma) x0 + sigma eps."""

    def __init__(self, config: FlowGeneratorConfig):
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = config
        self.vae = None
        if config.pretrained_path:
            self.unet = self._load_pretrained(Path(config.pretrained_path))
        else:
            self.unet = UNet2DConditionModel(
                sample_size=config.image_size, in_channels=config.in_channels, out_channels=config.in_channels,
                block_out_channels=config.block_out_channels, down_block_types=config.down_block_types,
                up_block_types=config.up_block_types, layers_per_block=config.layers_per_block,
                cross_attention_dim=config.cross_dim, attention_head_dim=config.attention_head_dim,
                norm_num_groups=config.norm_num_groups, class_embed_type="projection",
                projection_class_embeddings_input_dim=config.pooled_dim,
            )
            if config.source == "last":  # zero velocity at the start: the untrained model is persistence
                nn.init.zeros_(self.unet.conv_out.weight)
                nn.init.zeros_(self.unet.conv_out.bias)
        self.pooled_shift = None
        if config.pooled_shift:
            self.pooled_shift = nn.Linear(config.pooled_dim, config.in_channels)
            nn.init.zeros_(self.pooled_shift.weight)
            nn.init.zeros_(self.pooled_shift.bias)

    # --- pretrained backbone + LoRA ---------------------------------------------------------------
    def _load_pretrained(self, root: Path):
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from peft import LoraConfig

        if not root.is_dir():
            raise MissingWeightsError(f"pretrained backbone folder {root} does not exist: give a local diffusers folder "
                                      "(with unet/ and optionally vae/, or a U-Net folder itself)")
        unet_dir = root / "unet" if (root / "unet").is_dir() else root
        unet = UNet2DConditionModel.from_pretrained(unet_dir)
        if unet.config.cross_attention_dim != self.config.cross_dim:
            raise ConfigError(f"the pretrained U-Net cross-attends to {unet.config.cross_attention_dim}-d tokens; "
                              f"set cross_dim={unet.config.cross_attention_dim} in the generator and adapter configs")
        if (root / "vae").is_dir():
            self.vae = AutoencoderKL.from_pretrained(root / "vae")
            self.vae.requires_grad_(False)
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha,
                                    init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        self.pooled_to_class = None
        if unet.class_embedding is None:
            # a pretrained U-Net without a class embedding gets the pooled vector through its time embedding
            self.pooled_to_class = nn.Linear(self.config.pooled_dim, unet.time_embedding.linear_1.out_features)
            nn.init.zeros_(self.pooled_to_class.weight)
            nn.init.zeros_(self.pooled_to_class.bias)
        return unet

    # --- pixel <-> model space -------------------------------------------------------------------
    def to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2.0 - 1.0
        if self.vae is None:
            return x
        sf = self.vae.config.scaling_factor
        return self.vae.encode(x).latent_dist.mode() * sf

    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond) -> torch.Tensor:
        t = sigma * self.config.num_train_timesteps  # timestep = sigma * 1000 (the scheduler's convention)
        if getattr(self, "pooled_to_class", None) is not None:
            v = self._unet_with_extra_time(x, t, cond, self.pooled_to_class(cond.pooled))
        else:
            v = self.unet(x, t, encoder_hidden_states=cond.tokens, class_labels=cond.pooled,
                          encoder_attention_mask=cond.token_mask, return_dict=False)[0]
        if self.pooled_shift is not None:
            v = v + self.pooled_shift(cond.pooled)[:, :, None, None]  # [B, C, 1, 1]: one offset per band
        return v

    def _unet_with_extra_time(self, x, t, cond, emb):
        # add the pooled embedding to the time embedding through a forward hook on the time MLP
        handle = self.unet.time_embedding.register_forward_hook(lambda m, i, o: o + emb.to(o.dtype))
        try:
            return self.unet(x, t, encoder_hidden_states=cond.tokens, encoder_attention_mask=cond.token_mask,
                             return_dict=False)[0]
        finally:
            handle.remove()

    # --- training ----------------------------------------------------------------------------------
    def start_point(self, last: torch.Tensor, noise_std: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
        """"last" source: x_1 = the last frame in model space + noise_std * noise."""
        std = noise_std if isinstance(noise_std, float) else noise_std[:, None, None, None]
        return self.to_model_space(last) + std * noise

    def loss(self, target: torch.Tensor, cond, generator: torch.Generator | None = None,
             start: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L_diff = ||v_theta(x_sigma, sigma, c) - (x_1 - x0)||^2 + w_ssim (1 - SSIM(x0_hat, I_{t+1})).

        x_1 is Gaussian noise ("noise" source) or the lightly noised last frame `start` ("last" source).
        """
        x0 = self.to_model_space(target)
        b = x0.shape[0]
        lo, hi = self.config.sigma_range
        sigma = lo + (hi - lo) * torch.rand(b, generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        if self.config.source == "last":
            if start is None:
                raise InputError("a generator with source 'last' needs the last frame to start from")
            std = self.config.train_start_noise * torch.rand(b, generator=generator, device=x0.device)
            eps = self.start_point(start, std, eps)
        s = sigma[:, None, None, None]
        x_sigma = (1.0 - s) * x0 + s * eps
        v = self.velocity(x_sigma, sigma, cond)
        flow = F.mse_loss(v, eps - x0)
        out = {"flow": flow}
        x0_hat = x_sigma - s * v  # one Euler jump to sigma = 0
        if self.config.ssim_weight > 0:
            out["ssim"] = self.config.ssim_weight * ssim_loss(self.to_images(x0_hat), target)
        if self.config.gssim_weight > 0:
            out["gssim"] = self.config.gssim_weight * gssim_loss(self.to_images(x0_hat), target)
        out["loss"] = sum(out.values())
        return out

    # --- sampling ----------------------------------------------------------------------------------
    def make_scheduler(self):
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.config.num_train_timesteps, shift=1.0)

    @torch.no_grad()
    def sample(self, cond, start: torch.Tensor | None, shape: tuple[int, ...] | None = None,
               num_inference_steps: int | None = None, strength: float | None = None,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate dx/dsigma = v from sigma = strength down to 0 in exactly `num_inference_steps` Euler steps.

        `start` (images in [0, 1]) is noised to sigma = strength (SDEdit-style); with `start=None` the chain
        starts from pure noise at sigma = 1 (the Zero-RGB variant). `noise` (model-space shape) replaces the
        generator's draw of the starting noise. Returns images in [0, 1].
        """
        n = int(num_inference_steps or self.config.num_inference_steps)
        if n < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {n}")
        if self.config.source == "last":
            return self._sample_bridge(cond, start, n, generator, noise)
        strength = float(self.config.strength if strength is None else strength)
        if start is None:
            strength = 1.0
        scheduler = self.make_scheduler()
        # n sigmas from `strength` down (the scheduler appends the terminal 0): every step is taken
        scheduler.set_timesteps(sigmas=np.linspace(strength, 0.0, n + 1)[:-1].tolist())
        if start is None:
            if shape is None:
                raise InputError("sampling from pure noise needs the output shape")
            x = noise.clone() if noise is not None else torch.randn(shape, generator=generator)
        else:
            x0 = self.to_model_space(start)
            if noise is None:
                noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            x = scheduler.scale_noise(x0, scheduler.timesteps[:1].expand(x0.shape[0]), noise)
        for t in scheduler.timesteps:
            sigma = (t / self.config.num_train_timesteps).expand(x.shape[0])
            v = self.velocity(x, sigma, cond)
            x = scheduler.step(v, t, x, return_dict=False)[0]
        return self.to_images(x)

    def _sample_bridge(self, cond, start: torch.Tensor | None, n: int, generator: torch.Generator | None,
                       noise: torch.Tensor | None) -> torch.Tensor:
        """"last" source: Euler from sigma 1 (the lightly noised last frame) to `end_sigma` (0) in `n` equal steps."""
        if start is None:
            raise InputError("a generator with source 'last' needs the last frame to start from")
        x_last = self.to_model_space(start)
        if noise is None:
            noise = torch.randn(x_last.shape, generator=generator, dtype=x_last.dtype)
        x = x_last + self.config.start_noise * noise.to(x_last.device)
        sigmas = torch.linspace(1.0, float(self.config.end_sigma), n + 1, device=x.device)
        for s_now, s_next in zip(sigmas[:-1], sigmas[1:]):
            v = self.velocity(x, s_now.expand(x.shape[0]), cond)
            x = x + (s_next - s_now) * v  # dx/dsigma = v
        return self.to_images(x)


# --------------------------------------------------------------------------------------------- full model
@dataclass
class SatJEPADiffConfig:
    ijepa: IJEPAConfig = field(default_factory=IJEPAConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    generator: FlowGeneratorConfig = field(default_factory=FlowGeneratorConfig)
    sd_weight: float = 1.0  # lambda in L = L_IJEPA + lambda L_diff

    @classmethod
    def from_dict(cls, d: dict) -> "SatJEPADiffConfig":
        return cls(ijepa=IJEPAConfig(**d.get("ijepa", {})), adapter=AdapterConfig(**d.get("adapter", {})),
                   generator=FlowGeneratorConfig(**d.get("generator", {})), sd_weight=float(d.get("sd_weight", 1.0)))

    def to_dict(self) -> dict:
        return asdict(self)


def check_consistent(ijepa: IJEPAConfig, adapter: AdapterConfig, generator: FlowGeneratorConfig) -> None:
    if not (ijepa.in_channels == adapter.in_channels == generator.in_channels):
        raise ConfigError("ijepa, adapter and generator must agree on in_channels (the number of bands)")
    if ijepa.embed_dim != adapter.ijepa_dim:
        raise ConfigError(f"adapter.ijepa_dim ({adapter.ijepa_dim}) must equal ijepa.embed_dim ({ijepa.embed_dim})")
    if adapter.cross_dim != generator.cross_dim or adapter.pooled_dim != generator.pooled_dim:
        raise ConfigError("adapter and generator must agree on cross_dim and pooled_dim")
    if ijepa.image_size != generator.image_size:
        raise ConfigError("ijepa.image_size and generator.image_size must be equal")


class SatJEPADiff(PretrainedModel):
    """The coarse-RGB Sat-JEPA-Diff: I_t -> IJEPA forecast z_hat_{t+1} -> adapter(z_hat, I_t^c) -> flow U-Net."""

    variant = "rgb"
    model_type = "satjepa-diff"
    config_class = SatJEPADiffConfig
    train_command = "tamms train jepa --config src/tamms/configs/jepa.yaml"

    def __init__(self, config: SatJEPADiffConfig, target_provider=None):
        super().__init__()
        check_consistent(config.ijepa, config.adapter, config.generator)
        self.config = config
        self.ijepa = IJEPA(config.ijepa, target_provider)
        self.adapter = ConditioningAdapter(config.adapter)
        self.generator = FlowGenerator(config.generator)

    def condition(self, current: torch.Tensor, gap_days: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, zero_ijepa: bool = False,
                  current_days: torch.Tensor | None = None) -> Conditioning:
        z_hat = self.ijepa.predict(current, gap_days, current_days)  # [B, N, D]
        if zero_ijepa:  # ablation: the generator gets no IJEPA forecast (and so no time gap)
            z_hat = torch.zeros_like(z_hat)
        return self.adapter(z_hat, current, generator)

    def loss(self, current: torch.Tensor, future: torch.Tensor, gap_days: torch.Tensor | None = None,
             keys=None, generator: torch.Generator | None = None,
             current_days: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        jepa = self.ijepa.loss(current, future, gap_days, keys, generator, current_days)
        cond = self.condition(current, gap_days, generator, current_days=current_days)
        diff = self.generator.loss(future, cond, generator, start=current)
        out = {f"ijepa/{k}": v for k, v in jepa.items()} | {f"diff/{k}": v for k, v in diff.items()}
        out["loss"] = jepa["loss"] + self.config.sd_weight * diff["loss"]
        return out

    @torch.no_grad()
    def forecast(self, current: torch.Tensor, gap_days: torch.Tensor | None = None, num_inference_steps: int | None = None,
                 strength: float | None = None, generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None, zero_ijepa: bool = False, current_days: torch.Tensor | None = None,
                 **_: object) -> torch.Tensor:
        """I_t [B, C, H, W] in [0, 1] dated `current_days` [B] -> I_hat_{t+1} [B, C, H, W] `gap_days` later.
        `zero_ijepa`: the ablation without the IJEPA forecast."""
        cond = self.condition(current, gap_days, zero_ijepa=zero_ijepa, current_days=current_days)
        return self.generator.sample(cond, current, num_inference_steps=num_inference_steps, strength=strength,
                                     generator=generator, noise=noise)

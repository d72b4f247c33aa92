"""The denoiser: a `diffusers.UNet2DConditionModel` in pixel space, and its encoder half.

TAMMs (sec. 3.2, A.8) adapts the DiffusionSat U-Net, frozen, and steers it with the Enhanced Control
Module. Here the default is a small pixel-space U-Net (64x64 RGB, channels (32, 64, 64), cross-attention
only at the lowest resolution, ~1.45 M parameters) pretrained on single frames; any local diffusers
U-Net folder (a DiffusionSat checkpoint, say) loads the same way through `load_unet`.

`encode_unet` runs the U-Net's down path and mid block only, returning the features the ControlNet
residuals are added to. The Enhanced Control Module reads these features for every history frame
(eq. 5 "encoder features of the history frames") and for the current noisy sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tamms.errors import ConfigError, MissingWeightsError


@dataclass
class UNetConfig:
    """A small pixel-space `UNet2DConditionModel` (the project default)."""

    sample_size: int = 64
    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    # cross-attention only at the lowest resolution: attention at 64x64 costs more than the rest together
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    cross_attention_dim: int = 64
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    extra: dict = field(default_factory=dict)

    def to_diffusers(self) -> dict:
        cfg = asdict(self)
        extra = cfg.pop("extra")
        for key in ("block_out_channels", "down_block_types", "up_block_types"):
            cfg[key] = tuple(cfg[key])
        cfg.update(extra)
        return cfg


def build_unet(config: UNetConfig | dict | None = None):
    """A freshly initialised `UNet2DConditionModel` from a `UNetConfig` (or its dict)."""
    from diffusers import UNet2DConditionModel

    if config is None:
        config = UNetConfig()
    elif isinstance(config, dict):
        try:
            config = UNetConfig(**config)
        except TypeError as exc:
            raise ConfigError(f"bad U-Net config ({exc}); valid keys are {list(UNetConfig.__dataclass_fields__)}") from None
    if len(config.down_block_types) != len(config.block_out_channels):
        raise ConfigError("down_block_types and block_out_channels must have the same length")
    return UNet2DConditionModel(**config.to_diffusers())


def load_unet(folder: str | Path):
    """Any local diffusers U-Net folder (`config.json` + weights), e.g. `<pipeline>/unet`."""
    from diffusers import UNet2DConditionModel

    folder = Path(folder)
    if (folder / "unet" / "config.json").exists():
        folder = folder / "unet"
    if not (folder / "config.json").exists():
        raise MissingWeightsError(
            f"no diffusers U-Net in {folder} (config.json missing): give the folder a diffusers "
            "U-Net was saved to with save_pretrained, or its parent pipeline folder holding unet/"
        )
    return UNet2DConditionModel.from_pretrained(folder, local_files_only=True)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def decoder_parameters(unet) -> list[torch.nn.Parameter]:
    """The parameters after the mid block (up blocks, output norm and conv): training only these leaves every
    encoder feature, which an ECM reads, exactly as it was."""
    return [p for m in (unet.up_blocks, unet.conv_norm_out, unet.conv_out) if m is not None for p in m.parameters()]


def residual_channels(unet) -> tuple[list[int], int]:
    """Channels of each `down_block_res_samples` entry (in order) and of the mid block output."""
    cfg = unet.config
    chans = [cfg.block_out_channels[0]]  # conv_in output
    for i, block in enumerate(unet.down_blocks):
        out_c = cfg.block_out_channels[i]
        chans += [out_c] * len(block.resnets)
        if block.downsamplers is not None:
            chans.append(out_c)
    return chans, cfg.block_out_channels[-1]


def residual_resolutions(unet) -> tuple[list[int], int]:
    """Resolution index (0 = full, 1 = half, ...) of each `down_block_res_samples` entry and of the mid block."""
    res = [0]  # conv_in output
    level = 0
    for block in unet.down_blocks:
        res += [level] * len(block.resnets)
        if block.downsamplers is not None:
            level += 1
            res.append(level)
    return res, level


def encode_unet(unet, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The U-Net's down path for `sample` [N, C, H, W]: `(down_block_res_samples, mid_output, temb, mask)`.

    Mirrors the first half of `UNet2DConditionModel.forward` (time embedding, conv_in, down blocks,
    mid block) for U-Nets without class/added conditioning, which is what the ECM needs.
    `decode_unet` is the second half; together they equal `unet(...)` (a test checks it).
    """
    if unet.config.class_embed_type is not None or unet.config.addition_embed_type is not None:
        raise ConfigError("encode_unet supports U-Nets without class or added embeddings; "
                          "use a plain text-conditioned UNet2DConditionModel")
    if timestep.ndim == 0:
        timestep = timestep.expand(sample.shape[0])
    t_emb = unet.time_proj(timestep).to(dtype=sample.dtype)  # [N, C_t]
    emb = unet.time_embedding(t_emb)  # [N, C_emb]
    if encoder_attention_mask is not None:
        # diffusers turns a keep-mask into an additive bias inside forward(); do the same here
        encoder_attention_mask = (1 - encoder_attention_mask.to(sample.dtype)) * -10000.0
        encoder_attention_mask = encoder_attention_mask.unsqueeze(1)  # [N, 1, L]
    h = unet.conv_in(sample)
    res_samples: list[torch.Tensor] = [h]
    for block in unet.down_blocks:
        if getattr(block, "has_cross_attention", False):
            h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=encoder_hidden_states,
                           encoder_attention_mask=encoder_attention_mask)
        else:
            h, res = block(hidden_states=h, temb=emb)
        res_samples += list(res)
    if unet.mid_block is not None:
        if getattr(unet.mid_block, "has_cross_attention", False):
            h = unet.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_mask=encoder_attention_mask)
        else:
            h = unet.mid_block(h, emb)
    return res_samples, h, emb, encoder_attention_mask


def decode_unet(unet, res_samples: list[torch.Tensor], mid: torch.Tensor, emb: torch.Tensor,
                encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None = None,
                down_residuals: tuple[torch.Tensor, ...] | None = None,
                mid_residual: torch.Tensor | None = None) -> torch.Tensor:
    """The up path of `UNet2DConditionModel.forward`, with ControlNet residuals added to the skips."""
    if down_residuals is not None:
        res_samples = [r + d for r, d in zip(res_samples, down_residuals)]
    sample = mid if mid_residual is None else mid + mid_residual
    res_samples = list(res_samples)
    for i, block in enumerate(unet.up_blocks):
        is_final = i == len(unet.up_blocks) - 1
        skips = tuple(res_samples[-len(block.resnets):])
        res_samples = res_samples[:-len(block.resnets)]
        upsample_size = None if is_final else res_samples[-1].shape[2:]
        if getattr(block, "has_cross_attention", False):
            sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=skips,
                           encoder_hidden_states=encoder_hidden_states, upsample_size=upsample_size,
                           encoder_attention_mask=encoder_attention_mask)
        else:
            sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=skips, upsample_size=upsample_size)
    if unet.conv_norm_out is not None:
        sample = unet.conv_act(unet.conv_norm_out(sample))
    return unet.conv_out(sample)

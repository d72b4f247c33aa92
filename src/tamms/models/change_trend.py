"""Change-trend forecaster: where the observed change goes next, and what it turns the land into.

Not a model of the papers. It exists because the forecasters that regress the next frame (SimVP, ConvLSTM, and
the TAMMs diffusion model with its x0 objective) average over uncertain futures: the change they imply is too
faint for a detector to see, and they never learn *where* the next change falls (issue 15). This network is
told both, and asked both:

- input: the history frames, the change mask of each consecutive pair of them as a change detector sees it
  (computed from the frames by the caller, `tamms.pipelines.forecast.detected_changes`, with the frozen detector
  the config names), and each frame's gap to the target date (log(1 + gap / 1 year)) as an extra plane;
- output: the probability that each pixel changes between the last frame and the target date, and the content
  of the changed pixels; the forecast is the last frame with the pixels predicted to change replaced by that
  content (`composite`).

Trained on the synthetic world, whose exact future change mask supervises the probability (BCE + Dice) and
marks the pixels whose content is learnt (L1); the composite is also held to the target (L1). The trunk is
SimVP's (per-frame encoder, an Inception translator over stacked time at 1/4 resolution, decoder), so its
receptive field spans a 64 px frame: a front's next position is read from where it was at the history dates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tamms.errors import ConfigError
from tamms.models.baselines.forecast import SimVP, gap_planes


@dataclass
class ChangeTrendConfig:
    channels: int = 3
    history: int = 3
    hidden: int = 32  # per-frame encoder width
    translator: int = 128  # width of the translator over T*hidden channels
    translator_blocks: int = 3
    detector: str = "siamese"  # the change detector whose history masks are inputs (shipped name or folder)
    threshold: float = 0.5  # a pixel takes the predicted content when its change probability is above this
    pos_weight: float = 3.0  # BCE weight of the changed pixels (few pixels change)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"change-trend threshold {self.threshold} must be in (0, 1)")
        if self.history < 2:
            raise ConfigError("change-trend reads the change between history frames: history must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChangeTrendOutput:
    change_logits: torch.Tensor  # [B, H, W], future change between the last frame and the target date
    content: torch.Tensor  # [B, C, H, W] in [0, 1], what the changed pixels become


class ChangeTrendForecaster(SimVP):
    """SimVP's trunk with one more plane per frame (the detected change into it) and 1 + C outputs."""

    model_type = "change-trend"
    config_class = ChangeTrendConfig
    train_command = "tamms train forecast --config src/tamms/configs/forecast_change_trend.yaml"

    def __init__(self, cfg: ChangeTrendConfig):
        super().__init__(cfg, in_planes=2, out_channels=1 + cfg.channels)  # change logit + content

    def predict(self, history: torch.Tensor, history_changes: torch.Tensor, history_days: torch.Tensor,
                target_days: torch.Tensor) -> ChangeTrendOutput:
        """history [B, T, C, H, W] in [0, 1]; history_changes [B, T-1, H, W]: the detected change mask of each
        consecutive pair of history frames (`tamms.pipelines.forecast.detected_changes`)."""
        h, w = history.shape[-2:]
        into = torch.cat([torch.zeros_like(history_changes[:, :1]), history_changes], dim=1).to(history.dtype)
        x = torch.cat([history, into.unsqueeze(2), gap_planes(history_days, target_days, (h, w))],
                      dim=2)  # [B, T, C+2, H, W]: each frame with the change into it (none for the first)
        out = self.trunk(x)  # [B, 1+C, H, W]
        return ChangeTrendOutput(out[:, 0], torch.sigmoid(out[:, 1:]))

    def forward(self, history: torch.Tensor, history_changes: torch.Tensor, history_days: torch.Tensor,
                target_days: torch.Tensor) -> torch.Tensor:
        """The forecast [B, C, H, W]: the last frame, with the pixels predicted to change replaced."""
        out = self.predict(history, history_changes, history_days, target_days)
        changed = (torch.sigmoid(out.change_logits) > self.cfg.threshold).unsqueeze(1).to(history.dtype)
        return (1 - changed) * history[:, -1] + changed * out.content

    def loss_terms(self, history: torch.Tensor, history_changes: torch.Tensor, history_days: torch.Tensor,
                   target_days: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """BCE + Dice of the change probability against the true future change mask, L1 of the content on the
        changed pixels, L1 of the soft composite against the target frame."""
        out = self.predict(history, history_changes, history_days, target_days)
        mask = target_mask.to(out.change_logits.dtype)  # [B, H, W]
        prob = torch.sigmoid(out.change_logits)
        bce = F.binary_cross_entropy_with_logits(out.change_logits, mask,
                                                 pos_weight=torch.tensor(self.cfg.pos_weight, device=mask.device))
        dice = 1 - (2 * (prob * mask).sum() + 1) / (prob.sum() + mask.sum() + 1)
        content = ((out.content - target).abs().mean(1) * mask).sum() / (mask.sum() + 1)
        composite = (1 - prob[:, None]) * history[:, -1] + prob[:, None] * out.content
        image = F.l1_loss(composite, target)
        return {"loss": bce + dice + content + image, "bce": bce, "dice": dice, "content_l1": content,
                "image_l1": image}

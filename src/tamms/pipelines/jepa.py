"""Sat-JEPA-Diff pipelines: forecast, autoregressive rollout (paper appendix C), benchmark rows, rollout figure.

`SatJEPAPipeline.from_pretrained(folder | None, variant="rgb"|"caption")` loads a folder saved by the model's
`save_pretrained` (`config.json` + `model.safetensors` + `tokenizer.json` for the caption variant); without a folder
it loads the shipped weights
(`src/tamms/weights/satjepa/`, `.../satjepa-caption/`). `__call__` returns the forecasting pipeline's
`ForecastOutput(images [B, K, C, H, W], mean, spread, target_days)`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tamms.errors import ConfigError, InputError, MissingWeightsError
from tamms.utils import atomic_output, default_weights

from tamms.pipelines.outputs import ForecastOutput


VARIANTS = {"rgb": "satjepa", "caption": "satjepa-caption"}


# --------------------------------------------------------------------------------------------- pipeline
class SatJEPAPipeline:
    """Forecast the next image of each sequence with Sat-JEPA-Diff (coarse-RGB or caption-guided)."""

    def __init__(self, model, describer=None, detector=None):
        self.model = model.eval()
        self.describer = describer
        self.detector = detector
        self._captioner = None

    @property
    def variant(self) -> str:
        return self.model.variant

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, variant: str = "rgb", describer=None,
                        detector=None) -> "SatJEPAPipeline":
        """A folder written by `save_pretrained`, else the shipped weights of `variant` ("rgb" or "caption").
        `describer` / `detector`: what captions the history of the caption variant (default: the shipped ones)."""
        from tamms.models import load_pretrained

        if folder is None:
            if variant not in VARIANTS:
                raise ConfigError(f"unknown variant {variant!r}: use 'rgb' or 'caption'")
            folder = default_weights(VARIANTS[variant])
        model = load_pretrained(folder)
        if getattr(model, "variant", None) not in VARIANTS:
            raise ConfigError(f"{folder} holds a {model.model_type} model, not Sat-JEPA-Diff: give a Sat-JEPA-Diff folder")
        return cls(model, describer, detector)

    def captioner(self):
        """The caption variant's `HistoryCaptioner`: the describer and change detector (shipped ones by default)."""
        if self._captioner is None:
            from tamms.models.jepa_caption import HistoryCaptioner

            describer, detector = self.describer, self.detector
            try:
                if describer is None:
                    from tamms.pipelines.describe import DescribePipeline

                    describer = DescribePipeline.from_pretrained(default_weights("describer"))
                if detector is None:
                    from tamms.pipelines.detect import detector_from_pretrained

                    detector = detector_from_pretrained("siamese")
            except (OSError, MissingWeightsError) as exc:
                raise MissingWeightsError(
                    f"satjepa-caption captions the history with the describer and the change detector and one could "
                    f"not be loaded ({exc}): train them (`tamms train describe`, `tamms train detect`) or pass "
                    "describer= and detector=") from None
            self._captioner = HistoryCaptioner(describer, detector)
        return self._captioner

    def history_captions(self, history: torch.Tensor, history_days: torch.Tensor):
        """Captions of the caption variant from the last two history frames [B, T, C, H, W] (RGB = first 3 bands)."""
        return self.captioner()(history[:, -2:, :3], history_days[:, -2:])

    def save_pretrained(self, folder: str | Path, overwrite: bool = False, metadata: dict | None = None) -> Path:
        return self.model.save_pretrained(folder, overwrite=overwrite, metadata=metadata)

    # --- input checks --------------------------------------------------------------------------------
    def _frame(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(frame), dtype=torch.float32)
        c = self.model.config.ijepa.in_channels
        if x.ndim != 3 or x.shape[0] != c:
            raise InputError(f"this Sat-JEPA-Diff model takes {c}-band frames [C, H, W], got shape {tuple(x.shape)}; "
                             f"select {c} bands (e.g. --bands) or train a model on your band count")
        if not torch.isfinite(x).all():
            raise InputError("the input frame holds NaN or inf values: fill or mask them before forecasting")
        return x.clamp(0, 1)

    def bands(self, seq: Any) -> list[int]:
        from tamms.data.transforms import model_band_indices

        return model_band_indices(seq, self.model.config.ijepa.in_channels)

    def _to_model_size(self, x: torch.Tensor) -> torch.Tensor:
        s = self.model.config.ijepa.image_size
        return x if x.shape[-2:] == (s, s) else F.interpolate(x, size=(s, s), mode="area")

    def step(self, frames: torch.Tensor, gap_days: torch.Tensor, captions=None, num_inference_steps: int | None = None,
             generator: torch.Generator | None = None, zero_ijepa: bool = False,
             current_days: torch.Tensor | None = None) -> torch.Tensor:
        """One forecast step on a batch [B, C, H, W] dated `current_days` [B] (any size; the model runs at its own
        size and is resized back). `num_inference_steps` None: the model's (chosen on validation); `zero_ijepa`:
        the ablation."""
        size = frames.shape[-2:]
        x = self._to_model_size(frames)
        y = self.model.forecast(x, gap_days, captions=captions, num_inference_steps=num_inference_steps, generator=generator,
                                zero_ijepa=zero_ijepa, current_days=current_days)
        return y if y.shape[-2:] == size else F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False).clamp(0, 1)

    def _captions(self, sequences: Sequence[Any]):
        """Captions from each sequence's last two frames (never from its text or land cover)."""
        history = torch.stack([torch.as_tensor(np.asarray(s.frames[-2:])[:, self.rgb_bands(s)], dtype=torch.float32)
                               for s in sequences]).clamp(0, 1)  # [B, T<=2, 3, H, W]
        days = torch.tensor([[float(d) for d in s.days[-2:]] for s in sequences], dtype=torch.float64)
        return self.captioner()(history, days)

    @staticmethod
    def rgb_bands(seq: Any) -> list[int]:
        from tamms.data.bands import select_bands

        names = list(getattr(seq, "band_names", None) or [])
        if names and all(b in names for b in ("red", "green", "blue")):
            return select_bands(names, ["red", "green", "blue"], "the caption describer")
        return list(seq.rgb_bands or (0, 1, 2))

    @torch.no_grad()
    def __call__(self, sequences: Any, target_days: Sequence[float] | None = None, horizon_days: float | None = None,
                 num_samples: int = 1, num_inference_steps: int | None = None, seed: int = 0,
                 zero_ijepa: bool = False) -> ForecastOutput:
        """1. check inputs  2. pick target dates  3. K samples per sequence  4. mean and spread."""
        # 1. inputs
        seqs = [sequences] if hasattr(sequences, "frames") else list(sequences)
        if not seqs:
            raise InputError("no sequences to forecast: give at least one dated sequence")
        if num_samples < 1 or (num_inference_steps is not None and num_inference_steps < 1):
            raise InputError("num_samples and num_inference_steps must be >= 1")
        sizes = {s.size for s in seqs}
        if len(sizes) > 1:
            raise InputError(f"sequences of different sizes {sorted(sizes)} in one call: forecast them separately")
        current = torch.stack([self._frame(s.frames[-1][self.bands(s)]) for s in seqs])  # [B, C, H, W]
        last_days = torch.tensor([float(s.days[-1]) for s in seqs], dtype=torch.float64)
        # 2. target dates: given, else the sequence's future date, else last gap (or a year) ahead
        if target_days is not None:
            tgt = torch.as_tensor(list(target_days), dtype=torch.float64)
        else:
            vals = []
            for s in seqs:
                if horizon_days is not None:
                    vals.append(float(s.days[-1]) + float(horizon_days))
                elif s.future_date is not None:
                    vals.append(float(s.days[-1]) + float((s.future_date - s.dates[-1]).days))
                else:
                    vals.append(float(s.days[-1]) + (float(s.gaps_days[-1]) if s.num_frames > 1 else 365.0))
            tgt = torch.tensor(vals, dtype=torch.float64)
        gap = (tgt - last_days).float()
        if (gap <= 0).any():
            raise InputError("target dates must come after the last frame of every sequence")
        captions = self._captions(seqs) if self.variant == "caption" else None
        # 3. samples
        gen = torch.Generator().manual_seed(seed)
        samples = [self.step(current, gap, captions, num_inference_steps, gen, zero_ijepa, last_days)
                   for _ in range(num_samples)]
        images = torch.stack(samples, dim=1)  # [B, K, C, H, W]
        # 4. summary
        spread = images.std(dim=1, unbiased=False) if num_samples > 1 else None
        return ForecastOutput(images=images, mean=images.mean(dim=1), spread=spread, target_days=tgt)

    @torch.no_grad()
    def rollout(self, sequence: Any, start_index: int = 0, steps: int | None = None, step_days: Sequence[float] | None = None,
                num_inference_steps: int | None = None, seed: int = 0) -> list[torch.Tensor]:
        """Autoregressive rollout (appendix C): start from frame `start_index`, feed every prediction back.

        Steps follow the sequence's own dates (then its future date) unless `step_days` gives the gaps.
        Captions (caption variant) are made at every step from the last two frames (real or generated).
        """
        if step_days is None:
            days = list(sequence.days[start_index:])
            if sequence.future_date is not None:
                days.append(float(sequence.days[-1]) + float((sequence.future_date - sequence.dates[-1]).days))
            step_days = list(np.diff(days))
        step_days = list(step_days)[: steps or None]
        if not step_days:
            raise InputError("nothing to roll out: give step_days or a sequence with frames after start_index")
        gen = torch.Generator().manual_seed(seed)
        bands = self.bands(sequence)
        first = max(0, start_index - 1)
        frames = [self._frame(sequence.frames[i][bands]) for i in range(first, start_index + 1)]
        days = [float(sequence.days[i]) for i in range(first, start_index + 1)]
        outs = []
        for gap in step_days:
            captions = None
            if self.variant == "caption":
                captions = self.history_captions(torch.stack(frames[-2:])[None],
                                                 torch.tensor([days[-2:]], dtype=torch.float64))
            x = self.step(frames[-1][None], torch.tensor([float(gap)]), captions, num_inference_steps, gen,
                          current_days=torch.tensor([days[-1]], dtype=torch.float64))
            frames.append(x[0])
            days.append(days[-1] + float(gap))
            outs.append(x[0])
        return outs


# --------------------------------------------------------------------------------------------- sampler choice
def set_sampler(model, start_noise: float | None = None, num_inference_steps: int | None = None,
                end_sigma: float | None = None) -> None:
    """Set the generator's inference start noise, sampler steps and end sigma (saved with the model's config)."""
    g = model.config.generator
    if end_sigma is not None:
        if not 0.0 <= end_sigma < 1.0:
            raise InputError(f"end_sigma must be in [0, 1), got {end_sigma}")
        g.end_sigma = float(end_sigma)
    if start_noise is not None:
        if start_noise < 0:
            raise InputError(f"start_noise must be >= 0, got {start_noise}")
        g.start_noise = float(start_noise)
    if num_inference_steps is not None:
        if num_inference_steps < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        g.num_inference_steps = int(num_inference_steps)


# --------------------------------------------------------------------------------------------- benchmark
def test_sequences(n: int = 16, size: int = 64, frames: int = 4, seed: int = 0, split: str = "test", limit: int = 20000):
    """The first `n` sequences of the synthetic world whose id falls in `split` (`tamms.data.synthetic.split_of`)."""
    from tamms.data import synthetic

    config = synthetic.SyntheticWorldConfig(size=size, frames=frames)
    out = []
    for index in range(limit):
        seq = synthetic.generate_sequence(index, config, seed=seed)
        if synthetic.split_of(seq.meta["id"]) == split:
            out.append(seq)
            if len(out) >= n:
                break
    return out


def image_metrics(pred: torch.Tensor, target: torch.Tensor, rgb: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """`tamms.metrics.image.image_scores` on RGB (PSNR, SSIM, GSSIM, L1, MSE, LPIPS) + set-level FID when available."""
    from tamms.metrics import _fid
    from tamms.metrics import image as im

    p, t = pred[:, list(rgb)].float().clamp(0, 1), target[:, list(rgb)].float().clamp(0, 1)
    row = im.image_scores(p, t)
    notes = row.pop("notes", {})
    ok, reason = _fid.fid_available()
    row["FID"] = float(_fid.fid(t, p)) if ok else None
    if not ok:
        notes["FID"] = reason
    row["notes"] = notes
    return row


def benchmark_rows(models: dict[str, str | Path | None] | None = None, sequences=None, n_sequences: int = 16,
                   num_inference_steps: int = 20, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the forecasting benchmark for `satjepa` and `satjepa-caption`: last frame -> future frame.

    `models` maps a row name to a weights folder (None = shipped weights); defaults to both variants.
    """
    models = models or {"satjepa": None, "satjepa-caption": None}
    sequences = sequences if sequences is not None else test_sequences(n_sequences)
    rows = []
    for name, folder in models.items():
        variant = "caption" if name.endswith("caption") else "rgb"
        pipe = SatJEPAPipeline.from_pretrained(folder, variant=variant)
        target = torch.stack([torch.as_tensor(s.future_frame[pipe.bands(s)], dtype=torch.float32) for s in sequences])
        rgb = (0, 1, 2) if target.shape[1] == 3 else (sequences[0].rgb_bands or (0, 1, 2))
        t0 = time.perf_counter()
        out = pipe(sequences, num_inference_steps=num_inference_steps, seed=seed)
        secs = time.perf_counter() - t0
        row = {"model": name, "n": len(sequences), "steps": num_inference_steps,
               **image_metrics(out.mean, target, rgb),
               "seconds_per_image": secs / len(sequences)}
        rows.append(row)
    return rows


def rollout_figure(path: str | Path, sequence, pipelines: dict[str, SatJEPAPipeline], num_inference_steps: int = 20,
                   seed: int = 0, overwrite: bool = False) -> Path:
    """Rows: ground truth, then each model's autoregressive rollout from the first frame (appendix C, Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rgb = list(sequence.rgb_bands or (0, 1, 2))
    truth = [torch.as_tensor(f) for f in sequence.frames[1:]]
    if sequence.future_frame is not None:
        truth.append(torch.as_tensor(sequence.future_frame))
    dates = [d.isoformat() for d in sequence.dates[1:]] + ([sequence.future_date.isoformat()] if sequence.future_date else [])
    rows = {"ground truth": truth}
    for name, pipe in pipelines.items():
        rows[name] = pipe.rollout(sequence, 0, num_inference_steps=num_inference_steps, seed=seed)
    cols = len(truth) + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.9 * len(rows)), squeeze=False)
    start = torch.as_tensor(sequence.frames[0])
    for r, (name, frames) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            img = start if c == 0 else frames[c - 1]
            ax.imshow(img[rgb].permute(1, 2, 0).clamp(0, 1).numpy())
            if r == 0:
                ax.set_title(sequence.dates[0].isoformat() + " (input)" if c == 0 else dates[c - 1], fontsize=7)
        axes[r][0].text(-0.08, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{sequence.meta.get('id', 'sequence')}: autoregressive rollout from the first frame, every prediction "
                 "fed back as the next input", fontsize=9)
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------------------------- forecast registry
class SatJEPAForecastModel:
    """`tamms.pipelines.forecast.ForecastModel` for `--model satjepa` / `satjepa-caption` of `tamms forecast`.

    One step per call: I_t = the last history frame, gap = target - last date. The caption variant captions the
    last two history frames with the describer and the change detector (`SatJEPAPipeline.history_captions`):
    frames and dates are all it needs. `num_inference_steps` None: the model's own (chosen on validation).
    """

    stochastic = True
    uses_semantic = False
    uses_text = False
    history = 1
    any_gap = True  # trained on pairs months to a decade apart: one step to the asked date (a list of dates rolls out)

    def __init__(self, pipeline: SatJEPAPipeline, name: str, describer=None, zero_ijepa: bool = False):
        self.pipeline = pipeline
        self.name = name
        self.zero_ijepa = zero_ijepa  # the ablation: the IJEPA forecast zeroed before the adapter
        self.channels = pipeline.model.config.ijepa.in_channels
        self.tile_size = pipeline.model.config.ijepa.image_size
        self.default_steps = pipeline.model.config.generator.num_inference_steps
        if describer is not None and pipeline.describer is None:
            pipeline.describer = describer
        if pipeline.variant == "caption":
            self.history = 2  # the describer and the change detector read the last two dated frames

    def forecast(self, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor,
                 num_samples: int = 1, num_inference_steps: int | None = None, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        if history.shape[2] != self.channels:
            raise InputError(f"{self.name} takes {self.channels}-band frames, got {history.shape[2]}")
        current = history[:, -1].float().clamp(0, 1)  # [B, C, H, W]
        gap = (target_days.double() - history_days[:, -1].double()).float()
        captions = (self.pipeline.history_captions(history.float().clamp(0, 1), history_days)
                    if self.pipeline.variant == "caption" else None)
        outs = []
        for k in range(num_samples):
            nz = None
            if noise is not None and tuple(noise.shape[-2:]) == tuple(current.shape[-2:]) == (self.tile_size,) * 2:
                nz = noise[:, k].float()
            if nz is not None:
                x = self.pipeline._to_model_size(current)
                outs.append(self.pipeline.model.forecast(x, gap, captions=captions, num_inference_steps=num_inference_steps,
                                                         generator=generator, noise=nz, zero_ijepa=self.zero_ijepa,
                                                         current_days=history_days[:, -1].double()))
            else:
                outs.append(self.pipeline.step(current, gap, captions, num_inference_steps, generator, self.zero_ijepa,
                                               history_days[:, -1].double()))
        return torch.stack(outs, dim=1)  # [B, K, C, H, W]

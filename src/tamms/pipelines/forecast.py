"""`ForecastPipeline`: dated frames -> the image at a future date (TAMMs task 2).

    pipe = ForecastPipeline.from_pretrained("tamms")          # or "persistence", "simvp", a folder...
    out = pipe(sequence, "2026-07-01", num_samples=4, num_inference_steps=20, seed=0)
    out.images  # [B, K, C, H, W] in [0, 1]; out.mean [B, C, H, W]; out.spread [B, C, H, W] (K > 1)

Steps of `__call__`: 1. check inputs and dates; 2. take the last `history` frames (RGB view);
3. describe the history (M_t, text embeddings) when the model uses them; 4. forecast tile by tile
(overlapping tiles blended with a linear ramp) for scenes larger than the model; 5. repeat for each
further date, feeding the forecast back as the newest frame (autoregressive rollout); 6. return a
`ForecastOutput`.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tamms.data.sequence import SitsSequence, from_days, parse_date, to_days
from tamms.errors import DateError, InputError
from tamms.pipelines.outputs import ForecastOutput


# ------------------------------------------------------------------------------------------------
# diffusion sampling of the SFCI forecaster
# ------------------------------------------------------------------------------------------------


def make_scheduler(name: str, forecaster):
    """A diffusers sampler matching how the forecaster was trained."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = dict(num_train_timesteps=forecaster.cfg.num_train_timesteps, beta_schedule=forecaster.cfg.beta_schedule,
                  prediction_type=forecaster.cfg.prediction_type)
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing")
    if name in ("dpm", "dpmsolver", "dpm-solver"):
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", timestep_spacing="trailing",
                                           lower_order_final=True)
    raise InputError(f"unknown sampler {name!r}: choose ddim or dpm")


def steps_to_run(num_inference_steps: int, strength: float) -> int:
    """How many of `num_inference_steps` sampler steps run at this strength (img2img: the last share of them)."""
    return num_inference_steps if strength >= 1.0 else max(1, int(round(num_inference_steps * strength)))


@torch.no_grad()
def sample_sfci(forecaster, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor,
                num_samples: int = 1, num_inference_steps: int = 20, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, semantic: torch.Tensor | None = None,
                text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                scheduler: str = "ddim", strength: float = 1.0, init: torch.Tensor | None = None) -> torch.Tensor:
    """Denoise K samples per window: history [B, T, C, H, W] in [0, 1] -> [B, K, C, H, W] in [0, 1].

    strength: 1.0 starts from pure noise; below 1 the sampler starts from `init` [B, C, H, W] in [0, 1]
    (default: the last history frame) noised to that fraction of the schedule (as diffusers' img2img
    pipelines do) and runs that fraction of the steps, so what the ECM does not change stays that of `init`.
    """
    b, t, c, h, w = history.shape
    k = num_samples
    if not 0.0 < strength <= 1.0:
        raise InputError(f"strength {strength} must be in (0, 1]")
    sched = make_scheduler(scheduler, forecaster)
    sched.set_timesteps(num_inference_steps)
    timesteps = sched.timesteps
    start = 0
    if strength < 1.0:
        start = num_inference_steps - steps_to_run(num_inference_steps, strength)
        timesteps = timesteps[start:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start * getattr(sched, "order", 1))
    feats = forecaster.encode_history(history * 2 - 1)  # per level [B, C_l, T, H_l, W_l]
    # the history is the same for the K samples of a window: repeat features, not the encoder
    feats = [f.repeat_interleave(k, dim=0) for f in feats]  # [B*K, ...]
    gaps = (target_days[:, None] - history_days).float().repeat_interleave(k, dim=0)  # [B*K, T]
    rep = (lambda x: None if x is None else x.repeat_interleave(k, dim=0))
    semantic, text_embeddings, text_mask = rep(semantic), rep(text_embeddings), rep(text_mask)
    if noise is None:
        noise = torch.randn((b, k, c, h, w), generator=generator)
    x = noise.reshape(b * k, c, h, w).to(history.dtype) * sched.init_noise_sigma  # [B*K, C, H, W]
    if start > 0:  # img2img start: `init` (or the last frame), noised to the first remaining timestep
        first = history[:, -1] if init is None else init.to(history.dtype)
        first = (first * 2 - 1).repeat_interleave(k, dim=0)  # [B*K, C, H, W]
        x = sched.add_noise(first, noise.reshape(b * k, c, h, w).to(history.dtype), timesteps[:1].repeat(b * k))
    cache: dict = {}  # the history's share of the control blocks, computed at the first step
    for tau in timesteps:
        tt = torch.full((b * k,), int(tau), dtype=torch.long)
        out = forecaster(sched.scale_model_input(x, tau), tt, feats, gaps, semantic=semantic,
                         text_embeddings=text_embeddings, text_mask=text_mask, cache=cache)
        x = sched.step(out, tau, x).prev_sample
    return ((x.clamp(-1, 1) + 1) / 2).reshape(b, k, c, h, w)  # [B, K, C, H, W]


# ------------------------------------------------------------------------------------------------
# tiling
# ------------------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> torch.Tensor:
    """[tile, tile] weights: 1 inside, a linear ramp over `overlap` pixels at the borders (never 0)."""
    ramp = torch.ones(tile)
    if overlap > 0:
        edge = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
        ramp[:overlap] = edge
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], edge.flip(0))
    return ramp[:, None] * ramp[None, :]


def forecast_tiled(model, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor,
                   num_samples: int, num_inference_steps: int, generator: torch.Generator | None,
                   overlap: int = 16, tile_batch: int = 8, **cond: Any) -> torch.Tensor:
    """Run `model` on overlapping tiles of history [B, T, C, H, W]; returns [B, K, C, H, W]."""
    b, t, c, h, w = history.shape
    tile = model.tile_size
    noise = torch.randn((b, num_samples, c, max(h, tile or h), max(w, tile or w)), generator=generator)
    if tile is None:
        return model.forecast(history, history_days, target_days, num_samples, num_inference_steps,
                              noise=noise[..., :h, :w], generator=generator, **cond)
    # scenes smaller than a tile: pad by reflection (replicate when too small to reflect), crop after
    ph, pw = max(0, tile - h), max(0, tile - w)
    if ph or pw:
        flat = history.reshape(b * t, c, h, w)  # [B*T, C, H, W]
        mode = "reflect" if ph < h and pw < w else "replicate"
        flat = torch.nn.functional.pad(flat, (0, pw, 0, ph), mode=mode)
        history = flat.reshape(b, t, c, h + ph, w + pw)
    hh, ww = history.shape[-2:]
    starts = [(y, x) for y in tile_starts(hh, tile, overlap) for x in tile_starts(ww, tile, overlap)]
    weight = blend_window(tile, overlap if len(starts) > 1 else 0)
    acc = torch.zeros(b, num_samples, c, hh, ww)
    norm = torch.zeros(hh, ww)
    jobs = [(i, y, x) for i in range(b) for (y, x) in starts]
    for j in range(0, len(jobs), tile_batch):
        chunk = jobs[j:j + tile_batch]
        idx = torch.tensor([i for i, _, _ in chunk])
        hist = torch.stack([history[i, :, :, y:y + tile, x:x + tile] for i, y, x in chunk])  # [n, T, C, t, t]
        nz = torch.stack([noise[i, :, :, y:y + tile, x:x + tile] for i, y, x in chunk])  # [n, K, C, t, t]
        sub = {k: (v[idx] if isinstance(v, torch.Tensor) else v) for k, v in cond.items()}
        out = model.forecast(hist, history_days[idx], target_days[idx], num_samples, num_inference_steps,
                             noise=nz, generator=generator, **sub)  # [n, K, C, t, t]
        for (i, y, x), o in zip(chunk, out):
            acc[i, :, :, y:y + tile, x:x + tile] += o * weight
    for y, x in starts:
        norm[y:y + tile, x:x + tile] += weight
    return (acc / norm)[..., :h, :w]


# ------------------------------------------------------------------------------------------------
# forecast models behind one interface
# ------------------------------------------------------------------------------------------------


class ForecastModel:
    """What the pipeline needs from a forecaster.

    `forecast(history [B, T, C, H, W] in [0, 1], history_days [B, T], target_days [B], num_samples,
    num_inference_steps, noise [B, K, C, H, W] or None, generator, semantic, text_embeddings, text_mask)`
    returns `[B, K, C, H, W]` in [0, 1]. `tile_size`: the size the model runs at (None: any size).
    """

    name: str = "model"
    stochastic: bool = False
    channels: int = 3
    history: int = 3
    tile_size: int | None = None
    uses_semantic: bool = False  # wants the describer's M_t
    uses_text: bool = False  # wants the describer's text embeddings
    default_steps: int | None = None  # sampler steps when the caller gives none (diffusion models)
    # trained on gaps of any length (months to a decade): the "auto" step limit lets it reach any date in one step
    any_gap: bool = False

    def forecast(self, history: torch.Tensor, history_days: torch.Tensor, target_days: torch.Tensor,
                 num_samples: int = 1, num_inference_steps: int = 20, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, semantic: torch.Tensor | None = None,
                 text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


@torch.no_grad()
def detected_changes(detector, history: torch.Tensor) -> torch.Tensor:
    """history [B, T, C, H, W] in [0, 1] -> [B, T-1, H, W] uint8: the detector's change mask of each consecutive
    pair of frames (RGB bands 0-2), computed where the detector's network is and returned beside the history."""
    b, t, c, h, w = history.shape
    before = history[:, :-1, :3].reshape(b * (t - 1), 3, h, w)
    after = history[:, 1:, :3].reshape(b * (t - 1), 3, h, w)
    network = getattr(detector, "model", None)
    device = next(network.parameters()).device if isinstance(network, torch.nn.Module) else torch.device("cpu")
    masks = detector.detect(before.to(device), after.to(device)).mask  # [B*(T-1), H, W]
    return masks.to(history.device).reshape(b, t - 1, h, w)


def with_trend_frame(trend: "ForecastModel", history: torch.Tensor, history_days: torch.Tensor,
                     target_days: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The history [B, T, C, H, W] with one more frame: `trend`'s forecast for the target date (computed on the
    CPU, returned where the history is), dated at the target date -> [B, T+1, C, H, W], days [B, T+1]."""
    n = trend.history
    frame = trend.forecast(history[:, -n:].cpu(), history_days[:, -n:].cpu(), target_days.cpu())[:, 0]  # [B, C, H, W]
    frame = frame.to(device=history.device, dtype=history.dtype)
    return (torch.cat([history, frame[:, None]], dim=1),
            torch.cat([history_days, target_days[:, None].to(history_days.dtype)], dim=1))


class FunctionForecastModel(ForecastModel):
    """A deterministic forecast function or network (persistence, trend, SimVP, ConvLSTM, change-trend)."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], history: int, multiple_of: int = 1,
                 any_gap: bool = False):
        self.name, self.fn, self.history, self.multiple_of = name, fn, history, multiple_of
        self.any_gap = any_gap  # one step to any date (see ForecastPipeline.step_limit)

    @torch.no_grad()
    def forecast(self, history, history_days, target_days, num_samples=1, num_inference_steps=20, noise=None,
                 generator=None, semantic=None, text_embeddings=None, text_mask=None):
        h, w = history.shape[-2:]
        m = self.multiple_of
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # networks that downsample need a size divisible by their stride
            b, t = history.shape[:2]
            flat = history.reshape(b * t, *history.shape[2:])  # [B*T, C, H, W]
            mode = "reflect" if ph < h and pw < w else "replicate"
            history = torch.nn.functional.pad(flat, (0, pw, 0, ph), mode=mode).reshape(b, t, history.shape[2],
                                                                                       h + ph, w + pw)
        out = self.fn(history, history_days.to(torch.float64), target_days.to(torch.float64))[..., :h, :w]
        return out.unsqueeze(1).expand(-1, num_samples, -1, -1, -1)  # [B, K, C, H, W]


class SFCIForecastModel(ForecastModel):
    """Frozen U-Net + ECM, sampled with a diffusers scheduler (DDIM or DPM-Solver++).

    start: with strength < 1, the forecaster whose forecast the sampler starts from (None: the last frame): the
    ECM and U-Net then refine that forecast for the same date (SDEdit), e.g. repaint the changes `change-trend`
    places (docs/forecast.md). trend: the forecaster named by the weights' `trend_from`, whose forecast the ECM
    reads as one more frame (required when the weights were trained with one)."""

    stochastic = True

    def __init__(self, name: str, forecaster, scheduler: str = "ddim", strength: float | None = None,
                 default_steps: int | None = None, start: ForecastModel | None = None,
                 trend: ForecastModel | None = None):
        self.name = name
        self.strength = forecaster.cfg.strength if strength is None else strength
        self.default_steps = default_steps or forecaster.cfg.default_steps
        self.model = forecaster.eval()
        self.history = forecaster.cfg.history
        self.channels = forecaster.cfg.channels
        self.tile_size = int(forecaster.unet.config.sample_size)
        ecm_cfg = forecaster.ecm.cfg
        self.uses_semantic = ecm_cfg.use_semantic and not forecaster.ecm.structural_only
        self.uses_text = ecm_cfg.use_text and not forecaster.ecm.structural_only
        self.scheduler_name = scheduler
        self.start = start if self.strength < 1.0 else None  # from pure noise a start image is never read
        # a start forecaster that reaches any date in one step (change-trend) makes the whole forecast one step: the
        # sampler refines the start forecast at the date asked (chosen on the validation split, docs/forecast.md)
        self.any_gap = bool(self.start is not None and self.start.any_gap)
        if forecaster.cfg.trend_from and trend is None:
            raise InputError(f"{name} was trained reading {forecaster.cfg.trend_from!r}'s forecast as a frame: give "
                             "that forecaster (forecast_model_from_pretrained loads it from the weights' trend_from)")
        self.trend = trend
        self.any_gap = self.any_gap or bool(trend is not None and trend.any_gap)

    @property
    def start_name(self) -> str:
        """Where the sampler starts: the start forecaster's name, "last frame" or "pure noise"."""
        if self.strength >= 1.0:
            return "pure noise"
        return self.start.name if self.start is not None else "last frame"

    def forecast(self, history, history_days, target_days, num_samples=1, num_inference_steps=20, noise=None,
                 generator=None, semantic=None, text_embeddings=None, text_mask=None):
        init = history[:, -1]  # [B, C, H, W]
        if self.start is not None and self.start is not self.trend:
            n = self.start.history
            init = self.start.forecast(history[:, -n:], history_days[:, -n:], target_days)[:, 0]
        if self.trend is not None:  # the trend's forecast is the ECM's last frame
            history, history_days = with_trend_frame(self.trend, history, history_days, target_days)
            init = history[:, -1] if self.start is self.trend else init
        return sample_sfci(self.model, history, history_days, target_days, num_samples=num_samples,
                           num_inference_steps=num_inference_steps, noise=noise, generator=generator,
                           semantic=semantic, text_embeddings=text_embeddings, text_mask=text_mask,
                           scheduler=self.scheduler_name, strength=self.strength, init=init)


def _persistence() -> ForecastModel:
    from tamms.models.baselines.forecast import persistence

    return FunctionForecastModel("persistence", persistence, history=1)


def _linear_trend() -> ForecastModel:
    from tamms.models.baselines.forecast import linear_trend

    return FunctionForecastModel("linear-trend", linear_trend, history=3)


# forecasters that need no weights
BUILTIN_FORECASTERS: dict[str, Callable[[], ForecastModel]] = {"persistence": _persistence,
                                                               "linear-trend": _linear_trend}


def forecast_model_from_pretrained(name_or_folder: str | Path, name: str | None = None, scheduler: str = "ddim",
                                   strength: float | None = None, describer: Any = None,
                                   start_from: str | Path | None = "default",
                                   trend_from: str | Path | None = "default") -> ForecastModel:
    """A `ForecastModel` from a saved folder (or the shipped folder of that name); its model_type says which.

    Built-in forecasters ("persistence", "linear-trend") need no folder. strength / start_from: the diffusion
    sampler's start (default: the settings saved with the weights; start_from None: the last frame). trend_from:
    for weights trained reading a trend forecaster's forecast (`SFCIConfig.trend_from`), another forecaster in
    its place (a control: does the trend frame matter?); default: the one the weights were trained with."""
    from tamms.models import load_pretrained, resolve_weights
    from tamms.models.baselines.forecast import ConvLSTM, SimVP
    from tamms.models.change_trend import ChangeTrendForecaster
    from tamms.models.forecaster import SFCIForecaster

    if str(name_or_folder) in BUILTIN_FORECASTERS and not Path(name_or_folder).is_dir():
        return BUILTIN_FORECASTERS[str(name_or_folder)]()
    folder = resolve_weights(name_or_folder, "tamms train forecast --config src/tamms/configs/forecast.yaml")
    name = name or folder.name
    net = load_pretrained(folder)
    if isinstance(net, SFCIForecaster):
        start = None
        start_from = net.cfg.start_from if start_from == "default" else start_from
        trend_from = net.cfg.trend_from if trend_from == "default" else trend_from
        trend = deterministic_forecaster(trend_from, net.cfg.channels, folder, "trend_from")
        if start_from and (net.cfg.strength if strength is None else strength) < 1.0:
            same = trend is not None and str(start_from) == str(trend_from)
            start = trend if same else deterministic_forecaster(start_from, net.cfg.channels, folder, "start_from")
        return SFCIForecastModel(name, net, scheduler, strength, start=start, trend=trend)
    if isinstance(net, ChangeTrendForecaster):  # before SimVP: it is one, with other inputs
        from tamms.pipelines.detect import detector_from_pretrained

        detector = detector_from_pretrained(net.cfg.detector)
        # one step to any date: it was trained on windows whose target lies up to years ahead, and a rollout feeds
        # it its own forecasts (docs/forecast.md)
        return FunctionForecastModel(name, lambda h, d, t: net(h, detected_changes(detector, h), d, t),
                                     history=net.cfg.history, multiple_of=net.multiple_of, any_gap=True)
    if isinstance(net, (SimVP, ConvLSTM)):
        history = getattr(net.cfg, "history", getattr(net, "history", 3))
        return FunctionForecastModel(name, net, history=history, multiple_of=net.multiple_of)
    from tamms.pipelines.jepa import SatJEPAForecastModel, SatJEPAPipeline

    if getattr(net, "variant", None) in ("rgb", "caption"):
        return SatJEPAForecastModel(SatJEPAPipeline(net), name, describer)
    raise InputError(f"{folder} holds a {net.model_type} model, which does not forecast: give a forecaster's folder")


def deterministic_forecaster(name_or_folder: str | Path | None, channels: int, folder: Path | str = "",
                     key: str = "trend_from") -> ForecastModel | None:
    """The deterministic forecaster a diffusion forecaster starts from or reads (`start_from`, `trend_from`)."""
    if not name_or_folder:
        return None
    model = forecast_model_from_pretrained(name_or_folder)
    if model.stochastic or model.channels != channels:
        raise InputError(f"{folder}: {key} {str(name_or_folder)!r} must be a deterministic forecaster of {channels} "
                         "bands (change-trend, simvp, linear-trend, ...)")
    return model


def training_describer(name_or_folder: str | Path) -> Path | None:
    """The folder of the describer a forecaster was trained with (`options.describer` of the training config
    recorded in its config.json: a folder, or the name of shipped weights), or None when it records none."""
    import json

    from tamms.models import resolve_weights

    if str(name_or_folder) in BUILTIN_FORECASTERS and not Path(name_or_folder).is_dir():
        return None
    folder = resolve_weights(name_or_folder, "tamms train forecast --config src/tamms/configs/forecast.yaml")
    record = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    name = (((record.get("training") or {}).get("config") or {}).get("options") or {}).get("describer")
    if not name:
        return None
    return resolve_weights(name, "tamms train describe")


MIN_STEP_DAYS = 30.0  # a rollout step never covers less than a month


def rollout_days(last_day: float, target_days: Sequence[float], limit: float | None) -> tuple[list[float], list[bool]]:
    """The dates forecast one after another, and which of them were asked for: each asked date is preceded by
    evenly spaced intermediate dates when it lies more than `limit` days after the date before it."""
    days: list[float] = []
    requested: list[bool] = []
    previous = float(last_day)
    for target in map(float, target_days):
        steps = 1 if limit is None else max(1, int(np.ceil((target - previous) / limit - 1e-9)))
        for i in range(1, steps + 1):
            days.append(float(np.round(previous + (target - previous) * i / steps)))
            requested.append(i == steps)
        previous = target
    return days, requested


def transfer_bands(history: np.ndarray, rgb: Sequence[int], forecast_rgb: np.ndarray,
                   ridge: float = 1e-3) -> np.ndarray:
    """Every band of a forecast from its RGB forecast: `history` `[T, C, H, W]` (all bands, [0, 1]), `rgb` the
    indices of its three RGB bands, `forecast_rgb` `[3, H, W]` -> `[C, H, W]`.

    The RGB bands are the forecast. Each other band (NIR, SWIR, ...) is the last frame plus the change the RGB
    forecast implies for it: `last_b + w_b . (forecast_rgb - last_rgb)`, with `w_b` the ridge least-squares fit of
    that band's change on the RGB change over the consecutive frame pairs of this history (all pixels). With one
    frame there is no observed change and the other bands stay as the last frame."""
    history = np.nan_to_num(np.asarray(history, dtype=np.float64))
    rgb = list(rgb)
    t, c = history.shape[:2]
    out = history[-1].copy()  # [C, H, W]
    delta_forecast = np.asarray(forecast_rgb, dtype=np.float64) - history[-1, rgb]  # [3, H, W]
    for band in set(rgb):  # grey data gives band 0 three times: their mean
        out[band] = np.mean([forecast_rgb[k] for k in range(3) if rgb[k] == band], axis=0)
    others = [b for b in range(c) if b not in rgb]
    if others and t >= 2:
        steps = np.diff(history, axis=0)  # [T-1, C, H, W]: the observed changes
        x = steps[:, rgb].transpose(1, 0, 2, 3).reshape(3, -1).T  # [N, 3]
        gram = x.T @ x + ridge * len(x) * np.eye(3)
        for band in others:
            y = steps[:, band].reshape(-1)  # [N]
            w = np.linalg.solve(gram, x.T @ y)  # [3]
            out[band] = history[-1, band] + np.tensordot(w, delta_forecast, axes=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def concat_outputs(outputs: Sequence[ForecastOutput]) -> ForecastOutput:
    """One output for a batch forecast piece by piece (each piece one sequence)."""
    def cat(name: str):
        values = [getattr(o, name) for o in outputs]
        return None if any(v is None for v in values) else torch.cat(values)

    texts = None if any(o.texts is None for o in outputs) else [t for o in outputs for t in o.texts]
    steps = len(outputs[0].trajectory)
    trajectory = [concat_outputs([o.trajectory[i] for o in outputs]) for i in range(steps)]
    same_bands = len({None if o.bands is None else o.bands.shape[1] for o in outputs}) == 1
    names = outputs[0].band_names if all(o.band_names == outputs[0].band_names for o in outputs) else None
    return ForecastOutput(cat("images"), cat("mean"), cat("spread"), cat("target_days"), texts, trajectory,
                          cat("bands") if same_bands else None, names)


# ------------------------------------------------------------------------------------------------
# the pipeline
# ------------------------------------------------------------------------------------------------


class ForecastPipeline:
    """A forecast model (by name or folder), optionally with the describer that gives it M_t."""

    def __init__(self, model, describer: Any = None, tile_overlap: int = 16, tile_batch: int = 8,
                 max_step_days: float | str | None = "auto"):
        """max_step_days: the longest gap one forecast step covers; a date further ahead is reached by a rollout
        through evenly spaced intermediate dates. "auto": the longest gap between the history frames (at least
        `MIN_STEP_DAYS`), so a horizon of several observed intervals continues the change several times, except
        for models trained on gaps of any length (`any_gap`: Sat-JEPA-Diff), which take one step; None: one step
        whatever the horizon. Several dates (a rollout) are always forecast one after another."""
        if not (max_step_days is None or max_step_days == "auto" or float(max_step_days) > 0):
            raise InputError(f"max_step_days must be 'auto', None or a positive number of days, got {max_step_days!r}")
        self.model = model
        self.describer = describer
        self.tile_overlap = tile_overlap
        self.tile_batch = tile_batch
        self.max_step_days = max_step_days

    def step_limit(self, days: np.ndarray) -> float | None:
        """The longest gap (days) one forecast step may cover for a history with these dates."""
        if self.max_step_days is None:
            return None
        if self.max_step_days == "auto":
            if getattr(self.model, "any_gap", False):
                return None  # one step to any date (its history window may hold a single gap, or none)
            gaps = np.diff(np.asarray(days, dtype=np.float64))
            gaps = gaps[gaps > 0]
            return float(max(MIN_STEP_DAYS, gaps.max())) if gaps.size else None
        return float(self.max_step_days)

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path = "tamms", model: str | None = None,
                        describer: Any = "default", scheduler: str = "ddim", strength: float | None = None,
                        start_from: str | Path | None = "default", trend_from: str | Path | None = "default",
                        **kwargs: Any) -> "ForecastPipeline":
        """`name_or_folder`: a saved forecaster's folder, the name of a shipped one (`tamms`, `simvp`, ...;
        see `tamms.registry.FORECAST_MODELS`), or "persistence" / "linear-trend". `model`: the name to report
        (default: the folder's name). describer: "default" loads, when the model uses M_t, the describer the
        forecaster was trained with (its training `options.describer`), else the shipped one. strength, start_from:
        where a diffusion sampler starts (default: the settings saved with the weights, see `SFCIConfig`);
        trend_from: another trend forecaster for weights that read one (a control)."""
        from tamms.pipelines.describe import default_describer

        fm = forecast_model_from_pretrained(name_or_folder, model, scheduler=scheduler, strength=strength,
                                            describer=None if describer == "default" else describer,
                                            start_from=start_from, trend_from=trend_from)
        desc = None
        if fm.uses_semantic or fm.uses_text:
            desc = default_describer(training_describer(name_or_folder)) if describer == "default" else describer
        return cls(fm, desc, **kwargs)

    # --- inputs ---------------------------------------------------------------------------------
    def _history(self, seq: SitsSequence) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(seq, dict):  # a sample dict (docs/data.md)
            frames = seq["image"].numpy() if isinstance(seq["image"], torch.Tensor) else np.asarray(seq["image"])
            days = np.asarray(seq["time"], dtype=np.float64)
            frames = frames[:, :3] if frames.shape[1] >= 3 else np.repeat(frames[:, :1], 3, axis=1)
        elif isinstance(seq, SitsSequence):
            frames, days = seq.rgb(), seq.days
        else:
            raise InputError(f"forecast takes SitsSequence objects or sample dicts, got {type(seq).__name__}")
        if frames.shape[0] < 2 and self.model.history > 1:
            raise InputError(f"forecasting with {self.model.name} needs at least 2 dated frames, got "
                             f"{frames.shape[0]}; add an earlier image of the same place")
        if not np.isfinite(frames).all():
            frames = np.nan_to_num(frames, nan=0.0)
        n = self.model.history
        frames, days = frames[-n:], days[-n:]
        if frames.shape[0] < n:  # too short: repeat the earliest frame (it carries its own date)
            pad = n - frames.shape[0]
            frames = np.concatenate([np.repeat(frames[:1], pad, 0), frames])
            days = np.concatenate([np.repeat(days[:1], pad), days])
        return frames.astype(np.float32), days

    @staticmethod
    def _all_bands(seq: Any) -> tuple[np.ndarray, list[int], list[str] | None]:
        """Every band of the frames `[T, C, H, W]`, the indices of the RGB bands the model reads, the band names."""
        if isinstance(seq, dict):
            frames = seq["image"].numpy() if isinstance(seq["image"], torch.Tensor) else np.asarray(seq["image"])
            names = seq.get("band_names")
        else:
            frames, names = seq.frames, list(seq.band_names) if seq.band_names else None
            if seq.rgb_bands is not None:
                return np.asarray(frames, dtype=np.float32), list(seq.rgb_bands), names
        rgb = [0, 1, 2] if frames.shape[1] >= 3 else [0, 0, 0]  # grey data: the model read band 0 three times
        return np.asarray(frames, dtype=np.float32), rgb, names

    def _with_all_bands(self, output: ForecastOutput, seqs: list) -> ForecastOutput:
        """`output.bands` (and each rollout date's): every input band of each sequence (`transfer_bands`), one
        tensor when the band counts agree."""
        full = [self._all_bands(s) for s in seqs]
        if len({f.shape[1] for f, _, _ in full}) != 1:
            return output
        names = full[0][2] if all(n == full[0][2] for _, _, n in full) else None

        def every_band(step: ForecastOutput) -> ForecastOutput:
            bands = torch.from_numpy(np.stack([transfer_bands(f, rgb, m.numpy()) for (f, rgb, _), m in
                                               zip(full, step.mean)]))  # [B, C_in, H, W]
            return replace(step, bands=bands, band_names=names)

        trajectory = [every_band(step) for step in output.trajectory]
        # the output is the last date of a rollout: its bands are that date's
        bands = trajectory[-1].bands if trajectory else every_band(output).bands
        return replace(output, bands=bands, band_names=names, trajectory=trajectory)

    def _conditioning(self, history: torch.Tensor, days: torch.Tensor
                      ) -> tuple[dict[str, torch.Tensor], list[str] | None]:
        if self.describer is None or not (self.model.uses_semantic or self.model.uses_text):
            if self.model.uses_semantic:
                warnings.warn(f"{self.model.name}: no describer, so no semantic vector M_t or text guidance "
                              "(the forecast runs on the structural path only)")
            return {}, None
        seqs = [SitsSequence(frames=h.numpy(), dates=[from_days(float(d)) for d in dd]) for h, dd in zip(history, days)]
        out = self.describer(seqs)
        cond = {}
        if self.model.uses_semantic:
            cond["semantic"] = out.semantic.float()
        if self.model.uses_text:
            cond["text_embeddings"] = out.text_embeddings.float()
            cond["text_mask"] = out.text_mask
        return cond, list(out.texts)

    # --- call -----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, sequences: SitsSequence | Sequence[SitsSequence], dates: Any, num_samples: int = 1,
                 num_inference_steps: int | None = None, seed: int | None = 0,
                 generator: torch.Generator | None = None) -> ForecastOutput:
        # 1. inputs
        seqs = [sequences] if isinstance(sequences, (SitsSequence, dict)) else list(sequences)
        if not seqs:
            raise InputError("no sequence to forecast: give at least one SitsSequence")
        # dates: one date, a list of dates (a rollout shared by all sequences), or one list per sequence
        if isinstance(dates, (str, int, dt.date)):
            per_seq = [[dates]] * len(seqs)
        elif len(dates) and all(isinstance(d, (list, tuple)) for d in dates):
            if len(dates) != len(seqs) or len({len(d) for d in dates}) != 1:
                raise DateError("give one list of dates per sequence, all of the same length")
            per_seq = [list(d) for d in dates]
        else:
            per_seq = [list(dates)] * len(seqs)
        targets = [[parse_date(d) for d in row] for row in per_seq]
        for row in targets:
            if not row or sorted(set(row)) != row:
                raise DateError(f"forecast dates {[d.isoformat() for d in row]} must be increasing and distinct")
        if num_inference_steps is None:  # the weights' own default, else 20
            num_inference_steps = int(getattr(self.model, "default_steps", None) or 20)
        if num_samples < 1 or num_inference_steps < 1:
            raise InputError("num_samples and num_inference_steps must be at least 1")
        hist = [self._history(s) for s in seqs]
        sizes = {h.shape[-2:] for h, _ in hist}
        if len(sizes) > 1:
            raise InputError(f"sequences of different sizes {sorted(sizes)} in one call: forecast them one by one")
        for (_, d), row in zip(hist, targets):
            if to_days([row[0]])[0] <= float(d[-1]):
                raise DateError(f"forecast date {row[0]} is not after the last frame ({from_days(float(d[-1]))}): "
                                "ask for a later date")
        # long horizons: intermediate dates, so each step covers at most an observed interval
        plans = [rollout_days(float(d[-1]), list(to_days(row)), self.step_limit(d))
                 for (_, d), row in zip(hist, targets)]
        if len({tuple(flags) for _, flags in plans}) > 1:  # different rollouts: one sequence at a time
            outs = [self(seq, [from_days(x) for x in to_days(row)], num_samples, num_inference_steps, seed, generator)
                    for seq, row in zip(seqs, targets)]
            return concat_outputs(outs)
        requested = plans[0][1]
        target_table = torch.tensor(np.stack([np.asarray(days) for days, _ in plans]))  # [B, N] days
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        history = torch.from_numpy(np.stack([h for h, _ in hist]))  # [B, T, C, H, W]
        days = torch.from_numpy(np.stack([d for _, d in hist]))  # [B, T]
        b = history.shape[0]

        # 2-5. forecast each date, feeding each forecast back for the next (rollout)
        trajectory: list[ForecastOutput] = []
        k = num_samples
        rows = 1  # windows per sequence: K after the first date (each sample continues its own future)
        for step in range(target_table.shape[1]):
            target_days = target_table[:, step].repeat_interleave(rows)  # [B*rows]
            cond, texts = self._conditioning(history, days)
            samples = forecast_tiled(self.model, history, days, target_days, k if step == 0 else 1,
                                     num_inference_steps, generator, overlap=self.tile_overlap,
                                     tile_batch=self.tile_batch, **cond)  # [B', K', C, H, W]
            if step == 0 and k > 1:  # B windows -> B*K windows
                rows = k
                history = history.repeat_interleave(k, dim=0)
                days = days.repeat_interleave(k, dim=0)
                target_days = target_days.repeat_interleave(k)
            images = samples.reshape(b, k, *samples.shape[2:])  # [B, K, C, H, W]
            spread = images.std(dim=1, unbiased=False) if k > 1 else None
            if requested[step]:  # intermediate dates of a long rollout are not returned
                trajectory.append(ForecastOutput(images, images.mean(dim=1), spread, target_table[:, step].clone(),
                                                 texts))
            newest = samples.reshape(history.shape[0], *samples.shape[2:])  # [B*K, C, H, W]
            history = torch.cat([history[:, 1:], newest[:, None]], dim=1)
            days = torch.cat([days[:, 1:], target_days[:, None]], dim=1)

        # 6. output: the last date, with the whole trajectory, every input band
        final = trajectory[-1]
        output = ForecastOutput(final.images, final.mean, final.spread, final.target_days, final.texts,
                                trajectory if len(trajectory) > 1 else [])
        return self._with_all_bands(output, seqs)

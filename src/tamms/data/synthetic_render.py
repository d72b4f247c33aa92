"""How a synthetic land-cover map looks from orbit on a given date (R, G, B, NIR in [0, 1]).

Per class: a winter and a summer colour blended by the season of the date (vegetation greens up
in summer, NIR follows), times a static texture (tree crowns, ploughing stripes per field, soil
mottling, lake depth), building roofs in a few colours with shadows to the south-east (sun in
the north-west), darker hedges between fields, then per-date illumination (gain, haze), sensor
noise and optional clouds (soft bright blobs with their shadows). Textures are fixed per
sequence, so an unchanged pixel keeps its look from date to date apart from season and light.
"""

from __future__ import annotations

import numpy as np

from tamms.data.synthetic_layout import (
    BARE, BUILDING, CONSTRUCTION, CROP_GREEN, CROP_PLOUGHED, CROP_RIPE, FOREST, GRASS, ROAD, WATER, Scene,
)

N_CLASSES = 10

# colours (R, G, B, NIR) as a true-colour satellite view shows them after a mild stretch
SUMMER = np.zeros((N_CLASSES, 4), dtype=np.float32)
WINTER = np.zeros((N_CLASSES, 4), dtype=np.float32)
SUMMER[WATER] = (0.06, 0.11, 0.19, 0.03)
WINTER[WATER] = (0.08, 0.11, 0.17, 0.03)
SUMMER[FOREST] = (0.09, 0.18, 0.08, 0.52)
WINTER[FOREST] = (0.13, 0.16, 0.10, 0.30)
SUMMER[GRASS] = (0.30, 0.42, 0.19, 0.55)
WINTER[GRASS] = (0.40, 0.39, 0.26, 0.36)
SUMMER[CROP_GREEN] = (0.22, 0.45, 0.14, 0.68)
WINTER[CROP_GREEN] = (0.30, 0.40, 0.20, 0.48)
SUMMER[CROP_RIPE] = WINTER[CROP_RIPE] = (0.68, 0.58, 0.33, 0.46)
SUMMER[CROP_PLOUGHED] = WINTER[CROP_PLOUGHED] = (0.42, 0.31, 0.22, 0.27)
SUMMER[BARE] = WINTER[BARE] = (0.62, 0.52, 0.40, 0.42)
SUMMER[ROAD] = WINTER[ROAD] = (0.50, 0.50, 0.51, 0.40)
SUMMER[BUILDING] = WINTER[BUILDING] = (0.70, 0.68, 0.66, 0.50)
SUMMER[CONSTRUCTION] = WINTER[CONSTRUCTION] = (0.78, 0.72, 0.62, 0.56)

ROOFS = np.array([
    (0.78, 0.77, 0.76, 0.52),  # light concrete
    (0.46, 0.46, 0.49, 0.38),  # dark grey
    (0.66, 0.36, 0.28, 0.36),  # terracotta
    (0.90, 0.90, 0.88, 0.58),  # white
    (0.56, 0.64, 0.70, 0.46),  # blue-grey metal
    (0.55, 0.44, 0.35, 0.37),  # brown
], dtype=np.float32)

_FIELDISH = np.zeros(N_CLASSES, dtype=bool)
_FIELDISH[[GRASS, CROP_GREEN, CROP_RIPE, CROP_PLOUGHED]] = True

CLOUD = np.array([0.88, 0.89, 0.91, 0.82], dtype=np.float32)
HAZE = np.array([0.8, 0.95, 1.25, 0.5], dtype=np.float32)  # haze scatters blue most


NOISE_SCALES: dict[str, float] = {"fine": 0.55, "canopy": 0.9, "medium": 2.5, "coarse": 6.0, "vcoarse": 13.0}


def noise_bank(rng: np.random.Generator, size: int, scales: dict[str, float] | None = None,
               count: int = 1) -> dict[str, np.ndarray]:
    """Smooth random fields at several scales (std in px of a 64-px tile), zero mean and unit std.

    Each field is `[H, W]` (or `[count, H, W]` when `count` > 1). Made by low-pass filtering white
    noise in the Fourier domain on a tile 1.5x larger, cropped, so fields do not wrap at the edges.
    """
    import scipy.fft

    scales = NOISE_SCALES if scales is None else scales
    n = size + size // 2
    white = rng.standard_normal((count, len(scales), n, n), dtype=np.float32)
    spec = scipy.fft.rfft2(white)  # [count, K, n, n//2+1]
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    r2 = (fy**2 + fx**2).astype(np.float32)
    sig = np.array([s * size / 64.0 for s in scales.values()], dtype=np.float32)[:, None, None]
    spec *= np.exp(-2.0 * (np.pi**2) * r2[None] * sig**2)  # Gaussian blur with std `sig` px
    fields = scipy.fft.irfft2(spec, s=(n, n))[..., :size, :size]
    fields -= fields.mean(axis=(-2, -1), keepdims=True)
    fields /= fields.std(axis=(-2, -1), keepdims=True) + 1e-6
    fields = fields.astype(np.float32)
    if count == 1:
        fields = fields[0]
    return {name: fields[..., k, :, :] for k, name in enumerate(scales)}


def _soften(img: np.ndarray) -> np.ndarray:
    """The sensor's blur: a separable [0.15, 0.7, 0.15] kernel over the last two axes (edges repeated)."""
    out = 0.7 * img
    out[..., 1:, :] += 0.15 * img[..., :-1, :]
    out[..., :-1, :] += 0.15 * img[..., 1:, :]
    out[..., 0, :] += 0.15 * img[..., 0, :]
    out[..., -1, :] += 0.15 * img[..., -1, :]
    res = 0.7 * out
    res[..., 1:] += 0.15 * out[..., :-1]
    res[..., :-1] += 0.15 * out[..., 1:]
    res[..., 0] += 0.15 * out[..., 0]
    res[..., -1] += 0.15 * out[..., -1]
    return res


class Renderer:
    """Static textures of one scene, and `render(landcover, day)` for any date."""

    def __init__(self, scene: Scene, noise: dict[str, np.ndarray], rng: np.random.Generator):
        size = scene.size
        self.size = size
        self.noise = noise
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        fine, canopy, med, coarse = noise["fine"], noise["canopy"], noise["medium"], noise["coarse"]

        # ploughing stripes: one direction and spacing per field parcel
        pid = scene.parcel_id
        n_parcels = int(pid.max()) + 1
        angle = rng.choice([0.0, np.pi / 2], n_parcels) + rng.normal(0, 0.12, n_parcels)
        period = rng.uniform(2.2, 3.6, n_parcels) * max(1.0, size / 128.0)
        tone = rng.normal(0, 1, n_parcels).astype(np.float32)
        a, per = angle[pid], period[pid]
        stripes = np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / per).astype(np.float32)
        parcel_tone = tone[pid]
        hedge = np.zeros((size, size), dtype=bool)  # boundaries between parcels
        hedge[1:, :] |= pid[1:, :] != pid[:-1, :]
        hedge[:, 1:] |= pid[:, 1:] != pid[:, :-1]
        self.hedge = hedge

        depth = scene.depth if scene.depth is not None else np.zeros((size, size), np.float32)
        tex = np.zeros((N_CLASSES, size, size), dtype=np.float32)  # multiplicative texture per class
        tex[WATER] = -0.35 * depth + 0.06 * coarse + 0.03 * fine
        tex[FOREST] = 0.30 * np.tanh(1.6 * canopy) + 0.10 * coarse + 0.06 * fine
        tex[GRASS] = 0.07 * med + 0.10 * coarse + 0.05 * fine
        crop = 0.07 * stripes + 0.06 * coarse + 0.04 * fine + 0.07 * parcel_tone
        tex[CROP_GREEN] = crop + 0.04 * med
        tex[CROP_RIPE] = crop
        tex[CROP_PLOUGHED] = 1.4 * crop
        tex[BARE] = 0.12 * med + 0.06 * coarse + 0.06 * fine
        tex[ROAD] = 0.04 * fine
        tex[BUILDING] = 0.03 * fine
        tex[CONSTRUCTION] = 0.22 * np.tanh(med * 1.2) + 0.08 * fine
        self.tex = tex

        roof_kind = (scene.roof_id * 7919 + int(rng.integers(1000))) % len(ROOFS)
        self.roof_chw = np.ascontiguousarray((ROOFS[roof_kind] * (1 + 0.04 * fine)[..., None]).transpose(2, 0, 1))

    def render(self, lc: np.ndarray, days: np.ndarray, rng: np.random.Generator,
               cloud_prob: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Frames float32 `[N, 4, H, W]` in [0, 1] for land cover `[N, H, W]` on `days` `[N]`, and the
        fraction of each frame under cloud `[N]` (`cloud_prob` per frame: chance it is cloudy)."""
        n, size = lc.shape[0], self.size
        doy = np.asarray(days, dtype=np.float64) % 365.25  # day 0 (1970-01-01) is 1 January
        green = (0.5 + 0.5 * np.cos(2 * np.pi * (doy - 195.0) / 365.25)).astype(np.float32)  # 1 mid-July
        palette = WINTER[None] + green[:, None, None] * (SUMMER - WINTER)[None]  # [N, K, 4]
        frame = np.arange(n)[:, None, None]
        img = np.ascontiguousarray(palette[frame, lc].transpose(0, 3, 1, 2))  # [N, 4, H, W]
        yy, xx = np.ogrid[0:size, 0:size]
        tex = self.tex[lc, yy, xx]  # [N, H, W]
        building = lc == BUILDING
        # one multiplicative factor per pixel: texture, hedges between fields, shadows to the south-east
        tall = building | (lc == FOREST)
        shadow = np.zeros_like(tall)
        shadow[:, 1:, 1:] = tall[:, :-1, :-1]
        bshadow = np.zeros_like(tall)
        bshadow[:, 1:, 1:] = building[:, :-1, :-1]
        factor = (1.0 + tex) * np.where(self.hedge & _FIELDISH[lc], np.float32(0.82), np.float32(1.0))
        factor *= np.where(bshadow & ~tall, np.float32(0.55), np.where(shadow & ~tall, np.float32(0.8), np.float32(1.0)))
        img *= factor[:, None]
        if building.any():  # roofs keep their own colour (no shadow falls on a roof here)
            img = np.where(building[:, None], self.roof_chw[None], img)
        img = _soften(img)

        # illumination of each date: gain, per-band drift, haze
        gain = rng.uniform(0.88, 1.12, (n, 1)) * (1 + rng.normal(0, 0.025, (n, 4)))
        haze = rng.uniform(0.0, 0.05, (n, 1)) * HAZE[None]
        img = img * gain.astype(np.float32)[:, :, None, None] + haze.astype(np.float32)[:, :, None, None]

        cloudy = rng.random(n) < np.broadcast_to(np.asarray(cloud_prob, dtype=np.float64), (n,))
        fractions = np.zeros(n, dtype=np.float64)
        if cloudy.any():
            idx = np.nonzero(cloudy)[0]
            img[idx], fractions[idx] = self._clouds(img[idx], rng)
        img += 0.006 * rng.standard_normal(img.shape, dtype=np.float32)  # sensor noise
        return np.clip(img, 0.0, 1.0), fractions

    def _clouds(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Soft bright blobs, and their shadows offset to the south-east, on frames `[M, 4, H, W]`."""
        m = img.shape[0]
        bank = noise_bank(rng, self.size, {k: NOISE_SCALES[k] for k in ("medium", "coarse", "vcoarse")}, count=m + 1)
        field = (0.75 * bank["vcoarse"] + 0.35 * bank["coarse"] + 0.12 * bank["medium"])[:m]  # [M, H, W]
        cover = rng.uniform(0.05, 0.6, m)
        thr = np.array([np.quantile(field[k], 1.0 - cover[k]) for k in range(m)], dtype=np.float32)
        opacity = rng.uniform(0.75, 1.0, m).astype(np.float32)
        alpha = np.clip((field - thr[:, None, None]) * 1.6 + 0.35, 0.0, 1.0) * opacity[:, None, None]
        shift = max(2, int(round(self.size * 0.06)))
        shade = np.zeros_like(alpha)
        shade[:, shift:, shift:] = alpha[:, :-shift, :-shift]
        img = img * (1.0 - 0.45 * shade)[:, None]
        cloud = CLOUD[None, :, None, None] * (1.0 + 0.05 * bank["medium"][:m])[:, None]
        img = img * (1.0 - alpha)[:, None] + cloud * alpha[:, None]
        return img, (alpha > 0.5).mean(axis=(1, 2))

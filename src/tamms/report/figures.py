"""Pictures for reports: image strips with dates, change overlays, spread maps, and plots.

Everything returns PNG bytes (or uint8 arrays), so a report can embed them as data URIs and stay a
single self-contained HTML file.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np


def to_display_rgb(image: np.ndarray, rgb_bands: Sequence[int] | None = (0, 1, 2), stretch: bool = False) -> np.ndarray:
    """`[C, H, W]` float in [0, 1] -> uint8 `[H, W, 3]` for display.

    `stretch` applies a 2-98 % per-band stretch, for dark real imagery; off by default so that
    a forecast and its truth are shown on the same scale.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[None]
    if img.shape[0] >= 3 and rgb_bands is not None:
        img = img[list(rgb_bands)]
    elif img.shape[0] < 3:
        img = np.repeat(img[:1], 3, axis=0)
    img = np.nan_to_num(img)
    if stretch:
        lo = np.percentile(img, 2, axis=(1, 2), keepdims=True)
        hi = np.percentile(img, 98, axis=(1, 2), keepdims=True)
        img = (img - lo) / np.maximum(hi - lo, 1e-6)
    img = np.clip(img, 0.0, 1.0)
    return (img.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)  # [C,H,W] -> [H,W,3]


def change_overlay(after_rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 32, 96),
                   alpha: float = 0.55) -> np.ndarray:
    """Tint the changed pixels of a uint8 `[H, W, 3]` image; `mask` `[H, W]` (nonzero = changed)."""
    out = after_rgb.astype(np.float32).copy()
    m = np.asarray(mask).astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, dtype=np.float32)
    return out.astype(np.uint8)


def heatmap(values: np.ndarray, cmap: str = "magma", vmax: float | None = None) -> np.ndarray:
    """`[H, W]` (or `[C, H, W]`, averaged over channels) -> uint8 `[H, W, 3]` through a colour map."""
    import matplotlib

    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 3:
        v = v.mean(axis=0)
    top = float(vmax) if vmax is not None else float(max(v.max(), 1e-6))
    rgba = matplotlib.colormaps[cmap](np.clip(v / top, 0, 1))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """uint8 `[H, W, 3]` or `[H, W]` -> PNG bytes (nearest-neighbour upscaling by `scale`)."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def labelled_strip(images: Sequence[np.ndarray], labels: Sequence[str], title: str | None = None,
                   tile_inches: float = 1.7) -> bytes:
    """A row of uint8 `[H, W, 3]` tiles, each with its label underneath (dates, model names) -> PNG."""
    return labelled_grid([images], [labels], title=title, tile_inches=tile_inches)


def labelled_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]],
                  row_titles: Sequence[str] | None = None, column_titles: Sequence[str] | None = None,
                  title: str | None = None, tile_inches: float = 1.7, colors: int | None = None) -> bytes:
    """Rows of uint8 `[H, W, 3]` tiles, each with its label underneath; optional titles on the left of each
    row and above each column of the first row -> PNG (with `colors`: a palette PNG of that many colours, a
    quarter of the bytes for large grids of imagery)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(tile_inches * n_cols, (tile_inches + 0.45) * n_rows),
                             squeeze=False)
    for r, (images, row_labels) in enumerate(zip(rows, labels)):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            ax.imshow(images[c], interpolation="nearest")
            ax.set_xlabel(row_labels[c], fontsize=8)
            if r == 0 and column_titles:
                ax.set_title(column_titles[c], fontsize=8)
        if row_titles:
            axes[r][0].set_ylabel(row_titles[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png_of(fig, colors)


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
              title: str | None = None, marker: str = "o") -> bytes:
    """One line per name: {name: (xs, ys)} -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name, (xs, ys) in series.items():
        order = np.argsort(np.asarray(xs, dtype=float))
        ax.plot(np.asarray(xs, dtype=float)[order], np.asarray(ys, dtype=float)[order], marker=marker, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png_of(fig)


def grouped_bars(groups: Sequence[str], values: dict[str, Sequence[float]], ylabel: str,
                 title: str | None = None) -> bytes:
    """Bars of several series per group: values = {series: [one value per group]} -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.2, 0.9 * len(groups) * max(1, len(values)) / 2), 3.4))
    width = 0.8 / max(1, len(values))
    x = np.arange(len(groups))
    for i, (name, vals) in enumerate(values.items()):
        ax.bar(x + i * width - 0.4 + width / 2, [np.nan if v is None else v for v in vals], width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png_of(fig)


def _png_of(fig, colors: int | None = None) -> bytes:
    """Lay out, render to PNG bytes and close a matplotlib figure (`colors`: quantised to a palette)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    if colors is None:
        return buf.getvalue()
    image = Image.open(buf).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                                    dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()

"""Contact sheets of synthetic sequences, to look at the world with one's own eyes.

One row per sequence: the input frames (RGB), the future frame, the land cover of the last input
frame and of the future frame in preview colours, and the change mask first -> last input frame,
each tile labelled with its date.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tamms.data.sequence import SitsSequence


def _rgb_u8(image: np.ndarray, rgb_bands=(0, 1, 2)) -> np.ndarray:
    rgb = np.transpose(image[list(rgb_bands)], (1, 2, 0))  # [H, W, 3]
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def contact_sheet(sequences: list[SitsSequence], path: str | os.PathLike, scale: int = 2,
                  with_maps: bool = True, palette_colors: int | None = None) -> Path:
    """Write a PNG contact sheet of `sequences` to `path` (overwrites: it is a preview).

    `palette_colors` (e.g. 256) stores the sheet as a palette PNG, several times smaller.
    """
    from PIL import Image, ImageDraw

    from tamms.data.synthetic import CLASS_COLORS

    colors = np.array(CLASS_COLORS, dtype=np.uint8)
    label_h = 12
    rows = []
    for seq in sequences:
        tiles: list[tuple[np.ndarray, str]] = []
        for k in range(seq.num_frames):
            tiles.append((_rgb_u8(seq.frames[k], seq.rgb_bands), seq.dates[k].isoformat()))
        if seq.future_frame is not None:
            tiles.append((_rgb_u8(seq.future_frame, seq.rgb_bands), "F " + seq.future_date.isoformat()))
        if with_maps and seq.landcover is not None:
            tiles.append((colors[seq.landcover[-1]], "land cover"))
            if seq.future_landcover is not None:
                tiles.append((colors[seq.future_landcover], "future lc"))
            change = (seq.landcover[0] != seq.landcover[-1]).astype(np.uint8) * 255
            tiles.append((np.repeat(change[..., None], 3, axis=2), "change 1st-last"))
        h, w = tiles[0][0].shape[:2]
        th, tw = h * scale, w * scale
        row = Image.new("RGB", (len(tiles) * (tw + 4), th + label_h + 4), (255, 255, 255))
        draw = ImageDraw.Draw(row)
        for j, (arr, label) in enumerate(tiles):
            tile = Image.fromarray(arr).resize((tw, th), Image.NEAREST)
            row.paste(tile, (j * (tw + 4), label_h + 2))
            draw.text((j * (tw + 4) + 1, 0), label, fill=(0, 0, 0))
        draw.text((2, th + label_h - 10), seq.meta.get("category", ""), fill=(255, 255, 0), stroke_width=1,
                  stroke_fill=(0, 0, 0))
        rows.append(row)
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette_colors:
        sheet = sheet.quantize(colors=palette_colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    sheet.save(path, optimize=True)
    return path

"""Look at data before using it: a summary table and a contact sheet (every frame with its date).

`inspect_path` recognises a sequence folder (`sequence.json`), a folder of dated images, a LEVIR-CD
folder (A/, B/, label/), and a folder of many sequence folders (one row per sequence).

A contact sheet carries a PNG text entry naming it as one (`SHEET_TAG`), so inspecting the same folder
again replaces its own sheet, while any other file at that path is kept unless `overwrite` is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tamms.data.readers import (
    find_sequence_folders,
    is_levir_cd,
    list_images,
    read_levir_cd,
    read_sequence,
)
from tamms.data.sequence import ChangePair, SitsSequence
from tamms.data.transforms import display_stretch
from tamms.errors import EmptyInputError, InputError

PathLike = str | os.PathLike
SHEET_TAG = ("tamms", "contact sheet")  # PNG text key and value written into every contact sheet


@dataclass
class InspectReport:
    """What `tamms data inspect` prints: a title, summary lines and a table."""

    kind: str  # "sequence" | "levir-cd" | "collection"
    path: Path
    name: str
    columns: list[str]
    rows: list[list[str]]
    summary: list[str] = field(default_factory=list)
    sequences: list[SitsSequence] = field(default_factory=list)
    pairs: list[ChangePair] = field(default_factory=list)
    total: int = 0  # sequences/pairs found (rows may show fewer)


def _crs_label(crs: str | None) -> str:
    if crs is None:
        return "none"
    return crs if len(crs) <= 24 else crs[:21] + "..."


def _pixel_size(seq: SitsSequence) -> str:
    if seq.transform is None:
        return ""
    a, _, _, _, e, _ = seq.transform
    unit = "deg" if seq.crs == "EPSG:4326" else "m"
    return f"{abs(a):.6g} x {abs(e):.6g} {unit}"


def inspect_sequence(seq: SitsSequence | PathLike, **read_kwargs: Any) -> list[dict[str, Any]]:
    """One row per frame: index, date, gap to the previous frame (days), bands, dtype, CRS, size,
    nodata fraction, file."""
    if not isinstance(seq, SitsSequence):
        seq = read_sequence(seq, **read_kwargs)
    gaps = [None] + [int(g) for g in seq.gaps_days]
    paths = seq.meta.get("paths") or [""] * seq.num_frames
    h, w = seq.size
    rows = []
    for t, date in enumerate(seq.dates):
        nodata = float(seq.nodata_mask[t].mean()) if seq.nodata_mask is not None else 0.0
        rows.append({
            "index": t, "date": date.isoformat(), "gap_days": gaps[t], "bands": seq.num_bands,
            "dtype": seq.meta.get("dtype", str(seq.frames.dtype)), "crs": seq.crs, "size": f"{h}x{w}",
            "nodata_fraction": nodata, "file": Path(paths[t]).name if paths[t] else "",
        })
    return rows


def _sequence_report(path: Path, seq: SitsSequence) -> InspectReport:
    columns = ["#", "date", "gap (days)", "bands", "dtype", "CRS", "size", "nodata", "file"]
    rows = [[str(r["index"]), r["date"], "" if r["gap_days"] is None else str(r["gap_days"]), str(r["bands"]),
             r["dtype"], _crs_label(r["crs"]), r["size"], f"{r['nodata_fraction']:.1%}", r["file"]]
            for r in inspect_sequence(seq)]
    if seq.future_date is not None:
        gap = (seq.future_date - seq.dates[-1]).days
        rows.append(["future", seq.future_date.isoformat(), str(gap), str(seq.num_bands), rows[-1][4],
                     rows[-1][5], rows[-1][6], "", Path(seq.meta.get("future_path", "")).name])
    span = (seq.dates[-1] - seq.dates[0]).days
    names = f" ({', '.join(seq.band_names)})" if seq.band_names else ""
    summary = [
        f"{seq.num_frames} frames, {seq.dates[0]} .. {seq.dates[-1]} ({span} days, {span / 365.25:.1f} years)",
        f"{seq.num_bands} bands{names}, raw {seq.meta.get('dtype', '?')}, CRS {_crs_label(seq.crs)}, "
        f"{seq.size[0]}x{seq.size[1]} px" + (f", pixel {_pixel_size(seq)}" if seq.transform else ""),
    ]
    if seq.scaling is not None:
        summary.append(f"scaling to [0, 1]: {seq.scaling.method} {seq.scaling.params}")
    aligned = seq.meta.get("alignment") or []
    if aligned:
        shifts = [max(abs(v) for v in r["shift_px"]) for r in aligned if "shift_px" in r]
        extra = f" (largest shift {max(shifts):.2f} px)" if shifts else ""
        summary.append(f"{len(aligned)} frames brought onto the last frame's grid{extra}")
    if seq.scene:
        summary.append(f"scene: {seq.scene}")
    for cap in seq.captions[:2]:
        summary.append(f"caption: {cap}")
    return InspectReport("sequence", path, seq.meta.get("id", path.name), columns, rows, summary, [seq], total=1)


def _levir_report(path: Path, pairs: list[ChangePair]) -> InspectReport:
    columns = ["pair", "size", "changed"]
    rows = [[p.name, f"{p.before.shape[1]}x{p.before.shape[2]}",
             "" if p.mask is None else f"{float(p.mask.mean()):.1%}"] for p in pairs]
    summary = [f"LEVIR-CD layout: {len(pairs)} before/after pairs with "
               f"{'change masks' if pairs and pairs[0].mask is not None else 'no labels'}"]
    return InspectReport("levir-cd", path, path.name, columns, rows, summary, pairs=pairs, total=len(pairs))


def _collection_report(path: Path, folders: list[Path], limit: int, read_kwargs: dict[str, Any]) -> InspectReport:
    columns = ["sequence", "frames", "first", "last", "gaps (days)", "bands", "size", "category", "future"]
    seqs, rows = [], []
    for folder in folders[:limit]:
        seq = read_sequence(folder, **read_kwargs)
        seqs.append(seq)
        gaps = seq.gaps_days
        rows.append([str(seq.meta.get("id", folder.name)), str(seq.num_frames), seq.dates[0].isoformat(),
                     seq.dates[-1].isoformat(), f"{int(gaps.min())}..{int(gaps.max())}" if len(gaps) else "",
                     str(seq.num_bands), f"{seq.size[0]}x{seq.size[1]}", str(seq.meta.get("category") or ""),
                     seq.future_date.isoformat() if seq.future_date else ""])
    summary = [f"{len(folders)} sequences" + (f" (first {limit} shown)" if len(folders) > limit else "")]
    return InspectReport("collection", path, path.name, columns, rows, summary, seqs, total=len(folders))


def inspect_path(path: PathLike, limit: int = 20, **read_kwargs: Any) -> InspectReport:
    """Summarise whatever `path` holds (sequence folder, dated images, LEVIR-CD, folder of sequences)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a sequence folder, a folder of sequences or a LEVIR-CD folder")
    if path.is_dir() and not (path / "sequence.json").is_file():
        if is_levir_cd(path):
            return _levir_report(path, read_levir_cd(path))
        if not list_images(path):
            folders = find_sequence_folders(path)
            if folders != [path]:
                return _collection_report(path, folders, limit, read_kwargs)
    return _sequence_report(path, read_sequence(path, **read_kwargs))


# --- contact sheet -------------------------------------------------------------------------------
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _tile(rgb01: np.ndarray, tile: int) -> Any:
    """`[3, H, W]` in [0, 1] -> a PIL image whose longer side is `tile` px."""
    from PIL import Image

    img = Image.fromarray((np.clip(rgb01, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    h, w = rgb01.shape[1:]
    scale = tile / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)


def _grid(rows: list[list[tuple[np.ndarray, str]]], title: str, tile: int,
          row_titles: list[str] | None = None) -> Any:
    """Draw rows of (image [3, H, W] in [0, 1], label) with the label (lines split on "\\n") under each
    image, and an optional title line above each row."""
    from PIL import Image, ImageDraw

    font, title_font = _font(13), _font(15)
    pad, line_h, title_h = 6, 16, 26
    tiles = [[(_tile(img, tile), label.split("\n")) for img, label in row] for row in rows]
    cell_w = max(t.width for row in tiles for t, _ in row)
    cell_h = max(t.height for row in tiles for t, _ in row)
    label_h = 4 + line_h * max(len(lines) for row in tiles for _, lines in row)
    row_title_h = line_h + 2 if row_titles else 0
    ncols = max(len(row) for row in tiles)
    width = max(pad + ncols * (cell_w + pad), 360)
    height = title_h + len(tiles) * (row_title_h + cell_h + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 5), title, fill=(235, 235, 235), font=title_font)
    y = title_h
    for r, row in enumerate(tiles):
        if row_titles:
            draw.text((pad, y), row_titles[r], fill=(250, 220, 120), font=font)
            y += row_title_h
        x = pad
        for img, lines in row:
            sheet.paste(img, (x, y))
            for k, line in enumerate(lines):
                tw = draw.textlength(line, font=font)
                draw.text((x + max(0, (cell_w - tw) / 2), y + cell_h + 3 + k * line_h), line,
                          fill=(235, 235, 235), font=font)
            x += cell_w + pad
        y += cell_h + label_h + pad
    return sheet


def _sequence_tiles(seq: SitsSequence, max_frames: int | None = None) -> list[tuple[np.ndarray, str]]:
    frames = seq.rgb()  # [T, 3, H, W]
    valid = None if seq.nodata_mask is None else ~seq.nodata_mask
    stack, labels = [frames], []
    if seq.future_frame is not None:
        fut = seq.future_frame[list(seq.rgb_bands)] if seq.rgb_bands is not None else np.repeat(seq.future_frame[:1], 3, 0)
        stack.append(fut[None])
        if valid is not None:
            valid = np.concatenate([valid, np.ones((1, *seq.size), dtype=bool)])
    shown = display_stretch(np.concatenate(stack), valid)  # one stretch for all frames: comparable
    gaps = [None] + [int(g) for g in seq.gaps_days]
    for t, date in enumerate(seq.dates):
        labels.append(date.isoformat() + ("\nfirst frame" if gaps[t] is None else f"\n+{gaps[t]} days"))
    if seq.future_frame is not None:
        labels.append(f"future {seq.future_date.isoformat()}\n+{(seq.future_date - seq.dates[-1]).days} days")
    tiles = list(zip(shown, labels))
    return tiles if max_frames is None else tiles[:max_frames]


def contact_sheet(
    source: InspectReport | SitsSequence | PathLike,
    out: PathLike,
    overwrite: bool = False,
    columns: int = 5,
    tile: int | None = None,
    max_sequences: int = 8,
) -> Path:
    """Write a PNG with every frame (RGB view, 2-98 % stretch for display) and its date underneath.

    A sequence is laid out `columns` frames per row (its future frame last, when it has one); a
    LEVIR-CD folder one pair per row (before, after, change mask); a collection one sequence per row.
    """
    from tamms.utils import atomic_output

    report = source if isinstance(source, InspectReport) else (
        _sequence_report(Path(source.meta.get("root", ".")), source) if isinstance(source, SitsSequence)
        else inspect_path(source))
    row_titles: list[str] | None = None
    if report.kind == "sequence":
        seq = report.sequences[0]
        tiles = _sequence_tiles(seq)
        rows = [tiles[i: i + columns] for i in range(0, len(tiles), columns)]
        title = f"{report.name}: {seq.num_frames} frames, {seq.dates[0]} .. {seq.dates[-1]}"
        size = tile or _auto_tile(seq.size)
    elif report.kind == "levir-cd":
        rows = []
        for p in report.pairs[:max_sequences]:
            row = [(p.before, f"{p.name}\nA (before)"), (p.after, "\nB (after)")]
            if p.mask is not None:
                row.append((np.repeat(p.mask[None].astype(np.float32), 3, 0), f"\nchange {p.mask.mean():.1%}"))
            rows.append(row)
        title = f"{report.name}: {report.total} pairs (before, after, change)"
        size = tile or 160
    else:
        rows, row_titles = [], []
        for seq in report.sequences[:max_sequences]:
            rows.append(_sequence_tiles(seq, max_frames=6))
            category = seq.meta.get("category")
            row_titles.append(str(seq.meta.get("id", "")) + (f"  ({category})" if category else ""))
        title = f"{report.name}: {min(report.total, max_sequences)} of {report.total} sequences"
        size = tile or (_auto_tile(report.sequences[0].size) if report.sequences else 128)
    if not rows:
        raise EmptyInputError(f"nothing to draw for {report.path}")
    sheet = _grid(rows, title, size, row_titles)
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(*SHEET_TAG)
    info.add_text("source", str(report.path))
    with atomic_output(out, overwrite=overwrite or is_contact_sheet(out)) as tmp:
        sheet.save(tmp, format="PNG", pnginfo=info)
    return Path(out)


def is_contact_sheet(path: PathLike) -> bool:
    """True when `path` is a PNG written by `contact_sheet` (which may then replace it without --overwrite)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            return img.format == "PNG" and getattr(img, "text", {}).get(SHEET_TAG[0]) == SHEET_TAG[1]
    except (UnidentifiedImageError, OSError):
        return False


def _auto_tile(size: Sequence[int]) -> int:
    """Tiles big enough to see (small synthetic frames are enlarged), small enough for a sheet."""
    longest = max(size)
    return 192 if longest >= 192 else max(128, longest * 2)

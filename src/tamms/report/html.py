"""A small self-contained HTML report: headings, text, tables and embedded PNG images.

Images are embedded as data URIs, so the single `index.html` opens in any browser, offline,
and can be mailed or archived as one file.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tamms.report.figures import data_uri
from tamms.utils import write_text_atomic

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1180px;
       color: #1d232a; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .6em 0 1.2em 0; font-size: .9em; }
th, td { border: 1px solid #d0d7de; padding: .28em .6em; text-align: right; }
th { background: #f3f5f7; } td:first-child, th:first-child { text-align: left; }
tr.theirs td { color: #6e7781; font-style: italic; }
figure { display: inline-block; margin: .4em 1em .8em 0; vertical-align: top; }
figcaption { font-size: .82em; color: #57606a; max-width: 640px; }
img { image-rendering: pixelated; max-width: 100%; }
.note { background: #fff8c5; border: 1px solid #eac54f; padding: .5em .8em; border-radius: 6px; font-size: .92em; }
.caption-box { background: #f6f8fa; border-left: 4px solid #0969da; padding: .4em .8em; margin: .4em 0; }
.refs { color: #57606a; font-size: .9em; }
code { background: #f3f5f7; padding: 0 .25em; border-radius: 3px; }
"""


# Marks <body data-images-loaded="ok/total"> once the page has loaded, so a headless browser can
# check that every embedded picture decodes.
_IMAGE_CHECK = (
    "window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
    "document.body.setAttribute('data-images-loaded',ok+'/'+im.length);});"
)


@dataclass
class HtmlReport:
    title: str
    blocks: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.blocks.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css_class: str | None = None) -> None:
        cls = f' class="{css_class}"' if css_class else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")

    def raw(self, fragment: str) -> None:
        """Trusted HTML built by tamms itself (never user text)."""
        self.blocks.append(fragment)

    def text_box(self, label: str, text: str, refs: Sequence[str] = ()) -> None:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in refs)
        refs_html = f'<div class="refs">references:<ul>{items}</ul></div>' if refs else ""
        self.blocks.append(
            f'<div class="caption-box"><b>{html.escape(label)}</b> {html.escape(text)}{refs_html}</div>'
        )

    def image(self, png: bytes, caption: str = "", alt: str | None = None) -> None:
        alt_text = html.escape(alt or caption or "figure")
        self.blocks.append(
            f'<figure><img src="{data_uri(png)}" alt="{alt_text}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None,
              row_classes: Sequence[str | None] | None = None, digits: int = 4) -> None:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = []
        for i, row in enumerate(rows):
            cls = row_classes[i] if row_classes and i < len(row_classes) and row_classes[i] else None
            cells = "".join(f"<td>{html.escape(format_cell(v, digits))}</td>" for v in row)
            body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def render(self) -> str:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self.blocks)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(self.title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f"<p class=\"refs\">made by tamms on {stamp}</p>\n{body}\n<script>{_IMAGE_CHECK}</script></body></html>\n"
        )

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        return write_text_atomic(path, self.render(), overwrite=overwrite)


def format_cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"

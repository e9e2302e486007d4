"""One report, two renderings: a list of blocks written out as Markdown (report.md, PNGs beside it) and as one
self-contained HTML file (report.html: CSS inline, PNGs inline as base64, no script, nothing fetched).

Every piece of text reaches the HTML through `html.escape` (model output and config values are untrusted); the
only unescaped HTML is what this package builds, in `Html` blocks, from escaped parts.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    highlight: set[int] = field(default_factory=set)  # row indexes shown bold (the best row)
    align_right_from: int = 1  # columns from this one on are numbers


@dataclass
class Image:
    path: str  # relative to the report, e.g. plots/pass_at_k.png
    png: bytes
    caption: str


@dataclass
class Html:
    """Markup built by this package from escaped text; Markdown shows `markdown` instead."""

    html: str
    markdown: str = ""


Block = Heading | Paragraph | Table | Image | Html


def render_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(markdown_table(block))
        elif isinstance(block, Image):
            parts.append(f"![{block.caption}]({block.path})")
        elif isinstance(block, Html) and block.markdown:
            parts.append(block.markdown)
    return "\n\n".join(parts) + "\n"


def markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def row(cells: list[str], bold: bool = False) -> str:
        cells = [f"**{cell(c)}**" if bold and str(c) not in ("", "-") else cell(c) for c in cells]
        return "| " + " | ".join(cells) + " |"

    align = ["---" if i < table.align_right_from else "---:" for i in range(len(table.headers))]
    lines = [row(table.headers), "| " + " | ".join(align) + " |"]
    lines += [row(cells, bold=i in table.highlight) for i, cells in enumerate(table.rows)]
    return "\n".join(lines)


def render_html(blocks: list[Block], title: str) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{esc(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(html_table(block))
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Html):
            body.append(block.html)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def html_table(table: Table) -> str:
    def cells(values: list[str], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if i >= table.align_right_from else ''}>{esc(value)}</{tag}>"
            for i, value in enumerate(values)
        )

    rows = [f"<tr>{cells(table.headers, 'th')}</tr>"]
    rows += [
        f"<tr{' class=best' if i in table.highlight else ''}>{cells(values, 'td')}</tr>"
        for i, values in enumerate(table.rows)
    ]
    return "<div class=scroll><table>" + "".join(rows) + "</table></div>"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;
color:#222;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{font-weight:bold;background:#eef7ee}
.scroll{overflow-x:auto}
figure{margin:1rem 0}figure img{max-width:100%}figcaption{font-size:.85rem;color:#555}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-bottom:1.5rem}
.sample{border:1px solid #ddd;border-radius:6px;padding:.5rem .75rem;margin:1rem 0}
.sample pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;padding:.5rem;max-height:22rem;
overflow:auto;font-size:.8rem;margin:.25rem 0}
.badge{display:inline-block;padding:0 .4rem;border-radius:4px;font-size:.8rem;color:#fff}
.correct{background:#2e7d32}.partial{background:#ef6c00}.failed{background:#c62828}.other{background:#777}
.muted{color:#666;font-size:.85rem}
"""

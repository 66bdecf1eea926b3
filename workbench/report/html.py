"""Blocks -> one self-contained HTML file: styles inline, figures as base64 data URIs."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Sequence

from workbench.report.document import (Alert, Block, Bullets, Code, Figure, Heading, Para,
                                       Table)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.alert { border-left: 0.3rem solid #c00; background: #fee; padding: 0.5rem 1rem; font-weight: bold; }
figure { margin: 1rem 0; } figure img { max-width: 100%; }
figcaption { font-style: italic; color: #555; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; }
.csv { color: #777; font-size: 0.8rem; }
"""


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(c.title)}</th>" for c in t.columns)
    rows = []
    for row in t.shown():
        cells = "".join(f'<td class="{"text" if c.kind == "text" else "num"}">{escape(v)}</td>'
                        for c, v in zip(t.columns, row))
        rows.append(f"<tr>{cells}</tr>")
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n"
            f'<p class="csv">(table as CSV: {escape(t.name)}.csv)</p>')


def to_html(blocks: Sequence[Block], title: str, figure_dir: Path) -> str:
    """The report as one HTML page; each figure is read from ``figure_dir`` and inlined."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{escape(b.text)}</p>")
        elif isinstance(b, Alert):
            parts.append(f'<p class="alert">{escape(b.text)}</p>')
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            parts.append(_table(b))
        elif isinstance(b, Figure):
            data = base64.b64encode((figure_dir / b.file).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{escape(b.caption)}" '
                         f'src="data:image/png;base64,{data}"><figcaption>'
                         f"{escape(b.caption)}</figcaption></figure>")
        elif isinstance(b, Code):
            parts.append(f"<pre><code>{escape(b.text.rstrip())}</code></pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")

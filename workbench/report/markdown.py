"""Blocks -> Markdown (GitHub flavour: pipe tables, fenced code)."""

from __future__ import annotations

from typing import Sequence

from workbench.report.document import (Alert, Block, Bullets, Code, Figure, Heading, Para,
                                       Table)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    head = "| " + " | ".join(_cell(c.title) for c in table.columns) + " |"
    rule = "| " + " | ".join("---" if c.kind == "text" else "---:" for c in table.columns) + " |"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.shown()]
    return "\n".join([head, rule, *body, "", f"(table as CSV: `{table.name}.csv`)"])


def to_markdown(blocks: Sequence[Block]) -> str:
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Alert):
            parts.append(f"> **{b.text}**")
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            parts.append(table_markdown(b))
        elif isinstance(b, Figure):
            parts.append(f"![{b.caption}]({b.file})\n\n*{b.caption}*")
        elif isinstance(b, Code):
            fence = "````" if "```" in b.text else "```"
            parts.append(f"{fence}{b.lang}\n{b.text.rstrip()}\n{fence}")
    return "\n\n".join(parts) + "\n"

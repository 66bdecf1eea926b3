"""A report as a list of blocks, rendered by markdown.py and html.py and saved as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable, Union

from workbench.report.tables import fmt, pct


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Alert:
    """A line nobody should miss (e.g. the sample stood in for the full data set)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Column:
    title: str
    kind: str = "text"  # text, pct, loss, seconds, value

    def show(self, value: Any) -> str:
        if value is None:
            return "-"
        return FORMATS[self.kind](value)


FORMATS: dict[str, Callable[[Any], str]] = {
    "text": str, "pct": pct, "loss": lambda v: f"{v:.4f}", "seconds": lambda v: f"{v:.1f}",
    "value": fmt, "points": lambda v: f"{100 * v:+.2f}",
}


@dataclass(frozen=True)
class Table:
    """Raw values (the CSV keeps them as stored) shown through each column's kind."""

    name: str  # the CSV file's stem, unique in a report
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    display: tuple[tuple[str, ...], ...] | None = None  # shown instead, where a column's
    # unit varies by row (a reference's metric)

    def shown(self) -> list[list[str]]:
        if self.display is not None:
            return [list(row) for row in self.display]
        return [[c.show(v) for c, v in zip(self.columns, row)] for row in self.rows]

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.title for c in self.columns])
        for row in self.rows:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                             for v in row])
        return out.getvalue()


@dataclass(frozen=True)
class Figure:
    file: str  # the PNG's name, beside report.md
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


Block = Union[Heading, Para, Alert, Bullets, Table, Figure, Code]

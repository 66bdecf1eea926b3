"""What every section of the report shares: the experiments read from the store, the
builder that collects blocks and figures, and the run table's columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from workbench import formatting, stats
from workbench.report.document import Block, Column, Figure, Heading, Para
from workbench.report.tables import pct
from workbench.store import Store
from workbench.types import DONE


@dataclass
class Experiment:
    name: str
    rows: list[dict[str, Any]]  # every stored run of it, ids ascending
    description: str = ""

    @property
    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == DONE and r["test_acc"] is not None]


@dataclass
class Builder:
    store: Store
    out: Path
    draw: bool  # figures wanted and matplotlib present
    registry: Any
    data_dir: Path | None
    blocks: list[Block] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    why_no_figures: str = ""

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def figure(self, name: str, caption: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        """Draw ``name``.png with ``draw`` and add it; without matplotlib, record the skip."""
        if not self.draw:
            self.skipped.append(f"{name}.png ({caption})")
            return
        path = draw(self.out / f"{name}.png", *args, **kwargs)
        self.figures.append(path)
        self.add(Figure(path.name, caption))


def aggregates(rows: Sequence[dict[str, Any]]) -> list[Any]:
    return stats.aggregate(rows)


def repeated(aggs: Sequence[Any]) -> bool:
    return any(a.n > 1 for a in aggs)


def interval(summary: Any) -> str:
    if summary.low is None:
        return pct(summary.mean)
    return f"{pct(summary.mean)} (95 % CI {pct(summary.low)} to {pct(summary.high)}, n={summary.n})"


def run_columns(keys: Sequence[str]) -> tuple[Column, ...]:
    return (*[Column(k, "value") for k in keys],
            *([] if "epochs" in keys else [Column("epochs", "value")]),
            Column("final val acc", "pct"), Column("best val acc", "pct"),
            Column("@epoch", "value"), Column("final train loss", "loss"),
            Column("test acc", "pct"), Column("seconds", "seconds"))


def run_cells(row: dict[str, Any], keys: Sequence[str], full: dict[str, Any]) -> tuple:
    return (*[row["config"].get(k) for k in keys],
            *([] if "epochs" in keys else [row["epochs_done"]]), full["final_val_acc"],
            row["best_val_acc"], row["best_epoch"], full["final_train_loss"], row["test_acc"],
            row["train_seconds"])


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "x"


def open_section(b: Builder, exp: Experiment, heading: str) -> list[dict[str, Any]]:
    """The section's heading and description; returns its finished runs (saying when none)."""
    b.add(Heading(2, heading))
    describe(b, exp)
    if not exp.done:
        b.add(Para("No finished runs yet."))
    return exp.done


def describe(b: Builder, exp: Experiment) -> None:
    if exp.description:
        b.add(Para(exp.description))
    others = len(exp.rows) - len(exp.done)
    if others:
        b.add(Para(f"{others} of its {len(exp.rows)} stored runs did not finish "
                   "(failed, cancelled, diverged or interrupted) and are left out."))


def run_name(row: dict[str, Any]) -> str:
    return formatting.run_name(row["experiment"], row["label"])


def order_key(value: Any) -> Any:
    return (str(type(value).__name__), value)

"""Summaries of stored results, shared by the faces: tables, the best cell, confusions."""

from __future__ import annotations

from typing import Any, Sequence

from workbench.formatting import fmt, pct  # noqa: F401  (the faces and the report import them here)
from workbench.store import Store
from workbench.types import RunSpec


def rows_for(store: Store, runs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """The stored rows of these runs (latest data set used for each), in plan order."""
    wanted = {(r.experiment, r.config_hash): r for r in runs}
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for row in store.runs():
        key = (row["experiment"], _hash(row))
        if key in wanted:
            by_key[key] = row  # ids ascend: the newest wins
    order = {(r.experiment, r.config_hash): i for i, r in enumerate(runs)}
    return sorted(by_key.values(), key=lambda row: order[(row["experiment"], _hash(row))])


def _hash(row: dict[str, Any]) -> str:
    return str(row["config_hash"])


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in rows if r.get("test_acc") is not None]
    return max(scored, key=lambda r: r["test_acc"]) if scored else None


def most_confused(confusion: Sequence[Sequence[int]], top: int = 5
                  ) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of the largest off-diagonal cells, largest first."""
    pairs = [(t, p, int(confusion[t][p])) for t in range(len(confusion))
             for p in range(len(confusion)) if t != p and confusion[t][p]]
    return sorted(pairs, key=lambda x: (-x[2], x[0], x[1]))[:top]


def config_delta(config: dict[str, Any], base: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (baseline value, this value) for every key that differs (None: absent)."""
    keys = sorted(set(config) | set(base))
    return {k: (base.get(k), config.get(k)) for k in keys if base.get(k) != config.get(k)}


def delta_text(delta: dict[str, tuple[Any, Any]]) -> str:
    if not delta:
        return "the baseline's config"
    return ", ".join(f"{k} {fmt(a)} -> {fmt(b)}" if a is not None else f"{k} {fmt(b)} (new)"
                     for k, (a, b) in delta.items())

"""Two hyperparameters pivoted into a colour-scaled accuracy heatmap, and the factor effects.

A cell (cursor on it: a queues its best run, + more seeds of it) shows the mean over seeds of the best config with its two values (other keys may vary
inside a cell: the config with the highest mean stands for it), with its 95 % interval when
it has repeats. ≈ marks every cell whose interval overlaps the best cell's: not
distinguishable from the best. Below: the exact marginal mean of each level of each factor
of a full-factorial grid (workbench.stats), and the largest two-factor interaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Select, Static

from workbench import stats
from workbench.formatting import fmt, pct, run_name
from workbench.summary import cell_text
from workbench.types import DONE

METRICS = (("test acc", "test_acc"), ("best val acc", "best_val_acc"))


@dataclass(frozen=True)
class Pivot:
    row_key: str
    col_key: str
    row_values: tuple
    col_values: tuple
    cells: dict[tuple, tuple[float, int, int]]  # (row, col) -> (mean, runs in cell, best run)
    summaries: dict[tuple, stats.Summary] = field(default_factory=dict)  # the shown config's
    near_best: frozenset = frozenset()  # cells whose interval overlaps the best cell's

    @property
    def best(self) -> tuple[tuple, float] | None:
        if not self.cells:
            return None
        key = max(self.cells, key=lambda k: self.cells[k][0])
        return key, self.cells[key][0]


def varying_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys with more than one value among these rows (the seed aside: repeats of
    one config are averaged, not pivoted)."""
    return stats.varying_keys(r["config"] for r in rows)


def pivot(rows: Sequence[dict[str, Any]], row_key: str, col_key: str, metric: str) -> Pivot:
    """Finished runs -> cells: each the mean over seeds of its best config."""
    aggs = stats.aggregate(rows)
    runs_in: dict[tuple, int] = {}
    shown: dict[tuple, stats.ConfigAggregate] = {}
    for agg in aggs:
        key = (agg.config.get(row_key), agg.config.get(col_key))
        runs_in[key] = runs_in.get(key, 0) + agg.n
        if key not in shown or agg.metric(metric).mean > shown[key].metric(metric).mean:
            shown[key] = agg
    by_id = {r["id"]: r for r in rows}
    cells = {}
    for key, agg in shown.items():
        top = max(agg.run_ids, key=lambda i: by_id[i][metric])
        cells[key] = (agg.metric(metric).mean, runs_in[key], top)
    summaries = {key: agg.metric(metric) for key, agg in shown.items()}
    near: set = set()
    if cells:
        best_key = max(cells, key=lambda k: cells[k][0])
        near = {k for k, s in summaries.items()
                if k != best_key and s.overlaps(summaries[best_key])}
    order = lambda vals: tuple(sorted(vals, key=lambda v: (str(type(v)), v)))  # noqa: E731
    return Pivot(row_key, col_key, order({k[0] for k in cells}), order({k[1] for k in cells}),
                 cells, summaries, frozenset(near))


def heat(value: float, low: float, high: float) -> str:
    """Background colour from red (low) through yellow to green (high)."""
    t = 0.5 if high <= low else (value - low) / (high - low)
    r, g = (200, int(40 + 160 * 2 * t)) if t < 0.5 else (int(200 - 160 * 2 * (t - 0.5)), 200)
    return f"rgb({r},{g},40)"


def heat_cell(p: Pivot, key: tuple, low: float, high: float) -> Text:
    """One cell as drawn: its mark (★ best, ≈ near it), mean, runs and interval."""
    cell = p.cells.get(key)
    if cell is None:
        return Text("·", style="dim", justify="center")
    best = p.best
    is_best = best is not None and best[0] == key
    mark = "★ " if is_best else ("≈ " if key in p.near_best else "")
    colour = heat(cell[0], low, high)
    text = Text(f" {mark}{pct(cell[0])} ", style=f"bold black on {colour}"
                + (" underline" if is_best else ""), justify="center")
    summary = p.summaries.get(key)
    half = summary.half_width if summary else None
    spread = f" ±{100 * half:.2f}" if half is not None else ""
    text.append(f"\n n={cell[1]}{spread} ", style=f"black on {colour}")
    return text


def heat_range(p: Pivot) -> tuple[float, float]:
    values = [c[0] for c in p.cells.values()]
    return (min(values), max(values)) if values else (0.0, 1.0)


class GridTable(DataTable):
    """The heatmap, with a cursor on its cells: a and + act on the cell under it."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="cell", **kwargs)
        self.pivot: Pivot | None = None

    def show(self, p: Pivot) -> None:
        self.pivot = p
        self.clear(columns=True)
        low, high = heat_range(p)
        for cv in p.col_values:
            self.add_column(Text(fmt(cv), justify="center"), key=repr(cv))
        for rv in p.row_values:
            self.add_row(*[heat_cell(p, (rv, cv), low, high) for cv in p.col_values],
                         height=2, key=repr(rv),
                         label=Text(fmt(rv) if p.row_key else "all runs", style="bold"))
        if p.best is not None:  # the cursor starts on the best cell
            rv, cv = p.best[0]
            self.move_cursor(row=p.row_values.index(rv), column=p.col_values.index(cv))

    def selected_cell(self) -> tuple | None:
        p = self.pivot
        if p is None or not self.row_count or not p.col_values:
            return None
        row, col = self.cursor_coordinate
        key = (p.row_values[row], p.col_values[col])
        return key if key in p.cells else None

    def texts(self) -> list[list[str]]:
        """The cells as drawn, row by row (what a user reads)."""
        return [[c.plain for c in self.get_row(repr(rv))] for rv in self.pivot.row_values] \
            if self.pivot else []


def effects_view(rows: Sequence[dict[str, Any]], metric: str, title: str) -> Any:
    """The factor-effects tables of the finished runs in scope, or why there are none."""
    aggs = stats.aggregate(rows)
    groups = {(a.experiment, a.dataset) for a in aggs}
    if len(groups) != 1:
        return Text("factor effects: pick one experiment (its runs on one data set)",
                    style="dim")
    try:
        effects = stats.factor_effects(aggs, metric)
    except ValueError as exc:
        return Text(f"factor effects: {str(exc).removeprefix('factor_effects: ')}",
                    style="dim")
    noise = (f"95% interval from the seed noise pooled over the cells (std "
             f"{100 * effects.noise_std:.2f} pp, df {effects.noise_df})"
             if effects.noise_std is not None else "no repeats: no interval")
    head = Text(f"factor effects on {title}: mean of the cell means at each level, over "
                f"{len(aggs)} cells; {noise}", style="italic")
    table = Table()
    for col in ("factor", "level", "cells", "runs", "mean", "vs grand mean"):
        table.add_column(col, justify="left" if col in ("factor", "level") else "right")
    for factor in effects.factors:
        top = max(effects.levels[factor], key=lambda e: e.mean)
        for i, e in enumerate(effects.levels[factor]):
            table.add_row(factor if i == 0 else "", fmt(e.level), str(e.cells), str(e.runs),
                          Text(cell_text(e.mean, e.half_width),
                               style="bold green" if e is top else ""),
                          f"{100 * (e.mean - effects.grand_mean):+.2f} pp")
    parts: list[Any] = [head, table]
    inter = effects.interaction
    if inter is not None:
        fa, fb = inter.factors
        levels_b = [e.level for e in effects.levels[fb]]
        parts.append(Text(f"largest interaction, {fa} x {fb}: cells stray up to "
                          f"{100 * inter.size:.2f} pp from what {fa} and {fb} add up to",
                          style="italic"))
        cross = Table()
        cross.add_column(f"{fa} \\ {fb}")
        for vb in levels_b:
            cross.add_column(fmt(vb), justify="right")
        for ea in effects.levels[fa]:
            cross.add_row(fmt(ea.level), *[pct(inter.means[(ea.level, vb)]) for vb in levels_b])
        parts.append(cross)
    return Group(*parts)


class GridView(Vertical):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[dict[str, Any]] = []
        self.current: Pivot | None = None
        self.chosen: tuple[str, str] | None = None  # the user's rows/columns, once picked
        self.best_text = ""
        self.effects: Any = None  # the factor-effects tables shown

    def compose(self) -> ComposeResult:
        with Horizontal(id="grid-controls"):
            yield Label("experiment")
            yield Select([("all", "")], value="", allow_blank=False, id="grid-exp")
            yield Label("rows")
            yield Select([], id="grid-rows")
            yield Label("columns")
            yield Select([], id="grid-cols")
            yield Label("metric")
            yield Select(METRICS, value="test_acc", allow_blank=False, id="grid-metric")
        with VerticalScroll():
            yield Static("", id="grid-title")
            yield Static("no finished runs in the store yet", id="grid-empty")
            yield GridTable(id="grid-table")
            yield Static("", id="grid-best")
            yield Static("", id="grid-effects")

    def show(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = list(rows)
        exps = sorted({r["experiment"] for r in self.rows})
        exp_select = self.query_one("#grid-exp", Select)
        chosen = exp_select.value if exp_select.value in exps else ""
        if not chosen and "grid" in exps:
            chosen = "grid"
        with self.prevent(Select.Changed):
            exp_select.set_options([("all", ""), *[(e, e) for e in exps]])
            exp_select.value = chosen
        self._update_keys()
        self.draw()

    def _scope(self) -> list[dict[str, Any]]:
        exp = self.query_one("#grid-exp", Select).value
        return [r for r in self.rows if not exp or r["experiment"] == exp]

    def _update_keys(self) -> None:
        keys = varying_keys([r for r in self._scope() if r["status"] == DONE])
        rows_sel, cols_sel = self.query_one("#grid-rows", Select), \
            self.query_one("#grid-cols", Select)
        r_val = c_val = None
        if self.chosen and self.chosen[0] in keys and self.chosen[1] in keys:
            r_val, c_val = self.chosen
        if r_val is None:
            r_val = "lr" if "lr" in keys else (keys[0] if keys else None)
        if c_val is None or c_val == r_val:
            rest = [k for k in keys if k != r_val]
            c_val = "hidden" if "hidden" in rest else (rest[0] if rest else None)
        with self.prevent(Select.Changed):
            rows_sel.set_options([(k, k) for k in keys])
            cols_sel.set_options([(k, k) for k in keys])
            if r_val is not None:
                rows_sel.value = r_val
            if c_val is not None:
                cols_sel.value = c_val

    def choose(self, row_key: str, col_key: str, experiment: str = "") -> None:
        self.query_one("#grid-exp", Select).value = experiment
        self._update_keys()
        self.chosen = (row_key, col_key)
        self._update_keys()
        self.draw()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id in ("grid-rows", "grid-cols"):
            r, c = (self.query_one(f"#grid-{k}", Select).value for k in ("rows", "cols"))
            if isinstance(r, str) and isinstance(c, str):
                self.chosen = (r, c)
        if event.select.id == "grid-exp":
            self._update_keys()
        self.draw()

    def draw(self) -> None:
        r_key = self.query_one("#grid-rows", Select).value
        c_key = self.query_one("#grid-cols", Select).value
        metric = self.query_one("#grid-metric", Select).value
        target = self.query_one(GridTable)
        empty = self.query_one("#grid-empty", Static)
        effects = self.query_one("#grid-effects", Static)
        head = self.query_one("#grid-title", Static)
        best_line = self.query_one("#grid-best", Static)
        keys = varying_keys([r for r in self._scope() if r["status"] == DONE])
        if len(keys) == 1:  # one varying key (an activation swap): one row of cells
            r_key, c_key = "", keys[0]
        if not isinstance(r_key, str) or not isinstance(c_key, str) or r_key == c_key:
            self.current = None
            target.display = False
            empty.display = True
            empty.update("pick two different hyperparameters that vary between finished "
                         "runs (an experiment with a grid has them)")
            best_line.update("")
            head.update("")
            effects.update("")
            return
        title = dict((v, t) for t, v in METRICS)[metric]
        self.current = pivot(self._scope(), r_key, c_key, metric)
        head.update(f"{title} by {r_key} (rows) and {c_key} (columns): each cell the mean "
                    "over seeds of its best config, n = its runs" if r_key else
                    f"{title} by {c_key}, the only key that varies here (n = runs in the cell)")
        target.display, empty.display = True, False
        target.show(self.current)
        self.effects = effects_view(self._scope(), metric, title)
        effects.update(self.effects)
        best = self.current.best
        if best is None:
            best_line.update("no finished runs with these keys")
            return
        (rv, cv), value = best
        n, rid = self.current.cells[(rv, cv)][1:]
        run = next(r for r in self.rows if r["id"] == rid)
        where = f"{r_key}={fmt(rv)} {c_key}={fmt(cv)}" if r_key else f"{c_key}={fmt(cv)}"
        near = len(self.current.near_best)
        self.best_text = (f"★ best cell: {where} -> {pct(value)} "
                          f"(best run {rid}: {run_name(run['experiment'], run['label'])})"
                          + (f"; ≈ {near} other cell{'s' if near != 1 else ''} not "
                             "distinguishable from it (95% intervals overlap)" if near else ""))
        best_line.update(self.best_text)

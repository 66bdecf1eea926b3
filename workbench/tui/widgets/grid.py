"""Two hyperparameters pivoted into a colour-scaled accuracy heatmap, the best cell marked.

Each cell holds the best accuracy over the runs that share its two values (the other
hyperparameters vary inside the cell), as the seed report's grid figure does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Select, Static

from workbench.tui.widgets.results import fmt, pct

METRICS = (("test acc", "test_acc"), ("best val acc", "best_val_acc"))


@dataclass(frozen=True)
class Pivot:
    row_key: str
    col_key: str
    row_values: tuple
    col_values: tuple
    cells: dict[tuple, tuple[float, int, int]]  # (row value, col value) -> (best, n, run id)

    @property
    def best(self) -> tuple[tuple, float] | None:
        if not self.cells:
            return None
        key = max(self.cells, key=lambda k: self.cells[k][0])
        return key, self.cells[key][0]


def varying_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys with more than one value among these rows."""
    keys = sorted({k for r in rows for k in r["config"]})
    return [k for k in keys if len({repr(r["config"].get(k)) for r in rows}) > 1]


def pivot(rows: Sequence[dict[str, Any]], row_key: str, col_key: str, metric: str) -> Pivot:
    cells: dict[tuple, tuple[float, int, int]] = {}
    for row in rows:
        value = row.get(metric)
        if value is None or row["status"] != "done":
            continue
        key = (row["config"].get(row_key), row["config"].get(col_key))
        best, n, rid = cells.get(key, (-1.0, 0, -1))
        cells[key] = (value, n + 1, row["id"]) if value > best else (best, n + 1, rid)
    order = lambda vals: tuple(sorted(vals, key=lambda v: (str(type(v)), v)))  # noqa: E731
    return Pivot(row_key, col_key, order({k[0] for k in cells}), order({k[1] for k in cells}),
                 cells)


def heat(value: float, low: float, high: float) -> str:
    """Background colour from red (low) through yellow to green (high)."""
    t = 0.5 if high <= low else (value - low) / (high - low)
    r, g = (200, int(40 + 160 * 2 * t)) if t < 0.5 else (int(200 - 160 * 2 * (t - 0.5)), 200)
    return f"rgb({r},{g},40)"


def heatmap(p: Pivot) -> Table:
    table = Table(show_lines=True)
    table.add_column(f"{p.row_key} \\ {p.col_key}" if p.row_key else p.col_key, style="bold")
    for value in p.col_values:
        table.add_column(fmt(value), justify="center")
    values = [c[0] for c in p.cells.values()]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    best = p.best
    for rv in p.row_values:
        line: list[Any] = [fmt(rv) if p.row_key else "all runs"]
        for cv in p.col_values:
            cell = p.cells.get((rv, cv))
            if cell is None:
                line.append(Text("·", style="dim"))
                continue
            is_best = best is not None and best[0] == (rv, cv)
            text = Text((" ★ " if is_best else " ") + pct(cell[0]) + " ",
                        style=f"bold black on {heat(cell[0], low, high)}"
                              + (" underline" if is_best else ""))
            text.append(f"\nn={cell[1]}", style=f"black on {heat(cell[0], low, high)}")
            line.append(text)
        table.add_row(*line)
    return table


class GridView(Vertical):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[dict[str, Any]] = []
        self.current: Pivot | None = None
        self.chosen: tuple[str, str] | None = None  # the user's rows/columns, once picked
        self.best_text = ""

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
            yield Static("no finished runs in the store yet", id="grid-heatmap")
            yield Static("", id="grid-best")

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
        keys = varying_keys([r for r in self._scope() if r["status"] == "done"])
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
        target = self.query_one("#grid-heatmap", Static)
        head = self.query_one("#grid-title", Static)
        best_line = self.query_one("#grid-best", Static)
        keys = varying_keys([r for r in self._scope() if r["status"] == "done"])
        if len(keys) == 1:  # one varying key (an activation swap): one row of cells
            r_key, c_key = "", keys[0]
        if not isinstance(r_key, str) or not isinstance(c_key, str) or r_key == c_key:
            self.current = None
            target.update("pick two different hyperparameters that vary between finished "
                          "runs (an experiment with a grid has them)")
            best_line.update("")
            head.update("")
            return
        title = dict((v, t) for t, v in METRICS)[metric]
        self.current = pivot(self._scope(), r_key, c_key, metric)
        head.update(f"{title} by {r_key} (rows) and {c_key} (columns): each cell's best run, "
                    "n = its runs" if r_key else
                    f"{title} by {c_key}, the only key that varies here (n = runs in the cell)")
        target.update(heatmap(self.current))
        best = self.current.best
        if best is None:
            best_line.update("no finished runs with these keys")
            return
        (rv, cv), value = best
        n, rid = self.current.cells[(rv, cv)][1:]
        run = next(r for r in self.rows if r["id"] == rid)
        where = f"{r_key}={fmt(rv)} {c_key}={fmt(cv)}" if r_key else f"{c_key}={fmt(cv)}"
        self.best_text = (f"★ best cell: {where} -> {pct(value)} "
                          f"(run {rid}: {run['experiment']} {run['label']})")
        best_line.update(self.best_text)

"""Every run in the store as a sortable, filterable table.

Filter: whitespace-separated terms that must all appear in a row (``grid done lr=0.001``).
Sort: click a header, or ``s`` for the next column and ``r`` to reverse. Space marks runs
for the chart overlay; Enter opens the run's confusion matrix; ``h`` lists its attempts (a
rerun keeps the earlier ones; the status says how many when there were several).
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from workbench.formatting import fmt, pct, run_time, status_label, varying_keys
from workbench.store import describe_attempts
from workbench.tui.widgets.experiments import mark

CONFIG_FIRST = ("model", "lr", "hidden", "epochs", "batch_size", "activation", "dropout")
HIDDEN_KEYS = {"dataset", "seed", "optimizer"}  # shown elsewhere (data column) or constant


def config_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The core config keys, then any other key that differs between rows (plugin params)."""
    keys = {k for r in rows for k in r["config"]}
    extra = [k for k in varying_keys(r["config"] for r in rows)
             if k not in CONFIG_FIRST and k not in HIDDEN_KEYS]
    return [k for k in CONFIG_FIRST if k in keys] + extra


def row_cells(row: dict[str, Any], config_keys: Sequence[str]) -> dict[str, Any]:
    """Column key -> plain value (what sorting and filtering see)."""
    cells = {"id": row["id"], "experiment": row["experiment"], "label": row["label"],
             "status": row["status"], "dataset": row["dataset"]}
    for key in config_keys:
        cells[f"cfg:{key}"] = row["config"].get(key)
    cells.update(best_val_acc=row["best_val_acc"], test_acc=row["test_acc"],
                 train_seconds=row["train_seconds"], reference=row.get("reference"))
    return cells


def matches(cells: dict[str, Any], terms: Sequence[str]) -> bool:
    hay = " ".join(f"{k.removeprefix('cfg:')}={fmt(v)} {fmt(v)}" for k, v in cells.items())
    hay = hay.lower()
    return all(t in hay for t in terms)


class ResultsTable(DataTable):
    BINDINGS = [
        Binding("s", "sort_next", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("space", "mark", "Overlay"),
        Binding("slash", "filter", "Filter"),
        Binding("h", "attempts", "Attempts"),
        Binding("e", "app.export_report", "Report"),
    ]

    class Marked(Message):
        def __init__(self, ids: frozenset[int]):
            super().__init__()
            self.ids = ids

    class AttemptsWanted(Message):
        """Show every attempt at this run."""

        def __init__(self, run_id: int):
            super().__init__()
            self.run_id = run_id

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.rows_all: list[dict[str, Any]] = []
        self.config_keys: list[str] = []
        self.columns_order: list[str] = []
        self.sort_key = "id"
        self.sort_reverse = False
        self.terms: list[str] = []
        self.marked: set[int] = set()
        self.visible_ids: list[int] = []

    def show(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the rows (from store.runs()); filter, sort and cursor are kept."""
        self.rows_all = list(rows)
        keys = config_columns(self.rows_all)
        with_ref = any(row.get("reference") for row in self.rows_all)
        if keys != self.config_keys or not self.columns \
                or with_ref != ("reference" in self.columns_order):
            self.config_keys = keys
            self.clear(columns=True)
            self.columns_order = ["mark", "id", "experiment", "label", "status", "dataset",
                                  *[f"cfg:{k}" for k in keys], "best_val_acc", "test_acc",
                                  "train_seconds"]
            if any(row.get("reference") for row in self.rows_all):  # figures to reproduce
                self.columns_order.append("reference")
            titles = {"mark": "", "label": "run", "dataset": "data",
                      "best_val_acc": "best val", "test_acc": "test acc",
                      "train_seconds": "time", "cfg:batch_size": "batch", "reference": "ref",
                      "cfg:activation": "act"}
            for key in self.columns_order:
                self.add_column(titles.get(key, key.removeprefix("cfg:")), key=key)
        self.render_rows()

    def render_rows(self) -> None:
        keep = self.selected_id()
        self.clear()
        table = [(row, row_cells(row, self.config_keys)) for row in self.rows_all]
        table = [(row, cells) for row, cells in table if matches(cells, self.terms)]
        key = self.sort_key
        present = [t for t in table if t[1].get(key) is not None]
        missing = [t for t in table if t[1].get(key) is None]
        present.sort(key=lambda t: _sortable(t[1][key]), reverse=self.sort_reverse)
        self.visible_ids = []
        for row, cells in present + missing:
            self.visible_ids.append(row["id"])
            self.add_row(*self._styled(row, cells), key=str(row["id"]))
        arrow = "▼" if self.sort_reverse else "▲"
        sort_title = key.removeprefix("cfg:")
        self.border_title = (f"results: {len(self.visible_ids)} of {len(self.rows_all)} runs"
                             f" | sorted by {sort_title} {arrow}"
                             + (f" | filter: {' '.join(self.terms)}" if self.terms else "")
                             + (f" | {len(self.marked)} marked for overlay"
                                if self.marked else ""))
        if keep in self.visible_ids:
            self.move_cursor(row=self.visible_ids.index(keep))

    def _styled(self, row: dict[str, Any], cells: dict[str, Any]) -> list[Any]:
        out: list[Any] = [Text("●", style="bold cyan") if row["id"] in self.marked else ""]
        for key in self.columns_order[1:]:
            value = cells[key]
            if key == "status":
                text = mark(value)
                text.append(f" {status_label(row)}")
                if (row.get("attempts") or 1) > 1:
                    text.append(f" · {describe_attempts(row)}", style="dim")
                out.append(text)
            elif key in ("best_val_acc", "test_acc"):
                out.append(Text(pct(value), justify="right"))
            elif key == "train_seconds":
                out.append(Text(run_time(value, row.get("stack_size")), justify="right"))
            else:
                out.append(fmt(value))
        return out

    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        row = self.cursor_row
        return self.visible_ids[row] if 0 <= row < len(self.visible_ids) else None

    def set_filter(self, text: str) -> None:
        self.terms = text.lower().split()
        self.render_rows()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = (not self.sort_reverse) if key == self.sort_key else \
                key in ("best_val_acc", "test_acc")
        self.sort_key, self.sort_reverse = key, reverse
        self.render_rows()

    def action_sort_next(self) -> None:
        keys = self.columns_order[1:]
        i = keys.index(self.sort_key) if self.sort_key in keys else -1
        key = keys[(i + 1) % len(keys)]
        self.sort_by(key, reverse=key in ("best_val_acc", "test_acc"))

    def action_reverse(self) -> None:
        self.sort_by(self.sort_key, not self.sort_reverse)

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        self.marked.symmetric_difference_update({run_id})
        self.render_rows()
        self.post_message(self.Marked(frozenset(self.marked)))

    def action_attempts(self) -> None:
        run_id = self.selected_id()
        if run_id is not None:
            self.post_message(self.AttemptsWanted(run_id))

    def action_filter(self) -> None:
        self.screen.query_one("#results-filter", Input).focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key and key != "mark":
            self.sort_by(key)

    def cell_texts(self, run_id: int) -> dict[str, str]:
        """Column key -> the text shown for one run (what a user reads)."""
        row = self.get_row(str(run_id))
        return {k: (v.plain if isinstance(v, Text) else str(v))
                for k, v in zip(self.columns_order, row)}


def _sortable(value: Any) -> Any:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


class ResultsView(Vertical):
    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (/): terms that must all appear, e.g. grid done "
                                "hidden=200", id="results-filter")
        yield ResultsTable(id="results-table")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "results-filter":
            self.query_one(ResultsTable).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(ResultsTable).focus()

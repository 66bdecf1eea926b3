"""Every run in the store as a sortable, filterable table, best first.

Columns: the run's identity (id, experiment; pinned when scrolling right), the metrics, then
only the config keys that vary among the shown rows (the constant ones are listed under the
table), and the figure to reproduce where an experiment states one. Filter: terms that must
all appear (``grid done lr=0.001``) and numeric comparisons (``test>0.95``, ``test>95``,
``hidden>=50``). Sort: each column's letter (shown in its header; again to reverse), a header
click, or ``s``/``r``. Space marks runs for the chart overlay; Enter opens the run's confusion
matrix; ``h`` lists its attempts (a rerun keeps the earlier ones; the status says how many
when there were several).
"""

from __future__ import annotations

import operator
import re
from typing import Any, Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from workbench import stats
from workbench.formatting import fmt, pct, run_time, status_label, varying_keys
from workbench.store import describe_attempts
from workbench.tui.widgets.experiments import mark

CONFIG_FIRST = ("model", "lr", "hidden", "epochs", "batch_size", "activation", "dropout")
HIDDEN_KEYS = {"dataset"}  # shown in the data column
METRICS = ("test_acc", "best_val_acc")  # sorted best first
IDENTITY = ("mark", "id", "experiment")  # pinned on the left
TITLES = {"mark": "", "dataset": "data", "best_val_acc": "best val", "test_acc": "test acc",
          "train_seconds": "time", "cfg:batch_size": "batch", "cfg:activation": "act",
          "reference": "ref"}
# Sort letters: fixed for the fixed columns; a config column takes the first free letter of
# its name. Letters the app or the table already use are never taken.
FIXED_SORT = {"id": "i", "experiment": "p", "test_acc": "t", "best_val_acc": "v",
              "status": "u", "train_seconds": "w"}
TAKEN = set("acqrsxgkdhe") | set(FIXED_SORT.values())
ALIASES = {"test": "test_acc", "val": "best_val_acc", "time": "train_seconds",
           "batch": "batch_size", "data": "dataset"}
COMPARE = re.compile(r"^([a-z_]+)(>=|<=|!=|>|<|=)(.+)$")
OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
       "=": operator.eq, "!=": operator.ne}


def config_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The config keys that differ between rows: core keys first, then plugin params."""
    varying = set(varying_keys(r["config"] for r in rows)) - HIDDEN_KEYS
    return [k for k in CONFIG_FIRST if k in varying] + sorted(varying - set(CONFIG_FIRST))


def constant_config(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The config keys every row shares, with their value (folded out of the table)."""
    if not rows:
        return {}
    keys = {k for r in rows for k in r["config"]} - HIDDEN_KEYS
    shared = {k for k in keys if len({repr(r["config"].get(k)) for r in rows}) == 1}
    order = [k for k in CONFIG_FIRST if k in shared] + sorted(shared - set(CONFIG_FIRST))
    return {k: rows[0]["config"].get(k) for k in order}


def group_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config (its finished runs over seeds), shaped like a store row: the id
    and time of its best run, the metrics' means, and ``n`` and ``summaries`` besides."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for agg in stats.aggregate(rows):
        top = by_id[max(agg.run_ids, key=lambda i: by_id[i]["test_acc"])]
        out.append({**top, "config": dict(agg.config), "label": agg.label,
                    "test_acc": agg.test_acc.mean, "best_val_acc": agg.best_val_acc.mean,
                    "status": f"n={agg.n}", "n": agg.n, "run_ids": agg.run_ids,
                    "summaries": {m: agg.metric(m) for m in METRICS}})
    return out


def row_cells(row: dict[str, Any], config_keys: Sequence[str]) -> dict[str, Any]:
    """Column key -> plain value (what sorting sees)."""
    cells = {"id": row["id"], "experiment": row["experiment"],
             "test_acc": row["test_acc"], "best_val_acc": row["best_val_acc"],
             "status": row["status"]}
    for key in config_keys:
        cells[f"cfg:{key}"] = row["config"].get(key)
    cells.update(dataset=row["dataset"], train_seconds=row["train_seconds"],
                 reference=row.get("reference"))
    return cells


def parse_filter(text: str) -> tuple[list[str], list[tuple[str, Any, float]], list[str]]:
    """Filter text -> (words, comparisons (key, op, number), problems)."""
    words, comparisons, problems = [], [], []
    for term in text.lower().split():
        found = COMPARE.match(term)
        if not found or found.group(2) == "=" and not _is_number(found.group(3)):
            words.append(term)
            continue
        key, op, number = found.groups()
        if not _is_number(number):
            problems.append(f"{term}: {number!r} is not a number")
            continue
        comparisons.append((ALIASES.get(key, key), OPS[op], float(number)))
    return words, comparisons, problems


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def matches(row: dict[str, Any], words: Sequence[str],
            comparisons: Sequence[tuple[str, Any, float]] = ()) -> bool:
    """Every word appears in the row (any column or config key=value) and every comparison
    holds. An accuracy compared with a number above 1 is read as a percentage."""
    values = {"id": row["id"], "experiment": row["experiment"], "label": row["label"],
              "status": row["status"], "dataset": row["dataset"],
              "test_acc": row["test_acc"], "best_val_acc": row["best_val_acc"],
              "train_seconds": row["train_seconds"], **row["config"]}
    hay = " ".join(f"{k}={fmt(v)} {fmt(v)}" for k, v in values.items()).lower()
    if not all(w in hay for w in words):
        return False
    for key, op, number in comparisons:
        value = values.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if key in METRICS and number > 1:
            value = 100 * value
        if not op(value, number):
            return False
    return True


class ResultsTable(DataTable):
    BINDINGS = [
        # s, r and h stay off the footer (in the help and the palette): with them it ran past
        # 150 columns and hid the app's ? Help and q Quit
        Binding("s", "sort_next", "Sort", show=False),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("space", "mark", "Overlay"),
        Binding("slash", "filter", "Filter"),
        Binding("h", "attempts", "Attempts", show=False),
        Binding("e", "app.export_report", "Report"),
        Binding("g", "group", "Group by config"),
        Binding("d", "diff", "Diff A/B"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    class Compare(Message):
        """Compare two runs' confusion matrices: B - A."""

        def __init__(self, run_a: int, run_b: int):
            super().__init__()
            self.run_a, self.run_b = run_a, run_b

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
        super().__init__(cursor_type="row", zebra_stripes=True,
                         fixed_columns=len(IDENTITY), **kwargs)
        self.rows_all: list[dict[str, Any]] = []
        self.config_keys: list[str] = []
        self.columns_order: list[str] = []
        self.sort_letters: dict[str, str] = {}  # letter -> column key
        self.sort_key = "test_acc"  # best first
        self.sort_reverse = True
        self.words: list[str] = []
        self.comparisons: list[tuple[str, Any, float]] = []
        self.filter_text = ""
        self.filter_problems: list[str] = []
        self.marked: set[int] = set()
        self.visible_ids: list[int] = []
        self.grouped = False  # one row per config over its seeds (ids: each config's best run)
        self.diff_a: int | None = None  # run A of a confusion diff, once picked with d

    def show(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the rows (from store.runs()); filter, sort and cursor are kept."""
        self.rows_all = list(rows)
        self.render_rows()

    def _set_columns(self, keys: list[str], with_ref: bool) -> None:
        if keys == self.config_keys and self.columns \
                and with_ref == ("reference" in self.columns_order):
            return
        self.config_keys = keys
        self.clear(columns=True)
        self.columns_order = [*IDENTITY, *METRICS, "status", *[f"cfg:{k}" for k in keys],
                              "dataset", "train_seconds", *(["reference"] if with_ref else [])]
        letters = {key: letter for key, letter in FIXED_SORT.items()}
        used = set(TAKEN)
        for key in [f"cfg:{k}" for k in keys] + ["dataset"]:
            name = key.removeprefix("cfg:")
            letter = next((c for c in name.lower() if c.isalpha() and c not in used), None)
            if letter:
                letters[key] = letter
                used.add(letter)
        self.sort_letters = {letter: key for key, letter in letters.items()}
        for key in self.columns_order:
            title = TITLES.get(key, key.removeprefix("cfg:"))
            letter = letters.get(key)
            header = Text(title)
            if letter:
                header.append(f" {letter}", style="dim")
            if key in (*METRICS, "train_seconds"):
                header.justify = "right"
            self.add_column(header, key=key)

    def render_rows(self) -> None:
        keep = self.selected_id()
        known = {"id", "train_seconds", *METRICS} | {k for r in self.rows_all
                                                       for k in r["config"]}
        unknown = [f"{key}: no such column or config key (try test, val, time, lr, hidden, "
                   "epochs, batch)" for key, _, _ in self.comparisons if key not in known]
        shown = [r for r in self.rows_all if matches(r, self.words, self.comparisons)]
        if self.grouped:
            shown = group_rows(shown)
        self._set_columns(config_columns(shown), any(r.get("reference") for r in shown))
        self.clear()
        table = [(row, row_cells(row, self.config_keys)) for row in shown]
        key = self.sort_key
        present = [t for t in table if t[1].get(key) is not None]
        missing = [t for t in table if t[1].get(key) is None]
        present.sort(key=lambda t: _sortable(t[1][key]), reverse=self.sort_reverse)
        self.visible_ids = []
        for row, cells in present + missing:
            self.visible_ids.append(row["id"])
            self.add_row(*self._styled(row, cells), key=str(row["id"]))
        arrow = "▼" if self.sort_reverse else "▲"
        sort_title = TITLES.get(key, key.removeprefix("cfg:"))
        what = (f"{len(self.visible_ids)} configs ({sum(r['n'] for r in shown)} finished "
                f"runs, mean ± 95% interval over seeds)" if self.grouped else
                f"{len(self.visible_ids)} of {len(self.rows_all)} runs")
        self.border_title = (f"results: {what} | sorted by {sort_title} {arrow}"
                             + (f" | filter: {self.filter_text}" if self.filter_text else "")
                             + (f" | {len(self.marked)} marked for overlay"
                                if self.marked else "")
                             + (f" | diff: A = run {self.diff_a}, d on run B"
                                if self.diff_a is not None else ""))
        same = constant_config(shown)
        problems = self.filter_problems + unknown
        self.border_subtitle = ("; ".join(problems) if problems else
                                ("all shown: " + " ".join(f"{k}={fmt(v)}" for k, v in
                                                          same.items())) if same else "")
        if keep in self.visible_ids:
            self.move_cursor(row=self.visible_ids.index(keep))

    def _styled(self, row: dict[str, Any], cells: dict[str, Any]) -> list[Any]:
        out: list[Any] = [Text("●", style="bold cyan") if row["id"] in self.marked else ""]
        for key in self.columns_order[1:]:
            value = cells[key]
            if key == "status" and "n" in row:  # a config over its seeds
                out.append(Text(value, style="cyan"))
            elif key == "status":
                text = mark(value)
                text.append(f" {status_label(row)}")
                if (row.get("attempts") or 1) > 1:
                    text.append(f" · {describe_attempts(row)}", style="dim")
                out.append(text)
            elif key in METRICS:
                summary = row.get("summaries", {}).get(key)
                shown = pct(value) if summary is None or summary.half_width is None else \
                    f"{100 * value:.2f} ±{100 * summary.half_width:.2f}%"
                out.append(Text(shown, justify="right",
                                style="bold" if key == "test_acc" else ""))
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

    def select_run(self, run_id: int) -> None:
        """Put the cursor on a run, clearing a filter that hides it."""
        if run_id not in self.visible_ids and self.filter_text:
            self.screen.query_one("#results-filter", Input).value = ""
            self.set_filter("")
        if run_id in self.visible_ids:
            self.move_cursor(row=self.visible_ids.index(run_id))

    def set_filter(self, text: str) -> None:
        self.filter_text = " ".join(text.split())
        self.words, self.comparisons, self.filter_problems = parse_filter(text)
        self.render_rows()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = (not self.sort_reverse) if key == self.sort_key else key in METRICS
        self.sort_key, self.sort_reverse = key, reverse
        self.render_rows()

    def action_sort_next(self) -> None:
        keys = self.columns_order[1:]
        i = keys.index(self.sort_key) if self.sort_key in keys else -1
        key = keys[(i + 1) % len(keys)]
        self.sort_by(key, reverse=key in METRICS)

    def action_diff(self) -> None:
        """d on run A, then d on run B: compare their confusion matrices (d on A again, or
        escape, forgets A)."""
        run_id = self.selected_id()
        if run_id is None:
            return
        if self.diff_a is None or self.diff_a == run_id:
            self.diff_a = None if self.diff_a == run_id else run_id
        else:
            self.post_message(self.Compare(self.diff_a, run_id))
            self.diff_a = None
        self.render_rows()

    def action_group(self) -> None:
        self.grouped = not self.grouped
        self.config_keys = []  # the seed column comes and goes
        self.render_rows()

    def action_reverse(self) -> None:
        self.sort_by(self.sort_key, not self.sort_reverse)

    def on_key(self, event: events.Key) -> None:
        """A column's letter sorts by it (best first for the metrics); again reverses."""
        key = self.sort_letters.get(event.character or "")
        if key is not None:
            event.stop()
            event.prevent_default()
            self.sort_by(key)

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

    def action_clear_filter(self) -> None:
        if self.diff_a is not None:
            self.diff_a = None
            self.render_rows()
        elif self.filter_text:
            self.screen.query_one("#results-filter", Input).value = ""
            self.set_filter("")

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


class FilterInput(Input):
    """The results filter; Escape (like Enter) goes back to the table, keeping the filter."""

    BINDINGS = [Binding("escape", "leave", "Back to the table", show=False)]

    def action_leave(self) -> None:
        self.screen.query_one(ResultsTable).focus()


class ResultsView(Vertical):
    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder="filter (/): words and comparisons, e.g. grid done "
                                      "hidden=200 test>0.97; escape: back", id="results-filter")
        yield ResultsTable(id="results-table")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "results-filter":
            self.query_one(ResultsTable).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(ResultsTable).focus()

"""The selected run's confusion matrix as a colour-scaled 10x10 heatmap with counts, its
most-confused pairs, and the test digits of a chosen cell (Enter on the cell)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from workbench.formatting import pct, run_name
from workbench.report import most_confused
from workbench.tui.widgets.digits import Gallery, TestSet


def cell_style(count: int, true: int, predicted: int, row_total: int, max_off: int) -> str:
    """Diagonal: green by the class's recall; off-diagonal: red by count (vs the largest)."""
    if true == predicted:
        t = count / row_total if row_total else 0.0
        g = int(60 + 150 * t)
        return f"bold white on rgb(0,{g},40)"
    if count == 0:
        return "dim"
    t = count / max_off if max_off else 0.0
    return f"bold white on rgb({int(90 + 150 * t)},30,30)"


class ConfusionTable(DataTable):
    """The matrix; the true classes are row labels, so the cursor only ever sits on cells."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="cell", **kwargs)
        self.matrix: list[list[int]] = []

    def show(self, matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> None:
        self.matrix = [list(map(int, row)) for row in matrix]
        self.clear(columns=True)
        for p in range(len(self.matrix)):
            self.add_column(Text(classes[p][:4], justify="right"), key=str(p), width=4)
        max_off = max((v for t, row in enumerate(self.matrix) for p, v in enumerate(row)
                       if t != p), default=0)
        for t, row in enumerate(self.matrix):
            total = sum(row)
            self.add_row(*[Text(str(v), justify="right",
                                style=cell_style(v, t, p, total, max_off))
                           for p, v in enumerate(row)], key=str(t),
                         label=Text(classes[t][:10], style="bold"))

    def shown_counts(self) -> list[list[int]]:
        """The counts as drawn in the cells (what a user reads)."""
        return [[int(c.plain) for c in self.get_row(str(t))] for t in range(len(self.matrix))]


class ConfusionView(Vertical):
    def __init__(self, load_test: Callable[[str], TestSet], **kwargs):
        super().__init__(**kwargs)
        self.load_test = load_test  # for the gallery of a cell's test digits
        self.run: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static("no run selected: pick one on the Results tab (Enter)", id="cm-title")
        with Horizontal(id="cm-top"):
            yield ConfusionTable(id="cm-table")
            yield Static("", id="cm-pairs")
        with VerticalScroll(id="cm-gallery-scroll"):
            yield Gallery(self.load_test, id="cm-gallery")

    def show_run(self, run: dict[str, Any] | None, classes: Sequence[str] | None = None
                 ) -> None:
        """Show a stored run (store.run(id)); None or a run without a matrix says why."""
        self.run = run
        title = self.query_one("#cm-title", Static)
        table = self.query_one(ConfusionTable)
        pairs = self.query_one("#cm-pairs", Static)
        if run is None or not run.get("confusion"):
            table.clear(columns=True)
            pairs.update("")
            title.update("no confusion matrix: " + (
                "no run selected (Results tab, Enter)" if run is None else
                f"run {run['id']} is {run['status']} (only finished runs have one)"))
            return
        cm = run["confusion"]
        names = list(classes) if classes and len(classes) == len(cm) else \
            [str(i) for i in range(len(cm))]
        total = sum(map(sum, cm))
        correct = sum(cm[i][i] for i in range(len(cm)))
        title.update(Text.assemble(
            ("confusion matrix ", "bold"),
            f"run {run['id']}: {run_name(run['experiment'], run['label'])} | {run['dataset']} | test acc {pct(run.get('test_acc'))} "
            f"({correct}/{total}) | rows: true, columns: predicted | Enter: a cell's digits"))
        table.show(cm, names)
        confused = most_confused(cm, top=1)
        if confused:  # the cursor starts on the cell most worth a look
            table.move_cursor(row=confused[0][0], column=confused[0][1])
        lines = Text("most confused\ntrue → predicted\n\n", style="bold")
        for t, p, n in most_confused(cm, top=8):
            lines.append(f"{names[t][:5]:>5} → {names[p][:5]:<5} {n:>4}\n", style="")
        pairs.update(lines)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if self.run is None or not self.run.get("confusion"):
            return
        self.query_one(Gallery).show(self.run, event.coordinate.row, event.coordinate.column)

    def open_cell(self, true: int, predicted: int) -> None:
        table = self.query_one(ConfusionTable)
        table.move_cursor(row=true, column=predicted)
        if self.run is not None and self.run.get("confusion"):
            self.query_one(Gallery).show(self.run, true, predicted)

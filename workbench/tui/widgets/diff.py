"""Two runs' confusion matrices compared: B - A colour-coded, and the test digits only one
of them gets right, drawn like the gallery. Opened from the Results tab (d on run A, then d
on run B); the numbers are workbench.summary.compare_runs', as in ``--compare A B``."""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from workbench.report.testset import load_test_set
from workbench.tui.widgets.digits import MAX_SHOWN, gallery_text
from workbench.tui.widgets.results import pct
from workbench.formatting import plural, run_name


def diff_style(delta: int, on_diagonal: bool, largest: int) -> str:
    """Green where B does better (more right on the diagonal, fewer mistakes off it), red
    where it does worse; the stronger, the larger the change."""
    if delta == 0:
        return "dim"
    better = delta > 0 if on_diagonal else delta < 0
    t = min(1.0, abs(delta) / largest) if largest else 1.0
    level = int(70 + 160 * t)
    return f"bold white on rgb(0,{level},50)" if better else f"bold white on rgb({level},30,30)"


class DiffTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="cell", **kwargs)
        self.matrix: list[list[int]] = []

    def show(self, matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> None:
        self.matrix = [list(row) for row in matrix]
        self.clear(columns=True)
        for p, name in enumerate(classes):
            self.add_column(Text(str(name)[:4], justify="right"), key=str(p), width=5)
        largest = max((abs(v) for row in self.matrix for v in row), default=0)
        for t, row in enumerate(self.matrix):
            self.add_row(*[Text(f"{v:+d}" if v else ".", justify="right",
                                style=diff_style(v, t == p, largest))
                           for p, v in enumerate(row)], key=str(t),
                         label=Text(str(classes[t])[:10], style="bold"))

    def shown(self) -> list[list[int]]:
        """The differences as drawn (what a user reads)."""
        return [[0 if c.plain == "." else int(c.plain) for c in self.get_row(str(t))]
                for t in range(len(self.matrix))]


class DiffScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "close", "Back")]

    def __init__(self, run_a: dict[str, Any], run_b: dict[str, Any]):
        super().__init__()
        self.run_a, self.run_b = run_a, run_b
        self.diff: Any = None  # stats.ConfusionDiff once loaded
        self.galleries: dict[str, list[int]] = {}  # "b_only"/"a_only" -> indices drawn

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="diff-title")
        with Horizontal(id="diff-top"):
            yield DiffTable(id="diff-table")
            yield Static("comparing ...", id="diff-counts")
        with VerticalScroll(id="diff-digits"):
            yield Static("", id="diff-b-only")
            yield Static("", id="diff-a-only")
        yield Footer()

    def _title(self) -> Text:
        def name(which: str, run: dict[str, Any]) -> str:
            return (f"{which} = run {run['id']} {run_name(run['experiment'], run['label'])} "
                    f"(test {pct(run.get('test_acc'))})")
        return Text.assemble(("confusion diff B - A ", "bold"),
                             f"{name('A', self.run_a)} | {name('B', self.run_b)} | "
                             "green: B better, red: B worse")

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="diff")
    def _load(self) -> None:
        from workbench.summary import CompareError, compare_runs

        app: Any = self.app
        try:
            diff, _, _, classes = compare_runs(app.store, self.run_a["id"], self.run_b["id"],
                                               app.session.registry, app.settings.data_dir)
            test = load_test_set(self.run_a["dataset"], app.session.registry,
                                 app.settings.data_dir)
        except (CompareError, Exception) as exc:  # a reason a user can act on, on screen
            app.call_from_thread(self._failed, str(exc).removeprefix("--compare: "))
            return
        app.call_from_thread(self._fill, diff, classes, test.images)

    def _failed(self, why: str) -> None:
        self.query_one("#diff-counts", Static).update(Text(f"cannot compare: {why}",
                                                           style="bold red"))

    def _fill(self, diff: Any, classes: Sequence[str], images: Any) -> None:
        self.diff = diff
        self.query_one(DiffTable).show(diff.matrix, classes)
        net = len(diff.b_only) - len(diff.a_only)
        self.query_one("#diff-counts", Static).update(
            f"of {diff.total} test digits:\n"
            f"  B right, A wrong: {len(diff.b_only)}\n"
            f"  A right, B wrong: {len(diff.a_only)}\n"
            f"  both wrong: {diff.both_wrong}\n"
            f"  net for B: {net:+d}")
        width = max(30, self.app.size.width - 2)
        for key, which, idx in (("b_only", "B right, A wrong", diff.b_only),
                                ("a_only", "A right, B wrong", diff.a_only)):
            shown = list(idx[:MAX_SHOWN])
            self.galleries[key] = shown
            head = Text(f"{which}: {plural(len(idx), 'test digit')}"
                        + (f" (first {MAX_SHOWN} shown)" if len(idx) > MAX_SHOWN else "")
                        + "\n", style="bold")
            head.append_text(gallery_text([images[i] for i in shown], shown, width))
            self.query_one(f"#diff-{key.replace('_', '-')}", Static).update(head)

    def action_close(self) -> None:
        self.dismiss(None)

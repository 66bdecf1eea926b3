"""Modal screens: help, the quit confirmation, a run's attempts, resuming a kept queue."""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Markdown, Static

from workbench.store import describe_attempts
from workbench.tui.widgets.results import pct

HELP = """\
# mnist-workbench

Run, watch and compare MNIST experiments. Results go to the store (SQLite); the headless
mode (`mnist-workbench --headless FILE`) writes the same store, and `--store PATH` (without
a study file) browses it: its own experiments; training into it asks first.

## Everywhere
| key | action |
|---|---|
| `1`..`5` | Experiments, Live, Results, Grid, Confusion |
| `a` | queue what the tab in view has selected (tree node, result row, shown run) |
| `A` | queue everything (runs already done or queued are left out, and counted) |
| `c` | cancel the run in flight (stops within one batch, stored as *cancelled*); in a stack, only the one selected (Live table, queue) or charted |
| `+` | queue 3 more seeds of the selected config (the seeds after those stored or queued) |
| `ctrl+p` | command palette: the keys above, the tabs, the Results actions and the report, searchable |
| `?` / `f1` | this help |
| `q` | quit (asks when a run is in flight, then cancels it cleanly) |

## Attached to a headless sweep (`mnist-workbench attach`)
Keys above steer that sweep: it carries out each request between batches and answers (shown
here, in its output, and kept in the store). `S` stops it after the current run. `q` leaves it
running.

## Queue (Experiments tab, right)
| key | action |
|---|---|
| `[` / `]` | move the selected pending run up / down |
| `x` / `delete` | remove the selected pending run |

## Results
| key | action |
|---|---|
| `/` | filter: words that must all appear and comparisons (`grid done test>0.97 hidden>=50`); `escape` back to the table, again to clear |
| letter in a header | sort by that column (`t` test acc, `v` best val, ...); again to reverse |
| `s` / `r` | sort by the next column / reverse (or click a header) |
| `space` | mark a run for the chart overlay (Live tab) |
| `g` | group by config: one row per config, n and mean ± 95% interval over its seeds |
| `d` | confusion diff: `d` on run A, then `d` on run B (B - A, and the digits only one gets right) |
| `enter` | open the run's confusion matrix |
| `h` | the run's attempts (a rerun keeps the earlier ones; ● marks the result shown) |
| `e` | write the store's report (Markdown, figures, HTML) into `report/` beside the store |

## Grid
Pick the experiment, the two hyperparameters (rows, columns) and the metric. A cell holds
the mean over seeds of the best config with those two values (± its 95% interval with
repeats); ★ marks the best cell, ≈ every cell whose interval overlaps it (not
distinguishable from the best). Arrows move over the cells: `a` queues a cell's best run,
`+` 3 more seeds of it. Below: the factor effects of a full grid (the mean of each level of
each factor) and the largest two-factor interaction.

## Confusion
The best run until one is picked (Results, `enter`). Arrows move over the 10x10 matrix (the
cursor starts on the most confused cell); `enter` on a cell shows its test digits.

## Live
A line per run in flight (epoch, progress, ETA); `enter` on one charts it. Train and
validation loss per epoch and the smoothed per-batch loss of the charted run; validation
accuracy; overlays of the runs marked on the Results tab. Charts redraw once a second
(drawing costs CPU that training would otherwise get).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmQuit(ModalScreen[bool]):
    """Quit while a run trains? Enter keeps it running: the safe answer is the default."""

    AUTO_FOCUS = "#no"
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, running: str):
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(f"A run is in flight:\n  {self.running}\n\nQuit? It will be cancelled "
                         "(stored as cancelled; finished runs are kept).", id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Keep running (n)", variant="primary", id="no")
                yield Button("Cancel run and quit (y)", variant="error", id="yes")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ResumeQueue(ModalScreen[bool]):
    """Runs were queued when the app last closed: queue them again (y, the default) or not."""

    BINDINGS = [Binding("y", "answer(True)", "Resume"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, names: list[str], gone: int = 0):
        super().__init__()
        self.names, self.gone = names, gone

    def compose(self) -> ComposeResult:
        n = len(self.names)
        shown = "\n".join(f"  {name}" for name in self.names[:8])
        more = f"\n  ... and {n - 8} more" if n > 8 else ""
        with Vertical(id="resume-box"):
            yield Static(f"{n} run{'s were' if n != 1 else ' was'} queued when the app last "
                         f"closed:\n{shown}{more}\n\nQueue {'them' if n != 1 else 'it'} again?",
                         id="resume-text")
            with Horizontal(id="resume-buttons"):
                yield Button("Resume the queue (y)", variant="primary", id="resume")
                yield Button("Drop it (n)", id="drop")

    def on_mount(self) -> None:
        self.query_one("#resume", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "resume")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class AttemptsScreen(ModalScreen[None]):
    """Every attempt at one run (``Store.attempts``), the one its result shows marked."""

    BINDINGS = [Binding("escape,h,q", "close", "Close")]

    def __init__(self, run: dict[str, Any], attempts: list[dict[str, Any]]):
        super().__init__()
        self.run, self.attempts = run, attempts

    def compose(self) -> ComposeResult:
        with Vertical(id="attempts-box"):
            yield Static(f"{self.run['experiment']}: {self.run['label']}: "
                         f"{describe_attempts(self.run)}; ● the result shown",
                         id="attempts-title")
            yield DataTable(id="attempts-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for title in ("", "#", "status", "started", "epochs", "best val", "test acc", "time",
                      "device", "why"):
            table.add_column(title, key=title or "shown")
        for a in self.attempts:
            started = (time.strftime("%Y-%m-%d %H:%M", time.localtime(a["started_at"]))
                       if a["started_at"] else "-")
            table.add_row("●" if a["shown"] else "", str(a["number"]), a["status"], started,
                          str(a["epochs_done"]), pct(a["best_val_acc"]), pct(a["test_acc"]),
                          "-" if a["train_seconds"] is None else f"{a['train_seconds']:.1f}s",
                          a["device"] or "-", " ".join((a["error"] or "").split())[:60],
                          key=str(a["number"]))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
class ConfirmTrain(ConfirmQuit):
    """Train into a store opened only to browse it? Enter says no."""

    def __init__(self, store: str, n_runs: int):
        super().__init__("")
        self.store, self.n_runs = store, n_runs

    def compose(self) -> ComposeResult:
        runs = f"{self.n_runs} run" + ("s" if self.n_runs != 1 else "")
        with Vertical(id="confirm-box"):
            yield Static(f"This store was opened to browse it:\n  {self.store}\n\nTrain "
                         f"{runs} into it? Results are added beside the ones it holds.",
                         id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Do not train (n)", variant="primary", id="no")
                yield Button(f"Train {runs} here (y)", variant="warning", id="yes")

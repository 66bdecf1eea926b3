"""The run queue: the run(s) training now, then the pending runs in order.

Pending runs can be moved ([ and ]) and removed (x); the running one is cancelled with c
(app-wide). The widget only shows what the Runner holds; the Runner owns the queue.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from workbench.tui.widgets.experiments import mark
from workbench.types import QUEUED, RUNNING


class QueueChanged(Message):
    """A pending run was removed from the queue by the user."""

    def __init__(self, run_id: str, removed: bool):
        super().__init__()
        self.run_id, self.removed = run_id, removed


class QueueTable(DataTable):
    BINDINGS = [
        Binding("x,delete", "remove", "Remove"),
        Binding("left_square_bracket", "move(-1)", "Move up"),
        Binding("right_square_bracket", "move(1)", "Move down"),
    ]

    def __init__(self, runner: Any, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.runner = runner
        self._shown: tuple = ()

    def on_mount(self) -> None:
        for label, key, width in (("", "mark", 1), ("experiment", "experiment", 12),
                                  ("run", "run", 22), ("epochs", "epochs", 6)):
            self.add_column(label, key=key, width=width)
        self.border_title = "queue"
        self.sync()

    def sync(self) -> None:
        """Show the runner's queue (cheap when nothing changed)."""
        current, pending = self.runner.current(), self.runner.pending()
        shown = (tuple(r.run_id for r in current), tuple(r.run_id for r in pending))
        if shown == self._shown:
            return
        self._shown = shown
        keep = self.selected_run_id()
        self.clear()
        for status, runs in ((RUNNING, current), (QUEUED, pending)):
            for run in runs:
                self.add_row(mark(status), run.experiment, run.label,
                             str(run.config["epochs"]), key=f"{status}:{run.run_id}")
        self.border_title = f"queue: {len(current)} running, {len(pending)} pending"
        if keep:
            for status in (QUEUED, RUNNING):
                try:
                    self.move_cursor(row=self.get_row_index(f"{status}:{keep}"))
                except Exception:
                    continue

    def selected_run_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        return key.split(":", 1)[1] if key else None

    def action_remove(self) -> None:
        run_id = self.selected_run_id()
        if run_id and self.runner.remove(run_id):
            self.post_message(QueueChanged(run_id, removed=True))
        elif run_id:
            self.app.notify("the running run cannot be removed: cancel it with c",
                            severity="warning")
        self.sync()

    def action_move(self, delta: int) -> None:
        run_id = self.selected_run_id()
        if run_id and self.runner.move(run_id, delta):
            self.sync()
            self.move_cursor(row=self.get_row_index(f"queued:{run_id}"))
        elif run_id:
            self.app.notify("the running run cannot be moved: only pending runs change place",
                            severity="warning")


"""What the user asks of the queue in the app: queue the selection, everything or more seeds
of one config, cancel the run pointed at, stop an attached sweep after its run in flight.
Mixed into workbench.tui.app.WorkbenchApp (its state: session, store, runner, stored rows)."""

from __future__ import annotations

from typing import Any, Sequence

from textual.widgets import DataTable, TabbedContent

from workbench.formatting import plural, run_name
from workbench.tui.screens import ConfirmTrain
from workbench.tui.widgets.charts import LiveCharts
from workbench.tui.widgets.confusion import ConfusionView
from workbench.tui.widgets.experiments import ExperimentTree
from workbench.tui.widgets.grid import GridTable, GridView
from workbench.tui.widgets.queue import QueueTable
from workbench.tui.widgets.results import ResultsTable
from workbench.types import DONE, RunSpec

MORE_SEEDS = 3  # seeds one press of + queues for the selected config


class QueueActions:
    """The app's queue commands (keys a, A, +, c, S and their palette entries)."""

    session: Any
    store: Any
    settings: Any
    runner: Any
    stored_rows: dict[tuple[str, str], dict]
    stored_status: dict[tuple[str, str], str]
    train_confirmed: bool

    def spec_of_row(self, row: dict) -> RunSpec:
        """The run a stored row records: the study's own run when it has it."""
        for run in self.session.runs:
            if (run.experiment, run.config_hash) == (row["experiment"], row["config_hash"]):
                return run
        return RunSpec(row["experiment"], 0, dict(row["config"]), row["label"])

    def selected_runs(self) -> tuple[list[RunSpec], str]:
        """What the tab in view has selected, as runs, and how to name them ([] if none)."""
        tab = self.query_one("#tabs", TabbedContent).active
        if tab == "experiments":
            tree = self.query_one(ExperimentTree)
            node = tree.cursor_node
            what = "everything" if node is None or node.data in (None, ("study",)) else \
                (f"experiment {node.data[1]}" if node.data[0] == "experiment" else
                 run_name(node.data[1].experiment, node.data[1].label))
            return tree.runs_of(node), what
        row = None
        if tab == "results":
            run_id = self.query_one(ResultsTable).selected_id()
            row = self.stored_row_by_id(run_id)
        elif tab == "confusion":
            row = self.query_one(ConfusionView).run
        elif tab == "grid":  # the cell's best run stands for its config
            grid = self.query_one(GridView)
            cell = grid.query_one(GridTable).selected_cell()
            if cell is not None and grid.current is not None:
                row = self.stored_row_by_id(grid.current.cells[cell][2])
        if row is None:
            return [], ""
        return [self.spec_of_row(row)], run_name(row["experiment"], row["label"])

    def stored_row_by_id(self, run_id: int | None) -> dict | None:
        return next((r for r in self.stored_rows.values() if r["id"] == run_id), None)

    def queue(self, runs: Sequence[RunSpec], what: str) -> None:
        """Queue what is neither done nor already queued, and say exactly what happened."""
        if self.store.readonly:
            self.notify(f"{self.store.path} is open read-only (browsed): nothing is trained "
                        "into it. Open the app on a study file to run into it "
                        f"(mnist-workbench FILE --store {self.store.path})", severity="warning")
            return
        if not runs:
            self.notify("nothing selected to queue on this tab", severity="warning")
            return
        in_queue = {r.run_id for r in self.runner.pending() + self.runner.current()}
        done = [] if self.settings.rerun else [
            r for r in runs if self.stored_status.get((r.experiment, r.config_hash)) == DONE]
        waiting = [r for r in runs if r.run_id in in_queue]
        new = [r for r in runs if r not in done and r.run_id not in in_queue]
        if new and not self.train_confirmed:
            def answer(yes: bool | None) -> None:
                if yes:
                    self.train_confirmed = True
                    self.queue(runs, what)
            self.push_screen(ConfirmTrain(str(self.store.path), len(new)), answer)
            return
        self.runner.submit(new)
        parts = [f"queued {what}: {plural(len(new), 'run')}" if new else
                 f"nothing added for {what}"]
        if waiting:
            parts.append(f"{plural(len(waiting), 'run')} already in the queue")
        if done:
            parts.append(f"{plural(len(done), 'run')} already done, skipped (start with "
                         "--rerun to train again)")
        self.notify("; ".join(parts), timeout=5, severity="information" if new else "warning")

    def action_queue_selected(self) -> None:
        runs, what = self.selected_runs()
        self.queue(runs, what)

    def action_more_seeds(self) -> None:
        """Queue MORE_SEEDS more seeds of the selected config (a result row, the shown run):
        the seeds after every one stored or queued for it."""
        from workbench.repeats import more_seeds
        from workbench.stats import config_key

        runs, _ = self.selected_runs()
        if len(runs) != 1:
            self.notify("+ adds seeds to one config: pick a result row or a grid cell",
                        severity="warning")
            return
        run = runs[0]
        key = config_key(run.config)
        taken = [int(r["config"].get("seed", 0)) for r in self.stored_rows.values()
                 if r["experiment"] == run.experiment and config_key(r["config"]) == key]
        taken += [int(r.config.get("seed", 0)) for r in self.runner.pending() +
                  self.runner.current()
                  if r.experiment == run.experiment and config_key(r.config) == key]
        extra = more_seeds(run, taken, MORE_SEEDS)
        base = " ".join(t for t in run.label.split() if not t.startswith("seed="))
        self.queue(extra, f"{MORE_SEEDS} more seeds ({extra[0].config['seed']}-"
                          f"{extra[-1].config['seed']}) of {run_name(run.experiment, base)}")

    def action_queue_all(self) -> None:
        self.queue(self.session.runs, "everything")

    def cancel_target(self, current: Sequence[RunSpec]) -> RunSpec | None:
        """The run in flight the tab in view points at (the Live table's row, the queue's or
        the tree's cursor), else the one the Live tab charts."""
        by_id = {r.run_id: r for r in current}
        tab = self.query_one("#tabs", TabbedContent).active
        picked: list[str | None] = []
        if tab == "live":
            table = self.query_one("#live-runs", DataTable)
            if table.row_count:
                picked.append(table.coordinate_to_cell_key(table.cursor_coordinate)
                              .row_key.value)
        elif tab == "experiments":
            picked.append(self.query_one(QueueTable).selected_run_id())
            node = self.query_one(ExperimentTree).cursor_node
            if node is not None and node.data and node.data[0] == "run":
                picked.append(node.data[1].run_id)
        picked.append(self.query_one(LiveCharts).charted)
        return next((by_id[p] for p in picked if p in by_id), None)

    def action_cancel_run(self) -> None:
        """Cancel the run in flight; in a stack, only the member pointed at."""
        current = self.runner.current()
        if not current:
            self.notify("nothing is running", severity="warning")
            return
        target = self.cancel_target(current) if len(current) > 1 else None
        if target is not None:
            self.runner.cancel_run(target.run_id)
        if target is None or self.runner.ctx.cancel.is_set():
            self.runner.cancel_current()
            self.notify(f"cancelling {', '.join(r.name for r in current)}")
            return
        self.notify(f"cancelling {target.name}; the others in flight train on "
                    f"({plural(len(current) - 1, 'run')})")

    def action_stop_after_current(self) -> None:
        """Attached to a sweep: ask it to stop once the run in flight ends."""
        if not self.attached:
            self.notify("stop after the current run: for a sweep this app is attached to "
                        "(mnist-workbench attach); here, quit or cancel with c",
                        severity="warning")
            return
        self.runner.stop_after_current()
        self.notify("asked the sweep to stop after the current run")

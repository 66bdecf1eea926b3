"""The Textual workbench: experiments and plugins, queue, live charts, results, grid and
confusion matrix, on the same engine as headless mode.

Threads: the Runner trains on its own thread and hands every event to ``_post_event``, which
only posts it as its typed message (workbench.tui.messages; thread-safe). Widgets are touched on the UI thread alone. Charts redraw on a
timer, not per event. The store is written by the runner and read here. Opening it as the
command line asks (study, plugins, store, executor): workbench.tui.launch.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, Tree

from workbench import events as ev
from workbench.engine import Engine
from workbench.tui import messages as msg
from workbench.tui.queue_actions import MORE_SEEDS, QueueActions
from workbench.tui.screens import AttemptsScreen, ConfirmQuit, HelpScreen, ResumeQueue
from workbench.references import attach as attach_references
from workbench.tui.widgets.charts import LiveCharts, Series
from workbench.tui.widgets.confusion import ConfusionView
from workbench.tui.widgets.experiments import ExperimentTree
from workbench.tui.widgets.grid import GridView
from workbench.tui.widgets.plugins import PluginTree
from workbench.tui.widgets.queue import QueueChanged, QueueTable
from workbench.tui.widgets.results import ResultsTable, ResultsView
from workbench.tui.widgets.tabs import ViewTabs
from workbench.formatting import plural, run_name
from workbench.report.testset import load_test_set
from workbench.types import DONE, FAILED, QUEUED, RUNNING, RunSpec

TABS = ("experiments", "live", "results", "grid", "confusion")
FOCUS_OF = {"experiments": "#exp-tree", "live": "#live-runs", "results": "#results-table",
            "grid": "#grid-table",
            "confusion": "#cm-table"}


class WorkbenchApp(QueueActions, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "mnist-workbench"
    # Below 120 columns the screen gets the -narrow class: secondary panels fold (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    # The tab keys are not in the footer (each tab's title starts with its key), so the
    # footer has room for the keys of the view in front.
    BINDINGS = [
        Binding("1", "tab('experiments')", "Experiments", show=False),
        Binding("2", "tab('live')", "Live", show=False),
        Binding("3", "tab('results')", "Results", show=False),
        Binding("4", "tab('grid')", "Grid", show=False),
        Binding("5", "tab('confusion')", "Confusion", show=False),
        Binding("a", "queue_selected", "Queue"),
        Binding("A", "queue_all", "Queue all"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("plus", "more_seeds", f"+{MORE_SEEDS} seeds"),
        Binding("S", "stop_after_current", "Stop after run", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, engine: Engine, redraw_hz: float = 1.0, start_runner: bool = True,
                 browse: bool = False):
        super().__init__()
        self.browse = browse  # opened on a store to read it: training into it asks first
        self.train_confirmed = not browse
        self.session, self.store, self.settings = engine.session, engine.store, engine.settings
        self.runner = engine.runner(self._post_event, keep_queue=not engine.store.readonly)
        self.redraw_hz = redraw_hz
        self.start_runner = start_runner
        self.live_status: dict[str, str] = {}  # run_id -> status seen in events
        self.stored_status: dict[tuple[str, str], str] = {}  # (experiment, hash) -> status
        self.stored_rows: dict[tuple[str, str], dict] = {}  # (experiment, hash) -> store row
        self.skipped: list[str] = []  # skip notices not yet shown: shown once, together
        self.events_seen: dict[str, int] = {}
        where = f" | {engine.place}" if engine.place else ""
        self.sub_title = f"{engine.session.study.title} | store {engine.store.path}{where}"

    # -- runner thread -> UI thread ---------------------------------------------------------

    def _post_event(self, event: ev.Event) -> None:
        self.post_message(msg.message_for(event))

    def compose(self) -> ComposeResult:
        study = self.session.study
        yield Header()
        with ViewTabs(initial="experiments", id="tabs"):
            with TabPane("1 Experiments", id="experiments"):
                with Horizontal():
                    with Vertical(id="exp-left"):
                        yield ExperimentTree(study.title,
                                             [(e.name, e.description) for e in study.experiments],
                                             self.session.runs, id="exp-tree")
                        yield Static("", id="exp-detail")
                    with Vertical(id="exp-right"):
                        yield QueueTable(self.runner, id="queue")
                        yield PluginTree(self.session.registry, id="plugins")
            with TabPane("2 Live", id="live"):
                yield LiveCharts(id="charts")
            with TabPane("3 Results", id="results"):
                yield ResultsView(id="results-view")
            with TabPane("4 Grid", id="grid"):
                yield GridView(id="grid-view")
            with TabPane("5 Confusion", id="confusion"):
                yield ConfusionView(self._load_test_set, id="confusion-view")
        yield Footer()

    def on_mount(self) -> None:
        self.reload_results()
        self.query_one("#exp-tree", ExperimentTree).focus()
        self.set_interval(1.0 / self.redraw_hz, self.tick)
        for failure in self.session.plugin_failures:
            self.notify(failure.message,
                        severity="error", timeout=15)
        if self.store.note:
            self.notify(self.store.note, title="store", timeout=15,
                        severity="warning" if self.store.readonly else "information")
        for note in self.session.notes:
            self.notify(note, timeout=15)
        if self.start_runner:
            self.runner.start()
        self.offer_kept_queue()

    def offer_kept_queue(self) -> None:
        """Runs queued when the app last closed: offer to queue them again."""
        kept = [] if self.store.readonly or self.attached else self.store.saved_queue()
        if not kept:
            return
        by_key = {r.run_id: r for r in self.session.runs}
        runs = [by_key[k["run_key"]] for k in kept if k["run_key"] in by_key]
        gone = len(kept) - len(runs)
        if not runs:
            self.store.save_queue([])
            self.notify(f"the {gone} kept run{'s are' if gone != 1 else ' is'} no longer in "
                        "this study: the kept queue was dropped", severity="warning")
            return

        def answer(resume: bool | None) -> None:
            if resume:
                self.queue(runs, "the kept queue")
            else:
                self.store.save_queue([])
            if gone:
                self.notify(f"{gone} kept run{'s are' if gone != 1 else ' is'} no longer in "
                            "this study and was left out", severity="warning")

        self.push_screen(ResumeQueue([f"{r.experiment}: {r.label}" for r in runs], gone),
                         answer)

    def on_unmount(self) -> None:
        self.runner.stop(cancel=True)
        self.runner.join(60)

    def tick(self) -> None:
        """The 1-2 Hz redraw: charts (only when changed) and the queue (only when changed)."""
        try:
            self.query_one(LiveCharts).redraw()
            self.query_one(QueueTable).sync()
        except NoMatches:  # the app is closing: widgets are going away
            return
        if self.skipped:
            reasons = sorted(set(self.skipped))
            self.notify(f"skipped {plural(len(self.skipped), 'run')}: {reasons[0]}"
                        + (f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1
                           else ""), timeout=6)
            self.skipped = []

    # -- engine events, one handler per type (workbench.tui.messages) ----------------------

    def _seen(self, message: msg.EngineMessage) -> None:
        name = type(message.event).__name__
        self.events_seen[name] = self.events_seen.get(name, 0) + 1

    def _charts(self) -> LiveCharts | None:
        try:
            return self.query_one(LiveCharts)
        except NoMatches:  # the app is closing: a late event has nowhere to go
            return None

    def on_batch_progress(self, message: msg.BatchProgress) -> None:
        self._seen(message)
        e = message.event
        if charts := self._charts():
            charts.batch(e.run, e.epoch, e.batch, e.batches, e.loss)

    def on_epoch_ended(self, message: msg.EpochEnded) -> None:
        self._seen(message)
        if charts := self._charts():
            charts.epoch(message.event.run, message.event.metrics)

    def on_notice(self, message: msg.Notice) -> None:
        self._seen(message)
        e = message.event
        self.notify(e.message, timeout=20, severity={"error": "error", "info": "information"}
                    .get(e.level, "warning"))

    def on_run_queued(self, message: msg.RunQueued) -> None:
        self._seen(message)
        self.live_status[message.event.run.run_id] = QUEUED
        self._run_status_changed()

    def on_run_skipped(self, message: msg.RunSkipped) -> None:
        self._seen(message)
        e = message.event
        self.live_status.pop(e.run.run_id, None)
        self.skipped.append(e.reason)  # shown once, together, on the next refresh
        self._run_status_changed()

    def on_run_started(self, message: msg.RunStarted) -> None:
        self._seen(message)
        e = message.event
        self.live_status[e.run.run_id] = RUNNING
        if charts := self._charts():
            charts.run_started(e.run, e.device, e.dataset)
        self._run_status_changed()

    def on_run_finished(self, message: msg.RunFinished) -> None:
        self._seen(message)
        e = message.event
        self.live_status[e.run.run_id] = e.result.status
        charts = self._charts()
        if charts is None:
            return
        charts.finished(e.run, e.result.status, e.result.test_acc)
        self.reload_results()
        if e.result.status != DONE:
            why = f": {e.result.error}" if e.result.error else ""
            self.notify(f"{e.result.status}: {e.run.name}{why}", timeout=10,
                        severity="error" if e.result.status == FAILED else "warning")
        self._run_status_changed()

    def on_sweep_started(self, message: msg.SweepStarted) -> None:
        self._seen(message)
        self._run_status_changed()

    def on_sweep_finished(self, message: msg.SweepFinished) -> None:
        self._seen(message)
        ended = getattr(self.runner, "ended", None)  # an attached sweep's end, in the header
        if ended:
            self.sub_title += f" | sweep ended: {ended}"
        self.reload_results()
        self._run_status_changed()

    def _run_status_changed(self) -> None:
        self.refresh_marks()
        self.query_one(QueueTable).sync()

    def _load_test_set(self, identity: str) -> Any:
        """The test set a stored run was evaluated on (for the digit gallery)."""
        return load_test_set(identity, self.session.registry, self.settings.data_dir)

    # -- state shown in several views ------------------------------------------------------

    def status_of(self, run: RunSpec) -> str:
        return self.live_status.get(run.run_id) or \
            self.stored_status.get((run.experiment, run.config_hash), "")

    def stored_row(self, run: RunSpec) -> dict | None:
        return self.stored_rows.get((run.experiment, run.config_hash))

    def refresh_marks(self) -> None:
        self.query_one(ExperimentTree).refresh_marks(self.status_of, self.stored_row)

    def reload_results(self) -> None:
        rows = self.store.runs()
        attach_references(rows, self.store.references())
        self.stored_rows = {(r["experiment"], r["config_hash"]): r for r in rows}
        self.stored_status = {key: r["status"] for key, r in self.stored_rows.items()}
        self.query_one(ResultsTable).show(rows)
        self.query_one(GridView).show(rows)
        self.refresh_marks()
        if self.query_one(ConfusionView).run is None:  # until one is picked: the best run
            done = [r for r in rows if r["status"] == "done" and r["test_acc"] is not None]
            if done:
                self.show_run(max(done, key=lambda r: r["test_acc"])["id"])

    def show_run(self, run_id: int | None) -> None:
        """Open a stored run's confusion matrix."""
        self.query_one(ConfusionView).show_run(
            self.store.run(run_id) if run_id is not None else None)

    # -- widget messages ---------------------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        tree = event.control
        if isinstance(tree, ExperimentTree):
            self.query_one("#exp-detail", Static).update(tree.describe(event.node))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        """Enter on a run that has a stored result opens it on the Results tab."""
        if not isinstance(event.control, ExperimentTree) or not event.node.data or \
                event.node.data[0] != "run":
            return
        row = self.stored_row(event.node.data[1])
        if row is None:
            self.notify("no result stored for this run yet: a queues it", timeout=4)
            return
        self.action_tab("results")
        self.query_one(ResultsTable).select_run(row["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, ResultsTable):
            self.show_run(int(event.row_key.value))
            self.action_tab("confusion")

    def on_results_table_marked(self, event: ResultsTable.Marked) -> None:
        series = []
        for run_id in sorted(event.ids):
            row = self.store.run(run_id)
            if row is None:
                continue
            s = Series(f"#{run_id}", f"run {run_id}: {run_name(row['experiment'], row['label'])}")
            for epoch in self.store.epochs(run_id):
                s.add_epoch(epoch)
            series.append(s)
        self.query_one(LiveCharts).set_overlays(series)

    def on_results_table_attempts_wanted(self, event: ResultsTable.AttemptsWanted) -> None:
        row = next((r for r in self.store.runs() if r["id"] == event.run_id), None)
        if row is not None:
            self.push_screen(AttemptsScreen(row, self.store.attempts(event.run_id)))
    def on_results_table_compare(self, event: ResultsTable.Compare) -> None:
        from workbench.tui.widgets.diff import DiffScreen
        a, b = self.store.run(event.run_a), self.store.run(event.run_b)
        if a is None or b is None:
            self.notify("that run is no longer in the store", severity="warning")
            return
        self.push_screen(DiffScreen(a, b))

    def on_queue_changed(self, event: QueueChanged) -> None:
        if event.removed:
            self.live_status.pop(event.run_id, None)
            self.refresh_marks()

    # -- actions ---------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Keys go to the view just shown: its main widget takes the focus."""
        if event.pane.id != event.tabbed_content.active:
            return  # a later switch is on its way: focusing here would be stale
        target = FOCUS_OF.get(event.pane.id or "")
        try:
            self.set_focus(self.query_one(target) if target else None)
        except NoMatches:  # the app is closing
            pass

    @property
    def attached(self) -> bool:
        """Watching a sweep another process runs (workbench.attach): quitting leaves it be."""
        return getattr(self.runner, "attached", False)

    def action_export_report(self) -> None:
        """Write the store's report beside it, as ``mnist-workbench report --html`` does."""
        self.notify(f"writing the report of {self.store.path.name} ...")
        self._export_report()

    @work(thread=True, exclusive=True, group="report")
    def _export_report(self) -> None:
        from workbench.report.build import write_report

        out = self.store.path.parent / "report"
        try:
            written = write_report(self.store, out, html=True, registry=self.session.registry,
                                   data_dir=self.settings.data_dir)
        except (OSError, ValueError) as exc:
            self.call_from_thread(self.notify, f"report not written: {exc}", severity="error")
            return
        figures = (f"{len(written.figures)} figures" if not written.skipped else
                   f"no figures ({written.why_skipped})")
        self.call_from_thread(self.notify, f"report written: {written.markdown} and "
                              f"{written.html.name}, {figures}", timeout=10)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        current = self.runner.current()
        if not current or self.attached:
            await self.shutdown()
            return
        names = ", ".join(r.name for r in current)

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.shutdown(), exclusive=True, group="quit")

        self.push_screen(ConfirmQuit(names), answer)

    async def shutdown(self) -> None:
        """Cancel the run in flight, wait for the runner to record it, then exit."""
        self.runner.stop(cancel=True)
        await asyncio.to_thread(self.runner.join, 120)
        self.exit(0)

    def _on_results(self, action: str) -> None:
        """A Results table action from the palette: its tab shown, then the action."""
        self.action_tab("results")
        getattr(self.query_one(ResultsTable), f"action_{action}")()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Queue selected", "Queue what the tab in view has selected",
                            self.action_queue_selected)
        yield SystemCommand("Queue everything", "Queue every run of the study",
                            self.action_queue_all)
        yield SystemCommand("Cancel running run", "Stop the run in flight (recorded cancelled); "
                            "in a stack, the one selected or charted",
                            self.action_cancel_run)
        yield SystemCommand(f"Queue {MORE_SEEDS} more seeds", "Of the config selected (the "
                            "seeds after those stored or queued)", self.action_more_seeds)
        if self.attached:
            yield SystemCommand("Stop the sweep after its current run", "The attached headless "
                                "sweep drops its pending runs", self.action_stop_after_current)
        for tab in TABS:
            yield SystemCommand(f"Show {tab}", f"Switch to the {tab} view",
                                lambda tab=tab: self.action_tab(tab))
        results = self.query_one(ResultsTable)
        yield SystemCommand("Sort results by test accuracy", "Best first",
                            lambda: results.sort_by("test_acc", True))
        for name, help_text, action in (
                ("Filter results", "Words and comparisons, such as grid test>0.97", "filter"),
                ("Group results by config", "One row per config: n, mean and 95% interval "
                 "over its seeds", "group"),
                ("Show the selected run's attempts", "Every time it trained", "attempts"),
                ("Confusion diff of two runs", "On run A, then on run B", "diff")):
            yield SystemCommand(name, help_text, lambda a=action: self._on_results(a))
        yield SystemCommand("Write the report", "Markdown, figures and HTML into report/ beside "
                            "the store", self.action_export_report)
        yield SystemCommand("Help", "Keys and views", self.action_help)

"""The SSH face: rich progress on a terminal, plain lines everywhere else.

It turns runner events into output and, at the end, prints the results per experiment, the
grid's best cell and the best run's confusion matrix, all read back from the store.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from workbench import events as ev
from workbench.formatting import run_name, run_time, status_label
from workbench.headless_stats import results_table as _table
from workbench.output import QuietStream
from workbench.report import best_row, most_confused, pct, rows_for
from workbench.store import Store, StoreError, describe_attempts
from workbench.types import DONE, RunSpec

if TYPE_CHECKING:
    from workbench.engine import Engine

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, as a program killed by a closed pipe ends


def run_line(run: RunSpec, result: Any) -> str:
    """One summary line per finished run."""
    e = result.epochs[-1] if result.epochs else None
    parts = [f"[{result.status}] {run.name}"]
    if result.test_acc is not None:
        parts.append(f"test {pct(result.test_acc)}")
    if e is not None:
        parts.append(f"val {pct(e.val_acc)} (best {pct(e.best_val_acc)} @ep{e.best_epoch})")
        parts.append(f"loss {e.train_loss:.4f}")
    parts.append(run_time(result.train_seconds, result.stack_size))
    if result.dataset:
        parts.append(result.dataset)
    if result.stopped_early:
        parts.append(result.stopped_early)
    if result.error:
        parts.append(f"- {result.error}")
    return " | ".join(parts)


class Printer:
    """Turns events into output. Thread-safe: the runner thread calls ``__call__``."""

    def __init__(self, console: Console, live: bool):
        self.console, self.live = console, live
        self._lock = threading.Lock()
        self.progress: Progress | None = None
        self._overall = self._current = None
        self.total_epochs = 0
        self._counted: set[str] = set()
        # The run the "current" bar shows: stacked runs start together, so it is the
        # longest of a group, kept until it finishes (others advance only the overall bar).
        self._shown: RunSpec | None = None
        self._shown_epochs = 0

    def start(self, runs: Sequence[RunSpec]) -> None:
        self.total_epochs = sum(int(r.config["epochs"]) for r in runs)
        self._counted = {r.run_id for r in runs}  # runs queued later (by a viewer) add theirs
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self.progress.start()
            self._overall = self.progress.add_task("all runs (epochs)", total=self.total_epochs)
            self._current = self.progress.add_task("waiting", total=1)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str, style: str = "") -> None:
        if self.live:
            self.console.print(text, style=style, markup=False, highlight=False)
        else:
            self.console.file.write(text + "\n")
            self.console.file.flush()

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            self._handle(event)

    def _advance(self, epochs: int) -> None:
        if self.progress is not None:
            self.progress.advance(self._overall, epochs)

    def _handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunQueued) and event.run.run_id not in self._counted:
            self._counted.add(event.run.run_id)
            self.total_epochs += int(event.run.config["epochs"])
            if self.progress is not None:
                self.progress.update(self._overall, total=self.total_epochs)
        elif isinstance(event, ev.Notice):
            style = {"warning": "bold yellow", "error": "bold red"}.get(event.level, "")
            self.say(f"{event.level.upper()}: {event.message}", style)
        elif isinstance(event, ev.RunSkipped):
            self._advance(int(event.run.config["epochs"]))
            self.say(f"[skip] {event.run.name} | {event.reason}", "dim")
        elif isinstance(event, ev.RunStarted):
            if self.progress is not None:
                epochs = int(event.run.config["epochs"])
                if self._shown is None or (self._shown_epochs == 0 and epochs > int(
                        self._shown.config["epochs"])):
                    self._shown, self._shown_epochs = event.run, 0
                    self.progress.reset(self._current, total=epochs,
                                        description=event.run.name)
            else:
                self.say(f"[start] {event.run.name} on {event.device} "
                         f"| {event.dataset}")
        elif isinstance(event, ev.EpochEnded):
            m = event.metrics
            self._advance(1)
            if self.progress is not None:
                if event.run != self._shown:
                    return
                self._shown_epochs += 1
                self.progress.update(
                    self._current, advance=1,
                    description=f"{event.run.name} | val "
                                f"{pct(m.val_acc)} (best {pct(m.best_val_acc)})")
            else:
                lr = f", lr {m.lr:.3g}" if m.lr is not None and event.run.config.get(
                    "callbacks") else ""  # a schedule's rate; a constant one is in the config
                self.say(f"  epoch {m.epoch}/{event.run.config['epochs']}: loss "
                         f"{m.train_loss:.4f}, val loss {m.val_loss:.4f}, Val Acc: "
                         f"{pct(m.val_acc)} (Best: {pct(m.best_val_acc)}){lr} | "
                         f"{event.run.name}")  # stacked runs interleave
        elif isinstance(event, ev.RunFinished):
            if event.run == self._shown:
                self._shown = None
            left = int(event.run.config["epochs"]) - len(event.result.epochs)
            self._advance(max(0, left))
            style = "" if event.result.status == DONE else "bold red"
            self.say(run_line(event.run, event.result), style)


def _short(error: str | None, width: int = 70) -> str:
    text = " ".join((error or "").split())
    return text if len(text) <= width else text[:width - 3] + "..."


def print_summary(console: Console, store: Store, runs: Sequence[RunSpec], live: bool) -> None:
    """Results per experiment, the grid's best cell, per config over seeds where there are
    repeats, factor effects of complete grids, the best run's confusion matrix."""
    rows = rows_for(store, runs)
    if not rows:
        return
    by_exp: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_exp.setdefault(row["experiment"], []).append(row)
    for exp, exp_rows in by_exp.items():
        (_print_table if live else _print_plain)(console, f"{exp} ({len(exp_rows)} runs)",
                                                 exp_rows)
        best = best_row(exp_rows)
        if best is not None and len(exp_rows) > 1:
            console.print(f"best of {exp}: {best['label']} -> test {pct(best['test_acc'])} "
                          f"(best val {pct(best['best_val_acc'])} at epoch {best['best_epoch']})",
                          markup=False, highlight=False)
    from workbench.headless_stats import print_config_summaries
    print_config_summaries(console, rows, live)
    best = best_row(rows)
    if best is None:
        return
    full = store.run(best["id"])
    if not full or not full["confusion"]:
        return
    cm = full["confusion"]
    title = (f"confusion matrix of the best run: {run_name(best['experiment'], best['label'])} "
             f"(test {pct(best['test_acc'])}; rows true, columns predicted)")
    if not live:  # a table's title wraps to the table's width: say it on one line
        console.print(title, markup=False, highlight=False)
    table = _table(title if live else None, live)
    table.add_column("true")
    for p in range(len(cm)):
        table.add_column(str(p), justify="right")
    for t, line in enumerate(cm):
        table.add_row(str(t), *[f"[bold]{v}[/bold]" if (t == p and live) else str(v)
                                for p, v in enumerate(line)])
    console.print(table)
    pairs = most_confused(cm)
    if pairs:
        console.print("most confused (true -> predicted): " + ", ".join(
            f"{t} -> {p}: {n}" for t, p, n in pairs), markup=False, highlight=False)


def print_references(console: Console, store: Store, runs: Sequence[RunSpec],
                     refs: Sequence[Any], live: bool) -> None:
    """Per experiment: here vs each reference figure, and the difference (pp for
    accuracies)."""
    from workbench.data import FALLBACK_MARK
    from workbench.references import compare, fmt_diff, fmt_value

    names = {r.experiment for r in runs}
    comparisons = compare([r for r in refs if r.experiment in names], rows_for(store, runs))
    if not comparisons:
        return
    table = _table("here vs reference", live)
    for col in ("experiment", "run", "metric", "here", "reference", "diff", "source"):
        table.add_column(col, justify="right" if col in ("here", "reference", "diff")
                         else "left")
    for c in comparisons:
        run = c.label or (f"({c.ref.where_text})" if c.ref.where else "-")
        if c.runs > 1 and c.label:
            run = f"best of {c.runs}: {c.label}"
        table.add_row(c.ref.experiment, run, c.ref.metric, fmt_value(c.ref.metric, c.here),
                      fmt_value(c.ref.metric, c.ref.value), fmt_diff(c.ref.metric, c.diff),
                      c.ref.source)
    console.print(table)
    fallbacks = sorted({c.dataset for c in comparisons
                        if c.dataset and FALLBACK_MARK in c.dataset})
    for identity in fallbacks:
        console.print(f"note: runs above trained on {identity}: not comparable with figures "
                      "measured on the full data set", markup=False, highlight=False)
    if any(c.here is None for c in comparisons):
        console.print("-: no finished run with that metric yet", markup=False,
                      highlight=False)
def _print_table(console: Console, title: str, exp_rows: Sequence[dict[str, Any]]) -> None:
    """One experiment's results as a table sized to the terminal."""
    table = _table(title, True)
    notes = any(row["error"] for row in exp_rows)
    tries = any((row.get("attempts") or 1) > 1 for row in exp_rows)
    for col in ("run", "status", *(["attempts"] if tries else []), "best val", "@ep",
                "test acc", "time", "data", *(["why"] if notes else [])):
        table.add_column(col, justify="right" if col in ("best val", "@ep", "test acc",
                                                         "time") else "left")
    for row in exp_rows:
        why = [_short(row["error"])] if notes else []
        attempts = [describe_attempts(row)] if tries else []
        table.add_row(row["label"], status_label(row), *attempts, pct(row["best_val_acc"]),
                      str(row["best_epoch"] or "-"), pct(row["test_acc"]),
                      run_time(row["train_seconds"], row["stack_size"]), row["dataset"], *why)
    console.print(table)


def _print_plain(console: Console, title: str, exp_rows: Sequence[dict[str, Any]]) -> None:
    """One experiment's results for a log or a pipe, readable at 80 columns: each run's
    label on its own line (never wrapped mid-config), its numbers on the next."""
    datasets = {row["dataset"] for row in exp_rows}
    shared = datasets.pop() if len(datasets) == 1 else None
    lines = [title + (f" on {shared}" if shared else "")]
    for row in exp_rows:
        tries = (row.get("attempts") or 1) > 1
        parts = [status_label(row), *([describe_attempts(row)] if tries else []),
                 f"best val {pct(row['best_val_acc'])}"
                 + (f" @ep{row['best_epoch']}" if row["best_epoch"] else ""),
                 f"test {pct(row['test_acc'])}",
                 run_time(row["train_seconds"], row["stack_size"]),
                 *([] if shared else [row["dataset"]]),
                 *([f"why: {_short(row['error'])}"] if row["error"] else [])]
        lines += [f"  {row['label']}", "    " + " | ".join(parts)]
    console.print("\n".join(lines), markup=False, highlight=False)


def make_console(stream: TextIO | None = None) -> tuple[Console, bool]:
    stream = stream or sys.stdout
    live = stream.isatty()
    console = Console(file=stream, force_terminal=live, no_color=not live, highlight=False,
                      width=None if live else 120, soft_wrap=not live)
    return console, live


def preflight_data(ctx: Any, runs: Sequence[RunSpec], printer: Printer) -> bool:
    """Load every data set the runs need before training, so a fallback is said at the start
    and a missing data set stops the sweep before any run."""
    from workbench.data import DataError

    ok = True
    for name in dict.fromkeys(r.config["dataset"] for r in runs):
        try:
            raw = ctx.raw_data(name)
        except DataError as exc:  # every data set's problem is said, then the sweep stops
            printer.say(f"ERROR: data set {name!r} is not available: {exc}", "bold red")
            ok = False
            continue
        printer.say(f"data: {raw.identity}: {len(raw.train_labels)} train + "
                    f"{len(raw.test_labels)} test images from {raw.source}"
                    + (f" (source: {raw.origin})" if raw.origin else ""))
    return ok


def run_headless(engine: Engine, stream: TextIO | None = None, command: str | None = None) -> int:
    """Run an engine's (workbench.engine.open_engine) runs to the end and print as we go.
    Returns the exit code.
    ``command``: the command line; given, the sweep is recorded live for attached viewers
    (workbench.live_writer) and carries out their requests.

    Printing to stdout, a reader that goes away (``| head``) stops the sweep as Ctrl-C does
    (the run in flight recorded as cancelled, finished runs kept), without a word."""
    quiet = None
    if stream is None:
        quiet = sys.stdout = QuietStream(sys.stdout)  # plugins' prints go through it too
    try:
        return _run_headless(engine, stream or quiet, command)
    finally:
        if quiet is not None:
            sys.stdout = quiet._stream


def _run_headless(engine: Engine, stream: Any, command: str | None = None) -> int:
    session, store = engine.session, engine.store
    console, live = make_console(stream)
    printer = Printer(console, live)
    runs = session.runs
    for failure in session.plugin_failures:
        printer.say(f"WARNING: {failure.message}",
                    "bold yellow")
    if store.note:
        printer.say(store.note)
    printer.say(f"mnist-workbench: {len(runs)} runs, "
                f"{sum(int(r.config['epochs']) for r in runs)} epochs -> {store.path}")
    from workbench.references import of_study, record

    refs = of_study(session.study)
    try:
        record(store, session.study)
    except StoreError as exc:
        printer.say(f"WARNING: reference figures not stored: {exc}", "bold yellow")
    for note in session.notes:
        printer.say(f"NOTE: {note}")
    live_sweep = None

    def emit(event: ev.Event) -> None:
        if live_sweep is not None:
            live_sweep.observe(event)
        printer(event)

    runner = engine.runner(emit)
    if not preflight_data(runner.ctx, runs, printer):
        return EXIT_FAILED
    if command is not None:
        from workbench.live_writer import LiveSweep
        path = session.study.path
        live_sweep = LiveSweep(store, runner, printer.say, command,
                               str(path.resolve()) if path else None)
        printer.say(f"live: attach with `mnist-workbench attach --store {store.path}`")
    started = time.perf_counter()
    printer.start(runs)
    interrupted = False
    try:
        runner.submit(runs)
        runner.start(drain=True)
        if live_sweep is not None:
            live_sweep.poll(force=True)
        while not runner.join(0.2):
            if live_sweep is not None:
                live_sweep.poll()
            if getattr(stream, "broken", False):
                runner.stop(cancel=True)
                while not runner.join(0.2):
                    pass
                return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        interrupted = True
        printer.say("interrupted: cancelling the current run (finished runs are kept) ...",
                    "bold yellow")
        runner.stop(cancel=True)
        try:
            while not runner.join(0.2):
                pass
        except KeyboardInterrupt:  # a second Ctrl-C: leave now (the run shows interrupted)
            printer.stop()
            printer.say("second Ctrl-C: quitting now; the current run will be shown as "
                        "interrupted and trained again on the next run")
            os._exit(EXIT_INTERRUPTED)
    finally:
        printer.stop()
        if live_sweep is not None:
            live_sweep.close("interrupted" if interrupted else
                             "stopped on request" if live_sweep.stopping else "finished")
    counts = runner.counts
    if live_sweep is not None:  # runs viewers queued are summed up with the study's
        runs = [*runs, *live_sweep.added]
    print_summary(console, store, runs, live)
    print_references(console, store, runs, refs, live)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do"
    printer.say(f"finished in {time.perf_counter() - started:.1f}s: {summary}")
    if interrupted:
        printer.say("rerun the same command to resume: finished runs are skipped")
        return EXIT_INTERRUPTED
    if runner.error:
        printer.say(f"ERROR: {runner.error}", "bold red")
        return EXIT_FAILED
    return EXIT_FAILED if counts.get("failed") else EXIT_OK

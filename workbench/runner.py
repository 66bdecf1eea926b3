"""The run queue and its background thread: events out, cancel flag in.

A Runner owns a queue of RunSpecs and one worker thread. The executor pulls work units
(a list of runs that train together; one run by default) from the queue, so the faces can
add, reorder and remove pending runs while a sweep is going. Every event goes to ``emit``
on the runner thread: the TUI posts it to itself, headless mode prints it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from workbench import events as ev
from workbench.executors.context import (Executor, RunContext, Settings,  # noqa: F401
                                         apply_threads)  # Settings: re-exported for the faces
from workbench.executors.local import LocalExecutor
from workbench.plugins import Registry
from workbench.store import Store, StoreError
from workbench.types import RunSpec


@dataclass
class QueueState:
    pending: list[RunSpec] = field(default_factory=list)
    current: list[RunSpec] = field(default_factory=list)


class Runner:
    """A queue of runs worked by one background thread."""

    def __init__(self, registry: Registry, store: Store, emit: ev.Emit,
                 settings: Settings | None = None, executor: Executor | None = None,
                 group: Callable[[list[RunSpec]], list[RunSpec]] | None = None,
                 keep_queue: bool = False):
        self.ctx = RunContext(registry, store, settings or Settings(), self._emit)
        self.ctx.next_unit = self._next_unit
        self._face_emit = emit
        self._executor: Executor = executor or LocalExecutor()
        self._group = group or (lambda pending: pending[:1])
        self._state = QueueState()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._keep_queue = keep_queue  # the app's: its queue outlives it, in the store
        self._keeping = threading.Lock()  # one save at a time, so the last save is the latest
        self._drain = False  # stop when the queue is empty (headless)
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()  # set when the runner thread has done everything
        self.counts: dict[str, int] = {}
        self.error: str | None = None  # why the sweep stopped early (the store failed, ...)

    # -- the faces' side --------------------------------------------------------------------

    def submit(self, runs: Sequence[RunSpec]) -> None:
        with self._wake:
            known = {r.run_id for r in self._state.pending + self._state.current}
            new = [r for r in runs if r.run_id not in known]
            self._state.pending.extend(new)
            self._wake.notify_all()
        for run in new:
            self._emit(ev.RunQueued(run))
        self._queue_changed()

    def pending(self) -> list[RunSpec]:
        with self._lock:
            return list(self._state.pending)

    def current(self) -> list[RunSpec]:
        with self._lock:
            return list(self._state.current)

    def remove(self, run_id: str) -> bool:
        with self._lock:
            before = len(self._state.pending)
            self._state.pending = [r for r in self._state.pending if r.run_id != run_id]
            removed = len(self._state.pending) < before
        self._queue_changed()
        return removed

    def move(self, run_id: str, delta: int) -> bool:
        """Move a pending run up (delta < 0) or down the queue."""
        with self._lock:
            ids = [r.run_id for r in self._state.pending]
            if run_id not in ids:
                return False
            i = ids.index(run_id)
            j = max(0, min(len(ids) - 1, i + delta))
            runs = self._state.pending
            runs.insert(j, runs.pop(i))
        self._queue_changed()
        return True

    def _queue_changed(self) -> None:
        """Keep the queue (runs in flight, then pending) in the store. Not once stopping: what
        was queued when the app quit stays kept, for its next start to offer."""
        if not self._keep_queue:
            return
        with self._keeping:
            with self._lock:
                if self._stop:
                    return
                runs = self._state.current + self._state.pending
            try:
                self.ctx.store.save_queue(runs)
            except StoreError as exc:  # the queue works on; only keeping it failed
                self._sink(ev.Notice("warning", f"the queue could not be kept: {exc}"))

    def cancel_current(self) -> None:
        """Cancel the run(s) in flight; they stop within one batch and are recorded."""
        self.ctx.cancel.set()

    def cancel_run(self, run_id: str) -> bool:
        """Cancel one run in flight: only that member when it trains in a stack with others
        (the others train on), else everything in flight. False when it is not in flight."""
        with self._lock:
            current = [r.run_id for r in self._state.current]
            if run_id not in current:
                return False
            alone = len(current) == 1 or not self._executor.member_cancel
            if not alone:
                self.ctx.cancel_runs.add(run_id)
        if alone:
            self.ctx.cancel.set()
        return True

    def start(self, drain: bool = False) -> None:
        self._drain = drain
        self._thread = threading.Thread(target=self._work, name="workbench-runner",
                                        daemon=True)
        self._thread.start()

    def stop(self, cancel: bool = True) -> None:
        """Stop after the current unit (cancelling it when ``cancel``)."""
        with self._wake:
            self._stop = True
            self._state.pending.clear()
            self._wake.notify_all()
        if cancel:
            self.ctx.cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        # Not Thread.is_alive(): before Python 3.13, a Ctrl-C that lands inside Thread.join
        # makes is_alive() say False while the thread still runs (and writes the store).
        if self._thread is not None:
            return self._finished.wait(timeout)
        return True

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._state.current or self._state.pending)

    # -- the runner thread's side -----------------------------------------------------------

    def _emit(self, event: ev.Event) -> None:
        if isinstance(event, (ev.RunFinished, ev.RunSkipped)):  # no longer in flight
            with self._lock:
                self._state.current = [r for r in self._state.current
                                       if r.run_id != event.run.run_id]
                self.ctx.cancel_runs.discard(event.run.run_id)
            self._queue_changed()
        if isinstance(event, ev.RunFinished):
            self.counts[event.result.status] = self.counts.get(event.result.status, 0) + 1
        elif isinstance(event, ev.RunSkipped):
            self.counts["skipped"] = self.counts.get("skipped", 0) + 1
        self._face_emit(event)

    def _next_unit(self) -> list[RunSpec] | None:
        with self._wake:
            if not self._executor.concurrent:
                self._state.current = []  # the previous unit is over
            while not self._state.pending and not self._stop:
                if self._drain:
                    return None
                self._wake.wait(0.5)
            if self._stop:
                return None
            unit = self._group(list(self._state.pending))
            ids = {r.run_id for r in unit}
            self._state.pending = [r for r in self._state.pending if r.run_id not in ids]
            self._state.current += unit  # several units at once on a cluster
            self.ctx.cancel.clear()  # (a pool relays it to its units in flight first)
            if not self._executor.concurrent:  # else each is dropped as its run finishes
                self.ctx.cancel_runs.clear()
            return unit

    def _work(self) -> None:
        started = time.perf_counter()
        try:
            apply_threads(self.ctx.settings.threads)
            self._executor.execute(self.ctx)
        except StoreError as exc:  # disk full, read-only...: nothing more can be recorded
            self.error = (f"{exc}. The sweep stopped; fix the store (free space, "
                          "permissions) and rerun to resume")
            self._emit(ev.Notice("error", self.error))
        except Exception as exc:  # an executor bug: report it, do not hang the faces
            self.error = f"runner stopped: {type(exc).__name__}: {exc}"
            self._emit(ev.Notice("error", self.error))
        finally:
            with self._lock:
                self._state.current = []
            try:
                self._emit(ev.SweepFinished(dict(self.counts), time.perf_counter() - started))
            finally:
                self._finished.set()


def run_all(runs: Sequence[RunSpec], registry: Registry, store: Store, emit: ev.Emit,
            settings: Settings | None = None, executor: Executor | None = None,
            group: Callable[[list[RunSpec]], list[RunSpec]] | None = None) -> Runner:
    """Run every run to the end on a runner thread (blocking); returns the finished Runner."""
    runner = Runner(registry, store, emit, settings, executor, group)
    emit(ev.SweepStarted(tuple(runs), sum(int(r.config["epochs"]) for r in runs)))
    runner.submit(runs)
    runner.start(drain=True)
    while not runner.join(0.2):
        pass
    return runner

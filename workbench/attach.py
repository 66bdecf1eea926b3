"""A viewer attached to a headless sweep that writes the same store.

``AttachedRunner`` looks like a Runner to a face (submit, pending, current, remove, move,
cancel_current, start, stop, join) but trains nothing: a thread polls the store about twice a
second and emits the same events a Runner would (RunStarted, BatchProgress, EpochEnded,
RunFinished, Notice), and every steering call becomes a request in the store that the sweep
answers (workbench.live_store). Stopping it stops only the viewing: the sweep goes on.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from workbench import events as ev
from workbench import live_store as live
from workbench.engine import Engine, Options
from workbench.store import Store, _alive
from workbench.types import INTERRUPTED, RUNNING, EpochMetrics, RunResult, RunSpec

POLL_SECONDS = 0.5


class AttachedRunner:
    """The queue and the runs in flight of a sweep another process runs."""

    attached = True  # a face asks: quitting never stops the sweep

    def __init__(self, store: Store, sweep: dict[str, Any], emit: ev.Emit,
                 poll_seconds: float = POLL_SECONDS):
        self.store, self.sweep, self._emit = store, sweep, emit
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._current: list[RunSpec] = []
        self._pending: list[RunSpec] = []
        self._progress: dict[str, tuple] = {}
        self._epochs_seen: dict[str, int] = {}
        self._leaving: list[RunSpec] = []  # left the queue, result not stored yet
        self._answered = max([0] + [c["id"] for c in live.commands(store, sweep["id"])])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ended: str | None = None  # how the sweep ended, once it has
        # A face reads ctx.cancel after cancel_run (was everything in flight cancelled?).
        # Here nothing is cancelled locally: the sweep's answer says what it did.
        self.ctx = SimpleNamespace(cancel=threading.Event())
        self.counts: dict[str, int] = {}
        self.error: str | None = None

    # -- a face's side ----------------------------------------------------------------------

    def pending(self) -> list[RunSpec]:
        with self._lock:
            return list(self._pending)

    def current(self) -> list[RunSpec]:
        with self._lock:
            return list(self._current)

    @property
    def busy(self) -> bool:
        return self.ended is None

    def _request(self, kind: str, **args: Any) -> bool:
        if self.ended is not None:
            self._emit(ev.Notice("warning", f"the sweep has ended ({self.ended}): nothing to "
                                            f"{kind}"))
            return False
        live.request(self.store, self.sweep["id"], kind, args)
        return True

    def submit(self, runs: list[RunSpec]) -> None:
        self._request("queue", runs=[live.run_json(r) for r in runs])

    def remove(self, run_id: str) -> bool:
        with self._lock:
            if run_id not in {r.run_id for r in self._pending}:
                return False
            self._pending = [r for r in self._pending if r.run_id != run_id]
        return self._request("remove", run_key=run_id)

    def move(self, run_id: str, delta: int) -> bool:
        with self._lock:
            ids = [r.run_id for r in self._pending]
            if run_id not in ids:
                return False
            i = ids.index(run_id)
            self._pending.insert(max(0, min(len(ids) - 1, i + delta)), self._pending.pop(i))
        return self._request("move", run_key=run_id, delta=delta)

    def cancel_current(self) -> None:
        self._request("cancel")

    def cancel_run(self, run_id: str) -> bool:
        """Ask the sweep to cancel one run in flight (only that member of a stack where the
        sweep can). False when it is not in flight here."""
        if run_id not in {r.run_id for r in self.current()}:
            return False
        return self._request("cancel", run_key=run_id)

    def stop_after_current(self) -> None:
        self._request("stop")

    def start(self, drain: bool = False) -> None:
        self._poll()  # the sweep as it is now, before the first draw
        self._thread = threading.Thread(target=self._work, name="workbench-attach",
                                        daemon=True)
        self._thread.start()

    def stop(self, cancel: bool = True) -> None:
        """Stop looking (``cancel`` is ignored: a viewer never stops the sweep)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # -- the poll thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._poll()
            except Exception as exc:  # a store hiccup: say it, keep looking
                self._emit(ev.Notice("warning", f"attached view: {type(exc).__name__}: {exc}"))

    def _poll(self) -> None:
        if self.ended is not None:
            return
        sweep_id = self.sweep["id"]
        sweep = live.sweep(self.store, sweep_id) or self.sweep
        queue = live.queue(self.store, sweep_id)
        progress = live.progress(self.store, sweep_id)
        current = [r for s, r in queue if s == "running"]
        pending = [r for s, r in queue if s != "running"]
        with self._lock:
            before, waiting = self._current, self._pending
            self._current, self._pending = current, pending
        now_ids = {r.run_id for r in current}
        for run in current:
            if run.run_id not in {r.run_id for r in before}:
                self._started(run)
            self._follow(run, progress.get(run.run_id))
        self._leaving += [r for r in before if r.run_id not in now_ids]
        gone = now_ids | {r.run_id for r in pending}
        self._leaving += [r for r in waiting if r.run_id not in gone and self._trained(r)]
        self._leaving = [r for r in self._leaving if not self._finished(r)]
        for answer in live.answers_after(self.store, sweep_id, self._answered):
            self._answered = answer["id"]
            self._emit(ev.Notice("error" if answer["state"] == live.REFUSED else "info",
                                 f"sweep: {answer['kind']} {answer['state']}: "
                                 f"{answer['answer']}"))
        if sweep["finished_at"] is not None:
            self._end(sweep["outcome"] or "finished")
            self._emit(ev.Notice("info", f"the sweep ({live.describe(sweep)}) ended: "
                                         f"{self.ended}"))
        elif not live.is_running(sweep):
            self._writer_gone(sweep)

    def _row(self, run: RunSpec) -> dict[str, Any] | None:
        rows = self.store._query("SELECT * FROM runs WHERE experiment=? AND config_hash=? "
                                 "ORDER BY id DESC LIMIT 1", (run.experiment, run.config_hash))
        return dict(rows[0]) if rows else None

    def _started(self, run: RunSpec) -> None:
        row = self._row(run) or {}
        self._epochs_seen[run.run_id] = 0
        self._emit(ev.RunStarted(run, row.get("device") or "", row.get("dataset") or ""))

    def _follow(self, run: RunSpec, batch: tuple | None) -> None:
        """New epochs and the latest batch of a run in flight, as events."""
        row = self._row(run)
        if row is not None and row["status"] == RUNNING:
            self._new_epochs(run, row)
        if batch is not None and batch != self._progress.get(run.run_id):
            self._progress[run.run_id] = batch
            self._emit(ev.BatchProgress(run, *batch))

    def _new_epochs(self, run: RunSpec, row: dict[str, Any]) -> None:
        """The run's epochs stored since the last poll, as EpochEnded events."""
        epochs = self.store.epochs(int(row["id"]))
        for e in epochs[self._epochs_seen.get(run.run_id, 0):]:
            self._emit(ev.EpochEnded(run, EpochMetrics(
                int(e["epoch"]), e["train_loss"], e["val_loss"], e["val_acc"],
                e["best_val_acc"], int(e["best_epoch"]), e["seconds"], e.get("lr"))))
        self._epochs_seen[run.run_id] = len(epochs)

    def _trained(self, run: RunSpec) -> bool:
        """Whether a run that left the pending queue trained in this sweep (a short run may
        start and end between two polls) rather than being removed or skipped."""
        row = self._row(run)
        return row is not None and (row["started_at"] or 0) >= self.sweep["started_at"]

    def _finished(self, run: RunSpec) -> bool:
        """Emit RunFinished once the store has the run's result; False while it has not."""
        row = self._row(run)
        if row is None or row["status"] == RUNNING:
            return False
        if run.run_id in self._epochs_seen:  # followed: its last epochs (written with its
            self._new_epochs(run, row)  # result, between two polls) before it ends
        self._result(run, row["status"], row)
        return True

    def _result(self, run: RunSpec, status: str, row: dict[str, Any] | None) -> None:
        row = row or {}
        self.counts[status] = self.counts.get(status, 0) + 1
        self._progress.pop(run.run_id, None)
        self._emit(ev.RunFinished(run, RunResult(
            status=status, test_acc=row.get("test_acc"), test_loss=row.get("test_loss"),
            train_seconds=row.get("train_seconds") or 0.0, device=row.get("device") or "",
            dataset=row.get("dataset") or "", error=row.get("error"))))

    def _writer_gone(self, sweep: dict[str, Any]) -> None:
        quiet = time.time() - float(sweep["heartbeat_at"])
        here = sweep["host"] == socket.gethostname()
        if here and _alive(int(sweep["pid"])):
            return  # alive but slow (a long evaluation): keep waiting
        if not here and quiet < 60:
            return  # another host: give it a minute before calling it gone
        self.store.mark_interrupted()
        with self._lock:
            flying, self._current, self._pending = self._current + self._leaving, [], []
        self._leaving = []
        for run in flying:
            row = self._row(run)
            self._result(run, row["status"] if row and row["status"] != RUNNING
                         else INTERRUPTED, row)
        try:
            live.finish_sweep(self.store, sweep["id"], "writer died")
        except Exception:  # a read-only viewer: the runs were still shown interrupted
            pass
        self._end("writer died")
        self._emit(ev.Notice("error", f"the sweep's process ({live.describe(sweep)}) is gone "
                                      f"(not heard from for {quiet:.0f} s); its running runs "
                                      "are marked interrupted"))

    def _end(self, how: str) -> None:
        self.ended = how
        with self._lock:
            self._current, self._pending = [], []
        self._emit(ev.SweepFinished(dict(self.counts)))


@dataclass
class AttachedEngine(Engine):
    """An Engine whose runner watches and steers the sweep another process runs."""

    sweep: dict[str, Any] = field(default_factory=dict)

    def runner(self, emit: ev.Emit, keep_queue: bool = False) -> AttachedRunner:
        return AttachedRunner(self.store, self.sweep, emit)


def running_sweep(path: Path | str) -> dict[str, Any] | None:
    """The sweep writing the store at ``path`` now, if any (reads only)."""
    if not Path(path).is_file():
        return None
    store = Store(path, readonly=True)
    try:
        sweep = live.latest_sweep(store)
    finally:
        store.close()
    return sweep if live.is_running(sweep) else None


def open_attached(store_path: Path | str, sweep: dict[str, Any],
                  default_study: dict[str, Any]) -> AttachedEngine:
    """The engine of a viewer: the sweep's experiments file for the experiment tree (the
    ``default_study`` when it cannot be read here), the store opened for requests."""
    from workbench.config import ConfigError
    from workbench.executors.local import LocalExecutor
    from workbench.session import open_session

    path = Path(sweep["study_path"]) if sweep.get("study_path") else None
    try:
        session = open_session(path if path and path.is_file() else None,
                               raw=None if path and path.is_file() else default_study)
    except ConfigError:
        session = open_session(None, raw=default_study)
    options = Options(store=Path(store_path))
    return AttachedEngine(session, Store(store_path), options.settings(), LocalExecutor(),
                          lambda pending: pending[:1],
                          place=f"attached to {live.describe(sweep)}", sweep=sweep)

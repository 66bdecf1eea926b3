"""Train in child processes while the runner thread records: a pool of workers, each a
spawned child training one unit at a time, so a sweep uses every core, and the app's UI
thread and training never share a GIL.

On a thread of the app's process, training would wait for the GIL whenever the UI draws
(benchmarks/tui_overhead.py measures what that costs). Here each child trains
(``training.unit.train_unit``, as every executor does) and reports through a pipe; the runner
thread replays each report into a ``recorder.UnitRecorder``, so store rows, events and plugin
hooks happen in this process exactly as with the local executor, one at a time. The children
load the same plugins themselves (``Registry.load_args``) and each receives a data set once
(the child's side: ``trainer_child``).

Faults: a child that dies (killed, out of memory) fails the runs of its unit in flight with
the reason, and its next unit starts a new child; the other workers train on. A child exits
when its parent is gone. The runner's cancel flag is relayed to every child, which stops
within one batch.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from contextlib import contextmanager
from multiprocessing.connection import wait
from typing import Any, Iterator

from workbench.executors.context import RunContext
from workbench.executors.feeder import POLL_SECONDS, UnitFeeder
from workbench.executors.trainer_child import child_main
from workbench.executors.recorder import UnitRecorder, prepare
from workbench.plugins import Registry
from workbench.store import StoreError
from workbench.types import RunSpec

STOP_SECONDS = 5.0  # a child asked to stop gets this long, then it is killed


def can_run(registry: Registry) -> bool:
    """True when a child process can load the same plugins (they came from modules and
    folders, not from objects registered in this process)."""
    return registry.load_args is not None


class ProcessExecutor:
    """Executor protocol (``execute(ctx)``): a pool of ``workers`` child processes, each
    training one unit at a time; the runner thread hands out units and records what every
    child reports. With one worker, one unit at a time."""

    member_cancel = True  # one run of a stack can be cancelled alone

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"ProcessExecutor: workers must be >= 1, got {workers}")
        self.workers = [_Worker(i) for i in range(workers)]
        # several units in flight: the runner lists each run until it finishes
        self.concurrent = workers > 1

    @property
    def pids(self) -> list[int | None]:
        """Each worker's child process id (None: not started), by worker."""
        return [w.proc.pid if w.proc is not None else None for w in self.workers]

    def pid_training(self, run_id: str) -> int | None:
        """The child process training the run ``run_id`` now (None: none is)."""
        for worker in self.workers:
            recorder = worker.recorder
            if recorder is not None and run_id in recorder.runs and worker.proc is not None:
                return worker.proc.pid
        return None

    def execute(self, ctx: RunContext) -> None:
        try:
            for worker in self.workers:  # started now: torch loads while the user picks runs
                worker.start(ctx)
            _Pool(self.workers, ctx).run()
        finally:
            for worker in self.workers:
                worker.stop()


class _Pool:
    """The driver loop of one ``execute`` call, on the runner thread: every store write,
    event and hook happens here. Units come from a ``feeder.UnitFeeder``, one per free
    worker."""

    def __init__(self, workers: list["_Worker"], ctx: RunContext):
        self.workers, self.ctx = workers, ctx
        self.todo: list[tuple[Any, list[RunSpec], int]] = []  # (data, runs, unit key)

    def run(self) -> None:
        feeder = UnitFeeder(self.ctx, len(self.workers), "workbench-pool-feeder")
        try:
            while not feeder.ended or self.todo or any(w.busy for w in self.workers):
                self._relay_cancel(feeder)
                for unit in feeder.take():
                    parts = prepare(unit, self.ctx)
                    key = feeder.track(unit, len(parts))
                    self.todo += [(raw, runs, key) for raw, runs in parts]
                for worker in self.workers:
                    if not worker.busy and self.todo:
                        raw, runs, key = self.todo.pop(0)
                        worker.send(runs, raw, key, self.ctx)
                        if not worker.busy:  # it could not take the unit (it had died)
                            feeder.part_over(key)
                busy = [w for w in self.workers if w.busy]
                ready = wait([w.conn for w in busy], POLL_SECONDS) if busy else []
                if not busy:
                    time.sleep(POLL_SECONDS / 2)
                for worker in busy:
                    if worker.conn in ready or not worker.alive():
                        if worker.relay(self.ctx):  # its unit is over
                            feeder.part_over(worker.key)
        finally:
            feeder.close()
            for worker in self.workers:  # leaving with units in flight (the store failed)
                worker.abandon()

    def _relay_cancel(self, feeder: UnitFeeder) -> None:
        cancelled = self.ctx.cancel.is_set()  # read first: a cancel set meanwhile waits a turn
        for worker in self.workers:
            worker.relay_cancel(self.ctx)
        feeder.cancel_handled = cancelled


class _Worker:
    """One child process of the pool and the unit it trains (recorded by ``recorder``)."""

    def __init__(self, index: int):
        self.index = index
        self.proc: Any = None
        self.conn: Any = None
        self.cancel: Any = None
        self.data_key: tuple[str, str] | None = None  # the data set the child holds
        self.recorder: UnitRecorder | None = None  # the unit in flight
        self.key = 0  # its unit's key in the pool
        self.members: set[str] = set()  # runs of that unit cancelled alone, told the child

    @property
    def busy(self) -> bool:
        return self.recorder is not None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def send(self, runs: list[RunSpec], raw: Any, key: int, ctx: RunContext) -> None:
        """Hand the child a unit (starting a new child when the last one died)."""
        conn = self.start(ctx)
        data_key = (raw.identity, raw.fingerprint)
        self.recorder, self.key = UnitRecorder(runs, ctx, raw), key
        self.members = set()
        self.cancel.clear()
        try:
            conn.send(("unit", runs, raw if data_key != self.data_key else None, ctx.device,
                       ctx.settings.stack))
        except (OSError, EOFError):
            self._died()
            return
        self.data_key = data_key

    def relay_cancel(self, ctx: RunContext) -> None:
        """Relay the runner's cancel flag (the child stops within one batch) and each run of
        this unit cancelled alone (``ctx.cancel_runs``: the others of its stack train on)."""
        recorder = self.recorder
        if recorder is None:
            return
        if recorder.is_set() and not self.cancel.is_set():
            self.cancel.set()
        for run_id in (ctx.cancel_runs & recorder.runs.keys()) - self.members:
            self.members.add(run_id)
            try:
                self.conn.send(("cancel", run_id))
            except (OSError, EOFError):
                pass  # the child is gone: the next receive says so

    def relay(self, ctx: RunContext) -> bool:
        """Record everything the child has reported so far; True when its unit is over."""
        recorder = self.recorder
        assert recorder is not None
        by_id = recorder.runs
        while True:
            try:
                if not self.conn.poll(0):
                    if not self.proc.is_alive():
                        raise EOFError
                    return False
                msg = self.conn.recv()
            except (EOFError, OSError):
                self._died()
                return True
            kind = msg[0]
            try:
                if kind == "claim":
                    self.conn.send(recorder.claim(by_id[msg[1]], msg[2]))
                elif kind == "epoch":
                    recorder.epoch(by_id[msg[1]], msg[2])
                elif kind == "batch":
                    recorder.batch(by_id[msg[1]], *msg[2:])
                elif kind == "finished":
                    recorder.finished(by_id[msg[1]], msg[2])
                elif kind == "done":
                    self.recorder = None
                    recorder.close(msg[1])
                    return True
                elif kind == "fatal":  # the child could not start: say why, for every run
                    self.stop(kill=True)
                    self.recorder = None
                    recorder.close(msg[1])
                    return True
            except StoreError:
                self.stop(kill=True)
                raise
            self.relay_cancel(ctx)

    def _died(self) -> None:
        recorder, self.recorder = self.recorder, None
        code = None
        if self.proc is not None:
            self.proc.join(1)
            code = self.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.stop(kill=True)
        if recorder is not None:
            recorder.close(f"the training process died ({how}); the next run starts a new "
                           "one. Out of memory? Try a smaller batch_size or model")

    def abandon(self) -> None:
        """The pool is leaving with this unit in flight: stop the child, record its runs
        failed where the store still allows it."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        self.stop(kill=True)
        try:
            recorder.close("the run's training process was stopped: the sweep ended early")
        except Exception:  # the store that ended the sweep refuses this too
            pass

    def start(self, ctx: RunContext) -> Any:
        if self.proc is not None and self.proc.is_alive():
            return self.conn
        mp = multiprocessing.get_context("spawn")  # no fork: threads, CUDA
        with _real_std_streams():  # the Event starts multiprocessing's resource tracker
            parent, child = mp.Pipe()
            self.cancel = mp.Event()
            self.proc = mp.Process(target=child_main, name=f"workbench-trainer-{self.index}",
                                   daemon=True,
                                   args=(child, self.cancel, ctx.registry.load_args,
                                         ctx.settings.threads, os.getpid()))
            self.proc.start()
        child.close()
        self.conn, self.data_key = parent, None
        return parent

    def stop(self, kill: bool = False) -> None:
        proc, conn = self.proc, self.conn
        self.proc = self.conn = None
        if proc is None:
            return
        if not kill:
            try:
                conn.send(("stop",))
            except (OSError, EOFError):
                pass
            proc.join(STOP_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join(STOP_SECONDS)
        conn.close()


@contextmanager
def _real_std_streams() -> Iterator[None]:
    """Starting a process passes sys.stderr's file descriptor on (multiprocessing's resource
    tracker); inside the terminal app sys.stderr is Textual's print capture, whose fileno is
    -1 ("bad value(s) in fds_to_keep"). Use the process's own streams for that moment."""
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.__stdout__ or saved[0]
    sys.stderr = sys.__stderr__ or saved[1]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved

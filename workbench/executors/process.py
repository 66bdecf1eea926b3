"""Train in a child process while the runner thread records: the app's UI thread and training
never share a GIL.

On a thread of the app's process, training would wait for the GIL whenever the UI draws
(benchmarks/tui_overhead.py measures what that costs). Here a spawned child trains (``training.unit.train_unit``, as every executor does) and reports
through a pipe; the runner thread replays each report into a ``recorder.UnitRecorder``, so
store rows, events and plugin hooks happen in the app's process exactly as with the local
executor. The child loads the same plugins itself (``Registry.load_args``) and receives a
data set once.

Faults: a child that dies (killed, out of memory) fails its runs in flight with the reason,
and the next unit starts a new child. A child exits when its parent is gone. The runner's
cancel flag is relayed to the child, which stops within one batch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from workbench.executors.context import RunContext
from workbench.executors.recorder import UnitRecorder, prepare
from workbench.plugins import Registry
from workbench.store import StoreError
from workbench.types import RunResult, RunSpec

POLL_SECONDS = 0.05
STOP_SECONDS = 5.0  # a child asked to stop gets this long, then it is killed


def can_run(registry: Registry) -> bool:
    """True when a child process can load the same plugins (they came from modules and
    folders, not from objects registered in this process)."""
    return registry.load_args is not None


class ProcessExecutor:
    """Executor protocol (``execute(ctx)``): one unit at a time, trained in a child process."""

    concurrent = False
    member_cancel = True  # one run of a stack can be cancelled alone

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Any = None
        self._cancel: Any = None
        self._data_key: tuple[str, str] | None = None  # the data set the child holds

    def execute(self, ctx: RunContext) -> None:
        try:
            self._child(ctx)  # started now: torch loads there while the user picks runs
            while (unit := ctx.next_unit()) is not None:
                for raw, runs in prepare(unit, ctx):
                    self._train(runs, raw, ctx)
        finally:
            self._stop()

    # -- the runner thread -------------------------------------------------------------

    def _train(self, runs: list[RunSpec], raw: Any, ctx: RunContext) -> None:
        """Send the unit to the child and replay its reports until it is done."""
        conn = self._child(ctx)
        key = (raw.identity, raw.fingerprint)
        recorder = UnitRecorder(runs, ctx, raw)
        self._cancel.clear()
        try:
            conn.send(("unit", runs, raw if key != self._data_key else None, ctx.device,
                       ctx.settings.stack))
        except (OSError, EOFError):
            return self._died(recorder)
        self._data_key = key
        by_id = recorder.runs
        members: set[str] = set()  # member cancels sent to the child
        while True:
            if recorder.is_set() and not self._cancel.is_set():
                self._cancel.set()  # relayed: the child stops within one batch
            for run_id in (ctx.cancel_runs & by_id.keys()) - members:
                members.add(run_id)
                try:
                    conn.send(("cancel", run_id))
                except (OSError, EOFError):
                    pass  # the child is gone: the receive below says so
            try:
                if not conn.poll(POLL_SECONDS):
                    if not self._proc.is_alive():
                        raise EOFError
                    continue
                msg = conn.recv()
            except (EOFError, OSError):
                return self._died(recorder)
            kind = msg[0]
            try:
                if kind == "claim":
                    conn.send(recorder.claim(by_id[msg[1]], msg[2]))
                elif kind == "epoch":
                    recorder.epoch(by_id[msg[1]], msg[2])
                elif kind == "batch":
                    recorder.batch(by_id[msg[1]], *msg[2:])
                elif kind == "finished":
                    recorder.finished(by_id[msg[1]], msg[2])
                elif kind == "done":
                    return recorder.close(msg[1])
                elif kind == "fatal":  # the child could not start: say why, for every run
                    self._stop(kill=True)
                    return recorder.close(msg[1])
            except StoreError:
                self._stop(kill=True)
                raise

    def _died(self, recorder: UnitRecorder) -> None:
        code = None
        if self._proc is not None:
            self._proc.join(1)
            code = self._proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self._stop(kill=True)
        recorder.close(f"the training process died ({how}); the next run starts a new one. "
                       "Out of memory? Try a smaller batch_size or model")

    def _child(self, ctx: RunContext) -> Any:
        if self._proc is not None and self._proc.is_alive():
            return self._conn
        mp = multiprocessing.get_context("spawn")  # no fork: threads, CUDA
        with _real_std_streams():  # the Event starts multiprocessing's resource tracker
            parent, child = mp.Pipe()
            self._cancel = mp.Event()
            self._proc = mp.Process(target=child_main, name="workbench-trainer", daemon=True,
                                    args=(child, self._cancel, ctx.registry.load_args,
                                          ctx.settings.threads, os.getpid()))
            self._proc.start()
        child.close()
        self._conn, self._data_key = parent, None
        return parent

    def _stop(self, kill: bool = False) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
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


# -- the child process ------------------------------------------------------------------

class _PipeReporter:
    """training.unit.Reporter over the pipe to the runner thread."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.cancelled_ids: set[str] = set()

    def _receive(self, msg: Any) -> Any:
        """A member cancel is kept; anything else is the answer being waited for."""
        if isinstance(msg, tuple) and msg and msg[0] == "cancel":
            self.cancelled_ids.add(msg[1])
            return None
        return msg

    def claim(self, run: RunSpec, device: str) -> bool:
        self.conn.send(("claim", run.run_id, device))
        while (answer := self._receive(self.conn.recv())) is None:
            pass
        return bool(answer)

    def cancelled(self, run: RunSpec) -> bool:
        while self.conn.poll():
            self._receive(self.conn.recv())
        return run.run_id in self.cancelled_ids

    def epoch(self, run: RunSpec, metrics: Any) -> None:
        self.conn.send(("epoch", run.run_id, metrics))

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.conn.send(("batch", run.run_id, epoch, batch, batches, loss))

    def finished(self, run: RunSpec, result: RunResult) -> None:
        self.conn.send(("finished", run.run_id, result))


def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != pid:  # the app is gone (even by kill -9): nothing to report to
            os._exit(0)


def child_main(conn: Any, cancel: Any, load_args: dict, threads: int | None,
               parent_pid: int) -> None:
    """The child: load the plugins, then train each unit it is sent until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C means
    devnull = os.open(os.devnull, os.O_WRONLY)  # the terminal belongs to the app
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    try:
        from workbench.executors.context import apply_threads
        from workbench.plugins import load_plugins
        from workbench.training.unit import ModelBuild, train_unit

        apply_threads(threads)
        registry = load_plugins(**load_args)
        models = {name: ModelBuild.of(registry, name) for name in registry.models}
    except Exception as exc:
        conn.recv()  # the first unit: answered with why nothing can train
        conn.send(("fatal", f"the training process could not start: {type(exc).__name__}: "
                            f"{exc}"))
        return
    reporter, raw = _PipeReporter(conn), None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        _, unit, data, device, stack = msg  # data: None when the child already holds it
        raw = data if data is not None else raw
        error = None
        try:
            train_unit(unit, raw, device, models, reporter, cancel, stack)
        except Exception as exc:  # reported for the runs it did not start
            error = f"training process: {type(exc).__name__}: {exc}"
        conn.send(("done", error))

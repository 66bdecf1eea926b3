"""The training process of a ``process.ProcessExecutor`` worker: it loads the plugins, then
trains each unit it is sent (``training.unit.train_unit``) and reports through its pipe, until
told to stop or its parent is gone. Nothing here runs in the parent."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from workbench.types import RunResult, RunSpec


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


def _name_for_ps() -> None:
    """Show as wb-trainer-N in ps and top (the kernel keeps 15 characters of a process's
    name; multiprocessing's workbench-trainer-N is Python's only), where Linux allows it."""
    import multiprocessing

    name = multiprocessing.current_process().name.replace("workbench-", "wb-")[:15]
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(name)
    except OSError:  # not Linux, or not allowed: the name stays python
        pass


def child_main(conn: Any, cancel: Any, load_args: dict, threads: int | None,
               parent_pid: int) -> None:
    """The child: load the plugins, then train each unit it is sent until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C means
    _name_for_ps()
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

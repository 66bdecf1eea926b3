"""The Ray side of the Ray executor: the task that trains a unit, and the mailbox actor that
carries its reports to the driver. Imported only once Ray is known to be installed.

Reports are (attempt token, kind, run id, payload). Each attempt of a task draws a fresh
token, so the driver can tell a retry (after the worker died) from the first try, and ignore
what a superseded attempt still had in flight. The mailbox also remembers which runs finished
or were cancelled, so a retried task never trains a finished run twice.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from typing import Any, Callable, Sequence

import ray
from ray import cloudpickle

from workbench.types import EpochMetrics, RunResult, RunSpec

_LOCAL_PACKAGES = ("workbench",)


class Mailbox:
    """Lives in the cluster (no CPU reserved); workers push, the driver drains."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, Any]] = []
        self.finished: set[str] = set()
        self.cancelled: set[str] = set()

    def claim(self, token: str, run_id: str, device: str, node: str, pid: int) -> bool:
        if run_id in self.finished or run_id in self.cancelled:
            return False
        self.events.append((token, "started", run_id, (device, node, pid)))
        return True

    def push(self, token: str, kind: str, run_id: str, payload: Any) -> None:
        if kind == "finished":
            self.finished.add(run_id)
        self.events.append((token, kind, run_id, payload))

    def cancel(self, run_ids: Sequence[str]) -> None:
        self.cancelled.update(run_ids)

    def drain(self) -> list[tuple[str, str, str, Any]]:
        out, self.events = self.events, []
        return out

    def flush(self) -> bool:
        return True  # calls from one caller run in order: everything before it is in


@functools.cache
def mailbox_actor() -> Any:
    return ray.remote(num_cpus=0, max_restarts=0)(Mailbox)


class MailboxReporter:
    """workbench.training.unit.Reporter that sends to the mailbox (epochs and batches without
    waiting; claims wait for the answer)."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox, self.token = mailbox, uuid.uuid4().hex
        self.node = ray.get_runtime_context().get_node_id()[:8]

    def claim(self, run: RunSpec, device: str) -> bool:
        return ray.get(self.mailbox.claim.remote(self.token, run.run_id, device, self.node,
                                                 os.getpid()))

    def epoch(self, run: RunSpec, metrics: EpochMetrics) -> None:
        self.mailbox.push.remote(self.token, "epoch", run.run_id, metrics)

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.mailbox.push.remote(self.token, "batch", run.run_id, (epoch, batch, batches, loss))

    def finished(self, run: RunSpec, result: RunResult) -> None:
        self.mailbox.push.remote(self.token, "finished", run.run_id, result)

    def flush(self) -> None:
        ray.get(self.mailbox.flush.remote())


def train_unit_task(unit: list[RunSpec], raw: Any, device: str, models: dict[str, Any],
                    mailbox: Any, threads: int, stack: bool = True) -> dict[str, RunResult]:
    """Body of the Ray task: train the unit here, report to the mailbox, return results."""
    import torch

    from workbench.training.unit import train_unit

    torch.set_num_threads(max(1, int(threads)))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"this Ray worker ({ray.get_runtime_context().get_node_id()[:8]}) "
                           "was given a GPU but torch sees no CUDA device")
    reporter = MailboxReporter(mailbox)
    results = train_unit(unit, raw, device, models, reporter, stack=stack)
    reporter.flush()
    return results


@functools.cache
def train_task() -> Any:
    return ray.remote(train_unit_task)


def pickle_plugins_by_value(fn: Callable[..., Any]) -> None:
    """A model's build function from a drop-in file, or from any module the workers may not
    import by name (outside site-packages: a checkout's built-ins too), travels by value;
    installed plugins travel by reference."""
    name = getattr(fn, "__module__", None) or ""
    if name.split(".")[0] in _LOCAL_PACKAGES or name not in sys.modules:
        return
    module = sys.modules[name]
    if getattr(module, "__file__", None) is None:
        return
    if name.startswith("workbench_dropin_") or not _installed(module):
        cloudpickle.register_pickle_by_value(module)


def _installed(module: Any) -> bool:
    """True for modules that live in site-packages (installed on the cluster's nodes too)."""
    path = str(getattr(module, "__file__", "") or "")
    return "site-packages" in path or "dist-packages" in path

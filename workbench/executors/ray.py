"""Run a sweep's units as Ray tasks: several at once, events streamed back, store on the driver.

Each unit (one run, or a group trained together) is one Ray task asking for a GPU when the
runs train on CUDA and for CPUs otherwise. A data set goes into the object store once. Workers
train with ``workbench.training.unit.train_unit`` (as every executor does) and report into a
small mailbox actor; the driver (the runner thread) drains it every ~0.1 s and replays what it
finds through ``recorder.UnitRecorder``, so store rows, events and plugin hooks happen here
exactly as they do locally. Faults: Ray retries a task whose worker died (``max_retries``); the retry claims
the runs again and the driver restarts their rows from epoch 0 (no duplicate rows, ever);
when the retries are spent the runs are recorded failed with the reason. A cancel (the
runner's cancel flag) cancels the tasks in flight with ``ray.cancel``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from workbench import events as ev
from workbench.executors.ray_setup import RayUnavailable, connect, require_ray
from workbench.executors.context import RunContext
from workbench.executors.feeder import UnitFeeder
from workbench.executors.recorder import (RunRecorder, UnitRecorder, prepare,
                                          run_finished_hooks)
from workbench.types import CANCELLED, FAILED, RunResult, RunSpec

POLL_SECONDS = 0.1
CANCEL_GRACE_SECONDS = 20.0  # then cancel by force (the worker process is killed)


@dataclass
class _Run:
    run: RunSpec
    raw: Any
    unit: UnitRecorder  # records every attempt, as in the other executors
    recorder: RunRecorder | None = None  # the current attempt's
    token: str | None = None  # the attempt whose reports count
    attempts: int = 0
    done: bool = False


@dataclass
class _Task:
    runs: list[_Run]
    unit_key: int
    cancelled_at: float | None = None


class RayExecutor:
    """Executor protocol (``execute(ctx)``) on a Ray cluster.

    address: None starts a local Ray instance (files in ``ray_dir``); 'auto' joins the cluster
    this machine belongs to; 'HOST:PORT' or 'ray://HOST:PORT' joins that one.
    """

    concurrent = True  # several units in flight: the runner lists each until it finishes
    member_cancel = False  # a task trains its unit to the end (or all of it is cancelled)

    def __init__(self, address: str | None = None, ray_dir: Path | str | None = None,
                 max_retries: int = 2, cpus_per_task: int = 1,
                 max_in_flight: int | None = None, num_cpus: int | None = None):
        require_ray()
        if max_retries < 0 or cpus_per_task < 1:
            raise ValueError("RayExecutor: max_retries must be >= 0 and cpus_per_task >= 1")
        self.address = address or None
        self.ray_dir, self.num_cpus = ray_dir, num_cpus
        self.max_retries, self.cpus_per_task = max_retries, cpus_per_task
        self.max_in_flight = max_in_flight

    def execute(self, ctx: RunContext) -> None:
        try:
            conn = connect(self.address, self.ray_dir, self.num_cpus)
        except RayUnavailable as exc:
            return _refuse(ctx, str(exc))
        try:
            if conn.note:
                ctx.emit(ev.Notice("warning", conn.note))
            if conn.started_local:
                ctx.emit(ev.Notice("info", f"started a local Ray instance (its files: "
                                           f"{conn.ray_dir})"))
            try:
                sweep = _Sweep(self, ctx)
            except RayUnavailable as exc:
                return _refuse(ctx, str(exc))
            sweep.run()
        finally:
            conn.close()


def _refuse(ctx: RunContext, reason: str) -> None:
    """Ray cannot run anything: say so, and fail every run handed over (no store rows)."""
    ctx.emit(ev.Notice("error", reason))
    while (unit := ctx.next_unit()) is not None:
        for run in unit:
            result = RunResult(status=FAILED, error=reason)
            ctx.emit(ev.RunFinished(run, result))
            run_finished_hooks(ctx, run, result)


def _placement(settings_device: str | None, resources: dict[str, float], cpus: int
               ) -> tuple[str, int, int]:
    """(device the workers train on, GPUs per task, tasks the cluster can run at once)."""
    gpus = int(resources.get("GPU", 0))
    pref = settings_device or "auto"
    if pref.startswith("cuda") and gpus < 1:
        raise RayUnavailable(f"--device {pref}: the Ray cluster has no GPU; use --device auto "
                             "or cpu, or add GPU nodes to the cluster")
    if pref == "auto" and gpus >= 1 or pref.startswith("cuda"):
        return "cuda", 1, gpus  # Ray hands each task one GPU, seen there as cuda:0
    return ("cpu" if pref == "auto" else pref), 0, max(1, int(resources.get("CPU", 1)) // cpus)


def _here(ray: Any) -> Any:
    """Keep the mailbox on the driver's node when it has one (it then fails only with us)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    try:
        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                              soft=True)
    except Exception:  # Ray Client: the driver is not a node
        return "DEFAULT"


class _Sweep:
    """The driver loop for one ``execute`` call."""

    def __init__(self, executor: RayExecutor, ctx: RunContext):
        import ray

        self.ray, self.ctx, self.ex = ray, ctx, executor
        resources = ray.cluster_resources()
        self.device, self.gpus, capacity = _placement(ctx.settings.device, resources,
                                                      executor.cpus_per_task)
        self.capacity = executor.max_in_flight or capacity
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        ctx.emit(ev.Notice("info", f"Ray cluster: {nodes} node(s), "
                                   f"{int(resources.get('CPU', 0))} CPUs, "
                                   f"{int(resources.get('GPU', 0))} GPUs; up to "
                                   f"{self.capacity} units at once on {self.device}"))
        from workbench.executors.ray_tasks import mailbox_actor, pickle_plugins_by_value, train_task
        self.mailbox = mailbox_actor().options(scheduling_strategy=_here(ray)).remote()
        ray.get(self.mailbox.flush.remote())  # up before the tasks, which report into it
        self.task_fn = train_task()
        self.pickle_by_value = pickle_plugins_by_value
        self.data: dict[tuple[str, str], Any] = {}  # (identity, fingerprint) -> ObjectRef
        self.runs: dict[str, _Run] = {}
        self.tasks: dict[Any, _Task] = {}  # ObjectRef -> task
        self.feeder: UnitFeeder | None = None

    def run(self) -> None:
        # units pulled on a thread of their own: next_unit may block (the app's queue)
        self.feeder = UnitFeeder(self.ctx, self.capacity, "workbench-ray-feeder")
        try:
            while not self.feeder.ended or self.tasks:
                self._check_cancel()
                for unit in self.feeder.take():
                    self._submit(unit)
                refs = list(self.tasks)
                ready = (self.ray.wait(refs, num_returns=len(refs), timeout=POLL_SECONDS)[0]
                         if refs else [])
                if not refs:
                    time.sleep(POLL_SECONDS / 2)
                self._drain()
                for ref in ready:
                    self._finish_task(ref)
                self._force_stuck()
        finally:
            self.feeder.close()
            self._abandon()
            try:
                self.ray.kill(self.mailbox)
            except Exception:
                pass

    # -- submitting --------------------------------------------------------------------------

    def _submit(self, unit: Sequence[RunSpec]) -> None:
        ctx = self.ctx
        parts = prepare(unit, ctx)
        key = self.feeder.track(unit, len(parts))
        for raw, runs in parts:
            data_key = (raw.identity, raw.fingerprint)
            if data_key not in self.data:
                self.data[data_key] = self.ray.put(raw)  # once per data set
            models = ctx.model_builds(runs)
            for model in models.values():
                self.pickle_by_value(model.build)
                for kind in model.callbacks.values():
                    self.pickle_by_value(kind.make)
            # SPREAD: each unit on the least busy node, not the driver's node first (Ray's
            # default packs a node to half its CPUs before the next; a sweep's units are
            # independent and memory-bound, so every node's own memory is worth having)
            options = dict(num_cpus=self.ex.cpus_per_task, num_gpus=self.gpus,
                           scheduling_strategy="SPREAD",
                           max_retries=self.ex.max_retries, retry_exceptions=False,
                           name=f"mnist-workbench {runs[0].run_id}"
                                + (f" +{len(runs) - 1}" if len(runs) > 1 else ""))
            ref = self.task_fn.options(**options).remote(
                runs, self.data[data_key], self.device, models, self.mailbox,
                self.ex.cpus_per_task, ctx.settings.stack)
            unit_recorder = UnitRecorder(runs, ctx, raw)
            states = [_Run(run, raw, unit_recorder) for run in runs]
            for state in states:
                self.runs[state.run.run_id] = state
            self.tasks[ref] = _Task(states, key)

    # -- what the workers report ----------------------------------------------------------

    def _drain(self) -> None:
        for token, kind, run_id, payload in self.ray.get(self.mailbox.drain.remote()):
            state = self.runs.get(run_id)
            if state is None or state.done:
                continue
            if kind == "started":
                self._started(state, token, payload)
            elif token != state.token or state.recorder is None:
                continue  # a report from an attempt that has been superseded
            elif kind == "epoch":
                state.unit.epoch(state.run, payload)
            elif kind == "batch":
                state.unit.batch(state.run, *payload)
            elif kind == "finished":
                state.done = True
                state.unit.finished(state.run, replace(payload, device=state.recorder.device))

    def _started(self, state: _Run, token: str, payload: tuple[str, str, int]) -> None:
        device, node, pid = payload
        state.attempts += 1
        if state.recorder is not None:
            self.ctx.emit(ev.Notice(
                "warning", f"{state.run.run_id} ({state.run.label}): its Ray worker died after "
                           f"{len(state.recorder.epochs)} epoch(s); training it again from "
                           f"epoch 1 on node {node}, pid {pid} (attempt {state.attempts})"))
        state.token = token
        state.unit.claim(state.run, f"{device} (ray node {node})")
        state.recorder = state.unit.recorders[state.run.run_id]

    # -- tasks that ended -------------------------------------------------------------------

    def _finish_task(self, ref: Any) -> None:
        from ray import exceptions as rex

        task = self.tasks.pop(ref)
        results: dict[str, RunResult] = {}
        cancelled, error = task.cancelled_at is not None, None
        try:
            results = self.ray.get(ref)
        except (rex.TaskCancelledError, KeyboardInterrupt):
            cancelled = True
        except rex.RayTaskError as exc:  # the task raised: no retry, the reason is recorded
            cause = getattr(exc, "cause", None)
            if cancelled or isinstance(cause, (KeyboardInterrupt, rex.TaskCancelledError)):
                cancelled = True
            else:
                error = f"Ray task failed: {type(cause or exc).__name__}: {cause or exc}"
        except rex.RayError as exc:  # the worker or its node died, and the retries are spent
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            error = (f"its Ray worker died {self.ex.max_retries + 1} time(s), retries spent "
                     f"({type(exc).__name__}: {first})")
        self._drain()  # the worker flushed its reports before returning
        for state in task.runs:
            if state.done:
                continue
            result = results.get(state.run.run_id)
            if result is None and cancelled and state.recorder is None:
                continue  # never started: no row, as in every executor
            if state.recorder is None:
                state.unit.claim(state.run, self.device)
                state.recorder = state.unit.recorders[state.run.run_id]
            state.done = True
            if result is not None:
                state.unit.finished(state.run, replace(result, device=state.recorder.device))
            elif cancelled:
                state.recorder.end(CANCELLED, f"cancelled after {len(state.recorder.epochs)} "
                                              "epoch(s) (its Ray task was cancelled)")
            else:
                state.recorder.end(FAILED, error or "its Ray task ended without a result")
        self.feeder.part_over(task.unit_key)

    # -- cancelling -------------------------------------------------------------------------

    def _check_cancel(self) -> None:
        if not self.ctx.cancel.is_set():
            self.feeder.cancel_handled = False
            return
        if self.feeder.cancel_handled:
            return
        now = time.monotonic()
        for ref, task in self.tasks.items():
            if task.cancelled_at is None:
                task.cancelled_at = now
                self.mailbox.cancel.remote([r.run.run_id for r in task.runs])
                self.ray.cancel(ref, force=False, recursive=True)
        self.feeder.cancel_handled = True

    def _force_stuck(self) -> None:
        now = time.monotonic()
        for ref, task in self.tasks.items():
            if task.cancelled_at is not None and now - task.cancelled_at > CANCEL_GRACE_SECONDS:
                task.cancelled_at = now
                self.ray.cancel(ref, force=True)

    def _abandon(self) -> None:
        """The loop is leaving with tasks in flight (an error): cancel them, record them."""
        for ref, task in list(self.tasks.items()):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
            task.cancelled_at = task.cancelled_at or time.monotonic()
            self.tasks.pop(ref)
            for state in task.runs:
                if not state.done and state.recorder is not None:
                    state.done = True
                    state.recorder.end(FAILED,
                                       "the Ray driver loop stopped while this run trained")

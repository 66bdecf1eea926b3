"""Recording runs in this process, whatever executor trained them: store rows, events and
plugin hooks per run (RunRecorder), the driver's half of ``train_unit`` (UnitRecorder), and
the one prepare step every executor takes before training (skip done, get the data, record
a run failed when its data is missing)."""

from __future__ import annotations

from typing import Any, Sequence

from workbench import events as ev
from workbench.executors.context import RunContext
from workbench.failures import failure_message
from workbench.plugins import PluginError, call_event_hook
from workbench.types import CANCELLED, FAILED, EpochMetrics, RunResult, RunSpec


class RunRecorder:
    """Store writes, events and plugin hooks for one run, in the order a face expects."""

    def __init__(self, run: RunSpec, ctx: RunContext, dataset: str, fingerprint: str,
                 device: str | None = None):  # device: where it trains (a remote worker's)
        self.run, self.ctx, self.dataset = run, ctx, dataset
        self.device = device or ctx.device
        self.row_id = ctx.store.start_run(run, dataset, self.device, fingerprint,
                                          source=ctx.data_origins.get(dataset))
        self.epochs: list[EpochMetrics] = []
        self.result: RunResult | None = None  # set once the run is recorded as finished
        ctx.emit(ev.RunStarted(run, self.device, dataset))
        try:
            call_event_hook(ctx.registry, "on_run_started", run=run, device=self.device,
                            dataset=dataset)
        except PluginError as exc:  # recorded as failed here; callers may check .result,
            self.fail(exc)  # and later epoch()/finish() calls change nothing

    def epoch(self, metrics: EpochMetrics) -> None:
        if self.result is not None:  # already recorded as finished (a hook failed it)
            return
        self.epochs.append(metrics)
        self.ctx.store.add_epoch(self.row_id, metrics)
        self.ctx.emit(ev.EpochEnded(self.run, metrics))
        call_event_hook(self.ctx.registry, "on_epoch_ended", run=self.run, metrics=metrics)

    def batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.ctx.emit(ev.BatchProgress(self.run, epoch, batch, batches, loss))

    def finish(self, result: RunResult) -> RunResult:
        if self.result is not None:  # the first final status stands (any executor)
            return self.result
        self.ctx.store.finish_run(self.row_id, result)
        self.result = result
        self.ctx.emit(ev.RunFinished(self.run, result))
        run_finished_hooks(self.ctx, self.run, result)
        return result

    def fail(self, exc: BaseException) -> RunResult:
        return self.end(FAILED, failure_message(exc, self.run))

    def end(self, status: str, error: str) -> RunResult:
        """Finish with the epochs recorded so far (the trainer could not say how it ended)."""
        return self.finish(RunResult(status=status, epochs=tuple(self.epochs), error=error,
                                     device=self.device, dataset=self.dataset,
                                     train_seconds=self.epochs[-1].seconds if self.epochs
                                     else 0.0))


class UnitRecorder:
    """The driver's half of ``workbench.training.unit.train_unit`` for one unit: a Reporter
    that records each run it is told about through its own RunRecorder. The local executor
    hands it to train_unit directly; the process and Ray executors replay what their worker
    reports into it, so every executor records the same rows, events and hooks."""

    def __init__(self, runs: Sequence[RunSpec], ctx: RunContext, raw: Any):
        self.ctx, self.raw = ctx, raw
        self.runs = {run.run_id: run for run in runs}
        self.recorders: dict[str, RunRecorder] = {}

    def claim(self, run: RunSpec, device: str) -> bool:
        """A (new) attempt at ``run`` starts on ``device``: its row starts over."""
        rec = RunRecorder(run, self.ctx, self.raw.identity, self.raw.fingerprint, device)
        self.recorders[run.run_id] = rec
        return rec.result is None  # False: a plugin failed it as it started

    def epoch(self, run: RunSpec, metrics: EpochMetrics) -> None:
        self._hooked(run, lambda rec: rec.epoch(metrics))

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.recorders[run.run_id].batch(epoch, batch, batches, loss)

    def finished(self, run: RunSpec, result: RunResult) -> None:
        self._hooked(run, lambda rec: rec.finish(result))

    def cancelled(self, run: RunSpec) -> bool:
        """This run alone is to stop (the app's `c` on one member of a stack)."""
        return run.run_id in self.ctx.cancel_runs

    def _hooked(self, run: RunSpec, call: Any) -> None:
        rec = self.recorders[run.run_id]
        try:
            call(rec)
        except PluginError as exc:  # an event hook failed: that run fails, the others go on
            rec.fail(exc)

    def is_set(self) -> bool:
        """The unit's cancel flag: the runner's, or every run of the unit is already
        recorded finished (plugins failed them), so training on would be wasted."""
        return self.ctx.cancel.is_set() or (
            len(self.recorders) == len(self.runs)
            and all(rec.result is not None for rec in self.recorders.values()))

    def close(self, error: str | None = None) -> None:
        """The unit is over (its trainer returned, died or could not start). A run it claimed
        but did not finish is recorded with its epochs so far: failed with ``error``, else
        cancelled. With an error, the runs it never claimed are recorded failed too; without,
        they were cancelled before they started and keep no row (the next sweep trains them,
        as the local executor always did)."""
        for run_id, run in self.runs.items():
            rec = self.recorders.get(run_id)
            if rec is None and error is None:
                continue
            if rec is None:
                rec = RunRecorder(run, self.ctx, self.raw.identity, self.raw.fingerprint)
            if rec.result is None:
                rec.end(FAILED if error else CANCELLED, error or "cancelled")


def prepare(unit: Sequence[RunSpec], ctx: RunContext) -> list[tuple[Any, list[RunSpec]]]:
    """Before a unit trains, in every executor: skip the runs the store has done (RunSkipped),
    get each run's data and record the run failed when its data cannot be had. The runs
    left, with their data, by data set."""
    parts: dict[tuple[str, str], tuple[Any, list[RunSpec]]] = {}
    for run in unit:
        try:
            raw = ctx.raw_data(run.config["dataset"])
        except Exception as exc:  # data could not be had: the run fails, the sweep goes on
            record_unavailable(run, ctx, exc)
            continue
        if not ctx.settings.rerun and ctx.store.is_done(run, raw.identity):
            ctx.emit(ev.RunSkipped(run, f"already done in {ctx.store.path} on "
                                        f"{raw.identity} (--rerun to train again)"))
            continue
        parts.setdefault((raw.identity, raw.fingerprint), (raw, []))[1].append(run)
    return list(parts.values())


def record_unavailable(run: RunSpec, ctx: RunContext, exc: BaseException) -> RunResult:
    """The run's data could not be had: record it failed (shown with the others), emit it."""
    result = RunResult(status=FAILED, error=failure_message(exc, run),
                       dataset=str(run.config["dataset"]))
    row = ctx.store.start_run(run, result.dataset, ctx.device)
    ctx.store.finish_run(row, result)
    ctx.emit(ev.RunFinished(run, result))
    run_finished_hooks(ctx, run, result)
    return result


def run_finished_hooks(ctx: RunContext, run: RunSpec, result: RunResult) -> None:
    """on_run_finished, once the result is stored, for every final status: a plugin that
    raises is reported (a warning naming it) and changes nothing of the run."""
    try:
        call_event_hook(ctx.registry, "on_run_finished", run=run, result=result)
    except PluginError as exc:
        ctx.emit(ev.Notice("warning", f"{exc} (run {run.name} stays {result.status})"))

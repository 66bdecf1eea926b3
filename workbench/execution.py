"""Executing runs: settings, the context an executor trains in, and one run start to finish.

``execute_run`` trains one run and records it (store rows, events, plugin hooks) through a
``RunRecorder``; executors (local, stacked, Ray) pull work units from ``RunContext.next_unit``.
The queue and its thread live in ``workbench.runner``.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from workbench import events as ev
from workbench.plugins import PluginError, Registry, call_event_hook
from workbench.store import Store, StoreError
from workbench.types import DONE, FAILED, EpochMetrics, RunResult, RunSpec

Sink = Callable[[ev.Event], None]


@dataclass
class Settings:
    """How runs are executed; shared by every face."""

    device: str | None = None  # None/"auto": CUDA when available
    data_dir: Path | None = None
    allow_fallback: bool = True
    rerun: bool = False  # train again even when the store has the run done
    stack: bool = True  # let the planner train compatible runs together
    # torch CPU threads for training. One by default: these small MLPs train as fast on one
    # thread as on two when the machine is idle (0.68 vs 0.63-0.84 s per Fashion-MNIST
    # epoch, measured on 2 cores), several times faster when anything else runs, and the
    # other core stays free for the UI. None: torch's default (one per core).
    threads: int | None = 1


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count for this process's training (None: leave it).
    Small MLPs on a busy machine train much faster on fewer threads than cores."""
    if threads:
        import torch
        torch.set_num_threads(int(threads))


class RunContext:
    """What an executor needs to train runs: data, store, events, cancel flag."""

    def __init__(self, registry: Registry, store: Store, settings: Settings, sink: Sink):
        self.registry, self.store, self.settings, self.sink = registry, store, settings, sink
        self.cancel = threading.Event()  # cancel the run(s) in flight
        self.cancel_runs: set[str] = set()  # run ids: cancel these members of a stack only
        self.next_unit: Callable[[], list[RunSpec] | None] = lambda: None
        self._device: str | None = None
        self._noticed: set[str] = set()

    @property
    def device(self) -> str:
        if self._device is None:
            from workbench.training import pick_device
            self._device = pick_device(self.settings.device)
        return self._device

    def emit(self, event: ev.Event) -> None:
        try:
            self.sink(event)
        except Exception:  # a face's bug must not kill the sweep
            traceback.print_exc()

    def raw_data(self, name: str) -> Any:
        from workbench import data

        def notify(message: str) -> None:
            if message not in self._noticed:
                self._noticed.add(message)
                self.emit(ev.Notice("warning", message))

        return data.resolve(name, self.registry, self.settings.data_dir,
                            self.settings.allow_fallback, notify)

    def dataset_identity(self, run: RunSpec) -> str:
        return self.raw_data(run.config["dataset"]).identity

    def split(self, run: RunSpec) -> Any:
        from workbench import data
        return data.make_split(self.raw_data(run.config["dataset"]), run.config["seed"],
                               self.device)


def failure_message(exc: BaseException, run: RunSpec) -> str:
    """One or a few lines a user can act on."""
    import torch

    from workbench.data import DataError

    root = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ else exc
    text = str(root).lower()
    if isinstance(root, torch.OutOfMemoryError) or "out of memory" in text \
            or "can't allocate memory" in text:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the next run the memory back
        if isinstance(exc, PluginError) and exc.hook.startswith("building model"):
            return (f"out of memory {exc.hook} (hidden {run.config.get('hidden')}): the model "
                    "does not fit; try a smaller model (hidden, layers)")
        bs = run.config["batch_size"]
        return (f"out of memory on the device with batch_size {bs}: try a smaller "
                f"batch_size (for example {max(1, bs // 2)}) or a smaller model")
    if isinstance(exc, PluginError):
        tb = traceback.extract_tb(exc.__cause__.__traceback__) if exc.__cause__ else []
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in tb[-3:])
        return f"{exc}" + (f" [{where}]" if where else "")
    if isinstance(exc, DataError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _raised_in(exc: BaseException, func: Any) -> bool:
    """True when a frame of exc's traceback is in the file that defines ``func``."""
    path = getattr(getattr(func, "__code__", None), "co_filename", None)
    return bool(path) and any(f.filename == path
                              for f in traceback.extract_tb(exc.__traceback__))


class RunRecorder:
    """Store writes, events and plugin hooks for one run, in the order a face expects."""

    def __init__(self, run: RunSpec, ctx: RunContext, dataset: str, fingerprint: str,
                 device: str | None = None):  # device: where it trains (a remote worker's)
        self.run, self.ctx, self.dataset = run, ctx, dataset
        self.device = device or ctx.device
        self.row_id = ctx.store.start_run(run, dataset, self.device, fingerprint)
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
        if result.status == DONE:
            try:
                call_event_hook(self.ctx.registry, "on_run_finished", run=self.run,
                                result=result)
            except PluginError as exc:
                result = RunResult(**{**result.__dict__, "status": FAILED,
                                      "error": failure_message(exc, self.run)})
        self.ctx.store.finish_run(self.row_id, result)
        self.result = result
        self.ctx.emit(ev.RunFinished(self.run, result))
        return result

    def fail(self, exc: BaseException) -> RunResult:
        return self.finish(RunResult(status=FAILED, epochs=tuple(self.epochs),
                                     error=failure_message(exc, self.run),
                                     device=self.device, dataset=self.dataset))


def should_skip(run: RunSpec, ctx: RunContext) -> bool:
    """True (and RunSkipped emitted) when the store already has this run done."""
    if ctx.settings.rerun:
        return False
    dataset = ctx.dataset_identity(run)
    if ctx.store.is_done(run, dataset):
        ctx.emit(ev.RunSkipped(run, f"already done in {ctx.store.path} on {dataset} "
                                    "(--rerun to train again)"))
        return True
    return False


def record_unavailable(run: RunSpec, ctx: RunContext, exc: BaseException) -> RunResult:
    """The run's data could not be had: record it failed (shown with the others), emit it."""
    result = RunResult(status=FAILED, error=failure_message(exc, run),
                       dataset=str(run.config["dataset"]))
    row = ctx.store.start_run(run, result.dataset, ctx.device)
    ctx.store.finish_run(row, result)
    ctx.emit(ev.RunFinished(run, result))
    return result


def execute_run(run: RunSpec, ctx: RunContext) -> RunResult | None:
    """Train one run start to finish, recording everything. None when skipped."""
    from workbench import training

    try:
        if should_skip(run, ctx):
            return None
        raw = ctx.raw_data(run.config["dataset"])
    except StoreError:
        raise
    except Exception as exc:  # data could not be had: the run fails, the sweep goes on
        return record_unavailable(run, ctx, exc)
    recorder = None
    try:
        recorder = RunRecorder(run, ctx, raw.identity, raw.fingerprint)
        if recorder.result is not None:  # a plugin failed it as it started
            return recorder.result
        split = ctx.split(run)
        spec = ctx.registry.models[run.config["model"]]
        try:
            model = training.build_model(spec.build, run.config, split)
        except Exception as exc:
            source = ctx.registry.source_of("model", spec.name)
            raise PluginError(source, f"building model {spec.name!r}", exc) from exc
        try:
            result = training.train(run.config, model, split, training.Callbacks(
                on_epoch=recorder.epoch, on_batch=recorder.batch, cancel=ctx.cancel))
        except Exception as exc:  # raised in the plugin's own code: name the plugin
            if _raised_in(exc, spec.build) and not isinstance(exc, (PluginError, StoreError)):
                source = ctx.registry.source_of("model", spec.name)
                raise PluginError(source, f"training model {spec.name!r}", exc) from exc
            raise
        return recorder.finish(result)
    except StoreError:  # the store cannot record anything: stop the sweep (Runner says why)
        raise
    except Exception as exc:
        if recorder is None:
            result = RunResult(status=FAILED, error=failure_message(exc, run))
            ctx.emit(ev.RunFinished(run, result))
            return result
        return recorder.fail(exc)


class Executor(Protocol):
    def execute(self, ctx: RunContext) -> None:
        """Pull units with ctx.next_unit() until it returns None, and train them."""


class LocalExecutor:
    """Trains units one after another on this process's device."""

    concurrent = False  # one unit at a time: a new unit means the previous one finished

    def execute(self, ctx: RunContext) -> None:
        while (unit := ctx.next_unit()) is not None:
            run_unit(unit, ctx)


def make_executor(name: str | None, address: str | None = None,
                  ray_dir: Path | str | None = None) -> Executor | None:
    """The executor both faces use for ``--executor NAME`` (None: the local runner thread).
    Ray is imported only here, when asked for; RayUnavailable (a ValueError naming the extra
    to install) when it is missing."""
    if name == "ray":
        from workbench.ray_executor import RayExecutor
        return RayExecutor(address=address, ray_dir=ray_dir)
    return None


def run_unit(unit: Sequence[RunSpec], ctx: RunContext) -> None:
    """Train a unit: stacked when it holds several runs (see workbench.stacked), else alone."""
    if len(unit) > 1 and ctx.settings.stack:
        from workbench.stacked import execute_group
        execute_group(unit, ctx)
        return
    for run in unit:
        if ctx.cancel.is_set():
            return
        execute_run(run, ctx)

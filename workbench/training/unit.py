"""Train one unit of runs where the data is, and report through a Reporter: no store, no hooks.

The one training path of every executor: the local executor calls :func:`train_unit` on its
runner thread, the process executor in its child, the Ray executor in a Ray task. The driver
keeps the other half (store rows, events, plugin hooks: ``executors.recorder.UnitRecorder``)
and feeds it from what this reports.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

from workbench.types import FAILED, EpochMetrics, RunResult, RunSpec


@dataclass(frozen=True)
class ModelBuild:
    """What a worker needs to build a run's model and shape its training: the plugin's build
    function, where it came from (named in the error when building or training it fails),
    whether it takes the input shape, and the training-callback kinds its runs may name."""

    build: Callable[..., Any]
    source: str
    input_shape: bool = False
    callbacks: Mapping[str, Any] = field(default_factory=dict)  # name -> CallbackKind

    @classmethod
    def of(cls, registry: Any, name: str) -> "ModelBuild":
        spec = registry.models[name]
        return cls(spec.build, registry.source_of("model", name), spec.input_shape,
                   dict(registry.callbacks))


class Cancel(Protocol):
    def is_set(self) -> bool: ...


class Reporter(Protocol):
    """Where a worker reports; every method may be called from the training thread."""

    def claim(self, run: RunSpec, device: str) -> bool:
        """About to train ``run``: False when it must not be trained (already finished by an
        earlier attempt, failed by a plugin as it started, or cancelled)."""

    def epoch(self, run: RunSpec, metrics: EpochMetrics) -> None: ...

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None: ...

    def finished(self, run: RunSpec, result: RunResult) -> None: ...

    # Optional: ``cancelled(run) -> bool``, true when this run alone is to stop (one member
    # of a stack, or a run of the unit not started yet); a reporter without it cannot
    # cancel members.


class ReportFailed(Exception):
    """The reporter raised (the store cannot be written...): not the run's fault, so it ends
    the unit instead of failing the run. ``__cause__`` is the reporter's exception."""


class _Guarded:
    """A Reporter whose own exceptions come out as ReportFailed."""

    def __init__(self, reporter: Reporter):
        self.inner = reporter

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            try:
                return method(*args)
            except Exception as exc:
                raise ReportFailed() from exc
        return call


def writable(raw: Any) -> Any:
    """RawData whose arrays torch may wrap (object-store arrays arrive read-only)."""
    fields = ("train_images", "train_labels", "test_images", "test_labels")
    if all(getattr(raw, f).flags.writeable for f in fields):
        return raw
    return replace(raw, **{f: getattr(raw, f).copy() for f in fields})


def train_unit(unit: Sequence[RunSpec], raw: Any, device: str,
               models: Mapping[str, ModelBuild], reporter: Reporter,
               cancel: Cancel | None = None, stack: bool = True) -> dict[str, RunResult]:
    """Train the unit's runs on ``device``: as one stack when ``stack`` and the runs allow it
    (workbench.stacking), else one after another, reporting as they go. Returns the result
    of every run trained, by run id. An exception the reporter raised propagates."""
    raw, guarded = writable(raw), _Guarded(reporter)
    # Denormal floats (Adam's second moments of tiny gradients) are slow on x86: flushed to
    # zero on this thread, 10-15 % off a small MLP's epoch on CPU. Every executor trains
    # here, so every one computes the same numbers.
    import torch

    torch.set_flush_denormal(True)
    results: dict[str, RunResult] = {}
    try:
        if len(unit) > 1 and stack:
            unit = _train_stacked(unit, raw, device, models, guarded, cancel, results)
        member = getattr(guarded, "cancelled", None)
        for run in unit:
            if cancel is not None and cancel.is_set():
                break
            if member and member(run):
                continue  # cancelled before it started: the driver records it so
            if not guarded.claim(run, device):
                continue
            this = _RunCancel(cancel, (lambda run=run: member(run)) if member else None)
            result = train_one(run, raw, device, models[run.config["model"]], guarded, this)
            results[run.run_id] = result
            guarded.finished(run, result)
    except ReportFailed as exc:
        raise exc.__cause__ from None
    return results


class _RunCancel:
    """A cancel flag for one run of a unit: set when the unit or this run is cancelled."""

    def __init__(self, unit: Cancel | None, this: Callable[[], bool] | None):
        self.unit, self.this = unit, this

    def is_set(self) -> bool:
        return bool(self.unit is not None and self.unit.is_set() or self.this and self.this())


def train_one(run: RunSpec, raw: Any, device: str, model: ModelBuild, reporter: Reporter,
              cancel: Cancel | None = None) -> RunResult:
    """One run, start to finish; its exceptions become a FAILED result with a readable
    reason (naming the plugin when they came from its code)."""
    from workbench import data, training
    from workbench.callbacks import make_run_callbacks
    from workbench.failures import failure_message
    from workbench.plugins import PluginError

    epochs: list[EpochMetrics] = []

    def on_epoch(metrics: EpochMetrics) -> None:
        epochs.append(metrics)
        reporter.epoch(run, metrics)

    name = run.config["model"]
    try:
        split = data.make_split(raw, run.config["seed"], device)
        try:
            net = training.build_model(model, run.config, split)
        except Exception as exc:
            raise PluginError(model.source, f"building model {name!r}", exc) from exc
        try:
            return training.train(run.config, net, split, training.Callbacks(
                on_epoch=on_epoch,
                on_batch=lambda e, b, n, loss: reporter.batch(run, e, b, n, loss),
                cancel=cancel, shaping=make_run_callbacks(model.callbacks, run.config)))
        except ReportFailed:
            raise
        except Exception as exc:
            if _raised_in(exc, model.build):  # the plugin's own code: name the plugin
                raise PluginError(model.source, f"training model {name!r}", exc) from exc
            raise
    except ReportFailed:
        raise
    except Exception as exc:
        return RunResult(status=FAILED, epochs=tuple(epochs), error=failure_message(exc, run),
                         device=device, dataset=raw.identity)


def _raised_in(exc: BaseException, func: Any) -> bool:
    """True when a frame of exc's traceback is in the file that defines ``func``."""
    path = getattr(getattr(func, "__code__", None), "co_filename", None)
    return bool(path) and any(f.filename == path
                              for f in traceback.extract_tb(exc.__traceback__))


def _train_stacked(unit: Sequence[RunSpec], raw: Any, device: str,
                   models: Mapping[str, ModelBuild], reporter: Reporter,
                   cancel: Cancel | None, results: dict[str, RunResult]
                   ) -> Sequence[RunSpec]:
    """Train the unit as one stack when workbench.stacking allows it (callbacks by index).
    Returns the runs still to train one by one (all of them when it cannot stack)."""
    from workbench import data, training
    from workbench.failures import failure_message
    from workbench.stacking import why_not_stacked
    from workbench.training.stacked import train_stacked

    try:
        splits = {seed: data.make_split(raw, seed, device)  # repeats: one split per seed
                  for seed in dict.fromkeys(int(r.config["seed"]) for r in unit)}
        split = splits[int(unit[0].config["seed"])]
        nets = [training.build_model(models[r.config["model"]], r.config, split)
                for r in unit]
        if why_not_stacked([r.config for r in unit], nets):
            return unit  # a custom model, dropout...: one by one
    except Exception:  # build errors are reported run by run on the one-by-one path
        return unit
    member = getattr(reporter, "cancelled", None)
    todo = [i for i, run in enumerate(unit) if reporter.claim(run, device)]  # claimed now
    runs = [unit[i] for i in todo]
    history: list[list[EpochMetrics]] = [[] for _ in runs]
    open_ = set(range(len(runs)))

    def on_epoch(i: int, metrics: EpochMetrics) -> None:
        history[i].append(metrics)
        reporter.epoch(runs[i], metrics)

    def on_finish(i: int, result: RunResult) -> None:
        open_.discard(i)
        results[runs[i].run_id] = result
        reporter.finished(runs[i], result)

    try:
        if runs:
            train_stacked([r.config for r in runs], [nets[i] for i in todo], splits,
                          on_epoch=on_epoch, on_finish=on_finish,
                          on_batch=lambda i, *a: reporter.batch(runs[i], *a), cancel=cancel,
                          kinds=models[runs[0].config["model"]].callbacks,
                          cancelled=(lambda i: member(runs[i])) if member else None)
    except ReportFailed:
        raise
    except Exception as exc:
        for i in sorted(open_):
            on_finish(i, RunResult(status=FAILED, epochs=tuple(history[i]), device=device,
                                   error=failure_message(exc, runs[i]), dataset=raw.identity))
    return []

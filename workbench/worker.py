"""Train one unit of runs where the data is, and report through callbacks: no store, no hooks.

This is the half of a run that can live on another machine. The driver keeps the other half
(store rows, events, plugin hooks: ``runner.RunRecorder``) and feeds it from what this reports.
The Ray executor calls :func:`train_unit` inside a Ray task; a stacked trainer for a group of
compatible runs plugs in here too (one call per unit, results per run).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

from workbench.types import FAILED, EpochMetrics, RunResult, RunSpec


@dataclass(frozen=True)
class ModelBuild:
    """What a worker needs to build a run's model: the plugin's build function and where it
    came from (named in the error when building fails)."""

    build: Callable[..., Any]
    source: str


class Reporter(Protocol):
    """Where a worker reports; every method may be called from the training thread."""

    def claim(self, run: RunSpec, device: str) -> bool:
        """About to train ``run``: False when it must not be trained (already finished by an
        earlier attempt, or cancelled)."""

    def epoch(self, run: RunSpec, metrics: EpochMetrics) -> None: ...

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None: ...

    def finished(self, run: RunSpec, result: RunResult) -> None: ...

    # Optional: ``cancelled(run) -> bool``, true when this run alone is to stop (one member
    # of a stack); a reporter without it cannot cancel members.


def writable(raw: Any) -> Any:
    """RawData whose arrays torch may wrap (object-store arrays arrive read-only)."""
    fields = ("train_images", "train_labels", "test_images", "test_labels")
    if all(getattr(raw, f).flags.writeable for f in fields):
        return raw
    return replace(raw, **{f: getattr(raw, f).copy() for f in fields})


def train_one(run: RunSpec, raw: Any, device: str, model: ModelBuild, reporter: Reporter,
              cancel: threading.Event | None = None) -> RunResult:
    """One run, start to finish; exceptions become a FAILED result with a readable reason."""
    from workbench import data, training
    from workbench.plugins import PluginError
    from workbench.execution import failure_message

    epochs: list[EpochMetrics] = []

    def on_epoch(metrics: EpochMetrics) -> None:
        epochs.append(metrics)
        reporter.epoch(run, metrics)

    try:
        split = data.make_split(raw, run.config["seed"], device)
        try:
            net = training.build_model(model.build, run.config, split)
        except Exception as exc:
            raise PluginError(model.source, f"building model {run.config['model']!r}",
                              exc) from exc
        return training.train(run.config, net, split, training.Callbacks(
            on_epoch=on_epoch,
            on_batch=lambda e, b, n, loss: reporter.batch(run, e, b, n, loss),
            cancel=cancel))
    except Exception as exc:
        return RunResult(status=FAILED, epochs=tuple(epochs), error=failure_message(exc, run),
                         device=device, dataset=raw.identity)


def train_unit(unit: Sequence[RunSpec], raw: Any, device: str,
               models: Mapping[str, ModelBuild], reporter: Reporter,
               cancel: threading.Event | None = None) -> dict[str, RunResult]:
    """Train the unit's runs on ``device`` (stacked when the unit is a group that
    workbench.stacked can train as one, else one after another), reporting as they go.
    Returns the result of every run trained, by run id."""
    raw = writable(raw)
    results: dict[str, RunResult] = {}
    if len(unit) > 1:
        unit = _train_stacked(unit, raw, device, models, reporter, cancel, results)
    member = getattr(reporter, "cancelled", None)
    for run in unit:
        if cancel is not None and cancel.is_set():
            break
        if member and member(run):
            continue  # cancelled before it started: the driver records it so
        if not reporter.claim(run, device):
            continue
        this = _RunCancel(cancel, (lambda run=run: member(run)) if member else None)
        result = train_one(run, raw, device, models[run.config["model"]], reporter, this)
        results[run.run_id] = result
        reporter.finished(run, result)
    return results


class _RunCancel:
    """A cancel flag for one run of a unit: set when the unit or this run is cancelled."""

    def __init__(self, unit: threading.Event | None, this: Callable[[], bool] | None):
        self.unit, self.this = unit, this

    def is_set(self) -> bool:
        return bool(self.unit is not None and self.unit.is_set() or self.this and self.this())


def _train_stacked(unit: Sequence[RunSpec], raw: Any, device: str,
                   models: Mapping[str, ModelBuild], reporter: Reporter,
                   cancel: threading.Event | None, results: dict[str, RunResult]
                   ) -> Sequence[RunSpec]:
    """Train the group as one stack when workbench.stacked is there and accepts it (its
    check_group/train_stacked, callbacks by index). Returns the runs still to train."""
    try:
        from workbench.stacked import check_group, train_stacked
    except ImportError:
        return unit
    from workbench import data, training
    from workbench.execution import failure_message

    try:
        splits = {seed: data.make_split(raw, seed, device)  # repeats: one split per seed
                  for seed in dict.fromkeys(int(r.config["seed"]) for r in unit)}
        split = splits[int(unit[0].config["seed"])]
        nets = [training.build_model(models[r.config["model"]].build, r.config, split)
                for r in unit]
        if check_group([r.config for r in unit], nets):
            return unit  # not stackable (a custom model, dropout...): one by one
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
                          cancelled=(lambda i: member(runs[i])) if member else None)
    except Exception as exc:
        for i in sorted(open_):
            on_finish(i, RunResult(status=FAILED, epochs=tuple(history[i]), device=device,
                                   error=failure_message(exc, runs[i]), dataset=raw.identity))
    return []

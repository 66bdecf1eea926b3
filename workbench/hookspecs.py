"""Every hook a plugin can implement, grouped by phase.

Registration hooks receive a ``register`` callback, so the host can list every model,
experiment and data set (as simonw/llm does). Event hooks receive frozen dataclasses and are
called on the runner thread: they must not touch any UI.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from workbench.types import (CallbackKind, DatasetSpec, EpochMetrics, ExperimentKind, ModelSpec,
                             RunResult, RunSpec)

hookspec = pluggy.HookspecMarker("mnist_workbench")


# -- discovery: what a plugin offers --------------------------------------------------------

@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Offer models: call ``register(ModelSpec(...))`` once per model."""


@hookspec
def register_experiments(register: Callable[[ExperimentKind], None]) -> None:
    """Offer experiment kinds: call ``register(ExperimentKind(...))`` once per kind."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Offer data sets: call ``register(DatasetSpec(...))`` once per data set."""


@hookspec
def register_callbacks(register: Callable[[CallbackKind], None]) -> None:
    """Offer training callbacks (schedules, early stopping...): call
    ``register(CallbackKind(...))`` once per kind; a run uses them with ``callbacks = [...]``.
    Their objects run on the training thread (or process), not the runner thread."""


# -- events: what happens during a sweep (runner thread) ------------------------------------

@hookspec
def on_run_started(run: RunSpec, device: str, dataset: str) -> None:
    """A run is about to train (``run.config`` is read-only). Raising here marks the run
    failed, naming the plugin."""


@hookspec
def on_epoch_ended(run: RunSpec, metrics: EpochMetrics) -> None:
    """An epoch of ``run`` ended. Raising here marks the run failed, naming the plugin."""


@hookspec
def on_run_finished(run: RunSpec, result: RunResult) -> None:
    """A run ended with ``result.status`` (done, failed, diverged or cancelled), already
    stored. Called once per run, for every final status; raising here is reported against
    the plugin and changes nothing of the run."""

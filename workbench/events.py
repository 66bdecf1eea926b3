"""Events the engine emits while it works.

Every event is a frozen dataclass, safe to hand to another thread (the TUI posts them to
itself; headless mode prints them; plugins receive them through the event hooks). Events carry
plain data only: no tensors, no widgets, no open handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.types import EpochMetrics, RunResult, RunSpec


@dataclass(frozen=True)
class Event:
    """Base class of everything the runner emits."""


# The engine's event pipe: the Runner hands every event to one of these, on its thread.
Emit = Callable[[Event], None]


@dataclass(frozen=True)
class Notice(Event):
    """Something the user must read: a data fallback, a plugin that failed to load..."""

    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class RunQueued(Event):
    run: RunSpec


@dataclass(frozen=True)
class RunSkipped(Event):
    """A run already done in the store (same config hash) that was not trained again."""

    run: RunSpec
    reason: str


@dataclass(frozen=True)
class RunStarted(Event):
    run: RunSpec
    device: str
    dataset: str  # the identity actually used, e.g. "mnist-sample (fallback for mnist)"


@dataclass(frozen=True)
class BatchProgress(Event):
    """Emitted every few batches so a live chart moves within seconds."""

    run: RunSpec
    epoch: int
    batch: int
    batches: int
    loss: float


@dataclass(frozen=True)
class EpochEnded(Event):
    run: RunSpec
    metrics: EpochMetrics


@dataclass(frozen=True)
class RunFinished(Event):
    """A run ended: result.status says how (done, failed, diverged, cancelled)."""

    run: RunSpec
    result: RunResult


@dataclass(frozen=True)
class SweepStarted(Event):
    runs: tuple[RunSpec, ...]
    total_epochs: int


@dataclass(frozen=True)
class SweepFinished(Event):
    counts: dict[str, int] = field(default_factory=dict)  # status -> number of runs
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

"""The training-callback seam: what a callback plugin sees of a run, and how its objects are
made from a run's config.

A callback object (made by a ``CallbackKind``) is called at the start and the end of every
epoch with a ``TrainingContext``: it may read the run's config and metrics, set the learning
rate and request a stop. Nothing else of the trainer is reachable from it, so one contract
serves lone and stacked training alike.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping, Sequence

from workbench.types import CallbackKind, EpochMetrics, FrozenConfig


class TrainingContext:
    """One run's view for its callbacks (read metrics, set the learning rate, request a stop).

    ``epoch`` is the 1-based epoch about to train (``on_epoch_start``) or just trained
    (``on_epoch_end``). ``set_lr`` in ``on_epoch_start`` applies to that epoch; in
    ``on_epoch_end``, to the next one.
    """

    __slots__ = ("_config", "_epochs", "_base_lr", "_lr", "_history", "_epoch", "_stop")

    def __init__(self, config: Mapping[str, Any]):
        self._config = FrozenConfig(config)
        self._epochs = int(config["epochs"])
        self._base_lr = self._lr = float(config["lr"])
        self._history: list[EpochMetrics] = []
        self._epoch = 0
        self._stop: str | None = None

    @property
    def config(self) -> Mapping[str, Any]:
        """The run's resolved config (read-only)."""
        return self._config

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def epochs(self) -> int:
        """The run's total number of epochs."""
        return self._epochs

    @property
    def base_lr(self) -> float:
        """The learning rate of the config (``lr``)."""
        return self._base_lr

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step uses."""
        return self._lr

    @property
    def history(self) -> tuple[EpochMetrics, ...]:
        """Metrics of every epoch trained so far (the last one included in on_epoch_end)."""
        return tuple(self._history)

    @property
    def metrics(self) -> EpochMetrics | None:
        """The last epoch's metrics (None before the first epoch ended)."""
        return self._history[-1] if self._history else None

    @property
    def stop_requested(self) -> str | None:
        return self._stop

    def set_lr(self, lr: float) -> None:
        value = float(lr)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"set_lr: got {lr!r}, expected a finite number > 0")
        self._lr = value

    def request_stop(self, reason: str) -> None:
        """End the run after this epoch as done (stopped early, ``reason`` stored with it)."""
        if self._stop is None:
            self._stop = str(reason)

    # -- the trainer's side ---------------------------------------------------------------

    def _start(self, epoch: int) -> None:
        self._epoch = epoch

    def _ended(self, metrics: EpochMetrics) -> None:
        self._history.append(metrics)


class RunCallbacks:
    """The callback objects of one run and their context, called in the config's order."""

    def __init__(self, objects: Sequence[tuple[str, Any]], config: Mapping[str, Any]):
        self.objects = list(objects)  # (kind name, object), in the config's order
        self.ctx = TrainingContext(config)

    def epoch_start(self, epoch: int) -> float:
        """Call on_epoch_start; returns the learning rate this epoch trains with."""
        self.ctx._start(epoch)
        self._call("on_epoch_start")
        return self.ctx.lr

    def epoch_end(self, metrics: EpochMetrics) -> str | None:
        """Call on_epoch_end; returns why the run stops here, or None to go on."""
        self.ctx._ended(metrics)
        self._call("on_epoch_end")
        return self.ctx.stop_requested

    def _call(self, method: str) -> None:
        for name, obj in self.objects:
            hook = getattr(obj, method, None)
            if hook is None:
                continue
            try:
                hook(self.ctx)
            except Exception as exc:
                raise CallbackError(name, method, exc, obj) from exc


class CallbackError(Exception):
    """A training callback raised; the message names the callback kind, the file that
    defines it (the plugin) and the method."""

    def __init__(self, kind: str, method: str, exc: BaseException, defined_by: Any = None):
        self.kind = kind
        where = _file_of(defined_by)
        super().__init__(f"callback {kind!r}{f' ({where})' if where else ''} raised in "
                         f"{method}: {type(exc).__name__}: {exc}")


def _file_of(obj: Any) -> str:
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return str(getattr(module, "__file__", "") or "")


def chosen(config: Mapping[str, Any]) -> list[str]:
    """The callback kinds a run config names (``callbacks``: a name or a list of names)."""
    value = config.get("callbacks") or []
    return [value] if isinstance(value, str) else list(value)


def make_run_callbacks(kinds: Mapping[str, CallbackKind], config: Mapping[str, Any]
                       ) -> RunCallbacks:
    """One object per callback the config names, in its order (names checked at load)."""
    read_only = FrozenConfig(config)
    objects = []
    for name in chosen(config):
        try:
            objects.append((name, kinds[name].make(read_only)))
        except Exception as exc:
            raise CallbackError(name, "make", exc, kinds[name].make) from exc
    return RunCallbacks(objects, config)


def uses_total_epochs(kinds: Mapping[str, CallbackKind], config: Mapping[str, Any]) -> bool:
    """True when a callback of this run depends on its total ``epochs`` (no prefix sharing)."""
    return any(kinds[name].uses_total_epochs for name in chosen(config) if name in kinds)

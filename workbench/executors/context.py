"""What every executor works with: the settings, the run context (registry, store, events,
cancel flag, data), and the Executor protocol the Runner drives."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from workbench import events as ev
from workbench.plugins import Registry
from workbench.store import Store
from workbench.types import RunSpec


@dataclass
class Settings:
    """How runs are executed; shared by every face."""

    device: str | None = None  # None/"auto": CUDA when available
    data_dir: Path | None = None
    allow_fallback: bool = True
    rerun: bool = False  # train again even when the store has the run done
    stack: bool = True  # let the planner train compatible runs together
    # torch CPU threads for training. One by default: these small MLPs train no faster on
    # more threads of an idle machine and several times slower on a busy one, and the other
    # core stays free for the UI. None: torch's default (one per core).
    threads: int | None = 1


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count for this process's training (None: leave it)."""
    if threads:
        import torch
        torch.set_num_threads(int(threads))


class RunContext:
    """What an executor needs to train runs: data, store, events, cancel flag."""

    def __init__(self, registry: Registry, store: Store, settings: Settings,
                 emit: ev.Emit):
        self.registry, self.store, self.settings = registry, store, settings
        self._emit = emit
        self.cancel = threading.Event()  # cancel the run(s) in flight
        self.cancel_runs: set[str] = set()  # run ids: cancel these members of a stack only
        self.next_unit: Callable[[], list[RunSpec] | None] = lambda: None
        self._device: str | None = None
        self._noticed: set[str] = set()
        self.data_origins: dict[str, str] = {}  # data identity -> the source that served it

    @property
    def device(self) -> str:
        if self._device is None:
            from workbench.training import pick_device
            self._device = pick_device(self.settings.device)
        return self._device

    def emit(self, event: ev.Event) -> None:
        try:
            self._emit(event)
        except Exception:  # a face's bug must not kill the sweep
            traceback.print_exc()

    def raw_data(self, name: str) -> Any:
        from workbench import data

        def notify(message: str) -> None:
            if message not in self._noticed:
                self._noticed.add(message)
                self.emit(ev.Notice("warning", message))

        def progress(event: Any) -> None:  # say what a fetch tries; a cache hit or a
            # source skipped offline is quiet (the fallback warning lists them)
            if event.what in ("try", "ok", "failed") and not (
                    event.source == "data folder"
                    and (event.what != "failed" or "not found in" in event.detail)):
                detail = f" ({event.detail})" if event.detail else ""
                what = "trying" if event.what == "try" else event.what
                self.emit(ev.Notice("info", f"data {name}: {event.source}: {what}"
                                            f"{detail}"))

        raw = data.resolve(name, self.registry, self.settings.data_dir,
                           self.settings.allow_fallback, notify, progress)
        self.data_origins[raw.identity] = raw.origin
        return raw

    def model_builds(self, runs: Iterable[RunSpec]) -> dict[str, Any]:
        """The runs' models as workbench.training.unit.ModelBuild, by name."""
        from workbench.training.unit import ModelBuild

        names = {run.config["model"] for run in runs}
        return {name: ModelBuild.of(self.registry, name) for name in names}


class Executor(Protocol):
    """Where units train. The Runner calls ``execute`` on its thread."""

    # True: several units in flight at once (the Runner then lists each run until it
    # finishes); False: asking for a new unit means the previous one is over.
    concurrent: bool
    # True: one run of a stack in flight can be cancelled alone (RunContext.cancel_runs)
    member_cancel: bool

    def execute(self, ctx: RunContext) -> None:
        """Pull units with ctx.next_unit() until it returns None, and train them."""

"""The headless sweep's side of attaching: it records itself, its queue and the progress of
its runs in flight for viewers (about twice a second, from the face's thread, never from
training), and carries out the requests they send (workbench.live_store)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from workbench import events as ev
from workbench import live_store as live
from workbench.store import Store, StoreError

WRITE_SECONDS = 0.5  # how often the queue and progress are written (a viewer polls as often)


class LiveSweep:
    """Wraps a face's emit (``observe``) and is polled by the face's loop (``poll``)."""

    def __init__(self, store: Store, runner: Any, say: Callable[[str], None], command: str,
                 study_path: str | None):
        self.store, self.runner, self.say = store, runner, say
        self.id = live.start_sweep(store, command, study_path)
        self._lock = threading.Lock()
        self._progress: dict[str, tuple[int, int, int, float]] = {}
        self._written: tuple = ()
        self._last = 0.0
        self.stopping = False
        self.added: list = []  # runs queued by viewers, for the sweep's summary

    def observe(self, event: ev.Event) -> None:
        """On the runner thread: keep the latest batch of each run in flight (memory only)."""
        if isinstance(event, ev.BatchProgress):
            with self._lock:
                self._progress[event.run.run_id] = (event.epoch, event.batch, event.batches,
                                                    event.loss)
        elif isinstance(event, (ev.RunFinished, ev.RunSkipped)):
            with self._lock:
                self._progress.pop(event.run.run_id, None)

    def poll(self, force: bool = False) -> None:
        """Heartbeat, queue and progress when due, then the requests that came in."""
        now = time.monotonic()
        if not force and now - self._last < WRITE_SECONDS:
            return
        self._last = now
        queue = [("running", r) for r in self.runner.current()] + \
                [("queued", r) for r in self.runner.pending()]
        with self._lock:
            progress = dict(self._progress)
        shown = (tuple((s, r.run_id) for s, r in queue), tuple(sorted(progress.items())))
        changed = shown != self._written
        try:
            live.beat(self.store, self.id, queue if changed else None,
                      progress if changed else None)
            self._written = shown
            for command in live.pending_commands(self.store, self.id):
                self._carry_out(command)
        except StoreError as exc:  # the sweep trains on; viewers just see it go stale
            self.say(f"WARNING: live progress not recorded: {exc}")

    def close(self, outcome: str) -> None:
        try:
            live.finish_sweep(self.store, self.id, outcome)
        except StoreError:
            pass

    def _carry_out(self, command: dict[str, Any]) -> None:
        kind, args = command["kind"], command["args"]
        names = {r.run_id: r.name for r in self.runner.current() + self.runner.pending()}
        name = names.get(args.get("run_key", ""), args.get("run_key"))
        state, text = live.REFUSED, f"unknown request {kind!r}"
        if self.stopping and kind in ("queue", "move"):
            text = "the sweep is stopping after the current run"
        elif kind == "cancel":
            current = self.runner.current()
            key = args.get("run_key")
            member = getattr(self.runner, "cancel_run", None)  # one member of a stack
            if not current:
                text = "nothing is running"
            elif key and key not in {r.run_id for r in current}:
                text = f"{name} is not running"
            elif key and member is not None and len(current) > 1:
                member(key)
                state, text = live.DONE, f"cancelling {name}"
            else:
                self.runner.cancel_current()
                state, text = live.DONE, "cancelling " + ", ".join(r.name for r in current)
        elif kind == "remove":
            if self.runner.remove(args["run_key"]):
                state, text = live.DONE, f"removed {name} from the queue"
            else:
                text = f"{name} is not pending"
        elif kind == "move":
            if self.runner.move(args["run_key"], int(args["delta"])):
                way = "up" if int(args["delta"]) < 0 else "down"
                state, text = live.DONE, f"moved {name} {way}"
            else:
                text = f"{name} is not pending"
        elif kind == "queue":
            runs = [live.run_of(r) for r in args["runs"]]
            known = {r.run_id for r in self.runner.current() + self.runner.pending()}
            new = [r for r in runs if r.run_id not in known]
            if not new:
                text = "already queued or running"
            else:
                self.runner.submit(new)
                self.added += new
                state, text = live.DONE, f"queued {', '.join(r.name for r in new)}"
        elif kind == "stop":
            dropped = len(self.runner.pending())
            self.stopping = True
            self.runner.stop(cancel=False)
            state, text = live.DONE, (f"stopping after the current run ({dropped} pending "
                                      f"run{'s' if dropped != 1 else ''} dropped)")
        live.answer(self.store, command["id"], state, text)
        self.say(f"request #{command['id']} from {command['requested_by']}: {kind} -> "
                 f"{state}: {text}")

"""Units for an executor that trains several at once (the process pool, Ray): a thread pulls
them from ``ctx.next_unit`` (which may block on the app's queue) while fewer than
``capacity`` are in flight, so the runner's pending queue stays the user's to reorder; the
executor's driver loop, on the runner thread, takes them and says when each is over."""

from __future__ import annotations

import queue
import threading
import time
from typing import Sequence

from workbench.executors.context import RunContext
from workbench.types import RunSpec

POLL_SECONDS = 0.05


class UnitFeeder:
    """The driver loop calls ``take()`` each turn, ``track(unit, parts)`` for a unit it
    trains as ``parts`` pieces and ``part_over(key)`` as each ends (the unit's slot frees
    when all have), sets ``cancel_handled`` once it has passed a cancel on to its units in
    flight (``next_unit`` clears the flag), and calls ``close()`` when it leaves."""

    def __init__(self, ctx: RunContext, capacity: int, name: str):
        self.ctx = ctx
        self.slots = threading.Semaphore(capacity)
        self.incoming: queue.Queue[list[RunSpec] | None] = queue.Queue()
        self.ended = False  # next_unit said there are no more
        self.closing = False
        self.cancel_handled = False
        self._parts: dict[int, int] = {}  # unit key -> parts not yet over
        threading.Thread(target=self._feed, name=name, daemon=True).start()

    def _feed(self) -> None:
        while not self.closing:
            if not self.slots.acquire(timeout=POLL_SECONDS):
                continue
            while self.ctx.cancel.is_set() and not self.cancel_handled and not self.closing:
                time.sleep(POLL_SECONDS / 4)  # the driver passes the cancel on first
            if self.closing:
                break
            unit = self.ctx.next_unit()
            self.incoming.put(unit)
            if unit is None:
                break

    def take(self) -> list[list[RunSpec]]:
        """The units pulled since the last call. One pulled just before a cancel or stop is
        cancelled too: left out, its slot freed."""
        units = []
        while not self.ended:
            try:
                unit = self.incoming.get_nowait()
            except queue.Empty:
                break
            if unit is None:
                self.ended = True
            elif self.ctx.cancel.is_set():
                self.slots.release()
            else:
                units.append(unit)
        return units

    def track(self, unit: Sequence[RunSpec], parts: int) -> int:
        """Start tracking a unit trained as ``parts`` pieces; returns its key."""
        key = id(unit)
        self._parts[key] = parts
        if parts <= 0:
            self._over(key)
        return key

    def part_over(self, key: int) -> None:
        if key in self._parts:
            self._parts[key] -= 1
            if self._parts[key] <= 0:
                self._over(key)

    def _over(self, key: int) -> None:
        del self._parts[key]
        self.slots.release()

    def close(self) -> None:
        self.closing = True

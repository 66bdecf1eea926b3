"""Live charts (textual-plotext): the running run's losses and accuracy (with its learning
rate when a schedule moves it), and overlays.

Events only update plain lists here and mark what changed; the app's 1 Hz timer calls
``redraw()``, which replots only the charts whose data changed (the accuracy chart once an
epoch, not with every batch report). Plotext needs ``clear_data()``
before every replot, or it draws stale series and wrong axes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench.types import EpochMetrics, RunSpec

SMOOTHING = 0.8  # exponential moving average of the per-batch loss
OVERLAY_COLORS = ((0, 200, 220), (220, 80, 220), (80, 220, 80), (240, 150, 40),
                  (90, 130, 255), (240, 70, 70), (230, 230, 60))
GREY, YELLOW, RED = (150, 150, 150), (240, 220, 60), (240, 80, 80)
PARTS = ("status", "loss", "acc")


def acc_limits(values: Sequence[float]) -> tuple[float, float]:
    """The accuracy axis (percent): the data's range with a little room, inside [0, 100].
    Left to itself, plotext pads a single point or a flat line by half its value (150 %)."""
    lo, hi = min(values), max(values)
    pad = max(0.5, 0.05 * (hi - lo))
    return max(0.0, lo - pad), min(100.0, hi + pad)


class CachedPlot(PlotextPlot):
    """A PlotextPlot that builds its picture once per replot and size, not on every render
    (showing the tab again, a toast passing over it): plotext's build is pure Python and
    would take the GIL from the training thread."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.version = 0  # bumped by LiveCharts after each replot
        self._cache_key: tuple | None = None
        self._cache: Any = None

    def render(self) -> Any:
        key = (self.version, self.size, self.app.theme)
        if key != self._cache_key:
            self._cache, self._cache_key = super().render(), key
        return self._cache


@dataclass
class Series:
    """One run's curves: per-epoch metrics and (for the live run) smoothed batch losses."""

    label: str
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)  # percent
    lr: list[float | None] = field(default_factory=list)  # None: not recorded (older stores)
    batch_x: list[float] = field(default_factory=list)  # fractional epoch
    batch_loss: list[float] = field(default_factory=list)  # smoothed

    def add_epoch(self, m: EpochMetrics | dict[str, Any]) -> None:
        get = m.get if isinstance(m, dict) else lambda k: getattr(m, k)
        self.epochs.append(int(get("epoch")))
        self.train_loss.append(float(get("train_loss")))
        self.val_loss.append(float(get("val_loss")))
        self.val_acc.append(100.0 * float(get("val_acc")))
        lr = get("lr")
        self.lr.append(None if lr is None else float(lr))

    @property
    def lr_changes(self) -> bool:
        """True when the learning rate moved during the run (a schedule): worth drawing."""
        return None not in self.lr and len(set(self.lr)) > 1

    def add_batch(self, x: float, loss: float) -> None:
        if self.batch_loss:
            loss = SMOOTHING * self.batch_loss[-1] + (1 - SMOOTHING) * loss
        self.batch_x.append(x)
        self.batch_loss.append(loss)


class LiveCharts(Vertical):
    """Status line, loss chart and accuracy chart."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.live: Series | None = None
        self.live_run: RunSpec | None = None
        self.overlays: list[Series] = []
        self.dirty: set[str] = set(PARTS)  # of PARTS: what the next redraw redraws
        self.redraws = 0
        self._status = "nothing running: queue a run on the Experiments tab (a / A)"
        self._rate_from: tuple[float, int] | None = None  # (time, samples) at the first report

    def compose(self) -> ComposeResult:
        yield Static(self._status, id="live-status")
        with Horizontal(id="charts"):
            yield CachedPlot(id="loss-chart")
            yield CachedPlot(id="acc-chart")

    # -- fed by the app's event handler (UI thread) -------------------------------------

    def run_started(self, run: RunSpec, device: str, dataset: str) -> None:
        self.live_run = run
        self.live = Series(run.name)
        self._rate_from = None
        self._status = f"▶ {run.name} on {device} | {dataset} | starting"
        self.dirty.update(PARTS)

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None:
        if self.live is None or run != self.live_run:
            return
        self.live.add_batch(epoch - 1 + batch / batches, loss)
        samples = ((epoch - 1) * batches + batch) * int(run.config["batch_size"])
        now = time.perf_counter()
        rate = ""
        if self._rate_from is None:  # measured between reports: start-up is not training
            self._rate_from = (now, samples)
        elif now > self._rate_from[0]:
            per_second = (samples - self._rate_from[1]) / (now - self._rate_from[0])
            rate = f" | {per_second:,.0f} samples/s"
        self._status = (f"▶ {run.name} | epoch {epoch}/"
                        f"{run.config['epochs']} batch {batch}/{batches} | loss {loss:.4f}{rate}")
        self.dirty.update(("status", "loss"))

    def epoch(self, run: RunSpec, m: EpochMetrics) -> None:
        if self.live is None or run != self.live_run:
            return
        self.live.add_epoch(m)
        lr = f" | lr {m.lr:.3g}" if m.lr is not None and run.config.get("callbacks") else ""
        self._status = (f"▶ {run.name} | epoch {m.epoch}/"
                        f"{run.config['epochs']} | train loss {m.train_loss:.4f} | val loss "
                        f"{m.val_loss:.4f} | val acc {100 * m.val_acc:.2f}% (best "
                        f"{100 * m.best_val_acc:.2f}% @{m.best_epoch}){lr}")
        self.dirty.update(PARTS)

    def finished(self, run: RunSpec, status: str, test_acc: float | None) -> None:
        if run != self.live_run:
            return
        acc = f" | test acc {100 * test_acc:.2f}%" if test_acc is not None else ""
        self._status = f"{status}: {run.name}{acc}"
        self.dirty.add("status")

    def set_overlays(self, series: Sequence[Series]) -> None:
        self.overlays = list(series)
        self.dirty.update(("loss", "acc"))

    # -- drawn on the timer -------------------------------------------------------------

    def redraw(self) -> bool:
        """Replot when something changed; True when it did."""
        if not self.dirty or not self.is_mounted:
            return False
        parts, self.dirty = self.dirty, set()
        self.redraws += 1
        if "status" in parts:  # one line, fixed height: no layout pass needed
            self.query_one("#live-status", Static).update(self._status, layout=False)
        if "loss" in parts:
            self._draw_loss(self.query_one("#loss-chart", CachedPlot))
        if "acc" in parts:
            self._draw_acc(self.query_one("#acc-chart", CachedPlot))
        return True

    def _draw_loss(self, widget: CachedPlot) -> None:
        plt = widget.plt
        plt.clear_data()
        plt.title("loss (x: epoch)")
        live = self.live
        if live is not None:
            if live.batch_x:
                plt.plot(live.batch_x, live.batch_loss, label="batch loss (smoothed)",
                         color=GREY, marker="braille")
            if live.epochs:
                plt.plot(live.epochs, live.train_loss, label="train loss", color=YELLOW,
                         marker="braille")
                plt.plot(live.epochs, live.val_loss, label="val loss", color=RED,
                         marker="braille")
        for series, color in zip(self.overlays, OVERLAY_COLORS):
            if series.epochs:
                plt.plot(series.epochs, series.val_loss, label=f"val {series.label}",
                         color=color, marker="braille")
        widget.version += 1
        widget.refresh()

    def _draw_acc(self, widget: CachedPlot) -> None:
        plt = widget.plt
        plt.clear_data()
        plt.title("validation accuracy % (x: epoch)")
        values = [v for series in [self.live, *self.overlays] if series is not None
                  for v in series.val_acc]
        if values:
            plt.ylim(*acc_limits(values))
        if self.live is not None and self.live.epochs:
            plt.plot(self.live.epochs, self.live.val_acc, label=self.live.label[:40],
                     color=YELLOW, marker="braille")
            if self.live.lr_changes:  # a schedule: its learning rate on the right axis
                plt.plot(self.live.epochs, self.live.lr, label="learning rate (right axis)",
                         color=GREY, marker="braille", yside="right")
        for series, color in zip(self.overlays, OVERLAY_COLORS):
            if series.epochs:
                plt.plot(series.epochs, series.val_acc, label=series.label[:40], color=color,
                         marker="braille")
        widget.version += 1
        widget.refresh()

    @property
    def status_text(self) -> str:
        return self._status

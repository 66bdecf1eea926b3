"""Live charts (textual-plotext): a line per run in flight, the chosen run's losses and
accuracy (with its learning rate when a schedule moves it), and overlays of stored runs.

Events only update plain state here and mark what changed; the app's 1 Hz timer calls
``redraw()``, which replots only the charts whose data changed (the accuracy chart once an
epoch, not with every batch report). Plotext needs ``clear_data()`` before every replot, or
it draws stale series and wrong axes. Several runs can be in flight (a stack, a Ray
cluster): the table lists them all with progress and ETA, and Enter on one charts it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from workbench.tui.widgets.experiments import mark
from workbench.types import EpochMetrics, RunSpec

SMOOTHING = 0.8  # exponential moving average of the per-batch loss
OVERLAY_COLORS = ((0, 200, 220), (220, 80, 220), (80, 220, 80), (240, 150, 40),
                  (90, 130, 255), (240, 70, 70), (230, 230, 60))
GREY, YELLOW, RED = (150, 150, 150), (240, 220, 60), (240, 80, 80)
PARTS = ("status", "loss", "acc")
MAX_TICKS = 10


def epoch_ticks(epochs: int) -> list[int]:
    """Whole-number epoch ticks from 1 to ``epochs``, at most MAX_TICKS of them."""
    step = max(1, math.ceil(epochs / MAX_TICKS))
    ticks = list(range(1, epochs + 1, step))
    if ticks[-1] != epochs:
        ticks.append(epochs)
    return ticks


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_bar(fraction: float, width: int = 10) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * filled + "░" * (width - filled) + f" {100 * fraction:3.0f}%"


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
    """One run's curves: per-epoch metrics and (for a live run) smoothed batch losses.
    ``label`` is short (it goes in the chart's legend); ``name`` says which run it is."""

    label: str
    name: str = ""
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


@dataclass
class Flight:
    """A run in flight (or just finished): its curves, where it is, how fast it goes."""

    run: RunSpec
    series: Series
    device: str
    dataset: str
    state: str = "running"  # then the final status
    epoch: int = 0
    batch: int = 0
    batches: int = 0
    text: str = ""  # the status line when this run is charted
    rate_from: tuple[float, int, float] | None = None  # (time, samples, fraction) at 1st report
    per_second: float | None = None
    eta: float | None = None  # seconds left

    @property
    def epochs(self) -> int:
        return int(self.run.config["epochs"])

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        if not self.batches:
            return self.epoch / self.epochs
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)

    def measure(self, samples: int) -> None:
        """Samples/s and ETA, measured between reports (start-up is not training)."""
        now, fraction = time.perf_counter(), self.fraction
        if self.rate_from is None:
            self.rate_from = (now, samples, fraction)
            return
        t0, s0, f0 = self.rate_from
        if now > t0 and fraction > f0:
            self.per_second = (samples - s0) / (now - t0)
            self.eta = (now - t0) / (fraction - f0) * (1.0 - fraction)


class LiveCharts(Vertical):
    """Status line of the charted run, the runs in flight, loss and accuracy charts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flights: dict[str, Flight] = {}  # run_id -> flight, in start order
        self.charted: str | None = None  # run_id of the run drawn
        self.chosen = False  # the user picked the charted run: a new start does not take over
        self.overlays: list[Series] = []
        self.dirty: set[str] = set(PARTS)  # of PARTS: what the next redraw redraws
        self.redraws = 0
        self._idle = "nothing running: queue a run on the Experiments tab (a / A)"

    def compose(self) -> ComposeResult:
        yield Static(self._idle, id="live-status")
        yield DataTable(cursor_type="row", id="live-runs")
        with Horizontal(id="charts"):
            yield CachedPlot(id="loss-chart")
            yield CachedPlot(id="acc-chart")
        yield Static("", id="overlay-legend")

    def on_mount(self) -> None:
        table = self.query_one("#live-runs", DataTable)
        for title, key in (("", "mark"), ("run in flight", "run"), ("epoch", "epoch"),
                           ("progress", "progress"), ("loss~", "loss"), ("val acc", "val"),
                           ("ETA", "eta")):
            table.add_column(title, key=key)
        table.border_title = "runs in flight (enter: chart it; loss~: smoothed batch loss)"

    # -- what the charts show -------------------------------------------------------------

    @property
    def live(self) -> Series | None:
        flight = self.flights.get(self.charted or "")
        return flight.series if flight else None

    @property
    def live_run(self) -> RunSpec | None:
        flight = self.flights.get(self.charted or "")
        return flight.run if flight else None

    @property
    def status_text(self) -> str:
        flight = self.flights.get(self.charted or "")
        return flight.text if flight else self._idle

    def chart(self, run_id: str) -> None:
        """Draw this run in flight (the user's choice: kept until they choose again)."""
        if run_id in self.flights:
            self.charted, self.chosen = run_id, True
            self.dirty.update(PARTS)

    # -- fed by the app's event handler (UI thread) -------------------------------------

    def run_started(self, run: RunSpec, device: str, dataset: str) -> None:
        self.flights = {k: f for k, f in self.flights.items() if f.state == "running"}
        name = run.name
        self.flights[run.run_id] = Flight(run, Series("live", name), device, dataset,
                                          text=f"▶ {name} on {device} | {dataset} | starting")
        if not self.chosen or self.charted not in self.flights:
            self.charted, self.chosen = run.run_id, False
        self.dirty.update(PARTS)

    def batch(self, run: RunSpec, epoch: int, batch: int, batches: int, loss: float) -> None:
        flight = self.flights.get(run.run_id)
        if flight is None:
            return
        flight.series.add_batch(epoch - 1 + batch / batches, loss)
        flight.epoch, flight.batch, flight.batches = epoch, batch, batches
        flight.measure(((epoch - 1) * batches + batch) * int(run.config["batch_size"]))
        rate = f" | {flight.per_second:,.0f} samples/s" if flight.per_second else ""
        flight.text = (f"▶ {flight.series.name} | epoch {epoch}/{flight.epochs} batch "
                       f"{batch}/{batches} | batch loss {loss:.4f}{rate}")
        self.dirty.add("status")
        if run.run_id == self.charted:
            self.dirty.add("loss")

    def epoch(self, run: RunSpec, m: EpochMetrics) -> None:
        flight = self.flights.get(run.run_id)
        if flight is None:
            return
        flight.series.add_epoch(m)
        lr = f" | lr {m.lr:.3g}" if m.lr is not None and run.config.get("callbacks") else ""
        flight.epoch = m.epoch
        flight.batch = flight.batches
        flight.text = (f"▶ {flight.series.name} | epoch {m.epoch}/{flight.epochs} | train "
                       f"loss {m.train_loss:.4f} | val loss {m.val_loss:.4f} | val acc "
                       f"{100 * m.val_acc:.2f}% (best {100 * m.best_val_acc:.2f}% "
                       f"@{m.best_epoch}){lr}")
        self.dirty.add("status")
        if run.run_id == self.charted:
            self.dirty.update(PARTS)

    def finished(self, run: RunSpec, status: str, test_acc: float | None) -> None:
        flight = self.flights.get(run.run_id)
        if flight is None:
            return
        flight.state, flight.eta = status, None
        acc = f" | test acc {100 * test_acc:.2f}%" if test_acc is not None else ""
        flight.text = f"{status}: {flight.series.name}{acc}"
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
            self.query_one("#live-status", Static).update(self.status_text, layout=False)
            self._draw_flights()
        if "loss" in parts:
            self._draw_loss(self.query_one("#loss-chart", CachedPlot))
        if "acc" in parts:
            self._draw_acc(self.query_one("#acc-chart", CachedPlot))
            self._draw_legend()
        return True

    def _draw_flights(self) -> None:
        table = self.query_one("#live-runs", DataTable)
        keep = None  # the row the user's cursor is on stays under it across redraws
        if table.row_count:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        for run_id, f in self.flights.items():
            last_loss = f.series.batch_loss[-1] if f.series.batch_loss else None
            val = f.series.val_acc[-1] if f.series.val_acc else None
            name = Text(f.series.name, style="bold" if run_id == self.charted else "")
            table.add_row(mark(f.state), name, f"{f.epoch}/{f.epochs}",
                          progress_bar(f.fraction),
                          "-" if last_loss is None else f"{last_loss:.4f}",
                          "-" if val is None else f"{val:.2f}%",
                          duration(f.eta) if f.state == "running" else f.state, key=run_id)
        target = keep if keep in self.flights else self.charted
        if target in self.flights:
            table.move_cursor(row=list(self.flights).index(target))
        table.display = bool(self.flights)

    def _axis(self, plt: Any) -> None:
        """Whole-number epoch ticks from 1 to the longest run drawn."""
        ends = [int(self.live_run.config["epochs"])] if self.live_run else []
        ends += [s.epochs[-1] for s in self.overlays if s.epochs]
        if not ends:
            return
        longest = max(ends)
        plt.xticks(epoch_ticks(longest))
        plt.xlim(0 if longest == 1 or (self.live and self.live.batch_x) else 1, longest)

    def _draw_loss(self, widget: CachedPlot) -> None:
        plt = widget.plt
        plt.clear_data()
        plt.title("loss (x: epoch)")
        live = self.live
        if live is not None:
            if live.batch_x:
                plt.plot(live.batch_x, live.batch_loss, label="batch (smoothed)",
                         color=GREY, marker="braille")
            if live.epochs:
                plt.plot(live.epochs, live.train_loss, label="train", color=YELLOW,
                         marker="braille")
                plt.plot(live.epochs, live.val_loss, label="val", color=RED,
                         marker="braille")
        for series, color in zip(self.overlays, OVERLAY_COLORS):
            if series.epochs:
                plt.plot(series.epochs, series.val_loss, label=f"val {series.label}",
                         color=color, marker="braille")
        self._axis(plt)
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
            plt.plot(self.live.epochs, self.live.val_acc, label=self.live.label,
                     color=YELLOW, marker="braille")
            if self.live.lr_changes:  # a schedule: its learning rate on the right axis
                plt.plot(self.live.epochs, self.live.lr, label="learning rate (right axis)",
                         color=GREY, marker="braille", yside="right")
        for series, color in zip(self.overlays, OVERLAY_COLORS):
            if series.epochs:
                plt.plot(series.epochs, series.val_acc, label=series.label, color=color,
                         marker="braille")
        self._axis(plt)
        widget.version += 1
        widget.refresh()

    def _draw_legend(self) -> None:
        """The charts' legends hold short labels; the full names go here, in their colours."""
        legend = Text()
        if self.live is not None:
            legend.append(f"live = {self.live.name}", style="rgb(240,220,60)")
        for series, (r, g, b) in zip(self.overlays, OVERLAY_COLORS):
            legend.append("   " if legend else "")
            legend.append(f"{series.label} = {series.name}", style=f"rgb({r},{g},{b})")
        self.query_one("#overlay-legend", Static).update(legend)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.chart(event.row_key.value)

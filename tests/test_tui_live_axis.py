"""The Live view's accuracy axis stays inside the data's range and never passes 100 %."""

from __future__ import annotations

import re

from test_tui_flows import SIZE, run_async
from tui_data import write_study
from workbench.tui.launch import make_app
from workbench.tui.widgets.charts import CachedPlot, LiveCharts
from workbench.types import EpochMetrics


def y_ticks(plot: CachedPlot) -> list[float]:
    """The numbers written on the chart's y axis, as a person reads them."""
    text = plot.render()
    lines = (text.plain if hasattr(text, "plain") else str(text)).splitlines()
    return [float(m.group(1)) for line in lines
            if (m := re.match(r"\s*(-?\d+(?:\.\d+)?)\s*[┤┼│]", line))]


@run_async
async def test_accuracy_axis_is_clamped_to_the_data_and_to_100(tmp_path):
    toml = write_study(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        charts = app.query_one(LiveCharts)
        acc = app.query_one("#acc-chart", CachedPlot)
        run = app.session.runs[0]
        charts.run_started(run, "cpu", "mnist-sample")
        # One epoch at 100 %: plotext alone would label the axis up to 150.
        charts.epoch(run, EpochMetrics(1, 0.1, 0.1, 1.0, 1.0, 1, 1.0))
        charts.redraw()
        await pilot.pause(0.1)
        ticks = y_ticks(acc)
        assert ticks and max(ticks) <= 100 and min(ticks) >= 99
        # A flat line at 97.5 %: the axis hugs it instead of spanning 48-146.
        charts.run_started(run, "cpu", "mnist-sample")
        for epoch in (1, 2, 3):
            charts.epoch(run, EpochMetrics(epoch, 0.1, 0.1, 0.975, 0.975, 1, 1.0))
        charts.redraw()
        await pilot.pause(0.1)
        ticks = y_ticks(acc)
        assert ticks and 97 <= min(ticks) and max(ticks) <= 98

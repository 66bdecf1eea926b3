"""The app's queue on a pool of two training processes: two lone runs train at once, each in
its own child, and `c` on one cancels only that one (real children, mnist-sample)."""

from __future__ import annotations

import textwrap

from test_tui_flows import SIZE, run_async, wait_until
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.charts import LiveCharts

TWO_LONG = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 400
batch_size = 64

[[experiment]]
name = "two"
[experiment.grid]
seed = [1, 2]
"""


@run_async
async def test_the_queue_trains_two_runs_at_once_on_two_workers_and_cancels_one(tmp_path):
    toml = tmp_path / "two.toml"
    toml.write_text(textwrap.dedent(TWO_LONG))
    store_path = tmp_path / "s.sqlite"
    app = make_app(toml, store_path, workers=2, stack=False)  # lone runs: one per worker
    executor = app.runner._executor
    assert len(executor.workers) == 2
    async with app.run_test(size=SIZE) as pilot:
        a, b = app.session.runs
        await pilot.press("A", "2")
        charts = app.query_one(LiveCharts)
        table = charts.query_one("#live-runs")
        await wait_until(pilot, lambda: len(app.runner.current()) == 2 and all(
            charts.flights.get(r.run_id) and charts.flights[r.run_id].series.batch_x
            for r in (a, b)) and table.row_count == 2, timeout=180,
            what="both runs training, listed")
        pids = {executor.pid_training(a.run_id), executor.pid_training(b.run_id)}
        assert None not in pids and len(pids) == 2  # each in its own process
        table.move_cursor(row=table.get_row_index(a.run_id))
        await pilot.press("c")
        await wait_until(pilot, lambda: app.live_status.get(a.run_id) == "cancelled",
                         timeout=30, what="a cancelled")
        assert f"cancelling two: {a.label}; the others in flight train on (1 run)" in \
            [n.message for n in app._notifications]
        seen = len(charts.flights[b.run_id].series.batch_x)
        await wait_until(pilot, lambda: len(charts.flights[b.run_id].series.batch_x) > seen + 2,
                         timeout=30, what="b training on")
        assert app.live_status[b.run_id] == "running"
        await pilot.press("c")  # the last one in flight
        await wait_until(pilot, lambda: app.live_status.get(b.run_id) == "cancelled",
                         timeout=30, what="b cancelled")
    with Store(store_path, readonly=True) as store:
        rows = {r["label"]: r for r in store.runs()}
        assert [rows[r.label]["status"] for r in (a, b)] == ["cancelled"] * 2
        assert all(rows[r.label]["error"].startswith("cancelled in epoch") for r in (a, b))
        assert store.integrity_check() == "ok"

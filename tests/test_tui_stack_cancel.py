"""`c` on one run of a stack cancels only that run: the others train on (real stacked
training in the trainer child process, on mnist-sample)."""

from __future__ import annotations

import textwrap

from test_tui_flows import SIZE, run_async, wait_until
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.charts import LiveCharts

STACK_TOML = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 400
batch_size = 64
seed = 5

[[experiment]]
name = "pair"
[experiment.grid]
lr = [1e-3, 3e-3]
"""


@run_async
async def test_c_on_one_run_of_a_stack_cancels_only_that_run(tmp_path):
    toml = tmp_path / "stack.toml"
    toml.write_text(textwrap.dedent(STACK_TOML))
    store_path = tmp_path / "s.sqlite"
    app = make_app(toml, store_path)
    async with app.run_test(size=SIZE) as pilot:
        a, b = app.session.runs
        await pilot.press("A", "2")
        charts = app.query_one(LiveCharts)
        table = charts.query_one("#live-runs")
        await wait_until(pilot, lambda: len(app.runner.current()) == 2 and all(
            charts.flights.get(r.run_id) and charts.flights[r.run_id].series.batch_x
            for r in (a, b)) and table.row_count == 2, timeout=180,
            what="both runs of the stack training, listed")
        table.move_cursor(row=table.get_row_index(a.run_id))
        await pilot.press("c")
        await wait_until(pilot, lambda: app.live_status.get(a.run_id) == "cancelled",
                         timeout=30, what="a cancelled")
        assert f"cancelling pair: {a.label}; the others in flight train on (1 run)" in \
            [n.message for n in app._notifications]
        assert app.live_status[b.run_id] == "running"
        seen = len(charts.flights[b.run_id].series.batch_x)
        await wait_until(pilot, lambda: len(charts.flights[b.run_id].series.batch_x) > seen + 2,
                         timeout=30, what="b training on")
        assert app.live_status[b.run_id] == "running"
        await pilot.press("c")  # the last one in flight
        await wait_until(pilot, lambda: app.live_status.get(b.run_id) == "cancelled",
                         timeout=30, what="b cancelled")
    store = Store(store_path, readonly=True)
    rows = {r["label"]: r for r in store.runs()}
    first, second = rows[a.label], rows[b.label]
    assert first["status"] == second["status"] == "cancelled"
    assert first["error"].startswith("cancelled in epoch")
    # b went on after a stopped: more epochs done, or further into the same epoch
    assert (second["epochs_done"], second["error"]) != (first["epochs_done"], first["error"])
    assert store.integrity_check() == "ok"
    store.close()

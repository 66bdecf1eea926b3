"""The app's queue on a pool of two training processes: two lone runs train at once, each in
its own child, and `c` on one cancels only that one (real children, mnist-sample)."""

from __future__ import annotations

import textwrap

from test_tui_flows import SIZE, cancel_one_then_the_other, run_async
from workbench.store import Store
from workbench.tui.launch import make_app

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
    pids = set()

    def each_in_its_own_process():
        pids.update(executor.pid_training(r.run_id) for r in app.session.runs)
        assert None not in pids and len(pids) == 2

    async with app.run_test(size=SIZE) as pilot:
        a, b = await cancel_one_then_the_other(pilot, app, "two", each_in_its_own_process)
    assert len(pids) == 2
    with Store(store_path, readonly=True) as store:
        rows = {r["label"]: r for r in store.runs()}
        assert [rows[r.label]["status"] for r in (a, b)] == ["cancelled"] * 2
        assert all(rows[r.label]["error"].startswith("cancelled in epoch") for r in (a, b))
        assert store.integrity_check() == "ok"

"""`c` on one run of a stack cancels only that run: the others train on (real stacked
training in the trainer child process, on mnist-sample)."""

from __future__ import annotations

import textwrap

from test_tui_flows import SIZE, cancel_one_then_the_other, run_async
from workbench.store import Store
from workbench.tui.launch import make_app

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
        a, b = await cancel_one_then_the_other(pilot, app, "pair")
    store = Store(store_path, readonly=True)
    rows = {r["label"]: r for r in store.runs()}
    first, second = rows[a.label], rows[b.label]
    assert first["status"] == second["status"] == "cancelled"
    assert first["error"].startswith("cancelled in epoch")
    # b went on after a stopped: more epochs done, or further into the same epoch
    assert (second["epochs_done"], second["error"]) != (first["epochs_done"], first["error"])
    assert store.integrity_check() == "ok"
    store.close()

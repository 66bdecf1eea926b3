"""The terminal app driven by Pilot through real flows on mnist-sample: real training on
the runner thread, a real SQLite store, what the widgets show compared with the store."""

from __future__ import annotations

import asyncio
import functools
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("textual")

from workbench import data  # noqa: E402
from workbench.report import most_confused  # noqa: E402
from workbench.store import Store  # noqa: E402
from workbench.tui.launch import make_app  # noqa: E402
from workbench.tui.screens import ConfirmQuit  # noqa: E402
from workbench.tui.widgets.charts import LiveCharts  # noqa: E402
from workbench.tui.widgets.confusion import ConfusionTable  # noqa: E402
from workbench.tui.widgets.digits import MAX_SHOWN, Gallery  # noqa: E402
from workbench.tui.widgets.experiments import ExperimentTree  # noqa: E402
from workbench.tui.widgets.plugins import PluginTree  # noqa: E402
from workbench.tui.widgets.queue import QueueTable  # noqa: E402
from workbench.tui.widgets.results import ResultsTable  # noqa: E402

SIZE = (160, 50)


def run_async(fn):
    """Run an async test on its own event loop (no pytest async plugin needed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return wrapper
LONG_TOML = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 400
batch_size = 64
seed = 5

[[experiment]]
name = "long"
"""


async def wait_until(pilot, condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.05)


async def queue_then_cancel(pilot, app) -> None:
    """Queue the study's first run, press `c` once it trains, wait until it is cancelled."""
    await pilot.press("A")
    run = app.session.runs[0]
    charts = app.query_one(LiveCharts)
    await wait_until(pilot, lambda: charts.live is not None and charts.live.batch_x,
                     what="first batch progress")
    await pilot.press("c")
    await wait_until(pilot, lambda: app.live_status.get(run.run_id) == "cancelled",
                     timeout=30, what="cancelled")


async def cancel_one_then_the_other(pilot, app, experiment: str, while_both=None):
    """Queue the study's two runs, wait until both train and are listed on the Live tab,
    `c` on the first (only it is cancelled: the notice says so, the other trains on), then
    `c` on the last one in flight. ``while_both()`` runs while both train. Returns them."""
    a, b = app.session.runs
    await pilot.press("A", "2")
    charts = app.query_one(LiveCharts)
    table = charts.query_one("#live-runs")
    await wait_until(pilot, lambda: len(app.runner.current()) == 2 and all(
        charts.flights.get(r.run_id) and charts.flights[r.run_id].series.batch_x
        for r in (a, b)) and table.row_count == 2, timeout=180,
        what="both runs training, listed")
    if while_both is not None:
        while_both()
    table.move_cursor(row=table.get_row_index(a.run_id))
    await pilot.press("c")
    await wait_until(pilot, lambda: app.live_status.get(a.run_id) == "cancelled",
                     timeout=30, what="a cancelled")
    assert f"cancelling {experiment}: {a.label}; the others in flight train on (1 run)" in \
        [n.message for n in app._notifications]
    assert app.live_status[b.run_id] == "running"
    seen = len(charts.flights[b.run_id].series.batch_x)
    await wait_until(pilot, lambda: len(charts.flights[b.run_id].series.batch_x) > seen + 2,
                     timeout=30, what="b training on")
    assert app.live_status[b.run_id] == "running"
    await pilot.press("c")  # the last one in flight
    await wait_until(pilot, lambda: app.live_status.get(b.run_id) == "cancelled",
                     timeout=30, what="b cancelled")
    return a, b


def tree_node(tree: ExperimentTree, data):
    def walk(node):
        if node.data == data:
            return node
        for child in node.children:
            found = walk(child)
            if found is not None:
                return found
        return None
    return walk(tree.root)


@run_async
async def test_queue_a_run_then_table_and_confusion_equal_the_store(tiny_toml, tmp_path,
                                                                    registry):
    store_path = tmp_path / "s.sqlite"
    app = make_app(tiny_toml, store_path)
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(ExperimentTree)
        await pilot.press("down")  # from the study to its first experiment, "one"
        assert tree.cursor_node.data == ("experiment", "one")
        await pilot.press("a")
        run = app.session.runs[0]
        await wait_until(pilot, lambda: app.live_status.get(run.run_id) == "done",
                         timeout=120, what="run 'one' done")
        await pilot.pause(1.1)  # one redraw tick (1 Hz)
        store = Store(store_path, readonly=True)
        (row,) = store.runs()
        full = store.run(row["id"])
        assert row["status"] == "done" and row["experiment"] == "one"

        # the tree shows the mark, the live chart has the stored epochs
        label = tree_node(tree, ("run", run)).label.plain
        assert label.startswith("✔") and "done" in label
        charts = app.query_one(LiveCharts)
        stored_epochs = store.epochs(row["id"])
        assert charts.live.epochs == [e["epoch"] for e in stored_epochs] == [1, 2]
        assert charts.live.val_acc == pytest.approx([100 * e["val_acc"] for e in stored_epochs])
        # one smoothed point per BatchProgress event (a fast run may send none: they are
        # rate-limited to a few a second)
        assert len(charts.live.batch_loss) == app.events_seen.get("BatchProgress", 0)
        assert charts.redraws >= 1
        assert "test acc" in charts.status_text

        # the results row, as a user reads it
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        cells = table.cell_texts(row["id"])
        assert cells["test_acc"] == f"{100 * row['test_acc']:.2f}%"
        assert cells["best_val_acc"] == f"{100 * row['best_val_acc']:.2f}%"
        assert cells["status"].endswith("done")
        assert "cfg:hidden" not in cells and "hidden=16" in table.border_subtitle  # one run
        assert cells["train_seconds"] == f"{row['train_seconds']:.1f}s"

        # Enter on the row opens its confusion matrix: every cell equals the store's
        await pilot.press("enter")
        assert app.query_one("#tabs").active == "confusion"
        shown = app.query_one(ConfusionTable).shown_counts()
        assert shown == full["confusion"]
        assert np.trace(shown) / np.sum(shown) == pytest.approx(row["test_acc"])

        # the most confused cell's gallery holds exactly those misclassified test images
        true, pred, count = most_confused(full["confusion"])[0]
        app.query_one(ConfusionTable).move_cursor(row=true, column=pred)
        await pilot.press("enter")
        gallery = app.query_one(Gallery)
        await wait_until(pilot, lambda: len(gallery.indices) > 0, what="gallery")
        raw = data.resolve("mnist-sample", registry)
        predictions = np.frombuffer(full["predictions"], dtype=np.uint8)
        expected = np.flatnonzero((raw.test_labels == true) & (predictions == pred))
        assert len(expected) == count
        assert gallery.indices == expected[:MAX_SHOWN].tolist()
        store.close()


@pytest.fixture
def long_app(tmp_path):
    """An app on one 400-epoch run (it is cancelled long before the end), and its store."""
    toml = tmp_path / "long.toml"
    toml.write_text(textwrap.dedent(LONG_TOML))
    return make_app(toml, tmp_path / "s.sqlite"), tmp_path / "s.sqlite"


@run_async
async def test_cancel_the_running_run_is_stored_cancelled(long_app):
    app, store_path = long_app
    async with app.run_test(size=SIZE) as pilot:
        await queue_then_cancel(pilot, app)
        store = Store(store_path, readonly=True)
        (row,) = store.runs()
        assert row["status"] == "cancelled"
        assert row["epochs_done"] < 400 and "cancelled in epoch" in row["error"]
        assert len(store.epochs(row["id"])) == row["epochs_done"]
        assert store.integrity_check() == "ok"
        assert not app.runner.current()
        # the notice names the run once ("long", not "long: long") and ends with the reason
        (notice,) = [n.message for n in app._notifications if n.message.startswith("cancelled")]
        assert notice == f"cancelled: long: {row['error']}"
        store.close()


@run_async
async def test_quit_while_training_asks_then_cancels_cleanly(long_app):
    app, store_path = long_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")
        await wait_until(pilot, lambda: app.runner.current() and
                         app.live_status.get(app.session.runs[0].run_id) == "running",
                         what="running")
        queue = app.query_one(QueueTable)
        await wait_until(pilot, lambda: queue.row_count == 1, what="queue row")
        queue.focus()
        await pilot.press("left_square_bracket")  # the running run does not move: it says so
        assert [n.message for n in app._notifications][-1] == \
            "the running run cannot be moved: only pending runs change place"
        await pilot.press("q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("enter")  # the default keeps the run going
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmQuit) and app.runner.current()
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press("n")  # so does n
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmQuit) and app.runner.current()
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, timeout=30, what="exit")
    assert app.runner.join(5)
    store = Store(store_path, readonly=True)
    (row,) = store.runs()
    assert row["status"] == "cancelled"
    assert store.run(row["id"])["finished_at"] is not None
    assert store.integrity_check() == "ok"
    store.close()


@run_async
async def test_queue_reorder_and_remove_pending_runs(tiny_toml, tmp_path):
    app = make_app(tiny_toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")  # five runs, nothing trains (runner not started)
        ids = [r.run_id for r in app.session.runs]
        queue = app.query_one(QueueTable)
        await wait_until(pilot, lambda: queue.row_count == 5, what="queue rows")
        queue.focus()
        queue.move_cursor(row=2)
        await pilot.press("left_square_bracket")  # third run moves up
        assert [r.run_id for r in app.runner.pending()] == [ids[0], ids[2], ids[1], *ids[3:]]
        assert queue.selected_run_id() == ids[2]
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert [r.run_id for r in app.runner.pending()] == [ids[0], ids[1], ids[3], ids[2],
                                                             ids[4]]
        await pilot.press("x")  # remove it
        assert [r.run_id for r in app.runner.pending()] == [ids[0], ids[1], ids[3], ids[4]]
        await pilot.pause(0.1)
        assert queue.row_count == 4
        tree = app.query_one(ExperimentTree)
        removed = app.session.runs[2]
        assert tree_node(tree, ("run", removed)).label.plain.startswith("·")
        assert tree_node(tree, ("run", app.session.runs[3])).label.plain.startswith("◷")


@run_async
async def test_drop_in_plugin_and_broken_plugin_appear_in_the_plugin_list(tiny_toml,
                                                                          tmp_path):
    folder = tmp_path / "myplugins"
    folder.mkdir()
    (folder / "wide_mlp.py").write_text(textwrap.dedent('''
        from workbench import ModelSpec, hookimpl
        from workbench.models import build_mlp

        @hookimpl
        def register_models(register):
            register(ModelSpec(name="wide_mlp", description="two wide layers",
                               build=lambda c, i, n: build_mlp(i, [512, 512], n, "relu", 0.0)))
    '''))
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    (folder / "logger.py").write_text(textwrap.dedent('''
        from workbench import hookimpl

        @hookimpl
        def on_run_finished(run, result):
            pass
    '''))
    app = make_app(tiny_toml, tmp_path / "s.sqlite", plugins=[folder], start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.query_one(PluginTree)
        names = tree.names()
        assert ("model", "wide_mlp") in names and ("model", "baseline_mlp") in names
        assert ("failure", str(folder / "broken.py")) in names
        assert ("hooks", "logger.py") in names  # a plugin with event hooks only
        assert ("callback", "cosine") in names
        text = "\n".join(str(n.label) for n in _all_nodes(tree.root))
        assert f"drop-in {folder / 'wide_mlp.py'}" in text
        assert "ModuleNotFoundError" in text and "two wide layers" in text


def _all_nodes(node):
    yield node
    for child in node.children:
        yield from _all_nodes(child)

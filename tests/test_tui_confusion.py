"""The Confusion view: the best run by default, the cursor on the most confused cell (never
on the row labels), and whole digits even at 100x30. On a store written from fixed numbers
(tui_data.py): real mnist-sample labels with fixed wrong answers."""

from __future__ import annotations

import numpy as np

from test_tui_flows import run_async, wait_until
from tui_data import fixed_store, write_study
from workbench import data
from workbench.report import most_confused
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.confusion import ConfusionTable, ConfusionView
from workbench.tui.widgets.digits import Gallery


@run_async
async def test_best_run_by_default_cursor_on_a_cell_and_whole_digits_at_100x30(tmp_path,
                                                                               registry):
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    store = Store(tmp_path / "s.sqlite", readonly=True)
    best = max(store.runs(), key=lambda r: r["test_acc"])
    full = store.run(best["id"])
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("5")
        view = app.query_one(ConfusionView)
        assert view.run["id"] == best["id"]
        table = app.query_one(ConfusionTable)
        assert table.shown_counts() == full["confusion"]
        true, pred, count = most_confused(full["confusion"])[0]
        assert tuple(table.cursor_coordinate) == (true, pred)
        await pilot.press("left", "left", "left", "left", "left", "left", "left", "left",
                          "left", "left")  # the cursor stops at column 0, a cell
        assert tuple(table.cursor_coordinate) == (true, 0)
        await pilot.press(*["right"] * pred, "enter")
        gallery = app.query_one(Gallery)
        await wait_until(pilot, lambda: len(gallery.indices) > 0, what="gallery")
        raw = data.resolve("mnist-sample", registry)
        predictions = np.frombuffer(full["predictions"], dtype=np.uint8)
        want = np.flatnonzero((raw.test_labels == true) & (predictions == pred))
        assert gallery.indices == want[:len(gallery.indices)].tolist() and len(want) == count
        await pilot.pause(0.2)
        # the first band of digits and its captions fit in the panel shown: whole digits
        lines = str(gallery.query_one("#gallery-digits").render()).split("\n")
        band = lines.index(next(line for line in lines if line.startswith("#")))
        panel = app.query_one("#cm-gallery-scroll").size.height
        assert 1 + band + 1 <= panel, (band, panel)  # title, digit lines, captions
        assert band == 7  # half size: 28 pixel rows in 7 lines
    store.close()


@run_async
async def test_confusion_diff_of_two_runs_picked_on_the_results_tab(tmp_path, registry):
    from workbench.tui.widgets.diff import DiffScreen, DiffTable
    from workbench.tui.widgets.results import ResultsTable

    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    store = Store(tmp_path / "s.sqlite", readonly=True)
    rows = store.runs()
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        worst, best = table.visible_ids[-1], table.visible_ids[0]
        table.move_cursor(row=len(table.visible_ids) - 1)
        await pilot.press("d")  # A: the worst run
        assert f"diff: A = run {worst}" in table.border_title
        table.move_cursor(row=0)
        await pilot.press("d")  # B: the best run
        assert isinstance(app.screen, DiffScreen)
        screen = app.screen
        await wait_until(pilot, lambda: screen.diff is not None, what="diff loaded")
        a, b = store.run(worst), store.run(best)
        want = (np.array(b["confusion"]) - np.array(a["confusion"])).tolist()
        assert screen.query_one(DiffTable).shown() == want
        labels = data.resolve("mnist-sample", registry).test_labels
        pa, pb = (np.frombuffer(r["predictions"], dtype=np.uint8) for r in (a, b))
        b_only = np.flatnonzero((pb == labels) & (pa != labels)).tolist()
        a_only = np.flatnonzero((pa == labels) & (pb != labels)).tolist()
        assert screen.diff.b_only == b_only and screen.diff.a_only == a_only
        assert len(b_only) > 0
        assert screen.galleries["b_only"] == b_only[:24]
        assert screen.galleries["a_only"] == a_only[:24]
        counts = str(screen.query_one("#diff-counts").render())
        assert f"B right, A wrong: {len(b_only)}" in counts
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)
    assert {r["id"] for r in rows} >= {worst, best}
    store.close()

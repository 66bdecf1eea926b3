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

"""The Results view read as a user reads it: the metrics next to the run's identity, which
stays in view when scrolling right; only the config keys that vary; best first; a letter per
column to sort by; numeric filters; Escape out of the filter. On a store written from fixed
numbers (tui_data.py)."""

from __future__ import annotations

from test_tui_flows import run_async
from tui_data import fixed_store, write_study
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.results import ResultsTable


def line_text(table: ResultsTable, y: int) -> str:
    return table.render_line(y).text


@run_async
async def test_metrics_sit_next_to_the_pinned_identity_at_100_columns(tmp_path):
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    rows = Store(tmp_path / "s.sqlite", readonly=True).runs()
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        table = app.query_one(ResultsTable)
        ranked = sorted(rows, key=lambda r: -r["test_acc"])
        assert table.visible_ids == [r["id"] for r in ranked]  # best first, by default
        assert table.columns_order[:5] == ["mark", "id", "experiment", "test_acc",
                                           "best_val_acc"]
        # both accuracies are drawn inside 100 columns, on the best run's line
        first = line_text(table, 1)  # the header, then the first row
        assert f"{100 * ranked[0]['test_acc']:.2f}%" in first
        assert f"{100 * ranked[0]['best_val_acc']:.2f}%" in first
        # lr and hidden vary; the keys every run shares are folded under the table
        assert [k for k in table.columns_order if k.startswith("cfg:")] == ["cfg:lr",
                                                                          "cfg:hidden"]
        assert "epochs=3" in table.border_subtitle and "batch_size=256" in table.border_subtitle
        # everything fits at 100 columns; at 60, scrolled all the way right, the id and the
        # experiment are still on the line
        assert table.max_scroll_x == 0
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert table.scroll_x > 0
        first = line_text(table, 1)
        assert f" {ranked[0]['id']} " in first and ranked[0]["experiment"] in first


@run_async
async def test_sort_letters_numeric_filters_and_escape(tmp_path):
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    rows = Store(tmp_path / "s.sqlite", readonly=True).runs()
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        letter = {key: l for l, key in table.sort_letters.items()}
        assert (letter["test_acc"], letter["best_val_acc"], letter["cfg:lr"],
                letter["cfg:hidden"]) == ("t", "v", "l", "n")  # h: the attempts key
        assert "hidden n" in line_text(table, 0)  # the letter is shown in the header
        await pilot.press("n")  # hidden, smallest first
        assert [app.store.run(i)["config"]["hidden"] for i in table.visible_ids] == \
            sorted(r["config"]["hidden"] for r in rows)
        await pilot.press("v")  # best validation accuracy, best first
        assert table.visible_ids[0] == max(rows, key=lambda r: r["best_val_acc"])["id"]
        await pilot.press("v")  # again: reversed
        assert table.visible_ids[0] == min(rows, key=lambda r: r["best_val_acc"])["id"]

        threshold = sorted(r["test_acc"] for r in rows)[5]
        await pilot.press("slash", *f"test>{threshold}")
        above = {r["id"] for r in rows if r["test_acc"] > threshold}
        assert set(table.visible_ids) == above and 0 < len(above) < len(rows)
        await pilot.press("escape")  # back to the table, the filter stays
        assert app.focused is table and set(table.visible_ids) == above
        await pilot.press("slash", *["backspace"] * 20, *f"test>{100 * threshold:.4f} hidden>=16")
        want = {r["id"] for r in rows if r["test_acc"] > threshold and r["config"]["hidden"] >= 16}
        assert set(table.visible_ids) == want
        await pilot.press(*["backspace"] * 40, *"test>abc")  # ignored, and said why
        assert len(table.visible_ids) == len(rows)
        assert "test>abc: 'abc' is not a number" in table.border_subtitle
        await pilot.press(*["backspace"] * 8, *"tset>0.5")
        assert "tset: no such column or config key" in table.border_subtitle
        await pilot.press("escape", "escape")  # out of the filter, then clear it
        assert len(table.visible_ids) == len(rows) and table.filter_text == ""


@run_async
async def test_group_by_config_shows_mean_and_interval_and_plus_queues_more_seeds(tmp_path):
    from test_tui_views import write_repeated
    write_repeated(tmp_path / "s.sqlite")
    app = make_app(None, tmp_path / "s.sqlite", start_runner=False, browse=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        assert len(table.visible_ids) == 12 and "cfg:seed" in table.columns_order
        await pilot.press("g")
        assert len(table.visible_ids) == 4 and "cfg:seed" not in table.columns_order
        assert "4 configs (12 finished runs" in table.border_title
        best = table.cell_texts(table.visible_ids[0])  # best first: lr=0.001 hidden=16
        # mean 91.00 %, t(0.975, 2) * 0.01 / sqrt(3) = 2.48 pp
        assert (best["test_acc"], best["status"], best["cfg:lr"], best["cfg:hidden"]) == \
            ("91.00 ±2.48%", "n=3", "0.001", "16")
        await pilot.press("down")  # lr=0.001 hidden=32: 90.50 %
        assert table.cell_texts(table.selected_id())["test_acc"].startswith("90.50 ±")
        await pilot.press("plus", "y")  # a browsed store: training into it asks once
        pending = app.runner.pending()
        assert [r.config["seed"] for r in pending] == [3, 4, 5]
        assert all({**r.config, "seed": 0} == {"epochs": 1, "seed": 0, "lr": 1e-3,
                                                "hidden": 32} for r in pending)
        assert [r.label for r in pending][0] == "lr=0.001 hidden=32 seed=3"
        await pilot.press("plus")  # again: the next seeds, after the queued ones
        assert [r.config["seed"] for r in app.runner.pending()] == [3, 4, 5, 6, 7, 8]
        await pilot.press("g")  # back to one row per run
        assert len(table.visible_ids) == 12

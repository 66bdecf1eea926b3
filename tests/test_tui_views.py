"""Results filter/sort, the grid pivot and the digit drawing, checked against the store and
the pixels (no training: a store written from fixed numbers, see tui_data.py)."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from test_tui_flows import SIZE, run_async
from tui_data import fixed_store, write_study
from workbench.data import loaded_name
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.digits import digit_text
from workbench.tui.widgets.grid import GridTable, GridView
from workbench.tui.widgets.results import ResultsTable


@run_async
async def test_results_filter_sort_and_grid_agree_with_the_store(tmp_path):
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    rows = Store(tmp_path / "s.sqlite", readonly=True).runs()
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "slash", *"grid hidden=8", "enter")
        table = app.query_one(ResultsTable)
        want = [r["id"] for r in rows if r["experiment"] == "grid" and r["config"]["hidden"] == 8]
        assert sorted(table.visible_ids) == want and len(want) == 3
        await pilot.press("slash", *["backspace"] * 13, "enter")  # clear the filter
        assert len(table.visible_ids) == len(rows) == 10
        table.sort_by("test_acc", True)
        shown = [table.cell_texts(i)["test_acc"] for i in table.visible_ids]
        assert shown == [f"{100 * r['test_acc']:.2f}%" for r in
                         sorted(rows, key=lambda r: -r["test_acc"])]
        await pilot.press("r")  # reversed: worst first
        assert table.visible_ids[0] == min(rows, key=lambda r: r["test_acc"])["id"]

        await pilot.press("4")
        grid = app.query_one(GridView)
        assert grid.query_one("#grid-exp").value == "grid"
        pivot = grid.current
        assert (pivot.row_key, pivot.col_key) == ("lr", "hidden")
        for (lr, hidden), (best, n, run_id) in pivot.cells.items():
            cell_rows = [r for r in rows if r["experiment"] == "grid" and
                         r["config"]["lr"] == lr and r["config"]["hidden"] == hidden]
            assert n == len(cell_rows) == 1 and best == cell_rows[0]["test_acc"]
        top = max((r for r in rows if r["experiment"] == "grid"), key=lambda r: r["test_acc"])
        (best_key, best_value) = pivot.best
        assert best_value == top["test_acc"]
        assert best_key == (top["config"]["lr"], top["config"]["hidden"])
        lr, hidden = top["config"]["lr"], top["config"]["hidden"]
        assert f"best cell: lr={lr:g} hidden={hidden} -> {100 * top['test_acc']:.2f}%" \
            in grid.best_text

        grid.choose("hidden", "lr", experiment="")  # all experiments: baseline joins a cell
        cells = grid.current.cells
        assert sum(n for _, n, _ in cells.values()) == len(rows)


def test_digit_drawing_uses_two_pixels_per_character():
    image = np.zeros((28, 28), np.uint8)
    image[4, 10] = 255  # top half of character row 2, column 10
    image[9, 3] = 128  # bottom half of character row 4, column 3
    lines = digit_text(image).split("\n")
    assert len(lines) == 14 and all(len(line) == 28 for line in lines)
    console = Console()
    top = lines[2].get_style_at_offset(console, 10)
    assert top.color.triplet == (255, 255, 255) and top.bgcolor.triplet == (0, 0, 0)
    bottom = lines[4].get_style_at_offset(console, 3)
    assert bottom.color.triplet == (0, 0, 0) and bottom.bgcolor.triplet == (128, 128, 128)


def test_loaded_name_maps_a_fallback_identity_to_the_data_actually_used():
    assert loaded_name("mnist-sample (fallback for mnist)") == "mnist-sample"
    assert loaded_name("fashion-mnist") == "fashion-mnist"


@run_async
async def test_command_palette_offers_the_actions_and_they_work(tiny_toml, tmp_path):
    app = make_app(tiny_toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("Queue everything", "Cancel running run", "Show results", "Help",
                      "Queue 3 more seeds", "Group results by config", "Filter results",
                      "Write the report", "Confusion diff of two runs"):
            assert title in titles  # every key of the help, searchable (the help says so)
        assert "Stop the sweep after its current run" not in titles  # only when attached
        for command in ("Group results by config", "Queue everything", "Show grid"):  # typed
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*command)
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause(0.3)
        assert [r.run_id for r in app.runner.pending()] == [r.run_id for r in app.session.runs]
        assert app.query_one("#tabs").active == "grid"
        assert app.query_one(ResultsTable).grouped  # the palette's group went to Results


@run_async
async def test_two_quick_view_keys_leave_the_second_view_shown(tmp_path):
    """Pressing 3 then 2 faster than the app settles (as under training load) shows Live,
    not Results: the first view's late focus notice must not switch back. Both switches are
    made before the app handles any message, the tightest possible timing."""
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        tabs = app.query_one("#tabs")
        for first, second in (("results", "live"), ("grid", "live"),
                              ("confusion", "experiments"), ("live", "results")):
            app.action_tab(first)
            app.action_tab(second)
            await pilot.pause(0.3)
            assert tabs.active == second, (first, second, tabs.active)
        # the shown view has the keys: its main widget is focused
        assert app.focused is app.query_one(ResultsTable)
        await pilot.press("2")
        assert tabs.active == "live"


@run_async
async def test_live_charts_replot_only_what_changed(tmp_path):
    """A batch report replots the loss chart and the status line, not the accuracy chart
    (it changes once an epoch); an epoch replots both. Samples/s is measured between
    reports, so start-up time does not count."""
    from workbench.tui.widgets.charts import CachedPlot, LiveCharts
    from workbench.types import EpochMetrics

    toml = write_study(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        charts = app.query_one(LiveCharts)
        loss, acc = (app.query_one(f"#{name}", CachedPlot) for name in ("loss-chart", "acc-chart"))
        run = app.session.runs[0]
        charts.run_started(run, "cpu", "mnist-sample")
        charts.redraw()
        versions = loss.version, acc.version
        charts.batch(run, 1, 10, 100, 2.0)
        assert "samples/s" not in charts.status_text  # one report: no rate yet
        charts.batch(run, 1, 20, 100, 1.5)
        assert "samples/s" in charts.status_text
        assert charts.redraw() and (loss.version, acc.version) == (versions[0] + 1, versions[1])
        assert not charts.redraw()  # nothing changed since
        charts.epoch(run, EpochMetrics(1, 1.2, 1.1, 0.6, 0.6, 1, 3.0))
        assert charts.redraw() and (loss.version, acc.version) == (versions[0] + 2,
                                                                   versions[1] + 1)
        await pilot.pause(0.1)
        assert "val acc 60.00%" in str(app.query_one("#live-status").render())


@run_async
async def test_live_view_draws_a_scheduled_learning_rate(tmp_path):
    """A run whose schedule moves the learning rate: the rate of every epoch is in the
    status line and drawn on the accuracy chart's right axis; a constant rate is not drawn."""
    from workbench.tui.widgets.charts import CachedPlot, LiveCharts
    from workbench.types import EpochMetrics, RunSpec

    toml = write_study(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        charts = app.query_one(LiveCharts)
        acc = app.query_one("#acc-chart", CachedPlot)
        base = app.session.runs[0]
        run = RunSpec(base.experiment, 0, {**base.config, "callbacks": ["cosine"]}, "cosine")
        charts.run_started(run, "cpu", "mnist-sample")
        charts.epoch(run, EpochMetrics(1, 1.2, 1.1, 0.6, 0.6, 1, 3.0, lr=0.01))
        charts.redraw()
        await pilot.pause(0.1)
        assert "learning rate" not in str(acc.render())  # not moved yet: nothing to draw
        charts.epoch(run, EpochMetrics(2, 1.0, 0.9, 0.7, 0.7, 2, 6.0, lr=0.005))
        assert charts.live.lr == [0.01, 0.005]
        charts.redraw()
        await pilot.pause(0.1)
        assert "learning rate (right axis)" in str(acc.render())
        assert "| lr 0.005" in str(app.query_one("#live-status").render())


def write_runs(path, experiment: str, runs: list[tuple[dict, float]]) -> list[int]:
    """Finished runs with these configs and test accuracies, written through the Store."""
    from workbench.types import DONE, EpochMetrics, RunResult, RunSpec
    store = Store(path)
    ids = []
    for i, (config, acc) in enumerate(runs):
        label = " ".join(f"{k}={v}" for k, v in config.items())
        run = RunSpec(experiment, i, {"epochs": 1, "seed": 1, **config}, label)
        row = store.start_run(run, "mnist-sample", "cpu")
        store.finish_run(row, RunResult(status=DONE, test_acc=acc, device="cpu",
                                        epochs=(EpochMetrics(1, 0.5, 0.4, acc, acc, 1, 1.0),)))
        ids.append(row)
    store.close()
    return ids


@run_async
async def test_grid_draws_an_experiment_with_one_varying_key_as_one_row(tmp_path):
    accs = {"relu": 0.91, "tanh": 0.93, "sigmoid": 0.88}
    ids = write_runs(tmp_path / "s.sqlite", "activations",
                     [({"activation": a}, acc) for a, acc in accs.items()])
    app = make_app(None, tmp_path / "s.sqlite", start_runner=False, browse=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        grid = app.query_one(GridView)
        pivot = grid.current
        assert pivot is not None and pivot.row_key == "" and pivot.col_key == "activation"
        assert {cv: cell[0] for (_, cv), cell in pivot.cells.items()} == accs
        assert grid.best_text.startswith("★ best cell: activation=tanh -> 93.00% (best run "
                                         f"{ids[1]}: activations")
        table = grid.query_one(GridTable)
        (cells,) = table.texts()  # one row
        # columns: relu, sigmoid, tanh
        assert [c.split("\n")[0].strip() for c in cells] == ["91.00%", "88.00%", "★ 93.00%"]
        assert [str(row.label) for row in table.rows.values()] == ["all runs"]


@run_async
async def test_live_lists_every_run_in_flight_and_charts_the_chosen_one(tmp_path):
    """Two runs in flight (a stack, or Ray): a line each with epoch, progress and ETA; the
    newest is charted until the user picks one with Enter, and then it stays charted."""
    import time as clock

    from workbench.tui.widgets.charts import LiveCharts, epoch_ticks

    toml = write_study(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        charts = app.query_one(LiveCharts)
        a, b, c = app.session.runs[1:4]
        for run in (a, b):
            charts.run_started(run, "cpu", "mnist-sample")
        assert charts.live_run == b  # the newest, until the user picks one
        charts.batch(a, 1, 10, 40, 2.0)
        charts.batch(b, 1, 10, 40, 2.1)
        clock.sleep(0.2)
        charts.batch(a, 2, 10, 40, 1.0)  # a is at 50/120 batches
        charts.batch(b, 1, 30, 40, 1.5)  # b is at 30/120
        charts.redraw()
        await pilot.pause()
        table = charts.query_one("#live-runs")
        assert table.row_count == 2 and table.display
        rows = {key.value: [str(cell) for cell in table.get_row(key)] for key in table.rows}
        assert rows[a.run_id][1] == f"grid: {a.label}" and rows[a.run_id][2] == "2/3"
        assert rows[a.run_id][3].endswith(" 42%") and rows[b.run_id][3].endswith(" 25%")
        # ETA: the time per batch so far times the batches left (40 in 0.2 s, 70 left)
        eta_a = charts.flights[a.run_id].eta
        assert 0.2 * 70 / 40 <= eta_a < 3 * 70 / 40 and rows[a.run_id][6].endswith("s")

        table.focus()  # as pressing 2 does (once, in a full run, the keys missed the table)
        await pilot.pause()
        await pilot.press("up")
        charts.dirty.add("status")  # the 1 Hz redraw between the keys keeps the cursor
        charts.redraw()
        await pilot.press("enter")  # pick a: it is charted and stays charted
        assert charts.live_run == a and charts.chosen
        charts.run_started(c, "cpu", "mnist-sample")
        assert charts.live_run == a
        charts.finished(a, "done", 0.91)
        charts.redraw()
        assert "done: grid: " in charts.status_text and "test acc 91.00%" in charts.status_text

    assert epoch_ticks(3) == [1, 2, 3]
    ticks = epoch_ticks(400)
    assert ticks[0] == 1 and ticks[-1] == 400 and len(ticks) <= 11
    assert all(isinstance(t, int) for t in ticks)


@run_async
async def test_overlay_legends_hold_short_labels_and_the_names_are_beside_them(tmp_path):
    from workbench.tui.widgets.charts import LiveCharts
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3", "space", "down", "space", "2")
        await pilot.pause(1.2)
        charts = app.query_one(LiveCharts)
        table = app.query_one(ResultsTable)
        marked = sorted(table.marked)
        assert [s.label for s in charts.overlays] == [f"#{i}" for i in marked]
        legend = str(charts.query_one("#overlay-legend").render())
        for run_id in marked:
            row = app.store.run(run_id)
            name = row["experiment"] if row["label"] == row["experiment"] else \
                f"{row['experiment']}: {row['label']}"
            assert f"#{run_id} = run {run_id}: {name}" in legend


@run_async
async def test_narrow_terminal_folds_the_plugin_list_and_the_footer_leads_with_the_view(
        tmp_path):
    from textual.widgets._footer import FooterKey
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-narrow")
        assert not app.query_one("#plugins").display
        await pilot.press("3")
        await pilot.pause()
        keys = [k.key for k in app.query(FooterKey)]
        assert keys[:4] == ["space", "slash", "e", "g"]  # the Results keys come first
        assert "1" not in keys  # the tab titles carry their keys
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert app.screen.has_class("-wide") and app.query_one("#plugins").display


# lr x hidden, three seeds a cell: (0.001, 16) is best; (0.001, 32) overlaps it; the
# lr=0.01 cells are far below.
REPEATED = {(1e-3, 16): (0.90, 0.91, 0.92), (1e-3, 32): (0.900, 0.905, 0.910),
            (1e-2, 16): (0.80, 0.81, 0.82), (1e-2, 32): (0.850, 0.851, 0.852)}


def write_repeated(path) -> list[int]:
    """The REPEATED grid as stored runs of experiment "grid", seeds 0, 1, 2 per cell."""
    return write_runs(path, "grid", [({"lr": lr, "hidden": hidden, "seed": seed}, acc)
                                     for (lr, hidden), accs in REPEATED.items()
                                     for seed, acc in enumerate(accs)])


@run_async
async def test_grid_cells_show_the_mean_over_seeds_and_mark_those_near_the_best(tmp_path):
    write_repeated(tmp_path / "s.sqlite")
    app = make_app(None, tmp_path / "s.sqlite", start_runner=False, browse=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("4")
        grid = app.query_one(GridView)
        pivot = grid.current
        assert (pivot.row_key, pivot.col_key) == ("lr", "hidden")  # the seed is not a key
        for key, accs in REPEATED.items():
            mean, n, _ = pivot.cells[key]
            assert mean == pytest.approx(sum(accs) / 3) and n == 3
        assert pivot.best[0] == (1e-3, 16)
        assert pivot.near_best == {(1e-3, 32)}
        drawn = " | ".join(" | ".join(row) for row in grid.query_one(GridTable).texts())
        # t(0.975, 2) = 4.3027; std 0.01 over 3 seeds: half width 2.48 pp
        assert "★ 91.00%" in drawn and "n=3 ±2.48" in drawn and "≈ 90.50%" in drawn
        assert "≈ 81" not in drawn and "≈ 85" not in drawn
        # the cursor starts on the best cell; + queues 3 more seeds of the cell under it
        await pilot.press("down", "plus", "y")  # lr=0.01 hidden=16 (a browsed store: y)
        pending = app.runner.pending()
        assert [(r.config["lr"], r.config["hidden"], r.config["seed"]) for r in pending] == \
            [(1e-2, 16, 3), (1e-2, 16, 4), (1e-2, 16, 5)]
        assert "≈ 1 other cell not distinguishable" in grid.best_text
        console = Console(width=160, record=True)
        console.print(grid.effects)
        effects = console.export_text()
        # lr=0.001: (0.91 + 0.905) / 2; lr=0.01: (0.81 + 0.851) / 2; over 2 cells, 6 runs
        assert "90.75 ±" in effects and "83.05 ±" in effects
        assert "largest interaction, hidden x lr" in effects

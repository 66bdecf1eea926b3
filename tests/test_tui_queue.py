"""An honest queue: done runs are never queued (one notice says so), re-queueing says that
nothing was added, and `a` queues what the tab in view has selected. No training here: the
runner is not started, so the queue only fills."""

from __future__ import annotations

from test_tui_flows import SIZE, run_async, tree_node
from tui_data import GRID_TOML, fixed_store, write_study
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.widgets.experiments import ExperimentTree
from workbench.tui.widgets.results import ResultsTable

EXTRA = """
[[experiment]]
name = "extra"
hidden = 12
"""


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


def study_with_extra(tmp_path):
    """The fixed store (10 runs done) and a study of those 10 runs plus one new run."""
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    toml.write_text(GRID_TOML + EXTRA)
    return toml


@run_async
async def test_queue_all_on_a_mostly_done_study_queues_only_what_is_not_done(tmp_path):
    toml = study_with_extra(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")
        await pilot.pause()
        extra = [r for r in app.session.runs if r.experiment == "extra"]
        assert app.runner.pending() == extra
        assert notices(app) == ["queued everything: 1 run; 10 runs already done, skipped "
                                "(start with --rerun to train again)"]
        tree = app.query_one(ExperimentTree)
        for run in app.session.runs:  # the done runs keep their mark
            label = tree_node(tree, ("run", run)).label.plain
            assert label.startswith("◷" if run.experiment == "extra" else "✔"), label
        assert "1/1 done" in str(tree.root.children[0].label)
        assert "9/9 done" in str(tree.root.children[1].label)

        await pilot.press("A")  # again: nothing is added, and it says so
        assert notices(app)[-1] == ("nothing added for everything; 1 run already in the "
                                    "queue; 10 runs already done, skipped (start with --rerun "
                                    "to train again)")
        assert app.runner.pending() == extra


@run_async
async def test_a_queues_the_selection_of_the_tab_in_view(tmp_path):
    toml = study_with_extra(tmp_path)
    app = make_app(toml, tmp_path / "s.sqlite", start_runner=False, rerun=True)
    rows = Store(tmp_path / "s.sqlite", readonly=True).runs()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")  # Results: best first; the tree cursor (the study) is hidden
        table = app.query_one(ResultsTable)
        best = max(rows, key=lambda r: r["test_acc"])
        assert table.selected_id() == best["id"]
        await pilot.press("down", "a")
        second = sorted(rows, key=lambda r: -r["test_acc"])[1]
        (queued,) = app.runner.pending()
        assert (queued.experiment, queued.config_hash) == (second["experiment"],
                                                           second["config_hash"])
        assert notices(app)[-1] == f"queued grid: {second['label']}: 1 run"

        await pilot.press("2", "a")  # Live has no selection: nothing is queued
        assert notices(app)[-1] == "nothing selected to queue on this tab"
        assert len(app.runner.pending()) == 1

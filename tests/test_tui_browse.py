"""Opening the app: browsing a store written by a headless run (--store without a study
file: the store's own experiments, and training into it asks first), and refusing a bad file
before the screen opens."""

from __future__ import annotations

import textwrap

from conftest import run_cli
from test_tui_flows import SIZE, run_async
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.screens import ConfirmTrain
from workbench.tui.widgets.confusion import ConfusionTable
from workbench.tui.widgets.experiments import ExperimentTree
from workbench.tui.widgets.results import ResultsTable


@run_async
async def test_browse_a_store_written_by_a_headless_run(tiny_toml, tmp_path, monkeypatch):
    store_path = tmp_path / "from-ssh.sqlite"
    done = run_cli("--headless", str(tiny_toml), "--only", "one", "--store", str(store_path))
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no experiments.toml here: the store's experiments are shown
    app = make_app(None, store_path, start_runner=False, browse=True)
    store = Store(store_path, readonly=True)
    (row,) = store.runs()
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(ExperimentTree)
        assert [n.data[1] for n in tree.root.children] == ["one"]
        (leaf,) = tree.root.children[0].children
        assert leaf.label.plain.endswith(f"done  test {100 * row['test_acc']:.2f}%")
        tree.focus()
        tree.select_node(leaf)  # Enter on a done run opens its result
        await pilot.pause()
        assert app.query_one("#tabs").active == "results"
        table = app.query_one(ResultsTable)
        assert table.visible_ids == [row["id"]] and table.selected_id() == row["id"]
        cells = table.cell_texts(row["id"])
        assert cells["experiment"] == "one"
        assert cells["test_acc"] == f"{100 * row['test_acc']:.2f}%"
        await pilot.press("enter")
        assert app.query_one(ConfusionTable).shown_counts() == store.run(row["id"])["confusion"]
        await pilot.press("A")  # everything is done: nothing to train, nothing to ask
        assert not app.runner.pending() and not isinstance(app.screen, ConfirmTrain)
    store.close()


@run_async
async def test_training_into_a_browsed_store_asks_and_enter_says_no(tiny_toml, tmp_path):
    store_path = tmp_path / "s.sqlite"
    assert run_cli("--headless", str(tiny_toml), "--only", "one", "--store",
                   str(store_path)).returncode == 0
    app = make_app(None, store_path, start_runner=False, browse=True, rerun=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")
        assert isinstance(app.screen, ConfirmTrain)
        await pilot.press("enter")  # the default: do not train
        assert not isinstance(app.screen, ConfirmTrain) and not app.runner.pending()
        await pilot.press("A", "y")
        assert [r.experiment for r in app.runner.pending()] == ["one"]


def test_a_bad_experiments_file_is_refused_before_the_app_opens(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [defaults]
        hidden = "lots"
        [[experiment]]
        name = "x"
    """))
    result = run_cli(str(bad), "--store", str(tmp_path / "s.sqlite"))
    assert result.returncode == 2
    assert "the app was not opened" in result.stderr
    assert "hidden" in result.stderr and "lots" in result.stderr

"""What headless prints about each run, piped as in a log: names said once, stacked runs'
times with their stack size (the app and the export agree), tables readable at 80 columns."""

from __future__ import annotations

import csv
import re
import sqlite3

import pytest

from conftest import run_cli
from test_tui_flows import SIZE, run_async
from tiny_study import tiny_study
from workbench.tui.launch import make_app
from workbench.tui.widgets.results import ResultsTable

# "final" is one run (its label is its name) and the best; the grid's runs differ only in
# lr and epochs within each activation, so they train as two stacks of four.
EXPERIMENTS = '''
[[experiment]]
name = "final"
hidden = 32
epochs = 2
[[experiment]]
name = "grid"
[experiment.grid]
lr = [1e-3, 1e-4]
epochs = [1, 2]
activation = ["relu", "tanh"]
'''
GRID_LABELS = [f"activation={act} epochs={epochs} lr={lr}" for lr in ("0.001", "0.0001")
               for epochs in (1, 2) for act in ("relu", "tanh")]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("display")
    toml = tiny_study(folder, EXPERIMENTS)
    store, out = folder / "s.sqlite", folder / "results.csv"
    result = run_cli("--headless", str(toml), "--store", str(store), "--export", str(out),
                     env={"MNIST_WORKBENCH_DATA": str(folder / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, store, out, toml


def test_a_run_whose_label_is_its_experiment_is_named_once(sweep):
    out = sweep[0]
    assert "final final" not in out and "final: final" not in out
    assert "[start] final on cpu" in out and re.search(r"^\[done\] final \| test ", out, re.M)
    assert "confusion matrix of the best run: final (test " in out
    assert "[done] grid: activation=relu epochs=1 lr=0.001 |" in out


def test_stacked_runs_show_the_stacks_time_and_size_everywhere(sweep):
    out, store, exported, _ = sweep
    done = {m.group(1): m.group(2) for m in
            re.finditer(r"^\[done\] (.+?) \| .* \| (\d+\.\d+s(?:/\d+)?) \| mnist-sample$",
                        out, re.M)}
    assert re.fullmatch(r"\d+\.\ds", done["final"])  # trained alone: no stack size
    for label in GRID_LABELS:
        assert re.fullmatch(r"\d+\.\ds/4", done[f"grid: {label}"])
    with open(exported) as fh:
        rows = {row["label"]: row for row in csv.DictReader(fh)}
    assert rows["final"]["stack_size"] == "1"
    assert {rows[label]["stack_size"] for label in GRID_LABELS} == {"4"}


def test_piped_results_keep_each_label_whole_within_80_columns(sweep):
    out = sweep[0]
    summary = out[out.index("final (1 runs) on mnist-sample"):out.index("best of grid:")]
    lines = summary.splitlines()
    assert max(len(line) for line in lines) <= 80
    for label in GRID_LABELS:  # the label alone on its line, its numbers on the next
        at = lines.index(f"  {label}")
        assert re.fullmatch(r"    done \| best val \d+\.\d\d% @ep\d \| test \d+\.\d\d% \| "
                            r"\d+\.\ds/4", lines[at + 1])
    assert lines[0] == "final (1 runs) on mnist-sample" and "grid (8 runs) on mnist-sample" in lines


@run_async
async def test_the_apps_results_show_stacked_times_as_headless_does(sweep):
    out, store, _, toml = sweep
    with sqlite3.connect(store) as db:
        ids = dict(db.execute("SELECT label, id FROM runs").fetchall())
    app = make_app(toml, store, start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        assert re.fullmatch(r"\d+\.\ds", table.cell_texts(ids["final"])["train_seconds"])
        for label in GRID_LABELS:
            shown = table.cell_texts(ids[label])["train_seconds"]
            assert re.fullmatch(r"\d+\.\ds/4", shown)
            assert f"grid: {label} | " in out and shown in out

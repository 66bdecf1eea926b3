"""References (figures an experiment should reproduce): config errors, here vs reference
through the CLI, the export's columns, and the Results view's column."""

from __future__ import annotations

import csv
import sqlite3
import textwrap

import pytest

from tests.conftest import run_cli

STUDY = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 1
batch_size = 256
seed = 3

[[experiment]]
name = "one"
reference = { test_acc = 0.9644, final_train_loss = 0.0211, source = "seed report" }

[[experiment]]
name = "sweep"
[experiment.grid]
lr = [1e-3, 3e-3]
[[experiment.reference]]
test_acc = 0.95
source = "best of the sweep"
[[experiment.reference]]
where = { lr = 1e-3 }
test_acc = 0.90
best_val_acc = 0.91
source = "the lr=0.001 cell"
"""


def _rows(store):
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return {(r["experiment"], r["label"]): dict(r) for r in db.execute("SELECT * FROM runs")}


def test_here_vs_reference_is_printed_per_experiment_and_exported(tmp_path):
    toml = tmp_path / "study.toml"
    toml.write_text(textwrap.dedent(STUDY))
    store = tmp_path / "results.sqlite"
    out = tmp_path / "out.csv"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--device", "cpu",
                   "--export", str(out), env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(store)
    one = rows[("one", "one")]
    low, high = rows[("sweep", "lr=0.001")], rows[("sweep", "lr=0.003")]
    best = max((low, high), key=lambda r: r["test_acc"])
    table = proc.stdout.split("here vs reference", 1)[1]
    lines = [ln for ln in table.splitlines() if ln.startswith("| ") and "experiment" not in ln]

    def cells(line):
        return [c.strip() for c in line.strip("|").split("|")]

    def pp(here, ref):
        return f"{100 * (here - ref):+.2f} pp"

    assert [cells(ln) for ln in lines] == [
        ["one", "one", "test_acc", f"{100 * one['test_acc']:.2f}%", "96.44%",
         pp(one["test_acc"], 0.9644), "seed report"],
        ["one", "one", "final_train_loss", f"{one['final_train_loss']:.4f}", "0.0211",
         f"{one['final_train_loss'] - 0.0211:+.4f}", "seed report"],
        ["sweep", f"best of 2: {best['label']}", "test_acc", f"{100 * best['test_acc']:.2f}%",
         "95.00%", pp(best["test_acc"], 0.95), "best of the sweep"],
        ["sweep", "lr=0.001", "test_acc", f"{100 * low['test_acc']:.2f}%", "90.00%",
         pp(low["test_acc"], 0.90), "the lr=0.001 cell"],
        ["sweep", "lr=0.001", "best_val_acc", f"{100 * low['best_val_acc']:.2f}%", "91.00%",
         pp(low["best_val_acc"], 0.91), "the lr=0.001 cell"],
    ]
    # the runs trained on the shipped sample, which is what they asked for: no fallback note
    assert "not comparable" not in table

    exported = {(r["experiment"], r["label"]): r for r in csv.DictReader(out.open())}
    assert float(exported[("one", "one")]["ref_test_acc"]) == 0.9644
    assert float(exported[("one", "one")]["ref_final_train_loss"]) == 0.0211
    assert exported[("one", "one")]["ref_best_val_acc"] == ""
    # the most specific reference is the row's: lr=0.001 has its own, lr=0.003 the sweep's
    assert float(exported[("sweep", "lr=0.001")]["ref_test_acc"]) == 0.90
    assert float(exported[("sweep", "lr=0.001")]["ref_best_val_acc"]) == 0.91
    assert exported[("sweep", "lr=0.001")]["ref_source"] == "the lr=0.001 cell"
    assert float(exported[("sweep", "lr=0.003")]["ref_test_acc"]) == 0.95
    assert exported[("sweep", "lr=0.003")]["ref_source"] == "best of the sweep"

    # browse mode's export (no experiments file) still has them: they live in the store
    again = tmp_path / "again.csv"
    assert run_cli("--store", str(store), "--export", str(again)).returncode == 0
    assert again.read_text() == out.read_text()


def test_a_bad_reference_is_a_config_error_and_nothing_is_stored(tmp_path):
    toml = tmp_path / "study.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        [[experiment]]
        name = "one"
        reference = { test_accuracy = 0.96, source = "seed report" }
        [[experiment]]
        name = "two"
        reference = { best_val_acc = 97.5 }
        [[experiment]]
        name = "sweep"
        [experiment.grid]
        lr = [1e-3, 3e-3]
        [[experiment.reference]]
        where = { lr = 1e-2 }
        test_acc = 0.9
        [[experiment.reference]]
        where = { hiden = 200 }
        test_acc = 0.9
    """))
    store = tmp_path / "results.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store))
    assert proc.returncode == 2
    err = proc.stderr
    assert f"{toml}: experiment 'one': reference: unknown metric 'test_accuracy' (did you " \
           "mean 'test_acc'?); metrics: test_acc, best_val_acc, final_val_acc" in err
    assert f"{toml}: experiment 'two': reference: best_val_acc: got 97.5, expected a " \
           "fraction in [0, 1] (0.9644 for 96.44 %)" in err
    assert "experiment 'sweep': reference #2: where.hiden: not a run key (did you mean " \
           "'hidden'?)" in err
    assert "3 problems found, nothing was run" in err
    assert not store.exists()
    # with the typo fixed, a `where` that names no run is the one problem left
    toml.write_text(toml.read_text().replace("hiden", "hidden").replace("test_accuracy",
                    "test_acc").replace("97.5", "0.975"))
    proc = run_cli("--headless", str(toml), "--store", str(store))
    assert proc.returncode == 2
    assert f"{toml}: experiment 'sweep': reference where {{lr=0.01}} matches none of its 2 " \
           "runs (their values: lr: 0.001, 0.003)" in proc.stderr
    assert "reference where {hidden=200} matches none of its 2 runs (their values: hidden: " \
           "100)" in proc.stderr
    assert not store.exists()


def test_a_where_names_callbacks_and_optional_keys_as_a_run_config_does(registry, tmp_path):
    """``callbacks = "step"`` (one name) in a where matches the runs that use it, as the same
    value does in a grid; a key at its default (left out of stored configs) matches too; a
    where that matches nothing counts the distinct runs (not the configs merged) and shows
    the values the runs have."""
    import tomllib

    from workbench.config import ConfigError, validate_study

    def study(where: str):
        raw = tomllib.loads(textwrap.dedent(f"""
            [[experiment]]
            name = "shaped"
            [experiment.grid]
            callbacks = ["step", "early_stopping"]
            step_every = [1, 2]
            [[experiment.reference]]
            where = {where}
            test_acc = 0.9
        """))
        return validate_study(raw, registry, tmp_path / "s.toml")

    exp = study('{ callbacks = "step", step_every = 2, weight_decay = 0.0 }').experiments[0]
    (ref,) = exp.references
    assert [c.get("step_every") for c in exp.configs if ref.applies_to(c)] == [2]
    assert ref.where_text == "callbacks=step step_every=2 weight_decay=0"
    # 4 configs, 3 runs: early_stopping's two cells are one run (step_every is not its key)
    with pytest.raises(ConfigError) as err:
        study('{ callbacks = "cosine" }')
    assert "reference where {callbacks=cosine} matches none of its 3 runs (their values: " \
           "callbacks: early_stopping, step)" in "\n".join(err.value.problems)


def test_the_seed_study_carries_every_figure_of_the_seed_report():
    from workbench.config import load_study
    from workbench.plugins import load_plugins
    from tests.conftest import ROOT

    registry = load_plugins(entry_points=False)
    study = load_study(ROOT / "experiments.toml", registry)
    figures = {(r.experiment, r.where_text, r.metric): r.value
               for exp in study.experiments for r in exp.references}
    assert figures == {
        ("baseline", "", "test_acc"): 0.9644, ("baseline", "", "train_seconds"): 41.83,
        ("grid", "", "test_acc"): 0.9788,
        ("grid", "batch_size=64 epochs=10 hidden=200 lr=0.001", "test_acc"): 0.9788,
        ("deep", "", "final_val_acc"): 0.9816, ("deep", "", "best_val_acc"): 0.9816,
        ("deep", "", "final_train_loss"): 0.0211,
        ("activations", "activation=sigmoid", "final_val_acc"): 0.9752,
        ("activations", "activation=sigmoid", "best_val_acc"): 0.9752,
        ("activations", "activation=sigmoid", "final_train_loss"): 0.0215,
        ("activations", "activation=tanh", "final_val_acc"): 0.9730,
        ("activations", "activation=tanh", "best_val_acc"): 0.9744,
        ("activations", "activation=tanh", "final_train_loss"): 0.0165,
        ("dropout", "", "final_val_acc"): 0.9748, ("dropout", "", "best_val_acc"): 0.9764,
        ("dropout", "", "final_train_loss"): 0.1001,
        ("final", "", "final_val_acc"): 0.9818, ("final", "", "best_val_acc"): 0.9836,
        ("final", "", "final_train_loss"): 0.0277,
    }


def test_the_results_view_shows_each_runs_reference(tmp_path):
    from test_tui_flows import SIZE, run_async
    from tui_data import fixed_store, write_study
    from workbench.store import Store
    from workbench.tui.launch import make_app
    from workbench.tui.widgets.results import ResultsTable

    toml = write_study(tmp_path)
    fixed_store(tmp_path / "s.sqlite", toml)
    toml.write_text(toml.read_text().replace(
        'description = "one run of the defaults"',
        'description = "one run of the defaults"\n'
        'reference = { test_acc = 0.9644, source = "seed report" }'))
    rows = Store(tmp_path / "s.sqlite", readonly=True).runs()
    base = next(r for r in rows if r["experiment"] == "baseline")

    @run_async
    async def check():
        app = make_app(toml, tmp_path / "s.sqlite", start_runner=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            table = app.query_one(ResultsTable)
            assert "reference" in table.columns_order
            assert table.cell_texts(base["id"])["reference"] == \
                f"test 96.44% ({100 * (base['test_acc'] - 0.9644):+.2f} pp)"
            other = next(r for r in rows if r["experiment"] == "grid")
            assert table.cell_texts(other["id"])["reference"] == "-"

    check()

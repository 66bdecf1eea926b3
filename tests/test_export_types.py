"""--export keeps whole numbers whole, also in columns that some rows lack."""

from __future__ import annotations

import csv
import json

from conftest import run_cli
from tiny_study import tiny_study


def test_integer_columns_some_rows_lack_stay_integers(tmp_path):
    toml = tiny_study(tmp_path, '''
        [[experiment]]
        name = "shallow"
        reference = { test_acc = 0.9, source = "a report" }
        [[experiment]]
        name = "deep"
        model = "deep_mlp"
        layers = 2
        activations = ["relu", "tanh"]
        callbacks = ["step"]
    ''')
    out = tmp_path / "results.csv"
    result = run_cli("--headless", str(toml), "--store", str(tmp_path / "s.sqlite"),
                     "--export", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out) as fh:
        rows = {row["experiment"]: row for row in csv.DictReader(fh)}
    assert rows["deep"]["layers"] == "2"  # deep_mlp's parameter: not "2.0"
    assert rows["shallow"]["layers"] == ""  # baseline_mlp has none
    # a list as JSON (not Python's repr), and every config column before the references'
    assert json.loads(rows["deep"]["activations"]) == ["relu", "tanh"]
    assert json.loads(rows["deep"]["callbacks"]) == ["step"]
    assert rows["deep"]["step_every"] != "" and rows["shallow"]["step_every"] == ""
    header = out.read_text().splitlines()[0].split(",")
    assert max(header.index(k) for k in ("layers", "activations", "step_every", "test_acc")) \
        < header.index("ref_test_acc") < header.index("ref_source")
    for row in rows.values():
        assert row["hidden"] == "8" and row["epochs"] == "1" and row["best_epoch"] == "1"
        assert row["stack_size"] == "1"
    summary = tmp_path / "summary.csv"  # the per-config summary writes lists alike
    assert run_cli("--store", str(tmp_path / "s.sqlite"), "--export-summary",
                   str(summary)).returncode == 0
    with open(summary) as fh:
        deep = [row for row in csv.DictReader(fh) if row["experiment"] == "deep"][0]
    assert json.loads(deep["activations"]) == ["relu", "tanh"]
    # The same file read back from the store alone (read-only export) says the same.
    again = tmp_path / "again.csv"
    assert run_cli("--store", str(tmp_path / "s.sqlite"), "--export", str(again)).returncode == 0
    assert again.read_text() == out.read_text()


def test_exporting_a_store_of_the_older_layout_works_without_changing_it(tmp_path):
    """--export only reads: a store written before runs.stack_size existed is exported as it
    is (the column left empty) and not migrated."""
    import sqlite3

    from workbench.store_schema import V1, _statements

    store = tmp_path / "old.sqlite"
    with sqlite3.connect(store) as db:
        for statement in _statements(V1):
            db.execute(statement)
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO runs (experiment, config_hash, dataset, run_index, label, "
                   "config, status, train_seconds, best_epoch) VALUES ('a', 'h', "
                   "'mnist-sample', 0, 'a', '{\"hidden\": 8}', 'done', 1.5, 3)")
    before = store.read_bytes()
    out = tmp_path / "old.csv"
    result = run_cli("--store", str(store), "--export", str(out))
    assert result.returncode == 0, result.stderr
    with open(out) as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["train_seconds"], row["best_epoch"], row["hidden"]) == ("1.5", "3", "8")
    assert row["stack_size"] == ""
    assert store.read_bytes() == before

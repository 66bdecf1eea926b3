"""--export keeps whole numbers whole, also in columns that some rows lack."""

from __future__ import annotations

import csv

from conftest import run_cli
from tiny_study import tiny_study


def test_integer_columns_some_rows_lack_stay_integers(tmp_path):
    toml = tiny_study(tmp_path, '''
        [[experiment]]
        name = "shallow"
        [[experiment]]
        name = "deep"
        model = "deep_mlp"
        layers = 2
    ''')
    out = tmp_path / "results.csv"
    result = run_cli("--headless", str(toml), "--store", str(tmp_path / "s.sqlite"),
                     "--export", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out) as fh:
        rows = {row["experiment"]: row for row in csv.DictReader(fh)}
    assert rows["deep"]["layers"] == "2"  # deep_mlp's parameter: not "2.0"
    assert rows["shallow"]["layers"] == ""  # baseline_mlp has none
    for row in rows.values():
        assert row["hidden"] == "8" and row["epochs"] == "1" and row["best_epoch"] == "1"
        assert row["stack_size"] == "1"
    # The same file read back from the store alone (read-only export) says the same.
    again = tmp_path / "again.csv"
    assert run_cli("--store", str(tmp_path / "s.sqlite"), "--export", str(again)).returncode == 0
    assert again.read_text() == out.read_text()

"""Repeats end to end: a real sweep over seeds, its summary, --export-summary, --compare."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import textwrap

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from workbench import data, stats

TOML = """
[defaults]
dataset = "mnist-sample"
hidden = 8
epochs = 1
batch_size = 256
seeds = [3, 4, 5]

[[experiment]]
name = "grid"
[experiment.grid]
lr = [1e-3, 3e-3]
hidden = [8, 16]
"""
T_975_2 = 4.302653  # Student's t, 97.5 %, 2 degrees of freedom (printed tables)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """12 runs (2 x 2 cells x 3 seeds), trained once for the module's tests."""
    folder = tmp_path_factory.mktemp("noise")
    toml = folder / "e.toml"
    toml.write_text(textwrap.dedent(TOML))
    store = folder / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store),
                     env={"MNIST_WORKBENCH_DATA": str(folder / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr
    return toml, store, result.stdout


def stored(store):
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]


def test_dry_run_lists_the_repeats(sweep):
    toml, _, _ = sweep
    result = run_cli("--headless", str(toml), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert re.search(r"grid\s+12\s+12\s+3, 4, 5", result.stdout), result.stdout


def test_each_repeat_is_its_own_row_and_the_aggregates_are_the_hand_computed_ones(sweep):
    _, store, out = sweep
    rows = stored(store)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert sorted(r["seed"] for r in rows) == [3] * 4 + [4] * 4 + [5] * 4
    cell = [r for r in rows if json.loads(r["config"])["lr"] == 3e-3
            and json.loads(r["config"])["hidden"] == 16]
    accs = [r["test_acc"] for r in cell]
    assert len(set(accs)) == 3  # the seeds really give different runs
    mean = sum(accs) / 3
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / 2)
    half = T_975_2 * std / math.sqrt(3)
    assert f"{100 * mean:.2f} ± {100 * half:.2f}%" in out
    assert f"[{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]" in out
    assert re.search(r"^\| hidden=16 lr=0\.003\s+\| 3 \|", out, re.M)  # n = 3
    # the summary lists every config once, the best marked, each other one placed against it
    table = out.split("grid per config over seeds")[1].split("best config of grid")[0]
    assert table.count("| best ") == 1 and table.count("| hidden=") == 4
    assert table.count("~ best") + table.count("below") == 3


def test_export_summary_rows_and_factor_effects_equal_pandas_group_means(sweep, tmp_path):
    _, store, out = sweep
    target = tmp_path / "summary.csv"
    result = run_cli("--store", str(store), "--export-summary", str(target))  # store only
    assert result.returncode == 0, result.stderr
    assert "exported 4 configs" in result.stdout
    frame = pd.read_csv(target)
    assert len(frame) == 4 and set(frame["test_acc_n"]) == {3}
    runs = pd.DataFrame(stored(store))
    runs["lr"] = [json.loads(c)["lr"] for c in runs["config"]]
    runs["hidden"] = [json.loads(c)["hidden"] for c in runs["config"]]
    by_cell = runs.groupby(["lr", "hidden"])["test_acc"]
    for _, row in frame.iterrows():
        accs = by_cell.get_group((row["lr"], row["hidden"]))
        assert row["test_acc_mean"] == pytest.approx(accs.mean(), abs=1e-12)
        assert row["test_acc_std"] == pytest.approx(accs.std(ddof=1), abs=1e-12)
        half = T_975_2 * accs.std(ddof=1) / math.sqrt(3)
        assert row["test_acc_ci_low"] == pytest.approx(accs.mean() - half, abs=1e-6)
        assert row["test_acc_ci_high"] == pytest.approx(accs.mean() + half, abs=1e-6)
    assert frame["near_best"].sum() >= 1

    from workbench.store import Store
    effects = stats.factor_effects(stats.aggregate(Store(store, readonly=True).runs()))
    for factor in ("lr", "hidden"):
        means = frame.groupby(factor)["test_acc_mean"].mean()
        assert {e.level: e.mean for e in effects.levels[factor]} == pytest.approx(
            means.to_dict(), abs=1e-12)
        for level, value in means.items():  # and the headless table prints the same
            assert re.search(rf"\| {level:g}\s+\|\s+2 \|\s+6 \| {100 * value:.2f} ± ", out) or \
                re.search(rf"\|\s+{level:g}\s+\|\s+2 \|\s+6 \| {100 * value:.2f} ± ", out), level
    assert "largest two-factor interaction, hidden x lr" in out


def test_compare_prints_b_minus_a_and_the_right_digits(sweep, registry):
    _, store, _ = sweep
    rows = stored(store)
    a, b = rows[0], rows[-1]
    result = run_cli("--store", str(store), "--compare", str(a["id"]), str(b["id"]))
    assert result.returncode == 0, result.stderr
    labels = data.resolve("mnist-sample", registry).test_labels
    pa = np.frombuffer(a["predictions"], dtype=np.uint8)
    pb = np.frombuffer(b["predictions"], dtype=np.uint8)
    want = np.zeros((10, 10), int)
    np.add.at(want, (labels, pb), 1)
    np.add.at(want, (labels, pa), -1)
    assert (want == np.array(json.loads(b["confusion"])) - np.array(json.loads(a["confusion"]))
            ).all()
    table = [line for line in result.stdout.splitlines() if re.match(r"\| \d ", line)]
    shown = [[0 if v.strip() == "." else int(v) for v in line.strip("|").split("|")[1:]]
             for line in table]
    assert shown == want.tolist()
    b_only = np.flatnonzero((pb == labels) & (pa != labels))
    a_only = np.flatnonzero((pa == labels) & (pb != labels))
    assert f"B right, A wrong: {len(b_only)} test digits; A right, B wrong: {len(a_only)}" \
        in result.stdout
    listed = re.search(r"B right, A wrong \(test indices\): ([\d, ]+)", result.stdout).group(1)
    assert [int(i) for i in listed.rstrip(", ").split(", ")] == b_only[:20].tolist()
    diff = stats.confusion_diff(labels, a["predictions"], b["predictions"])
    assert diff.b_only == b_only.tolist() and diff.a_only == a_only.tolist()


def test_compare_names_a_missing_run(sweep):
    _, store, _ = sweep
    result = run_cli("--store", str(store), "--compare", "1", "99")
    assert result.returncode == 2
    assert f"run B = 99: no run with that id in {store}" in result.stderr


def test_export_summary_to_a_folder_is_refused_and_the_store_untouched(sweep, tmp_path):
    _, store, _ = sweep
    before = store.read_bytes()
    result = run_cli("--store", str(store), "--export-summary", str(tmp_path))
    assert result.returncode == 2
    assert f"--export-summary {tmp_path}: is a folder; give a file path" in result.stderr
    assert store.read_bytes() == before

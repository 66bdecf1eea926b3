"""workbench.stats on real SQLite stores: intervals, overlap marks, factor effects, diffs."""

from __future__ import annotations

import itertools
import math

import pytest

from workbench import stats
from workbench.store import Store
from workbench.types import DONE, FAILED, EpochMetrics, RunResult, RunSpec

BASE = dict(model="baseline_mlp", dataset="mnist-sample", lr=1e-3, hidden=16,
            activation="relu", dropout=0.0, epochs=1, batch_size=128, optimizer="adam")


def put(store: Store, experiment: str, config: dict, test_acc: float, val_acc: float,
        status: str = DONE) -> int:
    """One finished run with these accuracies, written as the engine writes it."""
    run = RunSpec(experiment, 0, config, "")
    run_id = store.start_run(run, "mnist-sample", "cpu")
    epochs = (EpochMetrics(1, 0.5, 0.4, val_acc, val_acc, 1, 0.1),)
    store.finish_run(run_id, RunResult(status, epochs, test_acc=test_acc, test_loss=0.3))
    return run_id


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764),
                                         (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_the_printed_table(df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_summary_of_one_value_has_no_interval():
    one = stats.summarize([0.97])
    assert (one.n, one.mean, one.std, one.low, one.high) == (1, 0.97, None, None, None)
    assert one.overlaps(stats.summarize([0.9, 0.95])) is None


def test_overlap_marks_on_a_constructed_store(tmp_path):
    """best: 0.970 ± small; near: overlaps it; far: clearly below; single: n = 1."""
    store = Store(tmp_path / "s.sqlite")
    values = {64: [0.970, 0.972, 0.968], 128: [0.966, 0.969, 0.967], 256: [0.950, 0.951, 0.949]}
    for batch, accs in values.items():
        for seed, acc in zip((11, 12, 13), accs):
            put(store, "grid", {**BASE, "batch_size": batch, "seed": seed}, acc, acc - 0.01)
    put(store, "grid", {**BASE, "batch_size": 32, "seed": 11}, 0.960, 0.95)
    put(store, "grid", {**BASE, "batch_size": 32, "seed": 12}, 0.999, 0.99, status=FAILED)

    aggs = {a.config["batch_size"]: a for a in stats.aggregate(store.runs())}
    assert sorted(aggs) == [32, 64, 128, 256]
    assert aggs[32].n == 1, "a failed run does not count"
    assert stats.best(list(aggs.values())).config["batch_size"] == 64
    marks = stats.indistinguishable(list(aggs.values()))
    assert marks[aggs[64].key] is True
    assert marks[aggs[128].key] is True  # 0.9673 ± 0.0038 reaches 0.9662..0.9737
    assert marks[aggs[256].key] is False
    assert marks[aggs[32].key] is None
    # by hand: mean 0.9673333, std 0.0015275, t(0.975, 2) = 4.302653
    s = aggs[128].test_acc
    assert s.mean == pytest.approx(0.9673333333, abs=1e-9)
    assert s.std == pytest.approx(math.sqrt((0.0013333**2 + 0.0016667**2 + 0.0003333**2) / 2),
                                  abs=1e-6)
    assert s.low == pytest.approx(s.mean - 4.302653 * s.std / math.sqrt(3), abs=1e-8)
    assert aggs[128].best_val_acc.mean == pytest.approx(0.9573333333, abs=1e-9)
    assert aggs[128].label == "batch_size=128"
    assert sorted(aggs[64].seeds) == [11, 12, 13]


def test_factor_effects_of_a_known_grid(tmp_path):
    """acc = 0.9 + a(lr) + b(hidden) + interaction only at (lr=0.01, hidden=50)."""
    store = Store(tmp_path / "s.sqlite")
    a = {1e-2: 0.00, 1e-3: 0.02}
    b = {50: 0.00, 100: 0.01, 200: 0.03}
    for (lr, hidden), seed in itertools.product(itertools.product(a, b), (1, 2)):
        bump = -0.012 if (lr, hidden) == (1e-2, 50) else 0.0
        noise = 0.001 if seed == 1 else -0.001
        put(store, "g", {**BASE, "lr": lr, "hidden": hidden, "seed": seed},
            0.9 + a[lr] + b[hidden] + bump + noise, 0.9)
    fx = stats.factor_effects(stats.aggregate(store.runs()))
    assert fx.factors == ("hidden", "lr")
    by = {f: {e.level: e for e in fx.levels[f]} for f in fx.factors}
    assert [e.level for e in fx.levels["lr"]] == [1e-3, 1e-2]
    assert by["lr"][1e-3].mean == pytest.approx(0.9 + 0.02 + 0.04 / 3, abs=1e-12)
    assert by["lr"][1e-2].mean == pytest.approx(0.9 + 0.04 / 3 - 0.004, abs=1e-12)
    assert (by["hidden"][50].cells, by["hidden"][50].runs) == (2, 4)
    # seed noise: every cell is +-0.001, so s = sqrt(2 * 0.001^2 / 1) per cell, pooled the same
    assert fx.noise_df == 6 and fx.noise_std == pytest.approx(math.sqrt(2) * 0.001, rel=1e-9)
    # a level of 3 cells x 2 runs: half width t(0.975, 6) * s * sqrt(3 / 2) / 3
    assert by["lr"][1e-3].half_width == pytest.approx(
        stats.t_quantile(0.975, 6) * math.sqrt(2) * 0.001 * math.sqrt(1.5) / 3, rel=1e-9)
    assert fx.interaction.factors == ("hidden", "lr")
    # the bump at one cell of a 3x2 table leaves residual 0.012 * (1 - 1/3) * (1 - 1/2)
    assert fx.interaction.size == pytest.approx(0.012 * 2 / 3 / 2, abs=1e-12)
    assert fx.interaction.means[(50, 1e-2)] == pytest.approx(0.9 - 0.012, abs=1e-12)


def test_factor_effects_refuse_an_incomplete_grid(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for lr, hidden in ((1e-2, 50), (1e-3, 50), (1e-2, 100)):
        put(store, "g", {**BASE, "lr": lr, "hidden": hidden, "seed": 1}, 0.9, 0.9)
    with pytest.raises(ValueError, match=r"not a full-factorial grid \(1 of 4 cells missing, "
                                         r"e.g. hidden=100 lr=0.001\)"):
        stats.factor_effects(stats.aggregate(store.runs()))


def test_confusion_diff_counts_and_indices():
    labels = [0, 1, 2, 3, 4, 5]
    a = bytes([0, 1, 9, 9, 4, 7])   # right at 0, 1, 4
    b = bytes([0, 8, 2, 9, 4, 5])   # right at 0, 2, 4, 5
    diff = stats.confusion_diff(labels, a, b)
    assert diff.b_only == [2, 5] and diff.a_only == [1] and diff.both_wrong == 1
    ma = stats.confusion_matrix(labels, a, 10)
    mb = stats.confusion_matrix(labels, b, 10)
    assert diff.matrix == [[mb[i][j] - ma[i][j] for j in range(10)] for i in range(10)]
    assert diff.matrix[1][1] == -1 and diff.matrix[1][8] == 1 and diff.matrix[2][9] == -1
    with pytest.raises(ValueError, match="6 test labels but 6 predictions in A and 5 in B"):
        stats.confusion_diff(labels, a, b[:5])

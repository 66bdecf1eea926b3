"""Stacked training gives each run the numbers it gets trained alone (mnist-sample, CPU)."""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
import threading

import pytest
import torch

from tests.conftest import run_cli
from workbench import training
from workbench.formatting import run_name
from workbench.plan import unit_grouper
from workbench.training.stacked import make_streams, train_stacked
from workbench.types import CANCELLED, DIVERGED, DONE, RunSpec

BASE = dict(model="baseline_mlp", dataset="mnist-sample", lr=1e-3, hidden=32,
            activation="relu", dropout=0.0, epochs=2, batch_size=128, seed=3,
            optimizer="adam")
REL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def alone(config, registry, split):
    spec = registry.models[config["model"]]
    return training.train(config, training.build_model(spec.build, config, split), split)


def stacked(configs, registry, split, cancel=None, on_epoch=None):
    """Train ``configs`` as one stack; returns (results by index, EpochEnded per index)."""
    spec = registry.models[configs[0]["model"]]
    models = [training.build_model(spec.build, c, split) for c in configs]
    results, seen = {}, {i: [] for i in range(len(configs))}

    def epoch(i, m):
        seen[i].append(m)
        if on_epoch:
            on_epoch(i, m)

    def finish(i, result):
        assert i not in results, "a run was finished twice"
        results[i] = result

    train_stacked(configs, models, split, on_epoch=epoch, on_finish=finish, cancel=cancel)
    assert sorted(results) == list(range(len(configs))), "every run is finished once"
    return results, seen


def close(a, b):
    return a == pytest.approx(b, rel=REL, abs=0)


def assert_same(got, want):
    """Same run: per-epoch train/val loss and accuracy within 1e-5 relative, same test."""
    assert got.status == want.status == DONE
    assert len(got.epochs) == len(want.epochs)
    for g, w in zip(got.epochs, want.epochs):
        assert close(g.train_loss, w.train_loss), (g, w)
        assert close(g.val_loss, w.val_loss), (g, w)
        assert close(g.val_acc, w.val_acc), (g, w)
        assert (g.best_val_acc, g.best_epoch) == (pytest.approx(w.best_val_acc, rel=REL),
                                                  w.best_epoch)
    assert close(got.test_acc, want.test_acc) and close(got.test_loss, want.test_loss)
    assert got.confusion == want.confusion
    assert got.predictions == want.predictions


@pytest.mark.parametrize("overrides,lrs", [
    (dict(optimizer="adam"), [3e-2, 1e-3, 3e-4]),
    (dict(optimizer="sgd", hidden=50, batch_size=64), [0.1, 0.03, 0.01]),
    (dict(model="deep_mlp", layers=2, hidden=24, activation="tanh", epochs=1), [1e-2, 1e-3]),
])
def test_stacked_runs_match_the_same_runs_trained_one_by_one(registry, sample_split,
                                                               overrides, lrs):
    configs = [{**BASE, **overrides, "lr": lr} for lr in lrs]
    results, seen = stacked(configs, registry, sample_split)
    for i, config in enumerate(configs):
        want = alone(config, registry, sample_split)
        assert_same(results[i], want)
        assert [m.epoch for m in seen[i]] == list(range(1, config["epochs"] + 1))
    # the runs really differ: a stack that mixed members up would not pass the above
    assert len({r.test_acc for r in results.values()}) == len(configs)


def test_prefix_shared_cell_equals_a_separately_trained_run(registry, sample_split):
    configs = [{**BASE, "epochs": e, "lr": lr} for lr in (1e-3, 3e-3) for e in (3, 1, 2)]
    spec = registry.models["baseline_mlp"]
    streams = make_streams(configs, [training.build_model(spec.build, c, sample_split)
                                     for c in configs])
    assert [len(s.runs) for s in streams] == [3, 3]  # two trainings of 3 epochs, not six
    results, seen = stacked(configs, registry, sample_split)
    for i, config in enumerate(configs):
        assert len(seen[i]) == config["epochs"]
        assert_same(results[i], alone(config, registry, sample_split))
    # the 1-epoch cell was evaluated at epoch 1, not at the end of its stream
    assert results[1].test_acc != results[0].test_acc


def test_prefix_sharing_is_not_applied_when_the_model_depends_on_epochs(registry,
                                                                         sample_split):
    from workbench.models import build_mlp

    def build(config, n_in, n_out):  # a plugin whose init reads the total epochs
        torch.manual_seed(config["seed"] + config["epochs"])
        return build_mlp(n_in, [config["hidden"]], n_out)

    configs = [{**BASE, "epochs": e} for e in (1, 2)]
    models = [training.build_model(build, c, sample_split) for c in configs]
    assert len(make_streams(configs, models)) == 2  # trained separately: results unchanged


def test_a_diverging_member_is_recorded_and_the_others_finish_as_alone(registry,
                                                                       sample_split):
    configs = [{**BASE, "optimizer": "sgd", "lr": lr, "epochs": 2} for lr in (0.05, 1e5, 0.1)]
    results, seen = stacked(configs, registry, sample_split)
    solo = alone(configs[1], registry, sample_split)
    assert solo.status == DIVERGED  # alone, lr 1e5 diverges too
    assert results[1].status == DIVERGED and "lr 100000" in results[1].error
    assert results[1].test_acc is None and len(seen[1]) < 2
    for i in (0, 2):
        assert_same(results[i], alone(configs[i], registry, sample_split))


def test_cancel_stops_the_whole_group_within_one_batch(registry, sample_split):
    cancel = threading.Event()
    configs = [{**BASE, "lr": lr, "epochs": 3} for lr in (1e-3, 3e-3)]
    results, seen = stacked(configs, registry, sample_split, cancel=cancel,
                            on_epoch=lambda i, m: cancel.set())
    for i in range(2):
        assert results[i].status == CANCELLED
        assert "epoch 2, batch 1/" in results[i].error
        assert len(results[i].epochs) == len(seen[i]) == 1


def spec(index, **config):
    return RunSpec("e", index, {**BASE, **config}, f"run{index}")


def test_grouping_rules():
    group = unit_grouper(True)
    pending = [spec(0), spec(1, lr=3e-3), spec(2, batch_size=64), spec(3, hidden=16),
               spec(4, epochs=5), spec(5, lr=3e-3, epochs=1), spec(6, seed=4),
               spec(7, optimizer="sgd"), spec(8, activation="tanh"), spec(9, dropout=0.5)]
    assert [r.index for r in group(pending)] == [0, 1, 4, 5, 6]  # only lr/epochs/seed differ
    assert [r.index for r in group(pending[2:])] == [2]  # another batch size: alone
    assert [r.index for r in group([spec(9, dropout=0.5), spec(10, dropout=0.5, lr=1e-2)])
            ] == [9]  # dropout masks come from the global RNG: never stacked
    assert [r.index for r in unit_grouper(False)(pending)] == [0]


TOML = """
title = "stacked"
[defaults]
dataset = "mnist-sample"
hidden = 16
batch_size = 256
seed = 5

[[experiment]]
name = "grid"
[experiment.grid]
lr = [1e-3, 3e-3]
epochs = [1, 2]
batch_size = [128, 256]

[[experiment]]
name = "same-as-a-cell"
lr = 1e-3
epochs = 2
"""


def test_headless_cli_stores_every_run_once_with_its_epochs(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(textwrap.dedent(TOML))
    runs = {}
    for mode in ("stack", "no-stack"):
        store = tmp_path / f"{mode}.sqlite"
        args = ["--headless", str(path), "--store", str(store)]
        proc = run_cli(*args, *(["--no-stack"] if mode == "no-stack" else []),
                       env={"OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr + proc.stdout
        epoch_lines = re.findall(r"epoch (\d+)/(\d+): .* \| (.+)$", proc.stdout, re.M)
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT r.label, r.experiment, r.status, r.attempts, r.config, "
                              "r.test_acc, r.confusion, (SELECT COUNT(*) FROM epochs e "
                              "WHERE e.run_id = r.id) FROM runs r").fetchall()
        assert len(rows) == 9 and len({(r[0], r[1]) for r in rows}) == 9
        for label, experiment, status, attempts, config, *_, n_epochs in rows:
            want = json.loads(config)["epochs"]
            assert (status, attempts, n_epochs) == (DONE, 1, want)
            name = run_name(experiment, label)  # a one-run experiment is named once
            assert sum(1 for *_, who in epoch_lines if who == name) == want, name
        runs[mode] = {(r[0], r[1]): (r[5], r[6]) for r in rows}
    # stacked and one-by-one store the same test accuracy and confusion matrix per run
    for key, (acc, confusion) in runs["stack"].items():
        assert runs["no-stack"][key][1] == confusion
        assert close(acc, runs["no-stack"][key][0])
    # run again: everything is skipped, nothing is trained twice
    again = run_cli("--headless", str(path), "--store", str(tmp_path / "stack.sqlite"),
                    env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0 and again.stdout.count("[skip]") == 9


def test_a_group_of_short_epochs_still_reports_batch_progress(registry, sample_split):
    """As in training.train: the per-batch report is paced across epochs (see
    test_training's short-epoch test), for every member."""
    import time

    from tests.test_training import WATCHED_SECONDS, short_epochs_split

    split = short_epochs_split(sample_split)
    cancel, reports, epoch_ends = threading.Event(), [], []
    configs = [{**BASE, "hidden": 8, "batch_size": 64, "epochs": 100_000, "lr": lr}
               for lr in (1e-3, 3e-3)]
    models = [training.build_model(registry.models["baseline_mlp"].build, c, split)
              for c in configs]

    def on_epoch(i, m):  # the first epoch carries torch's warm-up: time from its end
        if i == 0:
            epoch_ends.append(time.perf_counter())
        if epoch_ends[-1] - epoch_ends[0] > WATCHED_SECONDS:
            cancel.set()

    train_stacked(configs, models, split, on_epoch=on_epoch, on_finish=lambda i, r: None,
                  on_batch=lambda i, *a: reports.append((i, a)), cancel=cancel)
    durations = sorted(b - a for a, b in zip(epoch_ends, epoch_ends[1:]))
    assert durations[len(durations) // 2] < training.PROGRESS_SECONDS / 5
    for member in (0, 1):
        watched = [a for i, a in reports if i == member and a[0] >= 2]
        assert 3 <= len(watched) <= WATCHED_SECONDS / training.PROGRESS_SECONDS + 1, reports


def test_cancelling_one_member_leaves_the_others_training_as_if_alone(registry, sample_split,
                                                                    monkeypatch):
    """Run 0 is cancelled at its first progress report; run 1 (another lr) and run 2 (a
    shorter run sharing run 0's stream: an epoch prefix) train on, with the numbers they
    get alone."""
    import workbench.training.stacked as stacked_module
    monkeypatch.setattr(stacked_module, "PROGRESS_SECONDS", 0.0)  # a report every batch,
    # however fast this machine trains (the check rides on the progress reports)
    configs = [dict(BASE, epochs=3), dict(BASE, lr=3e-3), dict(BASE, epochs=1)]
    spec = registry.models[BASE["model"]]
    models = [training.build_model(spec.build, c, sample_split) for c in configs]
    results = {}
    asked = []

    def cancelled(i):
        asked.append(i)
        return i == 0

    train_stacked(configs, models, sample_split, on_epoch=lambda i, m: None,
                  on_finish=lambda i, r: results.setdefault(i, r), cancelled=cancelled)
    assert sorted(results) == [0, 1, 2] and 0 in asked
    assert results[0].status == CANCELLED
    assert re.match(r"cancelled in epoch \d+, batch \d+/\d+", results[0].error)
    assert_same(results[1], alone(configs[1], registry, sample_split))
    assert_same(results[2], alone(configs[2], registry, sample_split))

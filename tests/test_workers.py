"""The pool of training processes (--workers N): the same store as one worker, longest units
first, a killed worker's unit recorded failed while the others train on, and Ctrl-C with
several units in flight recording each. Real spawned processes, the real CLI, real SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import textwrap
from pathlib import Path

import pytest

from conftest import SIGINT_DEFAULT, run_cli
from test_interruptions import Lines, finish_lines, integrity, rows, start_cli, toml_with
from workbench import events as ev
from workbench.executors.process import ProcessExecutor
from workbench.plan import ADAM_SAMPLES, STEP_FIXED, unit_cost, unit_grouper
from workbench.runner import Runner, Settings
from workbench.session import open_session
from workbench.store import Store
from workbench.types import RunSpec

# Units of different cost: stacked lr pairs at three widths, and lone runs of 1-3 epochs.
STUDY = """
[defaults]
dataset = "mnist-sample"
epochs = 2
batch_size = 256
seed = 7
[[experiment]]
name = "widths"
[experiment.grid]
hidden = [8, 32, 16]
lr = [1e-3, 3e-3]
[[experiment]]
name = "lengths"
hidden = 12
[experiment.grid]
epochs = [1, 3, 2]
seed = [1, 2, 3]
"""


def store_contents(path: Path) -> dict:
    """Everything a run's numbers are, by (experiment, config): status, every epoch's
    metrics, test accuracy and loss, confusion matrix and per-image predictions."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        out = {}
        for row in db.execute("SELECT * FROM runs"):
            epochs = [tuple(e) for e in db.execute(
                "SELECT epoch, train_loss, val_loss, val_acc, best_val_acc FROM epochs "
                "WHERE run_id=? ORDER BY epoch", (row["id"],))]
            out[(row["experiment"], row["config_hash"])] = (
                row["status"], row["attempts"], epochs, row["test_acc"], row["test_loss"],
                row["confusion"], row["predictions"])
        return out


def test_n_workers_give_the_store_of_one_worker_and_train_longest_units_first(tmp_path):
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(STUDY))
    one, three = tmp_path / "one.sqlite", tmp_path / "three.sqlite"
    first = run_cli("--headless", str(toml), "--store", str(one), "--device", "cpu",
                    "--workers", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    many = run_cli("--headless", str(toml), "--store", str(three), "--device", "cpu",
                   "--workers", "3")
    assert many.returncode == 0, many.stdout + many.stderr

    a, b = store_contents(one), store_contents(three)
    assert len(a) == 15 and all(v[0] == "done" and v[1] == 1 for v in a.values())
    assert all(v[5] and v[6] for v in a.values())  # confusion and predictions stored
    assert a == b  # bitwise: floats compared exactly

    # one worker keeps the file's order (the pool's balance is not needed)
    starts = [line[len("[start] "):line.index(" on cpu")] for line in first.stdout.splitlines()
              if line.startswith("[start]")]
    assert [s.split(":")[0] for s in starts] == ["widths"] * 6 + ["lengths"] * 9, starts
    assert [s.split("hidden=")[1][:2] for s in starts[:6]] == ["8 "] * 2 + ["32"] * 2 + [
        "16"] * 2, starts

    # three workers: units overlapped in time
    with sqlite3.connect(three) as db:
        spans = sorted(db.execute("SELECT started_at, finished_at FROM runs"))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])
               if later[0] != earlier[0]), spans  # stacked members start together


def test_a_pool_takes_the_costliest_unit_first(tmp_path):
    """Cost is per step (1 / batch size of them per sample): each stream's parameters x
    (batch + ADAM_SAMPLES), plus STEP_FIXED while the longest stream trains. The 9 stacked
    "lengths" runs (3 seeds whose 1- and 2-epoch runs are prefixes of the 3-epoch one: three
    streams of 3 epochs) first, then the stacked lr pairs (2 streams of 2 epochs) widest
    first."""
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(STUDY))
    pending = list(open_session(toml).runs)
    group, units = unit_grouper(True, workers=3, longest_first=True), []
    while pending:
        unit = group(pending)
        units.append(sorted({f"{r.experiment} {r.config['hidden']}" for r in unit}) + [len(unit)])
        pending = [r for r in pending if r not in unit]
    assert units == [["lengths 12", 9], ["widths 32", 2], ["widths 16", 2], ["widths 8", 2]]
    pair = open_session(toml).runs[:2]  # hidden 8, two lrs, 2 epochs, batch 256
    assert unit_cost(pair) == pytest.approx(
        (2 * 2 * (784 * 8 + 8 * 10) * (256 + ADAM_SAMPLES) + 2 * STEP_FIXED) / 256)
    # the same runs in batches of 64: four times the steps, each a little cheaper
    small = [RunSpec(r.experiment, r.index, {**r.config, "batch_size": 64}, r.label)
             for r in pair]
    assert unit_cost(small) > 1.5 * unit_cost(pair)
    in_order = unit_grouper(True, workers=1)
    assert [r.config["hidden"] for r in in_order(list(open_session(toml).runs))] == [8, 8]


LONG_AND_SHORT = """
[defaults]
dataset = "mnist-sample"
hidden = 16
batch_size = 64
[[experiment]]
name = "long"
epochs = 300
[[experiment]]
name = "short"
epochs = 1
[experiment.grid]
seed = [1, 2, 3, 4, 5, 6]
"""


def test_a_killed_worker_fails_its_unit_once_while_the_other_workers_train_on(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(textwrap.dedent(LONG_AND_SHORT))
    session = open_session(path)
    store = Store(tmp_path / "s.sqlite")
    executor, killed = ProcessExecutor(2), []

    def sink(event):
        if (isinstance(event, ev.EpochEnded) and event.run.experiment == "long"
                and event.metrics.epoch == 2 and not killed):
            pid = executor.pid_training(event.run.run_id)
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    runner = Runner(session.registry, store, sink, Settings(device="cpu"), executor,
                    group=unit_grouper(False, workers=2, longest_first=True))
    runner.submit(session.runs)
    runner.start(drain=True)
    assert runner.join(300)
    assert killed and killed[0] not in executor.pids  # its slot started a new child

    runs = store.runs()
    assert len(runs) == 7  # every run once: none lost, none twice
    by_exp = {}
    for row in runs:
        by_exp.setdefault(row["experiment"], []).append(row)
    (long_,) = by_exp["long"]
    assert long_["status"] == "failed" and long_["attempts"] == 1
    assert "training process died (killed by signal 9)" in store.run(long_["id"])["error"]
    assert 2 <= len(store.epochs(long_["id"])) < 300  # what it reported is kept
    assert [r["status"] for r in by_exp["short"]] == ["done"] * 6
    assert all(r["attempts"] == 1 and r["test_acc"] > 0.3 for r in by_exp["short"])
    assert runner.counts == {"failed": 1, "done": 6}
    assert store.integrity_check() == "ok"


def test_ctrl_c_with_several_units_in_flight_records_each(tmp_path):
    toml = toml_with(tmp_path, lrs=5, epochs=200, hidden=16, batch=64)
    store = tmp_path / "results.sqlite"
    proc = start_cli("--headless", str(toml), "--store", str(store), "--no-stack",
                     "--device", "cpu", "--workers", "3", prefix=SIGINT_DEFAULT)
    out = Lines(proc)
    for lr in ("0.001", "0.002", "0.003"):  # three runs training at once
        assert out.wait_for(f"| sweep: lr={lr}\n", 1, timeout=120), out.text()
    proc.send_signal(signal.SIGINT)
    code, text, err = finish_lines(proc, out, timeout=90)

    assert code == 130, text + err
    assert "Traceback" not in text + err
    assert "rerun the same command to resume" in text
    first = rows(store)  # the two runs not started have no row: the next sweep trains them
    assert [r["status"] for r in first] == ["cancelled"] * 3, first
    assert all(r["error"].startswith("cancelled in epoch ") and r["n_epochs"] >= 1
               and r["attempts"] == 1 for r in first)
    assert len({r["config_hash"] for r in first}) == 3
    assert integrity(store) == "ok"


def test_a_bad_worker_count_is_refused_before_the_store_is_touched(tmp_path):
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(STUDY).replace("[defaults]", "workers = 0\n[defaults]"))
    store = tmp_path / "s.sqlite"
    bad_file = run_cli("--headless", str(toml), "--store", str(store))
    assert bad_file.returncode == 2
    assert "workers: got 0, expected a whole number of training processes" in bad_file.stderr
    toml.write_text(textwrap.dedent(STUDY))
    bad_env = run_cli("--headless", str(toml), "--store", str(store),
                      env={"MNIST_WORKBENCH_WORKERS": "all"})
    assert bad_env.returncode == 2
    assert "$MNIST_WORKBENCH_WORKERS: got 'all'" in bad_env.stderr
    assert not store.exists()


def test_a_pool_shares_the_memory_budget_among_its_workers(tmp_path, monkeypatch):
    """Stacks are sized so that every worker's stack at once fits the budget: with a budget
    of 8 streams, one worker stacks 8 lrs, four workers 2 each."""
    import workbench.plan as plan

    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 64
        [[experiment]]
        name = "lrs"
        [experiment.grid]
        lr = [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3]
        """))
    runs = list(open_session(toml).runs)
    monkeypatch.setattr(plan, "memory_budget", lambda: 8 * plan.stream_bytes(runs[0].config))
    assert len(unit_grouper(True, workers=1)(runs)) == 8
    assert len(unit_grouper(True, workers=4, longest_first=True)(runs)) == 2
    assert len(unit_grouper(True, workers=16)(runs)) == 1  # never less than one run


def test_runs_of_a_model_that_never_stacks_are_units_of_their_own(tmp_path):
    """small_cnn declares stackable=False: its lr grid is three units (the pool trains them
    at once), not one unit trained run after run by one worker (while the others idled and
    the queue showed all three running); the MLP's grid is still one stack. --dry-run says
    why."""
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        [[experiment]]
        name = "cnn"
        model = "small_cnn"
        [experiment.grid]
        lr = [1e-3, 2e-3, 3e-3]
        [[experiment]]
        name = "mlp"
        [experiment.grid]
        lr = [1e-3, 2e-3, 3e-3]
        """))
    session = open_session(toml)
    group = unit_grouper(True, workers=2, models=session.registry.models)
    cnn = [r for r in session.runs if r.experiment == "cnn"]
    mlp = [r for r in session.runs if r.experiment == "mlp"]
    assert [len(group(cnn[i:])) for i in range(3)] == [1, 1, 1]
    assert group(mlp) == mlp
    dry = run_cli("--headless", str(toml), "--dry-run")
    assert "cnn: trains alone: model 'small_cnn' never stacks (its ModelSpec says " \
           "stackable=False)" in dry.stdout, dry.stdout

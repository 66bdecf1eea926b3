"""A rerun never destroys a finished result: every attempt at a run is kept, and the run shows
its latest done attempt until a new one finishes done. Each way a rerun can end badly (Ctrl-C,
a failure, divergence, kill -9) through the real command line on a real store."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from conftest import ROOT, SIGINT_DEFAULT, run_cli

# Faults on demand, chosen by WB_FAULT, so the rerun trains the very same run as the first
# (same config, same hash) and then ends the way a test asks.
FAULTS = '''
import os
import signal

import torch
from workbench import ModelSpec, hookimpl

FAULT = os.environ.get("WB_FAULT", "")


class Net(torch.nn.Module):
    def __init__(self, in_features, num_classes, hidden):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, num_classes))

    def forward(self, x):
        out = self.net(x)
        return out * float("nan") if FAULT == "nan" and self.training else out


@hookimpl
def register_models(register):
    register(ModelSpec(name="net", build=lambda c, i, n: Net(i, n, int(c["hidden"])),
                       description="an MLP that diverges when asked"))


@hookimpl
def on_epoch_ended(run, metrics):
    if metrics.epoch != 1:
        return
    if FAULT == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
    elif FAULT == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif FAULT == "fail":
        raise RuntimeError("the rerun broke after epoch 1")
'''

STUDY = """
[defaults]
dataset = "mnist-sample"
model = "net"
hidden = 16
epochs = 3
batch_size = 256
seed = 4

[[experiment]]
name = "kept"
"""

RESULT = ("status", "error", "test_acc", "best_val_acc", "best_epoch", "epochs_done",
          "confusion", "predictions", "train_seconds", "device", "started_at", "finished_at")


def row(store: Path) -> dict:
    with closing(sqlite3.connect(store)) as db:
        db.row_factory = sqlite3.Row
        (r,) = db.execute("SELECT * FROM runs").fetchall()
        epochs = db.execute("SELECT * FROM epochs ORDER BY epoch").fetchall()
        return {**{k: r[k] for k in (*RESULT, "attempts")}, "epochs": [tuple(e) for e in epochs]}


@pytest.fixture(scope="module")
def done_study(tmp_path_factory) -> Path:
    """A study whose one run is done in its store (trained once for the whole module)."""
    folder = tmp_path_factory.mktemp("done")
    (folder / "plugins").mkdir()
    (folder / "plugins" / "faults.py").write_text(FAULTS)
    (folder / "study.toml").write_text(textwrap.dedent(STUDY))
    proc = run_cli("--headless", "study.toml", "--store", "s.sqlite", "--device", "cpu",
                   cwd=folder, env={"MNIST_WORKBENCH_DATA": str(folder / "cache")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder


@pytest.fixture
def study(done_study, tmp_path) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(done_study, folder)
    return folder


def rerun(folder: Path, fault: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "WB_FAULT": fault}
    return subprocess.run([*SIGINT_DEFAULT, sys.executable, "-m", "workbench.cli", "--headless",
                           "study.toml", "--store", "s.sqlite", "--device", "cpu", "--rerun"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fault, code, status, epochs", [
    ("sigint", 130, "cancelled", 1),  # Ctrl-C during the rerun
    ("fail", 1, "failed", 1),
    ("nan", 0, "diverged", 0),
    ("kill", -signal.SIGKILL, "interrupted", 1),  # kill -9; the next open marks it
])
def test_a_rerun_that_ends_badly_keeps_the_finished_result(study, fault, code, status, epochs):
    from workbench.store import Store

    store = study / "s.sqlite"
    before = row(store)
    assert before["status"] == "done" and before["test_acc"] > 0.5 and len(before["epochs"]) == 3

    proc = rerun(study, fault)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    opened = Store(store)  # what the next sweep or the app does first (marks kill -9)
    try:
        after = row(store)
        assert {**after, "attempts": 1} == before  # the done result, epochs and all, as it was
        assert after["attempts"] == 2
        attempts = opened.attempts(opened.runs()[0]["id"])
        assert [(a["number"], a["status"], a["shown"]) for a in attempts] == [
            (1, "done", True), (2, status, False)]
        assert attempts[0]["test_acc"] == before["test_acc"]
        assert attempts[1]["test_acc"] is None and attempts[1]["error"]
        assert len(opened.attempt_epochs(opened.runs()[0]["id"], 2)) == epochs
        assert len(opened.attempt_epochs(opened.runs()[0]["id"], 1)) == 3
    finally:
        opened.close()
    if fault == "fail":  # the summary says the run is done, on its second attempt
        assert "[failed] kept | " in proc.stdout
        summary = proc.stdout.split("kept (1 runs)")[1]
        assert "  kept\n    done | 2 attempts (latest failed) |" in summary  # piped layout

    if fault == "sigint":  # done stays done: the next sweep trains nothing again
        again = run_cli("--headless", "study.toml", "--store", "s.sqlite", "--device", "cpu",
                        cwd=study)
        assert again.returncode == 0 and "[skip] kept" in again.stdout, again.stdout + again.stderr


def test_a_rerun_that_finishes_done_becomes_the_result_and_the_first_is_kept(study):
    from workbench.store import Store

    store = study / "s.sqlite"
    before = row(store)
    proc = run_cli("--headless", "study.toml", "--store", "s.sqlite", "--device", "cpu",
                   "--rerun", "--only", "kept", cwd=study)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = row(store)
    assert after["status"] == "done" and after["attempts"] == 2
    assert after["started_at"] > before["finished_at"]  # the new attempt is shown
    assert after["test_acc"] == pytest.approx(before["test_acc"])  # same seed, same result
    opened = Store(store, readonly=True)
    run_id = opened.runs()[0]["id"]
    attempts = opened.attempts(run_id)
    assert [(a["status"], a["shown"]) for a in attempts] == [("done", False), ("done", True)]
    assert attempts[0]["finished_at"] == before["finished_at"]
    assert [e["val_acc"] for e in opened.attempt_epochs(run_id, 1)] == [
        e[4] for e in before["epochs"]]
    opened.close()

"""Shared fixtures: real plugins, the shipped mnist-sample, real stores, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A command prefix that runs the command with Ctrl-C at its default: a process started in the
# background by a shell without job control (some CI runners) inherits SIGINT ignored, and
# Python then keeps ignoring it. Tests that send SIGINT start the CLI through this.
SIGINT_DEFAULT = (sys.executable, "-c", "import os, signal, sys; "
                  "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])")

# Tests never touch the network and never read the user's data cache.
os.environ["MNIST_WORKBENCH_OFFLINE"] = "1"
# One training process unless a test asks for more (--workers): output order and what is in
# flight at a Ctrl-C stay the same on any machine. tests/test_workers.py tests the pool.
os.environ["MNIST_WORKBENCH_WORKERS"] = "1"

TINY_TOML = """
title = "tiny"
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 2
batch_size = 256
seed = 3

[[experiment]]
name = "one"

[[experiment]]
name = "small-grid"
[experiment.grid]
lr = [1e-3, 3e-3]
hidden = [8, 16]
"""


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("data-cache")
    monkeypatch.setenv("MNIST_WORKBENCH_DATA", str(cache))
    monkeypatch.setenv("MNIST_WORKBENCH_OFFLINE", "1")


@pytest.fixture
def one_thread():
    """One intra-op thread: with other test processes on the 2 cores, OpenMP's spinning
    threads make small trainings 10-40x slower. Both sides of a comparison use it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry():
    from workbench.plugins import load_plugins
    return load_plugins(entry_points=False)


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(textwrap.dedent(TINY_TOML))
    return path


@pytest.fixture
def sample_split(registry):
    from workbench import data
    raw = data.resolve("mnist-sample", registry)
    return data.make_split(raw, seed=3, device="cpu")


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
    """The real command line, in a subprocess, with this checkout first on the path."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=input)

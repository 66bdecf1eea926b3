"""Identical runs that an experiment produces train once, and the plan says so."""

from __future__ import annotations

from conftest import run_cli
from tiny_study import tiny_study

EXPERIMENTS = '''
[[experiment]]
name = "acts"
kind = "activation_swap"
activations = ["relu", "tanh", "relu"]
[[experiment]]
name = "lrs"
[experiment.grid]
lr = [1e-3, 0.001, 2e-3]
'''


def test_dry_run_and_the_headless_plan_say_which_runs_were_merged(tmp_path):
    toml = tiny_study(tmp_path, EXPERIMENTS)
    dry = run_cli("--headless", str(toml), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    rows = {line.split()[0]: line.split()[1:] for line in dry.stdout.splitlines()[2:]
            if not line.startswith("NOTE")}
    assert rows["acts"] == ["2", "2", "11"] and rows["lrs"] == ["2", "2", "11"]  # runs, epochs, seeds
    notes = [line for line in dry.stdout.splitlines() if line.startswith("NOTE:")]
    assert notes == [
        "NOTE: experiment 'acts': kind 'activation_swap' with activations = ['relu', 'tanh', "
        "'relu'] produced 3 configs, 1 identical to another (activation=relu); each trains "
        "once: 2 runs",
        "NOTE: experiment 'lrs': its grid produced 3 configs, 1 identical to another "
        "(lr=0.001); each trains once: 2 runs"]

    run = run_cli("--headless", str(toml), "--store", str(tmp_path / "s.sqlite"))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("mnist-workbench: 4 runs, 4 epochs")
    assert lines[1:3] == notes
    assert run.stdout.count("[done]") == 4


def test_a_plan_without_repeats_has_no_note(tiny_toml):
    dry = run_cli("--headless", str(tiny_toml), "--dry-run")
    assert dry.returncode == 0 and "NOTE" not in dry.stdout

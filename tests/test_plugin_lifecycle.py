"""A lifecycle plugins can trust, each through the real command line: on_run_finished for every
final status, hooks that cannot change configs, load-time reports of plugin mistakes naming
the plugin, and output that a closed pipe or a plugin's print never turns into a failure."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT, run_cli

# A CSV-logger hook plugin (docs/plugins.md), which also prints, raises in on_run_finished
# for one experiment, changes the config of another, and misspells a hook.
LOGGER = '''
import csv, os
from workbench import hookimpl

LOG = os.environ["LIFECYCLE_LOG"]


@hookimpl
def on_run_started(run, device, dataset):
    print(f"→ started {run.experiment} ✓")  # non-ASCII on an ASCII stdout
    if run.experiment == "mutated":
        run.config["lr"] = 1.0


@hookimpl
def on_run_finished(run, result):
    with open(LOG, "a", newline="") as f:
        csv.writer(f).writerow([run.experiment, result.status, len(result.epochs)])
    if run.experiment == "logged":
        raise RuntimeError("the log server is down")


@hookimpl
def on_epoch_end(run, metrics):  # misspelled: on_epoch_ended
    pass
'''

MISTAKES = '''
import torch
from workbench import DatasetSpec, ModelSpec, RawData, hookimpl


@hookimpl
def register_models(register):
    register({"name": "dict_mlp"})  # not a ModelSpec
    register(ModelSpec(name="nothing_mlp", build=lambda config, n_in, n_out: None))
    register(ModelSpec(name="baseline_mlp", build=lambda c, i, n: None))  # taken


def load(request):
    x = torch.zeros(12, 28, 28, dtype=torch.uint8)
    y = torch.zeros(12, dtype=torch.int64)
    return RawData(name="tensor-digits", train_images=x, train_labels=y, test_images=x,
                   test_labels=y, source="memory", fingerprint="0")


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="tensor-digits", load=load))
'''

SWEEP = """
[defaults]
dataset = "mnist-sample"
hidden = 8
epochs = 1
batch_size = 512

[[experiment]]
name = "logged"

[[experiment]]
name = "mutated"

[[experiment]]
name = "diverges"
lr = 1e6
optimizer = "sgd"

[[experiment]]
name = "empty"
model = "nothing_mlp"
"""


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "logger.py").write_text(LOGGER)
    (folder / "mistakes.py").write_text(MISTAKES)
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(SWEEP))
    return folder, toml, tmp_path / "log.csv"


def test_lifecycle_of_a_sweep_with_plugin_mistakes(tmp_path):
    folder, toml, log = _setup(tmp_path)
    store = tmp_path / "s.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--no-stack",
                   env={"LIFECYCLE_LOG": str(log), "PYTHONIOENCODING": "ascii"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # some runs failed
    assert "Traceback" not in out
    with sqlite3.connect(store) as db:
        rows = {e: (s, err) for e, s, err in db.execute(
            "SELECT experiment, status, error FROM runs")}
    # on_run_finished raising: reported against the plugin, the run stays done
    assert rows["logged"][0] == "done" and rows["logged"][1] is None
    assert f"plugin drop-in {folder / 'logger.py'} raised in on_run_finished: RuntimeError: " \
           "the log server is down" in out and "stays done" in out
    # a hook changing the config: an error naming the plugin, not a silent divergence
    assert rows["mutated"][0] == "failed"
    assert f"plugin drop-in {folder / 'logger.py'} raised in on_run_started: TypeError: a " \
           "run's config is read-only" in rows["mutated"][1]
    # build returning None names the plugin and what was expected
    assert rows["empty"][0] == "failed"
    assert f"plugin drop-in {folder / 'mistakes.py'} raised in building model " \
           "'nothing_mlp': TypeError: build returned NoneType (did it forget to return the " \
           "model?); expected a torch.nn.Module" in rows["empty"][1]
    # on_run_finished fired once per run, for every final status
    finished = sorted(line.split(",")[:2] for line in log.read_text().splitlines())
    assert finished == sorted([["logged", "done"], ["mutated", "failed"],
                               ["diverges", "diverged"], ["empty", "failed"]])
    # mistakes made while loading, each naming the plugin (the later one for a taken name),
    # not called a failure to load: the plugin's other hooks and models work (above)
    assert f"plugin drop-in {folder / 'logger.py'}: @hookimpl 'on_epoch_end' is not a hook " \
           "(did you mean 'on_epoch_ended'?); it is never called (the plugin's other hooks " \
           "are)" in out
    assert f"plugin drop-in {folder / 'mistakes.py'}: register_models: register() got dict" \
        in out
    assert "failed to load" not in out
    assert "expected a workbench.ModelSpec(...)" in out

    # a data set returning tensors instead of numpy arrays
    proc = run_cli("--headless", str(toml), "--store", str(store), "--dataset",
                   "tensor-digits", "--only", "logged", env={"LIFECYCLE_LOG": str(log)})
    assert proc.returncode == 1
    assert f"data set 'tensor-digits' (drop-in {folder / 'mistakes.py'}): RawData." \
           "train_images is torch.Tensor; expected a numpy array" in proc.stdout


def test_hook_only_plugins_are_listed_and_a_missing_plugin_folder_is_bad_input(tmp_path):
    folder, _, _ = _setup(tmp_path)
    listing = run_cli("--list-plugins", "--plugins", str(folder),
                      env={"LIFECYCLE_LOG": "x"})
    assert listing.returncode == 0, listing.stderr
    assert f"hooks       logger.py         drop-in {folder / 'logger.py'}" in listing.stdout
    assert "on_run_started, on_run_finished" in listing.stdout
    assert "callback    cosine" in listing.stdout
    assert "model 'baseline_mlp' is already registered by built-in workbench_plugins.baseline_mlp; " \
           "ignored" in listing.stdout
    missing = run_cli("--list-plugins", "--plugins", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert f"--plugins {tmp_path / 'nowhere'}: folder does not exist" in missing.stderr


def test_output_piped_into_head_ends_quietly_and_the_run_is_cancelled_not_failed(tmp_path):
    folder, toml, log = _setup(tmp_path)
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 64
        [[experiment]]
        name = "long"
        epochs = 50
    """))
    store = tmp_path / "s.sqlite"
    env = {"LIFECYCLE_LOG": str(log), "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1"}
    cmd = (f"{sys.executable} -m workbench.cli --headless {toml} --store {store} "
           f"--plugins {folder} | head -2")
    proc = subprocess.run(["bash", "-c", f"{cmd}; echo rc=${{PIPESTATUS[0]}}"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.stderr == ""  # no BrokenPipeError, no traceback
    assert proc.stdout.splitlines()[-1] == "rc=141"
    with sqlite3.connect(store) as db:
        status, epochs = db.execute("SELECT status, epochs_done FROM runs").fetchone()
    assert status == "cancelled" and epochs < 50  # stopped soon, as Ctrl-C would
    assert log.read_text().split(",")[:2] == ["long", "cancelled"]  # on_run_finished too


def test_built_in_plugins_import_only_the_public_api():
    import workbench

    for path in sorted((ROOT / "plugins").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                assert not any(n.startswith("workbench") for n in names), (path, names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "workbench"):
                assert node.module == "workbench", f"{path.name} imports {node.module}"
                private = [a.name for a in node.names if a.name not in workbench.__all__]
                assert not private, f"{path.name} imports {private}, not in workbench.__all__"

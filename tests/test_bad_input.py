"""Bad input through the real command line: a clear message naming the file, experiment, key
and value, what would be valid, exit code 2, and the results store left exactly as it was."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

GOOD = """
[defaults]
dataset = "mnist-sample"
hidden = 8
epochs = 1

[[experiment]]
name = "ok"
"""

# (case id, experiments.toml text or None for GOOD, extra flags, substrings the message names)
# In the flags, {toml} is the experiments file, {store} the results store, {tmp} the folder.
CASES = [
    ("not-toml", 'title = \n[[experiment]]\nname = "a"\n', [],
     ["not valid TOML", "line 1, column 9", "line 1 reads: 'title ='"]),
    ("not-toml-line-3", '[[experiment]]\nname = "a"\nlr = 0.1.2\n', [],
     ["not valid TOML", "line 3", "lr = 0.1.2"]),
    ("unknown-top-key", 'tilte = "x"\n[[experiment]]\nname = "a"\n', [],
     ["unknown top-level key 'tilte'", "did you mean 'title'"]),
    ("unknown-experiment-key", '[[experiment]]\nname = "a"\nepoch = 3\n', [],
     ["experiment 'a'", "unknown key 'epoch'", "did you mean 'epochs'"]),
    ("unknown-defaults-key", '[defaults]\nbatchsize = 64\n[[experiment]]\nname = "a"\n', [],
     ["[defaults] unknown key 'batchsize'", "did you mean 'batch_size'"]),
    ("lr-wrong-type", '[[experiment]]\nname = "a"\nlr = "fast"\n', [],
     ["experiment 'a'", "lr: got 'fast' (str), expected a number > 0"]),
    ("epochs-float", '[[experiment]]\nname = "a"\nepochs = 2.5\n', [],
     ["experiment 'a'", "epochs: got 2.5 (float), expected an integer >= 1"]),
    ("lr-zero", '[[experiment]]\nname = "a"\nlr = 0\n', [],
     ["experiment 'a'", "lr: got 0, expected a number > 0"]),
    ("lr-negative-default", '[defaults]\nlr = -0.1\n[[experiment]]\nname = "a"\n', [],
     ["[defaults] lr: got -0.1, expected a number > 0"]),
    ("batch-zero", '[[experiment]]\nname = "a"\nbatch_size = 0\n', [],
     ["batch_size: got 0, expected an integer >= 1"]),
    ("epochs-zero", '[[experiment]]\nname = "a"\nepochs = 0\n', [],
     ["epochs: got 0, expected an integer >= 1"]),
    ("hidden-zero", '[[experiment]]\nname = "a"\nhidden = 0\n', [],
     ["hidden: got 0, expected an integer >= 1"]),
    ("dropout-one", '[[experiment]]\nname = "a"\ndropout = 1.0\n', [],
     ["dropout: got 1.0, expected a number >= 0 and < 1"]),
    ("dropout-negative-in-grid", '[[experiment]]\nname = "a"\n[experiment.grid]\n'
     'dropout = [0.0, -0.1]\n', [], ["grid.dropout: got -0.1, expected a number >= 0 and < 1"]),
    ("unknown-activation", '[[experiment]]\nname = "a"\nactivation = "swish"\n', [],
     ["activation: unknown activation 'swish'",
      "available: gelu, leaky_relu, relu, sigmoid, tanh"]),
    ("kind-produces-bad-activation", '[[experiment]]\nname = "act"\nkind = "activation_swap"\n'
     'activations = ["relu", "swish"]\n', [],
     ["experiment 'act'", "kind 'activation_swap' with activations = ['relu', 'swish']",
      "unknown activation 'swish'", "available: gelu, leaky_relu, relu, sigmoid, tanh"]),
    ("kind-cannot-use-options", '[[experiment]]\nname = "act"\nkind = "activation_swap"\n'
     'activations = 3\n', [],
     ["experiment 'act'", "could not use activations = 3", "its options: activations"]),
    ("dropout-kind-p-1.5", '[[experiment]]\nname = "d"\nkind = "dropout"\np = [0.2, 1.5]\n', [],
     ["experiment 'd'", "p = [0.2, 1.5]", "dropout: got 1.5"]),
    ("empty-grid", '[[experiment]]\nname = "a"\n[experiment.grid]\nlr = []\n', [],
     ["experiment 'a'", "grid.lr: empty list"]),
    ("grid-unknown-key", '[[experiment]]\nname = "a"\n[experiment.grid]\nhidde = [8]\n', [],
     ["grid.hidde: unknown key", "did you mean 'hidden'"]),
    ("grid-not-a-list", '[[experiment]]\nname = "a"\n[experiment.grid]\nlr = 0.1\n', [],
     ["grid.lr: expected a list of values, got 0.1"]),
    ("duplicate-names", '[[experiment]]\nname = "a"\n[[experiment]]\nname = "a"\n', [],
     ["experiment 'a' (#2): name: duplicate experiment name (also experiment #1)"]),
    ("missing-name", '[[experiment]]\nlr = 0.1\n', [],
     ["experiment #1: name: missing or empty"]),
    ("no-experiments", 'title = "nothing"\n', [], ["no experiments"]),
    ("unknown-model", '[[experiment]]\nname = "a"\nmodel = "resnet"\n', [],
     ["model: unknown model 'resnet'", "available: baseline_mlp, deep_mlp"]),
    ("unknown-kind", '[[experiment]]\nname = "a"\nkind = "lr_sweep"\n', [],
     ["kind: unknown experiment kind 'lr_sweep'", "available: activation_swap, dropout"]),
    ("unknown-dataset", '[[experiment]]\nname = "a"\ndataset = "cifar10"\n', [],
     ["dataset: unknown dataset 'cifar10'", "available: fashion-mnist, mnist, mnist-sample"]),
    ("dataset-typo", '[defaults]\ndataset = "mnist-sampel"\n[[experiment]]\nname = "a"\n', [],
     ["[defaults] dataset: unknown dataset 'mnist-sampel'", "did you mean 'mnist-sample'"]),
    ("param-of-other-model", '[[experiment]]\nname = "a"\nlayers = 2\n', [],
     ["experiment 'a'", "layers: not a parameter of model 'baseline_mlp'"]),
    ("plugin-param-wrong-type", '[[experiment]]\nname = "a"\nmodel = "deep_mlp"\n'
     'layers = "3"\n', [], ["layers: got '3' (str), expected an integer"]),
    ("plugin-dir-missing", 'plugin_dirs = ["my_plugins"]\n[[experiment]]\nname = "a"\n', [],
     ["plugin_dirs: folder 'my_plugins' does not exist"]),
    ("executor-unknown", 'executor = "slurm"\n[[experiment]]\nname = "a"\n', [],
     ["executor: got 'slurm', expected one of: local, ray"]),
    # flags
    ("flag-unknown", None, ["--epochs=3"], ["unrecognized arguments: --epochs=3"]),
    ("flag-typo", None, ["--dryrun"], ["unrecognized arguments: --dryrun",
                                       "did you mean --dry-run?"]),
    ("flag-bad-executor", None, ["--executor", "slurm"], ["invalid choice: 'slurm'"]),
    ("file-missing", None, ["--headless", "{tmp}/nope.toml"], ["nope.toml: file not found"]),
    ("file-is-folder", None, ["--headless", "{tmp}"], ["is a folder"]),
    ("store-is-folder", None, ["--store", "{tmp}"], ["--store", "is a folder"]),
    ("store-under-a-file", None, ["--store", "{toml}/results.sqlite"],
     ["is a file, not a folder"]),
    ("store-not-sqlite", None, ["--store", "{toml}"], ["not a results file"]),
    ("store-unwritable", None, ["--store", "/proc/workbench-test/results.sqlite"],
     ["--store /proc/workbench-test/results.sqlite: not writable"]),
    ("only-unknown", None, ["--only", "nope"], ["--only nope: no experiment of that name",
                                                 "experiments: ok"]),
    ("dataset-flag-unknown", None, ["--dataset", "emnist"],
     ["--dataset emnist: unknown data set", "available: fashion-mnist, mnist, mnist-sample"]),
    ("plugins-flag-missing", None, ["--plugins", "{tmp}/no-such-dir"],
     ["--plugins", "no-such-dir: folder does not exist"]),
    ("device-bogus", None, ["--device", "bogus"], ["--device bogus", "use auto, cpu or cuda"]),
    ("export-folder-missing", None, ["--export", "{tmp}/out/results.csv"],
     ["--export", "folder", "does not exist"]),
]


def _store_state(path: Path) -> tuple | None:
    if not path.exists():
        return None
    siblings = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    return path.read_bytes(), path.stat().st_mtime_ns, siblings


@pytest.fixture(scope="module")
def stored_results(tmp_path_factory) -> bytes:
    """A real store holding one finished run, built once; each case gets a copy."""
    from workbench.store import Store
    from workbench.types import DONE, RunResult, RunSpec

    path = tmp_path_factory.mktemp("template") / "results.sqlite"
    store = Store(path)
    run = RunSpec("ok", 0, {"lr": 1e-3, "hidden": 8}, "ok")
    row = store.start_run(run, "mnist-sample", "cpu")
    store.finish_run(row, RunResult(status=DONE, test_acc=0.5, device="cpu"))
    store.close()
    return path.read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(case, tmp_path, stored_results):
    name, text, flags, expected = case
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(GOOD) if text is None else text)
    store = tmp_path / "results" / "results.sqlite"
    store.parent.mkdir()
    store.write_bytes(stored_results)
    os.utime(store, ns=(1_000_000_000, 1_000_000_000))
    fmt = {"toml": str(toml), "store": str(store), "tmp": str(tmp_path)}
    flags = [f.format(**fmt) for f in flags]
    args = flags if ("--headless" in flags) else ["--headless", str(toml), *flags]
    if "--store" not in args:
        args += ["--store", str(store)]
    watched = [store, toml]
    before = [_store_state(p) for p in watched]

    proc = run_cli(*args, cwd=tmp_path, timeout=120)

    message = proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    for fragment in expected:
        assert fragment in message, f"{name}: {fragment!r} not in:\n{message}"
    if text is not None:  # problems in the file name the file
        assert str(toml) in message
    assert "Traceback" not in message + proc.stdout
    assert "[start]" not in proc.stdout  # nothing trained
    assert [_store_state(p) for p in watched] == before  # store (and file) untouched


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sampel"
        lr = -1
        [[experiment]]
        name = "act"
        kind = "activation_swap"
        activations = ["swish"]
        [[experiment]]
        name = "grid"
        epochs = 0
        [experiment.grid]
        hidden = []
        dropout = [1.5]
        [[experiment]]
        name = "m"
        model = "deeep"
    """))
    store = tmp_path / "results.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--only", "nope")
    assert proc.returncode == 2
    problems = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    expected = ["[defaults] dataset: unknown dataset 'mnist-sampel'",
                "[defaults] lr: got -1",
                "experiment 'act': kind 'activation_swap' with activations = ['swish']",
                "experiment 'grid': epochs: got 0",
                "experiment 'grid': grid.hidden: empty list",
                "experiment 'grid': grid.dropout: got 1.5",
                "experiment 'm': model: unknown model 'deeep' (did you mean 'deep_mlp'?)"]
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert f"{len(problems)} problems found, nothing was run" in proc.stderr
    assert len(problems) == len(expected)  # a bad default is reported once, not per experiment
    assert not store.exists()


def test_a_drop_in_plugin_that_fails_to_load_explains_an_unknown_model(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "wide.py").write_text("from workbench import hookimpl\ndef broken(:\n")
    toml = tmp_path / "experiments.toml"
    toml.write_text('[[experiment]]\nname = "w"\nmodel = "wide_mlp"\n')
    proc = run_cli("--headless", str(toml), "--store", str(tmp_path / "r.sqlite"))
    assert proc.returncode == 2
    assert "model: unknown model 'wide_mlp'" in proc.stderr
    assert f"plugin {plugins / 'wide.py'} failed to load: SyntaxError" in proc.stderr


def test_exporting_a_store_that_does_not_exist_creates_nothing(tmp_path):
    store = tmp_path / "results" / "nothing.sqlite"
    proc = run_cli("--store", str(store), "--export", str(tmp_path / "out.csv"))
    assert proc.returncode == 2
    assert f"--store {store}: no results file there yet; run a sweep first" in proc.stderr
    assert not store.parent.exists() and not (tmp_path / "out.csv").exists()

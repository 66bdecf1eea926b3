"""Faults during a sweep are contained: each bad run is recorded with a reason a user can act
on, and the sweep goes on to the next run. Real plugins in a real plugins/ folder, the real
command line, a real store."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

from conftest import run_cli

FAULTY_PLUGIN = '''
import torch
from workbench import ModelSpec, hookimpl


def build_broken(config, in_features, num_classes):
    raise RuntimeError("no weights for you")


class Hungry(torch.nn.Module):
    """Runs out of device memory as soon as it trains (as a too-large batch would)."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.lin = torch.nn.Linear(in_features, num_classes)

    def forward(self, x):
        if self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.lin(x)


class Flaky(Hungry):
    """Fails in its own forward code on the 5th training batch."""

    calls = 0

    def forward(self, x):
        Flaky.calls += self.training
        if Flaky.calls == 5:
            raise ArithmeticError("flaky layer gave up")
        return self.lin(x)


@hookimpl
def register_models(register):
    register(ModelSpec(name="broken_mlp", build=build_broken, description="raises"))
    register(ModelSpec(name="flaky_mlp", build=lambda c, i, n: Flaky(i, n), description=""))
    register(ModelSpec(name="hungry_mlp", build=lambda c, i, n: Hungry(i, n),
                       description="out of memory"))


@hookimpl
def on_run_started(run, device, dataset):
    if run.experiment == "refused":
        raise KeyError("no slot for this run")


@hookimpl
def on_epoch_ended(run, metrics):
    if run.experiment == "hooked" and metrics.epoch == 2:
        raise ValueError(f"refusing epoch {metrics.epoch}")
'''

SWEEP = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 1
batch_size = 256
seed = 3

[[experiment]]
name = "first"

[[experiment]]
name = "broken"
model = "broken_mlp"

[[experiment]]
name = "refused"

[[experiment]]
name = "hooked"
epochs = 3

[[experiment]]
name = "flaky"
model = "flaky_mlp"

[[experiment]]
name = "hungry"
model = "hungry_mlp"

[[experiment]]
name = "huge"
hidden = 100_000_000_000

[[experiment]]
name = "diverges"
optimizer = "sgd"
lr = 1e6
activation = "leaky_relu"

[[experiment]]
name = "last"
"""


def _rows(store: Path) -> dict[str, sqlite3.Row]:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return {r["experiment"]: r for r in db.execute("SELECT * FROM runs")}


def test_plugin_oom_and_divergence_faults_are_recorded_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "plugins").mkdir()
    plugin = tmp_path / "plugins" / "faulty.py"
    plugin.write_text(FAULTY_PLUGIN)
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(SWEEP))
    store = tmp_path / "results.sqlite"

    proc = run_cli("--headless", str(toml), "--store", str(store), "--no-stack",
                   "--device", "cpu", timeout=240, env={"OMP_NUM_THREADS": "1"})

    assert proc.returncode == 1, proc.stdout + proc.stderr  # some runs failed
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = _rows(store)
    status = {name: row["status"] for name, row in rows.items()}
    assert status == {"first": "done", "broken": "failed", "refused": "failed",
                      "hooked": "failed", "flaky": "failed", "hungry": "failed",
                      "huge": "failed", "diverges": "diverged",
                      "last": "done"}

    # plugin raising while building its model: its name and a traceback summary
    err = rows["broken"]["error"]
    assert f"plugin drop-in {plugin} raised in building model 'broken_mlp'" in err
    assert "RuntimeError: no weights for you" in err
    assert err.endswith("[faulty.py:7 in build_broken]"), err  # the plugin's frames only
    # plugin raising in event hooks: the run is failed (not left 'running'), naming the hook
    err = rows["refused"]["error"]
    assert f"plugin drop-in {plugin} raised in on_run_started: KeyError" in err
    assert "in on_run_started]" in err
    err = rows["hooked"]["error"]
    assert f"plugin drop-in {plugin} raised in on_epoch_ended: ValueError: refusing epoch 2" \
        in err
    assert rows["hooked"]["epochs_done"] == 2  # the epochs before the fault are kept
    # plugin raising inside its model while it trains
    err = rows["flaky"]["error"]
    assert f"plugin drop-in {plugin} raised in training model 'flaky_mlp': ArithmeticError: " \
        "flaky layer gave up" in err and "in forward]" in err
    # out of memory: a smaller batch is suggested
    assert rows["hungry"]["error"] == ("out of memory on the device with batch_size 256: try "
                                       "a smaller batch_size (for example 128) or a smaller "
                                       "model")
    # a model too large for memory (a real allocation of 313 TB that fails)
    assert rows["huge"]["error"] == ("out of memory building model 'baseline_mlp' (hidden "
                                     "100000000000): the model does not fit; try a smaller "
                                     "model (hidden, layers)")
    # divergence: recorded as diverged at that epoch, with the loss and the lr
    err = rows["diverges"]["error"]
    assert "in epoch 1" in err and "(lr 1e+06)" in err
    assert "became nan" in err or "became inf" in err
    assert rows["diverges"]["epochs_done"] == 0 and rows["diverges"]["test_acc"] is None
    # the sweep went on: the last run trained and has real numbers
    assert rows["last"]["test_acc"] > 0.5
    # the results table shows every status and why
    table = proc.stdout[proc.stdout.index("diverges (1 runs)"):]
    line = next(ln for ln in table.splitlines() if "diverged" in ln)
    assert "loss became" in line and "in epoch 1" in line
    assert "finished in" in proc.stdout and "2 done" in proc.stdout
    assert "6 failed" in proc.stdout and "1 diverged" in proc.stdout


def _bad_data(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A data cache whose MNIST train images are truncated, and a drop-in data set 'mirror'
    (a copy of the sample with its SHA256SUMS) with one flipped byte. Returns (data dir,
    truncated file, flipped file, plugins folder)."""
    import shutil

    from workbench.data.builtin import SAMPLE_DIR

    data_dir = tmp_path / "data"
    raw_dir = data_dir / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    for f in SAMPLE_DIR.glob("*.gz"):
        shutil.copy(f, raw_dir / f.name)
    truncated = raw_dir / "train-images-idx3-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    mirror = tmp_path / "mirror"
    shutil.copytree(SAMPLE_DIR, mirror)
    flipped = mirror / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(flipped.read_bytes())
    blob[-20] ^= 0xFF
    flipped.write_bytes(bytes(blob))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mirror.py").write_text(textwrap.dedent(f'''
        from pathlib import Path
        from workbench import DatasetSpec, hookimpl
        from workbench.data import find_idx_files, load_idx_folder, verify_checksums
        FOLDER = Path({str(mirror)!r})

        def load(request):
            verify_checksums(FOLDER, FOLDER / "SHA256SUMS")
            return load_idx_folder("mirror", find_idx_files(FOLDER))

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec(name="mirror", load=load))
    '''))
    return data_dir, truncated, flipped, plugins


def _assert_names_the_file_and_the_remedy(message: str, truncated: Path, flipped: Path) -> None:
    if str(truncated) in message:
        assert f"{truncated}: cannot read" in message
        assert "the file is truncated or corrupted: delete it" in message
        assert "fetched again on the next run" in message
    else:
        assert f"{flipped}: checksum mismatch against {flipped.parent / 'SHA256SUMS'}" \
            in message
        assert "restore it" in message


def test_corrupted_data_stops_a_headless_sweep_before_training_naming_each_file(tmp_path):
    data_dir, truncated, flipped, _ = _bad_data(tmp_path)
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        hidden = 8
        epochs = 1
        [[experiment]]
        name = "cached"
        dataset = "mnist"
        [[experiment]]
        name = "mirrored"
        dataset = "mirror"
        [[experiment]]
        name = "sample"
        dataset = "mnist-sample"
    """))
    store = tmp_path / "results.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--data-dir", str(data_dir),
                   "--no-fallback", "--device", "cpu", timeout=240,
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR: data set")]
    assert len(errors) == 2  # both problems at once, before anything trains
    assert errors[0].startswith("ERROR: data set 'mnist' is not available: ")
    assert errors[1].startswith("ERROR: data set 'mirror' is not available: ")
    for line in errors:
        _assert_names_the_file_and_the_remedy(line, truncated, flipped)
    assert "[start]" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_data_faults_during_a_sweep_fail_those_runs_and_the_sweep_goes_on(tmp_path):
    """Without the headless preflight (the TUI's queue), each run whose data cannot be had is
    recorded as failed, naming the file, and the other runs train."""
    from workbench.config import load_study
    from workbench.plan import plan_study
    from workbench.plugins import load_plugins
    from workbench.runner import Settings, run_all
    from workbench.store import Store

    data_dir, truncated, flipped, plugins = _bad_data(tmp_path)
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        hidden = 8
        epochs = 1
        batch_size = 512
        [[experiment]]
        name = "cached"
        dataset = "mnist"
        [experiment.grid]
        seed = [1, 2]
        [[experiment]]
        name = "mirrored"
        dataset = "mirror"
        [[experiment]]
        name = "sample"
        dataset = "mnist-sample"
    """))
    registry = load_plugins(plugin_dirs=[plugins], entry_points=False)
    runs = plan_study(load_study(toml, registry), registry)
    store = Store(tmp_path / "results.sqlite")
    events = []
    run_all(runs, registry, store, events.append,
            Settings(device="cpu", data_dir=data_dir, allow_fallback=False))
    rows = store.runs()
    assert [(r["experiment"], r["status"]) for r in rows] == [
        ("cached", "failed"), ("cached", "failed"), ("mirrored", "failed"), ("sample", "done")]
    for row in rows[:3]:
        _assert_names_the_file_and_the_remedy(row["error"], truncated, flipped)
    assert rows[0]["error"] == rows[1]["error"]  # the same words for each run, at once
    assert rows[3]["test_acc"] > 0.2  # trained: well above chance (0.1)


def test_offline_download_fails_in_seconds_and_names_the_alternatives(tmp_path, registry):
    import time

    from workbench import data

    data.clear_caches()
    started = time.perf_counter()
    try:
        data.resolve("mnist", registry, data_dir=tmp_path, allow_fallback=False)
    except data.DataError as exc:
        message = str(exc)
    else:
        raise AssertionError("mnist cannot be had offline with an empty cache")
    first = time.perf_counter() - started
    assert first < 5.0
    assert "mnist: not found in" in message and "(offline?)" in message
    assert "run once where there is internet" in message
    assert f"copy the four IDX files into {tmp_path / 'MNIST' / 'raw'}" in message
    assert "--data-dir / MNIST_WORKBENCH_DATA" in message
    assert "allow the fallback to 'mnist-sample'" in message
    assert "--dataset mnist-sample" in message
    # the next runs of the sweep get the same answer at once, not another wait
    started = time.perf_counter()
    for _ in range(3):
        try:
            data.resolve("mnist", registry, data_dir=tmp_path, allow_fallback=False)
        except data.DataError as exc:
            assert str(exc) == message
    assert time.perf_counter() - started < 0.5
    data.clear_caches()


def test_an_unreachable_host_is_given_up_within_the_timeout(monkeypatch):
    import time

    from workbench.data import network_reachable

    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so this never needs a network
    monkeypatch.delenv("MNIST_WORKBENCH_OFFLINE")
    started = time.perf_counter()
    assert network_reachable("192.0.2.1", timeout=1.0) is False
    assert time.perf_counter() - started < 3.0


def test_a_run_failed_by_on_run_started_stays_failed_whatever_the_executor_reports(tmp_path):
    """An executor that streams a remote run's epochs and result after the start hook failed
    it (as the Ray executor does) cannot turn it back into done."""
    from workbench import hookimpl
    from workbench.plugins import load_plugins
    from workbench.executors.context import RunContext, Settings
    from workbench.executors.recorder import RunRecorder
    from workbench.store import Store
    from workbench.types import DONE, EpochMetrics, RunResult, RunSpec

    class Refuses:
        @hookimpl
        def on_run_started(self, run, device, dataset):
            raise PermissionError("quota exceeded")

    registry = load_plugins(extra=[Refuses()], entry_points=False)
    store = Store(tmp_path / "results.sqlite")
    ctx = RunContext(registry, store, Settings(device="cpu"), lambda event: None)
    run = RunSpec("remote", 0, {"lr": 1e-3, "seed": 1}, "remote")
    recorder = RunRecorder(run, ctx, "mnist-sample", "fp")
    assert recorder.result is not None and recorder.result.status == "failed"
    recorder.epoch(EpochMetrics(1, 0.5, 0.4, 0.9, 0.9, 1, 1.0))
    recorder.finish(RunResult(status=DONE, test_acc=0.9))
    (row,) = store.runs()
    assert row["status"] == "failed" and row["epochs_done"] == 0 and row["test_acc"] is None
    assert "raised in on_run_started: PermissionError: quota exceeded" in row["error"]

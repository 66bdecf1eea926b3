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
                      "diverges": "diverged",
                      "last": "done"}

    # plugin raising while building its model: its name and a traceback summary
    err = rows["broken"]["error"]
    assert f"plugin drop-in {plugin} raised in building model 'broken_mlp'" in err
    assert "RuntimeError: no weights for you" in err
    assert "faulty.py:7 in build_broken" in err
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
    assert f"finished in" in proc.stdout and "2 done" in proc.stdout
    assert "5 failed" in proc.stdout and "1 diverged" in proc.stdout


def test_corrupted_and_missing_data_are_reported_naming_the_file_and_the_remedy(tmp_path):
    """A truncated IDX file in the data cache, a checksum mismatch, and an offline download:
    each run fails with a message naming the file or the alternatives; nothing hangs."""
    import shutil

    from workbench.datasets import SAMPLE_DIR

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
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mirror.py").write_text(textwrap.dedent(f'''
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
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        hidden = 8
        epochs = 1
        [[experiment]]
        name = "cached"
        dataset = "mnist"
        [experiment.grid]
        seed = [1, 2, 3]
        [[experiment]]
        name = "mirrored"
        dataset = "mirror"
        [[experiment]]
        name = "sample"
        dataset = "mnist-sample"
    """))
    store = tmp_path / "results.sqlite"
    proc = run_cli("--headless", str(toml), "--store", str(store), "--data-dir", str(data_dir),
                   "--no-fallback", "--no-stack", "--device", "cpu", timeout=240,
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT experiment, status, error FROM runs ORDER BY id").fetchall()
    assert [(e, s) for e, s, _ in rows] == [("cached", "failed")] * 3 + [
        ("mirrored", "failed"), ("sample", "done")]  # failures are in the results too
    assert all(str(truncated) in err for e, _, err in rows if e == "cached")
    # cached (3 runs): the truncated file is named with what to do, the same for each run
    out = proc.stdout
    cached_lines = [ln for ln in out.splitlines() if ln.startswith("[failed] cached")]
    assert len(cached_lines) == 3
    for line in cached_lines:
        assert f"{truncated}: cannot read" in line
        assert "the file is truncated or corrupted: delete it" in line
        assert "fetched again on the next run" in line
    mirrored = next(ln for ln in out.splitlines() if ln.startswith("[failed] mirrored"))
    assert f"{flipped}: checksum mismatch against {mirror / 'SHA256SUMS'}" in mirrored
    assert "restore it" in mirrored
    assert next(ln for ln in out.splitlines() if ln.startswith("[done] sample"))
    assert "Traceback" not in out + proc.stderr


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

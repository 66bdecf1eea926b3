"""The Ray executor on a real local two-node Ray cluster (ray.cluster_utils.Cluster).

One cluster (two nodes of one CPU each) serves the whole module: on two cores Ray takes
~15-20 s to start. Metrics are compared with the local executor run on one torch thread,
because a Ray task asking for one CPU trains on one thread (CPU float sums depend on it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, SIGINT_DEFAULT, TINY_TOML

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed: pip install -e ".[ray]"')
pytestmark = pytest.mark.ray


# -- a model that kills its own worker process mid-run (a worker dying under a run) -------

class CrashPlugin:
    """Registers `crashing_mlp`: the baseline MLP (same weights, same numbers) that SIGKILLs
    the process training it in epoch 2, `crash_times` times in all (counted in a file)."""

    from workbench import hookimpl

    @hookimpl
    def register_models(self, register):
        from workbench import ModelSpec
        register(ModelSpec(name="crashing_mlp", build=build_crashing,
                           params={"crash_file": "", "crash_times": 0}))


def build_crashing(config, in_features, num_classes):
    import torch
    from workbench_plugins.baseline_mlp import build

    class Crashing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.calls = build(config, in_features, num_classes), 0

        def forward(self, x):
            self.calls += 1
            if self.training and self.calls == 35:  # epoch 1 is 29 batches + 1 evaluation
                path = Path(config["crash_file"])
                died = int(path.read_text()) if path.exists() else 0
                if died < config["crash_times"]:
                    path.write_text(str(died + 1))
                    os.kill(os.getpid(), signal.SIGKILL)
            return self.inner(x)

    return Crashing()


# -- helpers -----------------------------------------------------------------------------

def plan(toml: str, registry, tmp_path: Path):
    from workbench.config import read_toml, validate_study
    from workbench.plan import plan_study

    path = tmp_path / "experiments.toml"
    path.write_text(textwrap.dedent(toml))
    return plan_study(validate_study(read_toml(path), registry, path), registry)


def sweep(runs, registry, store_path: Path, executor=None, threads: int | None = None):
    """Run everything to the end; returns (store, events)."""
    import torch

    from workbench.runner import Settings, run_all
    from workbench.store import Store

    store, events = Store(store_path), []
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        run_all(runs, registry, store, events.append, Settings(device="cpu"), executor)
    finally:
        torch.set_num_threads(before)
    return store, events


def metrics(store) -> dict[tuple[str, str], tuple]:
    """Everything a run's numbers are, by (experiment, config hash)."""
    out = {}
    for row in store.runs():
        full = store.run(row["id"])
        epochs = tuple((e["epoch"], e["train_loss"], e["val_loss"], e["val_acc"])
                       for e in store.epochs(row["id"]))
        out[(row["experiment"], row["config_hash"])] = (
            row["status"], epochs, row["test_acc"], full["confusion"])
    return out


def finished(events, run_id=None):
    from workbench import events as ev
    return [e for e in events if isinstance(e, ev.RunFinished)
            and (run_id is None or e.run.run_id == run_id)]


@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes on this machine, one CPU each; the test process is the driver."""
    if not HAS_RAY:
        pytest.skip('Ray is not installed: pip install -e ".[ray]"')
    import ray
    from ray.cluster_utils import Cluster

    from workbench.executors.ray_setup import Connection, prepare_local

    folder = Path(tempfile.mkdtemp(prefix="wb-ray-"))  # short: Ray's socket paths
    conn = Connection()
    prepare_local(conn, folder)
    node = dict(num_cpus=1, object_store_memory=80 * 2**20)
    cluster = Cluster(initialize_head=True,
                      head_node_args=dict(node, include_dashboard=False))
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)


# -- the command line: a local Ray instance, Ctrl-C, resume (before the module's cluster starts)

@pytest.fixture
def short_dir():
    """A folder with a short path (Ray's socket paths must stay under 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="wb-rd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@needs_ray
def test_cli_ray_executor_ctrl_c_keeps_the_store_consistent_and_a_rerun_resumes(tmp_path,
                                                                                  short_dir):
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        executor = "ray"
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 512
        seed = 5
        [[experiment]]
        name = "quick"
        epochs = 2
        [[experiment]]
        name = "slow"
        epochs = 3000
        """))
    ray_dir = short_dir
    home = tmp_path / "home"
    home.mkdir()
    had_tmp_ray = Path("/tmp/ray").exists()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1",
           "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    store = tmp_path / "s.sqlite"
    cmd = [*SIGINT_DEFAULT, sys.executable, "-m", "workbench.cli", "--headless", str(toml),
           "--store", str(store), "--ray-dir", str(ray_dir), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            done_quick = any(l.startswith("[done] quick") for l in lines)
            if done_quick and any("epoch 2/3000" in l for l in lines):
                proc.send_signal(signal.SIGINT)
                break
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 130, text
    assert "rerun the same command to resume" in text
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT experiment, status FROM runs").fetchall())
    assert rows == {"quick": "done", "slow": "cancelled"}, text
    assert list((ray_dir / "ray").glob("session_*")), "Ray's files are not in --ray-dir"
    assert not (home / ".ray").exists() and Path("/tmp/ray").exists() == had_tmp_ray

    # the rerun resumes: the finished run is skipped (local executor; "slow" left out: --only)
    rerun = subprocess.run([*cmd[:-4], "--executor", "local", "--only", "quick"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "[skip] quick" in rerun.stdout


# -- on the two-node cluster ------------------------------------------------------------

@needs_ray
def test_a_run_whose_data_is_missing_leaves_the_same_row_on_ray_as_locally(ray_cluster,
                                                                           registry, tmp_path):
    """No data (offline, no fallback): the run is recorded failed, naming the remedy, by the
    same prepare step in every executor; the other run trains."""
    from workbench.executors.ray import RayExecutor
    from workbench.runner import Settings, run_all
    from workbench.store import Store

    runs = plan("""
        [defaults]
        hidden = 8
        epochs = 1
        batch_size = 512
        [[experiment]]
        name = "missing"
        dataset = "mnist"
        [[experiment]]
        name = "here"
        dataset = "mnist-sample"
        """, registry, tmp_path)
    rows = {}
    for name, executor in (("local", None), ("ray", RayExecutor())):
        store, events = Store(tmp_path / f"{name}.sqlite"), []
        run_all(runs, registry, store, events.append,
                Settings(device="cpu", data_dir=tmp_path / "empty", allow_fallback=False),
                executor)
        rows[name] = {r["experiment"]: r for r in store.runs()}
        assert [e.result.status for e in finished(events)
                if e.run.experiment == "missing"] == ["failed"]
    keys = ("status", "error", "dataset", "device", "epochs_done", "test_acc")
    local, ray_ = rows["local"]["missing"], rows["ray"]["missing"]
    assert {k: ray_[k] for k in keys} == {k: local[k] for k in keys}
    assert local["status"] == "failed" and "mnist" in local["error"]
    assert rows["ray"]["here"]["status"] == rows["local"]["here"]["status"] == "done"


@needs_ray
def test_a_failing_epoch_hook_fails_that_run_on_ray_and_the_sweep_goes_on(ray_cluster,
                                                                          tmp_path):
    """Hooks run on the driver, through the recorder every executor shares: a plugin that
    raises fails its run (naming the plugin), the other run finishes."""
    from workbench import hookimpl
    from workbench.executors.ray import RayExecutor
    from workbench.plugins import load_plugins

    class Refuses:
        @hookimpl
        def on_epoch_ended(self, run, metrics):
            if run.experiment == "refused":
                raise PermissionError("quota exceeded")

    registry = load_plugins(extra=[Refuses()], entry_points=False)
    runs = plan("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        epochs = 2
        batch_size = 512
        [[experiment]]
        name = "refused"
        [[experiment]]
        name = "fine"
        seed = 4
        """, registry, tmp_path)
    store, events = sweep(runs, registry, tmp_path / "ray.sqlite", RayExecutor())
    rows = {r["experiment"]: r for r in store.runs()}
    assert rows["refused"]["status"] == "failed", rows["refused"]
    error = store.run(rows["refused"]["id"])["error"]
    assert "on_epoch_ended" in error and "quota exceeded" in error, error
    assert rows["fine"]["status"] == "done" and rows["fine"]["epochs_done"] == 2
    assert len(finished(events)) == 2


@needs_ray
def test_grid_spread_over_both_nodes_lands_in_the_store_as_locally(ray_cluster, registry,
                                                                     tmp_path):
    from workbench.executors.ray import RayExecutor

    runs = plan(TINY_TOML, registry, tmp_path)
    assert len(runs) == 5
    local, _ = sweep(runs, registry, tmp_path / "local.sqlite", threads=1)
    remote, events = sweep(runs, registry, tmp_path / "ray.sqlite", RayExecutor())

    expected, got = metrics(local), metrics(remote)
    assert set(got) == set(expected) and len(remote.runs()) == 5
    for key, (status, epochs, test_acc, confusion) in expected.items():
        assert status == "done" and len(epochs) == 2
        assert got[key] == (status, epochs, test_acc, confusion), key
    nodes = {row["device"] for row in remote.runs()}
    assert len(nodes) == 2 and all(d.startswith("cpu (ray node ") for d in nodes), nodes
    # every run's events reached the driver: 2 epochs, then one RunFinished
    from workbench import events as ev
    for run in runs:
        mine = [e for e in events if getattr(e, "run", None) == run
                and isinstance(e, (ev.RunStarted, ev.EpochEnded, ev.RunFinished))]
        assert [type(e).__name__ for e in mine] == ["RunStarted", "EpochEnded", "EpochEnded",
                                                     "RunFinished"]


@needs_ray
def test_the_app_works_its_queue_on_the_cluster_with_live_charts_and_results(ray_cluster,
                                                                              tmp_path):
    """`mnist-workbench --executor ray` (the TUI): the queue runs units on both nodes at
    once, the live chart and results table are fed as locally, the store holds each run
    once."""
    import asyncio

    from workbench.store import Store
    from workbench.tui.launch import make_app
    from workbench.tui.widgets.charts import LiveCharts
    from workbench.tui.widgets.queue import QueueTable
    from workbench.tui.widgets.results import ResultsTable

    toml = tmp_path / "experiments.toml"
    # batches of 32: runs long enough that the queue's title is drawn while two are in flight
    toml.write_text(textwrap.dedent(TINY_TOML).replace("batch_size = 256", "batch_size = 32"))
    store_path = tmp_path / "s.sqlite"
    app = make_app(toml, store_path, device="cpu", executor="ray", stack=False)
    assert "Ray at" in app.sub_title

    async def drive():
        most_in_flight, queue_titles = 0, set()
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("A")
            ids = [r.run_id for r in app.session.runs]
            deadline = time.monotonic() + 150
            while not all(app.live_status.get(i) == "done" for i in ids):
                assert time.monotonic() < deadline, app.live_status
                most_in_flight = max(most_in_flight, len(app.runner.current()))
                queue_titles.add(app.query_one(QueueTable).border_title)
                await pilot.pause(0.05)
            await pilot.pause(1.2)  # one redraw tick
            charts = app.query_one(LiveCharts)
            assert charts.live.epochs == [1, 2] and charts.redraws >= 1
            assert app.events_seen["EpochEnded"] == 2 * len(ids)
            await pilot.press("3")
            rows = Store(store_path, readonly=True).runs()
            table = app.query_one(ResultsTable)
            for row in rows:
                assert table.cell_texts(row["id"])["test_acc"] == f"{100 * row['test_acc']:.2f}%"
            assert not app.runner.current()
        return rows, most_in_flight, queue_titles

    rows, most_in_flight, queue_titles = asyncio.run(drive())
    assert len(rows) == 5 and {r["status"] for r in rows} == {"done"}
    assert len({(r["experiment"], r["config_hash"]) for r in rows}) == 5
    assert len({r["device"] for r in rows}) == 2, [r["device"] for r in rows]  # both nodes
    # five lone runs on two one-CPU nodes: the queue shows two in flight at once
    assert most_in_flight >= 2, queue_titles
    assert any(t.startswith("queue: 2 running") for t in queue_titles), queue_titles


@needs_ray
def test_a_worker_killed_mid_run_is_retried_or_recorded_failed_never_lost(ray_cluster,
                                                                           tmp_path):
    from workbench import events as ev
    from workbench.plugins import load_plugins
    from workbench.executors.ray import RayExecutor

    registry = load_plugins(entry_points=False, extra=[CrashPlugin()])
    runs = plan(f"""
        [defaults]
        dataset = "mnist-sample"
        hidden = 16
        epochs = 3
        batch_size = 256
        seed = 3
        [[experiment]]
        name = "dies-once"
        model = "crashing_mlp"
        crash_file = "{tmp_path / 'once'}"
        crash_times = 1
        [[experiment]]
        name = "dies-always"
        model = "crashing_mlp"
        crash_file = "{tmp_path / 'always'}"
        crash_times = 99
        [[experiment]]
        name = "reference"
        """, registry, tmp_path)
    store, events = sweep(runs, registry, tmp_path / "ray.sqlite",
                          RayExecutor(max_retries=1))

    rows = {r["experiment"]: store.run(r["id"]) for r in store.runs()}
    assert sorted(rows) == ["dies-always", "dies-once", "reference"]  # one row each
    assert [len(finished(events, r.run_id)) for r in runs] == [1, 1, 1]
    once, always, reference = rows["dies-once"], rows["dies-always"], rows["reference"]
    assert (tmp_path / "once").read_text() == "1" and (tmp_path / "always").read_text() == "2"
    # retried from epoch 1: the same numbers as a run that was never interrupted
    assert once["status"] == "done" and once["attempts"] == 2
    assert [e["epoch"] for e in store.epochs(once["id"])] == [1, 2, 3]
    strip = lambda rows: [(e["train_loss"], e["val_loss"], e["val_acc"]) for e in rows]
    assert strip(store.epochs(once["id"])) == strip(store.epochs(reference["id"]))
    assert once["test_acc"] == reference["test_acc"] and reference["attempts"] == 1
    assert [(a["status"], a["shown"]) for a in store.attempts(once["id"])] == [
        ("interrupted", False), ("done", True)]  # the dead worker's attempt is kept, closed
    # retries spent: recorded failed, with the reason
    assert always["status"] == "failed" and always["attempts"] == 2
    assert "worker died 2 time(s)" in always["error"], always["error"]
    warnings = [e.message for e in events if isinstance(e, ev.Notice) and e.level == "warning"]
    assert any("dies-once" in w and "attempt 2" in w for w in warnings), warnings


@needs_ray
def test_cancelling_the_sweep_cancels_its_ray_tasks(ray_cluster, registry, tmp_path):
    import ray

    from workbench import events as ev
    from workbench.executors.ray import RayExecutor
    from workbench.runner import Runner, Settings
    from workbench.store import Store

    runs = plan("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        epochs = 2000
        batch_size = 512
        [[experiment]]
        name = "long"
        [experiment.grid]
        seed = [1, 2, 3]
        """, registry, tmp_path)
    store, events, epochs_seen = Store(tmp_path / "ray.sqlite"), [], set()
    runner = None

    def sink(event):
        events.append(event)
        if isinstance(event, ev.EpochEnded):
            epochs_seen.add(event.run.run_id)
            if len(epochs_seen) == 2:  # both nodes are training: stop the sweep
                runner.stop(cancel=True)

    runner = Runner(registry, store, sink, Settings(device="cpu"), RayExecutor())
    runner.submit(runs)
    started = time.monotonic()
    runner.start(drain=True)
    assert runner.join(120), "the sweep did not stop"
    statuses = {r["label"]: r["status"] for r in store.runs()}
    assert sorted(statuses.values()) == ["cancelled", "cancelled"], statuses  # 3rd never ran
    for row in store.runs():
        assert 1 <= row["epochs_done"] < 2000
        assert "cancelled" in store.run(row["id"])["error"]
    assert len(finished(events)) == 2
    deadline = time.monotonic() + 30  # the tasks really stopped: both CPUs are free again
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2
    assert time.monotonic() - started < 100


# -- without Ray, and bad Ray settings (no cluster needed) ------------------------------------

def test_executor_ray_without_ray_installed_names_the_extra(tiny_toml, tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from workbench.cli import main\n"
            f"sys.exit(main(['--headless', {str(tiny_toml)!r}, '--executor', 'ray', "
            f"'--store', {str(tmp_path / 's.sqlite')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'pip install -e ".[ray]"' in proc.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_ray_dir_too_long_for_ray_sockets_is_refused_or_moved(tmp_path, monkeypatch):
    from workbench.executors.ray_setup import MAX_RAY_DIR_CHARS, RayUnavailable, ray_dir_for

    deep = tmp_path / ("d" * 80)
    with pytest.raises(RayUnavailable, match=f"at most {MAX_RAY_DIR_CHARS} characters"):
        ray_dir_for(deep)
    monkeypatch.delenv("MNIST_WORKBENCH_RAY_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    here, note = ray_dir_for(None)
    if len(str(tmp_path / ".ray")) <= MAX_RAY_DIR_CHARS:
        assert here == tmp_path / ".ray" and note is None
    else:
        assert len(str(here)) <= MAX_RAY_DIR_CHARS and "--ray-dir" in note
    deep.mkdir()
    monkeypatch.chdir(deep)
    moved, note = ray_dir_for(None)
    assert len(str(moved)) <= MAX_RAY_DIR_CHARS and "--ray-dir" in note


def test_each_task_asks_for_a_gpu_when_runs_want_cuda_and_for_cpus_otherwise():
    from workbench.executors.ray import _placement
    from workbench.executors.ray_setup import RayUnavailable

    gpu_cluster = {"CPU": 32.0, "GPU": 4.0}
    assert _placement("auto", gpu_cluster, 1) == ("cuda", 1, 4)  # one run per GPU at once
    assert _placement("cuda:1", gpu_cluster, 1) == ("cuda", 1, 4)  # Ray's GPU is cuda:0 there
    assert _placement("cpu", gpu_cluster, 2) == ("cpu", 0, 16)  # 2 CPUs a task
    assert _placement(None, {"CPU": 6.0}, 1) == ("cpu", 0, 6)
    with pytest.raises(RayUnavailable, match="has no GPU"):
        _placement("cuda", {"CPU": 6.0}, 1)


def test_a_group_trains_as_one_stack_on_the_worker_with_each_run_reported_once(registry,
                                                                                 tmp_path):
    """What a Ray task runs for a stacked group (workbench.training.stacked, when it is there)."""
    stacked = pytest.importorskip("workbench.training.stacked")
    from workbench import data
    from workbench.training import unit as worker

    runs = plan("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 16
        batch_size = 256
        seed = 3
        [[experiment]]
        name = "lrs"
        [experiment.grid]
        lr = [1e-3, 1e-2]
        epochs = [1, 2]
        """, registry, tmp_path)
    raw = data.resolve("mnist-sample", registry)
    models = {"baseline_mlp": worker.ModelBuild(registry.models["baseline_mlp"].build, "-")}

    class Log:
        def __init__(self):
            self.lines = []

        def claim(self, run, device):
            self.lines.append(("claim", run.run_id))
            return True

        def epoch(self, run, metrics):
            self.lines.append(("epoch", run.run_id, metrics.epoch))

        def batch(self, *args):
            pass

        def finished(self, run, result):
            self.lines.append(("finished", run.run_id))

    stacks, train_stacked = [], stacked.train_stacked

    def counting(configs, *args, **kwargs):
        stacks.append(len(configs))
        return train_stacked(configs, *args, **kwargs)

    stacked.train_stacked = counting
    try:
        log = Log()
        together = worker.train_unit(runs, raw, "cpu", models, log)
    finally:
        stacked.train_stacked = train_stacked
    alone = {r.run_id: worker.train_unit([r], raw, "cpu", models, Log())[r.run_id]
             for r in runs}
    assert stacks == [4]
    for kind in ("claim", "finished"):
        assert sorted(l[1] for l in log.lines if l[0] == kind) == sorted(r.run_id for r in runs)
    assert len([l for l in log.lines if l[0] == "epoch"]) == 1 + 1 + 2 + 2
    for run in runs:
        a, b = together[run.run_id], alone[run.run_id]
        assert a.status == b.status == "done"  # batched sums: equal to float precision
        assert [e.train_loss for e in a.epochs] == pytest.approx(
            [e.train_loss for e in b.epochs], rel=1e-5)
        assert a.test_acc == pytest.approx(b.test_acc, abs=1e-3)

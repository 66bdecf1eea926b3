"""Training in a child process (the app's executor): same numbers as in-process, cancel,
a child killed mid-run, drop-in plugins, and a child that outlives its parent. Real spawned
processes, real SQLite stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import ROOT, TINY_TOML
from workbench import events as ev
from workbench.plan import unit_grouper
from workbench.executors.process import ProcessExecutor, can_run
from workbench.runner import Runner, Settings, run_all
from workbench.session import open_session
from workbench.store import Store

LONG = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 300
batch_size = 64
seed = 5
[[experiment]]
name = "long"
[[experiment]]
name = "short"
epochs = 1
"""


def session_of(tmp_path: Path, text: str, name: str = "experiments.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return open_session(path)


def numbers(store: Store) -> dict:
    out = {}
    for row in store.runs():
        epochs = [(e["epoch"], e["train_loss"], e["val_loss"], e["val_acc"])
                  for e in store.epochs(row["id"])]
        out[(row["experiment"], row["config_hash"])] = (
            row["status"], epochs, row["test_acc"], store.run(row["id"])["confusion"])
    return out


def test_the_child_gives_the_numbers_of_in_process_training(tmp_path):
    session = session_of(tmp_path, TINY_TOML)
    assert can_run(session.registry)
    settings = Settings(device="cpu", threads=1)
    local = Store(tmp_path / "local.sqlite")
    run_all(session.runs, session.registry, local, lambda e: None, settings,
            group=unit_grouper(True))
    child, events = Store(tmp_path / "child.sqlite"), []
    run_all(session.runs, session.registry, child, events.append, settings, ProcessExecutor(),
            unit_grouper(True))
    want, got = numbers(local), numbers(child)
    assert len(got) == 5 and got == want  # bitwise: same ops, one thread, both sides
    for run in session.runs:  # every run's events reached the runner thread, in order
        mine = [type(e).__name__ for e in events if getattr(e, "run", None) == run
                and not isinstance(e, (ev.BatchProgress, ev.RunQueued))]
        assert mine == ["RunStarted", "EpochEnded", "EpochEnded", "RunFinished"], mine


def _runner(session, store, sink):
    runner = Runner(session.registry, store, sink, Settings(device="cpu"), ProcessExecutor(),
                    group=unit_grouper(False))
    runner.submit(session.runs)
    return runner


def test_cancel_stops_the_run_in_the_child_and_the_next_run_trains(tmp_path):
    session = session_of(tmp_path, LONG)
    store, events, runner = Store(tmp_path / "s.sqlite"), [], None

    def sink(event):
        events.append(event)
        if isinstance(event, ev.EpochEnded) and event.run.experiment == "long":
            runner.cancel_current()

    runner = _runner(session, store, sink)
    runner.start(drain=True)
    assert runner.join(120)
    rows = {r["experiment"]: r for r in store.runs()}
    assert rows["long"]["status"] == "cancelled" and rows["long"]["epochs_done"] < 300
    assert "cancelled in epoch" in store.run(rows["long"]["id"])["error"]
    assert rows["short"]["status"] == "done" and rows["short"]["test_acc"] > 0.3


def test_a_child_killed_mid_run_fails_that_run_and_a_new_child_trains_the_next(tmp_path):
    session = session_of(tmp_path, LONG)
    store, pids, runner = Store(tmp_path / "s.sqlite"), [], None
    executor = ProcessExecutor()

    def sink(event):
        if isinstance(event, ev.EpochEnded) and event.run.experiment == "long" \
                and event.metrics.epoch == 2:
            pids.append(executor.pids[0])
            os.kill(executor.pids[0], signal.SIGKILL)
        if isinstance(event, ev.RunStarted):
            pids.append(executor.pids[0])

    runner = Runner(session.registry, store, sink, Settings(device="cpu"), executor,
                    group=unit_grouper(False))
    runner.submit(session.runs)
    runner.start(drain=True)
    assert runner.join(120)
    rows = {r["experiment"]: r for r in store.runs()}
    long_ = store.run(rows["long"]["id"])
    assert rows["long"]["status"] == "failed"
    assert "training process died (killed by signal 9)" in long_["error"]
    assert 2 <= len(store.epochs(rows["long"]["id"])) < 300  # what it reported is kept
    assert rows["short"]["status"] == "done"
    assert pids[0] == pids[1] != pids[2], pids  # killed, then a new child
    assert store.integrity_check() == "ok"


def test_a_drop_in_plugin_model_trains_in_the_child(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "narrow.py").write_text(textwrap.dedent("""
        import torch
        from workbench import ModelSpec, hookimpl

        def build(config, in_features, num_classes):
            return torch.nn.Sequential(torch.nn.Linear(in_features, 6), torch.nn.ReLU(),
                                       torch.nn.Linear(6, num_classes))

        @hookimpl
        def register_models(register):
            register(ModelSpec(name="narrow", build=build, description="6 hidden units"))
    """))
    session = session_of(tmp_path, """
        [defaults]
        dataset = "mnist-sample"
        model = "narrow"
        epochs = 1
        [[experiment]]
        name = "drop-in"
    """)
    store = Store(tmp_path / "s.sqlite")
    run_all(session.runs, session.registry, store, lambda e: None, Settings(device="cpu"),
            ProcessExecutor())
    (row,) = store.runs()
    assert row["status"] == "done" and row["config"]["model"] == "narrow"
    assert row["test_acc"] > 0.3


def test_every_child_of_a_pool_exits_when_its_parent_is_killed(tmp_path):
    (tmp_path / "experiments.toml").write_text(textwrap.dedent(LONG))
    script = textwrap.dedent(f"""
        import sys, time
        from workbench import events as ev
        from workbench.executors.process import ProcessExecutor
        from workbench.runner import Runner, Settings
        from workbench.session import open_session
        from workbench.store import Store

        if __name__ == "__main__":
            session = open_session(__import__("pathlib").Path({str(tmp_path / 'experiments.toml')!r}))
            executor = ProcessExecutor(2)  # a pool: one worker trains, the other waits
            def sink(event):
                if isinstance(event, ev.EpochEnded):
                    print(*executor.pids, flush=True)
            runner = Runner(session.registry, Store({str(tmp_path / 's.sqlite')!r}), sink,
                            Settings(device="cpu"), executor)
            runner.submit(session.runs)
            runner.start(drain=True)
            runner.join(300)
    """)
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        children = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(children) == 2 and all(Path(f"/proc/{c}").exists() for c in children)
        # named for ps and top, one per worker
        assert sorted(Path(f"/proc/{c}/comm").read_text().strip() for c in children) == \
            ["wb-trainer-0", "wb-trainer-1"]
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children), "a training process outlived the app"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_app_trains_in_a_child_unless_plugins_were_registered_as_objects(tmp_path):
    """A child can load plugins from modules and folders, not objects of this process."""
    from workbench.plugins import load_plugins
    from workbench.tui.launch import make_app

    assert can_run(load_plugins(entry_points=False))
    assert not can_run(load_plugins(entry_points=False, extra=[object()]))
    (tmp_path / "experiments.toml").write_text(textwrap.dedent(TINY_TOML))
    app = make_app(tmp_path / "experiments.toml", tmp_path / "s.sqlite", start_runner=False)
    assert isinstance(app.runner._executor, ProcessExecutor)


def test_a_cancelled_unit_is_recorded_alike_in_the_child_and_in_process(tmp_path):
    """A unit of two runs that cannot stack (dropout), cancelled during the first: the first
    is recorded cancelled with its epochs, the second never started and keeps no row (a
    rerun trains it), whichever executor trained them."""
    from workbench.executors.local import LocalExecutor

    session = session_of(tmp_path, """
        [defaults]
        dataset = "mnist-sample"
        hidden = 16
        epochs = 300
        batch_size = 64
        dropout = 0.2
        [[experiment]]
        name = "pair"
        [experiment.grid]
        seed = [1, 2]
        """)
    rows = {}
    for name, executor in (("local", LocalExecutor()), ("child", ProcessExecutor())):
        store, runner = Store(tmp_path / f"{name}.sqlite"), None

        def emit(event):
            if isinstance(event, ev.EpochEnded) and event.metrics.epoch == 2:
                runner.cancel_current()

        runner = Runner(session.registry, store, emit, Settings(device="cpu"), executor,
                        group=lambda pending: pending[:2])
        runner.submit(session.runs)
        runner.start(drain=True)
        assert runner.join(120)
        rows[name] = [(r["label"], r["status"]) for r in store.runs()]
        assert all(2 <= r["epochs_done"] < 300 for r in store.runs())
    assert rows["local"] == rows["child"] == [("seed=1", "cancelled")], rows

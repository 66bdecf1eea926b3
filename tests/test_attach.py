"""The app attached to a headless sweep in a real subprocess writing the same SQLite store:
the views follow the sweep, steering requests take effect in the headless process and are
recorded, quitting the app leaves the sweep running, a killed writer is noticed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tests.conftest import ROOT  # noqa: E402
from tests.test_tui_flows import SIZE, run_async, wait_until  # noqa: E402
from tests.tiny_study import tiny_study  # noqa: E402
from workbench import live_store as live  # noqa: E402
from workbench.attach import AttachedRunner, running_sweep  # noqa: E402
from workbench.store import Store  # noqa: E402
from workbench.tui.launch import attach_app  # noqa: E402
from workbench.tui.widgets.charts import LiveCharts  # noqa: E402
from workbench.tui.widgets.experiments import ExperimentTree  # noqa: E402
from workbench.tui.widgets.queue import QueueTable  # noqa: E402
from workbench.tui.widgets.results import ResultsTable  # noqa: E402

# A run that ends in a few seconds, then three that would take minutes (batch 32: ~1 s/epoch).
STUDY = """
[[experiment]]
name = "quick"
epochs = 2

[[experiment]]
name = "slow"
epochs = 300
batch_size = 32
[experiment.grid]
lr = [1e-3, 2e-3, 3e-3]
"""


def start_sweep(tmp_path: Path, study: str = STUDY, *args: str
                ) -> tuple[subprocess.Popen, Path, Path]:
    """``mnist-workbench --headless`` in a real process; its output goes to a file."""
    toml, store, out = tiny_study(tmp_path, study), tmp_path / "s.sqlite", tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--headless", str(toml),
                             "--store", str(store), "--no-stack", *args], cwd=tmp_path, env=env,
                            stdout=out.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while running_sweep(store) is None:
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.2)
    return proc, store, out


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def statuses(store_path: Path) -> dict[str, str]:
    with Store(store_path, readonly=True) as store:
        return {f"{r['experiment']} {r['label']}": r["status"] for r in store.runs()}


@run_async
async def test_the_app_follows_the_sweep_and_its_cancel_and_stop_run_there(tmp_path):
    proc, store_path, out = start_sweep(tmp_path)
    try:
        app = attach_app(store_path)
        async with app.run_test(size=SIZE) as pilot:
            assert f"pid {proc.pid}" in app.sub_title and "--headless" in app.sub_title
            results = app.query_one(ResultsTable)
            charts = app.query_one(LiveCharts)
            queue = app.query_one(QueueTable)
            # the quick run's row appears once it finishes; the first slow run trains
            await wait_until(pilot, lambda: any(r["experiment"] == "quick"
                                                and r["status"] == "done"
                                                for r in results.rows_all), what="quick row")
            await wait_until(pilot, lambda: charts.live_run is not None
                             and charts.live_run.experiment == "slow"
                             and len(charts.live.batch_x) >= 2, what="live batch points")
            await wait_until(pilot, lambda: queue.row_count == 3, what="queue rows")
            assert queue.border_title == "queue: 1 running, 2 pending"
            first = charts.live_run

            await pilot.press("c")  # cancel the running run: the sweep goes to the next one
            await wait_until(pilot, lambda: statuses(store_path).get(
                f"slow {first.label}") == "cancelled", what="cancelled in the store")
            await wait_until(pilot, lambda: any("cancel done" in n for n in notes(app)),
                             what="the sweep's answer")
            await wait_until(pilot, lambda: charts.live_run is not None
                             and charts.live_run != first, what="the next run")
            second = charts.live_run

            await pilot.press("S")  # stop after the current run: the third never starts
            await wait_until(pilot, lambda: app.runner.pending() == [], what="pending dropped")
            await pilot.press("c")
            await wait_until(pilot, lambda: app.runner.ended is not None, what="sweep end")
            assert "sweep ended: stopped on request" in app.sub_title
        assert proc.wait(60) == 0  # headless ends by itself: runs done or cancelled on request
    finally:
        stop(proc)
    text = out.read_text()
    assert "request #1 from" in text and "cancel -> done: cancelling slow: lr=0.001" in text
    assert "stop -> done: stopping after the current run (1 pending run dropped)" in text
    runs = statuses(store_path)
    assert runs == {"quick quick": "done", f"slow {first.label}": "cancelled",
                    f"slow {second.label}": "cancelled"}, runs
    with Store(store_path, readonly=True) as store:
        sweep = live.latest_sweep(store)
        recorded = [(c["kind"], c["state"]) for c in live.commands(store, sweep["id"])]
    assert sweep["outcome"] == "stopped on request"
    assert recorded == [("cancel", "done"), ("stop", "done"), ("cancel", "done")]


@run_async
async def test_pending_runs_are_reordered_removed_and_added_from_the_app(tmp_path):
    proc, store_path, out = start_sweep(tmp_path, STUDY, "--only", "slow")
    try:
        app = attach_app(store_path)
        async with app.run_test(size=SIZE) as pilot:
            queue = app.query_one(QueueTable)
            await wait_until(pilot, lambda: queue.row_count == 3, what="queue rows")
            slow = [r.label for r in app.runner.current() + app.runner.pending()]

            def pending() -> list[str]:
                with Store(store_path, readonly=True) as store:
                    return [r.label for s, r in live.queue(store, 1) if s == "queued"]

            queue.focus()
            queue.move_cursor(row=2)
            await pilot.press("left_square_bracket")  # the last run moves up, in the sweep
            await wait_until(pilot, lambda: pending() == [slow[2], slow[1]], what="moved")
            await pilot.press("x")  # and goes
            await wait_until(pilot, lambda: pending() == [slow[1]], what="removed")

            tree = app.query_one(ExperimentTree)  # a run the sweep was not given
            tree.focus()
            tree.move_cursor(next(n for n in tree.root.children
                                  if n.data == ("experiment", "quick")))
            await pilot.press("a")
            await wait_until(pilot, lambda: pending() == [slow[1], "quick"], what="queued")
            queue.focus()
            await wait_until(pilot, lambda: queue.row_count == 3 and "quick" in [
                str(c) for c in queue.get_row_at(2)], what="queue follows")
            queue.move_cursor(row=2)
            await pilot.press("left_square_bracket")
            await wait_until(pilot, lambda: pending() == ["quick", slow[1]], what="moved")

            await pilot.press("c")  # the sweep trains the added run next, then slow[1]
            await wait_until(pilot, lambda: statuses(store_path).get("quick quick") == "done",
                             what="the added run done")
            await wait_until(pilot, lambda: app.runner.current()
                             and app.runner.current()[0].label == slow[1], what="slow[1]")
            await pilot.press("S")
            await pilot.press("c")
            await wait_until(pilot, lambda: app.runner.ended is not None, what="sweep end")
        assert proc.wait(60) == 0
    finally:
        stop(proc)
    text = out.read_text()
    for line in (f"move -> done: moved slow: {slow[2]} up", f"remove -> done: removed slow: "
                 f"{slow[2]} from the queue", "queue -> done: queued quick\n",
                 "move -> done: moved quick up", "quick (1 runs)"):
        assert line in text, text
    assert statuses(store_path) == {"quick quick": "done", f"slow {slow[0]}": "cancelled",
                                    f"slow {slow[1]}": "cancelled"}


@run_async
async def test_quitting_the_app_leaves_the_sweep_running_to_the_end(tmp_path):
    # 20 epochs: long enough (seconds) for the app to attach and show the queue before the end
    study = """
    [[experiment]]
    name = "g"
    epochs = 20
    batch_size = 64
    [experiment.grid]
    lr = [1e-3, 2e-3, 3e-3]
    """
    proc, store_path, out = start_sweep(tmp_path, study)
    seen: list = []  # a second viewer, on its own connection, watching all along
    other_store = Store(store_path)
    other = AttachedRunner(other_store, running_sweep(store_path), seen.append)
    other.start()
    try:
        app = attach_app(store_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.query_one(QueueTable).row_count > 0,
                             what="queue rows")
            await pilot.press("q")  # no question asked: the sweep is not the app's
            await wait_until(pilot, lambda: not app.is_running, what="app closed")
        assert proc.wait(120) == 0
        deadline = time.monotonic() + 10
        while other.ended is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        other.stop()
        other.join(5)
        other_store.close()
        stop(proc)
    assert "request" not in out.read_text()
    assert sorted(statuses(store_path).values()) == ["done"] * 3
    assert other.ended == "finished"
    finished = [e for e in seen if type(e).__name__ == "RunFinished"]
    assert sorted(e.result.status for e in finished) == ["done"] * 3
    assert all(e.result.test_acc > 0.3 for e in finished)
    # a run it followed ends with its last epoch, as stored (the epochs written between its
    # last poll and its result were once lost: the Live table kept an earlier val acc)
    with Store(store_path, readonly=True) as store:
        final = {(r["experiment"], r["label"]): r["final_val_acc"] for r in store.runs()}
    followed = {}
    for e in seen:
        if type(e).__name__ == "EpochEnded":
            followed[(e.run.experiment, e.run.label)] = e.metrics
    assert followed, "no epoch seen"
    for key, last in followed.items():
        assert (last.epoch, last.val_acc) == (20, final[key]), key


@run_async
async def test_a_killed_writer_is_noticed_and_its_run_shows_interrupted(tmp_path):
    proc, store_path, out = start_sweep(tmp_path, STUDY.replace('"quick"', '"skip"')
                                        .replace("epochs = 2", "epochs = 300"))
    try:
        app = attach_app(store_path)
        async with app.run_test(size=SIZE) as pilot:
            charts = app.query_one(LiveCharts)
            await wait_until(pilot, lambda: charts.live is not None and charts.live.batch_x,
                             what="live batch points")
            killed_at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            await wait_until(pilot, lambda: app.runner.ended == "writer died", timeout=15,
                             what="the writer's death noticed")
            assert time.monotonic() - killed_at < 10
            assert any(f"pid {proc.pid}" in n and "is gone" in n for n in notes(app))
            await pilot.pause(0.3)
            assert charts.status_text.startswith("interrupted:")
            assert app.query_one(QueueTable).row_count == 0
    finally:
        stop(proc)
    assert statuses(store_path) == {"skip skip": "interrupted"}


def test_requests_the_sweep_cannot_carry_out_are_refused_said_and_recorded(tiny_toml, tmp_path):
    """A real Runner (not started: its runs stay pending) and a real store, no training."""
    from workbench.live_writer import LiveSweep
    from workbench.runner import Runner
    from workbench.session import open_session

    session = open_session(tiny_toml)
    lines: list[str] = []
    with Store(tmp_path / "s.sqlite") as store:
        runner = Runner(session.registry, store, lambda e: None)
        runner.submit(session.runs[:2])
        sweep = LiveSweep(store, runner, lines.append, "mnist-workbench --headless x", None)
        first, second = session.runs[:2]
        live.request(store, sweep.id, "cancel", {})
        live.request(store, sweep.id, "cancel", {"run_key": first.run_id})
        live.request(store, sweep.id, "remove", {"run_key": "nope#123"})
        live.request(store, sweep.id, "queue", {"runs": [live.run_json(first)]})
        live.request(store, sweep.id, "move", {"run_key": second.run_id, "delta": -1})
        sweep.poll(force=True)
        assert [r.run_id for r in runner.pending()] == [second.run_id, first.run_id]
        live.request(store, sweep.id, "stop", {})
        sweep.poll(force=True)
        live.request(store, sweep.id, "queue", {"runs": [live.run_json(session.runs[2])]})
        sweep.poll(force=True)
        live.request(store, sweep.id, "cancel", {})
        sweep.close("stopped on request")  # a request the sweep never saw: refused at its end
        recorded = [(c["kind"], c["state"], c["answer"]) for c in live.commands(store, sweep.id)]
        with pytest.raises(ValueError, match="unknown request 'pause'; valid: cancel"):
            live.request(store, sweep.id, "pause", {})
    assert recorded == [
        ("cancel", "refused", "nothing is running"),
        ("cancel", "refused", "nothing is running"),
        ("remove", "refused", "nope#123 is not pending"),
        ("queue", "refused", "already queued or running"),
        ("move", "done", f"moved {second.name} up"),
        ("stop", "done", "stopping after the current run (2 pending runs dropped)"),
        ("queue", "refused", "the sweep is stopping after the current run"),
        ("cancel", "refused", "the sweep ended (stopped on request)")]
    assert lines[0].endswith(": cancel -> refused: nothing is running")
    assert len(lines) == 7 and all(line.startswith("request #") for line in lines)


def test_runs_a_viewer_queues_grow_the_headless_progress_bar(tiny_toml):
    import io

    from rich.console import Console

    from workbench import events as ev
    from workbench.headless import Printer
    from workbench.session import open_session

    runs = open_session(tiny_toml).runs  # 5 runs of 2 epochs
    printer = Printer(Console(file=io.StringIO(), force_terminal=True), live=True)
    printer.start(runs[:3])
    try:
        for run in runs[:4]:  # the sweep's own three, then one a viewer queued
            printer(ev.RunQueued(run))
        assert printer.progress.tasks[0].total == 8
    finally:
        printer.stop()

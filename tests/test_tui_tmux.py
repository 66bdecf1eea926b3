"""Smoke test: the real command opens the app in a tmux pane; keys queue a run, switch to
the charts and the results table; the captured pane shows both. Skipped without tmux."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import importlib.util
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from workbench.store import Store

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    def __init__(self, command: str, width: int = 150, height: int = 45):
        self.socket = f"wb-test-{uuid.uuid4().hex[:8]}"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "wb", "-x", str(width), "-y",
                  str(height), command)
        self.tmux("resize-window", "-t", "wb", "-x", str(width), "-y", str(height))
        self.size = self.tmux("display", "-p", "-t", "wb", "#{window_width}x#{window_height}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=20).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "wb", *keys)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "wb")

    def wait_for(self, *texts: str, timeout: float = 60.0) -> str:
        """The pane once every text is on it (a frame may be captured half drawn)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts!r} never all appeared; the pane shows:\n{self.capture()}")

    def alive(self) -> bool:
        return "wb" in self.tmux("list-sessions", "-F", "#{session_name}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def app_command(*args: str) -> str:
    """The real command line in a pane, with this checkout's code and the test's data cache."""
    env = {"PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1", "TERM": "xterm-256color",
           "MNIST_WORKBENCH_DATA": os.environ["MNIST_WORKBENCH_DATA"]}
    # COLUMNS/LINES (set under pytest) would override the pane's real size
    return " ".join(["env", "-u", "COLUMNS", "-u", "LINES",
                     *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                     shlex.quote(sys.executable), "-m", "workbench.cli",
                     *(shlex.quote(a) for a in args), "; sleep 5"])  # Textual draws on stderr


def wait_for_rows(store_path, pane: Pane, count: int, timeout: float) -> list[dict]:
    """The store's rows once ``count`` of them are done (fails at once if the runner died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "runner stopped" in (screen := pane.capture()):
            raise AssertionError(f"the runner thread died; pane:\n{screen}")
        if store_path.exists():
            rows = Store(store_path, readonly=True).runs()
            if sum(r["status"] == "done" for r in rows) >= count:
                return rows
        time.sleep(0.3)
    raise AssertionError(f"the runs never finished; pane:\n{pane.capture()}")


def test_real_app_in_tmux_shows_chart_and_table(tiny_toml, tmp_path):
    store_path = tmp_path / "s.sqlite"
    # small batches and 6 epochs: the run trains for a second or more, so per-batch progress
    # reaches the chart (a run shorter than one progress interval, 0.25 s, reports only its
    # epochs: 2 epochs of batch 16 once took less)
    tiny_toml.write_text(tiny_toml.read_text().replace("batch_size = 256", "batch_size = 16")
                         .replace("epochs = 2", "epochs = 6"))
    pane = Pane(app_command(str(tiny_toml), "--only", "one", "--store", str(store_path)))
    try:
        assert pane.size.strip() == "150x45"
        pane.wait_for("Experiments", "one", "queue", "plugins")
        pane.keys("A")
        wait_for_rows(store_path, pane, 1, timeout=90)
        pane.keys("2")
        pane.wait_for("validation accuracy", "loss (x: epoch)", "batch (smoothed)")
        pane.wait_for("done: one", "test acc")
        pane.keys("3")
        row = Store(store_path, readonly=True).runs()[0]
        pane.wait_for("best val", f"{100 * row['test_acc']:.2f}%", "mnist-sample")
        pane.keys("q")
        deadline = time.monotonic() + 20
        while "Experiments" in pane.capture() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Experiments" not in pane.capture(), "the app did not quit on q"
    finally:
        pane.close()


def test_real_app_browses_a_store_and_asks_before_training_into_it(tiny_toml, tmp_path):
    """`--store PATH` without a study file, at 100x30: the store's own experiment with its
    accuracy; A (with --rerun) asks first, and Enter, the default, trains nothing."""
    store_path = tmp_path / "s.sqlite"
    done = run_cli("--headless", str(tiny_toml), "--only", "one", "--store", str(store_path))
    assert done.returncode == 0, done.stderr
    (row,) = Store(store_path, readonly=True).runs()
    pane = Pane(app_command("--store", str(store_path), "--rerun"), width=100, height=30)
    try:
        screen = pane.wait_for("browsing", "one", f"test {100 * row['test_acc']:.2f}%")
        assert "small-grid" not in screen and "lr-hidden" not in screen  # not a study's
        pane.keys("A")
        pane.wait_for("opened to browse it", "Train 1 run here")
        pane.keys("Enter")
        pane.wait_for("queue: 0 running, 0 pending")
        time.sleep(2)
        (after,) = Store(store_path, readonly=True).runs()
        assert (after["status"], after["test_acc"]) == ("done", row["test_acc"])
        pane.keys("q")
        deadline = time.monotonic() + 20
        while "browsing" in pane.capture() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "browsing" not in pane.capture(), "the app did not quit on q"
    finally:
        pane.close()


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_real_app_starts_ray_itself_and_runs_the_queue_there(tiny_toml, tmp_path):
    """`mnist-workbench FILE --executor ray` in a terminal: the app starts a local Ray
    instance on its runner thread (ray.init under Textual's captured stderr once failed
    there) and the queued runs land in the store, each once."""
    store_path = tmp_path / "s.sqlite"
    ray_dir = Path(tempfile.mkdtemp(prefix="wb-ray-"))  # short: Ray's socket paths
    pane = Pane(app_command(str(tiny_toml), "--executor", "ray", "--ray-dir", str(ray_dir),
                            "--device", "cpu", "--store", str(store_path)))
    try:
        pane.wait_for("Experiments", "Ray at a local instance")
        pane.keys("A")
        rows = wait_for_rows(store_path, pane, 5, timeout=150)
        assert len(rows) == 5 and {r["status"] for r in rows} == {"done"}, rows
        screen = pane.wait_for("1/1 done", "4/4 done")
        assert "runner stopped" not in screen, screen
        pane.keys("q")
        deadline = time.monotonic() + 60  # quitting shuts the local Ray instance down
        while "Experiments" in pane.capture() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Experiments" not in pane.capture(), "the app did not quit on q"
        assert (ray_dir / "ray").is_dir(), "Ray's files go to the --ray-dir folder"
    finally:
        pane.close()
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_app_in_one_pane_attaches_to_a_headless_sweep_in_another(tmp_path):
    """Sweep in one pane, `mnist-workbench attach` in another: the app names the sweep's
    process, shows its running run live, cancels it there, and quits leaving it running."""
    from tests.tiny_study import tiny_study
    from workbench import live_store as live

    toml = tiny_study(tmp_path, """
    [[experiment]]
    name = "slow"
    epochs = 300
    batch_size = 32
    [experiment.grid]
    lr = [1e-3, 2e-3]
    """)
    store_path = tmp_path / "s.sqlite"
    sweep = Pane(app_command("--headless", str(toml), "--store", str(store_path),
                             "--no-stack"), width=200)
    app = None
    try:
        sweep.wait_for("slow: lr=0.001 | val", "live: attach with")
        app = Pane(app_command("attach", "--store", str(store_path)), width=200)
        with Store(store_path, readonly=True) as store:
            pid = live.latest_sweep(store)["pid"]
        app.wait_for(f"attached to pid {pid}", "queue: 1 running, 1 pending")
        app.keys("2")
        app.wait_for("▶ slow: lr=0.001 | epoch")
        app.keys("c")
        sweep.wait_for("cancel -> done: cancelling slow: lr=0.001",
                       "[cancelled] slow: lr=0.001", "slow: lr=0.002 | val")
        app.wait_for("sweep: cancel done", "▶ slow: lr=0.002")
        app.keys("q")
        deadline = time.monotonic() + 30
        while "attached to" in app.capture() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "attached to" not in app.capture()  # the app is gone ...
        time.sleep(1.5)
        with Store(store_path, readonly=True) as store:  # ... the sweep goes on
            assert live.is_running(live.latest_sweep(store))
        os.kill(pid, 2)  # Ctrl-C: the sweep records its run cancelled and ends
        sweep.wait_for("rerun the same command to resume")
    finally:
        sweep.close()
        if app is not None:
            app.close()

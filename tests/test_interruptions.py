"""Interruptions lose nothing: Ctrl-C, kill -9 at random moments, two processes on one store,
a full disk and a read-only store. Real subprocesses of the real command line, real SQLite."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, SIGINT_DEFAULT

# Tiny models train fastest on one thread, and far faster so on a busy 2-core machine.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def toml_with(tmp_path: Path, lrs: int, epochs: int = 1, hidden: int = 8,
              batch: int = 512, name: str = "experiments.toml", exp: str = "sweep") -> Path:
    """One experiment of ``lrs`` tiny runs on the shipped sample (one seed: one split)."""
    grid = ", ".join(f"{(i + 1) * 1e-3:g}" for i in range(lrs))
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        [defaults]
        dataset = "mnist-sample"
        hidden = {hidden}
        epochs = {epochs}
        batch_size = {batch}
        seed = 5
        [[experiment]]
        name = "{exp}"
        [experiment.grid]
        lr = [{grid}]
    """))
    return path


def start_cli(*args: str, prefix: tuple[str, ...] = (), preexec=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore", **ONE_THREAD}
    return subprocess.Popen([*prefix, sys.executable, "-m", "workbench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def finish_lines(proc: subprocess.Popen, out: "Lines", timeout: float = 120
                 ) -> tuple[int, str, str]:
    """Like finish, for a child whose stdout a Lines reader already consumes."""
    proc.wait(timeout)
    return proc.returncode, out.text(), proc.stderr.read()


class Lines:
    """Reads a child's stdout on a thread, so the test can wait for a line with a timeout."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)  # end of output
            self._cond.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = [ln for ln in self.lines if ln is not None and text in ln]
                if len(seen) >= count:
                    return True
                if None in self.lines or time.monotonic() > deadline:
                    return False
                self._cond.wait(0.05)

    def text(self) -> str:
        self._thread.join(10)
        return "".join(ln for ln in self.lines if ln is not None)


def rows(store: Path) -> list[dict]:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(
            "SELECT id, experiment, config_hash, dataset, status, error, attempts, test_acc, "
            "epochs_done, (SELECT count(*) FROM epochs e WHERE e.run_id = runs.id) AS n_epochs"
            " FROM runs ORDER BY id")]


def integrity(store: Path) -> str:
    with sqlite3.connect(store) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


# -- Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_cancels_the_current_run_keeps_the_finished_and_rerun_resumes(tmp_path):
    toml = toml_with(tmp_path, lrs=4, epochs=3, hidden=16, batch=128)
    store = tmp_path / "results.sqlite"
    args = ("--headless", str(toml), "--store", str(store), "--no-stack", "--device", "cpu")
    proc = start_cli(*args, prefix=SIGINT_DEFAULT)
    out = Lines(proc)
    assert out.wait_for("[done]", 1), out.text()
    assert out.wait_for("epoch 1/3", 2), out.text()  # the second run is training
    proc.send_signal(signal.SIGINT)
    code, text, err = finish_lines(proc, out, timeout=60)

    assert code == 130, text + err
    assert "interrupted: cancelling the current run" in text
    assert "rerun the same command to resume" in text
    assert "Traceback" not in text + err
    first = rows(store)
    assert [r["status"] for r in first] == ["done", "cancelled"]
    assert first[1]["error"].startswith("cancelled in epoch ")
    assert first[0]["n_epochs"] == 3 and first[0]["test_acc"] > 0.5

    code, text, err = finish(start_cli(*args))
    assert code == 0, text + err
    assert text.count("[skip]") == 1 and text.count("[done]") == 3
    final = rows(store)
    assert [r["status"] for r in final] == ["done"] * 4
    assert len({(r["experiment"], r["config_hash"]) for r in final}) == 4
    assert final[0] == first[0]  # the finished run is untouched
    assert final[1]["attempts"] == 2 and final[1]["n_epochs"] == 3  # the cancelled one redone
    assert integrity(store) == "ok"


# -- kill -9 ------------------------------------------------------------------------------

KILLS = 10
EPOCHS = 4
KILL_SEED = int(os.environ.get("WORKBENCH_KILL_SEED", "20261128"))


def test_kill_9_at_random_moments_loses_nothing_and_trains_nothing_twice(tmp_path):
    """A sweep of 24 tiny runs, SIGKILLed at 10 random moments (while starting up, between
    runs, inside training and store writes), resumed each time, then run to the end."""
    from workbench.store import Store

    rng = random.Random(KILL_SEED)
    # long enough that 10 kills come before the sweep is through (training keeps getting faster)
    toml = toml_with(tmp_path, lrs=24, epochs=EPOCHS, batch=128)
    store = tmp_path / "results.sqlite"
    args = ("--headless", str(toml), "--store", str(store), "--no-stack", "--device", "cpu")
    finished: dict[tuple, dict] = {}  # key -> the done row as first seen
    killed = interrupted_marked = 0
    pids: set[int] = set()
    attempt = 0
    while killed < KILLS:
        attempt += 1
        assert attempt <= 2 * KILLS, "the sweep kept finishing before it could be killed"
        proc = start_cli(*args)
        out = Lines(proc)
        if attempt % 4 == 1:  # while it starts: imports, plugins, store, data
            time.sleep(rng.uniform(0.05, 2.5))
        else:  # while it trains: after 0-1 more runs, inside a run, an epoch, a write
            out.wait_for("[start]", 1, timeout=60)
            out.wait_for("[done]", rng.randint(0, 1), timeout=60)
            time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        pids.add(proc.pid)
        out.text()
        proc.stderr.close()
        killed += proc.returncode == -signal.SIGKILL

        assert integrity(store) == "ok" if store.exists() else True
        if not store.exists():
            continue
        reopened = Store(store)  # what any later process does first
        interrupted_marked += sum(r["status"] == "interrupted" for r in reopened.runs())
        assert not [r for r in reopened.runs() if r["status"] == "running"]  # pid is gone
        reopened.close()
        now = rows(store)
        keys = [(r["experiment"], r["config_hash"], r["dataset"]) for r in now]
        assert len(keys) == len(set(keys))  # every run at most once
        for r in now:
            key = (r["experiment"], r["config_hash"], r["dataset"])
            if key in finished:  # a finished run stays exactly as it was
                assert r == finished[key]
            elif r["status"] == "done":
                assert r["n_epochs"] == EPOCHS and r["test_acc"] is not None
                finished[key] = r
            else:
                assert r["status"] == "interrupted", r
                assert any(f"its process (pid {pid}) ended" in r["error"] for pid in pids)

    code, text, err = finish(start_cli(*args))
    assert code == 0, text + err
    final = rows(store)
    assert len(final) == 24 and all(r["status"] == "done" for r in final)
    assert len({r["config_hash"] for r in final}) == 24
    assert all(r["n_epochs"] == EPOCHS for r in final)
    for r in final:
        key = (r["experiment"], r["config_hash"], r["dataset"])
        if key in finished:
            assert r == finished[key]  # never trained twice
    assert text.count("[skip]") == len(finished)
    assert integrity(store) == "ok"
    assert killed == KILLS
    redone = sum(r["attempts"] > 1 for r in final)
    print(f"\nkill test (seed {KILL_SEED}): {killed} SIGKILLs survived, {len(finished)} runs "
          f"done before the last resume, {interrupted_marked} interrupted rows seen, "
          f"{redone} runs redone, 24/24 runs present once, 0 lost")
    assert interrupted_marked >= 1 and redone >= 1


# -- two processes on one store --------------------------------------------------------------

def test_two_sweeps_and_a_reader_share_one_store(tmp_path):
    """Two headless sweeps write the same store while this process browses it (as the TUI
    does) and a third process exports it again and again: no errors, nothing lost."""
    from workbench.store import Store

    store = tmp_path / "results.sqlite"
    # 6 epochs: the sweeps last long enough for several reads and an export in between
    a = toml_with(tmp_path, lrs=4, epochs=6, name="a.toml", exp="a")
    b = toml_with(tmp_path, lrs=4, epochs=6, name="b.toml", exp="b")
    writers = [start_cli("--headless", str(p), "--store", str(store), "--no-stack",
                         "--device", "cpu") for p in (a, b)]
    reads = exports = 0
    seen_done = 0
    while any(w.poll() is None for w in writers):
        if store.exists():
            browser = Store(store)
            assert browser.mark_interrupted() == 0  # never marks a live process's runs
            runs = browser.runs()
            for run in runs:
                browser.epochs(run["id"])
            done = sum(r["status"] == "done" for r in runs)
            assert done >= seen_done  # what was done stays done
            seen_done = done
            browser.close()
            reads += 1
            if reads % 25 == 1:
                csv = tmp_path / f"export-{exports}.csv"
                proc = subprocess.run(
                    [sys.executable, "-m", "workbench.cli", "--store", str(store), "--export",
                     str(csv)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                    capture_output=True, text=True, timeout=60)
                assert proc.returncode == 0, proc.stderr
                exports += 1
        time.sleep(0.05)
    for w in writers:
        code, out, err = finish(w)
        assert code == 0, out + err
        assert "Traceback" not in out + err and "locked" not in out + err
    final = rows(store)
    assert sorted((r["experiment"], r["status"]) for r in final) == \
        [("a", "done")] * 4 + [("b", "done")] * 4
    assert integrity(store) == "ok"
    assert reads >= 5 and exports >= 1


# -- full disk, read-only store -------------------------------------------------------------

def test_a_full_disk_stops_the_sweep_clearly_and_keeps_what_was_stored(tmp_path):
    """RLIMIT_FSIZE makes every write past a size fail (EFBIG), as a full disk does."""
    import csv
    import resource

    store = tmp_path / "results.sqlite"
    two = toml_with(tmp_path, lrs=2, name="two.toml")
    code, out, err = finish(start_cli("--headless", str(two), "--store", str(store),
                                      "--device", "cpu"))
    assert code == 0, out + err
    before = rows(store)
    limit = store.stat().st_size + 24 * 1024

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    more = toml_with(tmp_path, lrs=6, name="two.toml")  # the same 2 runs + 4 more
    code, out, err = finish(start_cli("--headless", str(more), "--store", str(store),
                                      "--no-stack", "--device", "cpu", preexec=full_disk))
    assert code == 1, out + err
    assert f"store {store}: write failed" in out
    assert "(is the disk full, or the file read-only?)" in out
    assert "The sweep stopped; fix the store" in out and "rerun to resume" in out
    assert "Traceback" not in out + err
    assert integrity(store) == "ok"
    after = rows(store)
    assert after[:2] == before  # finished results stay, untouched and readable
    assert len(after) < 6  # it stopped instead of failing every run
    csv_path = tmp_path / "kept.csv"
    code, out, err = finish(start_cli("--store", str(store), "--export", str(csv_path)))
    assert code == 0, err
    with open(csv_path) as fh:
        exported = list(csv.DictReader(fh))
    assert sum(r["status"] == "done" for r in exported) >= 2
    # (with space again a rerun resumes: the kill test shows resuming after any stop)


def _unprivileged() -> tuple[str, ...]:
    """A prefix that runs a command without root's power to write read-only files."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv"):
        return ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    pytest.skip("running as root without setpriv: a read-only file cannot be simulated")


def test_a_read_only_store_is_refused_for_runs_and_still_readable(tmp_path):
    prefix = _unprivileged()
    folder = tmp_path / "shared"
    folder.mkdir()
    store = folder / "results.sqlite"
    toml = toml_with(tmp_path, lrs=2)
    code, out, err = finish(start_cli("--headless", str(toml), "--store", str(store),
                                      "--device", "cpu"))
    assert code == 0, out + err
    before, listing = store.read_bytes(), sorted(p.name for p in folder.iterdir())
    store.chmod(0o444)
    folder.chmod(0o555)
    try:
        more = toml_with(tmp_path, lrs=4)
        code, out, err = finish(start_cli("--headless", str(more), "--store", str(store),
                                          prefix=prefix))
        assert code == 2, out + err
        assert f"--store {store}: not writable" in err and "Permission denied" in err
        assert "[start]" not in out
        assert store.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == listing

        csv_path = tmp_path / "results.csv"
        code, out, err = finish(start_cli("--store", str(store), "--export", str(csv_path),
                                          prefix=prefix))
        assert code == 0, err
        assert f"exported 2 runs from {store}" in out
        assert csv_path.read_text().count(",done,") == 2
    finally:
        folder.chmod(0o755)
        store.chmod(0o644)

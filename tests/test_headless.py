"""The headless face end to end, in real subprocesses, on the shipped mnist-sample."""

import csv
import sqlite3
import sys
import subprocess
import os

from conftest import ROOT, run_cli


def _rows(store):
    with sqlite3.connect(store) as db:
        return db.execute("SELECT experiment, label, status, dataset, test_acc, epochs_done, "
                          "confusion FROM runs ORDER BY id").fetchall()


def test_headless_end_to_end_on_a_tiny_toml(tiny_toml, tmp_path):
    store = tmp_path / "results.sqlite"
    out_csv = tmp_path / "results.csv"
    result = run_cli("--headless", str(tiny_toml), "--store", str(store), "--export",
                     str(out_csv))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # not a terminal: plain lines, no escape codes
    assert "5 runs, 10 epochs" in out
    assert out.count("[done]") == 5
    assert "Val Acc:" in out and "(Best:" in out
    assert "best of small-grid:" in out
    assert "confusion matrix of the best run" in out and "most confused" in out
    rows = _rows(store)
    assert [(r[0], r[2], r[5]) for r in rows] == [("one", "done", 2)] + [
        ("small-grid", "done", 2)] * 4
    assert {r[1] for r in rows[1:]} == {"hidden=8 lr=0.001", "hidden=16 lr=0.001",
                                        "hidden=8 lr=0.003", "hidden=16 lr=0.003"}
    assert all(r[3] == "mnist-sample" for r in rows)
    assert all(0.5 < r[4] < 1 for r in rows)
    with open(out_csv) as fh:
        exported = list(csv.DictReader(fh))
    assert len(exported) == 5 and {"lr", "hidden", "test_acc", "status"} <= set(exported[0])
    assert float(exported[0]["test_acc"]) == rows[0][4]


def test_rerun_skips_done_runs_and_rerun_flag_forces(tiny_toml, tmp_path):
    store = tmp_path / "s.sqlite"
    first = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one")
    assert first.returncode == 0 and first.stdout.count("[done]") == 1
    before = _rows(store)
    again = run_cli("--headless", str(tiny_toml), "--store", str(store))
    assert again.returncode == 0
    assert again.stdout.count("[skip] one") == 1 and "already done" in again.stdout
    assert again.stdout.count("[done]") == 4  # only the grid trains
    rows = _rows(store)
    assert len(rows) == 5 and rows[0] == before[0]  # the finished run is untouched
    forced = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one",
                     "--rerun")
    assert forced.stdout.count("[done]") == 1 and "[skip]" not in forced.stdout
    assert len(_rows(store)) == 5  # trained again in place, never duplicated
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT attempts FROM runs WHERE experiment='one'").fetchone() == (2,)


def test_offline_mnist_falls_back_loudly_and_marks_every_row(tmp_path):
    toml = tmp_path / "e.toml"
    toml.write_text('[defaults]\ndataset = "mnist"\nepochs = 1\nhidden = 8\n'
                    '[[experiment]]\nname = "a"\n[experiment.grid]\nlr = [1e-3, 2e-3]\n')
    store = tmp_path / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store))
    assert result.returncode == 0, result.stderr
    first_lines = result.stdout.splitlines()[:3]
    assert any("DATA FALLBACK" in line and "NOT comparable" in line for line in first_lines)
    assert result.stdout.count("mnist-sample (fallback for mnist)") >= 4  # lines + table rows
    assert {r[3] for r in _rows(store)} == {"mnist-sample (fallback for mnist)"}


def test_no_fallback_fails_naming_the_remedies(tmp_path):
    toml = tmp_path / "e.toml"
    toml.write_text('[[experiment]]\nname = "a"\ndataset = "mnist"\n')
    store = tmp_path / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store), "--no-fallback")
    assert result.returncode == 1
    assert "not available" in result.stdout and "--data-dir" in result.stdout
    assert "MNIST_WORKBENCH_DATA" in result.stdout and "mnist-sample" in result.stdout
    assert "[done]" not in result.stdout


def test_a_reader_that_leaves_early_stops_the_output_quietly():
    """`--dry-run | head -1`: the reader closes the pipe before the plan is written; the
    command stops with the shell's broken-pipe status, and no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--headless",
                             str(ROOT / "experiments.toml"), "--dry-run"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # before the interpreter has even started: the first write fails
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_dry_run_prints_the_seed_study_plan():
    result = run_cli("--headless", str(ROOT / "experiments.toml"), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert lines["baseline"] == ["1", "3", "11"]  # runs, epochs, seeds
    assert lines["grid"] == ["81", "486", "11"]
    assert lines["grid-seeds"] == ["60", "450", "11,", "12,", "13,", "14,", "15"]
    assert lines["activations"] == ["2", "20", "11"]
    assert lines["final"] == ["5", "100", "11,", "12,", "13,", "14,", "15"]
    assert lines["final-cosine"] == lines["final-activations"] == ["1", "20", "11"]
    assert lines["total"] == ["153", "1119"]


def test_dry_run_says_which_runs_the_store_already_has_done_and_writes_nothing(tiny_toml,
                                                                                tmp_path):
    store = tmp_path / "results.sqlite"
    fresh = run_cli("--headless", str(tiny_toml), "--store", str(store), "--dry-run")
    assert fresh.returncode == 0, fresh.stderr
    assert f"store {store}: not there yet (a run creates it); every run would train" \
        in fresh.stdout
    assert not store.exists() and list(tmp_path.iterdir()) == [tiny_toml]  # nothing created

    first = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one")
    assert first.returncode == 0 and first.stdout.count("[done]") == 1, first.stdout
    partly = run_cli("--headless", str(tiny_toml), "--store", str(store), "--dry-run")
    assert partly.returncode == 0, partly.stderr
    assert (f"store {store}: 1 of the 5 runs planned already done there, would be skipped (one 1; "
            "--rerun trains them again); 4 would train") in partly.stdout

    sweep = run_cli("--headless", str(tiny_toml), "--store", str(store))
    assert sweep.returncode == 0 and sweep.stdout.count("[done]") == 4, sweep.stdout
    before = store.read_bytes()
    dry = run_cli("--headless", str(tiny_toml), "--store", str(store), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "total           5      10" in dry.stdout
    assert (f"store {store}: 5 of the 5 runs planned already done there, would be skipped (one 1, "
            "small-grid 4; --rerun trains them again); 0 would train") in dry.stdout
    assert store.read_bytes() == before  # read, never written
    rerun = run_cli("--headless", str(tiny_toml), "--store", str(store), "--dry-run", "--rerun")
    assert f"store {store}: 5 of the 5 runs planned already done there; --rerun trains them again" \
        in rerun.stdout
    # the real run agrees: it skips all five and trains nothing
    real = run_cli("--headless", str(tiny_toml), "--store", str(store))
    assert real.returncode == 0
    assert real.stdout.count("[skip]") == 5 and "[done]" not in real.stdout


def test_dry_run_names_runs_done_on_a_fallback_data_set(tiny_toml, tmp_path):
    store = tmp_path / "results.sqlite"
    first = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one",
                    "--dataset", "mnist")  # offline: mnist-sample stands in
    assert first.returncode == 0 and "[done] one" in first.stdout, first.stdout
    dry = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one",
                  "--dataset", "mnist", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"store {store}: none of the 1 run planned done there on the data set they name" \
        in dry.stdout
    assert ("  1 of them is done there on mnist-sample (fallback for mnist): skipped too while "
            "mnist cannot be had, trained when it can") in dry.stdout
    again = run_cli("--headless", str(tiny_toml), "--store", str(store), "--only", "one",
                    "--dataset", "mnist")
    assert again.stdout.count("[skip] one") == 1 and "[done]" not in again.stdout


def test_only_and_dataset_override(tmp_path, tiny_toml):
    result = run_cli("--headless", str(tiny_toml), "--only", "one", "--dataset", "fashion-mnist",
                     "--dry-run")
    assert result.returncode == 0
    assert "one" in result.stdout and "small-grid" not in result.stdout


def test_help_does_not_import_torch_or_textual():
    code = ("import sys, contextlib, io\n"
            "from workbench.cli import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "assert '--headless' in buf.getvalue()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'textual', 'pandas', 'torchvision')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_threads_flag_is_checked_and_applied(tiny_toml, tmp_path, registry):
    bad = run_cli("--headless", str(tiny_toml), "--threads", "0", "--store",
                  str(tmp_path / "s.sqlite"))
    assert bad.returncode == 2 and "--threads" in bad.stderr and "expected a whole number" in bad.stderr
    assert not (tmp_path / "s.sqlite").exists()

    import torch
    from workbench.runner import Settings, run_all
    from workbench.session import open_session
    from workbench.store import Store

    from workbench import events as ev

    seen = []  # torch's thread count where the training runs (the runner thread)

    def sink(event):
        if isinstance(event, ev.RunStarted):
            seen.append(torch.get_num_threads())

    session = open_session(tiny_toml, only=["one"])
    for threads in (1, 2):
        runner = run_all(session.runs, session.registry, Store(tmp_path / f"{threads}.sqlite"),
                         sink, Settings(threads=threads))
        assert runner.counts == {"done": 1}
    assert seen == [1, 2]

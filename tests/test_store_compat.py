"""The store across versions, foreign files and damage, through the real command line: a store
written by release 0.1.0 (tests/fixtures/store_v1) is migrated once, after a backup, with
every result intact; a newer store, another program's SQLite file and a damaged file are
refused before anything is written; reading never changes a file."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from workbench.store_schema import SCHEMA_VERSION
from test_tui_flows import run_async

FIXTURE = ROOT / "tests" / "fixtures" / "store_v1"
V1_TABLES = {"runs": "id", "epochs": "run_id, epoch", "meta": "key"}


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of the 0.1.0 tables, every 0.1.0 column (predictions and matrices included)."""
    with closing(sqlite3.connect(FIXTURE / "workbench.sqlite")) as fixture:
        columns = {t: [r[1] for r in fixture.execute(f"PRAGMA table_info({t})")]
                   for t in V1_TABLES}
    with closing(sqlite3.connect(path)) as db:
        out = {}
        for table, order in V1_TABLES.items():
            cols = columns[table]
            out[table] = db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"
                                    ).fetchall()
    out["meta"] = [r for r in out["meta"] if r[0] != "schema_version"]
    return out


def version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])


@pytest.fixture
def old(tmp_path) -> Path:
    """A copy of the 0.1.0 store with the study that wrote it (and its plugins folder)."""
    shutil.copytree(FIXTURE, tmp_path / "study")
    return tmp_path / "study"


def headless(study: Path, *args: str):
    return run_cli("--headless", str(study / "study.toml"), "--store",
                   str(study / "workbench.sqlite"), "--device", "cpu", "--no-stack", *args,
                   cwd=study)


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_a_writer_migrates_a_0_1_0_store_once_after_a_backup_keeping_every_result(old):
    store = old / "workbench.sqlite"
    before = dump(store)
    assert len(before["runs"]) == 7 and len(before["epochs"]) == 12
    assert version(store) == 1

    proc = headless(old, "--only", "grid")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(f"updated from layout version 1 to {SCHEMA_VERSION}") == 1
    assert f"the file as it was is kept in {store}.bak-v1" in proc.stdout
    assert proc.stdout.count("[skip]") == 4 and "[done]" not in proc.stdout  # nothing retrained
    assert version(store) == SCHEMA_VERSION
    assert dump(store) == before  # every run, epoch, matrix and prediction, value for value
    assert dump(Path(f"{store}.bak-v1")) == before and version(Path(f"{store}.bak-v1")) == 1
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x4D4E5742
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # each run's result became its latest attempt, numbered as 0.1.0 counted them
        assert db.execute("SELECT r.label, a.number, a.status, a.test_acc = r.test_acc, "
                          "(SELECT count(*) FROM attempt_epochs WHERE attempt_id = a.id) "
                          "FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.id IN (1, 7)"
                          " ORDER BY r.id").fetchall() == [("baseline", 2, "done", 1, 2),
                                                           ("long", 1, "cancelled", None, 2)]

    again = headless(old, "--only", "grid")  # idempotent: no second migration, no backup
    assert again.returncode == 0, again.stdout + again.stderr
    assert "updated from layout" not in again.stdout
    assert sorted(p.name for p in old.glob("workbench.sqlite.bak*")) == ["workbench.sqlite.bak-v1"]
    assert dump(store) == before

    # a new feature on the migrated store: a rerun is a third attempt, the second one kept
    rerun = headless(old, "--only", "baseline", "--rerun")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT a.number, a.status FROM attempts a JOIN runs r ON "
                          "r.id = a.run_id WHERE r.label='baseline' ORDER BY a.number"
                          ).fetchall() == [(2, "done"), (3, "done")]


def test_exporting_an_old_store_reads_it_without_changing_it(old, tmp_path):
    store = old / "workbench.sqlite"
    for extra in old.glob("workbench.sqlite-*"):
        extra.unlink()
    was = fingerprint(store)
    out = tmp_path / "out.csv"
    proc = run_cli("--store", str(store), "--export", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exported 7 runs" in proc.stdout
    rows = list(csv.DictReader(out.open()))
    assert {r["label"]: (r["status"], r["attempts"]) for r in rows}["baseline"] == ("done", "2")
    assert sorted(float(r["test_acc"]) for r in rows if r["test_acc"])[-1] == pytest.approx(0.87)
    assert fingerprint(store) == was and version(store) == 1
    assert not list(old.glob("workbench.sqlite.bak*"))


@run_async
async def test_the_app_browses_an_old_store_without_changing_it(old, tmp_path, monkeypatch):
    from workbench.tui.launch import make_app
    from workbench.tui.widgets.results import ResultsTable

    store = old / "workbench.sqlite"
    for extra in old.glob("workbench.sqlite-*"):
        extra.unlink()
    monkeypatch.chdir(tmp_path)  # no experiments.toml here: browsing
    was = fingerprint(store)
    app = make_app(None, store, start_runner=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any(f"an older layout (version 1; this one writes {SCHEMA_VERSION}), read "
                   "without changing it"
                   in n for n in notes), notes
        await pilot.press("3")
        table = app.query_one(ResultsTable)
        assert len(table.visible_ids) == 7
        assert table.cell_texts(5)["test_acc"] == "87.00%"
        await pilot.press("A")  # training into a browsed store is refused, with the way to do it
        await pilot.pause()
        assert any("is open read-only (browsed)" in n.message for n in app._notifications)
        assert app.runner.pending() == []
    app.store.close()
    assert fingerprint(store) == was and not list(old.glob("workbench.sqlite.bak*"))


@pytest.fixture
def newer(old) -> Path:
    """The fixture as a later release would leave it: today's layout and then some, version 99."""
    from workbench.store import Store

    store = old / "workbench.sqlite"
    Store(store).close()
    with closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE later_things (id INTEGER PRIMARY KEY, what TEXT)")
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        db.execute("PRAGMA user_version = 99")
        db.commit()
    for extra in old.glob("workbench.sqlite-*"):
        extra.unlink()
    return store


def test_a_newer_store_is_refused_for_writing_and_still_exported(newer, tmp_path):
    was = fingerprint(newer)
    proc = headless(newer.parent)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "written by a newer mnist-workbench (store layout version 99; this one writes " \
           f"version {SCHEMA_VERSION})" in proc.stderr
    assert "Upgrade mnist-workbench" in proc.stderr and "--export still work" in proc.stderr
    app = run_cli(str(newer.parent / "study.toml"), "--store", str(newer), cwd=newer.parent)
    assert app.returncode == 2 and "store layout version 99" in app.stderr, app.stderr
    assert fingerprint(newer) == was

    out = tmp_path / "out.csv"
    proc = run_cli("--store", str(newer), "--export", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "written by a newer mnist-workbench (layout version 99" in proc.stdout
    assert "exported 7 runs" in proc.stdout and len(list(csv.DictReader(out.open()))) == 7
    assert fingerprint(newer) == was


@run_async
async def test_the_app_browses_a_newer_store_read_only_and_says_so(newer, tmp_path, monkeypatch):
    from workbench.tui.launch import make_app

    monkeypatch.chdir(tmp_path)  # no experiments.toml here: browsing
    was = fingerprint(newer)
    app = make_app(None, newer, start_runner=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("layout version 99" in n and "read-only" in n for n in notes), notes
        assert app.store.readonly and len(app.store.runs()) == 7
    app.store.close()
    assert fingerprint(newer) == was


def test_another_programs_sqlite_file_is_refused_and_left_byte_identical(tmp_path):
    other = tmp_path / "inventory.sqlite"
    with closing(sqlite3.connect(other)) as db:  # another program's file, with a runs table
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, route TEXT, km REAL)")
        db.execute("INSERT INTO runs (route, km) VALUES ('river', 10.5)")
        db.commit()
    was = fingerprint(other)
    toml = FIXTURE / "study.toml"
    out = tmp_path / "out.csv"
    for args in (("--headless", str(toml), "--only", "baseline"), (str(toml),),
                 ("--export", str(out))):
        proc = run_cli(*args, "--store", str(other), cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"store {other}: an SQLite file of another program (tables: runs), not a " \
               "workbench store; it was left untouched" in proc.stderr
        assert "Traceback" not in proc.stderr and "exported" not in proc.stdout
    assert fingerprint(other) == was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.sqlite"]


def test_a_damaged_store_is_refused_by_headless_the_app_and_export(old, tmp_path):
    store = old / "workbench.sqlite"
    with open(store, "r+b") as fh:  # a damaged page in the middle of the results
        fh.seek(4096 * 11 + 100)
        fh.write(b"\xff" * 600)
    with closing(sqlite3.connect(store)) as db:  # plain queries still read it as if whole
        assert db.execute("PRAGMA quick_check").fetchone()[0] != "ok"
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 7
    was = fingerprint(store)
    out = tmp_path / "out.csv"
    for args in (("--headless", str(old / "study.toml")), (str(old / "study.toml"),),
                 ("--export", str(out))):
        proc = run_cli(*args, "--store", str(store), cwd=old)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"store {store}: damaged (SQLite says: " in proc.stderr
        assert f"sqlite3 {store} .recover | sqlite3 " in proc.stderr
        assert "--store NEW_PATH" in proc.stderr and "writable" not in proc.stderr
        assert "exported" not in proc.stdout and not out.exists()
    assert fingerprint(store) == was


def test_a_newer_store_this_version_cannot_read_is_refused_even_for_export(old, tmp_path):
    store = old / "workbench.sqlite"  # the 0.1.0 tables under a version 99 stamp
    with closing(sqlite3.connect(store)) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        db.commit()
    proc = run_cli("--store", str(store), "--export", str(tmp_path / "out.csv"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"(store layout version 99; this one reads up to version {SCHEMA_VERSION}) whose " \
           "results this one cannot read (no " in proc.stderr
    assert "shown_attempt, attempt_epochs, attempts); upgrade" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.csv").exists()

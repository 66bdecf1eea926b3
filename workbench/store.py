"""The results store: one SQLite file (WAL) with runs, per-epoch metrics and confusion matrices.

A run is identified by (experiment, config hash, data set used). A run row is written as
'running' when it starts, its epochs as they end, and its final status, metrics and confusion
matrix in one transaction at the end, so a crash never leaves a half-finished run marked done.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from workbench.store_schema import apply_pending, stored_version
from workbench.types import DONE, INTERRUPTED, RUNNING, EpochMetrics, RunResult, RunSpec

DEFAULT_STORE = Path("results") / "workbench.sqlite"

RESULT_COLUMNS = ("id", "experiment", "config_hash", "label", "status", "dataset", "device", "epochs_done",
                  "best_val_acc", "best_epoch", "test_acc", "train_seconds", "error", "config",
                  "data_source", "final_train_loss", "final_val_loss", "final_val_acc",
                  "test_loss")


def _writer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class StoreError(Exception):
    """The store cannot be opened or written; the message names the path and the remedy."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (read from metadata: importing
    torchvision or pandas here would cost seconds at the first run)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for mod, dist in (("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"),
                      ("pandas", "pandas"), ("workbench", "mnist-workbench")):
        try:
            versions[mod] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


class Store:
    """Thread-safe access to one results file (one connection, serialised by a lock)."""

    def __init__(self, path: Path | str, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self.migrated: list = []  # the migration steps this open applied (a writer's)
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a folder; give a file path such as "
                             f"{self.path / 'workbench.sqlite'}")
        try:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect("mode=ro" if readonly else "")
            if readonly:
                try:
                    self._db.execute("SELECT count(*) FROM runs").fetchone()
                except sqlite3.OperationalError:  # WAL in a folder we cannot write
                    self._db.close()
                    self._db = self._connect("immutable=1")
                    self._db.execute("SELECT count(*) FROM runs").fetchone()
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.execute("PRAGMA foreign_keys = ON")
                self.migrated = self._migrate()
        except (sqlite3.Error, OSError) as exc:
            if "not a database" in str(exc):
                raise StoreError(f"store {self.path}: not a results file (SQLite); pass "
                                 "another --store PATH") from None
            raise StoreError(f"store {self.path}: cannot open ({exc}); check that the folder "
                             "exists and is writable, or pass another --store PATH") from None
        if not readonly:
            try:
                self.mark_interrupted()
            except StoreError:  # e.g. disk full: reading still works, writes will say why
                pass

    def _migrate(self) -> list:
        """Bring the file to the current layout in one transaction."""
        with self._tx() as db:
            return apply_pending(db, stored_version(db))

    def _connect(self, params: str) -> sqlite3.Connection:
        target = f"file:{self.path.resolve()}?{params}" if params else str(self.path)
        db = sqlite3.connect(target, uri=bool(params), check_same_thread=False, timeout=30.0,
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                hint = (" (is the disk full, or the file read-only?)"
                        if any(w in str(exc) for w in ("disk", "full", "readonly")) else "")
                raise StoreError(f"store {self.path}: write failed ({exc}){hint}; results "
                                 "already stored are kept") from None
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writing --------------------------------------------------------------------------

    def done_keys(self) -> set[tuple[str, str, str]]:
        """(experiment, config_hash, dataset) of every run finished successfully."""
        return {(r["experiment"], r["config_hash"], r["dataset"]) for r in
                self._query("SELECT experiment, config_hash, dataset FROM runs WHERE status=?",
                            (DONE,))}

    def is_done(self, run: RunSpec, dataset: str) -> bool:
        return bool(self._query(
            "SELECT 1 FROM runs WHERE experiment=? AND config_hash=? AND dataset=? AND status=?",
            (run.experiment, run.config_hash, dataset, DONE)))

    def start_run(self, run: RunSpec, dataset: str, device: str, fingerprint: str = "",
                  source: str | None = None) -> int:
        """Record a run as running (a fresh attempt); returns its row id. ``source``: which
        source served its data (RawData.origin)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT id FROM runs WHERE experiment=? AND config_hash=? AND "
                             "dataset=?", (run.experiment, run.config_hash, dataset)).fetchone()
            values = dict(run_index=run.index, label=run.label,
                          config=json.dumps(run.config, sort_keys=True), status=RUNNING,
                          error=None, device=device, seed=int(run.config.get("seed", 0)),
                          data_fingerprint=fingerprint, data_source=source, writer=_writer(),
                          versions=json.dumps(library_versions()), started_at=now,
                          finished_at=None, train_seconds=None, epochs_done=0,
                          best_val_acc=None, best_epoch=None, final_train_loss=None,
                          final_val_loss=None, final_val_acc=None, test_acc=None,
                          test_loss=None, confusion=None, predictions=None)
            if row is None:
                cols = ", ".join(values)
                cur = db.execute(
                    f"INSERT INTO runs (experiment, config_hash, dataset, queued_at, attempts, "
                    f"{cols}) VALUES (?, ?, ?, ?, 1, {', '.join('?' * len(values))})",
                    (run.experiment, run.config_hash, dataset, now, *values.values()))
                return int(cur.lastrowid)
            run_id = int(row["id"])
            db.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            sets = ", ".join(f"{k}=?" for k in values)
            db.execute(f"UPDATE runs SET {sets}, attempts=attempts+1 WHERE id=?",
                       (*values.values(), run_id))
            return run_id

    def mark_interrupted(self) -> int:
        """Mark 'running' rows whose process (on this host) is gone as interrupted; rows of
        live processes and of other hosts are left alone. Returns how many were marked."""
        host = socket.gethostname()
        stale = []
        for row in self._query("SELECT id, writer FROM runs WHERE status=?", (RUNNING,)):
            who_host, _, pid = str(row["writer"] or "").rpartition(":")
            if who_host == host and pid.isdigit() and not _alive(int(pid)):
                stale.append((int(row["id"]), pid))
        if stale:
            with self._tx() as db:
                for run_id, pid in stale:
                    db.execute("UPDATE runs SET status=?, error=? WHERE id=? AND status=?",
                               (INTERRUPTED, f"interrupted: its process (pid {pid}) ended "
                                "before the run finished; rerun the sweep to train it again",
                                run_id, RUNNING))
        return len(stale)

    def add_epoch(self, run_id: int, m: EpochMetrics) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, m.epoch, m.train_loss, m.val_loss, m.val_acc, m.best_val_acc,
                        m.best_epoch, m.seconds))
            db.execute("UPDATE runs SET epochs_done=? WHERE id=?", (m.epoch, run_id))

    def finish_run(self, run_id: int, result: RunResult) -> None:
        """Final status and metrics, epochs included, in one transaction."""
        last = result.epochs[-1] if result.epochs else None
        best = max(result.epochs, key=lambda e: e.val_acc) if result.epochs else None
        with self._tx() as db:
            db.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            db.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(run_id, m.epoch, m.train_loss, m.val_loss, m.val_acc,
                             m.best_val_acc, m.best_epoch, m.seconds) for m in result.epochs])
            db.execute(
                "UPDATE runs SET status=?, error=?, finished_at=?, train_seconds=?, "
                "epochs_done=?, best_val_acc=?, best_epoch=?, final_train_loss=?, "
                "final_val_loss=?, final_val_acc=?, test_acc=?, test_loss=?, confusion=?, "
                "predictions=?, device=COALESCE(NULLIF(?, ''), device) WHERE id=?",
                (result.status, result.error, time.time(), result.train_seconds,
                 len(result.epochs), best.val_acc if best else None,
                 best.epoch if best else None, last.train_loss if last else None,
                 last.val_loss if last else None, last.val_acc if last else None,
                 result.test_acc, result.test_loss,
                 json.dumps(result.confusion) if result.confusion else None,
                 result.predictions, result.device, run_id))

    def record_study(self, path: Path | str, text: str, command: str) -> int:
        """Keep the experiments file a sweep runs (its text, hash and command line)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._tx() as db:
            cur = db.execute("INSERT INTO studies (path, sha256, text, command, recorded_at) "
                             "VALUES (?, ?, ?, ?, ?)", (str(path), digest, text, command,
                                                        time.time()))
            return int(cur.lastrowid)

    # -- reading --------------------------------------------------------------------------

    def latest_study(self) -> dict[str, Any] | None:
        """The experiments file of the latest sweep recorded (None: none recorded, or a store
        older than the studies table)."""
        try:
            rows = self._query("SELECT * FROM studies ORDER BY id DESC LIMIT 1")
        except sqlite3.OperationalError:
            return None
        return dict(rows[0]) if rows else None

    def runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        have = {r["name"] for r in self._query("PRAGMA table_info(runs)")}
        # an older store read as it is (read-only) lacks later columns: they read as NULL
        sql = "SELECT " + ", ".join(c if c in have else f"NULL AS {c}"
                                    for c in RESULT_COLUMNS) + " FROM runs"
        args: tuple = ()
        if experiment:
            sql, args = sql + " WHERE experiment=?", (experiment,)
        rows = [dict(r) for r in self._query(sql + " ORDER BY id", args)]
        for row in rows:
            row["config"] = json.loads(row["config"])
        return rows

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows:
            return None
        row = dict(rows[0])
        row["config"] = json.loads(row["config"])
        row["versions"] = json.loads(row["versions"] or "{}")
        row["confusion"] = json.loads(row["confusion"]) if row["confusion"] else None
        return row

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query(
            "SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,))]

    def find(self, experiment: str, config_hash: str, dataset: str | None = None
             ) -> dict[str, Any] | None:
        sql = "SELECT id FROM runs WHERE experiment=? AND config_hash=?"
        args: tuple = (experiment, config_hash)
        if dataset is not None:
            sql, args = sql + " AND dataset=?", (*args, dataset)
        rows = self._query(sql + " ORDER BY id DESC LIMIT 1", args)
        return self.run(int(rows[0]["id"])) if rows else None

    def results_frame(self) -> Any:
        """All runs as a pandas DataFrame: config columns flattened, metrics, status."""
        import pandas as pd

        from workbench.references import reference_columns

        rows = self.runs()
        refs = reference_columns(rows, self.references())
        flat = []
        for row, ref in zip(rows, refs):
            config = row.pop("config")
            flat.append({**row, **{k: v for k, v in config.items() if k not in row}, **ref})
        return pd.DataFrame(flat)

    def export_csv(self, path: Path | str) -> int:
        frame = self.results_frame()
        frame.to_csv(path, index=False)
        return len(frame)

    def set_references(self, experiments: Sequence[str], refs: Sequence[Any]) -> None:
        """Replace the reference figures of these experiments (references.Reference)."""
        with self._tx() as db:
            db.executemany("DELETE FROM reference_figures WHERE experiment=?",
                           [(name,) for name in experiments])
            db.executemany("INSERT OR REPLACE INTO reference_figures VALUES (?, ?, ?, ?, ?)",
                           [(r.experiment, r.match_json, r.metric, r.value, r.source)
                            for r in refs])

    def references(self) -> list[Any]:
        """Every stored reference figure (references.Reference); none in an older store
        opened read-only."""
        from workbench.references import Reference

        try:
            rows = self._query("SELECT * FROM reference_figures ORDER BY rowid")
        except sqlite3.OperationalError:
            return []
        return [Reference(r["experiment"], r["metric"], r["value"], r["source"] or "",
                          tuple(sorted(json.loads(r["run_match"]).items()))) for r in rows]

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])


def store_path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a store (a folder, not a results file, not writable), or None.
    Tries for real (opens the file for writing, creates and removes a file in its folder)
    without changing anything."""
    path = Path(path)
    if path.is_dir():
        return (f"--store {path}: is a folder; give a file path such as "
                f"{path / 'workbench.sqlite'}")
    probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"--store {path}: {probe} is a file, not a folder; choose another path"
    unwritable = f"--store {path}: not writable; choose a path in a folder you can write to"
    if path.exists():
        try:
            with open(path, "r+b") as fh:
                head = fh.read(16)
        except OSError as exc:
            return f"{unwritable} ({exc.strerror})"
        if head and head != b"SQLite format 3\x00":
            return (f"--store {path}: not a results file (it is not SQLite); give a new file "
                    "name or an existing workbench store")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{unwritable} ({exc.strerror})"
    return None

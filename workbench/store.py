"""The results store: one SQLite file (WAL) with runs, per-epoch metrics and confusion matrices.

A run is identified by (experiment, config hash, data set used). Each time it trains is an
attempt, written as 'running' when it starts, its epochs as they end, and its final status,
metrics and confusion matrix in one transaction at the end, so a crash never leaves a
half-finished run marked done. Every attempt is kept; the run's row (and its epochs) shows the
latest done attempt, else the latest, so a rerun that ends badly never hides a finished result.
Opening the file (checks, migrations, backups): ``workbench.store_file``; its layout and
migrations: ``workbench.store_schema``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from workbench.store_file import StoreError, StoreFile
from workbench.store_schema import RESULT_COLUMNS
from workbench.types import DONE, INTERRUPTED, RUNNING, EpochMetrics, RunResult, RunSpec

DEFAULT_STORE = Path("results") / "workbench.sqlite"

ATTEMPT_COLUMNS = ("number", "status", "error", "device", "started_at", "finished_at",
                   "train_seconds", "epochs_done", "best_val_acc", "best_epoch", "test_acc")


# An epoch's columns, in the epochs and attempt_epochs tables alike (after the owner's id).
EPOCH_FIELDS = "epoch, train_loss, val_loss, val_acc, best_val_acc, best_epoch, seconds, lr"


def _epoch_values(m: EpochMetrics) -> tuple:
    return (m.epoch, m.train_loss, m.val_loss, m.val_acc, m.best_val_acc, m.best_epoch,
            m.seconds, m.lr)


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


class Store(StoreFile):
    """The results in one file (``StoreFile``: opening, checks, migrations): runs, their
    attempts and epochs, studies, the saved queue and references. Thread-safe."""

    def __init__(self, path: Path | str, readonly: bool = False):
        super().__init__(path, readonly)
        self._attempt_ids: dict[int, int] = {}  # run row id -> its attempt in flight here
        if not readonly:
            try:
                self.mark_interrupted()
            except StoreError:  # e.g. disk full: reading still works, writes will say why
                pass

    # -- writing --------------------------------------------------------------------------

    def is_done(self, run: RunSpec, dataset: str) -> bool:
        return bool(self._query(
            "SELECT 1 FROM runs WHERE experiment=? AND config_hash=? AND dataset=? AND status=?",
            (run.experiment, run.config_hash, dataset, DONE)))

    def start_run(self, run: RunSpec, dataset: str, device: str, fingerprint: str = "",
                  source: str | None = None) -> int:
        """Record a new attempt at a run, running; returns the run's row id. A run already
        done keeps showing its result until this attempt finishes done too. ``source``: which
        source served its data (RawData.origin)."""
        now = time.time()
        attempt = dict(status=RUNNING, error=None, device=device, data_fingerprint=fingerprint,
                       versions=json.dumps(library_versions()), writer=_writer(),
                       started_at=now)
        with self._tx() as db:
            row = db.execute("SELECT id, status, attempts FROM runs WHERE experiment=? AND "
                             "config_hash=? AND dataset=?",
                             (run.experiment, run.config_hash, dataset)).fetchone()
            number = int(row["attempts"]) + 1 if row is not None else 1
            values = dict(run_index=run.index, label=run.label,
                          config=json.dumps(run.config, sort_keys=True), status=RUNNING,
                          error=None, device=device, seed=int(run.config.get("seed", 0)),
                          data_fingerprint=fingerprint, data_source=source,
                          writer=attempt["writer"],
                          versions=attempt["versions"], started_at=now,
                          finished_at=None, train_seconds=None, epochs_done=0,
                          best_val_acc=None, best_epoch=None, final_train_loss=None,
                          final_val_loss=None, final_val_acc=None, test_acc=None,
                          test_loss=None, confusion=None, predictions=None,
                          attempts=number, shown_attempt=number)
            if row is None:
                cols = ", ".join(values)
                cur = db.execute(
                    f"INSERT INTO runs (experiment, config_hash, dataset, queued_at, "
                    f"{cols}) VALUES (?, ?, ?, ?, {', '.join('?' * len(values))})",
                    (run.experiment, run.config_hash, dataset, now, *values.values()))
                run_id = int(cur.lastrowid)
            elif row["status"] == DONE:  # keep showing the finished result
                run_id = int(row["id"])
                db.execute("UPDATE runs SET attempts=? WHERE id=?", (number, run_id))
            else:  # nothing finished to show: the row follows this attempt
                run_id = int(row["id"])
                db.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
                sets = ", ".join(f"{k}=?" for k in values)
                db.execute(f"UPDATE runs SET {sets} WHERE id=?", (*values.values(), run_id))
            # an attempt of ours still running ended without a result (a Ray worker died)
            db.execute("UPDATE attempts SET status=?, error=? WHERE run_id=? AND status=? AND "
                       "writer=?", (INTERRUPTED, f"ended without a result; attempt {number} "
                                    "trained it again", run_id, RUNNING, attempt["writer"]))
            cur = db.execute(
                f"INSERT INTO attempts (run_id, number, {', '.join(attempt)}) VALUES (?, ?, "
                f"{', '.join('?' * len(attempt))})", (run_id, number, *attempt.values()))
            self._attempt_ids[run_id] = int(cur.lastrowid)
            return run_id

    def _attempt_of(self, db: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        """The attempt this process started at a run (else the run's latest), with whether
        the runs row shows it."""
        attempt_id = self._attempt_ids.get(run_id)
        where, args = (("a.id=?", (attempt_id,)) if attempt_id is not None else
                       ("a.run_id=? ORDER BY a.number DESC LIMIT 1", (run_id,)))
        return db.execute("SELECT a.id, a.number, r.shown_attempt = a.number AS shown "
                          "FROM attempts a JOIN runs r ON r.id = a.run_id WHERE " + where,
                          args).fetchone()

    def mark_interrupted(self) -> int:
        """Mark running attempts whose process (on this host) is gone as interrupted, and
        their runs when the row shows them (a done result stays); live processes and other
        hosts are left alone. Returns how many runs had such an attempt."""
        host = socket.gethostname()
        stale = []
        for row in self._query("SELECT id, run_id, number, writer FROM attempts WHERE "
                               "status=?", (RUNNING,)):
            who_host, _, pid = str(row["writer"] or "").rpartition(":")
            if who_host == host and pid.isdigit() and not _alive(int(pid)):
                stale.append((int(row["id"]), int(row["run_id"]), int(row["number"]), pid))
        if stale:
            with self._tx() as db:
                for attempt_id, run_id, number, pid in stale:
                    error = (f"interrupted: its process (pid {pid}) ended before the run "
                             "finished; rerun the sweep to train it again")
                    db.execute("UPDATE attempts SET status=?, error=? WHERE id=? AND status=?",
                               (INTERRUPTED, error, attempt_id, RUNNING))
                    db.execute("UPDATE runs SET status=?, error=? WHERE id=? AND status=? AND "
                               "shown_attempt=?", (INTERRUPTED, error, run_id, RUNNING, number))
        return len({run_id for _, run_id, _, _ in stale})

    def add_epoch(self, run_id: int, m: EpochMetrics) -> None:
        values = _epoch_values(m)
        with self._tx() as db:
            attempt = self._attempt_of(db, run_id)
            if attempt is not None:
                db.execute(f"INSERT OR REPLACE INTO attempt_epochs (attempt_id, {EPOCH_FIELDS}) "
                           f"VALUES ({', '.join('?' * 9)})", (attempt["id"], *values))
                db.execute("UPDATE attempts SET epochs_done=? WHERE id=?", (m.epoch, attempt["id"]))
            if attempt is None or attempt["shown"]:
                db.execute(f"INSERT OR REPLACE INTO epochs (run_id, {EPOCH_FIELDS}) "
                           f"VALUES ({', '.join('?' * 9)})", (run_id, *values))
                db.execute("UPDATE runs SET epochs_done=? WHERE id=?", (m.epoch, run_id))

    def finish_run(self, run_id: int, result: RunResult) -> None:
        """Final status and metrics of the attempt, epochs included, in one transaction. The
        runs row shows them when it showed this attempt already or when it finished done."""
        last = result.epochs[-1] if result.epochs else None
        best = max(result.epochs, key=lambda e: e.val_acc) if result.epochs else None
        epochs = [_epoch_values(m) for m in result.epochs]
        outcome = dict(
            status=result.status, error=result.error, finished_at=time.time(),
            train_seconds=result.train_seconds, epochs_done=len(result.epochs),
            best_val_acc=best.val_acc if best else None, best_epoch=best.epoch if best else None,
            final_train_loss=last.train_loss if last else None,
            final_val_loss=last.val_loss if last else None,
            final_val_acc=last.val_acc if last else None, test_acc=result.test_acc,
            test_loss=result.test_loss,
            confusion=json.dumps(result.confusion) if result.confusion else None,
            predictions=result.predictions, stopped_early=result.stopped_early)
        sets = ", ".join(f"{k}=?" for k in outcome)
        with self._tx() as db:
            attempt = self._attempt_of(db, run_id)
            if attempt is not None:
                db.execute(f"UPDATE attempts SET {sets}, device=COALESCE(NULLIF(?, ''), device) "
                           "WHERE id=?", (*outcome.values(), result.device, attempt["id"]))
                db.execute("DELETE FROM attempt_epochs WHERE attempt_id=?", (attempt["id"],))
                db.executemany(f"INSERT INTO attempt_epochs (attempt_id, {EPOCH_FIELDS}) "
                               f"VALUES ({', '.join('?' * 9)})",
                               [(attempt["id"], *e) for e in epochs])
                self._attempt_ids.pop(run_id, None)
                if not attempt["shown"] and result.status != DONE:
                    return  # the row keeps showing the earlier finished result
                # the row now shows this attempt: where and with what it ran, too
                db.execute("UPDATE runs SET shown_attempt=?, (device, data_fingerprint, "
                           "versions, writer, started_at) = (SELECT device, data_fingerprint, "
                           "versions, writer, started_at FROM attempts WHERE id=?) WHERE id=?",
                           (attempt["number"], attempt["id"], run_id))
            db.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            db.executemany(f"INSERT INTO epochs (run_id, {EPOCH_FIELDS}) "
                           f"VALUES ({', '.join('?' * 9)})", [(run_id, *e) for e in epochs])
            db.execute(f"UPDATE runs SET {sets}, device=COALESCE(NULLIF(?, ''), device), "
                       "stack_size=? WHERE id=?",
                       (*outcome.values(), result.device, result.stack_size, run_id))

    def record_study(self, path: Path | str, text: str, command: str,
                     plugins: Sequence[tuple[Path | str, str]] = ()) -> int:
        """Keep the experiments file a sweep runs (its text, hash and command line) and the
        drop-in plugin files it loaded (path, text), each with its hash."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        files = json.dumps([{"path": str(p), "sha256": hashlib.sha256(t.encode()).hexdigest(),
                             "text": t} for p, t in plugins])
        with self._tx() as db:
            cur = db.execute("INSERT INTO studies (path, sha256, text, command, recorded_at, "
                             "plugins) VALUES (?, ?, ?, ?, ?, ?)",
                             (str(path), digest, text, command, time.time(), files))
            return int(cur.lastrowid)

    # -- reading --------------------------------------------------------------------------

    def latest_study(self) -> dict[str, Any] | None:
        """The experiments file of the latest sweep recorded (None: none recorded, or a store
        older than the studies table)."""
        try:
            rows = self._query("SELECT * FROM studies ORDER BY id DESC LIMIT 1")
        except sqlite3.OperationalError:
            return None
        if not rows:
            return None
        study = dict(rows[0])
        study["plugins"] = json.loads(study.get("plugins") or "[]")  # older rows: none kept
        return study

    def runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Every run as the views show it. ``last_attempt``: how its latest attempt ended
        (or 'running') when that is not the attempt shown, as after a rerun that did not
        finish done; else None."""
        sql = (f"SELECT {', '.join(RESULT_COLUMNS)}, (SELECT a.status FROM attempts a WHERE "
               "a.run_id = runs.id AND a.number > runs.shown_attempt ORDER BY a.number DESC "
               "LIMIT 1) AS last_attempt FROM runs")
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

    def attempts(self, run_id: int) -> list[dict[str, Any]]:
        """Every attempt at a run, first to last, each with ``shown``: whether the run's row
        (what the views show) is this attempt's result."""
        rows = [dict(r) for r in self._query(
            f"SELECT {', '.join('a.' + c for c in ATTEMPT_COLUMNS)}, "
            "a.number = r.shown_attempt AS shown FROM attempts a JOIN runs r ON r.id = a.run_id "
            "WHERE a.run_id=? ORDER BY a.number", (run_id,))]
        return [{**r, "shown": bool(r["shown"])} for r in rows]

    def attempt_epochs(self, run_id: int, number: int) -> list[dict[str, Any]]:
        """The epochs of one attempt at a run (``number`` as in ``attempts``)."""
        return [dict(r) for r in self._query(
            "SELECT e.* FROM attempt_epochs e JOIN attempts a ON a.id = e.attempt_id "
            "WHERE a.run_id=? AND a.number=? ORDER BY e.epoch", (run_id, number))]

    # -- the app's queue --------------------------------------------------------------------

    def save_queue(self, runs: Sequence[RunSpec]) -> None:
        """Replace the kept queue with these runs, in order."""
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM queue")
            db.executemany("INSERT INTO queue (run_key, experiment, label, queued_at) "
                           "VALUES (?, ?, ?, ?)",
                           [(r.run_id, r.experiment, r.label, now) for r in runs])

    def saved_queue(self) -> list[dict[str, Any]]:
        """The kept queue, in order: run_key (RunSpec.run_id), experiment, label, queued_at."""
        return [dict(r) for r in self._query(
            "SELECT run_key, experiment, label, queued_at FROM queue ORDER BY position")]

    def results_frame(self) -> Any:
        """All runs as a pandas DataFrame: the run's columns, its config flattened (a list
        value as JSON, ["warmup", "early_stopping"]), then the reference figures."""
        import pandas as pd

        from workbench.formatting import csv_value
        from workbench.references import reference_columns

        rows = self.runs()
        refs = reference_columns(rows, self.references())
        flat, columns = [], dict.fromkeys(RESULT_COLUMNS)  # ordered: run, config, references
        for row, ref in zip(rows, refs):
            config = {k: csv_value(v) for k, v in row.pop("config").items() if k not in row}
            columns.update(dict.fromkeys([*row, *config]))
            flat.append({**row, **config, **ref})
        for ref in refs:
            columns.update(dict.fromkeys(ref))
        frame = pd.DataFrame(flat, columns=[c for c in columns if any(c in r for r in flat)])
        # A column that some rows lack (a plugin's parameter, a failed run's best_epoch)
        # would turn into floats (6.0): keep whole numbers whole, with empty cells.
        for column in frame.columns:
            present = [r[column] for r in flat if r.get(column) is not None]
            if present and all(isinstance(v, int) and not isinstance(v, bool)
                               for v in present):
                frame[column] = frame[column].astype("Int64")
        return frame

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


def describe_attempts(row: dict[str, Any]) -> str:
    """How many attempts a run (a ``runs()`` row) has had, and how the latest ended when the
    row shows an earlier one: '1 attempt', '3 attempts', '2 attempts (latest failed)'."""
    n = int(row.get("attempts") or 1)
    text = f"{n} attempt{'s' if n != 1 else ''}"
    last = row.get("last_attempt")
    return f"{text} (latest {last})" if last else text

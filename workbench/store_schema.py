"""The store's layout and its history: numbered, forward-only migrations.

A store records its layout version in ``meta.schema_version`` (and SQLite's ``user_version``)
and carries the workbench's ``application_id``, so a writer can tell an older store (migrate
it), a newer one (refuse to write) and another program's SQLite file (leave it alone).

To change the layout, append a ``Migration`` to ``MIGRATIONS`` with the next number: its SQL
runs once, in the same transaction as every other pending step, when a writer opens an older
store (after a backup copy beside it). Never edit a migration that has shipped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

APPLICATION_ID = 0x4D4E5742  # "MNWB": written into the SQLite header of every store

# Version 1: the layout of release 0.1.0 (stores written before migrations existed).
V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    dataset TEXT NOT NULL,          -- the data actually used, e.g. 'mnist-sample (fallback for mnist)'
    run_index INTEGER NOT NULL,
    label TEXT NOT NULL,
    config TEXT NOT NULL,           -- JSON, fully resolved
    status TEXT NOT NULL,
    error TEXT,
    device TEXT,
    seed INTEGER,
    data_fingerprint TEXT,
    versions TEXT,                  -- JSON: python, torch, ...
    attempts INTEGER NOT NULL DEFAULT 0,
    writer TEXT,                    -- 'host:pid' of the process that last started it
    queued_at REAL, started_at REAL, finished_at REAL,
    train_seconds REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    best_val_acc REAL, best_epoch INTEGER,
    final_train_loss REAL, final_val_loss REAL, final_val_acc REAL,
    test_acc REAL, test_loss REAL,
    confusion TEXT,                 -- JSON 10x10, [true][predicted]
    predictions BLOB,               -- uint8 per test image
    UNIQUE (experiment, config_hash, dataset)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, val_loss REAL, val_acc REAL, best_val_acc REAL, best_epoch INTEGER,
    seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class Migration:
    version: int  # the layout version this step produces
    what: str  # one line, shown to the user when it is applied
    sql: str = ""  # statements, run in order
    apply: Callable[[sqlite3.Connection], None] | None = None  # for steps SQL cannot say


# Every attempt at a run, kept: a rerun never overwrites a finished result. The runs row (and
# its epochs) shows one attempt, ``runs.shown_attempt``: the latest done one, else the latest.
# A 0.1.0 store kept only each run's last attempt; it becomes that attempt, numbered as counted.
V2_ATTEMPTS = """
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,        -- 1 for a run's first attempt
    status TEXT NOT NULL,
    error TEXT,
    device TEXT,
    data_fingerprint TEXT,
    versions TEXT,
    writer TEXT,
    started_at REAL, finished_at REAL,
    train_seconds REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    best_val_acc REAL, best_epoch INTEGER,
    final_train_loss REAL, final_val_loss REAL, final_val_acc REAL,
    test_acc REAL, test_loss REAL,
    confusion TEXT,
    predictions BLOB,
    UNIQUE (run_id, number)
);
CREATE TABLE attempt_epochs (
    attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, val_loss REAL, val_acc REAL, best_val_acc REAL, best_epoch INTEGER,
    seconds REAL,
    PRIMARY KEY (attempt_id, epoch)
);
ALTER TABLE runs ADD COLUMN shown_attempt INTEGER;
UPDATE runs SET attempts = max(attempts, 1), shown_attempt = max(attempts, 1);
INSERT INTO attempts (run_id, number, status, error, device, data_fingerprint, versions, writer,
                      started_at, finished_at, train_seconds, epochs_done, best_val_acc,
                      best_epoch, final_train_loss, final_val_loss, final_val_acc, test_acc,
                      test_loss, confusion, predictions)
    SELECT id, attempts, status, error, device, data_fingerprint, versions, writer, started_at,
           finished_at, train_seconds, epochs_done, best_val_acc, best_epoch, final_train_loss,
           final_val_loss, final_val_acc, test_acc, test_loss, confusion, predictions FROM runs;
INSERT INTO attempt_epochs
    SELECT a.id, e.epoch, e.train_loss, e.val_loss, e.val_acc, e.best_val_acc, e.best_epoch,
           e.seconds
    FROM epochs e JOIN attempts a ON a.run_id = e.run_id;
"""

# The app's queue (pending runs, and those in flight when it closed), in order, so quitting
# keeps it and the next start can offer to resume it.
V3_QUEUE = """
CREATE TABLE queue (
    position INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,   -- RunSpec.run_id: experiment and config hash
    experiment TEXT NOT NULL,
    label TEXT NOT NULL,
    queued_at REAL NOT NULL
);
"""

# Append new steps at the end, numbered in order. Version 1 creates the 0.1.0 layout.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the 0.1.0 layout: runs, epochs, meta", V1),
    Migration(2, "every attempt at a run is kept (a rerun never overwrites a result)",
              V2_ATTEMPTS),
    Migration(3, "the app's queue is kept between sessions", V3_QUEUE),
    Migration(4, "runs.data_source: which source served a run's data (data folder, npm...)",
              "ALTER TABLE runs ADD COLUMN data_source TEXT;"),
    Migration(5, "reference_figures: the figures each experiment should reproduce", """
CREATE TABLE IF NOT EXISTS reference_figures (
    experiment TEXT NOT NULL,
    run_match TEXT NOT NULL,        -- JSON: config values a run must have ('{}': every run)
    metric TEXT NOT NULL,           -- a runs column: test_acc, best_val_acc, ...
    value REAL NOT NULL,
    source TEXT,
    PRIMARY KEY (experiment, run_match, metric)
);
"""),
    # Older runs keep NULL: whether they trained in a stack was not recorded.
    Migration(6, "runs.stack_size: how many runs trained together (their time is shared)",
              "ALTER TABLE runs ADD COLUMN stack_size INTEGER;"),
    Migration(7, "each epoch's learning rate; why a run stopped early",
              "ALTER TABLE epochs ADD COLUMN lr REAL;\n"
              "ALTER TABLE attempt_epochs ADD COLUMN lr REAL;\n"
              "ALTER TABLE runs ADD COLUMN stopped_early TEXT;\n"
              "ALTER TABLE attempts ADD COLUMN stopped_early TEXT;"),
    Migration(8, "studies: the experiments file of every sweep, for the report's reproduction "
                 "block", """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,             -- as given on the command line
    sha256 TEXT NOT NULL,           -- of text, UTF-8
    text TEXT NOT NULL,             -- the TOML as it was when the sweep started
    command TEXT NOT NULL,          -- the command line that ran it
    recorded_at REAL NOT NULL
);
"""),
    Migration(9, "sweeps, live_queue, live_progress, commands: what a viewer attached to a "
                 "running headless sweep reads, and the requests it sends", """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    study_path TEXT,                -- the experiments file, absolute
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,     -- renewed about every second while the sweep runs
    finished_at REAL,
    outcome TEXT                    -- how it ended: 'finished', 'interrupted', ...
);
CREATE TABLE IF NOT EXISTS live_queue (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    run_key TEXT NOT NULL,          -- RunSpec.run_id
    state TEXT NOT NULL,            -- 'running' or 'queued'
    run TEXT NOT NULL,              -- JSON: experiment, index, label, config
    PRIMARY KEY (sweep_id, position)
);
CREATE TABLE IF NOT EXISTS live_progress (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    run_key TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    batches INTEGER NOT NULL,
    loss REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, run_key)
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,             -- cancel, remove, move, queue, stop
    args TEXT NOT NULL,             -- JSON
    requested_by TEXT NOT NULL,     -- 'host:pid' of the viewer
    requested_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending, done, refused
    answer TEXT,                    -- what the sweep did, or why it refused
    answered_at REAL
);
"""),
    Migration(10, "studies.plugins: the drop-in plugin files a sweep loaded, for the report's "
                  "reproduction block", """
ALTER TABLE studies ADD COLUMN plugins TEXT;  -- JSON: [{path, sha256, text}]
"""),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# The runs table's columns a results reader needs (a newer layout without them is unreadable)
RESULT_COLUMNS = ("id", "experiment", "config_hash", "label", "status", "dataset", "device",
                  "epochs_done", "best_val_acc", "best_epoch", "test_acc", "train_seconds",
                  "stack_size", "error", "attempts", "stopped_early", "config", "data_source",
                  "final_train_loss", "final_val_loss", "final_val_acc", "test_loss")


def foreign_reason(db: sqlite3.Connection) -> str | None:
    """Why this SQLite file is not a workbench store, or None when it is one (or empty).
    Only reads. A store carries ``APPLICATION_ID``; 0.1.0 stores, written before it existed,
    are known by their meta table's schema_version beside a runs table."""
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    tables = sorted(r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
    if app_id == APPLICATION_ID:
        return None
    if app_id:
        return f"another program's SQLite file (application_id {app_id:#x})"
    if not tables:
        return None
    if {"meta", "runs"} <= set(tables) and stored_version(db) >= 1:
        return None
    shown = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "")
    return f"an SQLite file of another program (tables: {shown}), not a workbench store"


def stored_version(db: sqlite3.Connection) -> int:
    """The layout version a store says it has (0: an empty file)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 0


def pending(version: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > version]


def apply_pending(db: sqlite3.Connection, version: int) -> list[Migration]:
    """Apply every step after ``version`` inside the caller's transaction; returns them."""
    steps = pending(version)
    for step in steps:
        for statement in _statements(step.sql):
            db.execute(statement)
        if step.apply is not None:
            step.apply(db)
    if steps:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return steps


def _statements(sql: str) -> list[str]:
    """Split a script into statements (sqlite3's execute runs one at a time; executescript
    would commit the caller's transaction)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return [s for s in out if s]

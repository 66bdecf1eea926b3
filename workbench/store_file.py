"""One results file, opened: what a writer and a reader check before anything is read or
written (another program's SQLite file, a newer layout, a damaged file: refused, the file
left as it is), the migration of an older layout after a backup copy beside it, the advice a
damaged file gets, the note a face shows about this open, and the connection with its
transactions. ``workbench.store.Store`` is the results kept in it; ``workbench.store_schema``
the layout and its migrations.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from workbench.store_schema import (RESULT_COLUMNS, SCHEMA_VERSION, apply_pending,
                                    foreign_reason, pending, stored_version)


def _when_unlocked(step: Any, seconds: float = 30.0) -> Any:
    """Run ``step``, again while SQLite says the file is locked: two sweeps opening one new
    store at once race for its journal mode, which SQLite's busy timeout does not wait for."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class StoreError(Exception):
    """The store cannot be opened or written; the message names the path and the remedy."""


class StoreTooNew(StoreError):
    """The store was written by a newer release: never written here, read only if readable."""


DAMAGE_WORDS = ("malformed", "corrupt", "not a database")


class StoreFile:
    """One results file and its connection (serialised by a lock), opened for writing or
    reading.

    A writer checks the file before writing anything (another program's SQLite file, a newer
    layout and a damaged file are refused, byte for byte untouched), then brings an older
    layout up to date after a backup copy beside it. A reader never changes the file: an
    older layout is read through a migrated copy in memory, a newer one as it is when its
    tables still read."""

    def __init__(self, path: Path | str, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self.migrated: list = []  # the migration steps this open applied (a writer's)
        self.version_before = 0  # the file's layout version when opened (0: a new file)
        self.backup: Path | None = None  # the copy made before migrating
        self.newer = False  # a reader of a store written by a newer release
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a folder; give a file path such as "
                             f"{self.path / 'workbench.sqlite'}")
        try:
            self._db = self._open_reader() if readonly else self._open_writer()
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            if any(w in str(exc) for w in DAMAGE_WORDS):
                if self._has_sqlite_header():
                    raise StoreError(self._damaged(str(exc))) from None
                raise StoreError(f"store {self.path}: not a results file (SQLite); pass "
                                 "another --store PATH") from None
            raise StoreError(f"store {self.path}: cannot open ({exc}); check that the folder "
                             "exists and is writable, or pass another --store PATH") from None

    def _open_writer(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = db = self._connect("")
        try:
            _when_unlocked(lambda: self._prepare_writer(db, fresh))
            self.migrated = self._migrate()
        except BaseException:
            db.close()
            raise
        return db

    def _prepare_writer(self, db: sqlite3.Connection, fresh: bool) -> None:
        if not fresh:  # reads only: a file refused here is left exactly as it was
            self._check(db, writing=True)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _open_reader(self) -> sqlite3.Connection:
        db = self._connect("mode=ro")
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:  # WAL in a folder we cannot write
            db.close()
            db = self._connect("immutable=1")
        try:
            version = self._check(db, writing=False)
            if version > SCHEMA_VERSION:
                self.newer = True
                self._check_readable(db, version)
            elif version < SCHEMA_VERSION:  # read a migrated copy; the file stays as it is
                copy = self._connect(":memory:")
                db.backup(copy)
                db.close()
                db = copy
                self._db = db
                with self._tx():
                    apply_pending(db, version)
        except BaseException:
            db.close()
            raise
        return db

    def _check(self, db: sqlite3.Connection, writing: bool) -> int:
        """Refuse another program's file, a newer layout (for writing) and a damaged file;
        returns the layout version."""
        reason = foreign_reason(db)
        if reason:
            raise StoreError(f"store {self.path}: {reason}; it was left untouched. Pass "
                             "another --store PATH (a new file, or a workbench store)")
        version = self.version_before = stored_version(db)
        if version > SCHEMA_VERSION and writing:
            raise StoreTooNew(
                f"store {self.path}: written by a newer mnist-workbench (store layout "
                f"version {version}; this one writes version {SCHEMA_VERSION}), so nothing "
                "is written to it. Upgrade mnist-workbench (pip install -U mnist-workbench) to "
                "run into it, or pass another --store PATH; browsing it (mnist-workbench "
                f"--store {self.path}) and --export still work")
        problem = str(db.execute("PRAGMA quick_check").fetchone()[0])
        if problem != "ok":
            raise StoreError(self._damaged(problem))
        return version

    def _check_readable(self, db: sqlite3.Connection, version: int) -> None:
        columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
        missing = [c for c in (*RESULT_COLUMNS, "shown_attempt") if c not in columns]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing += sorted({"epochs", "attempts", "attempt_epochs"} - tables)
        if missing:
            raise StoreTooNew(
                f"store {self.path}: written by a newer mnist-workbench (store layout version "
                f"{version}; this one reads up to version {SCHEMA_VERSION}) whose results this "
                f"one cannot read (no {', '.join(missing)}); upgrade "
                "mnist-workbench (pip install -U mnist-workbench) to open it")

    def _has_sqlite_header(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                return fh.read(16) == b"SQLite format 3\x00"
        except OSError:
            return False

    def _damaged(self, detail: str) -> str:
        backups = sorted(self.path.parent.glob(f"{self.path.name}.bak-v*"))
        remedies = [f"restore the backup copy {b} (made before its last update)"
                    for b in backups[-1:]]
        recovered = self.path.with_name(f"{self.path.stem}-recovered.sqlite")
        remedies += [f"recover what is readable (sqlite3 {self.path} .recover | sqlite3 "
                     f"{recovered}) and pass --store {recovered}",
                     "or start a new store with --store NEW_PATH"]
        detail = " ".join(detail.split())[:200]
        return (f"store {self.path}: damaged (SQLite says: {detail}); it was left as it is "
                f"and nothing was read from it. To go on: {'; '.join(remedies)}")

    def _migrate(self) -> list:
        """Bring the file to the current layout in one transaction, after a backup copy."""
        with self._tx() as db:  # BEGIN IMMEDIATE: no other process migrates meanwhile
            version = stored_version(db)
            if version > SCHEMA_VERSION:  # another process may have written it meanwhile
                self._check(db, writing=True)
            self.version_before = version
            if pending(version) and version >= 1:
                self.backup = self._backup(version)
            return apply_pending(db, version)

    def _backup(self, version: int) -> Path:
        """A consistent copy of the file as it is, beside it (``NAME.bak-vN``)."""
        target = self.path.with_name(f"{self.path.name}.bak-v{version}")
        n = 1
        while target.exists():  # never overwrite an earlier backup
            n += 1
            target = self.path.with_name(f"{self.path.name}.bak-v{version}-{n}")
        source = sqlite3.connect(str(self.path))
        try:
            copy = sqlite3.connect(str(target))
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                copy.close()
        finally:
            source.close()
        return target

    @property
    def note(self) -> str | None:
        """What a face should say once about this open: a migration, or a newer store shown
        read-only. None when there is nothing to say."""
        if self.migrated and self.version_before >= 1:
            steps = "; ".join(m.what for m in self.migrated)
            return (f"store {self.path}: updated from layout version {self.version_before} to "
                    f"{SCHEMA_VERSION} ({steps}); the file as it was is kept in {self.backup}")
        if self.newer:
            return (f"store {self.path}: written by a newer mnist-workbench (layout version "
                    f"{self.version_before}; this one knows up to {SCHEMA_VERSION}): shown "
                    "read-only")
        if self.readonly and 1 <= self.version_before < SCHEMA_VERSION:
            return (f"store {self.path}: an older layout (version {self.version_before}; this "
                    f"one writes {SCHEMA_VERSION}), read without changing it; the first sweep "
                    "into it updates it, after a backup copy beside it")
        return None

    def _connect(self, params: str) -> sqlite3.Connection:
        if params == ":memory:":
            target, params = params, ""
        else:
            target = f"file:{self.path.resolve()}?{params}" if params else str(self.path)
        db = sqlite3.connect(target, uri=bool(params), check_same_thread=False, timeout=30.0,
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "StoreFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

"""What the store holds about a headless sweep while it runs, for viewers attached to it:
the sweep (pid, host, command, heartbeat), its queue, the progress of its runs in flight, and
the requests viewers send it (the commands table; the sweep answers each one).

Tables: migration 9 in workbench.store_schema. Only this module reads or writes them.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Sequence

from workbench.store import Store
from workbench.types import RunSpec

# A sweep not heard from for this long is not running any more (its heartbeat is ~1 s).
STALE_SECONDS = 4.0

COMMAND_KINDS = ("cancel", "remove", "move", "queue", "stop")
PENDING, DONE, REFUSED = "pending", "done", "refused"


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_json(run: RunSpec) -> str:
    return json.dumps({"experiment": run.experiment, "index": run.index, "label": run.label,
                       "config": dict(run.config)}, sort_keys=True)


def run_of(text: str) -> RunSpec:
    d = json.loads(text)
    return RunSpec(experiment=d["experiment"], index=int(d["index"]), config=d["config"],
                   label=d["label"])


# -- the sweep's side ---------------------------------------------------------------------------

def start_sweep(store: Store, command: str, study_path: str | None) -> int:
    now = time.time()
    with store._tx() as db:
        cur = db.execute("INSERT INTO sweeps (pid, host, command, study_path, started_at, "
                         "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (os.getpid(), socket.gethostname(), command, study_path, now, now))
        return int(cur.lastrowid)


def beat(store: Store, sweep_id: int, queue: Sequence[tuple[str, RunSpec]] | None = None,
         progress: dict[str, tuple[int, int, int, float]] | None = None) -> None:
    """Renew the heartbeat; with ``queue`` ((state, run) in order) or ``progress`` (run key ->
    epoch, batch, batches, loss of every run in flight), replace those too. One transaction."""
    now = time.time()
    with store._tx() as db:
        db.execute("UPDATE sweeps SET heartbeat_at=? WHERE id=?", (now, sweep_id))
        if queue is not None:
            db.execute("DELETE FROM live_queue WHERE sweep_id=?", (sweep_id,))
            db.executemany("INSERT INTO live_queue VALUES (?, ?, ?, ?, ?)",
                           [(sweep_id, i, run.run_id, state, run_json(run))
                            for i, (state, run) in enumerate(queue)])
        if progress is not None:
            db.execute("DELETE FROM live_progress WHERE sweep_id=?", (sweep_id,))
            db.executemany("INSERT INTO live_progress VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(sweep_id, key, *p, now) for key, p in progress.items()])


def finish_sweep(store: Store, sweep_id: int, outcome: str) -> None:
    now = time.time()
    with store._tx() as db:
        db.execute("UPDATE sweeps SET finished_at=?, heartbeat_at=?, outcome=? WHERE id=? AND "
                   "finished_at IS NULL", (now, now, outcome, sweep_id))
        db.execute("DELETE FROM live_queue WHERE sweep_id=?", (sweep_id,))
        db.execute("DELETE FROM live_progress WHERE sweep_id=?", (sweep_id,))
        db.execute("UPDATE commands SET state=?, answer=?, answered_at=? WHERE sweep_id=? AND "
                   "state=?", (REFUSED, f"the sweep ended ({outcome})", now, sweep_id,
                               PENDING))


def pending_commands(store: Store, sweep_id: int) -> list[dict[str, Any]]:
    return [dict(r, args=json.loads(r["args"])) for r in store._query(
        "SELECT * FROM commands WHERE sweep_id=? AND state=? ORDER BY id",
        (sweep_id, PENDING))]


def answer(store: Store, command_id: int, state: str, text: str) -> None:
    with store._tx() as db:
        db.execute("UPDATE commands SET state=?, answer=?, answered_at=? WHERE id=?",
                   (state, text, time.time(), command_id))


# -- a viewer's side ----------------------------------------------------------------------------

def latest_sweep(store: Store) -> dict[str, Any] | None:
    """The store's most recent sweep (None: none recorded, or a layout without sweeps)."""
    import sqlite3

    try:
        rows = store._query("SELECT * FROM sweeps ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError:  # a store of another layout version
        return None
    return dict(rows[0]) if rows else None


def is_running(sweep: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether the sweep is still going: not finished, and heard from lately."""
    return bool(sweep) and sweep["finished_at"] is None and \
        (now or time.time()) - float(sweep["heartbeat_at"]) < STALE_SECONDS


def describe(sweep: dict[str, Any]) -> str:
    return f"pid {sweep['pid']} on {sweep['host']}: {sweep['command']}"


def sweep(store: Store, sweep_id: int) -> dict[str, Any] | None:
    rows = store._query("SELECT * FROM sweeps WHERE id=?", (sweep_id,))
    return dict(rows[0]) if rows else None


def queue(store: Store, sweep_id: int) -> list[tuple[str, RunSpec]]:
    return [(r["state"], run_of(r["run"])) for r in store._query(
        "SELECT state, run FROM live_queue WHERE sweep_id=? ORDER BY position", (sweep_id,))]


def progress(store: Store, sweep_id: int) -> dict[str, tuple[int, int, int, float]]:
    return {r["run_key"]: (r["epoch"], r["batch"], r["batches"], r["loss"]) for r in
            store._query("SELECT * FROM live_progress WHERE sweep_id=?", (sweep_id,))}


def request(store: Store, sweep_id: int, kind: str, args: dict[str, Any]) -> int:
    """Ask the sweep to do something; it answers between batches (answers_after)."""
    if kind not in COMMAND_KINDS:
        raise ValueError(f"unknown request {kind!r}; valid: {', '.join(COMMAND_KINDS)}")
    with store._tx() as db:
        cur = db.execute("INSERT INTO commands (sweep_id, kind, args, requested_by, "
                         "requested_at) VALUES (?, ?, ?, ?, ?)",
                         (sweep_id, kind, json.dumps(args), me(), time.time()))
        return int(cur.lastrowid)


def answers_after(store: Store, sweep_id: int, after: int) -> list[dict[str, Any]]:
    """Requests from this process answered (done or refused), with ids after ``after``."""
    return [dict(r) for r in store._query(
        "SELECT * FROM commands WHERE sweep_id=? AND id>? AND requested_by=? AND state!=? "
        "ORDER BY id", (sweep_id, after, me(), PENDING))]


def commands(store: Store, sweep_id: int) -> list[dict[str, Any]]:
    """Every request the sweep received, in order, with its answer."""
    return [dict(r) for r in store._query("SELECT * FROM commands WHERE sweep_id=? ORDER BY id",
                                          (sweep_id,))]

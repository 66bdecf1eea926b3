"""Getting a Ray connection for the workbench: the extra's check, Ray's own files, ray.init.

Nothing here imports Ray at import time. A local Ray instance keeps all its files (sockets,
logs, spilled objects, the cluster-address file, its auth token) in one folder the user
controls: ``--ray-dir``, else $MNIST_WORKBENCH_RAY_DIR, else ./.ray. Ray is only ever stopped
with ``ray.shutdown()``, never by process name.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import secrets
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ENV_RAY_DIR = "MNIST_WORKBENCH_RAY_DIR"
DEFAULT_RAY_DIR = Path(".ray")
INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "mnist-workbench[ray]")'
# Ray puts Unix sockets at <dir>/ray/session_<date>_<pid>/sockets/plasma_store; Linux allows
# 107 bytes for such a path, which leaves this much for <dir>.
MAX_RAY_DIR_CHARS = 107 - len("/ray/session_2026-01-01_00-00-00_000000_4194304"
                              "/sockets/plasma_store")


class RayUnavailable(ValueError):
    """Ray was asked for but cannot be used; the message says what to install or change."""


def require_ray() -> None:
    """Raise RayUnavailable, naming the extra to install, when Ray is not importable."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise RayUnavailable(f"--executor ray: Ray is not installed in this environment ({exc});"
                             f" install the workbench's Ray extra: {INSTALL_HINT}") from None


def ray_dir_for(explicit: Path | str | None) -> tuple[Path, str | None]:
    """The folder for a local Ray instance's files, and a note when the default had to move
    (Ray's socket paths must stay under 108 bytes)."""
    env = os.environ.get(ENV_RAY_DIR)
    chosen = Path(explicit or env or DEFAULT_RAY_DIR).expanduser().absolute()
    if len(str(chosen)) <= MAX_RAY_DIR_CHARS:
        return chosen, None
    if explicit or env:
        where = f"--ray-dir {explicit}" if explicit else f"${ENV_RAY_DIR}={env}"
        raise RayUnavailable(
            f"{where}: {chosen} is {len(str(chosen))} characters; Ray's socket paths under it "
            f"would pass the system's 107-byte limit: choose a folder of at most "
            f"{MAX_RAY_DIR_CHARS} characters")
    short = Path(tempfile.gettempdir()) / f"mnist-workbench-ray-{os.getuid()}"
    return short, (f"Ray files go to {short}: ./.ray ({chosen}) is too long a path for Ray's "
                   f"sockets; choose another with --ray-dir or ${ENV_RAY_DIR}")


@dataclass
class Connection:
    """A ray.init made by the workbench (or found already made), undone by ``close``."""

    started_local: bool = False  # this process started a Ray instance (shut down on close)
    owned: bool = False  # this process called ray.init (ray.shutdown on close)
    ray_dir: Path | None = None
    note: str | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def close(self) -> None:
        if self.owned:
            import ray
            ray.shutdown()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self.owned = self.started_local = False


def _set_env(conn: Connection, key: str, value: str) -> None:
    conn._saved_env.setdefault(key, os.environ.get(key))
    os.environ[key] = value


def prepare_local(conn: Connection, folder: Path) -> None:
    """Point a Ray instance about to start in this process at ``folder`` for all its files
    (the environment is restored by ``conn.close()``)."""
    (folder / "ray").mkdir(parents=True, exist_ok=True)
    conn.ray_dir = folder
    _set_env(conn, "RAY_TMPDIR", str(folder))  # where Ray looks for its defaults
    _set_env(conn, "RAY_USAGE_STATS_ENABLED", os.environ.get("RAY_USAGE_STATS_ENABLED", "0"))
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        # Ray (>= 2.5x) protects a new cluster with a token it would save under ~/.ray.
        token = folder / "auth_token"
        if not token.exists():
            token.write_text(secrets.token_hex(32))
            token.chmod(0o600)
        _set_env(conn, "RAY_AUTH_TOKEN_PATH", str(token))
        _set_env(conn, "RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE", "token"))
        _refresh_ray_config()


def _refresh_ray_config() -> None:
    """Ray reads RAY_AUTH_MODE when it is imported; make an imported Ray see the new value
    (what ray.init itself does when it turns token authentication on)."""
    raylet = sys.modules.get("ray._raylet")
    config = getattr(raylet, "Config", None)
    if config is not None and hasattr(config, "initialize"):
        config.initialize("")


def _no_sigterm_note(record: logging.LogRecord) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()


@contextmanager
def _faulthandler_on_real_stderr() -> Iterator[None]:
    """ray.init calls faulthandler.enable(), which needs sys.stderr to be a real file. In the
    terminal app it is Textual's print capture (fileno -1), and ray.init would fail with
    "file.fileno() is not a valid file descriptor": point faulthandler at the process's own
    stderr for that call (nothing else is redirected)."""
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    original = faulthandler.enable

    def enable(file: Any = None, all_threads: bool = True) -> None:
        original(file if file is not None else sys.__stderr__, all_threads)

    faulthandler.enable = enable
    try:
        yield
    finally:
        faulthandler.enable = original


def connect(address: str | None, ray_dir: Path | str | None = None,
            num_cpus: int | None = None) -> Connection:
    """ray.init for the workbench. ``address`` None starts a local instance with its files in
    the Ray folder; 'auto' or 'HOST:PORT' or 'ray://HOST:PORT' joins an existing cluster.
    When Ray is already initialised in this process, that connection is used as it is."""
    require_ray()
    import ray

    if ray.is_initialized():
        return Connection()
    # The runner thread calls ray.init; Ray's note that it cannot then set a SIGTERM handler
    # is of no use to the user (the workbench shuts Ray down itself).
    logging.getLogger("ray._private.worker").addFilter(_no_sigterm_note)
    conn = Connection()
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    _set_env(conn, "RAY_USAGE_STATS_ENABLED", os.environ.get("RAY_USAGE_STATS_ENABLED", "0"))
    if address is None:
        folder, conn.note = ray_dir_for(ray_dir)
        prepare_local(conn, folder)
        try:
            with _faulthandler_on_real_stderr():
                ray.init(_temp_dir=str(folder / "ray"), num_cpus=num_cpus, **common)
        except BaseException:
            conn.close()
            raise
        conn.started_local = True
    else:
        try:
            with _faulthandler_on_real_stderr():
                ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            conn.close()
            raise RayUnavailable(
                f"--ray-address {address}: cannot join a Ray cluster there ({exc}); start one "
                "with `ray start --head` on the head machine, or leave out --ray-address to "
                "start a local Ray instance") from None
    conn.owned = True
    return conn

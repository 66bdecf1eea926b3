"""Data sets: IDX reading, locating, fallback, the seed's split, normalised tensors on device.

Raw data (uint8 images, labels) is loaded once per process; each (data set, seed, device)
split is normalised once and kept as tensors on the run's device, reused across runs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ENV_DATA_DIR = "MNIST_WORKBENCH_DATA"
ENV_OFFLINE = "MNIST_WORKBENCH_OFFLINE"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(Exception):
    """A data set could not be had; the message names the file or the remedies."""


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mnist-workbench"


@dataclass(frozen=True)
class DataRequest:
    """What a data set's loader is told: where to look and whether it may download."""

    data_dir: Path
    allow_download: bool = True


FALLBACK_MARK = " (fallback for "


def loaded_name(identity: str) -> str:
    """The data set actually loaded, from a stored identity: 'mnist-sample (fallback for
    mnist)' -> 'mnist-sample'; a plain name is returned as it is."""
    return identity.split(FALLBACK_MARK, 1)[0]


@dataclass(frozen=True)
class RawData:
    name: str  # the data set actually loaded, e.g. "mnist-sample"
    train_images: Any  # numpy uint8 (N, 28, 28)
    train_labels: Any  # numpy int64 (N,)
    test_images: Any
    test_labels: Any
    source: str  # where the files were read from
    fingerprint: str  # sha256 over the four files' contents, shortened
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    fallback_for: str | None = None  # set when this data stands in for another data set

    @property
    def identity(self) -> str:
        if self.fallback_for:
            return f"{self.name}{FALLBACK_MARK}{self.fallback_for})"
        return self.name


# -- IDX files --------------------------------------------------------------------------

GOOD_COPY = ("delete it: a downloadable data set is fetched again on the next run (or copy "
             "a good file in its place)")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip). Truncated or corrupted files raise DataError."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is truncated or corrupted: "
                        f"{GOOD_COPY}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number); "
                        f"{GOOD_COPY}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header; {GOOD_COPY}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: IDX data is {len(raw) - header} bytes, its header says "
                        f"{size} ({'x'.join(map(str, dims))}); the file is truncated or "
                        f"corrupted: {GOOD_COPY}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in a folder (plain or .gz), or None when any is missing."""
    found = {}
    for stem in IDX_FILES:
        for cand in (folder / stem, folder / f"{stem}.gz"):
            if cand.is_file():
                found[stem] = cand
                break
        else:
            return None
    return found


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksums(folder: Path, sums_file: Path) -> None:
    """Compare files against a SHA256SUMS list; a mismatch names the file."""
    for line in sums_file.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split()
        path = folder / name.lstrip("*")
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {sums_file}); restore it from the "
                            "repository or reinstall mnist-workbench")
        if file_sha256(path) != digest:
            raise DataError(f"{path}: checksum mismatch against {sums_file}; the file is "
                            "corrupted: restore it from the repository (git checkout -- "
                            f"{path.name}) or reinstall mnist-workbench")


def load_idx_folder(name: str, files: dict[str, Path], classes: tuple[str, ...] | None = None
                    ) -> RawData:
    arrays = {stem: read_idx(path) for stem, path in files.items()}
    fp = hashlib.sha256()
    for stem in IDX_FILES:
        fp.update(arrays[stem].tobytes())
    ti, tl = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    vi, vl = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    for imgs, labels, split in ((ti, tl, "train"), (vi, vl, "t10k")):
        if len(imgs) != len(labels):
            raise DataError(f"{files[split + '-labels-idx1-ubyte']}: {len(labels)} labels for "
                            f"{len(imgs)} images; the files do not belong together")
    return RawData(name=name, train_images=ti, train_labels=tl.astype(np.int64),
                   test_images=vi, test_labels=vl.astype(np.int64),
                   source=str(files["train-images-idx3-ubyte"].parent),
                   fingerprint=fp.hexdigest()[:16],
                   classes=classes or tuple(str(i) for i in range(10)))


# -- downloads: fail fast offline --------------------------------------------------------

def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to host opens within ``timeout`` seconds."""
    if os.environ.get(ENV_OFFLINE):
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


def torchvision_download(cls_name: str, root: Path, host: str) -> None:
    """Download a torchvision data set (with its progress bar), failing fast offline."""
    if not network_reachable(host):
        raise DataError(f"cannot reach {host} to download {cls_name} (offline?)")
    import torchvision

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        getattr(torchvision.datasets, cls_name)(root=str(root), train=True, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/...
        raise DataError(f"download of {cls_name} into {root} failed: {exc}") from None
    finally:
        socket.setdefaulttimeout(old)


# -- resolving a data set by name, with loud fallback ------------------------------------

_RAW_CACHE: dict[tuple[str, str], RawData] = {}
_RAW_FAILED: dict[tuple[str, str, bool], tuple[float, str]] = {}  # -> (when, why)
_RAW_LOCK = threading.Lock()
RETRY_SECONDS = 30.0  # a data set that could not be had is not tried again sooner


def resolve(name: str, registry: Any, data_dir: Path | None = None, allow_fallback: bool = True,
            notify: Callable[[str], None] | None = None) -> RawData:
    """Load data set ``name``; when it cannot be had and it names a fallback, load that
    instead (telling ``notify``), unless ``allow_fallback`` is False."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    key = (name, str(data_dir))
    with _RAW_LOCK:
        if key in _RAW_CACHE:
            return _RAW_CACHE[key]
        failed = _RAW_FAILED.get((*key, allow_fallback))
        if failed and time.monotonic() - failed[0] < RETRY_SECONDS:
            raise DataError(failed[1])  # every run of a sweep fails in no time, same words
        try:
            raw = _load(name, registry, data_dir, allow_fallback, notify)
        except DataError as exc:
            _RAW_FAILED[(*key, allow_fallback)] = (time.monotonic(), str(exc))
            raise
        _RAW_CACHE[key] = raw
        return raw


def _load(name: str, registry: Any, data_dir: Path, allow_fallback: bool,
          notify: Callable[[str], None] | None) -> RawData:
    spec = registry.datasets.get(name)
    if spec is None:
        raise DataError(f"unknown data set {name!r}; available: "
                        f"{', '.join(sorted(registry.datasets))}")
    try:
        raw = _checked(spec.load(DataRequest(data_dir=data_dir)), name, registry)
    except DataError as exc:
        if not spec.fallback or not allow_fallback:
            hint = (f" Or allow the fallback to {spec.fallback!r} (drop --no-fallback), or "
                    f"run on it explicitly with --dataset {spec.fallback}."
                    if spec.fallback else "")
            raise DataError(f"{exc}.{hint}") from None
        fallback = registry.datasets[spec.fallback].load(DataRequest(data_dir=data_dir))
        raw = RawData(**{**fallback.__dict__, "fallback_for": name})
        if notify:
            notify(f"DATA FALLBACK: {name} is not available ({exc}). Using {raw.name} "
                   f"instead ({len(raw.train_labels)} train + {len(raw.test_labels)} test "
                   f"real digits): results are NOT comparable to full {name}. Every result "
                   f"row is marked '{raw.identity}'. Use --no-fallback to fail instead.")
    return raw


def _checked(raw: Any, name: str, registry: Any) -> RawData:
    """What a data set plugin returned, checked: a RawData of numpy arrays (a DataError naming
    the plugin otherwise; tensors and lists are refused, not guessed at)."""
    source = registry.source_of("dataset", name)
    if not isinstance(raw, RawData):
        raise DataError(f"data set {name!r} ({source}): load() returned "
                        f"{type(raw).__name__}; expected workbench.RawData")
    for f, dims in (("train_images", 3), ("train_labels", 1), ("test_images", 3),
                    ("test_labels", 1)):
        value = getattr(raw, f)
        if not isinstance(value, np.ndarray):
            raise DataError(f"data set {name!r} ({source}): RawData.{f} is "
                            f"{type(value).__module__}.{type(value).__name__}; expected a "
                            f"numpy array ({'uint8 (N, H, W)' if dims == 3 else 'int64 (N,)'}"
                            "; a torch tensor: .numpy())")
        if value.ndim not in ((3, 4) if dims == 3 else (1,)):
            raise DataError(f"data set {name!r} ({source}): RawData.{f} has shape "
                            f"{value.shape}; expected {'(N, H, W)' if dims == 3 else '(N,)'}")
    return raw


# -- the split, normalised, on device -----------------------------------------------------

@dataclass
class Split:
    """Train/validation/test tensors on one device, normalised with the train mean/std."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    mean: float
    std: float
    raw: RawData = field(repr=False)
    device: str = "cpu"

    @property
    def in_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image; rows of x_* are these, flattened."""
        dims = tuple(int(d) for d in self.raw.train_images.shape[1:])
        return (1, *dims) if len(dims) == 2 else dims  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.raw.classes)


def val_size(n_train: int) -> int:
    """The seed's 5,000 of 60,000, proportional for smaller data (1/12)."""
    return 5000 if n_train == 60000 else max(1, round(n_train / 12))


_SPLIT_CACHE: OrderedDict[tuple, Split] = OrderedDict()
_SPLIT_CACHE_SIZE = 2


def make_split(raw: RawData, seed: int, device: str = "cpu") -> Split:
    """The seed's split: validation drawn from training with ``seed``; cached per device."""
    key = (raw.identity, raw.fingerprint, int(seed), str(device))
    with _RAW_LOCK:
        if key in _SPLIT_CACHE:
            _SPLIT_CACHE.move_to_end(key)
            return _SPLIT_CACHE[key]
    import torch

    n = len(raw.train_labels)
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    n_val = val_size(n)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    images = torch.from_numpy(np.ascontiguousarray(raw.train_images)).reshape(n, -1)
    x_train = images[train_idx].to(torch.float32).div_(255.0)
    mean, std = float(x_train.mean()), float(x_train.std())

    def norm(x: Any) -> Any:
        return x.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    x_train.sub_(mean).div_(std)
    x_val = norm(images[val_idx])
    test = torch.from_numpy(np.ascontiguousarray(raw.test_images)).reshape(len(raw.test_labels), -1)
    labels = torch.from_numpy(raw.train_labels)
    split = Split(
        x_train=x_train.to(device), y_train=labels[train_idx].to(device),
        x_val=x_val.to(device), y_val=labels[val_idx].to(device),
        x_test=norm(test).to(device), y_test=torch.from_numpy(raw.test_labels).to(device),
        mean=mean, std=std, raw=raw, device=str(device))
    with _RAW_LOCK:
        _SPLIT_CACHE[key] = split
        while len(_SPLIT_CACHE) > _SPLIT_CACHE_SIZE:
            _SPLIT_CACHE.popitem(last=False)
    return split


def clear_caches() -> None:
    with _RAW_LOCK:
        _RAW_CACHE.clear()
        _RAW_FAILED.clear()
        _SPLIT_CACHE.clear()

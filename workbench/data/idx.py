"""IDX files (the MNIST format): finding the four files of a data set and reading them."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from workbench.data.raw import DataError, RawData

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

GOOD_COPY = ("delete it: a downloadable data set is fetched again on the next run (or copy "
             "a good file in its place)")


def read_bytes(path: Path) -> bytes:
    """A file's content, uncompressed when it ends in .gz; unreadable files raise DataError."""
    path = Path(path)
    try:
        return gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is truncated or corrupted: "
                        f"{GOOD_COPY}") from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip). Truncated or corrupted files raise DataError."""
    path = Path(path)
    raw = read_bytes(path)
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


def find_idx_files(folder: Path, stems: tuple[str, ...] = IDX_FILES
                   ) -> dict[str, Path] | None:
    """The data set's files in a folder (plain or .gz), or None when any is missing."""
    found = {}
    for stem in stems:
        for cand in (Path(folder) / stem, Path(folder) / f"{stem}.gz"):
            if cand.is_file():
                found[stem] = cand
                break
        else:
            return None
    return found


def load_idx_folder(name: str, files: dict[str, Path], classes: tuple[str, ...] | None = None,
                    origin: str = "") -> RawData:
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
                   classes=classes or tuple(str(i) for i in range(10)), origin=origin)

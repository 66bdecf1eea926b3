"""Checksums: a data set's files are checked before they are used or cached."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from workbench.data.idx import GOOD_COPY, read_bytes, read_idx
from workbench.data.raw import DataError


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


def content_md5(path: Path) -> str:
    """MD5 of a file's uncompressed content (a .gz is read through), as the originals are
    published: the same data checks the same whether it came compressed or not."""
    return hashlib.md5(read_bytes(path)).hexdigest()


def verify_md5s(files: Mapping[str, Path], md5s: Mapping[str, str]) -> None:
    """Every file against the MD5 of its original; the first mismatch raises DataError
    naming the file, what it should be, and whether it looks truncated."""
    for stem, want in md5s.items():
        path = files.get(stem)
        if path is None:
            raise DataError(f"{stem}: missing")
        got = content_md5(path)
        if got != want.lower():
            try:  # a cut-off file says so more plainly than a checksum does
                read_idx(path)
            except DataError as exc:
                raise DataError(f"{exc} (MD5 {got}, the original {stem} has {want})") from None
            raise DataError(f"{path}: MD5 {got} does not match the original {stem} ({want}); "
                            f"the file is corrupted or another version: {GOOD_COPY}")

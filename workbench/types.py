"""Plain data types shared by the engine, the faces and plugins (no torch, no Textual)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

# Run statuses, as stored and shown.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, DIVERGED = (
    "queued", "running", "done", "failed", "cancelled", "diverged")
INTERRUPTED = "interrupted"  # its process ended (killed, crashed) while it was running
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, DIVERGED, INTERRUPTED)
FINAL_STATUSES = (DONE, FAILED, CANCELLED, DIVERGED, INTERRUPTED)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable hash of a resolved run config (key order and int/float spelling do not matter)."""
    canon = json.dumps({k: _canon(v) for k, v in sorted(config.items())}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()


def _canon(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


@dataclass(frozen=True)
class RunSpec:
    """One concrete training run: an experiment's resolved config, ready to train."""

    experiment: str
    index: int  # position inside its experiment
    config: dict[str, Any]  # fully resolved: every key has its value
    label: str  # what distinguishes this run inside its experiment, e.g. "lr=0.01 hidden=50"

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def run_id(self) -> str:
        return f"{self.experiment}#{self.config_hash[:10]}"

    def __hash__(self) -> int:  # dict field: hash by identity of what it means
        return hash((self.experiment, self.config_hash))


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_acc: float  # fraction in [0, 1]
    best_val_acc: float
    best_epoch: int
    seconds: float  # training wall time so far in this run


@dataclass(frozen=True)
class RunResult:
    status: str  # one of FINAL_STATUSES
    epochs: tuple[EpochMetrics, ...] = ()
    test_acc: float | None = None
    test_loss: float | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None  # [true][predicted]
    predictions: bytes | None = None  # predicted class per test image, uint8
    train_seconds: float = 0.0
    device: str = ""
    dataset: str = ""
    error: str | None = None  # for failed/diverged/cancelled: why, in one or a few lines

    @property
    def best_val_acc(self) -> float | None:
        return max((e.val_acc for e in self.epochs), default=None)


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers. build(config, in_features, num_classes) -> torch.nn.Module."""

    name: str
    build: Callable[[Mapping[str, Any], int, int], Any]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)  # extra config keys -> default


@dataclass(frozen=True)
class ExperimentKind:
    """An experiment a plugin offers: turns one base config into the runs to train.

    expand(base_config, options) returns a list of config overrides (dicts), one per run.
    """

    name: str
    expand: Callable[[Mapping[str, Any], Mapping[str, Any]], Sequence[Mapping[str, Any]]]
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # option -> default


@dataclass(frozen=True)
class DatasetSpec:
    """A data set a plugin offers: either ``load(request) -> RawData`` (see workbench.data),
    or ``files`` with their checksums and the ``sources`` to fetch them from, tried in order
    after the data folder (``DATA_DIR/<cache>``, default the name)."""

    name: str
    load: Callable[[Any], Any] | None = None
    description: str = ""
    num_classes: int = 10
    fallback: str | None = None  # data set to use (loudly) when this one cannot be had
    files: Mapping[str, str] = field(default_factory=dict)  # IDX file stem -> MD5 (unpacked)
    sources: Sequence[Any] = ()  # workbench.data sources: FolderSource, NpmSource, ...
    cache: str = ""  # folder under the data dir holding the files once fetched
    classes: tuple[str, ...] | None = None  # class names; None: "0".."9"

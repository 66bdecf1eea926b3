"""Plain data types shared by the engine, the faces and plugins (no torch, no Textual)."""

from __future__ import annotations

import functools

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from workbench.formatting import run_name

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


class FrozenConfig(dict):
    """A run config that cannot be changed: plugins and hooks read it, and changing it would
    silently part what trains from what is stored. Lists become tuples. Still a dict for
    json, pickle and ``{**config, key: value}`` (which makes a new, ordinary dict)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__({k: _frozen(v) for k, v in dict(*args, **kwargs).items()})

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a run's config is read-only; build a new dict "
                        "({**config, key: value}) instead of changing it")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (FrozenConfig, (dict(self),))


def _frozen(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class RunSpec:
    """One concrete training run: an experiment's resolved config, ready to train."""

    experiment: str
    index: int  # position inside its experiment
    config: dict[str, Any]  # fully resolved: every key has its value
    label: str  # what distinguishes this run inside its experiment, e.g. "lr=0.01 hidden=50"

    def __post_init__(self) -> None:
        if not isinstance(self.config, FrozenConfig):
            object.__setattr__(self, "config", FrozenConfig(self.config))

    @functools.cached_property
    def config_hash(self) -> str:  # computed once: the config is frozen
        return config_hash(self.config)

    @property
    def name(self) -> str:
        return run_name(self.experiment, self.label)

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
    lr: float | None = None  # the learning rate this epoch trained with


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
    # How many runs trained together in one stack (1: alone). train_seconds is then the
    # stack's wall time until this run finished, shared by all of them.
    stack_size: int = 1
    stopped_early: str | None = None  # done before its last epoch: why (a callback asked)

    @property
    def best_val_acc(self) -> float | None:
        return max((e.val_acc for e in self.epochs), default=None)


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers. build(config, in_features, num_classes) -> torch.nn.Module,
    or with ``input_shape=True``: build(config, (channels, height, width), num_classes).

    Either way the model's forward receives float32 batches of shape (batch, in_features),
    images flattened row by row (a CNN unflattens them to ``input_shape``).
    ``check(config)`` (optional) returns problems with a resolved run config, one string
    each ("key: got ..., expected ..."), reported with the file's other problems.
    """

    name: str
    build: Callable[[Mapping[str, Any], Any, int], Any]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)  # extra config keys -> default
    # A param's type when its default does not tell it (e.g. default None): key -> a type
    # or a tuple of types, such as {"width": int}. Others take their default's type.
    param_types: Mapping[str, Any] = field(default_factory=dict)
    input_shape: bool = False  # build receives (channels, height, width), not in_features
    check: Callable[[Mapping[str, Any]], Sequence[str]] | None = None
    # False: its runs never train as one stack (anything but an nn.Sequential MLP of biased
    # Linear and element-wise layers), so each run is a unit of its own and the pool trains
    # several at once. True: runs equal but for lr, epochs and seed are handed over together
    # and stacked when their built models allow it (else trained one after another).
    stackable: bool = True


@dataclass(frozen=True)
class CallbackKind:
    """A training callback a plugin offers, chosen per run with ``callbacks = ["name"]``.

    make(config) returns an object with ``on_epoch_start(ctx)`` and/or ``on_epoch_end(ctx)``
    (ctx: workbench.TrainingContext); one object per run, made before its first epoch.
    ``params``: the config keys it reads, with their defaults (present in a run's config
    only when the run uses this callback). ``uses_total_epochs``: what it does depends on the
    run's total ``epochs`` (cosine, one-cycle), so a shorter run is not a prefix of a longer
    one and stacked training must not share them.
    """

    name: str
    make: Callable[[Mapping[str, Any]], Any]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    uses_total_epochs: bool = False


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

"""A data set by name: loaded once per process through its loader or its source chain,
with the loud fallback (e.g. mnist -> mnist-sample) when it cannot be had."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from workbench.data.idx import load_idx_folder
from workbench.data.raw import DataError, DataRequest, RawData, default_data_dir
from workbench.data.sources import Chain
from workbench.data.split import clear_split_cache

_RAW_CACHE: dict[tuple[str, str], RawData] = {}
_RAW_FAILED: dict[tuple[str, str, bool], tuple[float, str]] = {}  # -> (when, why)
_RAW_LOCK = threading.Lock()
RETRY_SECONDS = 30.0  # a data set that could not be had is not tried again sooner


def chain_for(spec: Any, data_dir: Path) -> Chain:
    """The source chain of a data set that declares files (no ``load`` of its own)."""
    return Chain(spec.name, Path(data_dir) / (spec.cache or spec.name), dict(spec.files),
                 tuple(spec.sources))


def load_spec(spec: Any, request: DataRequest, source: str = "") -> RawData:
    """One data set, by its own loader or else through its source chain. ``source``: where
    the plugin came from, named when its loader returns the wrong thing."""
    if spec.load is not None:
        return _checked(spec.load(request), f"data set {spec.name!r}"
                        + (f" ({source})" if source else ""))
    files, origin = chain_for(spec, request.data_dir).obtain(request.allow_download,
                                                             request.progress)
    return load_idx_folder(spec.name, files, spec.classes, origin)


def _checked(raw: Any, who: str) -> RawData:
    """What a data set plugin's load() returned, checked: a RawData of numpy arrays (a
    DataError naming the data set otherwise; tensors and lists are refused, not guessed at)."""
    import numpy as np

    if not isinstance(raw, RawData):
        raise DataError(f"{who}: load() returned {type(raw).__name__}; expected "
                        "workbench.RawData")
    for f, dims in (("train_images", 3), ("train_labels", 1), ("test_images", 3),
                    ("test_labels", 1)):
        value = getattr(raw, f)
        if not isinstance(value, np.ndarray):
            raise DataError(f"{who}: RawData.{f} is "
                            f"{type(value).__module__}.{type(value).__name__}; expected a "
                            f"numpy array ({'uint8 (N, H, W)' if dims == 3 else 'int64 (N,)'}"
                            "; a torch tensor: .numpy())")
        if value.ndim not in ((3, 4) if dims == 3 else (1,)):
            raise DataError(f"{who}: RawData.{f} has shape {value.shape}; "
                            f"expected {'(N, H, W)' if dims == 3 else '(N,)'}")
    return raw


def resolve(name: str, registry: Any, data_dir: Path | None = None, allow_fallback: bool = True,
            notify: Callable[[str], None] | None = None,
            progress: Callable[[Any], None] | None = None) -> RawData:
    """Load data set ``name``; when it cannot be had and it names a fallback, load that
    instead (telling ``notify``), unless ``allow_fallback`` is False. ``progress`` hears
    the source chain (data.sources.FetchEvent)."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    key = (name, str(data_dir))
    with _RAW_LOCK:
        if key in _RAW_CACHE:
            return _RAW_CACHE[key]
        failed = _RAW_FAILED.get((*key, allow_fallback))
        if failed and time.monotonic() - failed[0] < RETRY_SECONDS:
            raise DataError(failed[1])  # every run of a sweep fails in no time, same words
        try:
            raw = _load(name, registry, data_dir, allow_fallback, notify, progress)
        except DataError as exc:
            _RAW_FAILED[(*key, allow_fallback)] = (time.monotonic(), str(exc))
            raise
        _RAW_CACHE[key] = raw
        return raw


def _load(name: str, registry: Any, data_dir: Path, allow_fallback: bool,
          notify: Callable[[str], None] | None,
          progress: Callable[[Any], None] | None = None) -> RawData:
    spec = registry.datasets.get(name)
    if spec is None:
        raise DataError(f"unknown data set {name!r}; available: "
                        f"{', '.join(sorted(registry.datasets))}")
    try:
        raw = load_spec(spec, DataRequest(data_dir=data_dir, progress=progress),
                        registry.source_of("dataset", name))
    except DataError as exc:
        if not spec.fallback or not allow_fallback:
            hint = (f" Or allow the fallback to {spec.fallback!r} (drop --no-fallback), or "
                    f"run on it explicitly with --dataset {spec.fallback}."
                    if spec.fallback else "")
            raise DataError(f"{exc}.{hint}") from None
        fallback = load_spec(registry.datasets[spec.fallback], DataRequest(data_dir=data_dir))
        raw = RawData(**{**fallback.__dict__, "fallback_for": name})
        if notify:
            notify(f"DATA FALLBACK: {name} is not available ({exc}). Using {raw.name} "
                   f"instead ({len(raw.train_labels)} train + {len(raw.test_labels)} test "
                   f"real digits): results are NOT comparable to full {name}. Every result "
                   f"row is marked '{raw.identity}'. Use --no-fallback to fail instead.")
    return raw


def clear_caches() -> None:
    with _RAW_LOCK:
        _RAW_CACHE.clear()
        _RAW_FAILED.clear()
    clear_split_cache()

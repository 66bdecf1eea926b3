"""The seed's split (55,000 / 5,000 / 10,000, validation drawn with the run's seed),
normalised once with the training mean/std and kept as tensors on the run's device."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.data.raw import RawData

_LOCK = threading.Lock()

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
    with _LOCK:
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
    with _LOCK:
        _SPLIT_CACHE[key] = split
        while len(_SPLIT_CACHE) > _SPLIT_CACHE_SIZE:
            _SPLIT_CACHE.popitem(last=False)
    return split


def clear_split_cache() -> None:
    with _LOCK:
        _SPLIT_CACHE.clear()

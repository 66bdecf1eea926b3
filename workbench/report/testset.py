"""The test images a stored run was evaluated on, and which of them it got wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TestSet:
    images: Any
    labels: Any
    fingerprint: str
    classes: tuple[str, ...]


def load_test_set(identity: str, registry: Any, data_dir: Any) -> TestSet:
    """The test set a stored run was evaluated on (``identity`` as stored: a fallback's
    identity names the data actually used)."""
    from workbench import data

    raw = data.resolve(data.loaded_name(identity), registry, data_dir, allow_fallback=False)
    return TestSet(raw.test_images, raw.test_labels, raw.fingerprint, raw.classes)


def misclassified(labels: np.ndarray, predictions: bytes, true: int, predicted: int
                  ) -> np.ndarray:
    """Indices of test images with label ``true`` that the run predicted as ``predicted``."""
    pred = np.frombuffer(predictions, dtype=np.uint8)
    return np.flatnonzero((np.asarray(labels) == true) & (pred == predicted))

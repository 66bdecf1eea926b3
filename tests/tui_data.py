"""A results store built from fixed numbers, for deterministic TUI snapshots.

Configs are real plans of a small lr x hidden grid; accuracies follow a fixed formula; the
predictions are the real mnist-sample test labels with fixed substitutions (every third 4
predicted as 9, every fifth 7 as 2, ...), so the confusion matrix and its gallery of real
digits are consistent with each other.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

GRID_TOML = """
title = "snapshot study"
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 3
batch_size = 256
seed = 3

[[experiment]]
name = "baseline"
description = "one run of the defaults"

[[experiment]]
name = "grid"
description = "lr x hidden, 9 runs"
[experiment.grid]
lr = [1e-2, 1e-3, 1e-4]
hidden = [8, 16, 32]
"""

# (true, predicted, every n-th image of that class is predicted wrong)
CONFUSIONS = ((4, 9, 3), (7, 2, 5), (3, 5, 6), (9, 4, 7), (8, 3, 8), (5, 3, 9))


def write_study(folder: Path) -> Path:
    path = folder / "experiments.toml"
    path.write_text(textwrap.dedent(GRID_TOML))
    return path


def fixed_predictions(labels: np.ndarray, strength: int) -> np.ndarray:
    """Labels with fixed wrong answers; a larger ``strength`` makes more of them."""
    pred = labels.astype(np.uint8).copy()
    for true, wrong, every in CONFUSIONS:
        idx = np.flatnonzero(labels == true)
        pred[idx[:: max(1, every - strength)]] = wrong
    return pred


def fixed_store(store_path: Path, toml_path: Path) -> list[int]:
    """Write the study's runs as finished, with fixed metrics; returns the row ids."""
    from workbench import data
    from workbench.plugins import load_plugins
    from workbench.session import open_session
    from workbench.store import Store
    from workbench.training import confusion_matrix
    from workbench.types import DONE, EpochMetrics, RunResult

    import torch

    registry = load_plugins(entry_points=False)
    raw = data.resolve("mnist-sample", registry)
    session = open_session(toml_path)
    store = Store(store_path)
    ids = []
    for n, run in enumerate(session.runs):
        lr, hidden = run.config["lr"], run.config["hidden"]
        strength = {1e-2: 1, 1e-3: 0, 1e-4: 2}.get(lr, 0) + {8: 1, 16: 0, 32: 0}.get(hidden, 0)
        pred = fixed_predictions(raw.test_labels, strength)
        cm = confusion_matrix(torch.from_numpy(raw.test_labels),
                              torch.from_numpy(pred.astype(np.int64)))
        test_acc = float((pred == raw.test_labels).mean())
        epochs = []
        for e in range(1, int(run.config["epochs"]) + 1):
            val = test_acc - 0.02 * (run.config["epochs"] - e) + 0.001 * (n % 3)
            epochs.append(EpochMetrics(e, 1.2 / e + 0.1 * strength, 1.0 / e + 0.1 * strength,
                                       val, max(val, *(m.val_acc for m in epochs)) if epochs
                                       else val, e, 1.5 * e))
        row_id = store.start_run(run, raw.identity, "cpu", raw.fingerprint)
        store.finish_run(row_id, RunResult(
            status=DONE, epochs=tuple(epochs), test_acc=test_acc, test_loss=0.3,
            confusion=cm, predictions=pred.tobytes(), train_seconds=1.5 * len(epochs) + n / 10,
            device="cpu", dataset=raw.identity))
        ids.append(row_id)
    store.close()
    return ids

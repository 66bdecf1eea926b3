"""A run config's keys every model understands and their defaults, stated once, here (a leaf:
nothing of the workbench is imported, so the faces' formatting can use it too)."""

from __future__ import annotations

from typing import Any, Mapping

# The run config every model understands, with its default (stated once, here).
CORE_DEFAULTS: dict[str, Any] = {
    "model": "baseline_mlp",
    "dataset": "mnist",
    "lr": 1e-3,
    "hidden": 100,
    "activation": "relu",
    "dropout": 0.0,
    "epochs": 3,
    "batch_size": 128,
    "seed": 11,
    "optimizer": "adam",
}

# Keys every model understands that a run's config holds only when they differ from their
# default: adding them changed no existing run's config hash (stores keep their results).
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "callbacks": (),  # training callbacks by name (schedules, early stopping), in order
    "momentum": 0.0,  # sgd only
    "weight_decay": 0.0,  # L2 penalty, adam and sgd (torch's weight_decay)
    "betas": (0.9, 0.999),  # adam only
}


def with_optional_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with the optional keys it leaves out (a stored config does, at their
    default) at their default."""
    return {**OPTIONAL_DEFAULTS, **config}


def same(a: Any, b: Any) -> bool:
    """Equal as config values (a TOML list and a tuple alike, 1 and 1.0 alike)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b

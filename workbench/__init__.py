"""mnist-workbench: run, watch and compare neural-network experiments on MNIST.

Public API for plugin authors (everything a plugin needs; see docs/plugins.md)::

    from workbench import (hookimpl, ModelSpec, ExperimentKind, DatasetSpec, CallbackKind,
                           TrainingContext, RawData, DataRequest, DataError, build_mlp)
    from workbench.data import FolderSource, NpmSource, TorchvisionSource  # a data set's sources
"""

from typing import Any

import pluggy

from workbench.types import (CallbackKind, DatasetSpec, EpochMetrics, ExperimentKind,
                             ModelSpec, RunResult, RunSpec)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("mnist_workbench")

# Imported on first use: they pull in numpy or torch, which listing plugins does not need.
_LAZY = {
    "TrainingContext": "workbench.callbacks",
    "RawData": "workbench.data",
    "DataRequest": "workbench.data",
    "DataError": "workbench.data",
    "build_mlp": "workbench.models",
    "activation": "workbench.models",
    "ACTIVATIONS": "workbench.models",
}

__all__ = ["hookimpl", "ModelSpec", "ExperimentKind", "DatasetSpec", "CallbackKind", "RunSpec",
           "RunResult", "EpochMetrics", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")

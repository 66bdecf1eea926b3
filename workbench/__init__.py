"""mnist-workbench: run, watch and compare neural-network experiments on MNIST.

Public API for plugin authors::

    from workbench import hookimpl, ModelSpec, ExperimentKind, DatasetSpec
"""

import pluggy

from workbench.types import (DatasetSpec, EpochMetrics, ExperimentKind, ModelSpec, RunResult,
                             RunSpec)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("mnist_workbench")

__all__ = ["hookimpl", "ModelSpec", "ExperimentKind", "DatasetSpec", "RunSpec", "RunResult",
           "EpochMetrics", "__version__"]

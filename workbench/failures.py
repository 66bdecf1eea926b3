"""Why a run failed, in one or a few lines a user can act on (shared by every executor and
by the training side, wherever the run trained)."""

from __future__ import annotations

import traceback
from pathlib import Path

from workbench.plugins import PluginError
from workbench.types import RunSpec


def failure_message(exc: BaseException, run: RunSpec) -> str:
    """One or a few lines a user can act on."""
    import torch

    from workbench.data import DataError

    root = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ else exc
    text = str(root).lower()
    if isinstance(root, torch.OutOfMemoryError) or "out of memory" in text \
            or "can't allocate memory" in text:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the next run the memory back
        if isinstance(exc, PluginError) and exc.hook.startswith("building model"):
            return (f"out of memory {exc.hook} (hidden {run.config.get('hidden')}): the model "
                    "does not fit; try a smaller model (hidden, layers)")
        bs = run.config["batch_size"]
        return (f"out of memory on the device with batch_size {bs}: try a smaller "
                f"batch_size (for example {max(1, bs // 2)}) or a smaller model")
    if isinstance(exc, PluginError):
        tb = traceback.extract_tb(exc.__cause__.__traceback__) if exc.__cause__ else []
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in tb[-3:])
        return f"{exc}" + (f" [{where}]" if where else "")
    if isinstance(exc, DataError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"

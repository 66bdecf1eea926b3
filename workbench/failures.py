"""Why a run failed, in one or a few lines a user can act on (shared by every executor and
by the training side, wherever the run trained)."""

from __future__ import annotations

import traceback
from pathlib import Path

from workbench.callbacks import CallbackError
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
    if isinstance(exc, (PluginError, CallbackError)):  # the message names the plugin
        where = _plugin_frames(exc.__cause__)
        return f"{exc}" + (f" [{where}]" if where else "")
    if isinstance(exc, DataError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _plugin_frames(exc: BaseException | None) -> str:
    """Where in the plugin's own code the exception came from, the last three frames
    ('broken.py:20 in on_epoch_end'): the workbench's and torch's frames left out (they say
    nothing a plugin author can act on); '' when none are the plugin's."""
    import torch

    import workbench

    if exc is None:
        return ""
    ours = (Path(workbench.__file__).parent, Path(torch.__file__).parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not any(Path(f.filename).is_relative_to(p) for p in ours)]
    return "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames[-3:])

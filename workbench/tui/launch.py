"""Opening the app as the command line asks: the study (or a built-in default), plugins, the
store, the executor. ``make_app`` is what tests and scripts use; ``run_app`` is
``mnist-workbench [FILE]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from workbench.plan import unit_grouper
from workbench.runner import Settings
from workbench.store import Store
from workbench.tui.app import WorkbenchApp

# Opened when there is no experiments file: the seed's baseline and a small lr x hidden grid.
DEFAULT_STUDY: dict[str, Any] = {
    "title": "built-in default study (no experiments.toml here)",
    "defaults": {"dataset": "mnist", "model": "baseline_mlp", "lr": 1e-3, "hidden": 100,
                 "epochs": 3, "batch_size": 128, "seed": 11},
    "experiment": [
        {"name": "baseline", "description": "the seed baseline 784-100-10, ReLU, Adam 1e-3, "
                                            "3 epochs, batch 128"},
        {"name": "lr-hidden", "description": "learning rate x hidden units, 9 runs",
         "grid": {"lr": [1e-2, 1e-3, 1e-4], "hidden": [50, 100, 200]}},
    ],
}

def check_device_in_child(device: str | None) -> None:
    """Check an explicit --device as pick_device does, in a short child process: the app's
    own process never imports torch (about 500 MB and two seconds), only the trainer does.
    Raises ValueError naming the device."""
    if device in (None, "", "auto"):
        return  # the trainer picks CUDA when there is one
    check = subprocess.run(
        [sys.executable, "-c", "import sys; from workbench.training import pick_device\n"
         "try: pick_device(sys.argv[1])\nexcept ValueError as e: sys.exit(str(e))", device],
        capture_output=True, text=True, timeout=120)
    if check.returncode:
        raise ValueError(check.stderr.strip().splitlines()[-1] if check.stderr.strip()
                         else f"--device {device}: could not be checked")


def make_app(path: Path | None = None, store_path: Path | str = "results/workbench.sqlite",
             plugins: Sequence[Path] = (), only: Sequence[str] = (), dataset: str | None = None,
             device: str | None = None, data_dir: Path | None = None,
             no_fallback: bool = False, rerun: bool = False, no_stack: bool = False,
             threads: int | None = None, executor: str | None = None,
             ray_address: str | None = None, ray_dir: Path | None = None,
             redraw_hz: float = 1.0, start_runner: bool = True,
             browse: bool = False) -> WorkbenchApp:
    """Build the app as the command line would (tests reuse this). ``browse``: open on the
    store's own experiments (``--store`` without a study file); training into it asks
    first. Raises ConfigError, StoreError or ValueError (a bad --device, Ray missing) for
    bad input."""
    from workbench.execution import make_executor
    from workbench.process_executor import ProcessExecutor, can_run
    from workbench.session import open_session, store_session

    store = None
    if browse:
        store = Store(store_path)
        session = store_session(store.runs(), f"browsing {store_path}", plugins)
    else:
        if path is None and Path("experiments.toml").is_file():
            path = Path("experiments.toml")
        raw = DEFAULT_STUDY if path is None else None
        session = open_session(path, plugins, only, dataset, raw=raw)
    engine = make_executor(executor or session.study.executor,
                           ray_address or session.study.ray_address, ray_dir)
    if engine is None:  # a Ray cluster's devices are checked where the runs train
        if can_run(session.registry):  # train in a child process: the UI costs it nothing
            engine = ProcessExecutor()
            check_device_in_child(device)
        else:  # plugins registered in this process: training runs here, torch with it
            from workbench.training import pick_device
            pick_device(device)
    settings = Settings(device=device, data_dir=data_dir, allow_fallback=not no_fallback,
                        rerun=rerun, stack=not no_stack,
                        threads=threads or 1)
    store = store or Store(store_path)
    return WorkbenchApp(session, store, settings, group=unit_grouper(settings.stack),
                        executor=engine, redraw_hz=redraw_hz, start_runner=start_runner,
                        browse=browse)


def run_app(path: Path | None, store_path: Path, args: Any) -> int:
    """Entry point of ``mnist-workbench [FILE]`` (see workbench.cli)."""
    from workbench.config import ConfigError
    from workbench.store import StoreError

    try:
        app = make_app(path, store_path, plugins=getattr(args, "plugins", ()) or (),
                       only=getattr(args, "only", ()) or (),
                       dataset=getattr(args, "dataset", None),
                       device=getattr(args, "device", None),
                       data_dir=getattr(args, "data_dir", None),
                       no_fallback=getattr(args, "no_fallback", False),
                       rerun=getattr(args, "rerun", False),
                       no_stack=getattr(args, "no_stack", False),
                       threads=getattr(args, "threads", None),
                       executor=getattr(args, "executor", None),
                       ray_address=getattr(args, "ray_address", None),
                       ray_dir=getattr(args, "ray_dir", None),
                       browse=path is None and getattr(args, "store", None) is not None)
    except ConfigError as exc:
        problems = exc.problems
    except (StoreError, ValueError) as exc:
        problems = [str(exc)]
    else:
        try:
            code = app.run()
        finally:
            app.runner.stop(cancel=True)
            app.runner.join(120)
            app.store.close()
        return int(code or 0)
    print(f"mnist-workbench: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
          "found, the app was not opened:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2

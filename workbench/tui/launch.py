"""Opening the app as the command line asks: the study (or a built-in default), plugins, the
store, the executor (workbench.engine.open_engine, as headless mode). ``make_app`` is what
tests and scripts use; ``run_app`` is ``mnist-workbench [FILE]``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.engine import Options, open_engine
from workbench.store import DEFAULT_STORE
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


def make_app(path: Path | None = None, store_path: Path | str = DEFAULT_STORE,
             redraw_hz: float = 1.0, start_runner: bool = True, **options: Any) -> WorkbenchApp:
    """Build the app as the command line would (tests reuse this); ``options``: any field of
    workbench.engine.Options. Raises ConfigError, StoreError or ValueError (a bad --device,
    Ray missing) for bad input."""
    return open_app(Options(path=path, store=Path(store_path), **options), redraw_hz,
                    start_runner)


def open_app(options: Options, redraw_hz: float = 1.0, start_runner: bool = True
             ) -> WorkbenchApp:
    """The app on ``open_engine(options)``: the built-in default study when no experiments
    file is given or found here, the store's own experiments when browsing (``--store``
    without a study file), training in a child process when the plugins allow it."""
    browsing = options.browse or (options.path is None
                                  and not Path("experiments.toml").is_file())
    if options.path is None and not browsing:
        options = replace(options, path=Path("experiments.toml"))
    raw = DEFAULT_STUDY if options.path is None else None
    engine = open_engine(options, raw=raw, child_process=True, browse=browsing)
    if not browsing and not engine.store.readonly:  # a browsed store keeps its figures
        from workbench.references import record
        record(engine.store, engine.session.study)
    return WorkbenchApp(engine, redraw_hz=redraw_hz, start_runner=start_runner,
                        browse=browsing)


def attach_app(store_path: Path | str, redraw_hz: float = 1.0) -> WorkbenchApp | None:
    """The app attached to the headless sweep writing ``store_path`` now (None: no sweep is
    running there). Tests reuse this."""
    from workbench.attach import open_attached, running_sweep

    sweep = running_sweep(store_path)
    if sweep is None:
        return None
    return WorkbenchApp(open_attached(store_path, sweep, DEFAULT_STUDY), redraw_hz=redraw_hz)


def run_app(options: Options, attach: bool = False) -> int:
    """Entry point of ``mnist-workbench [FILE]`` (see workbench.cli): without FILE, attached
    to the sweep writing the store when one is running. ``attach``: only that
    (``mnist-workbench attach``)."""
    from workbench.config import ConfigError
    from workbench.store import StoreError

    try:
        app = attach_app(options.store) if attach or options.path is None else None
        if app is None and attach:
            raise ValueError(f"--store {options.store}: no headless sweep is writing it now; "
                             "start one (mnist-workbench --headless FILE --store "
                             f"{options.store}) or open the store without attach")
        app = app or open_app(options)
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

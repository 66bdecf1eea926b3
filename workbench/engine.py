"""From the command line to a running engine, the same for both faces: a frozen Options
built once, and ``open_engine(options)``: plugins, the validated study and its runs, the
executor, the device check and the store, in that order (bad input is reported before the
store is created or touched)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workbench import events as ev
from workbench.executors.context import Executor, Settings
from workbench.session import Session, open_session
from workbench.store import DEFAULT_STORE, Store
from workbench.types import RunSpec


@dataclass(frozen=True)
class Options:
    """What the user asked for on the command line (each default stated here only)."""

    path: Path | None = None  # the experiments file
    store: Path = DEFAULT_STORE
    plugins: tuple[Path, ...] = ()  # --plugins folders
    only: tuple[str, ...] = ()
    dataset: str | None = None  # every experiment's data set
    device: str = "auto"
    data_dir: Path | None = None
    fallback: bool = True  # use mnist-sample when a data set is missing
    rerun: bool = False
    stack: bool = True
    threads: int = 1  # torch CPU threads for training, per worker (see Settings.threads)
    workers: int | None = None  # local training processes; None: the file's, else one per core
    executor: str | None = None  # None: the file's `executor`
    ray_address: str | None = None  # None: the file's `ray_address`
    ray_dir: Path | None = None
    browse: bool = False  # the app opens on the store's own experiments (no study file)

    def __post_init__(self) -> None:  # lists from callers become tuples: options are frozen
        object.__setattr__(self, "plugins", tuple(Path(p) for p in self.plugins))
        object.__setattr__(self, "only", tuple(self.only))

    @classmethod
    def from_args(cls, args: argparse.Namespace, path: Path | None) -> Options:
        """The options of a parsed command line (workbench.cli.build_parser)."""
        return cls(path=path, store=args.store or DEFAULT_STORE, plugins=tuple(args.plugins),
                   only=tuple(args.only), dataset=args.dataset, device=args.device,
                   data_dir=args.data_dir, fallback=not args.no_fallback, rerun=args.rerun,
                   stack=not args.no_stack, threads=args.threads or cls.threads,
                   executor=args.executor, ray_address=args.ray_address,
                   ray_dir=args.ray_dir, workers=args.workers,
                   browse=path is None and args.store is not None)

    def settings(self) -> Settings:
        return Settings(device=self.device, data_dir=self.data_dir,
                        allow_fallback=self.fallback, rerun=self.rerun, stack=self.stack,
                        threads=self.threads)


@dataclass
class Engine:
    """What a face drives: the study and its runs, the store, how and where runs train."""

    session: Session
    store: Store
    settings: Settings
    executor: Executor
    group: Callable[[list[RunSpec]], list[RunSpec]]  # which pending runs train together
    place: str = ""  # where runs train, when not here: "Ray at ADDRESS"

    def runner(self, emit: ev.Emit, keep_queue: bool = False) -> Any:
        """A Runner over this engine that hands every event to ``emit``; ``keep_queue``: its
        pending queue is kept in the store (the app's outlives it)."""
        from workbench.runner import Runner
        return Runner(self.session.registry, self.store, emit, self.settings, self.executor,
                      self.group, keep_queue=keep_queue)


def make_executor(name: str | None, address: str | None = None,
                  ray_dir: Path | str | None = None) -> Any:
    """The executor for ``--executor NAME`` (None: local). Ray is imported only here, when
    asked for; RayUnavailable (a ValueError naming the extra to install) when it is missing."""
    if name == "ray":
        from workbench.executors.ray import RayExecutor
        return RayExecutor(address=address, ray_dir=ray_dir)
    return None


def open_engine(options: Options, raw: dict | None = None,
                child_process: bool = False, browse: bool = False) -> Engine:
    """Open everything ``options`` asks for. ``raw``: the study's TOML already read (the app's
    built-in default study); ``child_process``: train locally in a child process when the
    plugins allow it (the app: drawing then never holds up training); ``browse``: only
    looking at an existing store, so a store of another layout version is opened read-only
    (reading never changes a file) instead of being migrated. Raises ConfigError,
    StoreError or ValueError (a bad --device, Ray missing) for bad input."""
    from workbench.executors.local import LocalExecutor
    from workbench.plan import unit_grouper

    store = None
    if browse:  # the store's own experiments, read as they are
        from workbench.session import store_session

        store = _browsed_store(options.store) or Store(options.store)
        session = store_session(store.runs(), f"browsing {options.store}", options.plugins)
    else:
        session = open_session(options.path, options.plugins, options.only, options.dataset,
                               raw=raw)
    executor = make_executor(options.executor or session.study.executor,
                             options.ray_address or session.study.ray_address,
                             options.ray_dir)
    place = "" if executor is None else f"Ray at {executor.address or 'a local instance'}"
    workers = 1
    if executor is None:  # a Ray cluster's devices are checked where the runs train
        from workbench.executors.process import ProcessExecutor, can_run

        if child_process and can_run(session.registry):
            check_device_in_child(options.device)  # this process never imports torch
            device = options.device if options.device not in ("", "auto") else (
                "cuda" if cuda_likely() else "cpu")
        else:
            from workbench.training import pick_device

            device = pick_device(options.device)
        workers = options.workers or session.study.workers or default_workers(device)
        if (child_process or workers > 1) and can_run(session.registry):
            executor = ProcessExecutor(workers)
        else:  # plugins registered as objects cannot load in a child: train here
            executor, workers = LocalExecutor(), 1
    store = store or Store(options.store)
    # a sweep over several workers trains its longest units first, so its last minute is not
    # one worker busy; one worker keeps the file's order, and the app's queue the user's
    group = unit_grouper(options.stack, workers=workers,
                         longest_first=workers > 1 and not child_process,
                         models=session.registry.models)
    return Engine(session, store, options.settings(), executor, group, place)


ENV_WORKERS = "MNIST_WORKBENCH_WORKERS"


def default_workers(device: str) -> int:
    """$MNIST_WORKBENCH_WORKERS when set, else one training process per core this process
    may use; one on CUDA (its stacks, sized by free memory, fill the device)."""
    env = os.environ.get(ENV_WORKERS, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"${ENV_WORKERS}: got {env!r}, expected a whole number of "
                             "training processes of at least 1 (unset: one per core)")
        return int(env)
    if device.startswith("cuda"):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cuda_likely() -> bool:
    """Whether an NVIDIA GPU is visible to this process, told without importing torch (the
    app's process never does): the driver lists a GPU and CUDA_VISIBLE_DEVICES does not
    hide them all. Only sizes the default pool; the trainer itself asks torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    try:
        return any(os.scandir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False


def check_device_in_child(device: str | None) -> None:
    """Check an explicit --device as pick_device does, in a short child process: the app's
    own process never imports torch (about 500 MB and two seconds), only its trainer does.
    Raises ValueError naming the device."""
    import subprocess
    import sys

    if device in (None, "", "auto"):
        return  # the trainer picks CUDA when there is one
    check = subprocess.run(
        [sys.executable, "-c", "import sys; from workbench.training import pick_device\n"
         "try: pick_device(sys.argv[1])\nexcept ValueError as e: sys.exit(str(e))", device],
        capture_output=True, text=True, timeout=120)
    if check.returncode:
        raise ValueError(check.stderr.strip().splitlines()[-1] if check.stderr.strip()
                         else f"--device {device}: could not be checked")


def _browsed_store(path: Path) -> Store | None:
    """A store to look at read-only (an older layout through a migrated copy), or None when
    it has the current layout (then it opens as a writer: the app may still train into it)."""
    from workbench.store_schema import SCHEMA_VERSION

    if not Path(path).is_file():
        return None
    store = Store(path, readonly=True)
    if store.version_before == SCHEMA_VERSION:
        store.close()
        return None
    return store

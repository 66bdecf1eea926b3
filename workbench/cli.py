"""Command line: ``mnist-workbench [FILE]`` opens the TUI, ``--headless FILE`` runs over SSH.

This module imports neither torch nor Textual at import time, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with a hint, as argparse does
        self.print_usage(sys.stderr)
        if message.startswith("unrecognized arguments:"):
            import difflib
            options = [o for a in self._actions for o in a.option_strings]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], options, n=1)
                if word.startswith("-") and close:
                    message += f" (did you mean {close[0]}?)"
        self.exit(EXIT_BAD_INPUT, f"mnist-workbench: error: {message}\n"
                                  "(mnist-workbench --help lists every option)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a whole number >= 1")
    return value


def _run_id(text: str) -> int:
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a run id (a whole number "
                                         ">= 1, as in the app's Results tab or --export's "
                                         "id column)") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mnist-workbench",
        description="Run, watch and compare neural-network experiments on MNIST. With no "
                    "--headless, opens the terminal app on FILE (default ./experiments.toml).",
        epilog="examples:\n  mnist-workbench --headless experiments.toml --only baseline\n"
               "  mnist-workbench --headless experiments.toml --dry-run\n"
               "  mnist-workbench --store results/workbench.sqlite   # browse past results",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", type=Path, help="experiments file (TOML)")
    p.add_argument("--headless", metavar="FILE", type=Path,
                   help="run FILE without the UI (plain lines when not on a terminal)")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help="run only this experiment (repeatable)")
    p.add_argument("--dataset", metavar="NAME", help="use this data set for every experiment")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (experiments, runs, epochs) and stop")
    p.add_argument("--store", metavar="PATH", type=Path,
                   help="results file (default results/workbench.sqlite)")
    p.add_argument("--rerun", action="store_true", help="train runs the store already has")
    p.add_argument("--export", metavar="CSV", type=Path,
                   help="write the store's results table to CSV (after running, if any)")
    p.add_argument("--export-summary", metavar="CSV", type=Path,
                   help="write one row per config (over seeds): n, mean, std, ci_low, ci_high "
                        "of test and best validation accuracy")
    p.add_argument("--compare", metavar=("RUN_A", "RUN_B"), nargs=2, type=_run_id,
                   help="print the confusion diff B - A of two stored runs and the counts of "
                        "test digits only one of them gets right")
    p.add_argument("--device", metavar="DEV", default="auto",
                   help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="data cache (default $MNIST_WORKBENCH_DATA or ~/.cache/mnist-workbench)")
    p.add_argument("--no-fallback", action="store_true",
                   help="fail when a data set is missing instead of using mnist-sample")
    p.add_argument("--plugins", metavar="DIR", type=Path, action="append", default=[],
                   help="also load drop-in plugins from DIR (repeatable)")
    p.add_argument("--list-plugins", action="store_true",
                   help="list every model, experiment kind and data set, with its source")
    p.add_argument("--threads", metavar="N", type=_positive_int,
                   help="torch CPU threads for training (default 1: small MLPs gain "
                        "little from more, and lose much when the machine is busy)")
    p.add_argument("--no-stack", action="store_true",
                   help="train runs one by one instead of stacking compatible runs")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where runs execute (default: the file's `executor`, else local)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join ('auto' for an existing one; default: start one)")
    p.add_argument("--ray-dir", metavar="DIR", type=Path,
                   help="folder for a local Ray instance's files (default $MNIST_WORKBENCH_RAY_DIR"
                        " or ./.ray)")
    return p


def _fail(problems: Sequence[str]) -> int:
    print(f"mnist-workbench: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
          "found, nothing was run:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        return 130


def _main(args: argparse.Namespace) -> int:
    from workbench.config import ConfigError
    from workbench.store import DEFAULT_STORE, StoreError, store_path_problem

    if args.headless and args.file:
        return _fail([f"give the experiments file once: either FILE ({args.file}) or "
                      f"--headless FILE ({args.headless})"])
    path = args.headless or args.file
    if path is None and (args.headless is not None or args.dry_run):
        path = Path("experiments.toml")
    store_path = args.store or DEFAULT_STORE

    if args.list_plugins:
        return _list_plugins(path, args)

    problems = []
    if path is not None and not path.is_file():
        problems.append(f"{path}: {'is a folder' if path.is_dir() else 'file not found'}; "
                        "give an experiments .toml file")
    # exports and --compare only read the store: without an experiments file, nothing trains
    export_only = path is None and (args.export is not None or args.export_summary is not None
                                    or args.compare is not None)
    if not args.dry_run and not export_only:
        problem = store_path_problem(store_path)
        if problem:
            problems.append(problem)
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        problems.append(f"--data-dir {args.data_dir}: not a folder")
    for flag, target in (("--export", args.export), ("--export-summary", args.export_summary)):
        if target is not None:
            problems += _export_problems(target, flag)
    if problems:
        return _fail(problems)
    if export_only:  # read the store, write the CSVs, compare, stop
        return _export_only(store_path, args)

    if not args.headless and not args.dry_run:
        return _tui(path, store_path, args)

    from workbench.session import open_session

    try:
        session = open_session(path, args.plugins, args.only, args.dataset)
    except ConfigError as exc:
        return _fail(exc.problems)
    if args.dry_run:
        return _dry_run(session)
    executor_name = args.executor or session.study.executor
    try:  # every check before the store is opened, so bad input leaves it untouched
        from workbench.execution import make_executor
        executor = make_executor(executor_name, args.ray_address or session.study.ray_address,
                                 args.ray_dir)
        if executor is None:  # a Ray cluster's devices are checked where the runs train
            from workbench.training import pick_device
            pick_device(args.device)
        from workbench.store import Store
        store = Store(store_path)
    except (StoreError, ValueError) as exc:
        return _fail([str(exc)])
    except ImportError as exc:
        return _fail([f"executor {executor_name}: not available ({exc}); install it "
                      "(pip install 'mnist-workbench[ray]') or use --executor local"])
    from workbench.headless import run_headless
    from workbench.runner import Settings

    settings = Settings(device=args.device, data_dir=args.data_dir,
                        allow_fallback=not args.no_fallback, rerun=args.rerun,
                        stack=not args.no_stack, threads=args.threads or 1)
    from workbench.plan import unit_grouper

    code = run_headless(session, store, settings, executor=executor,
                        group=unit_grouper(settings.stack))
    if args.export:
        n = store.export_csv(args.export)
        print(f"exported {n} runs to {args.export}")
    after = _read_outputs(store, args, session.registry)
    store.close()
    return code or after


def _export_problems(target: Path, flag: str = "--export") -> list[str]:
    if target.is_dir():
        return [f"{flag} {target}: is a folder; give a file path such as "
                f"{target / 'results.csv'}"]
    if not (target.parent if str(target.parent) else Path(".")).is_dir():
        return [f"{flag} {target}: folder {target.parent} does not exist"]
    return []


def _export_only(store_path: Path, args: argparse.Namespace) -> int:
    from workbench.store import Store, StoreError

    if not store_path.is_file():
        return _fail([f"--store {store_path}: no results file there yet; run a sweep first"])
    try:
        store = Store(store_path, readonly=True)
        if args.export is not None:
            n = store.export_csv(args.export)
            print(f"exported {n} runs from {store_path} to {args.export}")
    except StoreError as exc:
        return _fail([str(exc)])
    registry = None
    if args.compare is not None:
        from workbench.plugins import load_plugins
        registry = load_plugins(plugin_dirs=[d for d in args.plugins if Path(d).is_dir()])
    return _read_outputs(store, args, registry)


def _read_outputs(store, args: argparse.Namespace, registry) -> int:
    """--export-summary and --compare, from what the store holds now."""
    from workbench.store import StoreError
    from workbench.summary import CompareError, compare_runs, export_summary

    try:
        if args.export_summary is not None:
            n = export_summary(store, args.export_summary)
            print(f"exported {n} configs (over seeds) from {store.path} to "
                  f"{args.export_summary}")
        if args.compare is not None:
            from workbench.headless import make_console
            from workbench.headless_stats import print_compare

            diff, a, b, classes = compare_runs(store, *args.compare, registry, args.data_dir)
            console, live = make_console()
            print_compare(console, diff, a, b, classes, live)
    except (StoreError, CompareError) as exc:
        return _fail([str(exc)])
    return 0


def _dry_run(session) -> int:
    from workbench.plan import summarize

    rows = summarize(session.runs)
    width = max([len(r.experiment) for r in rows] + [10])
    print(f"plan for {session.study.path}:")
    print(f"  {'experiment':<{width}}  {'runs':>5}  {'epochs':>6}  seeds")
    for row in rows:
        print(f"  {row.experiment:<{width}}  {row.runs:>5}  {row.epochs:>6}  "
              f"{', '.join(map(str, row.seeds))}")
    print(f"  {'total':<{width}}  {sum(r.runs for r in rows):>5}  "
          f"{sum(r.epochs for r in rows):>6}")
    for failure in session.plugin_failures:
        print(f"WARNING: plugin {failure.source} failed to load: {failure.error}")
    return 0


def _list_plugins(path: Path | None, args: argparse.Namespace) -> int:
    from workbench.config import plugin_dirs_of, read_toml, ConfigError
    from workbench.plugins import load_plugins

    raw = {}
    if path is not None and path.is_file():
        try:
            raw = read_toml(path)
        except ConfigError:
            raw = {}
    dirs = [d for d in [*plugin_dirs_of(raw, path), *args.plugins] if Path(d).is_dir()]
    registry = load_plugins(plugin_dirs=dirs)
    for kind, name, description, source in registry.listing():
        print(f"{kind:<10}  {name:<16}  {source}\n{'':<12}{description}")
    for failure in registry.failures:
        print(f"FAILED      {failure.source}: {failure.error}")
    return 0


def _tui(path: Path | None, store_path: Path, args: argparse.Namespace) -> int:
    try:
        from workbench.tui.launch import run_app
    except ImportError as exc:
        print(f"mnist-workbench: the terminal app is not available ({exc}); use --headless",
              file=sys.stderr)
        return 1
    return run_app(path, store_path, args)


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``mnist-workbench [FILE]`` opens the TUI, ``--headless FILE`` runs over SSH.

This module imports neither torch nor Textual at import time, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from workbench.engine import Options

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
               "  mnist-workbench report --html   # write the report of the results store\n"
               "  mnist-workbench data list        # data sets: files, verified, source\n"
               "  mnist-workbench --headless experiments.toml --dry-run\n"
               "  mnist-workbench --store results/workbench.sqlite   # browse past results\n"
               "  mnist-workbench attach --store results/workbench.sqlite   # watch and "
               "steer the\n      headless sweep writing it (also without attach, while it "
               "runs)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", type=Path, help="experiments file (TOML)")
    p.add_argument("--headless", metavar="FILE", type=Path,
                   help="run FILE without the UI (plain lines when not on a terminal)")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help="run only this experiment (repeatable)")
    p.add_argument("--dataset", metavar="NAME", help="use this data set for every experiment")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (experiments, runs, epochs, and how many runs the "
                        "store already has done: skipped by a real run) and stop")
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
                   help="list every model, experiment kind, data set and training callback, "
                        "with its source (and the parameters or options it declares)")
    p.add_argument("--threads", metavar="N", type=_positive_int,
                   help="torch CPU threads for training (default 1: small MLPs gain "
                        "little from more, and lose much when the machine is busy)")
    p.add_argument("--workers", metavar="N", type=_positive_int,
                   help="training processes working units in parallel (default: the file's "
                        "`workers`, else one per core; one on CUDA)")
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


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool whose reader left


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # the reader left (`--dry-run | head`): stop quietly, as Unix
        devnull = os.open(os.devnull, os.O_WRONLY)  # tools do (and nothing more to flush
        os.dup2(devnull, sys.stdout.fileno())  # into the closed pipe at exit)
        return EXIT_BROKEN_PIPE


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["data"]:  # mnist-workbench data list|fetch|verify
        from workbench.data_command import main as data_main
        return data_main(argv[1:])
    if argv[:1] == ["report"] and not Path("report").is_file():
        return _report(argv[1:])
    if argv[:1] == ["attach"] and not Path("attach").is_file():
        return _attach(argv[1:])
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["mnist-workbench", *argv])
    try:
        return _main(args)
    except KeyboardInterrupt:
        return 130


def _main(args: argparse.Namespace) -> int:
    from workbench.config import ConfigError
    from workbench.engine import Options
    from workbench.store_file import StoreError, store_path_problem

    if args.headless and args.file:
        return _fail([f"give the experiments file once: either FILE ({args.file}) or "
                      f"--headless FILE ({args.headless})"])
    path = args.headless or args.file
    if path is None and (args.headless is not None or args.dry_run):
        path = Path("experiments.toml")
    options = Options.from_args(args, path)
    store_path = options.store

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
        return _tui(options)
    if args.dry_run:
        from workbench.dry_run import print_dry_run
        from workbench.session import open_session
        try:
            return print_dry_run(open_session(path, options.plugins, options.only,
                                              options.dataset), options)
        except ConfigError as exc:
            return _fail(exc.problems)

    from workbench.engine import open_engine
    from workbench.headless import run_headless

    try:  # every check before the store is opened, so bad input leaves it untouched
        engine = open_engine(options)
        engine.store.record_study(path, path.read_text(encoding="utf-8"), args.command_line,
                                  [(f, f.read_text(encoding="utf-8"))
                                   for f in engine.session.registry.drop_in_files()])
    except ConfigError as exc:
        return _fail(exc.problems)
    except (StoreError, ValueError) as exc:
        return _fail([str(exc)])
    code = run_headless(engine, command=args.command_line)
    if args.export:
        n = engine.store.export_csv(args.export)
        print(f"exported {n} runs to {args.export}")
    after = _read_outputs(engine.store, args, engine.session.registry)
    engine.store.close()
    return code or after


def build_report_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mnist-workbench report",
                description="Write the study's report from the results store (no training): "
                            "report.md, PNG figures and a CSV per table.")
    p.add_argument("--store", metavar="PATH", type=Path,
                   help="results file (default results/workbench.sqlite)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="folder to write into (default: 'report' beside the store)")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help="report only this experiment (repeatable)")
    p.add_argument("--html", action="store_true",
                   help="also write report.html, one file with the figures inlined")
    p.add_argument("--no-figures", action="store_true", help="text tables only")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="where the test images are (default $MNIST_WORKBENCH_DATA or "
                        "~/.cache/mnist-workbench)")
    return p


def _report(argv: Sequence[str]) -> int:
    from workbench.store import DEFAULT_STORE, Store, StoreError

    args = build_report_parser().parse_args(argv)
    store_path = args.store or DEFAULT_STORE
    out = args.out or store_path.parent / "report"
    problems = []
    if not store_path.is_file():
        problems.append(f"--store {store_path}: no results file there; run a sweep first "
                        "(mnist-workbench --headless experiments.toml) or pass --store PATH")
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out}: is a file; give a folder")
    if problems:
        return _fail(problems)
    try:
        store = Store(store_path, readonly=True)
    except StoreError as exc:
        return _fail([str(exc)])
    from workbench.report.build import write_report

    try:
        written = write_report(store, out, only=args.only, html=args.html,
                               with_figures=not args.no_figures, data_dir=args.data_dir)
    except ValueError as exc:
        return _fail([str(exc)])
    except OSError as exc:
        print(f"mnist-workbench: cannot write the report into {out}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"wrote {written.markdown}" + (f" and {written.html}" if written.html else "")
          + f": {len(written.figures)} figures, {len(written.tables)} CSV tables")
    if written.skipped:
        print(f"{len(written.skipped)} figures not drawn ({written.why_skipped}); the report "
              "says which")
    return 0


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
    if store.note:
        print(store.note)
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


def _list_plugins(path: Path | None, args: argparse.Namespace) -> int:
    from workbench.config import plugin_dirs_of, read_toml, ConfigError
    from workbench.plugins import load_plugins

    raw = {}
    if path is not None and path.is_file():
        try:
            raw = read_toml(path)
        except ConfigError:
            raw = {}
    from workbench.session import plugin_dir_problems

    missing = plugin_dir_problems(args.plugins)
    if missing:  # as headless says it: bad input, exit 2
        return _fail(missing)
    dirs = [d for d in [*plugin_dirs_of(raw, path), *args.plugins] if Path(d).is_dir()]
    registry = load_plugins(plugin_dirs=dirs)
    for kind, name, description, source in registry.listing():
        print(f"{kind:<10}  {name:<16}  {source}\n{'':<12}{description}")
        params = registry.params_of(kind, name)
        if params is not None:
            print(f"{'':<12}params: {params}")
    for failure in registry.failures:
        # a problem in a plugin whose other offers loaded is not a failure to load
        print(f"{'PROBLEM' if failure.loaded else 'FAILED':<10}  {failure.source}: "
              f"{failure.error}")
    return 0


def _attach(argv: Sequence[str]) -> int:
    """mnist-workbench attach [--store PATH]: the app on the sweep writing that store."""
    from workbench.engine import Options
    from workbench.store import DEFAULT_STORE

    p = _Parser(prog="mnist-workbench attach",
                description="Watch and steer the headless sweep writing a results store: "
                            "quitting the app leaves the sweep running.")
    p.add_argument("--store", metavar="PATH", type=Path, default=DEFAULT_STORE,
                   help=f"the store the sweep writes (default: {DEFAULT_STORE})")
    args = p.parse_args(argv)
    if not args.store.is_file():
        return _fail([f"--store {args.store}: no results file there; start a sweep with "
                      f"mnist-workbench --headless FILE --store {args.store}"])
    return _tui(Options(store=args.store), attach=True)


def _tui(options: Options, attach: bool = False) -> int:
    try:
        from workbench.tui.launch import run_app
    except ImportError as exc:
        print(f"mnist-workbench: the terminal app is not available ({exc}); use --headless",
              file=sys.stderr)
        return 1
    return run_app(options, attach=attach)


if __name__ == "__main__":
    sys.exit(main())

"""``mnist-workbench data list|fetch|verify``: the data sets, their files and their sources.

A face (it prints with rich); the work is workbench.data's source chain.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.progress import (DownloadColumn, Progress, SpinnerColumn, TaskID, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table
from rich import box

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-workbench data",
        description="List, fetch and verify data sets. Files are checked against the MD5s of "
                    "the originals before they are used or cached.")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="data cache (default $MNIST_WORKBENCH_DATA or ~/.cache/mnist-workbench)")
    p.add_argument("--plugins", metavar="DIR", type=Path, action="append", default=[],
                   help="also load drop-in plugins from DIR (repeatable)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every data set: where its files are, verified or not, size, "
                                "source")
    fetch = sub.add_parser("fetch", help="fetch a data set through its sources into the cache")
    fetch.add_argument("name")
    fetch.add_argument("--from", dest="source", metavar="DIR", type=Path,
                       help="import the four IDX files (plain or .gz) from DIR instead")
    verify = sub.add_parser("verify", help="check the files of every data set that is here")
    verify.add_argument("names", nargs="*", metavar="NAME")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from workbench.data import default_data_dir
    from workbench.plugins import load_plugins

    dirs = [d for d in [Path("plugins"), *args.plugins] if d.is_dir()]
    missing = [d for d in args.plugins if not d.is_dir()]
    if missing:
        return _bad([f"--plugins {d}: folder does not exist" for d in missing])
    registry = load_plugins(plugin_dirs=dirs)
    data_dir = args.data_dir or default_data_dir()
    live = sys.stdout.isatty()
    console = Console(highlight=False, width=None if live else 160, soft_wrap=not live)
    if args.command == "fetch":
        return fetch(console, registry, data_dir, args.name, args.source)
    names = getattr(args, "names", None) or sorted(registry.datasets)
    unknown = [n for n in names if n not in registry.datasets]
    if unknown:
        return _bad([f"unknown data set {n!r}; available: {', '.join(sorted(registry.datasets))}"
                     for n in unknown])
    states = [local_state(registry.datasets[n], data_dir) for n in names]
    if args.command == "list":
        console.print(_table(states, console.is_terminal))
        return EXIT_OK
    for state in states:
        console.print(f"{state['name']}: {state['status']}: {state['detail']}", markup=False)
    return EXIT_FAILED if any(s["status"] == "CORRUPT" for s in states) else EXIT_OK


def _bad(problems: list[str]) -> int:
    for problem in problems:
        print(f"mnist-workbench data: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _size(paths: Sequence[Path]) -> str:
    total = sum(p.stat().st_size for p in paths)
    return f"{total / 1e6:.1f} MB"


def local_state(spec: Any, data_dir: Path) -> dict[str, Any]:
    """What is here for one data set, without any network: verified, missing or corrupt."""
    from workbench.data import DataError, DataRequest, FolderSource, chain_for

    state = {"name": spec.name, "where": "-", "size": "-", "source": "-"}
    if spec.load is not None:  # a loader of its own: ask it, downloads off
        try:
            raw = spec.load(DataRequest(data_dir=data_dir, allow_download=False))
        except DataError as exc:
            return {**state, "status": "missing", "detail": str(exc)}
        files = [p for p in Path(raw.source).iterdir() if p.is_file()]
        return {**state, "status": "verified", "where": raw.source, "size": _size(files),
                "source": raw.origin or "its plugin",
                "detail": f"{len(raw.train_labels)} train + {len(raw.test_labels)} test "
                          f"images in {raw.source}"}
    chain = chain_for(spec, data_dir)
    local = [FolderSource(chain.cache_dir, "data folder"),
             *[s for s in chain.sources if s.in_place]]
    try:
        files, origin = chain.obtain(allow_download=False, only=local)
    except DataError:
        there = [a for a in chain.attempts if "not found in" not in a.detail]
        remote = ", ".join(s.label for s in chain.sources if not s.in_place) or "none"
        if there:
            return {**state, "status": "CORRUPT", "where": str(chain.cache_dir),
                    "detail": "; ".join(f"{a.source}: {a.detail}" for a in there)}
        return {**state, "status": "missing", "where": f"not in {chain.cache_dir}",
                "source": f"data fetch {spec.name}: {remote}",
                "detail": f"not in {chain.cache_dir}; mnist-workbench data fetch {spec.name} "
                          f"(sources: {remote})"}
    folder = files[chain.stems[0]].parent
    return {**state, "status": "verified", "where": str(folder),
            "size": _size(list(files.values())), "source": origin,
            "detail": f"{len(files)} files match their MD5s in {folder} (source: {origin})"}


def _table(states: Sequence[dict[str, Any]], live: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAVY if live else box.ASCII)
    for col in ("data set", "status", "files", "size", "source"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for s in states:
        where = s["detail"] if s["status"] == "CORRUPT" else s["where"]
        table.add_row(s["name"], s["status"], where, s["size"], s["source"])
    return table


class FetchDisplay:
    """Each source tried gets a line: a spinner and the bytes so far, then its outcome."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 DownloadColumn(), TimeElapsedColumn(), console=console,
                                 disable=not console.is_terminal)
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: Any) -> None:
        if event.what == "try":
            self.tasks[event.source] = self.progress.add_task(f"{event.source}: trying",
                                                              total=None)
            return
        if event.what == "bytes" and event.source in self.tasks:
            self.progress.update(self.tasks[event.source], completed=event.done_bytes)
            return
        line = f"{event.source}: {event.what}" + (f" ({event.detail})" if event.detail else "")
        if event.source in self.tasks:
            task = self.tasks[event.source]
            self.progress.update(task, description=line, total=1, completed=1)
            self.progress.stop_task(task)
        if not self.console.is_terminal or event.source not in self.tasks:
            self.console.print(line, markup=False)


def fetch(console: Console, registry: Any, data_dir: Path, name: str, source: Path | None
          ) -> int:
    from workbench.data import DataError, FolderSource, chain_for, load_idx_folder, offline

    spec = registry.datasets.get(name)
    if spec is None:
        return _bad([f"unknown data set {name!r}; available: "
                     f"{', '.join(sorted(registry.datasets))}"])
    if source is not None and not source.is_dir():
        return _bad([f"--from {source}: not a folder; give the folder holding the four IDX "
                     "files"])
    if spec.load is not None:
        if source is not None:
            return _bad([f"{name}: has a loader of its own; --from applies to data sets "
                         "with sources (mnist, fashion-mnist, ...)"])
        state = local_state(spec, data_dir)
        console.print(f"{name}: {state['status']}: {state['detail']}", markup=False)
        return EXIT_OK if state["status"] == "verified" else EXIT_FAILED
    chain = chain_for(spec, data_dir)
    only = [FolderSource(source, f"folder {source}", in_place=False)] if source else None
    display = FetchDisplay(console)
    console.print(f"{name}: fetching into {chain.cache_dir}"
                  + (" (offline: network sources skipped)" if offline() else ""), markup=False)
    try:
        with display.progress:
            files, origin = chain.obtain(progress=display, only=only)
        raw = load_idx_folder(name, files, spec.classes, origin)
    except DataError as exc:
        console.print(f"ERROR: {exc}", markup=False, style="bold red")
        return EXIT_FAILED
    console.print(f"{name}: {len(raw.train_labels)} train + {len(raw.test_labels)} test "
                  f"images, MD5s verified, in {raw.source} (source: {origin})", markup=False)
    return EXIT_OK

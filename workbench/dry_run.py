"""--dry-run: what a sweep would do, printed without training or writing anything (the
store is read, never created)."""

from __future__ import annotations

from workbench.data.raw import fallback_identity, wanted_name
from workbench.engine import Options
from workbench.formatting import plural
from workbench.plan import summarize
from workbench.session import Session
from workbench.stacking import stacking_notes
from workbench.store import Store, StoreError


def print_dry_run(session: Session, options: Options) -> int:
    """Print the plan (runs and epochs per experiment, seeds), what the store already holds
    of it, the plan's notes, what stacks, and the plugins' problems; returns the exit
    status (0)."""
    rows = summarize(session.runs)
    width = max([len(r.experiment) for r in rows] + [10])
    print(f"plan for {session.study.path}:")
    print(f"  {'experiment':<{width}}  {'runs':>5}  {'epochs':>6}  seeds")
    for row in rows:
        print(f"  {row.experiment:<{width}}  {row.runs:>5}  {row.epochs:>6}  "
              f"{', '.join(map(str, row.seeds))}")
    print(f"  {'total':<{width}}  {sum(r.runs for r in rows):>5}  "
          f"{sum(r.epochs for r in rows):>6}")
    for line in store_lines(session, options):
        print(line)
    for note in session.notes:
        print(f"NOTE: {note}")
    if session.runs:
        notes = stacking_notes(session.runs, session.registry)
        print("stacking:" + (" every run may train in a stack with others like it"
                              if not notes else ""))
        for note in notes:
            print(f"  {note}")
    for failure in session.plugin_failures:
        print(f"WARNING: {failure.message}")
    return 0


def store_lines(session: Session, options: Options) -> list[str]:
    """What the store says of the plan: how many of its runs it holds done, which a real run
    skips (Store.is_done, as the executors' prepare step asks it). Reads the store read-only
    and never creates it: without the file nothing is skipped."""
    path = options.store
    runs = session.runs
    if not path.is_file():
        return [f"store {path}: not there yet (a run creates it); every run would train"]
    try:
        store = Store(path, readonly=True)
    except StoreError as exc:
        return [f"WARNING: {exc}"]
    done: dict[str, int] = {}  # experiment -> runs done on the data set they name
    on_fallback: dict[str, int] = {}  # identity -> runs done only on its fallback's data
    try:
        for run in runs:
            name = run.config["dataset"]
            if store.is_done(run, name):
                done[run.experiment] = done.get(run.experiment, 0) + 1
                continue
            spec = session.registry.datasets.get(name)
            if spec is not None and spec.fallback and options.fallback:
                identity = fallback_identity(spec.fallback, name)
                if store.is_done(run, identity):
                    on_fallback[identity] = on_fallback.get(identity, 0) + 1
        note = store.note
    finally:
        store.close()
    lines = [note] if note else []
    n, others = sum(done.values()), sum(on_fallback.values())
    planned = f"the {plural(len(runs), 'run')} planned"
    if options.rerun:
        lines.append(f"store {path}: {n + others} of {planned} already done there; "
                     "--rerun trains them again")
        return lines
    if n:
        per = ", ".join(f"{exp} {k}" for exp, k in done.items())
        lines.append(f"store {path}: {n} of {planned} already done there, "
                     f"would be skipped ({per}; --rerun trains them again); "
                     f"{len(runs) - n} would train")
    elif not others:
        lines.append(f"store {path}: none of {planned} done there yet; every run "
                     "would train")
    else:
        lines.append(f"store {path}: none of {planned} done there on the data "
                     "set they name")
    for identity, k in on_fallback.items():
        wanted = wanted_name(identity)
        lines.append(f"  {k} {'of the others' if n else 'of them'} {'is' if k == 1 else 'are'} "
                     f"done there on {identity}: skipped too while {wanted} cannot be had, "
                     "trained when it can")
    return lines

"""What recording a headless sweep live (for attached viewers) costs the sweep: the same
sweep run headless with and without the live record, in alternation in one process, so
background load hits both alike. Optionally with a viewer polling the store as the app does.

    PYTHONPATH=. python benchmarks/attach_overhead.py [--pairs 5] [--epochs 3] [--viewer]

Prints each pair's wall times and the median ratio (live / plain); the goal is under 3 %.
On a shared, loaded machine the pairs scatter more than that; the time spent inside the
recording calls themselves (LiveSweep.poll and .observe, summed) is printed too: a bound on
the CPU the record takes from training that no background load blurs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

TOML = """
[defaults]
dataset = "{dataset}"
model = "baseline_mlp"
hidden = 100
epochs = {epochs}
batch_size = 32
seed = 11

[[experiment]]
name = "bench"
[experiment.grid]
lr = [1e-3, 2e-3, 3e-3]
"""


def viewer(store_path: Path, stop: threading.Event) -> None:
    """Poll the store as an attached app does (workbench.attach), until ``stop``."""
    from workbench import live_store as live
    from workbench.attach import AttachedRunner
    from workbench.store import Store

    store = Store(store_path, readonly=True)
    while not stop.is_set():
        sweep = live.latest_sweep(store)
        if live.is_running(sweep):
            runner = AttachedRunner(store, sweep, lambda e: None)
            runner.start()
            while not stop.is_set() and runner.ended is None:
                time.sleep(0.1)
            runner.stop()
            runner.join(5)
        time.sleep(0.1)
    store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dataset", default="mnist-sample")
    p.add_argument("--viewer", action="store_true", help="an attached viewer polls meanwhile")
    args = p.parse_args()

    from workbench.engine import Options, open_engine
    from workbench.headless import run_headless
    from workbench.live_writer import LiveSweep

    spent = [0.0]
    for name in ("poll", "observe"):
        def timed(self, *a, _f=getattr(LiveSweep, name), **k):
            t = time.perf_counter()
            try:
                return _f(self, *a, **k)
            finally:
                spent[0] += time.perf_counter() - t
        setattr(LiveSweep, name, timed)

    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "bench.toml"
        toml.write_text(TOML.format(dataset=args.dataset, epochs=args.epochs))
        store_path = Path(tmp) / "s.sqlite"
        engine = open_engine(Options(path=toml, store=store_path, rerun=True, stack=False))
        stop = threading.Event()
        if args.viewer:
            threading.Thread(target=viewer, args=(store_path, stop), daemon=True).start()

        def sweep(command: str | None) -> float:
            started = time.perf_counter()
            run_headless(engine, stream=io.StringIO(), command=command)
            return time.perf_counter() - started

        sweep(None)  # warm-up: data loaded, code paths compiled
        ratios, live_total = [], 0.0
        for i in range(args.pairs):
            order = [None, "bench --live"] if i % 2 == 0 else ["bench --live", None]
            times = {c: sweep(c) for c in order}
            plain, recorded = times[None], times["bench --live"]
            live_total += recorded
            ratios.append(recorded / plain)
            print(f"pair {i + 1}: plain {plain:.2f}s, live {recorded:.2f}s, "
                  f"ratio {recorded / plain:.3f}", flush=True)
        stop.set()
        engine.store.close()
    spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
    print(f"median ratio live/plain: {statistics.median(ratios):.3f} (stdev {spread:.3f}, "
          f"{args.pairs} pairs, {args.epochs} epochs x 3 runs of {args.dataset}"
          f"{', a viewer polling' if args.viewer else ''})")
    print(f"time inside the live record: {spent[0]:.3f}s of {live_total:.1f}s of live sweeps "
          f"({100 * spent[0] / live_total:.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

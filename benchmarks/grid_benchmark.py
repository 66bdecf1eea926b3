"""The seed's usual training loop against the workbench, side by side, in one process.

    python -m benchmarks.grid_benchmark           # Fashion-MNIST 55k when installed (minutes)
    python -m benchmarks.grid_benchmark --quick   # mnist-sample, a smoke run (well under 1 min)

1. Baseline (784-100-10, batch 128, 3 epochs, Adam lr 1e-3): a torchvision-style Dataset
   (PIL image + ToTensor + Normalize per sample) through a DataLoader, as the seed's notebook
   does, against the workbench (preloaded normalised tensors, randperm batches) through its
   real Runner and store.
2. The seed's 81-run grid through the workbench (stacking + exact epoch-prefix sharing, real
   Runner/store path), against the usual loop's time projected from its measured per-epoch
   cost for each (batch size, hidden) pair.
3. The limit: sgemm GFLOP/s measured here at the model's shapes, and the grid's FLOP count
   (forward + backward ~ 3x forward matmul FLOPs, per epoch actually trained, plus the
   validation and test forward passes), so it says how far each is from the arithmetic.
4. Every core: the grid through the real engine (``open_engine``), with one training process
   (what a sweep did before the pool) and with the pool (one process per core), side by
   side, against the limit at 1 core (sgemm at 1 thread) and at all cores (sgemm at 1 thread
   in every core's process at once, summed), and against that limit plus the time Adam's
   updates alone take (torch's fused kernel at each stack's sizes, hot in cache), which the
   matmul limit does not count. The usual 3x-forward count overstates training's products
   (the first layer's input gradient is never computed): the summary also gives the limit
   by the products computed, a stricter bar. The loop, the limits: benchmarks.seed_loop,
   benchmarks.limits.
5. The seed's own study (experiments.toml cut to its six experiments, the final model once:
   87 runs) on the full MNIST through the engine, one process and the pool, when MNIST is in
   the data cache (``mnist-workbench data fetch mnist``); else said skipped.

    python -m benchmarks.grid_benchmark --pool-only   # sections 4-5 only
    python -m benchmarks.grid_benchmark --pool-only --device cuda --no-before   # on a GPU

These machines are noisy: the ratios are the claim, not the seconds. Run it when the machine
is otherwise quiet (it prints the load average it started with).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from workbench import data, events as ev
from workbench.plan import unit_grouper
from workbench.runner import Settings, run_all
from workbench.session import open_session
from workbench.store import Store

from benchmarks.limits import (grid_limit, adam_seconds, all_core_rates, forward_flops,
                               sgemm_gflops)
from benchmarks.seed_loop import seed_loop

ROOT = Path(__file__).resolve().parents[1]
SEED_TOML = ROOT / "experiments.toml"


# -- the workbench -------------------------------------------------------------------------

def run_workbench(runs, registry, stack: bool, store_path: Path):
    epochs_seen: Counter = Counter()
    statuses: Counter = Counter()

    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.EpochEnded):
            epochs_seen[event.run.run_id] += 1
        elif isinstance(event, ev.RunFinished):
            statuses[event.result.status] += 1
        elif isinstance(event, ev.Notice):
            print(f"  {event.level}: {event.message}")

    store = Store(store_path)
    started = time.perf_counter()
    run_all(runs, registry, store, sink, Settings(device="cpu", rerun=True,
                                                      threads=torch.get_num_threads()),
            group=unit_grouper(stack))
    seconds = time.perf_counter() - started
    rows = store.runs()
    store.close()
    return seconds, rows, epochs_seen, statuses


def run_engine(toml: Path, only: tuple[str, ...], dataset: str | None, store_path: Path,
               workers: int | None, threads: int = 1, device: str = "cpu"):
    """A sweep through the real engine (open_engine: the pool of training processes),
    rerun from scratch. Returns (seconds, stored rows, statuses, workers used)."""
    from workbench.engine import Options, open_engine
    from workbench.runner import run_all as run_sweep

    statuses: Counter = Counter()

    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.RunFinished):
            statuses[event.result.status] += 1
        elif isinstance(event, ev.Notice) and event.level != "info":
            print(f"  {event.level}: {event.message}")

    engine = open_engine(Options(path=toml, store=store_path, only=only, dataset=dataset,
                                 device=device, rerun=True, threads=threads, workers=workers))
    used = len(getattr(engine.executor, "workers", [None]))
    started = time.perf_counter()
    run_sweep(engine.session.runs, engine.session.registry, engine.store, sink,
              engine.settings, engine.executor, engine.group)
    seconds = time.perf_counter() - started
    rows = engine.store.runs()
    engine.store.close()
    return seconds, rows, statuses, used


def every_core(args, wanted: str, per_group: dict, split, cores: int) -> dict:
    """Section 4: the grid through the engine with one training process (before: one core)
    and with the pool (one per core), side by side, against the limits at 1 and all cores."""
    shapes, stacks, steps = [], [], []
    n_train = len(split.x_train)
    for (bs, hidden), runs in sorted(per_group.items()):
        k = len({r.config["lr"] for r in runs})
        shapes += [(bs, 784, k * hidden), (k * hidden, bs, 784)]
        stacks.append((k, hidden))
        steps.append(max(r.config["epochs"] for r in runs) * -(-n_train // bs))
    torch.set_num_threads(1)
    one = [sgemm_gflops(*shape, seconds=0.6) for shape in shapes]
    adam_one = [adam_seconds(*stack) for stack in stacks]
    many, adam_many = all_core_rates(shapes, cores, stacks)
    torch.set_num_threads(args.threads or cores)

    def per(rates: list[float]) -> dict:
        keys = sorted(per_group)
        return {key: 2 / (1 / rates[2 * i] + 1 / rates[2 * i + 1])
                for i, key in enumerate(keys)}

    sizes = (len(split.x_train), len(split.x_val), len(split.x_test))
    out = {"limit_1": grid_limit(per_group, per(one), *sizes),
           "limit_n": grid_limit(per_group, per(many), *sizes),
           "exact_n": grid_limit(per_group, per(many), *sizes, exact=True),
           # Adam's update on top: memory-bound (each step streams every weight, its
           # gradient and both moments), which the matmul limit does not count
           "adam_1": sum(n * t for n, t in zip(steps, adam_one)),
           "adam_n": sum(n * t for n, t in zip(steps, adam_many)) / cores}
    print(f"  limit (matmul): {out['limit_1']:.1f} s at 1 core, {out['limit_n']:.1f} s at "
          f"{cores} cores; Adam's updates alone (its kernel, hot): {out['adam_1']:.1f} s at 1 "
          f"core, {out['adam_n']:.1f} s at {cores}")
    for label, workers in (("one", 1), ("pool", args.workers or cores)):
        if label == "one" and args.no_before:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rows, statuses, used = run_engine(
                SEED_TOML, ("grid",), wanted, Path(tmp) / f"{label}.sqlite", workers,
                args.worker_threads, args.device)
        out[label], out[f"{label}_workers"] = seconds, used
        print(f"  {used} worker(s) x {args.worker_threads} thread(s): {seconds:.1f} s, "
              f"{len(rows)} runs stored ({dict(statuses)})")
    return out


SEED_EXPERIMENTS = ("baseline", "grid", "deep", "activations", "dropout", "final")


def seed_study_toml(folder: Path) -> Path:
    """experiments.toml cut to the seed report's own study: its six experiments, the final
    model once (seed 11), no reruns over seeds: 87 runs, as the report trained them."""
    import tomllib

    import tomli_w

    study = tomllib.loads(SEED_TOML.read_text())
    study["experiment"] = [exp for exp in study["experiment"] if exp["name"] in SEED_EXPERIMENTS]
    for exp in study["experiment"]:
        exp.pop("repeats", None)
        exp.pop("seeds", None)
    path = folder / "seed-study.toml"
    path.write_text(tomli_w.dumps(study))
    return path


def seed_study(args) -> dict:
    """Section 5: the seed's whole study on the full MNIST, one process and the pool, when
    MNIST is in the data cache."""
    from workbench.data import DataError

    if args.quick:
        print("  skipped (--quick)")
        return {}
    os.environ["MNIST_WORKBENCH_OFFLINE"] = "1"  # the cache or nothing: no download here
    try:
        from workbench.plugins import load_plugins
        data.resolve("mnist", load_plugins(), allow_fallback=False)
    except DataError as exc:
        print(f"  skipped: full MNIST is not in the data cache ({' '.join(str(exc).split())[:160]}"
              "); `mnist-workbench data fetch mnist` gets it")
        return {}
    out = {}
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        toml = seed_study_toml(Path(tmp))
        for label, workers in (("one", 1), ("pool", args.workers or cores)):
            if label == "one" and args.no_before:
                continue
            seconds, rows, statuses, used = run_engine(
                toml, (), "mnist", Path(tmp) / f"{label}.sqlite", workers,
                args.worker_threads, args.device)
            base = next(r for r in rows if r["experiment"] == "baseline")
            out[label], out[f"{label}_workers"] = seconds, used
            out[f"{label}_baseline"] = base["train_seconds"]
            print(f"  {used} worker(s): {seconds:.1f} s, {len(rows)} runs ({dict(statuses)}); "
                  f"the baseline trained in {base['train_seconds']:.2f} s "
                  f"(test {base['test_acc']:.2%})")
    return out


def pool_sections(args, wanted: str, per_group: dict, split, cores: int) -> tuple:
    print(f"\n4. every core: the grid through the engine, one training process and the pool "
          f"({args.workers or cores} workers; {cores} cores, device {args.device})")
    pool = every_core(args, wanted, per_group, split, cores)
    print("\n5. the seed's whole study on the full MNIST (its 87 runs), one process and the pool")
    return pool, seed_study(args)


def pool_summary(pool: dict, study: dict, cores: int, device: str) -> None:
    limit_1, limit_n = pool["limit_1"], pool["limit_n"]
    print(f"  grid limit: {limit_1:.1f} s at 1 core, {limit_n:.1f} s at {cores} cores "
          f"(device {device}: the limits are the CPU's)")
    if "one" in pool:
        print(f"  grid, before (1 worker): {pool['one']:.1f} s = {pool['one'] / limit_1:.2f}x the"
              f" 1-core limit, {pool['one'] / limit_n:.2f}x the all-core limit")
    print(f"  grid, after ({pool['pool_workers']} workers): {pool['pool']:.1f} s = "
          f"{pool['pool'] / limit_n:.2f}x the all-core limit (goal <= 1.3x)"
          + (f"; {pool['one'] / pool['pool']:.2f}x faster than 1 worker" if "one" in pool
             else ""))
    floor = limit_n + pool["adam_n"]
    print(f"  grid floor with Adam's updates (matmul limit + the fused kernel's time, all "
          f"cores): {floor:.1f} s; the pool is {pool['pool'] / floor:.2f}x that")
    exact = pool["exact_n"]
    print(f"  counting only the products training computes (no input gradient for the first "
          f"layer): limit {exact:.1f} s at {cores} cores, the pool {pool['pool'] / exact:.2f}x "
          f"that; with Adam's updates {exact + pool['adam_n']:.1f} s, the pool "
          f"{pool['pool'] / (exact + pool['adam_n']):.2f}x")
    if not study:
        print("  seed study on MNIST: skipped")
        return
    goal = "30 s" if device.startswith("cuda") else "120 s"
    if "one" in study:
        print(f"  seed study, before (1 worker): {study['one']:.1f} s, baseline "
              f"{study['one_baseline']:.2f} s of training")
    print(f"  seed study, after ({study['pool_workers']} workers): {study['pool']:.1f} s (goal < "
          f"{goal}), baseline {study['pool_baseline']:.2f} s of training"
          + (f"; {study['one'] / study['pool']:.2f}x faster" if "one" in study else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="mnist-sample and a fraction of each naive epoch: a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of sections 1-3, for both loops and the "
                             "limit (default 1, as the command line trains; 0: torch's own "
                             "default, one per core)")
    parser.add_argument("--workers", type=int,
                        help="the pool's training processes (default: one per core)")
    parser.add_argument("--worker-threads", type=int, default=1, metavar="N",
                        help="torch threads in each training process (default 1)")
    parser.add_argument("--no-before", action="store_true",
                        help="sections 4-5: time only the pool, not one process beside it")
    parser.add_argument("--device", default="cpu",
                        help="sections 4-5: where the engine trains (cpu, cuda, auto)")
    parser.add_argument("--pool-only", action="store_true",
                        help="skip sections 1-3 (the seed-style loop, one-process grid)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"grid benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores, load average {load:.2f} at start"
          + ("  (NOT quiet: timings will be noisy)" if load > 1.0 else ""))

    wanted = "mnist-sample" if args.quick else "fashion-mnist"
    session = open_session(SEED_TOML, only=["baseline", "grid"], dataset=wanted)
    registry = session.registry
    raw = data.resolve(wanted, registry, allow_fallback=True)
    if raw.name != wanted or raw.fallback_for:
        print(f"  note: {wanted} not installed, using {raw.identity}")
    print(f"data: {raw.identity} from {raw.source} ({len(raw.train_labels)} train + "
          f"{len(raw.test_labels)} test; train split {len(raw.train_labels) - data.val_size(len(raw.train_labels))})")
    started = time.perf_counter()
    split = data.make_split(raw, 11, "cpu")
    print(f"  workbench split normalised once and preloaded: {time.perf_counter() - started:.2f}s")
    fraction = 0.25 if args.quick else 1.0
    baseline = [r for r in session.runs if r.experiment == "baseline"]
    grid = [r for r in session.runs if r.experiment == "grid"]
    per_group: dict[tuple, list] = {}
    for r in grid:
        per_group.setdefault((r.config["batch_size"], r.config["hidden"]), []).append(r)

    def rates() -> dict[tuple, float]:
        """sgemm GFLOP/s of one training step's two big products at each group's shapes:
        x (bs, 784) @ W1^T (784, K*hidden) and its weight gradient (K*hidden, bs) @ (bs, 784)."""
        out = {}
        for (bs, hidden), runs in per_group.items():
            k = len({r.config["lr"] for r in runs})
            out[(bs, hidden)] = 2 / (1 / sgemm_gflops(bs, 784, k * hidden)
                                     + 1 / sgemm_gflops(k * hidden, bs, 784))
        out["peak"] = sgemm_gflops(2048, 2048, 2048)
        return out

    cores = len(os.sched_getaffinity(0))
    if args.pool_only:
        pool, study = pool_sections(args, wanted, per_group, split, cores)
        print("\nsummary (ratios are the claim; seconds are this machine's, now)")
        pool_summary(pool, study, cores, args.device)
        print(f"  load average at the end {os.getloadavg()[0]:.2f}")
        return 0
    rate_before = rates()

    # 1. baseline
    print("\n1. baseline 784-100-10, batch 128, 3 epochs, Adam 1e-3")
    naive_epoch, naive_acc = seed_loop(raw, 100, 128, 1 if args.quick else 3,
                                       fraction=fraction, test=True)
    naive_base = naive_epoch * 3
    with tempfile.TemporaryDirectory() as tmp:
        wb_base, rows, _, _ = run_workbench(baseline, registry, False, Path(tmp) / "b.sqlite")
    print(f"  seed-style DataLoader loop  {naive_base:8.2f} s" + (
        f"   (test {naive_acc:.2%} after {'1 epoch' if args.quick else '3 epochs'})"))
    print(f"  workbench (Runner + store)  {wb_base:8.2f} s   (test {rows[0]['test_acc']:.2%})")
    print(f"  ratio: workbench {naive_base / wb_base:.1f}x faster   (goal >= 10x)")

    # 2. the grid
    print(f"\n2. the seed's grid: {len(grid)} runs, "
          f"{sum(r.config['epochs'] for r in grid)} epochs")
    pairs = sorted({(r.config["batch_size"], r.config["hidden"]) for r in grid})
    naive_cost = {}
    for bs, hidden in pairs:
        naive_cost[(bs, hidden)], _ = seed_loop(raw, hidden, bs, 1, fraction=fraction)
        print(f"  seed-style loop, batch {bs:3d} hidden {hidden:3d}: "
              f"{naive_cost[(bs, hidden)]:6.2f} s/epoch (measured)")
    naive_grid = sum(naive_cost[(r.config["batch_size"], r.config["hidden"])]
                     * r.config["epochs"] for r in grid)
    with tempfile.TemporaryDirectory() as tmp:
        wb_grid, rows, epochs_seen, statuses = run_workbench(grid, registry, True,
                                                             Path(tmp) / "g.sqlite")
    ok = (len(rows) == len(grid) and all(epochs_seen[r.run_id] == r.config["epochs"]
                                         for r in grid))
    print(f"  workbench stored {len(rows)} runs ({dict(statuses)}), EpochEnded per run as "
          f"planned: {'yes' if ok else 'NO'}; best test "
          f"{max(r['test_acc'] or 0 for r in rows):.2%}")

    # 3. the limit
    n_train, n_val, n_test = len(split.x_train), len(split.x_val), len(split.x_test)
    rate_after = rates()
    best = {key: max(rate_before[key], rate_after[key]) for key in rate_before}
    flops = limit = 0.0
    print(f"\n3. the limit (sgemm at the model's shapes, best of before/after the runs; "
          f"2048^3: {best['peak']:.0f} GFLOP/s)")
    trained_epochs = 0
    for (bs, hidden), runs in sorted(per_group.items()):
        lrs = {r.config["lr"]: max(x.config["epochs"] for x in runs
                                   if x.config["lr"] == r.config["lr"]) for r in runs}
        k = len(lrs)
        epochs = sum(lrs.values())
        trained_epochs += epochs
        f = (3 * forward_flops(hidden, n_train) + forward_flops(hidden, n_val)) * epochs \
            + forward_flops(hidden, n_test) * len(runs)
        rate = best[(bs, hidden)]
        flops += f
        limit += f / (rate * 1e9)
        print(f"  batch {bs:3d} hidden {hidden:3d}: {k} streams x {epochs // k} epochs, "
              f"sgemm {rate:6.1f} GFLOP/s, {f / 1e12:.3f} TFLOP")
    print(f"  grid: {trained_epochs} epochs trained for {sum(r.config['epochs'] for r in grid)}"
          f" planned (prefix sharing), {flops / 1e12:.2f} TFLOP, limit {limit:.1f} s")

    pool, study = pool_sections(args, wanted, per_group, split, cores)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\nsummary (ratios are the claim; seconds are this machine's, now)")
    print(f"  baseline: seed-style loop {naive_base:.2f} s, workbench {wb_base:.2f} s: "
          f"{naive_base / wb_base:.1f}x  (goal >= 10x)")
    print(f"  grid: seed-style loop {naive_grid:.0f} s projected ({naive_grid / 60:.1f} min), "
          f"workbench {wb_grid:.1f} s: {naive_grid / wb_grid:.1f}x")
    print(f"  grid vs limit: workbench {wb_grid / limit:.2f}x the limit ({limit:.1f} s) "
          f"(goal <= 2x); the seed-style loop {naive_grid / limit:.1f}x")
    pool_summary(pool, study, cores, args.device)
    print(f"  peak RSS {rss:.0f} MB of this process (goal < 1536 MB); load average at the "
          f"end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the Ray executor costs and gives, side by side with the local executor.

    PYTHONPATH=. python benchmarks/ray_overhead.py [--baseline-only]

1. The baseline experiment on mnist-sample through the real command line: local executor
   against --executor ray (which starts, uses and shuts down a local Ray instance), both on
   one torch thread, so the difference is Ray's start-up and shut-down.
2. A 9-run grid (lr x hidden) on mnist-sample: the local executor in this process against
   the Ray executor on a two-node local cluster (ray.cluster_utils.Cluster, 1 CPU a node);
   cluster start-up is timed apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = """
[defaults]
dataset = "mnist-sample"
epochs = 3
batch_size = 128
seed = 11
[[experiment]]
name = "grid9"
[experiment.grid]
lr = [1e-2, 1e-3, 1e-4]
hidden = [50, 100, 200]
"""


def cli_seconds(work: Path, *extra: str) -> float:
    store = work / f"s{time.monotonic_ns()}.sqlite"
    cmd = [sys.executable, "-m", "workbench.cli", "--headless", str(ROOT / "experiments.toml"),
           "--only", "baseline", "--dataset", "mnist-sample", "--store", str(store), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_WORKBENCH_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}  # one torch thread both ways: what a 1-CPU Ray task gets
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def grid_seconds(work: Path) -> tuple[list, float, float, int]:
    import ray
    from ray.cluster_utils import Cluster

    from workbench.config import read_toml, validate_study
    from workbench.plan import plan_study
    from workbench.plugins import load_plugins
    from workbench.executors.ray import RayExecutor
    from workbench.executors.ray_setup import Connection, prepare_local
    from workbench.runner import Settings, run_all
    from workbench.store import Store

    registry = load_plugins(entry_points=False)
    path = work / "grid.toml"
    path.write_text(textwrap.dedent(GRID))
    runs = plan_study(validate_study(read_toml(path), registry, path), registry)

    import torch

    local = []
    for threads in (torch.get_num_threads(), 1):  # a Ray task asking 1 CPU trains on 1 thread
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        started = time.perf_counter()
        run_all(runs, registry, Store(work / f"local{threads}.sqlite"), lambda e: None,
                Settings())
        local.append((threads, time.perf_counter() - started))
        torch.set_num_threads(before)

    conn = Connection()
    prepare_local(conn, work / "ray")
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=False, object_store_memory=80 * 2**20))
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        up = time.perf_counter() - started
        started = time.perf_counter()
        store = Store(work / "ray.sqlite")
        run_all(runs, registry, store, lambda e: None, Settings(), RayExecutor())
        on_ray = time.perf_counter() - started
        nodes = len({r["device"] for r in store.runs()})
    finally:
        ray.shutdown()
        cluster.shutdown()
        conn.close()
    return local, up, on_ray, nodes


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wb-raybench-"))  # short: Ray's socket paths
    try:
        local = cli_seconds(work)
        on_ray = cli_seconds(work, "--executor", "ray", "--ray-dir", str(work / "rd"))
        print(f"baseline on mnist-sample, whole command: local {local:.1f} s | ray "
              f"{on_ray:.1f} s | ray/local {on_ray / local:.1f}x | Ray start-up overhead "
              f"{on_ray - local:+.1f} s")
        if "--baseline-only" in sys.argv:
            return
        g_local, up, g_ray, nodes = grid_seconds(work)
        locals_ = " | ".join(f"local executor, {t} torch thread(s) {s:.1f} s" for t, s in g_local)
        print(f"9-run grid on mnist-sample: {locals_} | two-node local Ray cluster "
              f"{g_ray:.1f} s (runs on {nodes} nodes; cluster start {up:.1f} s apart) | "
              f"ray/local(1 thread) {g_ray / g_local[-1][1]:.2f}x")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

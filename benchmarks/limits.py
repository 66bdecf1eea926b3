"""What the machine can do at most, for make bench (benchmarks.grid_benchmark): sgemm GFLOP/s
at a training step's shapes, Adam's update time at a stack's sizes, each at one core and with
every core's process measuring at once; the grid's FLOPs and its matmul limit."""

from __future__ import annotations

import time

import torch


def sgemm_gflops(m: int, k: int, n: int, seconds: float = 0.4) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - started) / 1e9


def adam_seconds(k: int, hidden: int, seconds: float = 0.4) -> float:
    """Seconds of one Adam update of a stack of ``k`` 784-hidden-10 members (torch's fused
    kernel, one call per member as each has its own learning rate), tensors already hot."""
    from workbench.training.optim import fused_adam

    shapes = [(hidden, 784), (hidden,), (10, hidden), (10,)]
    members = [[[torch.randn(s) for s in shapes], [torch.randn(s) for s in shapes],
                [torch.zeros(s) for s in shapes], [torch.rand(s) for s in shapes]]
               for _ in range(k)]
    step = torch.zeros(())

    def update() -> None:
        step.add_(1)
        for p, g, m, v in members:
            fused_adam(p, g, m, v, step, 1e-3)

    for _ in range(3):
        update()
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        update()
        reps += 1
    return (time.perf_counter() - started) / reps


def _parallel_rates(barrier, shapes, stacks, out) -> None:
    torch.set_num_threads(1)
    barrier.wait()  # every core's process measures at the same time
    out.put(([sgemm_gflops(*shape, seconds=0.6) for shape in shapes],
             [adam_seconds(*stack) for stack in stacks]))


def all_core_rates(shapes: list[tuple[int, int, int]], cores: int,
                   stacks: list[tuple[int, int]] = ()) -> tuple[list[float], list[float]]:
    """sgemm GFLOP/s at each shape with ``cores`` single-threaded processes measuring at
    once, summed: what the machine does when every core trains; and the seconds one Adam
    update of each stack (k, hidden) takes per core meanwhile, averaged."""
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    barrier, out = mp.Barrier(cores), mp.Queue()
    procs = [mp.Process(target=_parallel_rates, args=(barrier, shapes, list(stacks), out))
             for _ in range(cores)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return ([sum(r[0][i] for r in results) for i in range(len(shapes))],
            [sum(r[1][i] for r in results) / cores for i in range(len(stacks))])


def forward_flops(hidden: int, samples: int, n_in: int = 784, classes: int = 10) -> float:
    return 2.0 * samples * (n_in * hidden + hidden * classes)


def train_flops(hidden: int, samples: int, exact: bool = False, n_in: int = 784,
                classes: int = 10) -> float:
    """Matmul FLOPs of training on ``samples``: by the usual count, 3x the forward pass
    (forward, input and weight gradients); ``exact``: the products training computes, where
    the first layer's input gradient is never asked for (its input is the data)."""
    if not exact:
        return 3 * forward_flops(hidden, samples, n_in, classes)
    return 2.0 * samples * (2 * n_in * hidden + 3 * hidden * classes)


def grid_limit(per_group: dict, rate: dict, n_train: int, n_val: int, n_test: int,
               exact: bool = False) -> float:
    """Seconds the grid's FLOPs (exact prefix sharing) take at ``rate`` GFLOP/s per group;
    ``exact``: counting only the products training computes (train_flops)."""
    limit = 0.0
    for (bs, hidden), runs in per_group.items():
        lrs = {r.config["lr"]: max(x.config["epochs"] for x in runs
                                   if x.config["lr"] == r.config["lr"]) for r in runs}
        f = (train_flops(hidden, n_train, exact) + forward_flops(hidden, n_val)) \
            * sum(lrs.values()) + forward_flops(hidden, n_test) * len(runs)
        limit += f / (rate[(bs, hidden)] * 1e9)
    return limit

"""Experiment specs -> concrete runs (grids expanded, experiment kinds applied)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from workbench.config import ConfigError, ExperimentSpec, Study
from workbench.expansion import expand_configs, options_text
from workbench.formatting import config_label, varying_keys
from workbench.plugins import Registry
from workbench.stacking import stack_key
from workbench.types import RunSpec


def expand_experiment(exp: ExperimentSpec, registry: Registry,
                      notes: list[str] | None = None) -> list[RunSpec]:
    """All runs of one experiment, in grid order (first grid key varies slowest); from the
    configs validation expanded when it did (a kind's expand() then runs once). A config
    produced twice trains once; ``notes`` gets a line saying so."""
    configs = list(exp.configs) if exp.configs else expand_configs(exp, registry)

    varying = varying_keys(configs)
    runs, seen, repeated = [], set(), []
    for config in configs:
        label = config_label(config, varying) or exp.name
        run = RunSpec(experiment=exp.name, index=len(runs), config=config, label=label)
        if run.config_hash in seen:
            repeated.append(label)
            continue
        seen.add(run.config_hash)
        runs.append(run)
    if repeated and notes is not None:
        what = f"kind {exp.kind!r} with {options_text(exp)}" if exp.kind else "its grid"
        notes.append(f"experiment {exp.name!r}: {what} produced {len(configs)} configs, "
                     f"{len(repeated)} identical to another ({', '.join(repeated)}); each "
                     f"trains once: {len(runs)} runs")
    return runs


def plan_study(study: Study, registry: Registry, only: Sequence[str] = (),
               dataset: str | None = None, notes: list[str] | None = None) -> list[RunSpec]:
    """Every run of a study (or of the experiments named in ``only``), in file order;
    ``notes`` gets what the plan merged (see expand_experiment)."""
    names = [e.name for e in study.experiments]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError([f"--only {n}: no experiment of that name in {study.path}; "
                           f"experiments: {', '.join(names)}" for n in unknown])
    if dataset is not None and dataset not in registry.datasets:
        raise ConfigError([f"--dataset {dataset}: unknown data set; available: "
                           f"{', '.join(sorted(registry.datasets))}"])
    runs: list[RunSpec] = []
    problems: list[str] = []
    for exp in study.experiments:
        if only and exp.name not in only:
            continue
        try:
            expanded = expand_experiment(exp, registry, notes)
        except ConfigError as exc:  # every experiment's problems together
            problems += exc.problems
            continue
        for run in expanded:
            if dataset is not None:
                run = RunSpec(run.experiment, run.index, {**run.config, "dataset": dataset},
                              run.label)
            runs.append(run)
    if problems:
        raise ConfigError(problems)
    return runs


@dataclass(frozen=True)
class PlanSummary:
    experiment: str
    runs: int
    epochs: int
    seeds: tuple[int, ...] = ()  # the seeds its runs train with, ascending


def summarize(runs: Iterable[RunSpec]) -> list[PlanSummary]:
    """Runs, epochs and seeds per experiment, in plan order."""
    table: dict[str, list[int]] = {}
    seeds: dict[str, set[int]] = {}
    for run in runs:
        row = table.setdefault(run.experiment, [0, 0])
        row[0] += 1
        row[1] += int(run.config["epochs"])
        seeds.setdefault(run.experiment, set()).add(int(run.config.get("seed", 0)))
    return [PlanSummary(name, r, e, tuple(sorted(seeds[name])))
            for name, (r, e) in table.items()]


# -- work units: which pending runs train together (workbench.training.stacked) ------------

MAX_STREAMS = 32  # distinct (lr, seed) streams trained at once in one stack, at most
MAX_SEEDS = 8  # distinct seeds in one stack, at most: each holds a data split of its own
_BUDGET_SECONDS = 30.0  # how long a measured memory budget is reused


def stream_bytes(config: dict[str, Any], in_features: int = 784, classes: int = 10) -> int:
    """Rough memory of one stream of a stack: weights, grads, two Adam moments, activations
    of a training batch and of an evaluation chunk (float32)."""
    hidden = int(config.get("hidden", 100))
    layers = max(1, int(config.get("layers", 1)))
    params = in_features * hidden + (layers - 1) * hidden * hidden + hidden * classes
    activations = (int(config.get("batch_size", 128)) + 8192) * hidden * layers * 3
    return 4 * (4 * params + activations)


def memory_budget() -> int:
    """Bytes a stack may take: half the free CUDA memory, else a quarter of available RAM."""
    torch = sys.modules.get("torch")  # never import torch here (the runner's lock is held)
    try:
        if torch is not None and torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0] * 0.5)
    except Exception:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.25)
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def _stream(run: RunSpec) -> tuple[float, int]:
    return float(run.config["lr"]), int(run.config.get("seed", 0))


# What a training step costs on a CPU, fitted to the seed's grid trained by the pool
# (Fashion-MNIST, 3-lr stacks, batch 64-256, hidden 50-200; make bench, 2026-11-29): each
# stream's parameters x (batch + ADAM_SAMPLES) (its matmuls grow with the batch; Adam's update
# with the parameters alone, like 40 samples' matmuls), plus STEP_FIXED for the step itself
# (tens of small ops whatever the sizes), in the same unit (~35 ps here).
ADAM_SAMPLES = 40
STEP_FIXED = 20_000_000


def unit_cost(unit: Sequence[RunSpec], in_features: int = 784, classes: int = 10) -> float:
    """A unit's training time, roughly (arbitrary units): per step, each stream's parameters x
    (batch size + ADAM_SAMPLES), plus STEP_FIXED while its longest stream trains; an epoch is
    1 / batch size steps of the data set (whose size scales every unit alike, so it is left
    out). Runs of one stream that differ only in epochs share their first epochs: the longest
    counts. Measured on the seed's grid, this orders its units as their times do, where
    parameters x epochs alone put every batch size of a width together."""
    streams: dict[tuple, int] = {}
    for run in unit:
        hidden = int(run.config.get("hidden", 100))
        layers = max(1, int(run.config.get("layers", 1)))
        params = in_features * hidden + (layers - 1) * hidden * hidden + hidden * classes
        key = (_stream(run), params)
        streams[key] = max(streams.get(key, 0), int(run.config["epochs"]))
    batch = max(1, int(unit[0].config.get("batch_size", 128)))  # one batch size per stack
    per_stream = sum(params * epochs for (_, params), epochs in streams.items())
    return (per_stream * (batch + ADAM_SAMPLES) + max(streams.values()) * STEP_FIXED) / batch


def unit_grouper(stack: bool, workers: int = 1, longest_first: bool = False,
                 models: Mapping[str, Any] | None = None
                 ) -> Callable[[list[RunSpec]], list[RunSpec]]:
    """The runner's ``group``: the head of the pending queue plus every pending run that can
    train stacked with it, as many distinct streams as fit in the memory budget (shared by
    ``workers`` units training at once). Cheap (called under the runner's lock): config
    hashes only; the budget is measured every 30 s. A stream is one (lr, seed): runs that
    differ only in epochs share it. ``longest_first``: of the units the pending runs form
    (taken head by head, as above), the costliest (``unit_cost``), so the pool's last
    minutes are not one worker busy while the others idle. ``models``: the registry's
    ModelSpecs (a model declared not stackable makes units of one run)."""
    cached: list[float] = [0.0, 0.0]  # [measured at, bytes]
    keys: dict[RunSpec, str | None] = {}  # each run's stack_key (configs never change)

    def key_of(run: RunSpec) -> str | None:
        if run not in keys:
            keys[run] = stack_key(run.config, models) if stack else None
        return keys[run]

    def head_unit(pending: list[RunSpec]) -> list[RunSpec]:
        head = pending[0]
        key = key_of(head)
        if key is None:
            return [head]
        now = time.monotonic()
        if now - cached[0] > _BUDGET_SECONDS:
            cached[:] = [now, float(memory_budget()) / max(1, workers)]
        cap = max(1, min(MAX_STREAMS, int(cached[1] // max(1, stream_bytes(head.config)))))
        unit, streams = [head], {_stream(head)}
        for run in pending[1:]:
            if key_of(run) != key:
                continue
            stream = _stream(run)
            seeds = {seed for _, seed in streams}
            if stream not in streams and (len(streams) >= cap or (
                    stream[1] not in seeds and len(seeds) >= MAX_SEEDS)):
                continue
            streams.add(stream)
            unit.append(run)
        return unit

    def units(pending: list[RunSpec]) -> Iterator[list[RunSpec]]:
        """Every unit the pending runs form, taken head by head: one pass to sort them by
        stack key (runs of other keys never join a unit), then units within each key."""
        same: dict[Any, list[RunSpec]] = {}
        for run in pending:
            key = key_of(run)
            same.setdefault(key if key is not None else id(run), []).append(run)
        for rest in same.values():
            while rest:
                unit = head_unit(rest)
                yield unit
                taken = {id(run) for run in unit}
                rest = [run for run in rest if id(run) not in taken]

    def group(pending: list[RunSpec]) -> list[RunSpec]:
        if not pending:
            return []
        if not longest_first:
            return head_unit(pending)
        order = {id(run): i for i, run in enumerate(pending)}
        # the costliest; of equal costs the one whose head comes first (file order)
        return max(units(pending), key=lambda u: (unit_cost(u), -order[id(u[0])]))

    return group

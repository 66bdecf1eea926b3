"""Experiment specs -> concrete runs (grids expanded, experiment kinds applied)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from workbench.config import ConfigError, ExperimentSpec, Study
from workbench.params import validate_run_config
from workbench.plugins import Registry
from workbench.types import RunSpec, config_hash


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _options_text(exp: ExperimentSpec) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in exp.options.items()) or "its default options"


def expand_configs(exp: ExperimentSpec, registry: Registry) -> list[dict[str, Any]]:
    """Every run config of one experiment (grid x kind x seeds), each checked like the file's
    own values. Raises ConfigError naming the experiment, the kind and its options."""
    configs: list[dict[str, Any]] = []
    keys = list(exp.grid)
    kind = registry.experiments[exp.kind] if exp.kind else None
    for values in itertools.product(*(exp.grid[k] for k in keys)) if keys else [()]:
        cell = dict(exp.base)
        cell.update(zip(keys, values))
        if kind is None:
            configs.append(cell)
            continue
        try:
            overrides = [dict(o) for o in kind.expand(dict(cell), dict(exp.options))]
        except Exception as exc:  # a plugin's bug or options it cannot use
            source = registry.source_of("experiment", kind.name)
            valid = ", ".join(f"{k} (default {v!r})" for k, v in kind.options.items())
            raise ConfigError([
                f"experiment {exp.name!r}: kind {kind.name!r} ({source}) could not use "
                f"{_options_text(exp)}: {type(exc).__name__}: {exc}; its options: "
                f"{valid or 'none'}"]) from None
        configs += [{**cell, **o} for o in overrides]
    if exp.seeds:  # each repeat right after its config: repeats queue (and stack) together
        configs = [{**config, "seed": seed} for config in configs for seed in exp.seeds]

    what = f"kind {exp.kind!r} with {_options_text(exp)}" if exp.kind else "its grid"
    problems = []
    for config in configs:
        problems += [f"experiment {exp.name!r}: {what} produced {p}"
                     for p in validate_run_config(config, registry)]
    if not configs:
        problems.append(f"experiment {exp.name!r}: {what} produced no runs; give it at "
                        "least one value")
    if problems:
        raise ConfigError(sorted(set(problems)))
    return configs


def expand_experiment(exp: ExperimentSpec, registry: Registry) -> list[RunSpec]:
    """All runs of one experiment, in grid order (first grid key varies slowest)."""
    configs = expand_configs(exp, registry)
    varying = [k for k in sorted({k for c in configs for k in c})
               if len({repr(c.get(k)) for c in configs}) > 1]
    runs, seen = [], set()
    for config in configs:
        label = " ".join(f"{k}={_fmt(config[k])}" for k in varying) or exp.name
        run = RunSpec(experiment=exp.name, index=len(runs), config=config, label=label)
        if run.config_hash in seen:  # a kind or grid that repeats a config trains it once
            continue
        seen.add(run.config_hash)
        runs.append(run)
    return runs


def plan_study(study: Study, registry: Registry, only: Sequence[str] = (),
               dataset: str | None = None) -> list[RunSpec]:
    """Every run of a study (or of the experiments named in ``only``), in file order."""
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
            expanded = expand_experiment(exp, registry)
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


# -- work units: which pending runs train together (workbench.stacked) -------------------

STACK_FREE_KEYS = ("lr", "epochs", "seed")  # what the runs of one stacked group may differ in
MAX_STREAMS = 32  # distinct (lr, seed) streams trained at once in one stack, at most
MAX_SEEDS = 8  # distinct seeds in one stack, at most: each holds a data split of its own
_BUDGET_SECONDS = 30.0  # how long a measured memory budget is reused


def stack_key(run: RunSpec) -> str | None:
    """Runs with the same key can train as one stack; None: this run always trains alone.

    Everything but lr, epochs and seed must be equal (model and its shape keys, activation,
    batch_size, dataset, optimizer). Dropout > 0 is never stacked: its masks come from
    the global RNG, and sharing them would change the runs' meaning.
    """
    config = run.config
    if float(config.get("dropout", 0.0) or 0.0) > 0 or config.get("optimizer") not in (
            "adam", "sgd"):
        return None
    return config_hash({k: v for k, v in config.items() if k not in STACK_FREE_KEYS})


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


def unit_grouper(stack: bool) -> Callable[[list[RunSpec]], list[RunSpec]]:
    """The runner's ``group``: the head of the pending queue plus every pending run that can
    train stacked with it, as many distinct streams as fit in memory. Cheap (called under
    the runner's lock): config hashes only; the memory budget is measured every 30 s. A
    stream is one (lr, seed): runs that differ only in epochs share it."""
    if not stack:
        return lambda pending: pending[:1]
    cached: list[float] = [0.0, 0.0]  # [measured at, bytes]

    def group(pending: list[RunSpec]) -> list[RunSpec]:
        if not pending:
            return []
        head = pending[0]
        key = stack_key(head)
        if key is None:
            return [head]
        now = time.monotonic()
        if now - cached[0] > _BUDGET_SECONDS:
            cached[:] = [now, float(memory_budget())]
        cap = max(1, min(MAX_STREAMS, int(cached[1] // max(1, stream_bytes(head.config)))))
        unit, streams = [head], {_stream(head)}
        for run in pending[1:]:
            if stack_key(run) != key:
                continue
            stream = _stream(run)
            seeds = {seed for _, seed in streams}
            if stream not in streams and (len(streams) >= cap or (
                    stream[1] not in seeds and len(seeds) >= MAX_SEEDS)):
                continue
            streams.add(stream)
            unit.append(run)
        return unit

    return group

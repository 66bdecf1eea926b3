"""Experiment specs -> concrete runs (grids expanded, experiment kinds applied)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from workbench.config import ConfigError, ExperimentSpec, Study, validate_run_config
from workbench.plugins import Registry
from workbench.types import RunSpec


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _options_text(exp: ExperimentSpec) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in exp.options.items()) or "its default options"


def expand_configs(exp: ExperimentSpec, registry: Registry) -> list[dict[str, Any]]:
    """Every run config of one experiment (grid x kind), each checked like the file's own
    values. Raises ConfigError naming the experiment, the kind and its options."""
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


def summarize(runs: Iterable[RunSpec]) -> list[PlanSummary]:
    """Runs and epochs per experiment, in plan order."""
    table: dict[str, list[int]] = {}
    for run in runs:
        row = table.setdefault(run.experiment, [0, 0])
        row[0] += 1
        row[1] += int(run.config["epochs"])
    return [PlanSummary(name, r, e) for name, (r, e) in table.items()]

"""One experiment as validated (ExperimentSpec) and its run configs: its grid, its kind's
expand() and its seeds, each config checked like the file's own values (workbench.config
validates the file and builds the specs; workbench.plan turns the configs into runs)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.config_error import ConfigError
from workbench.params import canonical_config, validate_run_config
from workbench.plugins import Registry
from workbench.references import Reference, unmatched


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    kind: str | None  # an ExperimentKind name, or None for plain (grid) runs
    base: dict[str, Any]  # resolved run config before the grid and the kind
    grid: dict[str, list[Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # the kind's options
    # every run config (grid x kind), as validation expanded them; () when not expanded yet
    configs: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    references: tuple[Reference, ...] = ()  # figures its runs should reproduce
    seeds: tuple[int, ...] = ()  # train every run once per seed (workbench.repeats); (): once


def expanded(exp: ExperimentSpec, registry: Registry, where: str, problems: list[str]
             ) -> ExperimentSpec:
    """The experiment with its run configs, each checked like the file's own values (the
    planner uses them: a kind's expand() runs once); their problems go to ``problems``."""
    try:
        configs = expand_configs(exp, registry)
    except ConfigError as exc:
        problems += [f"{where}: {p}" for p in exc.problems]
        return exp
    problems += [f"{where}: {p}" for p in unmatched(exp.references, configs)]
    return replace(exp, configs=tuple(configs))


def options_text(exp: ExperimentSpec) -> str:
    """An experiment kind's options as the user wrote them, for messages."""
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
            configs.append(canonical_config(cell, registry))
            continue
        try:
            overrides = [dict(o) for o in kind.expand(dict(cell), dict(exp.options))]
        except Exception as exc:  # a plugin's bug or options it cannot use
            source = registry.source_of("experiment", kind.name)
            valid = ", ".join(f"{k} (default {v!r})" for k, v in kind.options.items())
            raise ConfigError([
                f"experiment {exp.name!r}: kind {kind.name!r} ({source}) could not use "
                f"{options_text(exp)}: {type(exc).__name__}: {exc}; its options: "
                f"{valid or 'none'}"]) from None
        configs += [canonical_config({**cell, **o}, registry) for o in overrides]
    if exp.seeds:  # each repeat right after its config: repeats queue (and stack) together
        configs = [{**config, "seed": seed} for config in configs for seed in exp.seeds]

    what = (f"kind {exp.kind!r} with {options_text(exp)} produced " if exp.kind else
            "its grid produced " if exp.grid else "")
    problems = []
    for config in configs:
        problems += [f"experiment {exp.name!r}: {what}{p}"
                     for p in validate_run_config(config, registry)]
    if not configs:
        problems.append(f"experiment {exp.name!r}: {what or 'it produced '}no runs; give "
                        "it at least one value")
    if problems:
        raise ConfigError(sorted(set(problems)))
    return configs

"""experiments.toml -> validated experiment specs.

Every problem in a file is collected and reported together; each names the file, the
experiment and the key, and says what would be valid.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from workbench.params import (ACTIVATIONS, CORE_DEFAULTS, OPTIMIZERS,  # noqa: F401
                               OPTIONAL_DEFAULTS, Check, _choices, _like, _suggest,
                               all_param_keys, callback_names, callback_param_keys,
                               core_checks, param_checks,
                               plugin_param_check, settings_problems,
                               unused_callback_params)  # some re-exported: tests
from workbench.config_error import ConfigError
from workbench.expansion import ExperimentSpec, expanded
from workbench.plugins import Registry
from workbench.references import Reference, parse as parse_references
from workbench.repeats import KEYS as REPEAT_KEYS, repeat_problems, resolve_seeds

EXECUTORS = ("local", "ray")

EXPERIMENT_KEYS = ("name", "description", "kind", "grid", "reference")
TOP_KEYS = ("title", "description", "defaults", "experiment", "plugin_dirs", "executor",
            "ray_address", "workers")


@dataclass(frozen=True)
class Study:
    """A whole experiments file, validated."""

    path: Path | None
    title: str
    experiments: tuple[ExperimentSpec, ...]
    plugin_dirs: tuple[Path, ...] = ()
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None  # local training processes; None: one per core (--workers)

    def experiment(self, name: str) -> ExperimentSpec:
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise KeyError(name)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a folder, expected an experiments .toml file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}{_line_of(text, str(exc))}"]
                          ) from None


def _line_of(text: str, message: str) -> str:
    """The offending line, quoted, when the parser's message names one."""
    found = re.search(r"line (\d+), column (\d+)", message)
    lines = text.splitlines()
    if not found or not 0 < int(found.group(1)) <= len(lines):
        return ""
    line = lines[int(found.group(1)) - 1].strip()
    return f"; line {found.group(1)} reads: {line[:80]!r}"


def plugin_dirs_of(raw: Mapping[str, Any], path: Path | None) -> list[Path]:
    """Drop-in plugin folders a file asks for: ``plugins/`` beside it, plus ``plugin_dirs``."""
    base = Path(path).resolve().parent if path else Path.cwd()
    dirs = []
    if (base / "plugins").is_dir():
        dirs.append(base / "plugins")
    extra = raw.get("plugin_dirs", [])
    if isinstance(extra, list):
        # normalised: messages name /a/p2/x.py, not /a/sub/../p2/x.py
        dirs += [Path(os.path.normpath(base / str(d))) for d in extra if isinstance(d, str)]
    return dirs


def load_study(path: Path, registry: Registry, raw: Mapping[str, Any] | None = None) -> Study:
    """Read and validate an experiments file. Raises ConfigError listing every problem."""
    path = Path(path)
    raw = read_toml(path) if raw is None else raw
    return validate_study(raw, registry, path)


def validate_study(raw: Mapping[str, Any], registry: Registry, path: Path | None) -> Study:
    where = str(path) if path else "<config>"
    problems: list[str] = []

    def bad(ctx: str, msg: str) -> None:
        problems.append(f"{where}: {ctx}{msg}")

    for key in raw:
        if key not in TOP_KEYS:
            bad("", f"unknown top-level key {key!r}{_suggest(key, TOP_KEYS)}; "
                    f"valid: {', '.join(TOP_KEYS)}")

    defaults = dict(CORE_DEFAULTS)
    raw_defaults = raw.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        bad("", f"[defaults] must be a table, got {type(raw_defaults).__name__}")
        raw_defaults = {}
    param_keys = all_param_keys(registry)
    bad_defaults: set[str] = set()  # reported once here, not again for every experiment
    default_repeats = {k: raw_defaults[k] for k in REPEAT_KEYS if k in raw_defaults}
    for problem in repeat_problems(default_repeats):
        bad("[defaults] ", problem)
        default_repeats = {}  # reported once, here, not again for every experiment
    for key, value in raw_defaults.items():
        if key in REPEAT_KEYS:
            continue
        if key not in param_keys:
            valid = param_keys | set(REPEAT_KEYS)
            bad("[defaults] ", f"unknown key {key!r}{_suggest(key, valid)}; "
                               f"valid: {_choices(valid)}")
            continue
        problem = _default_check(registry, key)(value)
        if problem:
            bad("[defaults] ", f"{key}: {problem}")
            bad_defaults.add(key)
        defaults[key] = value
    title = raw.get("title", path.stem if path else "study")
    if not isinstance(title, str):
        bad("", f"title: got {title!r}, expected a string")

    plugin_dirs = []
    raw_dirs = raw.get("plugin_dirs", [])
    if not isinstance(raw_dirs, list) or not all(isinstance(d, str) for d in raw_dirs):
        bad("", f"plugin_dirs: got {raw_dirs!r}, expected a list of folder paths")
    else:
        base = path.resolve().parent if path else Path.cwd()
        for d in raw_dirs:
            folder = base / d
            if not folder.is_dir():
                bad("", f"plugin_dirs: folder {d!r} does not exist (looked for {folder})")
            plugin_dirs.append(folder)

    executor = raw.get("executor", "local")
    if executor not in EXECUTORS:
        bad("", f"executor: got {executor!r}, expected one of: {', '.join(EXECUTORS)}")
    ray_address = raw.get("ray_address")
    if ray_address is not None and not isinstance(ray_address, str):
        bad("", f"ray_address: got {ray_address!r}, expected a string such as 'auto'")
    workers = raw.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        bad("", f"workers: got {workers!r}, expected a whole number of training processes "
                "of at least 1 (leave it out: one per core)")
        workers = None

    raw_exps = raw.get("experiment", [])
    if not isinstance(raw_exps, list) or not all(isinstance(e, dict) for e in raw_exps):
        bad("", "experiment: expected [[experiment]] tables")
        raw_exps = []
    if not raw_exps:
        bad("", "no experiments: add at least one [[experiment]] table with a name")

    experiments = []
    seen: dict[str, int] = {}
    for i, raw_exp in enumerate(raw_exps, 1):
        exp = _validate_experiment(raw_exp, i, defaults, registry, where, problems, seen,
                                   bad_defaults, default_repeats)
        if exp is not None:
            experiments.append(expanded(exp, registry, where, problems))

    if problems:
        raise ConfigError(problems)
    return Study(path=path, title=str(title),
                 experiments=tuple(experiments), plugin_dirs=tuple(plugin_dirs),
                 executor=executor, ray_address=ray_address, workers=workers)


def _default_check(registry: Registry, key: str) -> Check:
    """The check of a [defaults] key: the core's or a callback's, else the first model that
    has the key."""
    core = param_checks(registry, None)
    if key in core:
        return core[key]
    for spec in registry.models.values():
        if key in spec.params:
            return plugin_param_check(spec, key)
    return lambda v: None


def _validate_experiment(raw_exp: dict[str, Any], index: int, defaults: dict[str, Any],
                         registry: Registry, where: str, problems: list[str],
                         seen: dict[str, int], bad_defaults: set[str] = frozenset(),
                         default_repeats: Mapping[str, Any] | None = None
                         ) -> ExperimentSpec | None:
    name = raw_exp.get("name")
    start = len(problems)
    if not isinstance(name, str) or not name.strip():
        ctx = f"experiment #{index}: "
        problems.append(f"{where}: {ctx}name: missing or empty; every experiment needs a "
                        "unique name = \"...\"")
        name = f"#{index}"
    else:
        ctx = f"experiment {name!r}: "
        if name in seen:
            ctx = f"experiment {name!r} (#{index}): "
            problems.append(f"{where}: {ctx}name: duplicate experiment name (also experiment "
                            f"#{seen[name]}); names must be unique")
        seen.setdefault(name, index)

    def bad(msg: str) -> None:
        problems.append(f"{where}: {ctx}{msg}")

    kind_name = raw_exp.get("kind")
    kind = None
    if kind_name is not None:
        if not isinstance(kind_name, str) or kind_name not in registry.experiments:
            avail = registry.experiments
            hint = _suggest(kind_name, avail) if isinstance(kind_name, str) else ""
            bad(f"kind: unknown experiment kind {kind_name!r}{hint}; "
                f"available: {_choices(avail)}")
        else:
            kind = registry.experiments[kind_name]

    base = dict(defaults)
    options = dict(kind.options) if kind else {}
    param_keys = all_param_keys(registry)
    for key, value in raw_exp.items():
        if key in ("name", "description", "kind", "grid", "reference") or key in REPEAT_KEYS:
            continue
        if kind and key in kind.options:
            options[key] = value
        elif key in param_keys:
            base[key] = value
        else:
            valid = (set(EXPERIMENT_KEYS) | set(REPEAT_KEYS) | param_keys
                     | (set(kind.options) if kind else set()))
            bad(f"unknown key {key!r}{_suggest(key, valid)}; valid: {_choices(valid)}")

    description = raw_exp.get("description", "")
    if not isinstance(description, str):
        bad(f"description: got {description!r}, expected a string")
        description = ""

    # Plugin parameters of the chosen model, with their defaults.
    model = base.get("model")
    if isinstance(model, str) and model in registry.models:
        for key, default in registry.models[model].params.items():
            base.setdefault(key, default)
        for key in list(base):
            if key not in CORE_DEFAULTS and key not in registry.models[model].params \
                    and key not in OPTIONAL_DEFAULTS and key not in callback_param_keys(registry):
                if key in raw_exp:  # a [defaults] key of another model is simply not used
                    bad(f"{key}: not a parameter of model {model!r}")
                base.pop(key)

    checks = param_checks(registry, model)
    for key, value in base.items():
        if key in bad_defaults and key not in raw_exp:  # already reported under [defaults]
            known = isinstance(model, str) and model in registry.models
            params = registry.models[model].params if known else {}
            base[key] = CORE_DEFAULTS.get(key, params.get(key, value))  # to check the rest
            continue
        problem = checks[key](value) if key in checks else None
        if problem:
            bad(f"{key}: {problem}")

    grid = raw_exp.get("grid", {})
    clean_grid: dict[str, list[Any]] = {}
    if not isinstance(grid, dict):
        bad(f"grid: expected a table of key = [values], got {grid!r}")
        grid = {}
    for key, values in grid.items():
        if key not in checks:
            bad(f"grid.{key}: unknown key{_suggest(key, checks)}; valid: {_choices(checks)}")
            continue
        if not isinstance(values, list):
            bad(f"grid.{key}: expected a list of values, got {values!r}")
            continue
        if not values:
            bad(f"grid.{key}: empty list; give at least one value")
            continue
        for value in values:
            problem = checks[key](value)
            if problem:
                bad(f"grid.{key}: {problem}")
        clean_grid[key] = values

    if kind is None:  # (a kind's expand() may add callbacks: not known before it runs)
        used = set(callback_names(base.get("callbacks"))) | {
            n for v in clean_grid.get("callbacks", []) for n in callback_names(v)}
        known = isinstance(model, str) and model in registry.models
        own = [k for k in raw_exp if k in base] + list(clean_grid)
        for key, owners in unused_callback_params(
                own, used, registry, registry.models[model].params if known else {}).items():
            at = f"grid.{key}" if key in clean_grid else key
            bad(f"{at}: a parameter of callback {' or '.join(map(repr, owners))}, which no "
                f"run of this experiment uses, so it would change nothing; add "
                f"callbacks = [{owners[0]!r}] (or put it in the grid's callbacks), or drop "
                f"{key}")

    references: list[Reference] = []
    if "reference" in raw_exp:
        references, ref_problems = parse_references(name, raw_exp["reference"], checks)
        for problem in ref_problems:
            bad(problem)
    own_repeats = {k: raw_exp[k] for k in REPEAT_KEYS if k in raw_exp}
    for problem in repeat_problems(own_repeats):
        bad(problem)
    repeated = own_repeats or default_repeats
    if repeated and "seed" in clean_grid:
        bad(f"grid.seed and {' and '.join(repeated)}: both set the seeds; give the seeds once "
            "(seeds = [...] repeats every grid cell over them)")

    if len(problems) > start:
        if kind is None and isinstance(model, str) and model in registry.models:
            # the model's own check() too, so that every problem shows at once
            for problem in settings_problems(base, registry):
                if f"{where}: {ctx}{problem}" not in problems:
                    bad(problem)
        return None
    seeds = resolve_seeds(default_repeats or {}, own_repeats, int(base["seed"]))
    return ExperimentSpec(name=name, description=description, kind=kind_name, base=base,
                          grid=clean_grid, options=options, references=tuple(references),
                          seeds=seeds)

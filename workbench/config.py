"""experiments.toml -> validated experiment specs.

Every problem in a file is collected and reported together; each names the file, the
experiment and the key, and says what would be valid.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from workbench.plugins import Registry

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "leaky_relu")
OPTIMIZERS = ("adam", "sgd")
EXECUTORS = ("local", "ray")

# The run config every model understands, with its default (stated once, here).
CORE_DEFAULTS: dict[str, Any] = {
    "model": "baseline_mlp",
    "dataset": "mnist",
    "lr": 1e-3,
    "hidden": 100,
    "activation": "relu",
    "dropout": 0.0,
    "epochs": 3,
    "batch_size": 128,
    "seed": 11,
    "optimizer": "adam",
}
EXPERIMENT_KEYS = ("name", "description", "kind", "grid")
TOP_KEYS = ("title", "description", "defaults", "experiment", "plugin_dirs", "executor",
            "ray_address")


class ConfigError(Exception):
    """One or more problems in an experiments file; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    kind: str | None  # an ExperimentKind name, or None for plain (grid) runs
    base: dict[str, Any]  # resolved run config before the grid and the kind
    grid: dict[str, list[Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # the kind's options


@dataclass(frozen=True)
class Study:
    """A whole experiments file, validated."""

    path: Path | None
    title: str
    experiments: tuple[ExperimentSpec, ...]
    plugin_dirs: tuple[Path, ...] = ()
    executor: str = "local"
    ray_address: str | None = None

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
        dirs += [(base / str(d)) for d in extra if isinstance(d, str)]
    return dirs


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choices(choices: Any) -> str:
    return ", ".join(sorted(choices))


Check = Callable[[Any], str | None]  # returns a problem, or None when the value is valid


def _number(kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok_type = (isinstance(v, int) and not isinstance(v, bool)) if kind is int else (
            isinstance(v, (int, float)) and not isinstance(v, bool))
        rng = ""
        if low is not None or high is not None:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
            rng = " " + " and ".join(s for s in (lo, hi) if s)
        want = f"{'an integer' if kind is int else 'a number'}{rng}"
        if not ok_type:
            return f"got {v!r} ({type(v).__name__}), expected {want}"
        if v != v or v in (float("inf"), float("-inf")):
            return f"got {v!r}, expected {want}"
        if low is not None and (v < low or (low_open and v == low)):
            return f"got {v!r}, expected {want}"
        if high is not None and (v > high or (high_open and v == high)):
            return f"got {v!r}, expected {want}"
        return None
    return check


def _one_of(choices: tuple[str, ...] | Callable[[], Any], what: str) -> Check:
    def check(v: Any) -> str | None:
        allowed = choices() if callable(choices) else choices
        if not isinstance(v, str):
            return f"got {v!r} ({type(v).__name__}), expected one of: {_choices(allowed)}"
        if v not in allowed:
            return f"unknown {what} {v!r}{_suggest(v, allowed)}; available: {_choices(allowed)}"
        return None
    return check


def _like(default: Any) -> Check:
    """Checker for a plugin's own parameter: same type as its default."""
    if isinstance(default, bool):
        return lambda v: None if isinstance(v, bool) else f"got {v!r}, expected true or false"
    if isinstance(default, int):
        return _number(int)
    if isinstance(default, float):
        return _number(float)
    if isinstance(default, str):
        return lambda v: None if isinstance(v, str) else f"got {v!r}, expected a string"
    kind = type(default)
    return lambda v: None if isinstance(v, kind) else (
        f"got {v!r} ({type(v).__name__}), expected a {kind.__name__} like {default!r}")


def core_checks(registry: Registry) -> dict[str, Check]:
    return {
        "model": _one_of(lambda: registry.models, "model"),
        "dataset": _one_of(lambda: registry.datasets, "dataset"),
        "lr": _number(float, 0, low_open=True),
        "hidden": _number(int, 1),
        "activation": _one_of(ACTIVATIONS, "activation"),
        "dropout": _number(float, 0, 1, high_open=True),
        "epochs": _number(int, 1),
        "batch_size": _number(int, 1),
        "seed": _number(int, 0),
        "optimizer": _one_of(OPTIMIZERS, "optimizer"),
    }


def param_checks(registry: Registry, model: Any) -> dict[str, Check]:
    checks = core_checks(registry)
    spec = registry.models.get(model) if isinstance(model, str) else None
    if spec is not None:
        for key, default in spec.params.items():
            checks.setdefault(key, _like(default))
    return checks


def all_param_keys(registry: Registry) -> set[str]:
    keys = set(CORE_DEFAULTS)
    for spec in registry.models.values():
        keys |= set(spec.params)
    return keys


def validate_run_config(config: Mapping[str, Any], registry: Registry) -> list[str]:
    """Problems with one resolved run config ("key: problem"), empty when valid."""
    checks = param_checks(registry, config.get("model"))
    problems = []
    for key, value in config.items():
        check = checks.get(key)
        problem = check(value) if check else "not a parameter of this model"
        if problem:
            problems.append(f"{key}: {problem}")
    return problems


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
    for key, value in raw_defaults.items():
        if key not in param_keys:
            bad("[defaults] ", f"unknown key {key!r}{_suggest(key, param_keys)}; "
                               f"valid: {_choices(param_keys)}")
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
                                   bad_defaults)
        if exp is not None:
            experiments.append(exp)
            problems += _expansion_problems(exp, registry, where)

    if problems:
        raise ConfigError(problems)
    return Study(path=path, title=str(title),
                 experiments=tuple(experiments), plugin_dirs=tuple(plugin_dirs),
                 executor=executor, ray_address=ray_address)


def _default_check(registry: Registry, key: str) -> Check:
    """The check of a [defaults] key: the core's, else the first model that has the key."""
    core = core_checks(registry)
    if key in core:
        return core[key]
    for spec in registry.models.values():
        if key in spec.params:
            return _like(spec.params[key])
    return lambda v: None


def _expansion_problems(exp: ExperimentSpec, registry: Registry, where: str) -> list[str]:
    """What an experiment kind produces from the user's options, checked like the rest."""
    from workbench.plan import expand_configs  # plan builds on this module

    try:
        expand_configs(exp, registry)
    except ConfigError as exc:
        return [f"{where}: {p}" for p in exc.problems]
    return []


def _validate_experiment(raw_exp: dict[str, Any], index: int, defaults: dict[str, Any],
                         registry: Registry, where: str, problems: list[str],
                         seen: dict[str, int], bad_defaults: set[str] = frozenset()
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
        if key in ("name", "description", "kind", "grid"):
            continue
        if kind and key in kind.options:
            options[key] = value
        elif key in param_keys:
            base[key] = value
        else:
            valid = set(EXPERIMENT_KEYS) | param_keys | (set(kind.options) if kind else set())
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
            if key not in CORE_DEFAULTS and key not in registry.models[model].params:
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

    if len(problems) > start:
        return None
    return ExperimentSpec(name=name, description=description, kind=kind_name, base=base,
                          grid=clean_grid, options=options)

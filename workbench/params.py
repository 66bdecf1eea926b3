"""Run parameters: the keys every model understands (defaults: workbench.defaults) and value
checks.

A check returns a problem ("got -1, expected a number > 0") or None; config.py turns the
problems of a whole file into one ConfigError.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping

from workbench.defaults import CORE_DEFAULTS, OPTIONAL_DEFAULTS, same
from workbench.models import ACTIVATIONS
from workbench.plugins import Registry

OPTIMIZERS = ("adam", "sgd")

OPTIMIZER_KEYS = {"momentum": ("sgd",), "weight_decay": ("adam", "sgd"), "betas": ("adam",)}


def optimizer_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer's keyword arguments a config sets (torch.optim names), defaults left out."""
    out = {}
    for key in OPTIMIZER_KEYS:
        if key in config and not same(config[key], OPTIONAL_DEFAULTS[key]):
            out[key] = tuple(config[key]) if key == "betas" else config[key]
    return out


def callback_names(value: Any) -> list[str]:
    """The callback names a ``callbacks`` value gives (a name or a list; other values:
    none, their problem is reported by the value's check)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else []


def unused_callback_params(keys: Any, callbacks: set[str], registry: Registry,
                           model_params: Mapping[str, Any]) -> dict[str, list[str]]:
    """Of ``keys`` (set by an experiment), the parameters of training callbacks none of
    ``callbacks`` (those its runs use) declares -> the callbacks that do: set without
    their callback, they would be dropped silently."""
    out = {}
    for key in keys:
        owners = [name for name, kind in registry.callbacks.items() if key in kind.params]
        if owners and not callbacks & set(owners) and key not in CORE_DEFAULTS \
                and key not in OPTIONAL_DEFAULTS and key not in model_params:
            out[key] = owners
    return out


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


def _of_type(kind: Any) -> Check:
    """Checker for a declared type (or tuple of types); an int is a valid float."""
    if kind is float:
        return _number(float)
    if kind is int:
        return _number(int)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    return lambda v: None if isinstance(v, kinds) and not (
        isinstance(v, bool) and bool not in kinds) else (
        f"got {v!r} ({type(v).__name__}), expected {names}")


def _like(default: Any) -> Check:
    """Checker for a plugin's own parameter: same type as its default."""
    if default is None:  # no type to go by: ModelSpec.param_types must say it
        return lambda v: None if v is None else (
            f"got {v!r} ({type(v).__name__}), but its model declares no type for it (its "
            "default is None); the plugin can declare one: ModelSpec(param_types={...})")
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


def _names_of(kinds: Callable[[], Any], what: str) -> Check:
    """A name or a list of distinct names, each one of ``kinds()``."""
    one = _one_of(kinds, what)

    def check(v: Any) -> str | None:
        names = [v] if isinstance(v, str) else v
        if not isinstance(names, (list, tuple)):
            return f"got {v!r} ({type(v).__name__}), expected a list of {what} names"
        for name in names:
            problem = one(name)
            if problem:
                return problem
        if len(set(names)) < len(names):
            return f"got {v!r}: a {what} named twice"
        return None
    return check


def _betas(v: Any) -> str | None:
    number = _number(float, 0, 1, high_open=True)
    if not isinstance(v, (list, tuple)) or len(v) != 2 or any(number(b) for b in v):
        return f"got {v!r}, expected two numbers in [0, 1), such as [0.9, 0.999]"
    return None


def _activation_list(v: Any) -> str | None:
    if not isinstance(v, (list, tuple)):
        return f"got {v!r} ({type(v).__name__}), expected a list such as [\"relu\", \"tanh\"]"
    for name in v:
        problem = _one_of(ACTIVATIONS, "activation")(name)
        if problem:
            return problem
    return None


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
        "callbacks": _names_of(lambda: registry.callbacks, "callback"),
        "momentum": _number(float, 0, 1, high_open=True),
        "weight_decay": _number(float, 0),
        "betas": _betas,
        "activations": _activation_list,  # per hidden layer, for models that declare it
    }


def plugin_param_check(spec: Any, key: str) -> Check:
    """The check of a model plugin's own parameter: its declared type, else its default's."""
    declared = spec.param_types.get(key)
    default = spec.params[key]
    if declared is None:
        return _like(default)
    check = _of_type(declared)
    return lambda v: None if v is None and default is None else check(v)  # unset: the default


def param_checks(registry: Registry, model: Any) -> dict[str, Check]:
    checks = core_checks(registry)
    for kind in registry.callbacks.values():
        for key, default in kind.params.items():
            checks.setdefault(key, _like(default))
    spec = registry.models.get(model) if isinstance(model, str) else None
    if spec is not None:
        for key in spec.params:
            checks.setdefault(key, plugin_param_check(spec, key))
    return checks


def all_param_keys(registry: Registry) -> set[str]:
    keys = set(CORE_DEFAULTS) | set(OPTIONAL_DEFAULTS) | callback_param_keys(registry)
    for spec in registry.models.values():
        keys |= set(spec.params)
    return keys


def callback_param_keys(registry: Registry) -> set[str]:
    return {key for kind in registry.callbacks.values() for key in kind.params}


def canonical_config(config: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """A run's config as stored and hashed: optional keys at their default left out, the
    parameters of the callbacks it uses filled in, those of callbacks it does not use left
    out, and a model's list parameter left empty (unused) left out."""
    from workbench.callbacks import chosen

    out = {k: v for k, v in config.items()
           if not (k in OPTIONAL_DEFAULTS and same(v, OPTIONAL_DEFAULTS[k]))}
    if isinstance(out.get("callbacks"), str):
        out["callbacks"] = [out["callbacks"]]
    valid = not _names_of(lambda: registry.callbacks, "callback")(out.get("callbacks", ()))
    names = chosen(out) if valid else []  # invalid names: reported by validate_run_config
    used = {key: default for name in names for key, default in
            registry.callbacks[name].params.items()}
    for key in callback_param_keys(registry) - set(used):
        out.pop(key, None)
    for key, default in used.items():
        out.setdefault(key, default)
    spec = registry.models.get(out.get("model")) if isinstance(out.get("model"), str) else None
    for key, default in (spec.params.items() if spec else ()):
        if isinstance(default, (list, tuple)) and not default and same(out.get(key), default):
            out.pop(key, None)
    return out


def validate_run_config(config: Mapping[str, Any], registry: Registry) -> list[str]:
    """Problems with one resolved run config ("key: problem"), empty when valid."""
    checks = param_checks(registry, config.get("model"))
    problems = []
    for key, value in config.items():
        check = checks.get(key)
        problem = check(value) if check else "not a parameter of this model"
        if problem:
            problems.append(f"{key}: {problem}")
    optimizer = config.get("optimizer")
    for key, users in OPTIMIZER_KEYS.items():
        if key in config and optimizer in OPTIMIZERS and optimizer not in users \
                and not same(config[key], OPTIONAL_DEFAULTS[key]):
            problems.append(f"{key}: optimizer {optimizer!r} does not use it; it applies to "
                            f"{' and '.join(users)} (set optimizer = {users[0]!r} or drop "
                            f"{key})")
    spec = registry.models.get(config.get("model")) if isinstance(config.get("model"),
                                                                  str) else None
    if spec is not None and spec.check is not None and not problems:
        source = registry.source_of("model", spec.name)
        try:
            problems += [str(p) for p in spec.check(config)]
        except Exception as exc:  # the plugin's own bug: say whose
            problems.append(f"model {spec.name!r} ({source}) could not check the config: "
                            f"{type(exc).__name__}: {exc}")
    return problems


def settings_problems(settings: Mapping[str, Any], registry: Registry) -> list[str]:
    """An experiment's own settings checked as a run config is (its model's check() runs
    when the values pass), for an experiment with other problems, which is not expanded:
    otherwise what check() says would show only once those are fixed."""
    try:
        return validate_run_config(canonical_config(settings, registry), registry)
    except Exception:  # values too broken to check further: already reported
        return []

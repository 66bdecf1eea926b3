"""Which runs may train together as one stack: every rule in one place.

Two checks use these rules. The planner asks ``stack_key`` (config and the model's declared
``stackable`` only, cheap, no torch: it runs under the runner's lock) which pending runs to
hand over as one unit; the trainer
asks ``why_not_stacked`` once the unit's models are built, since only a built model shows
whether a plugin's architecture fits (workbench.training.stacked_math can stack only
nn.Sequential MLPs of biased Linear and element-wise layers).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from workbench.types import config_hash

FREE_KEYS = ("lr", "epochs", "seed")  # what the runs of one stack may differ in (each seed
# keeps its own split and data order: workbench.training.stacked.MemberData)
OPTIMIZERS = ("adam", "sgd")  # the optimizers stacked_math reproduces exactly


def config_problem(config: Mapping[str, Any], models: Mapping[str, Any] | None = None
                   ) -> str | None:
    """Why a run with this config always trains alone (None: it may stack). ``models``: the
    registry's ModelSpecs, whose ``stackable`` says so for a model that never stacks.

    Dropout > 0 is never stacked: its masks come from the global RNG, and sharing them
    would change the runs' meaning."""
    spec = (models or {}).get(config.get("model"))
    if spec is not None and not spec.stackable:
        return f"model {spec.name!r} never stacks (its ModelSpec says stackable=False)"
    if float(config.get("dropout", 0.0) or 0.0) > 0:
        return "dropout > 0 (its masks are not reproduced per member)"
    if config.get("optimizer") not in OPTIMIZERS:
        return f"optimizer {config.get('optimizer')!r} has no stacked version"
    from workbench.params import optimizer_settings

    settings = sorted(optimizer_settings(config))
    if settings:  # the stacked optimizer is Adam / SGD with torch's defaults
        return (f"{', '.join(settings)} {'has' if len(settings) == 1 else 'have'} no stacked "
                "version")
    return None


def stack_key(config: Mapping[str, Any], models: Mapping[str, Any] | None = None
              ) -> str | None:
    """Runs with the same key may train as one stack; None: this run always trains alone.
    Everything but lr, epochs and seed must be equal (model and its shape keys, activation,
    batch_size, dataset, optimizer). ``models``: as for config_problem."""
    if config_problem(config, models):
        return None
    return config_hash({k: v for k, v in config.items() if k not in FREE_KEYS})


def model_problem(model: Any) -> str | None:
    """Why this built model cannot be a member of a stack (None: it can)."""
    from torch import nn

    elementwise = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.Identity)
    if not isinstance(model, nn.Sequential):
        return f"{type(model).__name__} is not an nn.Sequential MLP"
    linears = 0
    for layer in model:
        if isinstance(layer, nn.Linear):
            linears += 1
            if layer.bias is None:
                return "a Linear layer without bias"
        elif isinstance(layer, nn.Dropout):
            if layer.p > 0:  # masks from the global RNG: not reproduced per member
                return "dropout > 0"
        elif not isinstance(layer, elementwise):
            return f"layer {type(layer).__name__} is not supported in a stack"
    if linears == 0 or not isinstance(model[0], nn.Linear):
        return "the first layer is not a Linear layer"
    return None


def why_not_stacked(configs: Sequence[Mapping[str, Any]], models: Sequence[Any]) -> str | None:
    """None when these runs (their configs and built models) can train as one stack;
    otherwise why not (one line)."""
    keys = {stack_key(c) for c in configs}
    if None in keys:
        return next(filter(None, map(config_problem, configs)))
    if len(keys) > 1:
        return "the runs differ in more than " + " and ".join(FREE_KEYS)
    return next(filter(None, map(model_problem, models)), None)


def stacking_notes(runs: Sequence[Any], registry: Any) -> list[str]:
    """What --dry-run says about stacking, per experiment: runs that train alone and why,
    and runs whose callbacks forbid epoch-prefix sharing."""
    from workbench.callbacks import chosen

    notes: dict[str, list[str]] = {}
    for run in runs:
        why = config_problem(run.config, registry.models)
        if why:
            notes.setdefault(run.experiment, []).append(f"trains alone: {why}")
            continue
        whole = [n for n in chosen(run.config)
                 if n in registry.callbacks and registry.callbacks[n].uses_total_epochs]
        if whole:
            notes.setdefault(run.experiment, []).append(
                f"no epoch-prefix sharing: callback {', '.join(map(repr, whole))} depends on "
                "the total epochs")
    return [f"{exp}: {note}" for exp, lines in notes.items() for note in dict.fromkeys(lines)]

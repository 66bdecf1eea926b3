"""Run one base config once per activation function (the seed's experiment 2-2)."""

from workbench import ExperimentKind, hookimpl


def expand(base, options):
    activations = options["activations"]
    if isinstance(activations, str):
        activations = [activations]
    return [{"activation": name} for name in activations]


@hookimpl
def register_experiments(register):
    register(ExperimentKind(
        name="activation_swap", expand=expand,
        options={"activations": ["relu", "sigmoid", "tanh"]},
        description="one run per activation in `activations` (default relu, sigmoid, tanh)"))

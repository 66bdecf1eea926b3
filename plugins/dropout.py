"""Add dropout with probability p after each hidden layer (the seed's experiment 2-3)."""

from workbench import ExperimentKind, hookimpl


def expand(base, options):
    p = options["p"]
    return [{"dropout": value} for value in (p if isinstance(p, list) else [p])]


@hookimpl
def register_experiments(register):
    register(ExperimentKind(
        name="dropout", expand=expand, options={"p": [0.5]},
        description="one run per dropout probability in `p` (default 0.5), applied after "
                    "each hidden layer"))

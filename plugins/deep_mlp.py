"""An MLP with `layers` hidden layers of `hidden` units each (the seed's experiment 2-1)."""

from workbench import ModelSpec, hookimpl
from workbench.models import build_mlp


def build(config, in_features, num_classes):
    return build_mlp(in_features, [config["hidden"]] * config["layers"], num_classes,
                     config["activation"], config["dropout"])


@hookimpl
def register_models(register):
    register(ModelSpec(name="deep_mlp", build=build, params={"layers": 3},
                       description="MLP with `layers` hidden layers of `hidden` units"))

"""An MLP with `layers` hidden layers of `hidden` units each (the seed's experiment 2-1);
`activations` gives each hidden layer its own activation (the seed's future work)."""

from workbench import ModelSpec, build_mlp, hookimpl


def build(config, in_features, num_classes):
    acts = config.get("activations") or config["activation"]
    return build_mlp(in_features, [config["hidden"]] * config["layers"], num_classes, acts,
                     config["dropout"])


def check(config):
    acts = config.get("activations")
    if acts and len(acts) != config["layers"]:
        return [f"activations: got {len(acts)} ({', '.join(acts)}) for layers = "
                f"{config['layers']}; give one activation per hidden layer"]
    return []


@hookimpl
def register_models(register):
    register(ModelSpec(name="deep_mlp", build=build, params={"layers": 3, "activations": []},
                       check=check,
                       description="MLP with `layers` hidden layers of `hidden` units; "
                                   "`activations` sets one per layer"))

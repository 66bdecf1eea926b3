"""The seed's baseline: one hidden layer (784-hidden-10), activation and optional dropout."""

from workbench import ModelSpec, build_mlp, hookimpl


def build(config, in_features, num_classes):
    return build_mlp(in_features, [config["hidden"]], num_classes, config["activation"],
                     config["dropout"])


@hookimpl
def register_models(register):
    register(ModelSpec(name="baseline_mlp", build=build,
                       description="MLP with one hidden layer of `hidden` units "
                                   "(the seed's 784-100-10)"))

"""A small CNN: two 3x3 conv layers (``channels`` and twice that), each followed by the
activation and 2x2 max pooling, then a Linear head. It receives the input shape, so it works
for any (channels, height, width) a data set has."""

from workbench import ModelSpec, activation, hookimpl


def build(config, input_shape, num_classes):
    import torch.nn as nn

    c, h, w = input_shape
    width = config["channels"]
    act = config["activation"]
    return nn.Sequential(
        nn.Unflatten(1, (c, h, w)),  # rows arrive flattened: (batch, c*h*w)
        nn.Conv2d(c, width, 3, padding=1), activation(act), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), activation(act), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(config["dropout"]),
        nn.Linear(2 * width * (h // 4) * (w // 4), num_classes))


@hookimpl
def register_models(register):
    register(ModelSpec(name="small_cnn", build=build, input_shape=True, stackable=False,
                       params={"channels": 16},
                       description="two conv layers (channels, 2*channels) with max pooling, "
                                   "then a linear head"))

"""Building blocks for model plugins (torch is imported when a model is built, not before)."""

from __future__ import annotations

from typing import Any, Sequence


def activation(name: str) -> Any:
    import torch.nn as nn

    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
            "leaky_relu": nn.LeakyReLU}[name]()


def build_mlp(in_features: int, hidden: Sequence[int], num_classes: int, act: str = "relu",
              dropout: float = 0.0) -> Any:
    """Linear -> activation [-> Dropout(p)] per hidden layer, then a Linear head."""
    import torch.nn as nn

    layers: list[Any] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)

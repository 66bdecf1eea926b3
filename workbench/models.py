"""Building blocks for model plugins (torch is imported when a model is built, not before)."""

from __future__ import annotations

from typing import Any, Sequence

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "leaky_relu")


def activation(name: str) -> Any:
    import torch.nn as nn

    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
            "leaky_relu": nn.LeakyReLU}[name]()


def build_mlp(in_features: int, hidden: Sequence[int], num_classes: int,
              act: str | Sequence[str] = "relu", dropout: float = 0.0) -> Any:
    """Linear -> activation [-> Dropout(p)] per hidden layer, then a Linear head.

    ``act``: one activation for every hidden layer, or one per hidden layer."""
    import torch.nn as nn

    acts = [act] * len(hidden) if isinstance(act, str) else list(act)
    if len(acts) != len(hidden):
        raise ValueError(f"{len(acts)} activations for {len(hidden)} hidden layers; give one "
                         "per hidden layer")
    layers: list[Any] = []
    width = in_features
    for size, name in zip(hidden, acts):
        layers += [nn.Linear(width, size), activation(name)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)

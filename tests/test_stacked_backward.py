"""A stack's gradients by hand (training.stacked_backward) are bitwise autograd's: after
several optimizer steps on real digits, every parameter has the very same bits, for every
activation the models offer, deep and narrow stacks, members with their own batches, and the
short last batch of an epoch."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from workbench.models import ACTIVATIONS, build_mlp
from workbench.training.stacked_backward import by_hand, losses_and_grads, with_autograd
from workbench.training.stacked_math import StackedMLP
from workbench.training.stacked_optim import StackedOptimizer


pytestmark = pytest.mark.usefixtures("one_thread")


def train(step, split, hidden, act, kind, lrs, seeds, batches=(64, 64, 37)):
    """Steps of a stack (one member per lr; per-member batches when ``seeds`` differ)
    with ``step``; returns the losses of every step and the final parameters."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_mlp(784, hidden, 10, act))
    stack = StackedMLP(models, "cpu")
    opt = StackedOptimizer(stack, kind, lrs)
    x, y = split.x_train, split.y_train
    seen, start = [], 0
    for size in batches:
        if len(set(seeds)) == 1:
            xb, yb = x[start:start + size], y[start:start + size]
        else:  # member k gets its own rows
            xb = torch.stack([x[start + 7 * k:start + 7 * k + size] for k in range(len(seeds))])
            yb = torch.stack([y[start + 7 * k:start + 7 * k + size] for k in range(len(seeds))])
        losses, grads = step(stack, xb, yb)
        opt.step(grads)
        seen.append(losses.clone())
        start += size
    return seen, [p.detach().clone() for p in stack.params]


CASES = [(act, [40], "adam") for act in ACTIVATIONS] + [
    ("relu", [24, 16], "adam"),  # deep: gradients flow through two hidden layers
    ("tanh", [8], "adam"),  # narrower than SMALL_WIDTH: the first layer member by member
    ("sigmoid", [40], "sgd"),
]


@pytest.mark.parametrize("act,hidden,kind", CASES)
@pytest.mark.parametrize("seeds", [(3, 3, 3), (3, 4, 5)], ids=["one-batch", "own-batches"])
def test_gradients_by_hand_are_bitwise_autograds(sample_split, act, hidden, kind, seeds):
    lrs = [3e-2, 1e-3, 3e-4] if kind == "adam" else [0.1, 0.05, 0.01]
    want_losses, want = train(with_autograd, sample_split, hidden, act, kind, lrs, seeds)
    got_losses, got = train(losses_and_grads, sample_split, hidden, act, kind, lrs, seeds)
    for a, b in zip(got_losses, want_losses):
        assert torch.equal(a, b)
    for a, b in zip(got, want):
        assert torch.equal(a, b), (a - b).abs().max()
    # and the training did move the weights (a step that did nothing would also be equal)
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_mlp(784, hidden, 10, act))
    assert not torch.equal(StackedMLP(models, "cpu").params[0], got[0])


def test_a_layer_without_a_formula_here_trains_through_autograd(sample_split):
    """An in-place ReLU (autograd, whole) and a plain one (by hand) give the same step."""
    stacks = []
    for inplace in (True, False):
        torch.manual_seed(3)
        stacks.append(StackedMLP([nn.Sequential(nn.Linear(784, 32), nn.ReLU(inplace=inplace),
                                                nn.Linear(32, 10)) for _ in range(2)], "cpu"))
    assert [by_hand(s) for s in stacks] == [False, True]
    x, y = sample_split.x_train[:64], sample_split.y_train[:64]
    (losses, grads), (want_losses, want) = (losses_and_grads(s, x, y) for s in stacks)
    assert torch.equal(losses, want_losses)
    assert [len(g) for g in grads] == [2] * 4  # each parameter's gradient, member by member
    assert all(torch.equal(a, b) for ga, gb in zip(grads, want) for a, b in zip(ga, gb))
    assert all(p.grad is None for p in stacks[0].params)  # nothing left for the next step

"""One training step of a stack without autograd: losses and gradients, bitwise autograd's.

The forward pass (StackedMLP.forward with a tape) keeps what the backward needs; the backward
here calls the very ops autograd would for each layer (the formulas of torch's
derivatives.yaml, and stacked_math's own for the linear layers), in the same order, so every
gradient has the same bits. What it saves is autograd's own cost per op (building the graph,
the engine's scheduling, accumulating into ``.grad``): on a grid unit at batch 64 that was a
fifth of the step. Element-wise layers it has no formula for fall back to autograd, whole.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.training.stacked_math import (StackedMLP, batched_linear_grads,
                                             member_losses, member_targets,
                                             merged_linear_grads)

aten = torch.ops.aten

# d(layer)/d(input) given the output's gradient, the layer's input and output: as autograd
# computes it (torch/csrc/autograd/FunctionsManual + derivatives.yaml)
_BACKWARD: dict[type, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]] = {
    nn.ReLU: lambda g, inp, out, m: aten.threshold_backward(g, out, 0),
    nn.Sigmoid: lambda g, inp, out, m: aten.sigmoid_backward(g, out),
    nn.Tanh: lambda g, inp, out, m: aten.tanh_backward(g, out),
    nn.GELU: lambda g, inp, out, m: aten.gelu_backward(g, inp, approximate=m.approximate),
    nn.LeakyReLU: lambda g, inp, out, m: aten.leaky_relu_backward(g, inp, m.negative_slope,
                                                                  False),
    nn.Identity: lambda g, inp, out, m: g,
}


def by_hand(stack: StackedMLP) -> bool:
    """Whether every layer of ``stack`` has a gradient formula here (else: autograd)."""
    return all(op == "linear" or (type(op) in _BACKWARD and not getattr(op, "inplace", False))
               for op in stack.ops)


Grads = list[list[torch.Tensor]]


def losses_and_grads(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor
                     ) -> tuple[torch.Tensor, Grads]:
    """Each member's mean cross-entropy on (x, y) (shape (K,)) and the gradient of their sum
    for every parameter of ``stack``, in the order of ``stack.params``: per parameter, each
    member's part (members' graphs are disjoint, so member k's parameters get the gradient
    of its own loss), shaped as its view of the parameter (StackedMLP.member_views). By
    hand they live in the stack's GradBuffers: the next step writes over them."""
    if not by_hand(stack):
        return with_autograd(stack, x, y)
    with torch.no_grad():
        tape: list[Any] = []
        logits = stack.forward(x, tape)
        k, b, c = logits.shape
        target = member_targets(y, k)
        # member_losses' cross_entropy is log_softmax then nll_loss
        lsm = torch.log_softmax(logits.reshape(k * b, c), 1)
        losses = F.nll_loss(lsm, target, reduction="none").view(k, b).mean(1)
        # d sum / d loss_k = 1; mean's backward: 1 / b per row; nll's: minus that at target
        g = torch.zeros_like(lsm).scatter_(1, target.unsqueeze(1), _rows(k * b, b, lsm))
        g = torch._log_softmax_backward_data(g, lsm, 1, lsm.dtype).view(k, b, c)
        return losses, _backward(stack, tape, g)


@functools.lru_cache(maxsize=8)
def _minus_mean(n: int, b: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.ones(n, 1, dtype=dtype, device=device).div_(b).neg_()


def _rows(n: int, b: int, like: torch.Tensor) -> torch.Tensor:
    """-1/b, as float32 division computes it, in a column of n rows: the same every step of
    a batch size (made once; the last, shorter batch of an epoch has its own)."""
    return _minus_mean(n, b, like.dtype, like.device)


def with_autograd(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, Grads]:
    """``losses_and_grads`` through autograd (the reference the hand-written path equals)."""
    losses = member_losses(stack.forward(x), y)
    losses.sum().backward()
    grads = [stack.member_views(p.grad, i) for i, p in enumerate(stack.params)]
    for p in stack.params:
        p.grad = None
    return losses.detach(), grads


def _backward(stack: StackedMLP, tape: Sequence[Any], g: torch.Tensor) -> Grads:
    grads: Grads = [[] for _ in stack.params]
    buffers = stack.grad_buffers()
    p = len(stack.params)
    for entry in reversed(tape):
        if entry[0] == "batched":
            _, h, w = entry
            p -= 2
            first = p == 0  # the first layer's input is the data: no gradient wanted
            out, (grads[p], grads[p + 1]) = buffers.batched(p)
            g = batched_linear_grads(g, h, w, not first, out)[0]  # type: ignore[assignment]
        elif entry[0] == "merged":
            x = entry[1]
            p -= 2
            out, (grads[p], grads[p + 1]) = buffers.merged(p)
            # the forward's view / transpose / contiguous, undone as autograd does: a copy
            merged_linear_grads(g.transpose(0, 1).reshape(len(x), -1), x, stack.k, out)
        else:
            module, inp, out = entry
            g = _BACKWARD[type(module)](g, inp, out, module)
    return grads

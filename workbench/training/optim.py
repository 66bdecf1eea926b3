"""Adam as torch.optim.Adam(fused=True) computes it, called directly: one pass over each
tensor (torch's fused kernel) and none of torch.optim's per-step bookkeeping, which cost
a small MLP on CPU about a sixth of its step. Lone runs (``FusedAdam``) and stacks
(``stacked_optim.StackedOptimizer``, per member learning rate) make the same call, so a
member's update is bitwise a lone run's."""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import torch


def fused_adam(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
               exp_avg: Sequence[torch.Tensor], exp_avg_sq: Sequence[torch.Tensor],
               step: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
               eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """One Adam update of ``params`` in place (``step``: the step count after this one, a
    float32 tensor on their device, as torch.optim keeps it)."""
    torch._fused_adam_(list(params), list(grads), list(exp_avg), list(exp_avg_sq), [],
                       [step] * len(params), lr=lr, beta1=betas[0], beta2=betas[1],
                       weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)


@functools.lru_cache(maxsize=4)
def _one(device: torch.device) -> torch.Tensor:
    return torch.ones((), dtype=torch.float32, device=device)


def count_step(step: torch.Tensor) -> None:
    """``step += 1`` (the float32 count torch.optim keeps) with a one made once per device,
    not a number wrapped in a new tensor every step."""
    step.add_(_one(step.device))


class FusedAdam:
    """The part of torch.optim.Adam training uses: ``param_groups[0]["lr"]`` (schedules set
    it), ``zero_grad()`` and ``step()``; numbers bitwise those of Adam(fused=True)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"lr": float(lr)}]
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_t = torch.zeros((), dtype=torch.float32, device=self.params[0].device)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        count_step(self.step_t)
        fused_adam([self.params[i] for i in live], [self.params[i].grad for i in live],
                   [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live],
                   self.step_t, self.param_groups[0]["lr"], self.betas, self.eps,
                   self.weight_decay)

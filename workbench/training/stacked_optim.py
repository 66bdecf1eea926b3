"""Optimizers for a stack (workbench.training.stacked_math.StackedMLP) with a learning rate per
member, whose float32 math is that of torch.optim.Adam / SGD for each member."""

from __future__ import annotations

from typing import Sequence

import torch

from workbench.stacking import OPTIMIZERS
from workbench.training.optim import count_step, fused_adam
from workbench.training.stacked_math import StackedMLP, select_members


class StackedOptimizer:
    """Adam (``optim.fused_adam``, torch.optim.Adam(fused=True)'s kernel) / SGD (torch.optim's
    single-tensor CPU op), defaults otherwise, with a learning rate per member.

    Each member's update is bitwise the update a lone run's optimizer makes
    (``loop.make_optimizer``): Adam runs the fused kernel on each member's slices (views of
    the stacked tensors, of the same shapes as a lone run's parameters), once per learning
    rate; SGD runs torch.optim's op on each member's slice.
    """

    def __init__(self, model: StackedMLP, kind: str, lrs: Sequence[float],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer {kind!r}: stacked training supports "
                             f"{' and '.join(OPTIMIZERS)}")
        self.model, self.kind, self.lrs = model, kind, [float(v) for v in lrs]
        self.betas, self.eps = (betas[0], betas[1]), eps
        adam = kind == "adam"
        self.exp_avg = [torch.zeros_like(p) for p in model.params] if adam else []
        self.exp_avg_sq = [torch.zeros_like(p) for p in model.params] if adam else []
        # every member has taken every step: one count, kept as torch.optim keeps it
        self.step_t = torch.zeros((), dtype=torch.float32, device=model.params[0].device)
        self._views()

    def _views(self) -> None:
        m = self.model
        self.p_views = [m.member_views(p, i) for i, p in enumerate(m.params)]
        self.m_views = [m.member_views(t, i) for i, t in enumerate(self.exp_avg)]
        self.v_views = [m.member_views(t, i) for i, t in enumerate(self.exp_avg_sq)]
        self._plan: tuple[tuple, list] = ((), [])  # see _groups

    def select(self, keep: Sequence[int]) -> None:
        k, w0 = self.model.k, self.model.widths[0]
        if self.kind == "adam":
            self.exp_avg = [t.requires_grad_(False) for t in select_members(self.exp_avg, keep, k, w0)]
            self.exp_avg_sq = [t.requires_grad_(False)
                               for t in select_members(self.exp_avg_sq, keep, k, w0)]
        self.lrs = [self.lrs[i] for i in keep]
        self.model.select(keep)
        self._views()

    @torch.no_grad()
    def step(self, grads: Sequence[Sequence[torch.Tensor]]) -> None:
        """One update from ``grads``: per parameter, each member's gradient (of the shape
        of its view of the parameter), as stacked_backward.losses_and_grads gives them."""
        if self.kind == "sgd":  # torch.optim.SGD: param.add_(grad, alpha=-lr)
            for i, views in enumerate(self.p_views):
                for pk, gk, lr in zip(views, grads[i], self.lrs):
                    pk.add_(gk, alpha=-lr)
            return
        count_step(self.step_t)
        n = len(self.p_views)
        for lr, ks, p_, m_, v_ in self._groups():
            fused_adam(p_, [grads[i][k] for k in ks for i in range(n)], m_, v_,
                       self.step_t, lr, self.betas, self.eps)

    def _groups(self) -> list[tuple[float, list[int], list, list, list]]:
        """Per learning rate: its members, and their parameters' and moments' views (made
        again only when the learning rates change: schedules, a member dropped)."""
        key = tuple(self.lrs)
        if self._plan[0] != key:
            members: dict[float, list[int]] = {}  # lr -> the members that have it
            for k, lr in enumerate(self.lrs):
                members.setdefault(lr, []).append(k)
            tensors = range(len(self.p_views))
            self._plan = (key, [(lr, ks, [self.p_views[i][k] for k in ks for i in tensors],
                                 [self.m_views[i][k] for k in ks for i in tensors],
                                 [self.v_views[i][k] for k in ks for i in tensors])
                                for lr, ks in members.items()])
        return self._plan[1]

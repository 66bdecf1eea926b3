"""The arithmetic of stacked training: K same-shape MLPs as one batched model (the optimizers
with per-member learning rates: workbench.training.stacked_optim).

Layout (why it is fast on CPU): when every member sees the same batch (same seed => same
data order), the first layer of all K members is ONE matmul, x @ [W1_1; ...; W1_K]^T, with
nn.Linear's own op (addmm) and gradient; later layers are per-member (baddbmm). One batch
gather, one big sgemm, K small ones, instead of K of everything. Members with different seeds
(repeats) each get their own batch, x of shape (K, B, in), and the first layer is per-member
too (the same baddbmm, over views of the same merged weights).

No Textual, no store: plain tensors in, tensors out. workbench.training.stacked drives it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


SMALL_WIDTH = 16  # first layers narrower than this are multiplied member by member


def merged_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """The K first layers as one addmm: x (B, in) -> (B, K*out)."""
    width = len(b) // k
    if width < SMALL_WIDTH:  # BLAS takes another path for so few columns: per member
        return torch.cat([torch.addmm(b[i * width:(i + 1) * width], x,
                                      w[i * width:(i + 1) * width].t()) for i in range(k)], 1)
    return torch.addmm(b, x, w.t())


def merged_linear_grads(g: torch.Tensor, x: torch.Tensor, k: int,
                        out: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias gradients of ``merged_linear`` as nn.Linear's would be, member by
    member where the rounding depends on it (the bias sums); into ``out`` (weight, bias)
    when given (a GradBuffers' tensors: the same bits, no allocation)."""
    width = g.shape[1] // k
    gw, gb = out if out is not None else (None, g.new_empty(g.shape[1]))
    for i in range(k):
        torch.sum(g[:, i * width:(i + 1) * width], 0, out=gb[i * width:(i + 1) * width])
    if width < SMALL_WIDTH:  # fresh (aligned) products, then copied: as nn.Linear's
        parts = [g[:, i * width:(i + 1) * width].contiguous().t().mm(x) for i in range(k)]
        gw = torch.cat(parts) if gw is None else torch.cat(parts, out=gw)
    else:
        gw = g.t().mm(x) if gw is None else torch.mm(g.t(), x, out=gw)
    return gw, gb


def batched_linear_grads(g: torch.Tensor, h: torch.Tensor, w: torch.Tensor, need_input: bool,
                         out: tuple[Sequence[torch.Tensor], torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor | None, Any, torch.Tensor]:
    """Gradients of h[k] @ w[k].T + b[k] (input's when asked, weight's, bias's); the weight's
    per member with mm, as nn.Linear's backward does. Into ``out`` (one weight tensor per
    member, the biases' (K, 1, out)) when given; the weight's is then that list."""
    gh = torch.bmm(g, w) if need_input else None
    if out is not None:  # each member's own aligned tensor, as a fresh result would be
        for i, gw_i in enumerate(out[0]):
            torch.mm(g[i].t(), h[i], out=gw_i)
        return gh, out[0], torch.sum(g, 1, keepdim=True, out=out[1])
    # fresh (aligned) results, then stacked: gemm output alignment changes its rounding
    gw = torch.stack([torch.mm(g[i].t(), h[i]) for i in range(len(w))])
    return gh, gw, g.sum(1, keepdim=True)


class _MergedLinear(torch.autograd.Function):
    """``merged_linear`` for autograd."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, k: int
                ) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.k = k
        return merged_linear(x, w, b, k)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        (x,) = ctx.saved_tensors
        return None, *merged_linear_grads(g, x, ctx.k), None


class _BatchedLinear(torch.autograd.Function):
    """Member k: h[k] @ w[k].T + b[k] (baddbmm over the transposed view rounds exactly as
    addmm does)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        return torch.baddbmm(b, h, w.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        h, w = ctx.saved_tensors
        return batched_linear_grads(g, h, w, ctx.needs_input_grad[0])


def _batched(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, tape: list | None
             ) -> torch.Tensor:
    if tape is None:
        return _BatchedLinear.apply(h, w, b)
    tape.append(("batched", h, w))
    return torch.baddbmm(b, h, w.transpose(1, 2))


def _signature(model: nn.Module) -> list[Any]:
    return [(type(m).__name__, tuple(p.shape for p in m.parameters()), repr(m)) for m in model]


class StackedMLP:
    """K same-shape ``nn.Sequential`` MLPs held as stacked leaf tensors."""

    def __init__(self, models: Sequence[nn.Module], device: str | torch.device):
        first = _signature(models[0])
        for m in models[1:]:
            if _signature(m) != first:
                raise ValueError("stacked models must have the same layers and shapes")
        self.k = len(models)
        self.ops: list[Any] = []  # "linear" or an element-wise module, in order
        self.params: list[torch.Tensor] = []  # W, b per Linear (first one merged, 2-D)
        self.widths: list[int] = []  # out features per Linear
        self._grads: GradBuffers | None = None
        first_linear = True
        for i, layer in enumerate(models[0]):
            if isinstance(layer, nn.Linear):
                ws = [m[i].weight.detach() for m in models]
                bs = [m[i].bias.detach() for m in models]
                if first_linear:  # (K*out, in) and (K*out,): one addmm for all members
                    w, b = torch.cat(ws), torch.cat(bs)
                    first_linear = False
                else:  # (K, out, in) as nn.Linear; baddbmm on its transpose (that order
                    w = torch.stack(ws)  # rounds exactly as addmm does: checked)
                    b = torch.stack(bs).unsqueeze(1)
                self.params += [w.to(device).clone().requires_grad_(),
                                b.to(device).clone().requires_grad_()]
                self.ops.append("linear")
                self.widths.append(layer.out_features)
            elif isinstance(layer, nn.Dropout):
                continue  # p == 0 (checked by stackable): the identity
            else:
                self.ops.append(layer)

    def grad_buffers(self) -> "GradBuffers":
        """Where stacked_backward writes this stack's gradients (made once; again after
        ``select``)."""
        if self._grads is None:
            self._grads = GradBuffers(self)
        return self._grads

    def member_views(self, t: torch.Tensor, p: int) -> list[torch.Tensor]:
        """Member k's part of parameter ``p`` (or of a tensor shaped like it), as views."""
        if p < 2:  # merged first layer: member k owns rows k*out .. (k+1)*out
            n = self.widths[0]
            return [t[k * n:(k + 1) * n] for k in range(self.k)]
        return [t[k] for k in range(self.k)]

    def forward(self, x: torch.Tensor, tape: list | None = None) -> torch.Tensor:
        """x (B, in), one batch for all, or (K, B, in), one per member -> logits (K, B,
        classes). With a ``tape`` (a list), no autograd graph is built: the pass appends what
        workbench.training.stacked_backward needs to compute the gradients by hand."""
        h: torch.Tensor | None = None
        p = 0
        for op in self.ops:
            if op == "linear":
                w, b = self.params[p], self.params[p + 1]
                p += 2
                if h is None and x.dim() == 3:  # member k's rows of the merged weights
                    n = self.widths[0]
                    h = _batched(x, w.view(self.k, n, -1), b.view(self.k, 1, n), tape)
                elif h is None:
                    if tape is None:
                        out = _MergedLinear.apply(x, w, b, self.k)  # K*out columns
                    else:
                        out = merged_linear(x, w, b, self.k)
                        tape.append(("merged", x))
                    # contiguous: member k's block must start aligned, as a lone run's does
                    h = out.view(len(x), self.k, -1).transpose(0, 1).contiguous()
                else:
                    h = _batched(h, w, b, tape)
            else:
                out = op(h)
                if tape is not None:
                    tape.append((op, h, out))
                h = out
        return h

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (a member that diverged is dropped)."""
        self.params = select_members(self.params, keep, self.k, self.widths[0])
        self.k = len(keep)
        self._grads = None


Made = tuple[tuple[Any, torch.Tensor], tuple[list[torch.Tensor], list[torch.Tensor]]]


class GradBuffers:
    """A stack's gradients, written in place each step by stacked_backward, and each
    member's part of them (what the optimizer updates that member with), viewed once rather
    than every step. A layer in the batched form has one weight-gradient tensor per member:
    a gemm's rounding depends on where its output starts, and a lone run's starts aligned."""

    def __init__(self, model: StackedMLP):
        self.model = model
        self._made: dict[tuple[str, int], Made] = {}

    def merged(self, p: int) -> Made:
        """((weight, bias) to write, (their member views)) of the merged first layer."""
        if ("merged", p) not in self._made:
            m = self.model
            w, b = (torch.empty(t.shape, dtype=t.dtype, device=t.device)
                    for t in m.params[p:p + 2])
            self._made["merged", p] = ((w, b), (m.member_views(w, p),
                                                m.member_views(b, p + 1)))
        return self._made["merged", p]

    def batched(self, p: int) -> Made:
        """((the members' weights, the biases (K, 1, out)) to write, (member views)) of
        linear layer ``p`` in the batched form (a later layer; the first with own batches)."""
        if ("batched", p) not in self._made:
            m = self.model
            shapes = [v.shape for v in m.member_views(m.params[p + 1], p + 1)]
            ws = [torch.empty(v.shape, dtype=v.dtype, device=v.device)
                  for v in m.member_views(m.params[p], p)]
            b = m.params[p + 1].new_empty(m.k, 1, ws[0].shape[0], requires_grad=False)
            self._made["batched", p] = ((ws, b), (ws, [b[k].view(shapes[k])
                                                       for k in range(m.k)]))
        return self._made["batched", p]


def select_members(tensors: list[torch.Tensor], keep: Sequence[int], k: int, width0: int
            ) -> list[torch.Tensor]:
    index = torch.as_tensor(list(keep), device=tensors[0].device)
    out = []
    for i, t in enumerate(tensors):
        with torch.no_grad():
            if i < 2:
                t = t.view(k, width0, *t.shape[1:])[index].reshape(-1, *t.shape[1:])
            else:
                t = t[index]
        out.append(t.contiguous().requires_grad_(tensors[i].requires_grad))
    return out


def member_targets(y: torch.Tensor, k: int) -> torch.Tensor:
    """The labels of K members' rows, (K*B,): y (K, B) per member, or (B,) shared by all
    (expanded, then copied once: what y.repeat(k) gives, at a fifth of its ops)."""
    return y.reshape(-1) if y.dim() == 2 else y.expand(k, len(y)).reshape(-1)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member: logits (K, B, C), y (B,) shared or (K, B) -> (K,)."""
    k, b, c = logits.shape
    target = member_targets(y, k)
    per = F.cross_entropy(logits.reshape(k * b, c), target, reduction="none")
    return per.view(k, b).mean(1)


def evaluate_stacked(model: StackedMLP, x: torch.Tensor | Sequence[torch.Tensor],
                     y: torch.Tensor | Sequence[torch.Tensor], chunk: int
                     ) -> tuple[list[float], list[float], torch.Tensor]:
    """Per member: mean loss, accuracy, predictions (K, N) — workbench.training.evaluate's
    numbers for each member. x, y: one set for all members, or a list with one per member
    (members of different seeds: their own validation set and normalisation)."""
    apart = isinstance(x, (list, tuple))
    n = len(x[0]) if apart else len(x)
    device = x[0].device if apart else x.device
    total = torch.zeros(model.k, device=device)
    preds = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            if apart:
                out = model.forward(torch.stack([xk[start:start + chunk] for xk in x]))
                yy = torch.stack([yk[start:start + chunk] for yk in y])
            else:
                out = model.forward(x[start:start + chunk])
                yy = y[start:start + chunk]
            k, b, c = out.shape
            target = member_targets(yy, k)
            total += F.cross_entropy(out.reshape(k * b, c), target,
                                     reduction="none").view(k, b).sum(1)
            preds.append(out.argmax(2))
    pred = torch.cat(preds, 1)
    labels = torch.stack(list(y)) if apart else y.unsqueeze(0)
    acc = (pred == labels).float().mean(1)
    return [float(v) / n for v in total.cpu()], [float(a) for a in acc.cpu()], pred

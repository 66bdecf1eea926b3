"""Train a group of compatible runs at once: one batched model, per-run results.

A group (formed by workbench.plan.unit_grouper, checked by workbench.stacking) holds runs whose configs are equal except for
``lr``, ``epochs`` and ``seed``. Runs that are equal except for ``epochs`` (and build the very
same initial weights) form one *stream*: it trains once, to the longest of them, and each shorter
run is finished at its own epoch (exact: the data order of epoch k does not depend on the
total, and nothing else reads ``epochs`` unless a training callback says it does, as a
cosine schedule does: then only runs with equal ``epochs`` share a stream). The streams train
together as one StackedMLP, each with its own learning rate and optimizer state, and its own
training callbacks (workbench.callbacks): per-member learning rates set each epoch, and a
stream whose callback asks to stop is finished there (done, stopped early) and dropped.
Streams of different seeds (repeats) keep their own split and data order (MemberData): each
member is fed the batch it would get trained alone.

Every run still gets its own callbacks (so its own events, store row and plugin hooks), the
same numbers it would get trained alone (same init: torch.manual_seed(seed) then the model's
build; same data order: training.epoch_generator), its own divergence (a stream whose loss
goes NaN/inf is recorded DIVERGED and dropped from the stack; the others go on unaffected)
and cancellation within one batch.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from workbench.callbacks import RunCallbacks, make_run_callbacks, uses_total_epochs
from workbench.training.stacked_backward import losses_and_grads
from workbench.training.stacked_math import StackedMLP, evaluate_stacked
from workbench.training.stacked_optim import StackedOptimizer
from workbench.training import (EVAL_BATCH, PROGRESS_SECONDS, confusion_matrix,
                                epoch_generator, stop_note)
from workbench.types import CANCELLED, DIVERGED, DONE, EpochMetrics, RunResult

@dataclass
class Stream:
    """Runs that differ only in ``epochs``: trained once, to the longest."""

    lr: float
    runs: list[int]  # indexes into the group's configs, shortest first
    seed: int  # its split and data order
    epochs: int  # the longest
    history: list[EpochMetrics] = field(default_factory=list)
    best: float = -1.0
    best_epoch: int = 0
    open: list[int] = field(default_factory=list)  # runs not finished yet
    shaping: RunCallbacks | None = None  # its training callbacks (one set per stream)
    lr_now: float = 0.0  # the learning rate of the epoch in progress


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def make_streams(configs: Sequence[Mapping[str, Any]], models: Sequence[torch.nn.Module],
                 kinds: Mapping[str, Any] | None = None) -> list[Stream]:
    """Prefix sharing, only where exact: same lr, same seed and the same initial weights, and
    the same ``epochs`` when a training callback (``kinds``: name -> CallbackKind) depends
    on it."""
    kinds = kinds or {}
    streams: list[Stream] = []
    for i, config in enumerate(configs):
        lr, seed = float(config["lr"]), int(config["seed"])
        whole = uses_total_epochs(kinds, config)
        for s in streams:
            if whole and int(configs[s.runs[0]]["epochs"]) != int(config["epochs"]):
                continue
            if (s.lr, s.seed) == (lr, seed) and _same_weights(models[s.runs[0]], models[i]):
                s.runs.append(i)
                break
        else:
            streams.append(Stream(lr=lr, runs=[i], seed=seed, epochs=0))
    for s in streams:
        s.runs.sort(key=lambda i: int(configs[i]["epochs"]))
        s.epochs = int(configs[s.runs[-1]]["epochs"])
        s.open = list(s.runs)
        s.lr_now = s.lr
        s.shaping = make_run_callbacks(kinds, configs[s.runs[-1]])
    return streams


class MemberData:
    """What each member of a stack trains and is evaluated on: the split and the data order
    (one generator, one randperm per epoch) of its seed, as training.train uses them.

    While the members have one seed, they share one batch (B, in); with several, each gets
    its own (K, B, in), gathered once per seed.
    """

    def __init__(self, splits: Mapping[int, Any]):
        self.splits = dict(splits)
        self.gens = {seed: epoch_generator(seed) for seed in self.splits}
        self.n = len(next(iter(self.splits.values())).x_train)
        self.perms: dict[int, torch.Tensor] = {}

    def new_epoch(self, device: Any) -> None:
        for seed, gen in self.gens.items():
            self.perms[seed] = torch.randperm(self.n, generator=gen).to(device)

    def batch(self, seeds: Sequence[int], start: int, size: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``start // size`` of this epoch for members with ``seeds`` (stack order)."""
        rows = {}
        for seed in dict.fromkeys(seeds):
            split, idx = self.splits[seed], self.perms[seed][start:start + size]
            # index_select: the same rows as x[idx], about half its cost per batch
            rows[seed] = (split.x_train.index_select(0, idx), split.y_train.index_select(0, idx))
        if len(rows) == 1:
            return rows[seeds[0]]
        return (torch.stack([rows[s][0] for s in seeds]),
                torch.stack([rows[s][1] for s in seeds]))

    def evaluation(self, seeds: Sequence[int], part: str) -> tuple[Any, Any]:
        """(x, y) of ``part`` ("val" or "test"): shared tensors for one seed, else lists."""
        pairs = [(getattr(self.splits[s], f"x_{part}"), getattr(self.splits[s], f"y_{part}"))
                 for s in seeds]
        if len(set(seeds)) == 1:
            return pairs[0]
        return [x for x, _ in pairs], [y for _, y in pairs]


Finish = Callable[[int, RunResult], None]


def train_stacked(configs: Sequence[Mapping[str, Any]], models: Sequence[torch.nn.Module],
                  split: Any, on_epoch: Callable[[int, EpochMetrics], None],
                  on_finish: Finish,
                  on_batch: Callable[[int, int, int, int, float], None] = lambda *a: None,
                  cancel: threading.Event | None = None,
                  kinds: Mapping[str, Any] | None = None,
                  cancelled: Callable[[int], bool] | None = None) -> None:
    """Train runs ``configs`` (models built with their seeds) as one stack on ``split``: one
    Split when they share a seed, else a mapping seed -> that seed's Split.

    Callbacks get the run's index in ``configs``: on_epoch(i, metrics) per run and epoch,
    on_batch(i, epoch, batch, batches, loss) a few times a second, on_finish(i, result)
    exactly once per run, as soon as that run is over (a shorter run at its epoch).
    ``kinds``: the training-callback kinds the configs may name (name -> CallbackKind).
    ``cancel`` stops them all; ``cancelled(i)`` true stops run i alone (checked with each
    progress report, a few times a second), the others train on.
    """
    first = configs[0]
    data = MemberData(split if isinstance(split, Mapping) else {int(first["seed"]): split})
    missing = sorted({int(c["seed"]) for c in configs} - set(data.splits))
    if missing:  # training a seed's run on another seed's split would be silently wrong
        raise ValueError(f"train_stacked: no split for seed(s) {missing}; pass a mapping "
                         "seed -> Split covering every run's seed")
    split = data.splits[int(first["seed"])]
    device = split.device
    streams = make_streams(configs, models, kinds)
    stack = StackedMLP([models[s.runs[0]] for s in streams], device)
    opt = StackedOptimizer(stack, first["optimizer"], [s.lr for s in streams])
    active = list(streams)  # in stack order
    n, bs = data.n, int(first["batch_size"])
    batches = math.ceil(n / bs)
    started = time.perf_counter()

    def result(s: Stream, i: int, status: str, **kw: Any) -> RunResult:
        done = s.history[:int(configs[i]["epochs"])] if status == DONE else s.history
        return RunResult(status=status, epochs=tuple(done), device=device,
                         dataset=split.raw.identity,
                         train_seconds=time.perf_counter() - started,
                         stack_size=len(configs), **kw)

    def close(s: Stream, status: str, error: str) -> None:
        for i in s.open:
            on_finish(i, result(s, i, status, error=error))
        s.open = []

    def drop(bad: list[int], why: Callable[[Stream], str]) -> None:
        nonlocal active
        for pos in bad:
            close(active[pos], DIVERGED, why(active[pos]))
        keep = [p for p in range(len(active)) if p not in bad]
        if keep:
            opt.select(keep)
        active = [active[p] for p in keep]

    last_report = time.perf_counter()  # across epochs, as in training.train
    for epoch in range(1, max(s.epochs for s in streams) + 1):
        if not active:
            break
        for p, s in enumerate(active):  # per-member learning rates for this epoch
            s.lr_now = s.shaping.epoch_start(epoch) if s.shaping else s.lr
            opt.lrs[p] = s.lr_now
        data.new_epoch(device)
        total = torch.zeros(len(active), device=device)
        b = 0
        while b < batches:
            if cancel is not None and cancel.is_set():
                for s in active:
                    close(s, CANCELLED, f"cancelled in epoch {epoch}, batch {b + 1}/{batches}")
                return
            xb, yb = data.batch([s.seed for s in active], b * bs, bs)
            losses, grads = losses_and_grads(stack, xb, yb)
            opt.step(grads)
            total += losses * yb.shape[-1]
            b += 1
            now = time.perf_counter()
            if now - last_report >= PROGRESS_SECONDS:
                last_report = now
                if cancelled is not None:
                    keep = _close_cancelled(active, cancelled, lambda s, i, e=epoch, bb=b: (
                        on_finish(i, result(s, i, CANCELLED, error=f"cancelled in epoch {e}, "
                                                                   f"batch {bb}/{batches}"))))
                    if len(keep) < len(active):
                        if keep:
                            opt.select(keep)
                            total = total[keep]
                        active = [active[p] for p in keep]
                        if not active:
                            break
                        continue
                values = losses.detach().cpu().tolist()
                bad = [p for p, v in enumerate(values) if not math.isfinite(v)]
                if bad:
                    drop(bad, lambda s, v=values, e=epoch, bb=b: (
                        f"loss became {v[active.index(s)]} in epoch {e}, batch {bb}/{batches} "
                        f"(lr {s.lr_now:g})"))
                    if not active:
                        break
                    total = total[[p for p in range(len(values)) if p not in bad]]
                    continue
                for s, v in zip(active, values):
                    for i in s.open:
                        on_batch(i, epoch, b, batches, v)
        if not active:
            break
        train_losses = [v / n for v in total.cpu().tolist()]
        bad = [p for p, v in enumerate(train_losses) if not math.isfinite(v)]
        if bad:
            drop(bad, lambda s, v=train_losses, e=epoch: (
                f"train loss became {v[active.index(s)]} in epoch {e} (lr {s.lr_now:g})"))
            train_losses = [v for p, v in enumerate(train_losses) if p not in bad]
            if not active:
                break
        val_loss, val_acc, _ = evaluate_stacked(
            stack, *data.evaluation([s.seed for s in active], "val"), EVAL_BATCH)
        stops: dict[int, str] = {}  # stream position -> why its callbacks stop it here
        for p, s in enumerate(active):
            if val_acc[p] > s.best:
                s.best, s.best_epoch = val_acc[p], epoch
            metrics = EpochMetrics(epoch=epoch, train_loss=train_losses[p],
                                   val_loss=val_loss[p], val_acc=val_acc[p],
                                   best_val_acc=s.best, best_epoch=s.best_epoch,
                                   seconds=time.perf_counter() - started, lr=s.lr_now)
            s.history.append(metrics)
            for i in s.open:
                on_epoch(i, metrics)
            why = s.shaping.epoch_end(metrics) if s.shaping else None
            if why:
                stops[p] = why
        _finish_due(active, configs, epoch, stack, data, result, on_finish, stops)
        keep = [p for p, s in enumerate(active) if s.open]
        if len(keep) < len(active) and keep:
            opt.select(keep)
        active = [active[p] for p in keep]


def _close_cancelled(active: list[Stream], cancelled: Callable[[int], bool],
                     close: Callable[[Stream, int], None]) -> list[int]:
    """Close every cancelled run; returns the positions of the streams that still have
    runs (a stream shared by epoch-prefix runs trains on for the ones not cancelled)."""
    for s in active:
        for i in [i for i in s.open if cancelled(i)]:
            s.open.remove(i)
            close(s, i)
    return [p for p, s in enumerate(active) if s.open]


def _finish_due(active: list[Stream], configs: Sequence[Mapping[str, Any]], epoch: int,
                stack: StackedMLP, data: MemberData, result: Callable[..., RunResult],
                on_finish: Finish, stops: Mapping[int, str]) -> None:
    """Finish every run whose last epoch this was, and every run of a stream its callbacks
    stop here (``stops``: position -> why): test loss/acc and confusion matrix of its
    stream's weights right now."""
    due = [p for p, s in enumerate(active)
           if p in stops or any(int(configs[i]["epochs"]) == epoch for i in s.open)]
    if not due:
        return
    test_loss, test_acc, pred = evaluate_stacked(
        stack, *data.evaluation([s.seed for s in active], "test"), EVAL_BATCH)
    for p in due:
        s = active[p]
        split = data.splits[s.seed]
        confusion = confusion_matrix(split.y_test, pred[p], split.num_classes)
        predictions = pred[p].to(torch.uint8).cpu().numpy().tobytes()
        for i in [i for i in s.open if int(configs[i]["epochs"]) == epoch or p in stops]:
            s.open.remove(i)
            total = int(configs[i]["epochs"])
            note = stop_note(epoch, total, stops[p]) if p in stops and epoch < total else None
            on_finish(i, result(s, i, DONE, test_acc=test_acc[p], test_loss=test_loss[p],
                                confusion=confusion, predictions=predictions,
                                stopped_early=note))

"""Train a group of compatible runs at once: one batched model, per-run results.

A group (formed by workbench.plan.unit_grouper) holds runs whose configs are equal except for
``lr``, ``epochs`` and ``seed``. Runs that are equal except for ``epochs`` (and build the very
same initial weights) form one *stream*: it trains once, to the longest of them, and each shorter
run is finished at its own epoch (exact: the data order of epoch k does not depend on the
total, the learning rate is constant, nothing else reads ``epochs``). The streams train
together as one StackedMLP, each with its own learning rate and optimizer state. Streams of
different seeds (repeats) keep their own split and data order (MemberData): each member is
fed the batch it would get trained alone.

Every run still gets its own RunStarted / EpochEnded / RunFinished events, store row and
plugin hooks (through its own RunRecorder), the same numbers it would get trained alone
(same init: torch.manual_seed(seed) then the model's build; same data order:
training.epoch_generator), its own divergence (a stream whose loss goes NaN/inf is recorded
DIVERGED and dropped from the stack; the others go on unaffected) and cancellation within
one batch.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from workbench.stacked_math import (StackedMLP, StackedOptimizer, evaluate_stacked,
                                    member_losses, stackable)
from workbench.training import (EVAL_BATCH, PROGRESS_SECONDS, confusion_matrix,
                                epoch_generator)
from workbench.types import CANCELLED, DIVERGED, DONE, EpochMetrics, RunResult, RunSpec

# Config keys the runs of one group may differ in (everything else must be equal).
FREE_KEYS = ("lr", "epochs", "seed")


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


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def make_streams(configs: Sequence[Mapping[str, Any]], models: Sequence[torch.nn.Module]
                 ) -> list[Stream]:
    """Prefix sharing, only where exact: same lr, same seed and the same initial weights."""
    streams: list[Stream] = []
    for i, config in enumerate(configs):
        lr, seed = float(config["lr"]), int(config["seed"])
        for s in streams:
            if (s.lr, s.seed) == (lr, seed) and _same_weights(models[s.runs[0]], models[i]):
                s.runs.append(i)
                break
        else:
            streams.append(Stream(lr=lr, runs=[i], seed=seed, epochs=0))
    for s in streams:
        s.runs.sort(key=lambda i: int(configs[i]["epochs"]))
        s.epochs = int(configs[s.runs[-1]]["epochs"])
        s.open = list(s.runs)
    return streams


def check_group(configs: Sequence[Mapping[str, Any]], models: Sequence[torch.nn.Module]
                ) -> str | None:
    """None when these runs can train stacked; otherwise why not (one line)."""
    rest = [{k: v for k, v in c.items() if k not in FREE_KEYS} for c in configs]
    if any(r != rest[0] for r in rest[1:]):
        return "the runs differ in more than lr, epochs and seed"
    if configs[0]["optimizer"] not in ("adam", "sgd"):
        return f"optimizer {configs[0]['optimizer']!r} has no stacked version"
    for model in models:
        why = stackable(model)
        if why:
            return why
    return None


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
            rows[seed] = (split.x_train[idx], split.y_train[idx])
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
                  cancelled: Callable[[int], bool] | None = None) -> None:
    """Train runs ``configs`` (models built with their seeds) as one stack on ``split``: one
    Split when they share a seed, else a mapping seed -> that seed's Split.

    Callbacks get the run's index in ``configs``: on_epoch(i, metrics) per run and epoch,
    on_batch(i, epoch, batch, batches, loss) a few times a second, on_finish(i, result)
    exactly once per run, as soon as that run is over (a shorter run at its epoch).
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
    streams = make_streams(configs, models)
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
                         train_seconds=time.perf_counter() - started, **kw)

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
        data.new_epoch(device)
        total = torch.zeros(len(active), device=device)
        b = 0
        while b < batches:
            if cancel is not None and cancel.is_set():
                for s in active:
                    close(s, CANCELLED, f"cancelled in epoch {epoch}, batch {b + 1}/{batches}")
                return
            xb, yb = data.batch([s.seed for s in active], b * bs, bs)
            losses = member_losses(stack.forward(xb), yb)
            losses.sum().backward()  # members' graphs are disjoint: d(sum)/d(loss_k) = 1
            opt.step()
            total += losses.detach() * yb.shape[-1]
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
                        f"(lr {s.lr:g})"))
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
                f"train loss became {v[active.index(s)]} in epoch {e} (lr {s.lr:g})"))
            train_losses = [v for p, v in enumerate(train_losses) if p not in bad]
            if not active:
                break
        val_loss, val_acc, _ = evaluate_stacked(
            stack, *data.evaluation([s.seed for s in active], "val"), EVAL_BATCH)
        for p, s in enumerate(active):
            if val_acc[p] > s.best:
                s.best, s.best_epoch = val_acc[p], epoch
            metrics = EpochMetrics(epoch=epoch, train_loss=train_losses[p],
                                   val_loss=val_loss[p], val_acc=val_acc[p],
                                   best_val_acc=s.best, best_epoch=s.best_epoch,
                                   seconds=time.perf_counter() - started)
            s.history.append(metrics)
            for i in s.open:
                on_epoch(i, metrics)
        _finish_due(active, configs, epoch, stack, data, result, on_finish)
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
                on_finish: Finish) -> None:
    """Finish every run whose last epoch this was: test loss/acc and confusion matrix of
    its stream's weights right now."""
    due = [p for p, s in enumerate(active)
           if any(int(configs[i]["epochs"]) == epoch for i in s.open)]
    if not due:
        return
    test_loss, test_acc, pred = evaluate_stacked(
        stack, *data.evaluation([s.seed for s in active], "test"), EVAL_BATCH)
    for p in due:
        s = active[p]
        split = data.splits[s.seed]
        confusion = confusion_matrix(split.y_test, pred[p], split.num_classes)
        predictions = pred[p].to(torch.uint8).cpu().numpy().tobytes()
        for i in [i for i in s.open if int(configs[i]["epochs"]) == epoch]:
            s.open.remove(i)
            on_finish(i, result(s, i, DONE, test_acc=test_acc[p], test_loss=test_loss[p],
                                confusion=confusion, predictions=predictions))


# -- the runner's side: store rows, events and hooks per run ------------------------------

def execute_group(unit: Sequence[RunSpec], ctx: Any) -> None:
    """Train a unit of runs stacked (falling back to one by one when they cannot be),
    each run recorded as if it had trained alone. Runs done in the store are skipped."""
    from workbench import execution as rn
    from workbench import training

    def one_by_one(runs: Sequence[RunSpec]) -> None:
        for run in runs:
            if ctx.cancel.is_set():
                return
            rn.execute_run(run, ctx)

    todo: list[RunSpec] = []
    raw = split = splits = None
    checked = 0
    try:
        for run in unit:
            if not rn.should_skip(run, ctx):
                todo.append(run)
            checked += 1
        if len(todo) > 1:
            raw = ctx.raw_data(todo[0].config["dataset"])
            split = ctx.split(todo[0])
            splits = {}
            for run in todo:  # one split per seed: repeats each draw their own validation set
                if int(run.config["seed"]) not in splits:
                    splits[int(run.config["seed"])] = ctx.split(run)
    except Exception:  # data problems: the one-run path reports them run by run
        todo, raw = todo + list(unit[checked:]), None
    if raw is None or len(todo) < 2:
        one_by_one(todo)
        return
    spec = ctx.registry.models.get(todo[0].config["model"])
    try:
        models = [training.build_model(spec.build, run.config, split) for run in todo]
        why = check_group([run.config for run in todo], models)
    except Exception:  # a build error is reported per run by the one-run path
        models, why = [], "a model could not be built"
    if why:  # e.g. dropout > 0, a custom model: train them one by one
        del models
        one_by_one(todo)
        return

    recorders = [rn.RunRecorder(run, ctx, raw.identity, raw.fingerprint) for run in todo]
    finished: set[int] = set()

    def finish(i: int, result: RunResult) -> None:
        finished.add(i)
        recorders[i].finish(result)

    try:
        train_stacked([run.config for run in todo], models, splits,
                      on_epoch=lambda i, m: recorders[i].epoch(m), on_finish=finish,
                      on_batch=lambda i, *a: recorders[i].batch(*a), cancel=ctx.cancel,
                      cancelled=lambda i: todo[i].run_id in ctx.cancel_runs)
    except Exception as exc:
        for i, recorder in enumerate(recorders):
            if i not in finished:
                finished.add(i)
                recorder.fail(exc)

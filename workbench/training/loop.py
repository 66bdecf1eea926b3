"""One run, start to finish: seeded model, randperm batches over preloaded tensors, metrics
per epoch, test accuracy and the confusion matrix.

No DataLoader: the split's tensors already sit normalised on the device, so an epoch is a
loop of index, forward, backward, step. Same seed + config + device => same numbers.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from workbench.callbacks import RunCallbacks
from workbench.data import Split
from workbench.training.optim import FusedAdam
from workbench.types import CANCELLED, DIVERGED, DONE, EpochMetrics, RunResult

EVAL_BATCH = 8192
PROGRESS_SECONDS = 0.25  # at most ~4 BatchProgress callbacks a second


def pick_device(preference: str | None = None) -> str:
    """'cuda' when available (or asked for), else 'cpu'. An explicit choice is checked."""
    if preference in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {preference}: CUDA is not available on this machine; "
                         "use --device cpu or auto")
    try:
        torch.device(preference)
    except RuntimeError as exc:
        raise ValueError(f"--device {preference}: {exc}; use auto, cpu or cuda") from None
    return preference


def make_optimizer(config: Mapping[str, Any], params: Any) -> Any:
    """The config's optimizer with its settings (workbench.params.optimizer_settings)."""
    from workbench.params import optimizer_settings

    settings = optimizer_settings(config)
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=config["lr"], **settings)
    return FusedAdam(params, lr=config["lr"], **settings)  # torch.optim.Adam(fused=True)


def epoch_generator(seed: int) -> torch.Generator:
    """The data order: one generator per run, one randperm per epoch. Epoch k's order does
    not depend on the total number of epochs (what makes epoch-prefix sharing exact)."""
    return torch.Generator().manual_seed(int(seed))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
             ) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and predictions over (x, y), in eval mode."""
    model.eval()
    total, preds = torch.zeros((), device=x.device), []
    for start in range(0, len(x), EVAL_BATCH):
        out = model(x[start:start + EVAL_BATCH])
        total += F.cross_entropy(out, y[start:start + EVAL_BATCH], reduction="sum")
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    return float(total) / len(x), float((pred == y).float().mean()), pred


def confusion_matrix(y: torch.Tensor, pred: torch.Tensor, classes: int = 10
                     ) -> tuple[tuple[int, ...], ...]:
    counts = torch.bincount(y * classes + pred, minlength=classes * classes).reshape(classes,
                                                                                     classes)
    return tuple(tuple(int(v) for v in row) for row in counts.cpu().tolist())


@dataclass
class Callbacks:
    """Where a training run reports; called on the training thread."""

    on_epoch: Callable[[EpochMetrics], None] = lambda m: None
    on_batch: Callable[[int, int, int, float], None] = lambda e, b, n, loss: None  # epoch, batch, batches, loss
    cancel: threading.Event | None = None
    # The run's training callbacks (schedules, early stopping: workbench.callbacks).
    shaping: RunCallbacks | None = None


def train(config: Mapping[str, Any], model: torch.nn.Module, split: Split,
          callbacks: Callbacks | None = None) -> RunResult:
    """Train ``model`` (already built with the run's seed) on ``split`` as ``config`` says."""
    cb = callbacks or Callbacks()
    device = split.device
    model = model.to(device)
    opt = make_optimizer(config, model.parameters())
    gen = epoch_generator(config["seed"])
    x, y = split.x_train, split.y_train
    n, bs, epochs = len(x), int(config["batch_size"]), int(config["epochs"])
    batches = math.ceil(n / bs)
    history: list[EpochMetrics] = []
    best, best_epoch = -1.0, 0
    started = time.perf_counter()
    last_report = started  # across epochs: short epochs still report a few times a second

    def result(status: str, error: str | None = None, **kw: Any) -> RunResult:
        return RunResult(status=status, epochs=tuple(history), error=error, device=device,
                         dataset=split.raw.identity,
                         train_seconds=time.perf_counter() - started, **kw)

    lr = float(config["lr"])
    stopped = None
    for epoch in range(1, epochs + 1):
        if cb.shaping is not None:
            lr = cb.shaping.epoch_start(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for b in range(batches):
            if cb.cancel is not None and cb.cancel.is_set():
                return result(CANCELLED, f"cancelled in epoch {epoch}, batch {b + 1}/{batches}")
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            now = time.perf_counter()
            if now - last_report >= PROGRESS_SECONDS:
                last_report = now
                value = float(loss.detach())
                if not math.isfinite(value):
                    return result(DIVERGED, f"loss became {value} in epoch {epoch}, batch "
                                            f"{b + 1}/{batches} (lr {lr:g})")
                cb.on_batch(epoch, b + 1, batches, value)
        train_loss = float(total) / n
        if not math.isfinite(train_loss):
            return result(DIVERGED, f"train loss became {train_loss} in epoch {epoch} "
                                    f"(lr {lr:g})")
        val_loss, val_acc, _ = evaluate(model, split.x_val, split.y_val)
        if val_acc > best:
            best, best_epoch = val_acc, epoch
        metrics = EpochMetrics(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                               val_acc=val_acc, best_val_acc=best, best_epoch=best_epoch,
                               seconds=time.perf_counter() - started, lr=lr)
        history.append(metrics)
        cb.on_epoch(metrics)
        if cb.shaping is not None:
            why = cb.shaping.epoch_end(metrics)
            if why and epoch < epochs:
                stopped = stop_note(epoch, epochs, why)
                break

    seconds = time.perf_counter() - started
    test_loss, test_acc, pred = evaluate(model, split.x_test, split.y_test)
    return RunResult(
        status=DONE, epochs=tuple(history), test_acc=test_acc, test_loss=test_loss,
        confusion=confusion_matrix(split.y_test, pred, split.num_classes),
        predictions=pred.to(torch.uint8).cpu().numpy().tobytes(), train_seconds=seconds,
        device=device, dataset=split.raw.identity, stopped_early=stopped)


def stop_note(epoch: int, epochs: int, why: str) -> str:
    """What a run stopped early by a callback stores and shows."""
    return f"stopped early at epoch {epoch} of {epochs}: {why}"


def build_model(spec: Any, config: Mapping[str, Any], split: Split) -> torch.nn.Module:
    """Build a model with the run's seed, so its initial weights are reproducible.

    ``spec``: a ModelSpec (or anything with ``build`` and ``input_shape``), or a bare build
    function taking in_features. The model gets ``split.input_shape`` when its spec asks."""
    build = getattr(spec, "build", spec)
    shape = split.input_shape if getattr(spec, "input_shape", False) else split.in_features
    torch.manual_seed(int(config["seed"]))
    model = build(config, shape, split.num_classes)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"build returned {type(model).__name__}"
                        f"{' (did it forget to return the model?)' if model is None else ''}"
                        "; expected a torch.nn.Module")
    return model

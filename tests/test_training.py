"""The training engine: determinism, confusion matrix, agreement with a plain PyTorch loop."""

import copy
import math

import torch
import torch.nn.functional as F

from workbench import training
from workbench.config import CORE_DEFAULTS

CONFIG = {**CORE_DEFAULTS, "dataset": "mnist-sample", "hidden": 32, "epochs": 2,
          "batch_size": 128, "seed": 5}


def _train(registry, split, config):
    spec = registry.models[config["model"]]
    model = training.build_model(spec.build, config, split)
    return training.train(config, model, split)


def _numbers(result):
    return [(e.epoch, e.train_loss, e.val_loss, e.val_acc, e.best_val_acc, e.best_epoch)
            for e in result.epochs]


def test_same_seed_same_metrics_and_other_seed_differs(registry, sample_split):
    a = _train(registry, sample_split, CONFIG)
    b = _train(registry, sample_split, CONFIG)
    c = _train(registry, sample_split, {**CONFIG, "seed": 6})
    assert a.status == b.status == "done"
    assert _numbers(a) == _numbers(b)  # every loss and accuracy, bit for bit
    assert a.test_acc == b.test_acc and a.confusion == b.confusion
    assert a.predictions == b.predictions
    assert [e.train_loss for e in c.epochs] != [e.train_loss for e in a.epochs]


def test_confusion_matrix_sums_to_test_set_and_matches_accuracy(registry, sample_split):
    result = _train(registry, sample_split, CONFIG)
    cm = result.confusion
    n_test = len(sample_split.y_test)
    assert n_test == 2000
    assert sum(map(sum, cm)) == n_test
    # each row holds exactly the test images of that class
    counts = torch.bincount(sample_split.y_test, minlength=10).tolist()
    assert [sum(row) for row in cm] == counts
    assert math.isclose(sum(cm[i][i] for i in range(10)) / n_test, result.test_acc, rel_tol=1e-6)
    assert len(result.predictions) == n_test
    # a trained baseline is far better than chance on real digits
    assert result.test_acc > 0.85


def test_matches_a_plain_pytorch_loop(registry, sample_split):
    """micrograd's idea: check our engine against the obvious loop written out by hand."""
    result = _train(registry, sample_split, CONFIG)
    torch.manual_seed(CONFIG["seed"])
    model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=CONFIG["lr"])
    gen = torch.Generator().manual_seed(CONFIG["seed"])
    x, y = sample_split.x_train, sample_split.y_train
    for epoch in result.epochs:
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), CONFIG["batch_size"]):
            idx = perm[start:start + CONFIG["batch_size"]]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        assert math.isclose(total / len(x), epoch.train_loss, rel_tol=1e-5)
        with torch.no_grad():
            val_acc = (model(sample_split.x_val).argmax(1) == sample_split.y_val).float().mean()
        assert math.isclose(float(val_acc), epoch.val_acc, rel_tol=1e-6)


def test_split_follows_the_seed_proportions(sample_split):
    # mnist-sample: 8,000 train images -> 1/12 validation (the seed's 5k of 60k), 2,000 test
    assert (len(sample_split.x_train), len(sample_split.x_val), len(sample_split.x_test)) == (
        7333, 667, 2000)
    assert sample_split.x_train.shape[1] == 784
    assert abs(float(sample_split.x_train.mean())) < 1e-4
    assert abs(float(sample_split.x_train.std()) - 1) < 1e-3


def test_cancel_stops_within_a_batch(registry, sample_split):
    import threading

    cancel = threading.Event()
    seen = []

    def on_epoch(m):
        seen.append(m)
        cancel.set()

    spec = registry.models["baseline_mlp"]
    config = {**CONFIG, "epochs": 5}
    model = training.build_model(spec.build, config, sample_split)
    result = training.train(config, model, sample_split,
                            training.Callbacks(on_epoch=on_epoch, cancel=cancel))
    assert result.status == "cancelled"
    assert len(result.epochs) == 1 and "epoch 2, batch 1/" in result.error


def test_divergence_is_recorded_not_raised(registry, sample_split):
    config = {**CONFIG, "lr": 1e6, "optimizer": "sgd", "epochs": 3}
    result = _train(registry, sample_split, config)
    assert result.status == "diverged"
    assert "loss became" in result.error and result.test_acc is None


WATCHED_SECONDS = 1.5


def short_epochs_split(split, n=256):
    """The sample split cut to ``n`` training and validation digits: an epoch takes
    milliseconds."""
    import dataclasses
    return dataclasses.replace(split, x_train=split.x_train[:n], y_train=split.y_train[:n],
                               x_val=split.x_val[:n], y_val=split.y_val[:n])


def test_progress_is_reported_when_every_epoch_is_shorter_than_the_interval(registry,
                                                                          sample_split):
    """The live chart's per-batch loss must move on a fast machine too: reports are paced
    across epochs, not restarted in each (an epoch under 0.25 s once meant no report at all)."""
    import threading
    import time

    split = short_epochs_split(sample_split)
    cancel, epoch_ends, batches = threading.Event(), [], []

    def on_epoch(m):  # the first epoch carries torch's warm-up: time from its end
        epoch_ends.append(time.perf_counter())
        if epoch_ends[-1] - epoch_ends[0] > WATCHED_SECONDS:
            cancel.set()

    config = {**CONFIG, "hidden": 8, "batch_size": 64, "epochs": 100_000}
    model = training.build_model(registry.models["baseline_mlp"].build, config, split)
    training.train(config, model, split, training.Callbacks(
        on_epoch=on_epoch, on_batch=lambda *a: batches.append(a), cancel=cancel))
    durations = sorted(b - a for a, b in zip(epoch_ends, epoch_ends[1:]))
    assert durations[len(durations) // 2] < training.PROGRESS_SECONDS / 5, \
        "the scenario needs epochs much shorter than the report interval"
    watched = [a for a in batches if a[0] >= 2]  # epoch, batch, batches, loss
    assert 3 <= len(watched) <= WATCHED_SECONDS / training.PROGRESS_SECONDS + 1, batches
    assert len({a[0] for a in watched}) == len(watched), "one report per several epochs"


def test_the_direct_fused_adam_updates_bitwise_as_torch_optim_adam_fused():
    """training.optim.FusedAdam skips torch.optim's per-step bookkeeping but must update
    exactly as Adam(fused=True): same weights after steps with a schedule's lr change,
    default and non-default settings."""
    import torch

    from workbench.training.optim import FusedAdam

    for settings in ({}, {"betas": (0.8, 0.99), "weight_decay": 1e-3}):
        torch.manual_seed(0)
        ours = torch.nn.Sequential(torch.nn.Linear(20, 7), torch.nn.ReLU(),
                                   torch.nn.Linear(7, 3))
        theirs, start = copy.deepcopy(ours), copy.deepcopy(ours)
        a = FusedAdam(ours.parameters(), lr=1e-2, **settings)
        b = torch.optim.Adam(theirs.parameters(), lr=1e-2, fused=True, **settings)
        x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
        for step in range(12):
            if step == 6:  # a schedule changes the lr
                a.param_groups[0]["lr"] = b.param_groups[0]["lr"] = 3e-3
            for model, opt in ((ours, a), (theirs, b)):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(p, q)
        assert not torch.equal(ours[0].weight, start[0].weight)  # it did train

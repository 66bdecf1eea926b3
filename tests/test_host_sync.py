"""On CUDA every read of a tensor's value on the host waits for the device. Training reads
losses once per progress report and per epoch, never per batch: counted here on CPU through
the same code (the one train_unit path, alone and stacked), as host reads that do not grow
with the number of batches."""

from __future__ import annotations

import sys

import torch

from workbench import data
from workbench.session import open_session
from workbench.training.unit import ModelBuild, train_unit


class Quiet:
    def claim(self, run, device):
        return True

    def epoch(self, run, metrics):
        pass

    def batch(self, *args):
        pass

    def finished(self, run, result):
        self.result = result


def host_reads(monkeypatch, tmp_path, batch_size: int, lrs: list[float]) -> int:
    """Host reads (item, float, int, tolist, numpy) while ``lrs`` runs of one epoch train,
    with progress reports switched off."""
    import workbench.training.loop as loop
    import workbench.training.stacked as stacked

    monkeypatch.setattr(loop, "PROGRESS_SECONDS", 1e9)
    monkeypatch.setattr(stacked, "PROGRESS_SECONDS", 1e9)
    toml = tmp_path / f"sync-{batch_size}.toml"
    toml.write_text(f"""
[defaults]
dataset = "mnist-sample"
hidden = 8
epochs = 1
batch_size = {batch_size}
seed = 3
[[experiment]]
name = "sync"
[experiment.grid]
lr = {lrs!r}
""")
    session = open_session(toml)
    runs, registry = session.runs, session.registry
    raw = data.resolve("mnist-sample", registry)
    models = {r.config["model"]: ModelBuild.of(registry, r.config["model"]) for r in runs}
    data.make_split(raw, 3, "cpu")  # the split (normalised once, cached) is not training
    count = [0]
    for name in ("item", "tolist", "numpy", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **k):
            # torch.optim keeps Adam's step counters on the host even on CUDA (not
            # capturable): reading them waits for nothing
            if "torch/optim/" not in sys._getframe(1).f_code.co_filename:
                count[0] += 1
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    results = train_unit(runs, raw, "cpu", models, Quiet())
    assert [r.status for r in results.values()] == ["done"] * len(lrs)
    return count[0]


def test_a_run_reads_the_same_host_values_at_115_or_15_batches(monkeypatch, tmp_path):
    many = host_reads(monkeypatch, tmp_path, 64, [1e-3])
    monkeypatch.undo()
    few = host_reads(monkeypatch, tmp_path, 512, [1e-3])
    assert many == few, (many, few)


def test_a_stack_reads_the_same_host_values_at_115_or_15_batches(monkeypatch, tmp_path):
    many = host_reads(monkeypatch, tmp_path, 64, [1e-3, 3e-3])
    monkeypatch.undo()
    few = host_reads(monkeypatch, tmp_path, 512, [1e-3, 3e-3])
    assert many == few, (many, few)

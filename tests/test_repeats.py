"""Seed repeats: the file's keys, the planned runs, and repeats stacked == trained alone."""

from __future__ import annotations

import textwrap

import pytest
import torch

from tests.conftest import run_cli
from workbench import data, training
from workbench.config import ConfigError, validate_study
from workbench.plan import plan_study, unit_grouper
from workbench.stacking import stack_key
from workbench.training.stacked import train_stacked
from workbench.types import DONE, RunSpec

BASE = dict(model="baseline_mlp", dataset="mnist-sample", lr=1e-3, hidden=32,
            activation="relu", dropout=0.0, epochs=2, batch_size=128, seed=3,
            optimizer="adam")


pytestmark = pytest.mark.usefixtures("one_thread")


def plan(registry, defaults: dict, experiment: dict):
    raw = {"defaults": {"dataset": "mnist-sample", **defaults},
           "experiment": [{"name": "e", **experiment}]}
    return plan_study(validate_study(raw, registry, None), registry)


def test_seeds_and_repeats_make_one_run_per_seed(registry):
    runs = plan(registry, {"seed": 11}, {"repeats": 3, "grid": {"lr": [1e-3, 1e-2]}})
    assert [(r.config["lr"], r.config["seed"]) for r in runs] == [
        (1e-3, 11), (1e-3, 12), (1e-3, 13), (1e-2, 11), (1e-2, 12), (1e-2, 13)]
    assert len({r.config_hash for r in runs}) == 6  # each repeat its own store row
    assert runs[1].label == "lr=0.001 seed=12"
    runs = plan(registry, {"seeds": [5, 9]}, {})  # [defaults] applies to every experiment
    assert [r.config["seed"] for r in runs] == [5, 9]
    runs = plan(registry, {"seeds": [5, 9]}, {"repeats": 2, "seed": 20})  # experiment wins
    assert [r.config["seed"] for r in runs] == [20, 21]


@pytest.mark.parametrize("defaults,experiment,problem", [
    ({}, {"seeds": []}, "experiment 'e': seeds: got [], expected a non-empty list of integers"),
    ({}, {"seeds": [1, "2"]}, "seeds: got [1, '2'], expected a non-empty list of integers >= 0"),
    ({}, {"seeds": [4, 4, 5]}, "seeds: 4 given more than once; each repeat needs a seed"),
    ({}, {"repeats": 0}, "experiment 'e': repeats: got 0, expected an integer >= 1"),
    ({"repeats": 2, "seeds": [1]}, {}, "[defaults] seeds and repeats: give one of them, not both"),
    ({}, {"repeats": 2, "grid": {"seed": [1, 2]}}, "grid.seed and repeats: both set the seeds"),
    ({}, {"repeat": 2}, "unknown key 'repeat' (did you mean 'repeats'?)"),
])
def test_bad_repeat_keys_are_named(registry, defaults, experiment, problem):
    with pytest.raises(ConfigError) as err:
        plan(registry, defaults, experiment)
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_repeats_of_one_config_are_one_stacking_unit(registry):
    runs = plan(registry, {"hidden": 16}, {"seeds": [1, 2, 3], "grid": {"lr": [1e-3, 1e-2]}})
    assert len({stack_key(r.config) for r in runs}) == 1
    assert unit_grouper(True)(runs) == runs
    many = plan(registry, {"hidden": 16}, {"repeats": 10})  # each seed holds its own split
    assert [r.config["seed"] for r in unit_grouper(True)(many)] == list(range(11, 19))


def test_repeats_stacked_equal_each_seed_trained_alone(registry):
    """Seeds 3, 4, 5 x two learning rates, one a shorter prefix: six runs in one stack, each
    bitwise the run trained alone on its own seed's split and data order."""
    raw = data.resolve("mnist-sample", registry)
    splits = {s: data.make_split(raw, s, "cpu") for s in (3, 4, 5)}
    assert splits[3].mean != splits[4].mean  # each seed normalises with its own train split
    configs = [{**BASE, "seed": s, "lr": lr, "epochs": e}
               for s in (3, 4, 5) for lr, e in ((1e-3, 2), (3e-3, 1))]
    spec = registry.models["baseline_mlp"]
    models = [training.build_model(spec.build, c, splits[c["seed"]]) for c in configs]
    results = {}
    train_stacked(configs, models, splits, on_epoch=lambda i, m: None,
                  on_finish=lambda i, r: results.__setitem__(i, r))
    for i, config in enumerate(configs):
        split = splits[config["seed"]]
        want = training.train(config, training.build_model(spec.build, config, split), split)
        got = results[i]
        assert got.status == want.status == DONE
        # accuracies and every prediction bitwise equal; losses are sums the stack reduces in
        # another order (as for every stack: tests/test_stacked.py), so equal to 1e-6
        assert [m.val_acc for m in got.epochs] == [m.val_acc for m in want.epochs], config
        for field in ("train_loss", "val_loss"):
            assert [getattr(m, field) for m in got.epochs] == pytest.approx(
                [getattr(m, field) for m in want.epochs], rel=1e-6, abs=0)
        assert got.test_acc == want.test_acc
        assert got.test_loss == pytest.approx(want.test_loss, rel=1e-6, abs=0)
        assert got.confusion == want.confusion and got.predictions == want.predictions
    # the seeds really differ: a stack that fed every member one seed's data would not pass
    assert len({results[i].test_acc for i in range(0, 6, 2)}) == 3


def test_a_stack_refuses_a_seed_it_has_no_split_for(registry, sample_split):
    configs = [{**BASE, "seed": 3}, {**BASE, "seed": 4}]
    spec = registry.models["baseline_mlp"]
    models = [training.build_model(spec.build, c, sample_split) for c in configs]
    with pytest.raises(ValueError, match=r"no split for seed\(s\) \[4\]"):
        train_stacked(configs, models, sample_split, on_epoch=lambda i, m: None,
                      on_finish=lambda i, r: None)


REPEATS_TOML = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 1
batch_size = 256
seeds = [3, 4]
[[experiment]]
name = "g"
[experiment.grid]
lr = [1e-3, 3e-3]
"""


def test_repeats_give_the_same_results_stacked_alone_and_in_the_apps_child(tmp_path):
    """Through the runner: stacked in process, one by one, and stacked in the child process
    the app trains in (workbench.training.unit) store the same accuracies and predictions."""
    from workbench.executors.process import ProcessExecutor
    from workbench.runner import Settings, run_all
    from workbench.session import open_session
    from workbench.store import Store

    path = tmp_path / "e.toml"
    path.write_text(textwrap.dedent(REPEATS_TOML))
    session = open_session(path)
    settings = Settings(device="cpu", threads=1)

    def results(name, executor=None, stack=True):
        store = Store(tmp_path / f"{name}.sqlite")
        run_all(session.runs, session.registry, store, lambda e: None, settings, executor,
                unit_grouper(stack))
        rows = {r["config_hash"]: store.run(r["id"]) for r in store.runs()}
        return {h: (r["status"], r["seed"], r["test_acc"], r["predictions"])
                for h, r in rows.items()}

    stacked = results("stacked")
    assert len(stacked) == 4 and {v[0] for v in stacked.values()} == {DONE}
    assert sorted(v[1] for v in stacked.values()) == [3, 3, 4, 4]
    assert results("alone", stack=False) == stacked
    assert results("child", ProcessExecutor()) == stacked

"""Plugins that shape training: schedules, early stopping, stacked runs with them, optimizer
settings, per-layer activations and a CNN that receives the input shape (mnist-sample, CPU)."""

from __future__ import annotations

import math
import sqlite3
import textwrap

import pytest
import torch

from tests.conftest import run_cli
from tests.test_stacked import BASE, assert_same
from workbench import training
from workbench.callbacks import make_run_callbacks
from workbench.config import ConfigError, validate_study
from workbench.plan import plan_study
from workbench.training.stacked import make_streams
from workbench.types import DONE, EpochMetrics

SMALL = {**BASE, "hidden": 8, "batch_size": 256}


pytestmark = pytest.mark.usefixtures("one_thread")


def alone(config, registry, split):
    spec = registry.models[config["model"]]
    return training.train(config, training.build_model(spec, config, split), split,
                          training.Callbacks(shaping=make_run_callbacks(registry.callbacks,
                                                                        config)))


def with_params(registry, config):
    """A config with the parameters of its callbacks filled in, as the planner does."""
    from workbench.params import canonical_config
    return canonical_config(config, registry)


def stacked_with(configs, registry, split):
    spec = registry.models[configs[0]["model"]]
    models = [training.build_model(spec, c, split) for c in configs]
    results = {}
    from workbench.training.stacked import train_stacked
    train_stacked(configs, models, split, on_epoch=lambda i, m: None,
                  on_finish=lambda i, r: results.setdefault(i, r), kinds=registry.callbacks)
    assert sorted(results) == list(range(len(configs)))
    return results


def test_recorded_learning_rates_follow_each_schedules_formula(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 512
        epochs = 5
        lr = 0.01
        [[experiment]]
        name = "schedules"
        step_every = 2
        step_gamma = 0.1
        [experiment.grid]
        callbacks = [[], "step", "cosine", "one_cycle"]
    """))
    store = tmp_path / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store))
    assert result.returncode == 0, result.stdout + result.stderr
    db = sqlite3.connect(store)
    lrs = {label: [lr for (lr,) in db.execute(
        "SELECT lr FROM epochs JOIN runs ON runs.id = run_id WHERE label=? ORDER BY epoch",
        (label,))] for (label,) in db.execute("SELECT label FROM runs")}
    assert lrs["callbacks=none"] == [0.01] * 5
    assert lrs["callbacks=step"] == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])
    assert lrs["callbacks=cosine"] == pytest.approx(
        [0.01 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)])
    # one-cycle: up from lr/25 to lr over the first 30 % (t = 0, .25 | .5, .75, 1), then down
    start, low = 0.01 / 25, 0.01 / 25 / 1e4
    down = [(t - 0.3) / 0.7 for t in (0.5, 0.75, 1.0)]
    assert lrs["callbacks=one_cycle"] == pytest.approx(
        [start, start + (0.01 - start) * 0.25 / 0.3]
        + [low + (0.01 - low) * (1 + math.cos(math.pi * d)) / 2 for d in down])
    # the runs really trained with them: the constant one differs from the scheduled ones
    accs = {label: acc for label, acc in db.execute("SELECT label, test_acc FROM runs")}
    assert len(set(accs.values())) == 4


def test_plateau_halves_the_rate_after_patience_epochs_without_a_better_val_loss(registry):
    config = with_params(registry, {**SMALL, "lr": 0.1, "epochs": 8, "callbacks": ["plateau"],
                                    "plateau_patience": 1})
    run = make_run_callbacks(registry.callbacks, config)
    seen = []
    for epoch, val_loss in enumerate([1.0, 0.8, 0.8, 0.79995, 0.9, 0.5, 0.6, 0.6], 1):
        seen.append(run.epoch_start(epoch))
        run.epoch_end(EpochMetrics(epoch, 1.0, val_loss, 0.5, 0.5, 1, 0.0, seen[-1]))
    # no better loss at epochs 3 and 4 (0.79995 is within 1e-4 of 0.8): halved for epoch 5;
    # epoch 5 is worse again but patience starts over; epochs 7 and 8 stall after 0.5
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    assert run.ctx.lr == pytest.approx(0.025)


def test_early_stopping_stops_at_the_right_epoch_and_the_run_is_done(tmp_path):
    toml = tmp_path / "es.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 512
        [[experiment]]
        name = "es"
        lr = 0.05
        epochs = 20
        callbacks = ["early_stopping"]
        patience = 2
    """))
    store = tmp_path / "es.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store))
    assert result.returncode == 0, result.stdout + result.stderr
    db = sqlite3.connect(store)
    status, done, note = db.execute(
        "SELECT status, epochs_done, stopped_early FROM runs").fetchone()
    accs = [a for (a,) in db.execute("SELECT val_acc FROM epochs ORDER BY epoch")]
    # the first epoch k whose best is at least 2 epochs old
    best_epoch = [max(range(k), key=lambda i: (accs[i], -i)) + 1 for k in range(1, len(accs) + 1)]
    expected = next(k for k in range(1, 21) if k - best_epoch[k - 1] >= 2)
    assert status == DONE and done == expected < 20 and len(accs) == expected
    assert note.startswith(f"stopped early at epoch {expected} of 20: val accuracy has not "
                           "improved for 2 epochs")
    assert f"stopped early at epoch {expected} of 20" in result.stdout
    assert "Val Acc: " in result.stdout and "%), lr 0.05 | es" in result.stdout
    assert f"    done (stopped @{expected}) | " in result.stdout  # the results (piped layout)


@pytest.mark.parametrize("callbacks,extra", [
    (["step"], {"step_every": 1, "step_gamma": 0.5}),
    (["cosine"], {}),
    (["plateau"], {"plateau_patience": 0, "plateau_factor": 0.3}),
    (["early_stopping"], {"patience": 1}),
])
def test_stacked_runs_with_callbacks_equal_the_same_runs_trained_alone(
        registry, sample_split, callbacks, extra):
    configs = [with_params(registry, {**SMALL, "lr": lr, "epochs": e, "callbacks": callbacks,
                                      **extra})
               for lr, e in ((0.1, 8), (0.1, 3), (3e-2, 8))]
    got = stacked_with(configs, registry, sample_split)
    for i, config in enumerate(configs):
        want = alone(config, registry, sample_split)
        assert [m.lr for m in got[i].epochs] == pytest.approx([m.lr for m in want.epochs])
        assert got[i].stopped_early == want.stopped_early
        assert_same(got[i], want)
    if "early_stopping" in callbacks:  # lr 0.1 stalls at epoch 5; its 3-epoch prefix does not
        assert got[0].stopped_early.startswith("stopped early at epoch 5 of 8")
        assert got[1].stopped_early is None and len(got[1].epochs) == 3


def test_prefix_sharing_is_refused_for_cosine_and_kept_for_constant_and_step(
        registry, sample_split):
    def streams(callbacks):
        configs = [with_params(registry, {**SMALL, "epochs": e, "callbacks": callbacks})
                   for e in (1, 2, 3)]
        models = [training.build_model(registry.models["baseline_mlp"], c, sample_split)
                  for c in configs]
        return [s.runs for s in make_streams(configs, models, registry.callbacks)]

    assert streams([]) == [[0, 1, 2]]
    assert streams(["step"]) == [[0, 1, 2]]
    assert streams(["cosine"]) == [[0], [1], [2]]
    assert streams(["one_cycle"]) == [[0], [1], [2]]


def test_dry_run_says_which_runs_train_alone_and_why(tmp_path):
    toml = tmp_path / "d.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        [[experiment]]
        name = "plain"
        [[experiment]]
        name = "annealed"
        callbacks = "cosine"
        [experiment.grid]
        epochs = [2, 4]
        [[experiment]]
        name = "heavy"
        optimizer = "sgd"
        momentum = 0.9
        weight_decay = 1e-4
    """))
    result = run_cli("--headless", str(toml), "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "annealed: no epoch-prefix sharing: callback 'cosine' depends on the total " \
           "epochs" in out
    assert "heavy: trains alone: momentum, weight_decay have no stacked version" in out
    assert "plain:" not in out.split("stacking:")[1]


def study(registry, text, tmp_path):
    import tomllib
    path = tmp_path / "x.toml"
    raw = tomllib.loads(textwrap.dedent(text))
    return plan_study(validate_study(raw, registry, path), registry)


def test_optimizer_settings_are_checked_per_optimizer_and_reach_torch(registry, tmp_path,
                                                                      sample_split):
    with pytest.raises(ConfigError) as err:
        study(registry, """
            [[experiment]]
            name = "a"
            betas = [0.9]
            [[experiment]]
            name = "c"
            momentum = 0.9
            [[experiment]]
            name = "b"
            optimizer = "sgd"
            betas = [0.8, 0.99]
        """, tmp_path)
    text = "\n".join(err.value.problems)
    # (no grid: the problem is the experiment's own, not "its grid produced")
    assert "experiment 'c': momentum: optimizer 'adam' does not use it; " \
           "it applies to sgd" in text
    assert "experiment 'a': betas: got [0.9], expected two numbers in [0, 1)" in text
    assert "experiment 'b': betas: optimizer 'sgd' does not use it" in text

    runs = study(registry, """
        [[experiment]]
        name = "m"
        optimizer = "sgd"
        momentum = 0.9
        weight_decay = 0.001
        [[experiment]]
        name = "plain"
        weight_decay = 0.0
    """, tmp_path)
    opt = training.make_optimizer(runs[0].config, torch.nn.Linear(2, 2).parameters())
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.defaults["momentum"], opt.defaults["weight_decay"]) == (0.9, 0.001)
    # a setting at its default is left out: the config (and its hash) is the one it had
    # before these settings existed, so stores keep their done runs
    assert "weight_decay" not in runs[1].config
    from workbench.config import CORE_DEFAULTS
    assert runs[1].config == {**CORE_DEFAULTS}


def test_per_layer_activations_build_those_layers_and_the_length_is_checked(
        registry, tmp_path, sample_split):
    runs = study(registry, """
        [[experiment]]
        name = "mixed"
        model = "deep_mlp"
        layers = 3
        hidden = 8
        activations = ["relu", "tanh", "gelu"]
        [[experiment]]
        name = "deep"
        model = "deep_mlp"
    """, tmp_path)
    net = training.build_model(registry.models["deep_mlp"], runs[0].config, sample_split)
    assert [type(m).__name__ for m in net][1:6:2] == ["ReLU", "Tanh", "GELU"]
    assert "activations" not in runs[1].config  # unused: the config it always had
    with pytest.raises(ConfigError) as err:
        study(registry, """
            [[experiment]]
            name = "short"
            model = "deep_mlp"
            layers = 3
            activations = ["relu", "tanh"]
            hiden = 5
            [[experiment]]
            name = "typo"
            model = "deep_mlp"
            activations = ["relu", "tanh", "rleu"]
        """, tmp_path)
    text = "\n".join(err.value.problems)
    # the model's check() speaks beside the experiment's other problem: all at once
    assert "experiment 'short': unknown key 'hiden' (did you mean 'hidden'?)" in text
    assert "experiment 'short': activations: got 2 (relu, tanh) for " \
           "layers = 3; give one activation per hidden layer" in text
    assert "experiment 'typo': activations: unknown activation 'rleu' (did you mean " \
           "'relu'?)" in text


def test_small_cnn_receives_the_input_shape_and_trains(registry, sample_split):
    config = {**SMALL, "model": "small_cnn", "channels": 4, "epochs": 1}
    seen = {}
    spec = registry.models["small_cnn"]

    class Spy:
        input_shape = True

        @staticmethod
        def build(cfg, shape, classes):
            seen["shape"] = shape
            return spec.build(cfg, shape, classes)

    net = training.build_model(Spy, config, sample_split)
    assert seen["shape"] == (1, 28, 28)
    result = training.train(config, net, sample_split)
    assert result.status == DONE and result.test_acc > 0.5  # chance is 0.1
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 2


def test_a_callback_cannot_change_the_config_it_reads(registry, sample_split):
    config = with_params(registry, {**SMALL, "callbacks": ["step"]})
    run = make_run_callbacks(registry.callbacks, config)
    with pytest.raises(TypeError, match="read-only"):
        run.ctx.config["lr"] = 1.0
    with pytest.raises(ValueError, match="expected a finite number > 0"):
        run.ctx.set_lr(float("nan"))


def test_a_raising_callback_fails_its_run_naming_the_plugin_file(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "grumpy.py").write_text(textwrap.dedent('''
        from workbench import CallbackKind, hookimpl

        class Grumpy:
            def __init__(self, config):
                pass

            def on_epoch_end(self, ctx):
                if ctx.epoch == 2:
                    raise ValueError(f"no epoch 2 (val acc {ctx.metrics.val_acc:.2f})")

        @hookimpl
        def register_callbacks(register):
            register(CallbackKind(name="grumpy", make=Grumpy))
    '''))
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 512
        epochs = 3
        [[experiment]]
        name = "grumpy"
        callbacks = ["grumpy"]
        [[experiment]]
        name = "after"
    """))
    store = tmp_path / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store))
    assert result.returncode == 1
    db = sqlite3.connect(store)
    rows = {e: (s, err, n) for e, s, err, n in db.execute(
        "SELECT experiment, status, error, epochs_done FROM runs")}
    status, error, epochs = rows["grumpy"]
    assert status == "failed" and epochs == 2
    assert error.startswith(f"callback 'grumpy' ({folder / 'grumpy.py'}) raised in "
                            "on_epoch_end: ValueError: no epoch 2 (val acc")
    # where in the plugin's own code, and nothing of the workbench's insides
    assert error.endswith(") [grumpy.py:10 in on_epoch_end]"), error
    assert "callbacks.py" not in error and "CallbackError" not in error
    assert rows["after"][0] == "done"  # the sweep went on


def test_the_apps_child_process_trains_callbacks_as_in_process_training(tmp_path):
    """The app trains in a child process (and a Ray task the same way): schedules, stops and
    learning rates there equal in-process training, stacked groups included."""
    from workbench.plan import unit_grouper
    from workbench.executors.process import ProcessExecutor
    from workbench.runner import Settings, run_all
    from workbench.session import open_session
    from workbench.store import Store

    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        hidden = 8
        batch_size = 512
        epochs = 8
        [[experiment]]
        name = "scheduled"
        [experiment.grid]
        callbacks = ["step", "cosine"]
        lr = [0.1, 0.01]
        [[experiment]]
        name = "stops"
        lr = 0.1
        callbacks = ["early_stopping"]
        patience = 1
    """))
    session = open_session(toml)

    def numbers(store):
        out = {}
        for row in store.runs():
            out[f"{row['experiment']}: {row['label']}"] = (
                row["status"], row["stopped_early"], row["test_acc"],
                [(e["lr"], e["train_loss"], e["val_acc"]) for e in store.epochs(row["id"])])
        return out

    settings = Settings(device="cpu", threads=1)
    local, child = Store(tmp_path / "local.sqlite"), Store(tmp_path / "child.sqlite")
    run_all(session.runs, session.registry, local, lambda e: None, settings,
            group=unit_grouper(True))
    run_all(session.runs, session.registry, child, lambda e: None, settings,
            ProcessExecutor(), unit_grouper(True))
    want, got = numbers(local), numbers(child)
    assert len(got) == 5 and got == want
    status, note, _, epochs = want["stops: stops"]
    assert status == DONE and note.startswith(f"stopped early at epoch {len(epochs)} of 8")
    assert [lr for lr, _, _ in want["scheduled: callbacks=step lr=0.1"][3]] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])


def test_a_store_from_before_learning_rates_gains_the_columns_and_keeps_its_epochs(tmp_path):
    from workbench.store import Store
    from workbench.store_schema import V1, _statements

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for statement in _statements(V1):
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO runs (id, experiment, config_hash, dataset, run_index, label, "
               "config, status, epochs_done) VALUES (1, 'old', 'h', 'mnist', 0, 'old', '{}', "
               "'done', 1)")
    db.execute("INSERT INTO epochs VALUES (1, 1, 0.5, 0.4, 0.9, 0.9, 1, 2.0)")
    db.commit()
    db.close()
    store = Store(path)
    assert 7 in [m.version for m in store.migrated]  # learning rates, stopped early
    assert store.epochs(1) == [{"run_id": 1, "epoch": 1, "train_loss": 0.5, "val_loss": 0.4,
                                "val_acc": 0.9, "best_val_acc": 0.9, "best_epoch": 1,
                                "seconds": 2.0, "lr": None}]
    store.add_epoch(1, EpochMetrics(2, 0.3, 0.3, 0.95, 0.95, 2, 4.0, lr=0.001))
    assert store.epochs(1)[1]["lr"] == 0.001
    assert store.runs()[0]["stopped_early"] is None


def test_a_callbacks_parameter_without_its_callback_is_an_error_not_silently_dropped(
        registry, tmp_path):
    """``patience`` set on an experiment none of whose runs uses early_stopping would change
    nothing (its runs would train to the end): the file is refused, naming the key, the
    callback and the fix. Set where the callback is used (here or in the grid), or in
    [defaults] (shared by experiments that may not use it), it is fine."""
    with pytest.raises(ConfigError) as err:
        study(registry, """
            [[experiment]]
            name = "forgot"
            patience = 2
            [[experiment]]
            name = "grid"
            [experiment.grid]
            step_every = [1, 2]
        """, tmp_path)
    text = "\n".join(err.value.problems)
    assert "experiment 'forgot': patience: a parameter of callback 'early_stopping', which " \
           "no run of this experiment uses, so it would change nothing; add callbacks = " \
           "['early_stopping'] (or put it in the grid's callbacks), or drop patience" in text
    assert "experiment 'grid': grid.step_every: a parameter of callback 'step', which no " \
           "run of this experiment uses" in text
    runs = study(registry, """
        [defaults]
        patience = 2
        [[experiment]]
        name = "used"
        callbacks = "early_stopping"
        patience = 3
        [[experiment]]
        name = "in-grid"
        [experiment.grid]
        callbacks = [[], ["step"]]
        step_every = [1, 2]
        [[experiment]]
        name = "plain"
    """, tmp_path)
    assert [r.config.get("patience") for r in runs if r.experiment == "used"] == [3]
    assert "patience" not in [r for r in runs if r.experiment == "plain"][0].config


def test_runs_that_differ_in_a_callbacks_parameter_have_their_own_labels(registry, tmp_path):
    """A grid over callbacks x a parameter of one of them: each run's label shows the
    parameter where its callback uses it (two runs were both 'callbacks=step'), and the
    stats' per-config labels show no None for keys a config leaves out."""
    from workbench import stats

    runs = study(registry, """
        [[experiment]]
        name = "shaped"
        [experiment.grid]
        callbacks = ["step", "early_stopping"]
        step_every = [1, 2]
    """, tmp_path)
    assert [r.label for r in runs] == ["callbacks=step step_every=1",
                                       "callbacks=step step_every=2",
                                       "callbacks=early_stopping"]
    rows = [{"id": i, "experiment": r.experiment, "status": DONE, "config": r.config,
             "test_acc": 0.9, "best_val_acc": 0.9, "dataset": "d"}
            for i, r in enumerate(runs)]
    assert [a.label for a in stats.aggregate(rows)] == [r.label for r in runs]


"""experiments.toml -> runs: the seed study's shape, defaults stated once, grid expansion."""

import pytest

from conftest import ROOT

from workbench.config import ConfigError, load_study
from workbench.plan import plan_study, summarize
from workbench.session import open_session


def test_seed_study_plans_every_experiment_of_the_report():
    session = open_session(ROOT / "experiments.toml")
    by_exp = {s.experiment: (s.runs, s.epochs) for s in summarize(session.runs)}
    assert by_exp == {"baseline": (1, 3), "grid": (81, 486), "grid-seeds": (60, 450),
                      "deep": (1, 10), "activations": (2, 20), "dropout": (1, 10),
                      "final": (5, 100), "final-cosine": (1, 20), "final-activations": (1, 20)}
    seeds = [r for r in session.runs if r.experiment == "grid-seeds"]
    assert {(r.config["lr"], r.config["hidden"], r.config["epochs"], r.config["batch_size"],
             r.config["seed"]) for r in seeds} == {
        (1e-3, h, e, b, s) for h in (100, 200) for e in (5, 10) for b in (64, 128, 256)
        for s in range(11, 16)}
    assert sorted(r.config["seed"] for r in session.runs if r.experiment == "final") == [
        11, 12, 13, 14, 15]
    runs = {r.experiment: r for r in session.runs}
    base = runs["baseline"].config
    assert (base["lr"], base["hidden"], base["epochs"], base["batch_size"], base["seed"],
            base["model"]) == (1e-3, 100, 3, 128, 11, "baseline_mlp")
    final = runs["final"].config
    assert (final["model"], final["layers"], final["hidden"], final["dropout"], final["lr"],
            final["epochs"], final["batch_size"]) == ("deep_mlp", 3, 200, 0.2, 5e-4, 20, 64)
    acts = [r.config["activation"] for r in session.runs if r.experiment == "activations"]
    assert acts == ["sigmoid", "tanh"]
    assert runs["dropout"].config["dropout"] == 0.5
    grid = [r for r in session.runs if r.experiment == "grid"]
    assert {(r.config["lr"], r.config["hidden"], r.config["epochs"], r.config["batch_size"])
            for r in grid} == {(lr, h, e, b) for lr in (1e-2, 1e-3, 1e-4) for h in (50, 100, 200)
                               for e in (3, 5, 10) for b in (64, 128, 256)}
    assert grid[0].label == "batch_size=64 epochs=3 hidden=50 lr=0.01"
    assert len({r.config_hash for r in grid}) == 81


def test_config_hash_ignores_int_float_spelling(registry, tmp_path):
    a = tmp_path / "a.toml"
    a.write_text('[[experiment]]\nname = "x"\nlr = 0.001\nhidden = 100\n')
    b = tmp_path / "b.toml"
    b.write_text('[[experiment]]\nname = "x"\nhidden = 100\nlr = 1e-3\n')
    ra = plan_study(load_study(a, registry), registry)
    rb = plan_study(load_study(b, registry), registry)
    assert ra[0].config_hash == rb[0].config_hash


def test_all_problems_of_a_file_come_together(registry, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[defaults]\nlr = -1\n[[experiment]]\nname = "a"\nhiden = 5\n'
                   '[[experiment]]\nname = "a"\nactivation = "swish"\n')
    with pytest.raises(ConfigError) as err:
        load_study(bad, registry)
    text = str(err.value)
    assert "lr: got -1" in text and "> 0" in text
    assert "unknown key 'hiden' (did you mean 'hidden'?)" in text
    assert "duplicate experiment name" in text
    assert "unknown activation 'swish'" in text and "relu" in text
    assert all(p.startswith(str(bad)) for p in err.value.problems)

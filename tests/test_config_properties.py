"""Property-based: any experiments file either validates into runs or fails with a
ConfigError whose every line names the file and says what is wrong; never another exception."""

from __future__ import annotations

import math
import re
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings, strategies as st

from workbench.config import ACTIVATIONS, OPTIMIZERS, ConfigError, load_study, read_toml
from workbench.plan import plan_study

PATH = Path("/virtual/experiments.toml")
SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]

# Values a TOML file can hold, biased towards the keys and values the workbench knows.
KNOWN_KEYS = ["model", "dataset", "lr", "hidden", "activation", "dropout", "epochs",
              "batch_size", "seed", "optimizer", "layers", "kind", "activations", "p",
              "description", "name", "grid", "hiden", "epoch"]
scalars = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["relu", "swish", "adam", "sgd", "mnist-sample", "mnist", "cifar",
                     "baseline_mlp", "deep_mlp", "activation_swap", "dropout", "", "x"]),
    st.text(max_size=8),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
keys = st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=8)
experiment = st.dictionaries(keys, values, max_size=6) | st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "a "]),
     "grid": st.dictionaries(st.sampled_from(KNOWN_KEYS[:11]), st.lists(scalars, max_size=3),
                             max_size=2)},
    optional={k: scalars for k in KNOWN_KEYS[:14]})
wild_studies = st.fixed_dictionaries(
    {},
    optional={"title": values, "defaults": st.dictionaries(keys, values, max_size=5),
              "experiment": st.lists(experiment, max_size=3) | values,
              "executor": values, "plugin_dirs": values, "ray_address": values,
              "extra": values})


# Near-valid files: sensible values with, now and then, a wild one, an unknown key or a typo.
GOOD = {
    "lr": st.floats(1e-5, 1.0), "hidden": st.integers(1, 64),
    "activation": st.sampled_from(ACTIVATIONS), "dropout": st.floats(0.0, 0.99),
    "epochs": st.integers(1, 5), "batch_size": st.integers(1, 512),
    "seed": st.integers(0, 2**31), "optimizer": st.sampled_from(OPTIMIZERS),
    "model": st.sampled_from(["baseline_mlp", "deep_mlp"]),
    "dataset": st.sampled_from(["mnist", "mnist-sample", "fashion-mnist"]),
    "layers": st.integers(1, 4),
}
PARAMS = sorted(set(GOOD) - {"layers"})


@st.composite
def _param(draw, key: str):
    wild = draw(st.integers(0, 14)) == 0  # now and then a value from anywhere
    return draw(scalars if wild or key not in GOOD else GOOD[key])


def _params(draw, model_param: bool = False) -> dict:
    chosen = draw(st.lists(st.sampled_from(PARAMS), unique=True, max_size=4))
    if draw(st.integers(0, 14)) == 0:
        chosen.append(draw(st.sampled_from(["hiden", "learning_rate", "layers"])))  # typos
    params = {k: draw(_param(k)) for k in chosen}
    if model_param and params.get("model") == "deep_mlp" and draw(st.booleans()):
        params["layers"] = draw(_param("layers"))
    return params


@st.composite
def studies(draw) -> dict:
    raw: dict = {}
    if draw(st.booleans()):
        raw["title"] = draw(st.text(max_size=10) | scalars)
    raw["defaults"] = _params(draw)
    exps = []
    for i in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3]))):
        name = draw(st.sampled_from([f"e{i}"] * 8 + ["dup", ""]))
        exp = {"name": name, **_params(draw, model_param=True)}
        kind = draw(st.sampled_from([None] * 5 + ["activation_swap", "dropout", "nope"]))
        if kind == "activation_swap" and draw(st.booleans()):
            exp["activations"] = draw(st.lists(st.sampled_from(ACTIVATIONS + ("swish",)),
                                               max_size=3) | scalars)
        if kind == "dropout" and draw(st.booleans()):
            exp["p"] = draw(st.lists(_param("dropout"), max_size=3) | _param("dropout"))
        if kind:
            exp["kind"] = kind
        if draw(st.booleans()):
            grid_keys = draw(st.lists(st.sampled_from(PARAMS), unique=True, max_size=2))
            least = 0 if draw(st.integers(0, 9)) == 0 else 1  # now and then an empty list
            exp["grid"] = {k: draw(st.lists(_param(k), min_size=least, max_size=3))
                           for k in grid_keys}
        exps.append(exp)
    raw["experiment"] = exps
    if draw(st.integers(0, 14)) == 0:
        raw[draw(keys)] = draw(values)
    return raw


def _check_outcome(raw: dict, registry) -> None:
    try:
        study = load_study(PATH, registry, raw=raw)
        runs = plan_study(study, registry)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list its problems"
        for problem in exc.problems:
            assert problem.startswith(f"{PATH}: "), problem
            assert len(problem) > len(str(PATH)) + 10, problem
            assert "Traceback" not in problem
        return
    assert runs, "a valid study plans at least one run"
    for run in runs:  # what validates is really trainable: sane, finite values
        c = run.config
        assert c["lr"] > 0 and math.isfinite(c["lr"]), c
        assert c["epochs"] >= 1 and c["batch_size"] >= 1 and c["hidden"] >= 1, c
        assert 0 <= c["dropout"] < 1, c
        assert c["model"] in registry.models and c["dataset"] in registry.datasets
        assert len(run.config_hash) == 64


@settings(max_examples=300, deadline=None, suppress_health_check=SUPPRESS)
@given(raw=studies())
def test_near_valid_studies_validate_or_fail_clearly(raw, registry):
    _check_outcome(raw, registry)


@settings(max_examples=100, deadline=None, suppress_health_check=SUPPRESS)
@given(raw=wild_studies)
def test_wild_studies_fail_clearly(raw, registry):
    _check_outcome(raw, registry)


@settings(max_examples=100, deadline=None, suppress_health_check=SUPPRESS)
@given(raw=studies())
def test_random_studies_survive_a_round_trip_through_toml(raw, registry, tmp_path_factory):
    """The same through a real file: tomli_w writes what TOML can hold; we read it back."""
    try:
        text = tomli_w.dumps(raw)
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. a list mixing tables and numbers)
    path = tmp_path_factory.mktemp("toml") / "experiments.toml"
    path.write_text(text)
    try:
        loaded = read_toml(path)
    except ConfigError as exc:
        assert str(path) in exc.problems[0]
        return
    _check_outcome(loaded, registry)


@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
@given(text=st.lists(st.sampled_from(list('[]="#.\n abc1-_{},') + ["name", "lr", " = ",
                                                                    "[[experiment]]"]),
                     max_size=40).map("".join))
def test_random_text_is_toml_or_a_located_error(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "experiments.toml"
    path.write_text(text)
    try:
        read_toml(path)
    except ConfigError as exc:
        (problem,) = exc.problems
        assert problem.startswith(f"{path}: not valid TOML: ")
        assert re.search(r"line \d+, column \d+|end of document", problem), problem

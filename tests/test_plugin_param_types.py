"""A model plugin's parameter whose default is None gets its type from the declaration."""

from __future__ import annotations

import sqlite3
import json

from conftest import run_cli
from tiny_study import tiny_study

PLUGIN = '''
from workbench import ModelSpec, hookimpl
from workbench.models import build_mlp


def build(config, in_features, num_classes):
    second = config["second"] if config["second"] is not None else config["hidden"]
    return build_mlp(in_features, [config["hidden"], second], num_classes,
                     config["activation"], config["dropout"])


@hookimpl
def register_models(register):
    register(ModelSpec(name="two_layer", build=build, params={"second": None},
                       param_types={"second": int}))
    register(ModelSpec(name="untyped", build=build, params={"second": None}))
'''


def _study(tmp_path, body: str):
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "two_layer.py").write_text(PLUGIN)
    return tiny_study(tmp_path, body)


def test_a_declared_type_lets_a_none_default_be_set_and_left_unset(tmp_path):
    toml = _study(tmp_path, '''
        [[experiment]]
        name = "set"
        model = "two_layer"
        second = 8
        [[experiment]]
        name = "unset"
        model = "two_layer"
    ''')
    store = tmp_path / "s.sqlite"
    result = run_cli("--headless", str(toml), "--store", str(store))
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT experiment, config FROM runs").fetchall())
    assert json.loads(rows["set"])["second"] == 8
    assert json.loads(rows["unset"])["second"] is None


def test_a_wrong_value_for_a_declared_type_names_the_key_and_the_type(tmp_path):
    toml = _study(tmp_path, '''
        [[experiment]]
        name = "bad"
        model = "two_layer"
        second = "wide"
    ''')
    result = run_cli("--headless", str(toml), "--store", str(tmp_path / "s.sqlite"))
    assert result.returncode == 2
    assert "experiment 'bad': second: got 'wide' (str), expected an integer" in result.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_an_undeclared_none_default_says_how_the_plugin_can_declare_it(tmp_path):
    toml = _study(tmp_path, '''
        [[experiment]]
        name = "untyped"
        model = "untyped"
        second = 8
    ''')
    result = run_cli("--headless", str(toml), "--dry-run")
    assert result.returncode == 2
    assert "second: got 8 (int)" in result.stderr
    assert "param_types" in result.stderr and "NoneType" not in result.stderr
    # said when the plugin loads, before any file sets it (two_layer declares its type)
    listed = run_cli("--list-plugins", "--plugins", str(tmp_path / "plugins"))
    assert "model 'untyped': parameter(s) second default to None with no declared type, so " \
           "no value of them can be set; declare one: ModelSpec(param_types={'second': " \
           "int})" in " ".join(listed.stdout.split())
    assert "PROBLEM" in listed.stdout and "FAILED" not in listed.stdout  # it did load
    assert "'two_layer'" not in listed.stdout.split("PROBLEM")[-1]

"""Plugin discovery: built-ins, drop-in folders, broken modules, the --list-plugins listing."""

import textwrap

from conftest import run_cli

from workbench.plugins import load_plugins
from workbench.session import open_session

DROP_IN = '''
from workbench import ModelSpec, hookimpl
from workbench.models import build_mlp


def build(config, in_features, num_classes):
    return build_mlp(in_features, [config["hidden"], config["hidden"] // 2], num_classes,
                     config["activation"], config["dropout"])


@hookimpl
def register_models(register):
    register(ModelSpec(name="funnel_mlp", build=build, params={"shrink": 2},
                       description="two hidden layers, the second half as wide"))
'''


def test_builtins_are_ordinary_plugins(registry):
    assert set(registry.models) >= {"baseline_mlp", "deep_mlp"}
    assert set(registry.experiments) >= {"activation_swap", "dropout"}
    assert set(registry.datasets) >= {"mnist", "mnist-sample", "fashion-mnist"}
    assert registry.source_of("model", "deep_mlp") == "built-in workbench_plugins.deep_mlp"
    assert registry.failures == []


def test_module_dropped_into_a_folder_is_discovered_and_trains(tmp_path):
    folder = tmp_path / "my-plugins"
    folder.mkdir()
    (folder / "funnel.py").write_text(DROP_IN)
    registry = load_plugins(plugin_dirs=[folder], entry_points=False)
    assert "funnel_mlp" in registry.models
    assert registry.source_of("model", "funnel_mlp") == f"drop-in {folder / 'funnel.py'}"
    assert registry.models["funnel_mlp"].params == {"shrink": 2}

    toml = tmp_path / "exp.toml"
    toml.write_text(textwrap.dedent('''
        [defaults]
        dataset = "mnist-sample"
        epochs = 1
        [[experiment]]
        name = "funnel"
        model = "funnel_mlp"
        hidden = 32
    '''))
    result = run_cli("--headless", str(toml), "--plugins", str(folder), "--store",
                     str(tmp_path / "s.sqlite"))
    assert result.returncode == 0, result.stderr
    assert "[done] funnel" in result.stdout


def test_plugins_folder_beside_the_toml_is_loaded_without_flags(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "funnel.py").write_text(DROP_IN)
    toml = tmp_path / "experiments.toml"
    toml.write_text('[[experiment]]\nname = "f"\nmodel = "funnel_mlp"\n')
    session = open_session(toml)
    assert session.runs[0].config["model"] == "funnel_mlp"
    assert session.runs[0].config["shrink"] == 2


def test_broken_plugin_is_reported_and_the_others_still_load(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("import nonexistent_module_xyz\n")
    (folder / "raises.py").write_text(textwrap.dedent('''
        from workbench import hookimpl
        @hookimpl
        def register_models(register):
            raise RuntimeError("boom in registration")
    '''))
    (folder / "funnel.py").write_text(DROP_IN)
    registry = load_plugins(plugin_dirs=[folder], entry_points=False)
    assert "funnel_mlp" in registry.models and "baseline_mlp" in registry.models
    by_source = {f.source: f.error for f in registry.failures}
    assert "No module named 'nonexistent_module_xyz'" in by_source[str(folder / "broken.py")]
    assert "boom in registration" in by_source[f"drop-in {folder / 'raises.py'}"]

    listing = run_cli("--list-plugins", "--plugins", str(folder))
    assert listing.returncode == 0
    assert "funnel_mlp" in listing.stdout and str(folder / "funnel.py") in listing.stdout
    assert "FAILED" in listing.stdout and "broken.py" in listing.stdout


def test_list_plugins_names_every_builtin_with_its_source():
    listing = run_cli("--list-plugins")
    assert listing.returncode == 0
    for name in ("baseline_mlp", "deep_mlp", "activation_swap", "dropout", "mnist",
                 "mnist-sample", "fashion-mnist"):
        assert name in listing.stdout
    assert "built-in workbench_plugins.activation_swap" in listing.stdout


def _blocks(listing: str) -> dict[tuple[str, str], list[str]]:
    """--list-plugins output by (kind, name): each entry's own indented lines."""
    blocks, current = {}, None
    for line in listing.splitlines():
        if line.startswith(" "):
            blocks[current].append(line.strip())
        else:
            kind, name = line.split()[:2]
            current = (kind, name)
            blocks[current] = []
    return blocks


def test_list_plugins_shows_each_models_and_callbacks_parameters(tmp_path):
    folder = tmp_path / "my-plugins"
    folder.mkdir()
    (folder / "wide.py").write_text(textwrap.dedent('''
        from workbench import ModelSpec, build_mlp, hookimpl

        def build(config, in_features, num_classes):
            return build_mlp(in_features, [config["width"] or 64], num_classes, "relu", 0.0)

        @hookimpl
        def register_models(register):
            register(ModelSpec(name="wide_mlp", build=build,
                               params={"width": None, "act": "relu"},
                               param_types={"width": int}, description="one wide layer"))
    '''))
    listing = run_cli("--list-plugins", "--plugins", str(folder))
    assert listing.returncode == 0, listing.stderr
    blocks = _blocks(listing.stdout)
    assert "params: layers=3, activations=[]" in blocks[("model", "deep_mlp")]
    assert "params: channels=16" in blocks[("model", "small_cnn")]
    assert "params: none" in blocks[("model", "baseline_mlp")]
    assert "params: patience=3" in blocks[("callback", "early_stopping")]
    assert "params: step_every=2, step_gamma=0.5" in blocks[("callback", "step")]
    assert "params: width=None (int), act='relu'" in blocks[("model", "wide_mlp")]
    # an experiment kind's options, as an experiment table sets them
    assert "params: activations=['relu', 'sigmoid', 'tanh']" in \
        blocks[("experiment", "activation_swap")]
    # data sets declare no parameters: no params line
    assert not any(line.startswith("params:") for line in blocks[("dataset", "mnist")])


def test_every_module_of_the_builtin_folder_loads_without_registration(registry):
    from workbench.plugins import builtin_modules
    from conftest import ROOT

    files = sorted(p.stem for p in (ROOT / "plugins").glob("*.py") if not p.name.startswith("_"))
    assert builtin_modules()[1:] == [f"workbench_plugins.{name}" for name in files]
    loaded = {registry.pm.get_name(p) for p in registry.pm.get_plugins()}
    assert {f"workbench_plugins.{name}" for name in files} <= loaded


def test_a_users_own_plugins_package_does_not_shadow_the_builtins(tmp_path):
    # `python -m` puts the working folder first on the path: a user's plugins/ package there
    # once replaced the built-ins of the same module names.
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "__init__.py").write_text("")
    (tmp_path / "plugins" / "baseline_mlp.py").write_text(DROP_IN)  # registers funnel_mlp
    listing = run_cli("--list-plugins", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "FAILED" not in listing.stdout
    assert "built-in workbench_plugins.baseline_mlp" in listing.stdout
    assert f"drop-in {tmp_path / 'plugins' / 'baseline_mlp.py'}" in listing.stdout


def test_a_plugin_folder_named_relative_to_the_file_is_named_plainly(tmp_path):
    """plugin_dirs = ["../shared"] in sub/x.toml: messages name <tmp>/shared/broken.py, not
    <tmp>/sub/../shared/broken.py."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "broken.py").write_text("raise RuntimeError('not today')\n")
    toml = tmp_path / "sub" / "x.toml"
    toml.write_text('plugin_dirs = ["../shared"]\n[defaults]\ndataset = "mnist-sample"\n'
                    '[[experiment]]\nname = "a"\n')
    out = run_cli("--headless", str(toml), "--dry-run")
    assert f"WARNING: plugin {tmp_path / 'shared' / 'broken.py'} failed to load: " \
           "RuntimeError: not today" in out.stdout, out.stdout + out.stderr
    assert ".." not in out.stdout

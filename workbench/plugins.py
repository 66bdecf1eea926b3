"""Plugin manager: built-ins, entry points and drop-in plugin folders, into one Registry.

A plugin that fails (on import or inside a registration hook) is recorded in
``Registry.failures`` with its path and error; every other plugin still loads. So is a
function marked ``@hookimpl`` whose name is no hook (a misspelling such as ``on_epoch_end``),
a ``register(...)`` given the wrong type, and a second registration of a taken name: the
first one loaded keeps the name (built-ins, then entry points, then drop-in folders in the
order given, files by name), and the failure names the later plugin.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import difflib

import pluggy

from workbench import hookspecs
from workbench.types import CallbackKind, DatasetSpec, ExperimentKind, ModelSpec

ENTRY_POINT_GROUP = "mnist_workbench"
BUILTIN_DATASETS = "workbench.data.builtin"
# The repository's plugins/ folder, under a name the project owns (setup.py maps it in the
# wheel): a bare `plugins` would collide with other distributions and with a user's folder.
BUILTIN_PACKAGE = "workbench_plugins"
HOOK_MARKER = "mnist_workbench_impl"  # the attribute @hookimpl sets on a function
EVENT_HOOKS = ("on_run_started", "on_epoch_ended", "on_run_finished")


@dataclass(frozen=True)
class PluginFailure:
    source: str  # a path, a module or an entry point
    error: str  # one line: the exception
    detail: str = ""  # the traceback's summary
    loaded: bool = False  # the plugin's other offers loaded (only this part is wrong)

    @property
    def message(self) -> str:
        """What the faces say of it: 'plugin X failed to load: ...', or 'plugin X: ...'
        where the rest of the plugin loaded."""
        return f"plugin {self.source}{': ' if self.loaded else ' failed to load: '}{self.error}"


@dataclass
class Registry:
    """Everything the loaded plugins offer, with where each thing came from."""

    pm: pluggy.PluginManager
    models: dict[str, ModelSpec] = field(default_factory=dict)
    experiments: dict[str, ExperimentKind] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    callbacks: dict[str, CallbackKind] = field(default_factory=dict)
    hooks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # source -> event hooks
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> source
    failures: list[PluginFailure] = field(default_factory=list)
    # How it was loaded, so that another process can load the same plugins (see
    # workbench.executors.process); None when objects were registered directly (``extra``).
    load_args: dict[str, Any] | None = None

    def source_of(self, kind: str, name: str) -> str:
        return self.sources.get((kind, name), "?")

    def listing(self) -> list[tuple[str, str, str, str]]:
        """(kind, name, description, source) for every model, experiment kind, data set and
        training callback, then every plugin with event hooks (kind "hooks")."""
        rows = []
        for kind, table in (("model", self.models), ("experiment", self.experiments),
                            ("dataset", self.datasets), ("callback", self.callbacks)):
            for name, spec in sorted(table.items()):
                rows.append((kind, name, spec.description, self.source_of(kind, name)))
        for source, hooks in sorted(self.hooks.items()):
            rows.append(("hooks", source.rsplit("/", 1)[-1], ", ".join(hooks), source))
        return rows

    def drop_in_files(self) -> list[Path]:
        """The drop-in plugin files loaded (what a sweep needs besides its experiments file
        to be run again), in load order."""
        return [Path(p.__file__) for p in self.pm.get_plugins()
                if (self.pm.get_name(p) or "").startswith("dropin:")
                and getattr(p, "__file__", None)]

    def params_of(self, kind: str, name: str) -> str | None:
        """A model's or training callback's declared parameters (an experiment kind's
        options) with their defaults, as a file would spell them: "layers=3,
        activations=[]" ("none" when it declares none); a default that does not tell the
        type (None) shows its declared type: "width=None (int)". None for data sets."""
        spec = {"model": self.models, "callback": self.callbacks,
                "experiment": self.experiments}.get(kind, {}).get(name)
        if spec is None:
            return None
        types = getattr(spec, "param_types", {})
        parts = []
        declared = spec.options if kind == "experiment" else spec.params
        for key, default in declared.items():
            text = f"{key}={default!r}"
            if key in types:
                one = types[key] if isinstance(types[key], tuple) else (types[key],)
                text += f" ({' or '.join(getattr(t, '__name__', str(t)) for t in one)})"
            parts.append(text)
        return ", ".join(parts) or "none"


def _summary(exc: BaseException) -> tuple[str, str]:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}", "".join(traceback.format_exception(exc))[-2000:]


def _plugin_source(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin) or repr(plugin)
    path = getattr(plugin, "__file__", None)
    if name.startswith("dropin:") and path:
        return f"drop-in {path}"
    if name.startswith("entrypoint:"):
        return name.replace("entrypoint:", "entry point ")
    if isinstance(plugin, ModuleType) and (
            name == BUILTIN_DATASETS or name.startswith(BUILTIN_PACKAGE + ".")):
        return f"built-in {name}"
    return name


def builtin_package() -> ModuleType:
    """The built-in plugins' package: the plugins/ folder of the source checkout this
    workbench runs from (so a checkout never uses another tree's installed copy), else the
    installed ``workbench_plugins``."""
    if BUILTIN_PACKAGE in sys.modules:
        return sys.modules[BUILTIN_PACKAGE]
    root = Path(__file__).resolve().parents[1]
    init = root / "plugins" / "__init__.py"
    if not ((root / "pyproject.toml").is_file() and init.is_file()):
        return importlib.import_module(BUILTIN_PACKAGE)
    return _import_file(BUILTIN_PACKAGE, init, package=True)


def builtin_modules() -> list[str]:
    """Module names of every built-in plugin: the data sets, then each module of the built-in
    package (a new .py file there is picked up with no registration; `_name.py` is skipped)."""
    names = sorted(m.name for m in pkgutil.iter_modules(builtin_package().__path__)
                   if not m.name.startswith("_"))
    return [BUILTIN_DATASETS, *(f"{BUILTIN_PACKAGE}.{name}" for name in names)]


def load_module_file(path: Path) -> ModuleType:
    """Import a .py file as a module with a name unique to its path (no packaging needed)."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return _import_file(f"workbench_dropin_{path.stem}_{digest}", path)


def _import_file(mod_name: str, path: Path, package: bool = False) -> ModuleType:
    """Import ``path`` as ``mod_name`` (a package's __init__.py when ``package``)."""
    spec = importlib.util.spec_from_file_location(
        mod_name, path, submodule_search_locations=[str(path.parent)] if package else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _loaded_files(pm: pluggy.PluginManager) -> set[Path]:
    files = set()
    for plugin in pm.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path:
            files.add(Path(path).resolve())
    return files


def load_plugins(plugin_dirs: Iterable[Path] = (), extra: Iterable[object] = (),
                 entry_points: bool = True, builtins: bool = True) -> Registry:
    """Build a Registry from built-ins, entry points, drop-in folders and ``extra`` objects."""
    plugin_dirs = list(plugin_dirs)
    pm = pluggy.PluginManager("mnist_workbench")
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []

    if builtins:
        try:
            modules = builtin_modules()
        except Exception as exc:  # the data sets still load
            failures.append(PluginFailure(BUILTIN_PACKAGE, *_summary(exc)))
            modules = [BUILTIN_DATASETS]
        for mod_name in modules:
            try:
                pm.register(importlib.import_module(mod_name), name=mod_name)
            except Exception as exc:  # a broken built-in must not hide the others
                failures.append(PluginFailure(mod_name, *_summary(exc)))

    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            name = f"entrypoint:{ep.name}"
            if pm.has_plugin(name):
                continue
            try:
                pm.register(ep.load(), name=name)
            except Exception as exc:
                failures.append(PluginFailure(f"entry point {ep.name} ({ep.value})",
                                              *_summary(exc)))

    for folder in plugin_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            failures.append(PluginFailure(str(folder), "plugin folder does not exist"))
            continue
        already = _loaded_files(pm)
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or path.resolve() in already:
                continue
            try:
                module = load_module_file(path)
                pm.register(module, name=f"dropin:{path.resolve()}")
            except Exception as exc:
                failures.append(PluginFailure(str(path), *_summary(exc)))

    extra = list(extra)
    for obj in extra:
        pm.register(obj)

    for plugin in pm.get_plugins():
        failures += _unknown_hooks(pm, plugin)

    load_args = None if extra else dict(plugin_dirs=[str(Path(d)) for d in plugin_dirs],
                                         entry_points=entry_points, builtins=builtins)
    registry = Registry(pm=pm, failures=failures, load_args=load_args)
    _collect(registry, "register_models", "model", registry.models)
    _collect(registry, "register_experiments", "experiment", registry.experiments)
    _collect(registry, "register_datasets", "dataset", registry.datasets)
    _collect(registry, "register_callbacks", "callback", registry.callbacks)
    for plugin in pm.get_plugins():
        names = tuple(h for h in EVENT_HOOKS if callable(getattr(plugin, h, None))
                      and hasattr(getattr(plugin, h), HOOK_MARKER))
        if names:
            registry.hooks[_plugin_source(pm, plugin)] = names
    return registry


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[PluginFailure]:
    """A function marked @hookimpl whose name is no hook: pluggy would never call it."""
    known = [n for n in dir(hookspecs) if not n.startswith("_")
             and hasattr(getattr(hookspecs, n), "mnist_workbench_spec")]
    out = []
    for name in dir(plugin):
        if name in known or not hasattr(getattr(plugin, name, None), HOOK_MARKER):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        out.append(PluginFailure(_plugin_source(pm, plugin),
                                 f"@hookimpl {name!r} is not a hook{hint}; it is never "
                                 f"called (the plugin's other hooks are). Hooks: "
                                 f"{', '.join(sorted(known))}", loaded=True))
    return out


_KIND_TYPES = {"model": ModelSpec, "experiment": ExperimentKind, "dataset": DatasetSpec,
               "callback": CallbackKind}


def _collect(registry: Registry, hook_name: str, kind: str, table: dict[str, Any]) -> None:
    """Call one registration hook plugin by plugin, so one failure does not stop the rest."""
    hook = getattr(registry.pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: the first loaded keeps a name
        source = _plugin_source(registry.pm, impl.plugin)

        def register(spec: Any, _source: str = source) -> None:
            want = _KIND_TYPES[kind]
            if not isinstance(spec, want):  # said, and the plugin's other offers still load
                registry.failures.append(PluginFailure(
                    _source, f"{hook_name}: register() got {type(spec).__name__} "
                             f"{spec!r:.60}, expected a workbench.{want.__name__}(...); "
                             "ignored", loaded=True))
                return
            if spec.name in table:
                registry.failures.append(PluginFailure(
                    _source, f"{kind} {spec.name!r} is already registered by "
                             f"{registry.source_of(kind, spec.name)}; ignored", loaded=True))
                return
            table[spec.name] = spec
            registry.sources[(kind, spec.name)] = _source
            untyped = [k for k, v in spec.params.items()
                       if v is None and k not in spec.param_types] if kind == "model" else []
            if untyped:  # said now, not first when a user's file sets one
                registry.failures.append(PluginFailure(
                    _source, f"model {spec.name!r}: parameter(s) {', '.join(untyped)} default "
                             "to None with no declared type, so no value of them can be set; "
                             f"declare one: ModelSpec(param_types={{{untyped[0]!r}: int}}) (or "
                             "another type); the model is registered", loaded=True))

        try:
            impl.function(register=register)
        except Exception as exc:
            registry.failures.append(PluginFailure(source, *_summary(exc)))


def call_event_hook(registry: Registry, hook_name: str, **kwargs: Any) -> None:
    """Call an event hook plugin by plugin; re-raise a failure as PluginError naming the plugin."""
    hook = getattr(registry.pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):
        try:
            impl.function(**{k: kwargs[k] for k in impl.argnames})
        except Exception as exc:
            raise PluginError(_plugin_source(registry.pm, impl.plugin), hook_name, exc) from exc


class PluginError(Exception):
    """A plugin raised inside a hook; the message names the plugin and the hook."""

    def __init__(self, source: str, hook: str, exc: BaseException):
        self.source, self.hook = source, hook
        summary, _ = _summary(exc)
        super().__init__(f"plugin {source} raised in {hook}: {summary}")


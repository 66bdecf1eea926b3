"""From command-line choices to what a face needs: plugins, the validated study, the runs.

Both faces (headless and TUI) start here, so they accept exactly the same files and flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from workbench.config import (ConfigError, ExperimentSpec, Study, plugin_dirs_of, read_toml,
                              validate_study)
from workbench.plan import plan_study
from workbench.plugins import PluginFailure, Registry, load_plugins
from workbench.types import RunSpec


@dataclass
class Session:
    registry: Registry
    study: Study
    runs: list[RunSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what planning merged, said to the user

    @property
    def plugin_failures(self) -> list[PluginFailure]:
        return self.registry.failures


def plugin_dir_problems(plugin_dirs: Sequence[Path]) -> list[str]:
    """One problem per --plugins folder that is not there."""
    return [f"--plugins {folder}: "
            f"{'not a folder' if Path(folder).exists() else 'folder does not exist'}"
            for folder in plugin_dirs if not Path(folder).is_dir()]


def open_session(path: Path | None, plugin_dirs: Sequence[Path] = (), only: Sequence[str] = (),
                 dataset: str | None = None, raw: dict | None = None) -> Session:
    """Load plugins (built-ins, entry points, plugins/ beside the file, --plugins folders),
    validate the experiments file and plan its runs. Raises ConfigError for bad input."""
    if raw is None:
        raw = read_toml(path) if path is not None else {}
    problems = plugin_dir_problems(plugin_dirs)
    dirs = [*plugin_dirs_of(raw, path), *map(Path, plugin_dirs)]
    registry = load_plugins(plugin_dirs=[d for d in dirs if d.is_dir()])
    try:  # the file's problems and the flags' problems come out together
        study = validate_study(raw, registry, path)
        notes: list[str] = []
        runs = plan_study(study, registry, only=only, dataset=dataset, notes=notes)
    except ConfigError as exc:  # a plugin that failed to load may explain an unknown name
        loads = [f.message for f in registry.failures]
        raise ConfigError(problems + exc.problems + loads) from None
    if problems:
        raise ConfigError(problems)
    return Session(registry=registry, study=study, runs=runs, notes=notes)


def store_session(rows: Sequence[dict], title: str, plugin_dirs: Sequence[Path] = ()
                  ) -> Session:
    """A session over the runs a store holds (``store.runs()``), for browsing a store without
    its experiments file: its experiments, in the order first stored, and one run per
    stored config."""
    problems = [f"--plugins {folder}: folder does not exist"
                for folder in plugin_dirs if not Path(folder).is_dir()]
    if problems:
        raise ConfigError(problems)
    registry = load_plugins(plugin_dirs=list(map(Path, plugin_dirs)))
    runs: dict[tuple[str, str], RunSpec] = {}
    counts: dict[str, int] = {}
    for row in rows:
        key = (row["experiment"], row["config_hash"])
        if key not in runs:
            index = counts.get(row["experiment"], 0)
            counts[row["experiment"]] = index + 1
            runs[key] = RunSpec(row["experiment"], index, dict(row["config"]), row["label"])
    experiments = tuple(ExperimentSpec(name, f"{n} run{'s' if n != 1 else ''} in the store",
                                       None, {}) for name, n in counts.items())
    return Session(registry=registry, study=Study(None, title, experiments),
                   runs=list(runs.values()))

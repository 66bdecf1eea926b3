"""How the faces write numbers, configs and runs for a person, in one place (headless, the
app and the export alike)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from workbench.defaults import with_optional_defaults


def pct(value: float | None) -> str:
    """0.9123 -> '91.23%'; None -> '-'."""
    return "-" if value is None else f"{100 * value:.2f}%"


def fmt(value: Any) -> str:
    """A config value as a user wrote it: floats short (0.001), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):  # per-layer activations, callbacks
        return "+".join(fmt(v) for v in value) or "none"
    return str(value)


def csv_value(value: Any) -> Any:
    """A config value in an exported CSV cell: a list as JSON (["warmup", "early_stopping"],
    readable back with json.loads), anything else as it is."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def varying_keys(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys with more than one value among these configs, sorted. An optional key a
    config leaves out counts with its default; any other key a config lacks (a parameter of
    a callback it does not use) counts only where present: the callbacks tell those apart."""
    filled = [with_optional_defaults(c) for c in configs]
    keys = sorted({k for c in filled for k in c})
    return [k for k in keys if len({repr(c[k]) for c in filled if k in c}) > 1]


def config_label(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """'lr=0.01 hidden=50': the config's values of ``keys`` (usually ``varying_keys``), those
    it has (optional keys at their default)."""
    filled = with_optional_defaults(config)
    return " ".join(f"{k}={fmt(filled[k])}" for k in keys if k in filled)


def run_name(experiment: str, label: str) -> str:
    """"grid: lr=0.01 hidden=50", or the experiment alone when the label only repeats it
    (an experiment of one run)."""
    return experiment if label in ("", experiment) else f"{experiment}: {label}"


def run_time(seconds: float | None, stack_size: int | None = 1) -> str:
    """A run's training time: "3.1s", or "3.1s/9" for a run trained in a stack of 9 runs,
    which took those 3.1 s together (so the members' times do not add up)."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" + (f"/{stack_size}" if stack_size and stack_size > 1 else "")


def status_label(row: Mapping[str, Any]) -> str:
    """A stored run's status as shown: a run stopped early by a callback says at which epoch."""
    if row.get("stopped_early"):
        return f"{row['status']} (stopped @{row['epochs_done']})"
    return str(row["status"])


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"

"""How the faces write numbers and configs, in one place."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def pct(value: float | None) -> str:
    """0.9123 -> '91.23%'; None -> '-'."""
    return "-" if value is None else f"{100 * value:.2f}%"


def fmt(value: Any) -> str:
    """A config value as a user wrote it: floats short (0.001), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def varying_keys(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys with more than one value among these configs, sorted."""
    configs = list(configs)
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]

"""How the app names things in sentences: counts with the right plural, runs by name."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def run_name(experiment: str, label: str) -> str:
    """``grid: lr=0.01 hidden=50``; a single-run experiment (its label is its own name) is
    just ``baseline``, not ``baseline: baseline``."""
    return experiment if label in ("", experiment) else f"{experiment}: {label}"

"""How a run is named and timed for a person, the same in every face (headless, app, export)."""

from __future__ import annotations


def run_name(experiment: str, label: str) -> str:
    """"grid: lr=0.01 hidden=50", or the experiment alone when the label only repeats it
    (an experiment of one run)."""
    return experiment if label == experiment else f"{experiment}: {label}"


def run_time(seconds: float | None, stack_size: int | None = 1) -> str:
    """A run's training time: "3.1s", or "3.1s/9" for a run trained in a stack of 9 runs,
    which took those 3.1 s together (so the members' times do not add up)."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" + (f"/{stack_size}" if stack_size and stack_size > 1 else "")

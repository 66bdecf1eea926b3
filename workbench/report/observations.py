"""Observations computed from stored numbers, stated as measurements (no advice without one).

Each function takes plain values (configs, accuracies, curves) and returns sentences, so the
rules can be tested on constructed data and reused by any face.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from workbench.report.tables import fmt, pct

# Validation accuracy changes below this are read as flat: one image of the sample's 667
# validation images is 0.15 points, ten of the full 5,000 are 0.2.
FLAT = 0.002


def grid_edge(axes: Mapping[str, Sequence[Any]], best: Mapping[str, Any]) -> list[str]:
    """Where the best cell sits on each axis of a grid with three or more values: on the
    lowest or highest value, the grid should be extended that way."""
    out = []
    for key, values in axes.items():
        ordered = sorted(values)
        if len(ordered) < 3 or key not in best:
            continue
        value = best[key]
        if value == ordered[0]:
            out.append(f"{key}={fmt(value)} is the lowest {key} tried: the best cell is on the "
                       f"grid's edge; extend {key} below {fmt(value)}.")
        elif value == ordered[-1]:
            out.append(f"{key}={fmt(value)} is the highest {key} tried: the best cell is on "
                       f"the grid's edge; extend {key} above {fmt(value)}.")
    if not out and any(len(v) >= 3 for v in axes.values()):
        out.append("The best cell is inside the grid on every axis with three or more values.")
    return out


def curve_trend(val_accs: Sequence[float], flat: float = FLAT) -> tuple[str, int | None]:
    """('rising', None) when validation accuracy still rose into the last epoch (under-
    trained); ('peaked', epoch) when it peaked earlier and fell by more than ``flat``
    (overfitting from that epoch, 1-based); ('flat', None) otherwise or with < 2 epochs."""
    if len(val_accs) < 2:
        return "flat", None
    last, before = val_accs[-1], val_accs[-2]
    peak = max(range(len(val_accs)), key=lambda i: (val_accs[i], -i))
    if peak == len(val_accs) - 1 and last - before > flat:
        return "rising", None
    if peak < len(val_accs) - 1 and val_accs[peak] - last > flat:
        return "peaked", peak + 1
    return "flat", None


def trend_sentence(name: str, val_accs: Sequence[float], flat: float = FLAT,
                   stopped: str | None = None) -> str:
    """What a run's validation curve says; ``stopped``: why a training callback ended it
    early (the store's stopped_early), said first."""
    if stopped:
        rest = trend_sentence(name, val_accs, flat)
        return f"{name}: {stopped}; " + rest[len(name) + 2:]
    trend, epoch = curve_trend(val_accs, flat)
    n = len(val_accs)
    if trend == "rising":
        return (f"{name}: validation accuracy still rose in the last epoch ({pct(val_accs[-2])}"
                f" -> {pct(val_accs[-1])} at epoch {n}): under-trained; more epochs would "
                "likely help.")
    if trend == "peaked":
        assert epoch is not None
        drop = 100 * (val_accs[epoch - 1] - val_accs[-1])
        return (f"{name}: validation accuracy peaked at epoch {epoch} ({pct(val_accs[epoch - 1])})"
                f" and ended {drop:.2f} points lower at epoch {n} ({pct(val_accs[-1])}): "
                f"overfitting after epoch {epoch}.")
    if n < 2:
        return f"{name}: one epoch only; no trend to read."
    best = max(range(n), key=lambda i: (val_accs[i], -i))
    if best == n - 1:
        return (f"{name}: validation accuracy ended at its best ({pct(val_accs[-1])} at epoch "
                f"{n}), {100 * (val_accs[-1] - val_accs[-2]):.2f} points above epoch {n - 1}: "
                "levelling off.")
    return (f"{name}: validation accuracy ended within {100 * flat:.1f} points of its best "
            f"({pct(val_accs[best])} at epoch {best + 1}; {pct(val_accs[-1])} at epoch {n}).")


def versus_baseline(name: str, value: float, baseline: float,
                    beyond_noise: bool | None = None, intervals: str = "",
                    against: str = "the baseline", but: str = "") -> str:
    """How a change compares with the baseline, or another run named by ``against`` (test
    accuracy; ``but``: how that one differs). ``beyond_noise``: whether the difference is
    beyond the seeds' 95 % intervals, which ``intervals`` states (None: no repeats, nothing
    said about noise)."""
    diff = value - baseline
    if abs(diff) < 1e-12:
        head = f"{name}: {pct(value)}, the same as {against}"
    else:
        head = (f"{name}: {pct(value)}, {100 * abs(diff):.2f} points "
                f"{'above' if diff > 0 else 'below'} {against} ({pct(baseline)})")
    if but:
        head += f", the same settings but for {but}"
    if beyond_noise is None:
        return head + "."
    return head + f"; {intervals}: " + ("beyond" if beyond_noise else "within") + \
        " seed-to-seed noise."


NO_REPEATS = ("One seed per config, so seed-to-seed noise is not measured: differences of a few "
              "tenths of a point may be noise (repeat with seeds = [...] to measure it).")

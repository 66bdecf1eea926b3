"""Effect or noise: repeats of one config summarised, compared and split into factor effects.

Pure Python (no numpy, no scipy): the faces and the report import it for free.

- ``summarize(values)``: n, mean, sample std and the 95 % t-based confidence interval.
- ``aggregate(runs)``: finished runs (``Store.runs()`` rows) grouped by config without the
  seed, one ``ConfigAggregate`` per config with its test and best-validation summaries.
- ``indistinguishable(aggregates)``: which configs' intervals overlap the best config's.
- ``factor_effects(aggregates)``: for a full-factorial grid, the marginal mean of every level of
  every varying key, and the largest two-factor interaction. The grid is complete, so these are
  exact averages of the cell means, not a model's estimates.
- ``confusion_diff(labels, predictions_a, predictions_b)``: B - A matrix and the test indices
  one run gets right and the other wrong.

Metrics are fractions in [0, 1], as stored.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from workbench import formatting
from workbench.types import DONE, config_hash

METRICS = ("test_acc", "best_val_acc")  # what is aggregated, as named in the store
REPEAT_KEYS = ("seed",)  # config keys that make a repeat, not another config
LEVEL = 0.95


# -- Student's t ---------------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on ``t_cdf``; accurate to ~1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


# -- one sample ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """n values: mean, sample std (n - 1) and the t-based interval at ``LEVEL``.

    With n = 1 there is no spread to measure: std, low and high are None.
    """

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else self.high - self.mean

    def overlaps(self, other: "Summary") -> bool | None:
        """Whether the two intervals share a point; None when either has none."""
        if None in (self.low, self.high, other.low, other.high):
            return None
        return self.low <= other.high and other.low <= self.high  # type: ignore[operator]


def summarize(values: Iterable[float], level: float = LEVEL) -> Summary:
    """Mean, sample std and mean ± t(level, n-1) * std / sqrt(n) of the values."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize: no values")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(n, mean, None, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


# -- configs -------------------------------------------------------------------------------

def config_key(config: Mapping[str, Any]) -> str:
    """Hash of a run config without its seed: the repeats of one config share it."""
    return config_hash({k: v for k, v in config.items() if k not in REPEAT_KEYS})


@dataclass(frozen=True)
class ConfigAggregate:
    """The finished runs of one config (one experiment, one data set, any seeds)."""

    experiment: str
    dataset: str
    key: str  # config_key of the runs' config
    config: dict[str, Any]  # the shared config, seed removed
    label: str  # the keys that vary inside the experiment, e.g. "batch_size=64 lr=0.001"
    run_ids: tuple[int, ...]
    seeds: tuple[int, ...]
    test_acc: Summary
    best_val_acc: Summary

    @property
    def n(self) -> int:
        return len(self.run_ids)

    def metric(self, name: str) -> Summary:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
        return getattr(self, name)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def varying_keys(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Config keys (seed excluded) taking more than one value, sorted."""
    return [k for k in formatting.varying_keys(configs) if k not in REPEAT_KEYS]


def aggregate(runs: Iterable[Mapping[str, Any]]) -> list[ConfigAggregate]:
    """Finished runs (status done, both metrics stored) grouped per (experiment, data set,
    config without seed), in the order each config first appears."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        if run.get("status") != DONE or any(run.get(m) is None for m in METRICS):
            continue
        key = (run["experiment"], str(run.get("dataset", "")), config_key(run["config"]))
        groups.setdefault(key, []).append(run)
    varying: dict[str, list[str]] = {}
    for exp in {k[0] for k in groups}:
        varying[exp] = varying_keys(rs[0]["config"] for k, rs in groups.items() if k[0] == exp)
    out = []
    for (exp, dataset, key), rows in groups.items():
        config = {k: v for k, v in rows[0]["config"].items() if k not in REPEAT_KEYS}
        label = formatting.config_label(config, varying[exp]) or exp
        out.append(ConfigAggregate(
            experiment=exp, dataset=dataset, key=key, config=config, label=label,
            run_ids=tuple(int(r["id"]) for r in rows),
            seeds=tuple(int(r["config"].get("seed", 0)) for r in rows),
            test_acc=summarize(r["test_acc"] for r in rows),
            best_val_acc=summarize(r["best_val_acc"] for r in rows)))
    return out


def best(aggregates: Sequence[ConfigAggregate], metric: str = "test_acc") -> ConfigAggregate:
    """The config with the highest mean (the first one on a tie)."""
    if not aggregates:
        raise ValueError("best: no configs")
    return max(aggregates, key=lambda a: a.metric(metric).mean)


def indistinguishable(aggregates: Sequence[ConfigAggregate], metric: str = "test_acc"
                      ) -> dict[str, bool | None]:
    """config key -> whether its interval overlaps the best config's ("not distinguishable
    from the best"); the best itself is True; None where an interval is missing (n < 2).
    Pass the configs of one experiment and data set (keys are unique only there)."""
    if not aggregates:
        return {}
    top = best(aggregates, metric)
    marks: dict[str, bool | None] = {}
    for agg in aggregates:
        marks[agg.key] = True if agg is top else agg.metric(metric).overlaps(top.metric(metric))
    return marks


# -- factor effects ------------------------------------------------------------------------

@dataclass(frozen=True)
class LevelEffect:
    """One level of one factor: the mean of the cell means at that level, and its interval
    from the seed-to-seed noise (None when no cell of the grid has repeats)."""

    factor: str
    level: Any
    mean: float
    cells: int  # cells at this level
    runs: int  # runs behind them (cells x their repeats)
    half_width: float | None  # of the LEVEL t interval; None without repeats

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


@dataclass(frozen=True)
class Interaction:
    """A two-factor interaction: the means of every (a, b) level pair, and how far they
    stray from what the two marginal means add up to."""

    factors: tuple[str, str]
    means: dict[tuple[Any, Any], float]  # (level of a, level of b) -> mean of cell means
    residuals: dict[tuple[Any, Any], float]  # mean - (marginal a + marginal b - grand mean)

    @property
    def size(self) -> float:
        """The largest absolute residual: 0 when the two factors add up exactly."""
        return max(abs(r) for r in self.residuals.values())


@dataclass(frozen=True)
class FactorEffects:
    factors: tuple[str, ...]  # the varying keys, sorted
    grand_mean: float
    levels: dict[str, list[LevelEffect]]  # factor -> its levels, in ascending order
    interaction: Interaction | None  # the largest two-factor one; None with one factor
    noise_std: float | None  # pooled seed-to-seed std within cells; None without repeats
    noise_df: int  # its degrees of freedom: runs - cells


def _sort_levels(values: Iterable[Any]) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def factor_effects(aggregates: Sequence[ConfigAggregate], metric: str = "test_acc"
                   ) -> FactorEffects:
    """Marginal means of a full-factorial grid (the configs of one experiment and data set).

    Each cell counts once (its mean over its repeats), so cells with more seeds do not weigh
    more. A level's interval measures seed noise only: the within-cell variance pooled over
    the whole grid (df = runs - cells), carried through the average of the level's cell
    means, with t at that df. Without repeats there is no noise estimate and no interval.
    Raises ValueError naming the missing cells when the grid is not complete.
    """
    if not aggregates:
        raise ValueError("factor_effects: no configs")
    groups = {(a.experiment, a.dataset) for a in aggregates}
    if len(groups) > 1:
        raise ValueError("factor_effects: configs of more than one experiment or data set: "
                         + ", ".join(f"{e} on {d}" for e, d in sorted(groups)))
    factors = varying_keys(a.config for a in aggregates)
    if not factors:
        raise ValueError("factor_effects: no key varies between these configs")
    levels = {f: _sort_levels({repr(a.config.get(f)): a.config.get(f)
                               for a in aggregates}.values()) for f in factors}
    cells = {tuple(repr(a.config.get(f)) for f in factors): a.metric(metric).mean
             for a in aggregates}
    missing = [combo for combo in itertools.product(*(levels[f] for f in factors))
               if tuple(map(repr, combo)) not in cells]
    if missing or len(cells) != len(aggregates):
        shown = "; ".join(" ".join(f"{f}={_fmt(v)}" for f, v in zip(factors, c))
                          for c in missing[:3])
        raise ValueError(f"factor_effects: not a full-factorial grid ({len(missing)} of "
                         f"{len(missing) + len(cells)} cells missing, e.g. {shown}); "
                         "effects are exact only on a complete grid")

    sizes = {tuple(repr(a.config.get(f)) for f in factors): a.n for a in aggregates}
    df = sum(a.n - 1 for a in aggregates)
    noise = (math.sqrt(math.fsum((a.n - 1) * a.metric(metric).std ** 2 for a in aggregates
                                 if a.n > 1) / df) if df else None)
    t = t_quantile(0.5 + LEVEL / 2.0, df) if df else None

    def at(**fixed: Any) -> list[tuple[str, ...]]:
        pos = {f: factors.index(f) for f in fixed}
        return [combo for combo in cells
                if all(combo[pos[f]] == repr(v) for f, v in fixed.items())]

    def cell_means(**fixed: Any) -> list[float]:
        return [cells[combo] for combo in at(**fixed)]

    def level(factor: str, value: Any) -> LevelEffect:
        combos = at(**{factor: value})
        half = None
        if noise is not None and t is not None:  # Var(mean of m cell means) = s^2/m^2 sum 1/n
            half = t * noise * math.sqrt(math.fsum(1 / sizes[c] for c in combos)) / len(combos)
        return LevelEffect(factor, value, math.fsum(cells[c] for c in combos) / len(combos),
                           len(combos), sum(sizes[c] for c in combos), half)

    grand = math.fsum(cells.values()) / len(cells)
    effects = {f: [level(f, v) for v in levels[f]] for f in factors}
    strongest = None
    for fa, fb in itertools.combinations(factors, 2):
        marg_a = {repr(e.level): e.mean for e in effects[fa]}
        marg_b = {repr(e.level): e.mean for e in effects[fb]}
        means, residuals = {}, {}
        for va, vb in itertools.product(levels[fa], levels[fb]):
            ms = cell_means(**{fa: va, fb: vb})
            means[(va, vb)] = math.fsum(ms) / len(ms)
            residuals[(va, vb)] = means[(va, vb)] - marg_a[repr(va)] - marg_b[repr(vb)] + grand
        found = Interaction((fa, fb), means, residuals)
        if strongest is None or found.size > strongest.size:
            strongest = found
    return FactorEffects(tuple(factors), grand, effects, strongest, noise, df)


# -- confusion diff ------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfusionDiff:
    """Run B against run A on the same test set."""

    matrix: list[list[int]]  # [true][predicted], B's count minus A's
    b_only: list[int]  # test indices B classifies right and A wrong
    a_only: list[int]  # test indices A classifies right and B wrong
    both_wrong: int
    total: int


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], classes: int
                     ) -> list[list[int]]:
    matrix = [[0] * classes for _ in range(classes)]
    for true, pred in zip(labels, predictions):
        matrix[int(true)][int(pred)] += 1
    return matrix


def confusion_diff(labels: Sequence[int], predictions_a: bytes | Sequence[int],
                   predictions_b: bytes | Sequence[int], classes: int = 10) -> ConfusionDiff:
    """B - A, from the predicted class of every test image (stored as uint8 bytes)."""
    labels = [int(x) for x in labels]
    a, b = list(predictions_a), list(predictions_b)
    if not len(a) == len(b) == len(labels):
        raise ValueError(f"confusion_diff: {len(labels)} test labels but {len(a)} predictions "
                         f"in A and {len(b)} in B; compare runs of the same test set")
    ma, mb = confusion_matrix(labels, a, classes), confusion_matrix(labels, b, classes)
    diff = [[mb[i][j] - ma[i][j] for j in range(classes)] for i in range(classes)]
    b_only = [i for i, y in enumerate(labels) if b[i] == y != a[i]]
    a_only = [i for i, y in enumerate(labels) if a[i] == y != b[i]]
    both_wrong = sum(1 for i, y in enumerate(labels) if a[i] != y and b[i] != y)
    return ConfusionDiff(diff, b_only, a_only, both_wrong, len(labels))

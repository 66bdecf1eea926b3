"""The headless face's effect-or-noise tables: configs over seeds, factor effects, run diffs.

Rich tables from workbench.stats results; headless.print_summary prints them after the
per-run tables, and the CLI's ``--compare`` prints a run diff. Imported by headless lazily
(it builds on headless's table style).
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console

from workbench import stats
from workbench.headless import _table
from workbench.summary import by_experiment, cell_text, interval_text

NEAR_BEST = "~ best"  # its interval overlaps the best config's: not distinguishable from it


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def print_config_summaries(console: Console, rows: Sequence[dict[str, Any]], live: bool) -> None:
    """For every experiment with repeats: its configs over seeds; for every complete grid of
    two or more factors: the mean per level of each factor and the largest interaction."""
    for (exp, dataset), aggs in by_experiment(stats.aggregate(rows)).items():
        if any(a.n > 1 for a in aggs):
            print_configs(console, exp, dataset, aggs, live)
        try:
            effects = stats.factor_effects(aggs)
        except ValueError:  # not a complete grid: no exact effects to show
            continue
        if len(effects.factors) >= 2:
            print_effects(console, exp, aggs, effects, live)


def print_configs(console: Console, exp: str, dataset: str,
                  aggs: Sequence[stats.ConfigAggregate], live: bool) -> None:
    marks = stats.indistinguishable(aggs)
    top = stats.best(aggs)
    table = _table(f"{exp} per config over seeds ({dataset}; mean ± half width of the 95 % "
                   "t interval)", live)
    for col in ("config", "n", "test acc", "test 95% CI", "best val", "vs best", "runs"):
        table.add_column(col, justify="right" if col in ("n", "test acc", "best val")
                         else "left")
    for agg in sorted(aggs, key=lambda a: -a.test_acc.mean):
        mark = {True: NEAR_BEST, False: "below", None: "n < 2"}[marks[agg.key]]
        table.add_row(agg.label, str(agg.n), cell_text(agg.test_acc.mean, agg.test_acc.half_width),
                      interval_text(agg.test_acc),
                      cell_text(agg.best_val_acc.mean, agg.best_val_acc.half_width),
                      "best" if agg is top else mark, _ids(agg.run_ids))
    console.print(table)
    near = [a for a in aggs if a is not top and marks[a.key]]
    _say(console, f"best config of {exp}: {top.label} -> test {cell_text(top.test_acc.mean)} "
                  f"over {top.n} seed{'s' * (top.n != 1)} {interval_text(top.test_acc)}; "
                  f"{len(near)} other config{'s' * (len(near) != 1)} not distinguishable "
                  f"from it (intervals overlap)")


def _ids(ids: Sequence[int]) -> str:
    if len(ids) > 2 and list(ids) == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return ",".join(map(str, ids))


def print_effects(console: Console, exp: str, aggs: Sequence[stats.ConfigAggregate],
                  effects: stats.FactorEffects, live: bool) -> None:
    noise = ("95 % t interval from the seed noise pooled over the cells: std "
             f"{100 * effects.noise_std:.2f} pp, df {effects.noise_df}"
             if effects.noise_std is not None else "no repeats, so no interval")
    table = _table(f"{exp}: mean test accuracy per level of each factor (exact: the mean of "
                   f"the cell means at that level, over {len(aggs)} cells; {noise})", live)
    for col in ("factor", "level", "cells", "runs", "mean test acc", "95% CI",
                "vs grand mean"):
        table.add_column(col, justify="left" if col in ("factor", "level", "95% CI")
                         else "right")
    for factor in effects.factors:
        for i, e in enumerate(effects.levels[factor]):
            ci = "-" if e.low is None else f"[{100 * e.low:.2f}, {100 * e.high:.2f}]"
            table.add_row(factor if i == 0 else "", _level_fmt(e.level), str(e.cells),
                          str(e.runs), cell_text(e.mean, e.half_width), ci,
                          f"{100 * (e.mean - effects.grand_mean):+.2f} pp")
    console.print(table)
    inter = effects.interaction
    if inter is None:
        return
    fa, fb = inter.factors
    levels_a = [e.level for e in effects.levels[fa]]
    levels_b = [e.level for e in effects.levels[fb]]
    table = _table(f"{exp}: largest two-factor interaction, {fa} x {fb} (mean test accuracy; "
                   f"the cells stray up to {100 * inter.size:.2f} pp from what {fa} and {fb} "
                   "add up to)", live)
    table.add_column(f"{fa} \\ {fb}")
    for vb in levels_b:
        table.add_column(_level_fmt(vb), justify="right")
    for va in levels_a:
        table.add_row(_level_fmt(va), *[cell_text(inter.means[(va, vb)]) for vb in levels_b])
    console.print(table)


def _level_fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_compare(console: Console, diff: stats.ConfusionDiff, a: dict[str, Any],
                  b: dict[str, Any], classes: Sequence[str], live: bool) -> None:
    """The B - A confusion matrix and how many test digits each run alone gets right."""
    def name(run: dict[str, Any]) -> str:
        return f"run {run['id']} ({run['experiment']} {run['label']}, test {cell_text(run['test_acc'])})"

    table = _table(f"confusion diff B - A: A = {name(a)}, B = {name(b)}; rows true, columns "
                   "predicted; + on the diagonal: B gets more right", live)
    table.add_column("true")
    for p in classes:
        table.add_column(str(p), justify="right")
    for t, line in enumerate(diff.matrix):
        table.add_row(str(classes[t]), *[f"{v:+d}" if v else "." for v in line])
    console.print(table)
    _say(console, f"B right, A wrong: {len(diff.b_only)} test digits; A right, B wrong: "
                  f"{len(diff.a_only)}; both wrong: {diff.both_wrong}; of {diff.total} "
                  f"(net {len(diff.b_only) - len(diff.a_only):+d} for B)")
    for who, idx in (("B right, A wrong", diff.b_only), ("A right, B wrong", diff.a_only)):
        if idx:
            shown = ", ".join(map(str, idx[:20])) + (", ..." if len(idx) > 20 else "")
            _say(console, f"{who} (test indices): {shown}")

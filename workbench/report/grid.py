"""A grid experiment's section: every run, the heatmap of every cell, the best cell and
whether it sits on the grid's edge, the curves' trends and the factor effects."""

from __future__ import annotations

from typing import Any, Sequence

from workbench import stats
from workbench.report import figures, observations as obs
from workbench.report.context import (Builder, Experiment, aggregates, open_section,
                                      order_key, repeated, run_cells, run_columns, slug)
from workbench.report.document import Bullets, Column, Heading, Para, Table
from workbench.report.tables import fmt, pct


def grid_section(b: Builder, exp: Experiment, order: Sequence[str] = ()) -> None:
    done = open_section(b, exp, f"Grid: {exp.name}")
    if not done:
        return
    keys = stats.varying_keys(r["config"] for r in done)
    keys = [k for k in order if k in keys] + [k for k in _axis_order(keys) if k not in order]
    axes = [(k, sorted({r["config"][k] for r in done if k in r["config"]}, key=order_key))
            for k in keys]
    done = sorted(done, key=lambda r: tuple(order_key(r["config"].get(k)) for k in keys))
    b.add(Para(f"{len(done)} finished runs over " + " x ".join(
        f"{k} [{', '.join(fmt(v) for v in vals)}]" for k, vals in axes) + "."))
    seed_keys = ["seed"] if len({r["config"].get("seed") for r in done}) > 1 else []
    full = {r["id"]: b.store.run(r["id"]) for r in done}
    b.add(Table(f"{slug(exp.name)}-runs", run_columns([*keys, *seed_keys]),
                tuple(run_cells(r, [*keys, *seed_keys], full[r["id"]]) for r in done)))
    # One cell per config: the mean over its seeds when they repeat.
    aggs = aggregates(done)
    cells = {tuple(a.config.get(k) for k, _ in axes): a.test_acc.mean for a in aggs}
    best_key = max(sorted(cells, key=lambda k: tuple(map(order_key, k))), key=lambda k: cells[k])
    best_cfg = dict(zip([k for k, _ in axes], best_key))
    repeats = repeated(aggs)
    if repeats:
        b.add(Para("Seeds repeat: each cell below is the mean over its seeds, with its 95 % "
                   "t-interval."))
        b.add(Table(f"{slug(exp.name)}-cells",
                    (*[Column(k, "value") for k, _ in axes], Column("seeds", "value"),
                     Column("mean test acc", "pct"), Column("CI low", "pct"),
                     Column("CI high", "pct"), Column("std", "pct")),
                    tuple((*[a.config.get(k) for k, _ in axes], a.n, a.test_acc.mean,
                           a.test_acc.low, a.test_acc.high, a.test_acc.std) for a in aggs)))
    what = "mean test accuracy over seeds" if repeats else "test accuracy"
    b.figure(f"grid-{slug(exp.name)}", f"{exp.name}: {what} of every cell (%), best outlined "
             "in red; colours from the lowest quartile up", figures.grid_heatmaps, cells, axes,
             best_key, f"{exp.name}: {what} (%)", label="test accuracy (%)")
    notes = [f"Best cell: {' '.join(f'{k}={fmt(v)}' for k, v in best_cfg.items())} with "
             f"{what} {pct(cells[best_key])}."]
    notes += obs.grid_edge(dict(axes), best_cfg)
    trends = [obs.curve_trend([e["val_acc"] for e in b.store.epochs(r["id"])]) for r in done]
    rising = sum(1 for t, _ in trends if t == "rising")
    peaked = [(r, ep) for r, (t, ep) in zip(done, trends) if t == "peaked"]
    notes.append(f"Validation accuracy still rose in the last epoch in {rising} of {len(done)} "
                 f"runs (under-trained); it peaked earlier and fell by more than "
                 f"{100 * obs.FLAT:.1f} points in {len(peaked)}"
                 + (" (overfitting: " + "; ".join(f"{r['label']} at epoch {ep}"
                                                  for r, ep in peaked[:5])
                    + ("; ..." if len(peaked) > 5 else "") + ")" if peaked else "") + ".")
    b.add(Bullets(tuple(notes)))
    _factor_effects(b, exp, aggs, keys)


def _axis_order(keys: Sequence[str]) -> list[str]:
    """The seed's figure: learning rate first, batch size last, the rest between."""
    first = [k for k in ("lr",) if k in keys]
    last = [k for k in ("batch_size",) if k in keys]
    return first + [k for k in keys if k not in first + last] + last


def _factor_effects(b: Builder, exp: Experiment, aggs: Sequence[Any], order: Sequence[str]
                    ) -> None:
    b.add(Heading(3, "Factor effects"))
    try:
        effects = stats.factor_effects(aggs)
    except ValueError as exc:
        b.add(Para(f"Not computed: {exc}."))
        return
    rows = []
    for factor in sorted(effects.factors, key=lambda f: list(order).index(f)
                         if f in order else len(order)):
        for lv in effects.levels[factor]:
            rows.append((factor, lv.level, lv.cells, lv.runs, lv.mean, lv.low, lv.high,
                         lv.mean - effects.grand_mean))
    noise = ("no cell has repeated seeds, so there is no noise estimate and no interval"
             if effects.noise_std is None else
             f"the interval is the seed-to-seed noise alone (std {100 * effects.noise_std:.2f} "
             f"points within cells, {effects.noise_df} degrees of freedom), carried through "
             "the level's mean")
    b.add(Para(f"Mean test accuracy at each level of each factor, each cell counted once "
               f"(grand mean {pct(effects.grand_mean)}); {noise}."),
          Table(f"{slug(exp.name)}-effects",
                (Column("factor"), Column("level", "value"), Column("cells", "value"),
                 Column("runs", "value"), Column("mean test acc", "pct"),
                 Column("CI low", "pct"), Column("CI high", "pct"),
                 Column("vs grand mean (points)", "points")),
                tuple(rows)))
    notes = []
    for spread, f in sorted(((max(lv.mean for lv in effects.levels[f])
                              - min(lv.mean for lv in effects.levels[f]), f)
                             for f in effects.factors), reverse=True):
        levels = effects.levels[f]
        line = f"{f}: its levels' means span {100 * spread:.2f} points"
        if effects.noise_std is not None:
            hi = max(levels, key=lambda lv: lv.mean)
            lo = min(levels, key=lambda lv: lv.mean)
            apart = lo.high is not None and hi.low is not None and lo.high < hi.low
            line += (f"; {f}={fmt(hi.level)} against {f}={fmt(lo.level)}: "
                     + ("beyond" if apart else "within") + " seed-to-seed noise")
        notes.append(line + ".")
    if effects.interaction is not None:
        fa, fb = effects.interaction.factors
        notes.append(f"Largest two-factor interaction: {fa} x {fb}, up to "
                     f"{100 * effects.interaction.size:.2f} points away from the sum of "
                     "their separate effects.")
    b.add(Bullets(tuple(notes)))

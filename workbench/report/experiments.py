"""The baseline's section and one section per further experiment: the config delta, the
runs' numbers, their curves and how each compares with the baseline and the grid."""

from __future__ import annotations

from typing import Any, Sequence

from workbench import stats
from workbench.report import figures, observations as obs
from workbench.report.context import (Builder, Experiment, aggregates, describe, interval,
                                      open_section, repeated, run_cells, run_columns, slug)
from workbench.report.document import Bullets, Column, Heading, Para, Table
from workbench.report.tables import config_delta, delta_text, fmt, pct


def baseline_section(b: Builder, exp: Experiment) -> None:
    run = exp.done[-1]
    full = b.store.run(run["id"])
    b.add(Heading(2, "Baseline" if exp.name == "baseline" else f"Baseline ({exp.name})"))
    describe(b, exp)
    cfg = run["config"]
    b.add(Para("Config: " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(cfg.items())) + "."))
    keys: list[str] = []
    b.add(Table(f"{slug(exp.name)}", run_columns(keys), (run_cells(run, keys, full),)))
    curve = [e["val_acc"] for e in b.store.epochs(run["id"])]
    b.add(Para(f"Test accuracy {pct(run['test_acc'])}; best validation accuracy "
               f"{pct(run['best_val_acc'])} at epoch {run['best_epoch']}; "
               f"{run['train_seconds'] or 0:.1f} s on {run['device']}."),
          Bullets((obs.trend_sentence(exp.name, curve, stopped=run.get("stopped_early")),)))
    b.figure(f"curves-{slug(exp.name)}", f"{exp.name}: learning curves",
             figures.learning_curves, [(exp.name, b.store.epochs(run["id"]))],
             f"{exp.name}: learning curves")


def experiment_section(b: Builder, exp: Experiment, baseline: Experiment | None,
                        grids: Sequence[Experiment] = ()) -> None:
    done = open_section(b, exp, f"Experiment: {exp.name}")
    if not done:
        return
    base_run = baseline.done[-1] if baseline is not None else None
    if base_run is not None:
        common = config_delta(done[0]["config"], base_run["config"])
        for r in done[1:]:
            common = {k: v for k, v in common.items()
                      if config_delta(r["config"], base_run["config"]).get(k) == v}
        common.pop("seed", None)
        which = "" if baseline.name == "baseline" else f" ({baseline.name})"
        b.add(Para(f"Changes from the baseline{which}: {delta_text(common)}."))
    keys = stats.varying_keys(r["config"] for r in done)
    keys += ["seed"] if len({r["config"].get("seed") for r in done}) > 1 else []
    full = {r["id"]: b.store.run(r["id"]) for r in done}
    named = [] if keys else [Column("run")]
    b.add(Table(slug(exp.name), (*named, *run_columns(keys)),
                tuple((*([] if keys else [r["label"]]), *run_cells(r, keys, full[r["id"]]))
                      for r in done)))
    curves = {r["id"]: b.store.epochs(r["id"]) for r in done}
    notes = [obs.trend_sentence(_seeded(r, "seed" in keys), [e["val_acc"] for e in curves[r["id"]]],
                                stopped=r.get("stopped_early")) for r in done]
    if base_run is not None:
        notes += _versus(exp, baseline)
    for r in done:
        closest = _closest_grid_run(r, grids)
        if closest is not None:
            other, delta = closest
            notes.append(obs.versus_baseline(
                r["label"], r["test_acc"], other["test_acc"],
                against=f"the {other['experiment']} run {other['label']}",
                but=", ".join(delta)))
    if base_run is not None and not repeated(aggregates([*done, *baseline.done])):
        notes.append(obs.NO_REPEATS)
    b.add(Bullets(tuple(notes)))
    ref = (baseline.name, b.store.epochs(base_run["id"])) if base_run is not None else None
    b.figure(f"curves-{slug(exp.name)}", f"{exp.name}: learning curves"
             + (f" ({baseline.name} dashed)" if ref else ""), figures.learning_curves,
             [(_seeded(r, "seed" in keys), curves[r["id"]]) for r in done],
             f"{exp.name}: learning curves",
             reference=ref)


MAX_CHANGES = 3  # a run compared with the grid's nearest differs in at most this many keys


def _seeded(row: dict[str, Any], seeds_vary: bool) -> str:
    """A run's label, with its seed where the experiment repeats over seeds."""
    label = row["label"]
    if not seeds_vary or "seed=" in label:
        return label
    return f"{label} seed={row['config'].get('seed')}"


def _closest_grid_run(run: dict[str, Any], grids: Sequence[Experiment]
                      ) -> tuple[dict[str, Any], list[str]] | None:
    """The grid run that shares every grid value with ``run`` and differs in the fewest other
    keys (seed aside), at most MAX_CHANGES of them: the point an experiment changed, as the
    seed's experiments 2-x started from the grid's best cell. None when no grid run matches
    on every axis, or every match differs in more (no longer one change to read)."""
    found = None
    for grid in grids:
        axes = set(stats.varying_keys(r["config"] for r in grid.done))
        for other in grid.done:
            delta = [k for k in config_delta(run["config"], other["config"]) if k != "seed"]
            if delta and len(delta) <= MAX_CHANGES and not axes & set(delta) \
                    and (found is None or len(delta) < len(found[1])):
                found = (other, delta)
    return found


def _versus(exp: Experiment, baseline: Experiment) -> list[str]:
    """Each config of ``exp`` against the baseline; where seeds repeat on either side,
    whether the difference is beyond their 95 % intervals."""
    top = aggregates(baseline.done)[0]
    out = []
    for agg in aggregates(exp.done):
        beyond, clause = _noise(agg.label, agg.test_acc, baseline.name, top.test_acc)
        out.append(obs.versus_baseline(agg.label, agg.test_acc.mean, top.test_acc.mean, beyond,
                                       clause))
    return out


def _noise(name: str, mine: Any, base_name: str, base: Any) -> tuple[bool | None, str]:
    """(beyond the noise?, the clause that says how it was judged) from two summaries."""
    if mine.low is not None and base.low is not None:
        beyond = not mine.overlaps(base)
        return beyond, (f"the 95 % intervals {interval(mine)} and {interval(base)} "
                        + ("do not overlap" if beyond else "overlap"))
    for one, other, one_name, other_name in ((mine, base, name, base_name),
                                             (base, mine, base_name, name)):
        if one.low is not None:  # the other is a single run: is it outside this interval?
            beyond = not one.low <= other.mean <= one.high
            return beyond, (f"{other_name}'s single run ({pct(other.mean)}) lies "
                            f"{'outside' if beyond else 'inside'} {one_name}'s "
                            f"{interval(one)}")
    return None, ""

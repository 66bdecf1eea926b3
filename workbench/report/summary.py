"""The summary of all experiments and the reference figures set against them."""

from __future__ import annotations

from typing import Sequence

from workbench import stats
from workbench.report.context import Builder, Experiment
from workbench.report.document import Column, Heading, Para, Table
from workbench.report.tables import best_row


def summary_section(b: Builder, exps: Sequence[Experiment], baseline: Experiment | None) -> None:
    b.add(Heading(2, "Summary of all experiments"))
    base_acc = baseline.done[-1]["test_acc"] if baseline is not None and baseline.done else None
    rows = []
    for exp in exps:
        best = best_row(exp.done)
        agg = None
        if best is not None:  # the best run's config, over all its seeds
            key = stats.config_key(best["config"])
            agg = next(a for a in stats.aggregate(exp.done) if a.key == key)
        rows.append((exp.name, len(exp.done), best and best["label"], best and best["test_acc"],
                     agg and agg.test_acc.mean, agg and agg.n, best and best["best_val_acc"],
                     None if best is None or base_acc is None or exp is baseline
                     else best["test_acc"] - base_acc))
    b.add(Para("The best run of each experiment by test accuracy, and the mean test accuracy "
               "of its config over its seeds (one seed: the same number)."),
          Table("summary", (Column("experiment"), Column("runs", "value"), Column("best run"),
                            Column("test acc", "pct"), Column("its config's mean", "pct"),
                            Column("seeds", "value"), Column("best val acc", "pct"),
                            Column("vs baseline (points)", "points")), tuple(rows)))
    _reference_table(b, exps)


def _reference_table(b: Builder, exps: Sequence[Experiment]) -> None:
    """Each stored reference figure (e.g. the seed report's) against the best run it names."""
    from workbench import references

    names = {e.name for e in exps}
    refs = [r for r in b.store.references() if r.experiment in names]
    if not refs:
        b.add(Para("Reference figures: none stored for these experiments (an experiment "
                   "states them with reference = {...} in the experiments file)."))
        return
    order = [e.name for e in exps]
    found = sorted(references.compare(refs, [r for e in exps for r in e.rows]),
                   key=lambda c: order.index(c.ref.experiment))
    b.add(Heading(3, "Against the reference figures"))
    rows, shown = [], []
    for c in found:
        what = references.METRICS[c.ref.metric][0]
        rows.append((c.ref.experiment, c.label, c.ref.metric, c.here, c.ref.value, c.diff,
                     c.ref.source))
        shown.append((c.ref.experiment, c.label or f"none with {c.ref.where_text}",
                      what, references.fmt_value(c.ref.metric, c.here),
                      references.fmt_value(c.ref.metric, c.ref.value),
                      references.fmt_diff(c.ref.metric, c.diff), c.ref.source or "-"))
    b.add(Table("references", (Column("experiment"), Column("run"), Column("metric"),
                               Column("here", "value"), Column("reference", "value"),
                               Column("difference", "value"), Column("source")),
                tuple(rows), tuple(shown)))
    datasets = sorted({c.dataset for c in found if c.dataset})
    if any(d != "mnist" for d in datasets):
        b.add(Para(f"Here is {', '.join(datasets)}; the references were measured on their "
                   "own data and hardware, so the differences say how far this store is from "
                   "them, not that either is wrong."))

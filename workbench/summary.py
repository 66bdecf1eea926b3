"""A store's results per config (over seeds) and two runs compared, for the faces and exports.

Reads the store only (no training, no experiments file): ``--export-summary`` and
``--compare`` work on any results file. The statistics themselves are workbench.stats.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Sequence

from workbench import stats
from workbench.formatting import csv_value
from workbench.report import pct
from workbench.store import Store

SUMMARY_FIELDS = ("n", "mean", "std", "ci_low", "ci_high")


def summary_rows(aggregates: Sequence[stats.ConfigAggregate]) -> list[dict[str, Any]]:
    """One row per config: its identity, its config keys (seed aside), then n, mean, std,
    ci_low, ci_high of each metric (``test_acc_mean``...), and whether its test interval
    overlaps its experiment's best config's (``near_best``; empty when unknown)."""
    marks: dict[int, bool | None] = {}  # by id(): two experiments may share a config
    for group in by_experiment(aggregates).values():
        group_marks = stats.indistinguishable(group)
        marks.update({id(a): group_marks[a.key] for a in group})
    keys = sorted({k for a in aggregates for k in a.config} - {"dataset"})
    rows = []
    for agg in aggregates:
        row: dict[str, Any] = {"experiment": agg.experiment, "dataset": agg.dataset,
                               "label": agg.label,
                               **{k: csv_value(agg.config.get(k)) for k in keys},
                               "seeds": " ".join(map(str, agg.seeds)),
                               "run_ids": " ".join(map(str, agg.run_ids))}
        for metric in stats.METRICS:
            s = agg.metric(metric)
            for name, value in zip(SUMMARY_FIELDS, (s.n, s.mean, s.std, s.low, s.high)):
                row[f"{metric}_{name}"] = value
        near = marks[id(agg)]
        row["near_best"] = "" if near is None else int(near)
        rows.append(row)
    return rows


def by_experiment(aggregates: Iterable[stats.ConfigAggregate]
                  ) -> dict[tuple[str, str], list[stats.ConfigAggregate]]:
    """Configs grouped per (experiment, data set), in first-seen order."""
    groups: dict[tuple[str, str], list[stats.ConfigAggregate]] = {}
    for agg in aggregates:
        groups.setdefault((agg.experiment, agg.dataset), []).append(agg)
    return groups


def export_summary(store: Store, path: Path | str) -> int:
    """Write one CSV row per config of the store's finished runs; returns the row count."""
    rows = summary_rows(stats.aggregate(store.runs()))
    fields = list(dict.fromkeys(k for row in rows for k in row)) or [
        "experiment", "dataset", "label", "seeds", "run_ids"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


class CompareError(Exception):
    """Two runs cannot be compared; the message names the run and what would work."""


def compare_runs(store: Store, id_a: int, id_b: int, registry: Any, data_dir: Any = None
                 ) -> tuple[stats.ConfusionDiff, dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """The confusion diff B - A of two stored runs, from their stored predictions and the
    labels of the test set they were evaluated on. Returns (diff, run A, run B, classes)."""
    from workbench import data

    runs = []
    for which, run_id in (("A", id_a), ("B", id_b)):
        run = store.run(run_id)
        if run is None:
            raise CompareError(f"--compare: run {which} = {run_id}: no run with that id in "
                               f"{store.path}; the ids are in the app's Results tab and in "
                               "--export CSV's id column")
        if not run.get("predictions"):
            raise CompareError(f"--compare: run {which} = {run_id} ({run['experiment']} "
                               f"{run['label']}, {run['status']}) has no stored predictions; "
                               "compare two finished runs")
        runs.append(run)
    a, b = runs
    if a["dataset"] != b["dataset"] or len(a["predictions"]) != len(b["predictions"]):
        raise CompareError(f"--compare: runs {id_a} and {id_b} were tested on different data "
                           f"({a['dataset']}, {b['dataset']}); compare runs of one data set")
    try:
        raw = data.resolve(data.loaded_name(a["dataset"]), registry, data_dir,
                           allow_fallback=False)
    except data.DataError as exc:
        raise CompareError(f"--compare: the test labels of {a['dataset']} are needed: {exc}"
                           ) from None
    stored = {r.get("data_fingerprint") for r in runs} - {None, ""}
    if stored and stored != {raw.fingerprint}:
        raise CompareError(f"--compare: the {a['dataset']} files here (fingerprint "
                           f"{raw.fingerprint}) are not the ones the runs were tested on "
                           f"({', '.join(sorted(stored))}); point --data-dir at those files")
    diff = stats.confusion_diff(raw.test_labels.tolist(), a["predictions"], b["predictions"],
                                len(raw.classes))
    return diff, a, b, tuple(raw.classes)


def cell_text(value: float | None, half: float | None = None) -> str:
    """A percentage, with its interval's half width when there is one: 97.12 ± 0.08 %."""
    if value is None or half is None:
        return pct(value)
    return f"{100 * value:.2f} ± {100 * half:.2f}%"


def interval_text(s: stats.Summary) -> str:
    return "-" if s.low is None else f"[{100 * s.low:.2f}, {100 * s.high:.2f}]"


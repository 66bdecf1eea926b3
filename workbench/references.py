"""References: the figures an experiment should reproduce (e.g. the seed report's), and
how our results compare with them.

In experiments.toml, on an experiment::

    reference = { test_acc = 0.9644, source = "seed report" }

or several, each naming the runs it applies to by the config values they have::

    [[experiment.reference]]
    where = { activation = "tanh" }
    final_val_acc = 0.9730
    best_val_acc = 0.9744
    source = "seed report"

A reference applies to the runs of its experiment whose config matches every ``where``
key (all of them without ``where``) and is compared with the best of those runs on its
metric (highest accuracy, lowest loss or time): "the grid's best is 97.88 %" and "the cell
lr=0.001 hidden=200 ... scored 97.88 %" are both expressible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from workbench.defaults import same, with_optional_defaults  # same: 1 and 1.0 alike
from workbench.formatting import fmt

# metric (a column of the store's runs) -> (what it is, unit: acc | loss | s)
METRICS: dict[str, tuple[str, str]] = {
    "test_acc": ("test accuracy", "acc"),
    "best_val_acc": ("best validation accuracy", "acc"),
    "final_val_acc": ("validation accuracy at the last epoch", "acc"),
    "test_loss": ("test loss", "loss"),
    "final_train_loss": ("training loss at the last epoch", "loss"),
    "final_val_loss": ("validation loss at the last epoch", "loss"),
    "train_seconds": ("training time in seconds", "s"),
}
REFERENCE_KEYS = ("where", "source")
SHORT = {"test_acc": "test", "best_val_acc": "best val", "final_val_acc": "val",
         "test_loss": "test loss", "final_train_loss": "loss", "final_val_loss": "val loss",
         "train_seconds": "time"}


@dataclass(frozen=True)
class Reference:
    experiment: str
    metric: str
    value: float
    source: str = ""
    where: tuple[tuple[str, Any], ...] = ()  # (config key, value) a run must have

    def applies_to(self, config: Mapping[str, Any]) -> bool:
        config = with_optional_defaults(config)  # a stored config leaves them out
        return all(same(config.get(k), v) for k, v in self.where)

    @property
    def where_text(self) -> str:
        return " ".join(f"{k}={fmt(v)}" for k, v in self.where)

    @property
    def match_json(self) -> str:
        return json.dumps(dict(self.where), sort_keys=True)


def parse(experiment: str, raw: Any, param_keys: Iterable[str]) -> tuple[list[Reference],
                                                                         list[str]]:
    """An experiment's ``reference`` value -> references, and problems (each says what is
    valid)."""
    from workbench.params import _suggest

    tables = raw if isinstance(raw, list) else [raw]
    refs: list[Reference] = []
    problems: list[str] = []
    keys = set(param_keys)
    for i, table in enumerate(tables, 1):
        at = "reference" + (f" #{i}" if len(tables) > 1 else "")
        if not isinstance(table, dict):
            problems.append(f"{at}: expected a table such as {{ test_acc = 0.9644, source = "
                            f"\"seed report\" }}, got {table!r}")
            continue
        source = table.get("source", "")
        if not isinstance(source, str):
            problems.append(f"{at}: source: got {source!r}, expected a string")
            source = ""
        where = table.get("where", {})
        if not isinstance(where, dict):
            problems.append(f"{at}: where: expected a table of config values such as "
                            f"{{ activation = \"tanh\" }}, got {where!r}")
            where = {}
        if isinstance(where.get("callbacks"), str):  # one name, as a run's config may give it
            where = {**where, "callbacks": [where["callbacks"]]}
        where = {k: tuple(v) if isinstance(v, list) else v for k, v in where.items()}
        for key in where:
            if key not in keys:
                problems.append(f"{at}: where.{key}: not a run key{_suggest(key, keys)}; "
                                f"valid: {', '.join(sorted(keys))}")
        metrics = {k: v for k, v in table.items() if k not in REFERENCE_KEYS}
        if not metrics:
            problems.append(f"{at}: no figure; give at least one metric: "
                            f"{', '.join(METRICS)}")
        for metric, value in metrics.items():
            if metric not in METRICS:
                problems.append(f"{at}: unknown metric {metric!r}"
                                f"{_suggest(metric, METRICS)}; metrics: {', '.join(METRICS)}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{at}: {metric}: got {value!r}, expected a number")
                continue
            if METRICS[metric][1] == "acc" and not 0 <= value <= 1:
                problems.append(f"{at}: {metric}: got {value!r}, expected a fraction in "
                                f"[0, 1] (0.9644 for 96.44 %)")
                continue
            refs.append(Reference(experiment, metric, float(value), source,
                                  tuple(sorted(where.items()))))
    return refs, problems


def unmatched(refs: Sequence[Reference], configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems for references whose ``where`` names no run of their experiment."""
    distinct = {json.dumps(c, sort_keys=True, default=str): c for c in configs}
    filled = [with_optional_defaults(c) for c in distinct.values()]
    out = []
    for ref in refs:
        if ref.where and not any(ref.applies_to(c) for c in configs):
            have = "; ".join(f"{k}: " + ", ".join(sorted({fmt(c.get(k)) for c in filled}))
                             for k, _ in ref.where)
            out.append(f"experiment {ref.experiment!r}: reference where {{{ref.where_text}}} "
                       f"matches none of its {len(distinct)} runs (their values: {have})")
    return sorted(set(out))


def of_study(study: Any) -> list[Reference]:
    return [ref for exp in study.experiments for ref in exp.references]


def record(store: Any, study: Any) -> None:
    """Keep a study's references in its store (replacing those of its experiments), so that
    exports and browse mode have them."""
    store.set_references([exp.name for exp in study.experiments], of_study(study))


def attach(rows: Sequence[dict[str, Any]], refs: Sequence[Reference]) -> None:
    """Give each stored run (store.runs()) the text of its main reference, for a one-column
    view: 'test 96.44% (-0.34 pp)' (the figure, and this run against it)."""
    for row in rows:
        ref = primary(applicable(refs, row))
        if ref is None:
            continue
        here = row.get(ref.metric)
        diff = f" ({fmt_diff(ref.metric, here - ref.value)})" if here is not None else ""
        row["reference"] = f"{SHORT[ref.metric]} {fmt_value(ref.metric, ref.value)}{diff}"


# -- comparing ---------------------------------------------------------------------------

def better(metric: str, a: float, b: float) -> bool:
    return a > b if METRICS[metric][1] == "acc" else a < b


@dataclass(frozen=True)
class Comparison:
    ref: Reference
    runs: int  # how many stored runs the reference applies to
    label: str | None  # the run compared (the best of them); None when none has the metric
    here: float | None
    dataset: str | None

    @property
    def diff(self) -> float | None:
        return None if self.here is None else self.here - self.ref.value


def compare(refs: Sequence[Reference], rows: Sequence[Mapping[str, Any]]
            ) -> list[Comparison]:
    """Each reference against the best stored run it applies to (finished runs only)."""
    out = []
    for ref in refs:
        mine = [r for r in rows if r["experiment"] == ref.experiment
                and ref.applies_to(r["config"])]
        scored = [r for r in mine if r.get(ref.metric) is not None and r["status"] == "done"]
        best = None
        for row in scored:
            if best is None or better(ref.metric, row[ref.metric], best[ref.metric]):
                best = row
        out.append(Comparison(ref, len(mine), best["label"] if best else None,
                              best[ref.metric] if best else None,
                              best["dataset"] if best else None))
    return out


def _fmt(metric: str, value: float | None, sign: str, pp: str) -> str:
    if value is None:
        return "-"
    unit = METRICS[metric][1]
    return f"{100 * value:{sign}.2f}{pp}" if unit == "acc" else (
        f"{value:{sign}.1f}s" if unit == "s" else f"{value:{sign}.4f}")


def fmt_value(metric: str, value: float | None) -> str:
    return _fmt(metric, value, "", "%")


def fmt_diff(metric: str, diff: float | None) -> str:
    """A difference: percentage points for accuracies."""
    return _fmt(metric, diff, "+", " pp")


def applicable(refs: Sequence[Reference], row: Mapping[str, Any]) -> dict[str, Reference]:
    """metric -> the reference a stored run answers to: the most specific ``where`` wins."""
    out: dict[str, Reference] = {}
    for ref in refs:
        if ref.experiment == row["experiment"] and ref.applies_to(row["config"]):
            held = out.get(ref.metric)
            if held is None or len(ref.where) > len(held.where):
                out[ref.metric] = ref
    return out


def primary(refs: Mapping[str, Reference]) -> Reference | None:
    """The one reference a one-column view shows: test accuracy first, then validation."""
    for metric in METRICS:
        if metric in refs:
            return refs[metric]
    return None


def reference_columns(rows: Sequence[dict[str, Any]], refs: Sequence[Reference]
                      ) -> list[dict[str, Any]]:
    """Export columns per run: ref_<metric> for every metric referenced, and ref_source."""
    metrics = [m for m in METRICS if any(r.metric == m for r in refs)]
    out = []
    for row in rows:
        mine = applicable(refs, row)
        cols: dict[str, Any] = {f"ref_{m}": (mine[m].value if m in mine else None)
                                for m in metrics}
        if metrics:
            cols["ref_source"] = "; ".join(sorted({r.source for r in mine.values()
                                                   if r.source})) or None
        out.append(cols)
    return out

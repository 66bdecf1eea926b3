"""The report's contents from a store, in the seed report's order, and writing it out.

Reads only the store (and the test images, for the strip of confused digits); nothing is
trained. The same store gives the same Markdown byte for byte: no clocks, no paths of this
machine beyond what the store holds, every collection in a fixed order.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from workbench import stats
from workbench.report import figures, observations as obs
from workbench.report.document import (Alert, Block, Bullets, Code, Column, Figure, Heading,
                                       Para, Table)
from workbench.report.tables import (best_row, config_delta, delta_text, fmt, most_confused,
                                     pct)
from workbench.store import Store
from workbench.types import DONE

STRIP_PAIRS = 3  # most-confused pairs shown as digits
STRIP_DIGITS = 10  # digits per pair


@dataclass
class Written:
    """What ``write_report`` wrote, for the faces to say."""

    markdown: Path
    html: Path | None
    figures: list[Path]
    tables: list[Path]
    skipped: list[str]  # figures not drawn
    why_skipped: str  # why they were not ('' when all were drawn)


@dataclass
class _Exp:
    name: str
    rows: list[dict[str, Any]]  # every stored run of it, ids ascending
    description: str = ""

    @property
    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == DONE and r["test_acc"] is not None]


@dataclass
class _Builder:
    store: Store
    out: Path
    draw: bool  # figures wanted and matplotlib present
    registry: Any
    data_dir: Path | None
    blocks: list[Block] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    why_no_figures: str = ""

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def figure(self, name: str, caption: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        """Draw ``name``.png with ``draw`` and add it; without matplotlib, record the skip."""
        if not self.draw:
            self.skipped.append(f"{name}.png ({caption})")
            return
        path = draw(self.out / f"{name}.png", *args, **kwargs)
        self.figures.append(path)
        self.add(Figure(path.name, caption))


def write_report(store: Store, out: Path | str, only: Sequence[str] = (), html: bool = False,
                 with_figures: bool = True, registry: Any = None,
                 data_dir: Path | None = None) -> Written:
    """Write ``out/report.md`` with its PNG figures and one CSV per table (and
    ``out/report.html`` with the figures inlined when ``html``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    why = figures.available() if with_figures else "figures turned off"
    b = _Builder(store, out, draw=why is None, registry=registry, data_dir=data_dir,
                 why_no_figures=why or "")
    title = _build(b, only)
    from workbench.report.markdown import to_markdown

    tables = []
    for block in b.blocks:
        if isinstance(block, Table):
            path = out / f"{block.name}.csv"
            path.write_text(block.csv_text(), encoding="utf-8")
            tables.append(path)
    md = out / "report.md"
    md.write_text(to_markdown(b.blocks), encoding="utf-8")
    html_path = None
    if html:
        from workbench.report.html import to_html

        html_path = out / "report.html"
        html_path.write_text(to_html(b.blocks, title, out), encoding="utf-8")
    return Written(md, html_path, b.figures, tables, b.skipped, b.why_no_figures)


# -- reading the store --------------------------------------------------------------------

def _experiments(store: Store) -> list[_Exp]:
    by_name: dict[str, _Exp] = {}
    for row in store.runs():  # ids ascend: experiments in the order they were first run
        by_name.setdefault(row["experiment"], _Exp(row["experiment"], [])).rows.append(row)
    return list(by_name.values())


def _study(store: Store) -> tuple[dict | None, dict[str, Any]]:
    """The latest recorded experiments file and its parsed TOML ({} when unreadable)."""
    study = store.latest_study()
    if study is None:
        return None, {}
    try:
        return study, tomllib.loads(study["text"])
    except tomllib.TOMLDecodeError:
        return study, {}


def _grid_keys(exp: _Exp, raw: dict[str, Any]) -> list[str]:
    """The grid's keys as the study file lists them (none when it is not stored)."""
    spec = next((e for e in raw.get("experiment", []) if e.get("name") == exp.name), {})
    grid = spec.get("grid")
    return [k for k in grid if k != "seed"] if isinstance(grid, dict) else []


def _baseline(exps: Sequence[_Exp]) -> _Exp | None:
    named = [e for e in exps if e.name == "baseline" and e.done]
    if named:
        return named[0]
    single = [e for e in exps if len(e.done) == 1]
    return single[0] if single else None


def _is_grid(exp: _Exp, raw: dict[str, Any]) -> bool:
    spec = next((e for e in raw.get("experiment", []) if e.get("name") == exp.name), {})
    return bool(spec.get("grid")) or len(stats.varying_keys(r["config"] for r in exp.done)) >= 2


def _aggregates(rows: Sequence[dict[str, Any]]) -> list[Any]:
    return stats.aggregate(rows)


def _repeated(aggs: Sequence[Any]) -> bool:
    return any(a.n > 1 for a in aggs)


def _interval(summary: Any) -> str:
    if summary.low is None:
        return pct(summary.mean)
    return f"{pct(summary.mean)} (95 % CI {pct(summary.low)} to {pct(summary.high)}, n={summary.n})"


# -- the sections ---------------------------------------------------------------------------

def _build(b: _Builder, only: Sequence[str]) -> str:
    exps = _experiments(b.store)
    study, raw = _study(b.store)
    title = str(raw.get("title") or f"Results of {b.store.path.name}")
    for spec in raw.get("experiment", []):
        for exp in exps:
            if exp.name == spec.get("name"):
                exp.description = str(spec.get("description", ""))
    unknown = [name for name in only if name not in {e.name for e in exps}]
    if unknown:
        raise ValueError(f"--only {', '.join(unknown)}: not in {b.store.path}; experiments "
                         f"there: {', '.join(e.name for e in exps) or 'none'}")
    chosen = [e for e in exps if not only or e.name in only]
    baseline = _baseline(exps)
    grids = [e for e in exps if e is not baseline and _is_grid(e, raw)]
    b.add(Heading(1, title))
    if only:
        b.add(Para(f"Only the experiments {', '.join(only)} (--only)."))
    _environment(b, chosen)
    if baseline is not None and baseline in chosen:
        _baseline_section(b, baseline)
    for exp in chosen:
        if exp is baseline:
            continue
        if _is_grid(exp, raw):
            _grid_section(b, exp, _grid_keys(exp, raw))
        else:
            _experiment_section(b, exp, baseline, grids)
    _confusion_section(b, chosen)
    _summary_section(b, chosen, baseline)
    _reproduction(b, study, chosen)
    if b.skipped:
        b.add(Heading(2, "Figures not drawn"),
              Para(f"Not drawn ({b.why_no_figures}); the tables above hold their numbers:"),
              Bullets(tuple(b.skipped)))
    return title


def _environment(b: _Builder, exps: Sequence[_Exp]) -> None:
    rows = [r for e in exps for r in e.rows]
    b.add(Heading(2, "Environment"))
    if not rows:
        b.add(Para(f"The store {b.store.path.name} holds no runs yet."))
        return
    done = [r for e in exps for r in e.done]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    full = [b.store.run(r["id"]) for r in (done or rows)]
    versions: dict[str, list[str]] = {}
    for run in full:
        for lib, v in sorted(run["versions"].items()):
            if v not in versions.setdefault(lib, []):
                versions[lib].append(v)
    datasets = sorted({r["dataset"] for r in rows})
    devices = sorted({str(r["device"]) for r in rows if r["device"]})
    seeds = sorted({int(r["config"].get("seed", 0)) for r in rows})
    items = [
        "runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        "versions: " + ", ".join(f"{lib} {' / '.join(v)}" for lib, v in versions.items()),
        f"device{'s' if len(devices) > 1 else ''}: {', '.join(devices) or '-'}",
        f"seed{'s' if len(seeds) > 1 else ''}: {', '.join(map(str, seeds))}",
    ]
    for name in datasets:
        fingerprints = sorted({str(run["data_fingerprint"]) for run in full
                               if run["dataset"] == name and run["data_fingerprint"]})
        items.append(f"data set: {name}" + (f" (fingerprint {', '.join(fingerprints)})"
                                            if fingerprints else "") + _split_text(b, name))
    b.add(Bullets(tuple(items)))
    from workbench.data import FALLBACK_MARK, loaded_name

    for name in datasets:
        if FALLBACK_MARK in name or loaded_name(name) == "mnist-sample":
            b.add(Alert(f"These results are on {loaded_name(name)}"
                        + (f", standing in for {name.split(FALLBACK_MARK, 1)[1].rstrip(')')}"
                           if FALLBACK_MARK in name else "")
                        + ": 10,000 real MNIST digits (8,000 train, 2,000 test), not the full "
                        "70,000. Accuracies are lower than on full MNIST and NOT comparable to "
                        "the reference figures."))


def _split_text(b: _Builder, identity: str) -> str:
    """'; split 55,000 train / 5,000 validation / 10,000 test; source ...' from the data
    set's files (which this machine must have)."""
    test = _test_set(b, identity)
    if test is None:
        return "; split not known here (its files are not available on this machine)"
    from workbench.data import val_size

    testset, n_train, source = test
    n_val = val_size(n_train)
    return (f"; split {n_train - n_val:,} train / {n_val:,} validation / "
            f"{len(testset.labels):,} test; source {source}")


def _test_set(b: _Builder, identity: str) -> tuple[Any, int, str] | None:
    """(TestSet, training images, source) of a stored data set, or None when it cannot be
    had here (workbench.data caches what it loads)."""
    from workbench import data
    from workbench.report.testset import TestSet

    if b.registry is None:
        from workbench.plugins import load_plugins

        b.registry = load_plugins()
    try:
        raw = data.resolve(data.loaded_name(identity), b.registry, b.data_dir,
                           allow_fallback=False)
    except data.DataError:
        return None
    source = "the package's shipped sample" if raw.name == "mnist-sample" else raw.source
    return (TestSet(raw.test_images, raw.test_labels, raw.fingerprint, raw.classes),
            len(raw.train_labels), source)


def _run_columns(keys: Sequence[str]) -> tuple[Column, ...]:
    return (*[Column(k, "value") for k in keys],
            *([] if "epochs" in keys else [Column("epochs", "value")]),
            Column("final val acc", "pct"), Column("best val acc", "pct"),
            Column("@epoch", "value"), Column("final train loss", "loss"),
            Column("test acc", "pct"), Column("seconds", "seconds"))


def _run_cells(row: dict[str, Any], keys: Sequence[str], full: dict[str, Any]) -> tuple:
    return (*[row["config"].get(k) for k in keys],
            *([] if "epochs" in keys else [row["epochs_done"]]), full["final_val_acc"],
            row["best_val_acc"], row["best_epoch"], full["final_train_loss"], row["test_acc"],
            row["train_seconds"])


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "x"


def _section(b: _Builder, exp: _Exp, heading: str) -> list[dict[str, Any]]:
    """The section's heading and description; returns its finished runs (saying when none)."""
    b.add(Heading(2, heading))
    _described(b, exp)
    if not exp.done:
        b.add(Para("No finished runs yet."))
    return exp.done


def _described(b: _Builder, exp: _Exp) -> None:
    if exp.description:
        b.add(Para(exp.description))
    others = len(exp.rows) - len(exp.done)
    if others:
        b.add(Para(f"{others} of its {len(exp.rows)} stored runs did not finish "
                   "(failed, cancelled, diverged or interrupted) and are left out."))


def _baseline_section(b: _Builder, exp: _Exp) -> None:
    run = exp.done[-1]
    full = b.store.run(run["id"])
    b.add(Heading(2, f"Baseline ({exp.name})"))
    _described(b, exp)
    cfg = run["config"]
    b.add(Para("Config: " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(cfg.items())) + "."))
    keys: list[str] = []
    b.add(Table(f"{_slug(exp.name)}", _run_columns(keys), (_run_cells(run, keys, full),)))
    curve = [e["val_acc"] for e in b.store.epochs(run["id"])]
    b.add(Para(f"Test accuracy {pct(run['test_acc'])}; best validation accuracy "
               f"{pct(run['best_val_acc'])} at epoch {run['best_epoch']}; "
               f"{run['train_seconds'] or 0:.1f} s on {run['device']}."),
          Bullets((obs.trend_sentence(exp.name, curve),)))
    b.figure(f"curves-{_slug(exp.name)}", f"{exp.name}: learning curves",
             figures.learning_curves, [(exp.name, b.store.epochs(run["id"]))],
             f"{exp.name}: learning curves")


def _grid_section(b: _Builder, exp: _Exp, order: Sequence[str] = ()) -> None:
    done = _section(b, exp, f"Grid: {exp.name}")
    if not done:
        return
    keys = stats.varying_keys(r["config"] for r in done)
    keys = [k for k in order if k in keys] + [k for k in _axis_order(keys) if k not in order]
    axes = [(k, sorted({r["config"][k] for r in done if k in r["config"]}, key=_order))
            for k in keys]
    done = sorted(done, key=lambda r: tuple(_order(r["config"].get(k)) for k in keys))
    b.add(Para(f"{len(done)} finished runs over " + " x ".join(
        f"{k} [{', '.join(fmt(v) for v in vals)}]" for k, vals in axes) + "."))
    seed_keys = ["seed"] if len({r["config"].get("seed") for r in done}) > 1 else []
    full = {r["id"]: b.store.run(r["id"]) for r in done}
    b.add(Table(f"{_slug(exp.name)}-runs", _run_columns([*keys, *seed_keys]),
                tuple(_run_cells(r, [*keys, *seed_keys], full[r["id"]]) for r in done)))
    # One cell per config: the mean over its seeds when they repeat.
    aggs = _aggregates(done)
    cells = {tuple(a.config.get(k) for k, _ in axes): a.test_acc.mean for a in aggs}
    best_key = max(sorted(cells, key=lambda k: tuple(map(_order, k))), key=lambda k: cells[k])
    best_cfg = dict(zip([k for k, _ in axes], best_key))
    repeated = _repeated(aggs)
    if repeated:
        b.add(Para("Seeds repeat: each cell below is the mean over its seeds, with its 95 % "
                   "t-interval."))
        b.add(Table(f"{_slug(exp.name)}-cells",
                    (*[Column(k, "value") for k, _ in axes], Column("seeds", "value"),
                     Column("mean test acc", "pct"), Column("CI low", "pct"),
                     Column("CI high", "pct"), Column("std", "pct")),
                    tuple((*[a.config.get(k) for k, _ in axes], a.n, a.test_acc.mean,
                           a.test_acc.low, a.test_acc.high, a.test_acc.std) for a in aggs)))
    b.figure(f"grid-{_slug(exp.name)}", f"{exp.name}: test accuracy of every cell (%), best "
             "outlined in red", figures.grid_heatmaps, cells, axes, best_key,
             f"{exp.name}: test accuracy (%)")
    what = "mean test accuracy" if repeated else "test accuracy"
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


def _order(value: Any) -> Any:
    return (str(type(value).__name__), value)


def _axis_order(keys: Sequence[str]) -> list[str]:
    """The seed's figure: learning rate first, batch size last, the rest between."""
    first = [k for k in ("lr",) if k in keys]
    last = [k for k in ("batch_size",) if k in keys]
    return first + [k for k in keys if k not in first + last] + last


def _factor_effects(b: _Builder, exp: _Exp, aggs: Sequence[Any], order: Sequence[str]
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
        for level in effects.levels[factor]:
            s = level.summary
            rows.append((factor, level.level, s.n, s.mean, s.low, s.high,
                         s.mean - effects.grand_mean))
    b.add(Para(f"Mean test accuracy at each level of each factor, over the grid's cells "
               f"(grand mean {pct(effects.grand_mean)}); the interval says how much that mean "
               "holds across the other factors' levels."),
          Table(f"{_slug(exp.name)}-effects",
                (Column("factor"), Column("level", "value"), Column("cells", "value"),
                 Column("mean test acc", "pct"), Column("CI low", "pct"),
                 Column("CI high", "pct"), Column("vs grand mean (points)", "points")),
                tuple(rows)))
    spread = sorted(((max(lv.summary.mean for lv in effects.levels[f])
                      - min(lv.summary.mean for lv in effects.levels[f]), f)
                     for f in effects.factors), reverse=True)
    notes = [f"{f}: its levels' means span {100 * d:.2f} points" for d, f in spread]
    if effects.interaction is not None:
        fa, fb = effects.interaction.factors
        notes.append(f"Largest two-factor interaction: {fa} x {fb}, up to "
                     f"{100 * effects.interaction.size:.2f} points away from the sum of "
                     "their separate effects.")
    b.add(Bullets(tuple(notes)))


def _experiment_section(b: _Builder, exp: _Exp, baseline: _Exp | None,
                        grids: Sequence[_Exp] = ()) -> None:
    done = _section(b, exp, f"Experiment: {exp.name}")
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
    full = {r["id"]: b.store.run(r["id"]) for r in done}
    named = [] if keys else [Column("run")]
    b.add(Table(_slug(exp.name), (*named, *_run_columns(keys)),
                tuple((*([] if keys else [r["label"]]), *_run_cells(r, keys, full[r["id"]]))
                      for r in done)))
    curves = {r["id"]: b.store.epochs(r["id"]) for r in done}
    notes = [obs.trend_sentence(r["label"], [e["val_acc"] for e in curves[r["id"]]])
             for r in done]
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
    if base_run is not None and not _repeated(_aggregates([*done, *baseline.done])):
        notes.append(obs.NO_REPEATS)
    b.add(Bullets(tuple(notes)))
    ref = (baseline.name, b.store.epochs(base_run["id"])) if base_run is not None else None
    b.figure(f"curves-{_slug(exp.name)}", f"{exp.name}: learning curves"
             + (f" ({baseline.name} dashed)" if ref else ""), figures.learning_curves,
             [(r["label"], curves[r["id"]]) for r in done], f"{exp.name}: learning curves",
             reference=ref)


def _closest_grid_run(run: dict[str, Any], grids: Sequence[_Exp]
                      ) -> tuple[dict[str, Any], list[str]] | None:
    """The grid run that shares every grid value with ``run`` and differs in the fewest other
    keys (seed aside): the point an experiment changed, as the seed's experiments 2-x started
    from the grid's best cell. None when no grid run matches on every axis."""
    found = None
    for grid in grids:
        axes = set(stats.varying_keys(r["config"] for r in grid.done))
        for other in grid.done:
            delta = [k for k in config_delta(run["config"], other["config"]) if k != "seed"]
            if delta and not axes & set(delta) and (found is None or len(delta) < len(found[1])):
                found = (other, delta)
    return found


def _versus(exp: _Exp, baseline: _Exp) -> list[str]:
    """Each config of ``exp`` against the baseline, with intervals when seeds repeat."""
    mine, base = _aggregates(exp.done), _aggregates(baseline.done)
    if mine and base:
        top = base[0].test_acc
        out = []
        for agg in mine:
            s = agg.test_acc
            beyond = None if s.low is None or top.low is None else not s.overlaps(top)
            out.append(obs.versus_baseline(
                agg.label, s.mean, top.mean, beyond,
                f"{_interval(s)} against {_interval(top)}"))
        return out
    base_acc = baseline.done[-1]["test_acc"]
    return [obs.versus_baseline(r["label"], r["test_acc"], base_acc) for r in exp.done]


def _confusion_section(b: _Builder, exps: Sequence[_Exp]) -> None:
    best = best_row([r for e in exps for r in e.done])
    b.add(Heading(2, "Confusion matrix of the best run"))
    if best is None:
        b.add(Para("No finished run yet."))
        return
    run = b.store.run(best["id"])
    if not run or not run["confusion"]:
        b.add(Para(f"The best run ({_run_name(best)}) has no stored "
                   "confusion matrix."))
        return
    cm = run["confusion"]
    name = _run_name(best)
    b.add(Para(f"Best run by test accuracy: {name}, {pct(best['test_acc'])} on "
               f"{best['dataset']}. Rows are the true digit, columns the prediction."))
    test = _test_set(b, run["dataset"])
    classes = test[0].classes if test else tuple(str(i) for i in range(len(cm)))
    b.add(Table("confusion", (Column("true \\ predicted"), *[Column(c, "value") for c in classes]),
                tuple((classes[t], *line) for t, line in enumerate(cm))))
    b.figure("confusion", f"confusion matrix of {name}", figures.confusion_matrix, cm, classes,
             f"{name}: {pct(best['test_acc'])} test accuracy")
    pairs = most_confused(cm)
    if not pairs:
        b.add(Para("No test image was misclassified."))
        return
    b.add(Table("most-confused", (Column("true"), Column("predicted"), Column("count", "value"),
                                  Column("share of the true digit", "pct")),
                tuple((classes[t], classes[p], n, n / max(1, sum(cm[t])))
                      for t, p, n in pairs)))
    t, p, n = pairs[0]
    b.add(Para(f"The most frequent mistake: {classes[t]} read as {classes[p]}, {n} of "
               f"{sum(cm[t])} test images of {classes[t]}."))
    _digit_strip(b, run, pairs[:STRIP_PAIRS], test)


def _run_name(row: dict[str, Any]) -> str:
    same = row["label"] == row["experiment"]
    return row["experiment"] if same else f"{row['experiment']}: {row['label']}"


def _digit_strip(b: _Builder, run: dict[str, Any], pairs: Sequence[tuple[int, int, int]],
                 test: Any) -> None:
    from workbench.report.testset import misclassified

    if test is None:
        b.add(Para(f"Digits not shown: the test images of {run['dataset']} are not available "
                   "on this machine."))
        return
    testset = test[0]
    preds = run.get("predictions")
    if not preds or len(preds) != len(testset.labels):
        b.add(Para("Digits not shown: the run has no stored predictions for this test set."))
        return
    if run.get("data_fingerprint") and run["data_fingerprint"] != testset.fingerprint:
        b.add(Para(f"Digits not shown: the {run['dataset']} files here differ from the ones "
                   "the run used (fingerprint)."))
        return
    rows = []
    for t, p, _ in pairs:
        idx = [int(i) for i in misclassified(testset.labels, preds, t, p)[:STRIP_DIGITS]]
        rows.append((f"{testset.classes[t]} -> {testset.classes[p]}",
                     [testset.images[i] for i in idx], idx))
    b.figure("confused-digits", "test digits of the most-confused pairs (true -> predicted; "
             "#test index)", figures.digit_strip, rows, STRIP_DIGITS)


def _summary_section(b: _Builder, exps: Sequence[_Exp], baseline: _Exp | None) -> None:
    b.add(Heading(2, "Summary of all experiments"))
    base_acc = baseline.done[-1]["test_acc"] if baseline is not None and baseline.done else None
    rows = []
    for exp in exps:
        best = best_row(exp.done)
        rows.append((exp.name, len(exp.done), best and best["label"], best and best["test_acc"],
                     best and best["best_val_acc"],
                     None if best is None or base_acc is None else best["test_acc"] - base_acc))
    b.add(Table("summary", (Column("experiment"), Column("runs", "value"), Column("best run"),
                            Column("test acc", "pct"), Column("best val acc", "pct"),
                            Column("vs baseline (points)", "points")), tuple(rows)))
    _reference_table(b, exps)


def _reference_table(b: _Builder, exps: Sequence[_Exp]) -> None:
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
        shown.append((c.ref.experiment, (c.label or "-") + (f" ({c.ref.where_text})"
                                                            if c.ref.where else ""),
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


def _reproduction(b: _Builder, study: dict | None, exps: Sequence[_Exp]) -> None:
    b.add(Heading(2, "Reproduction"))
    if study is None:
        b.add(Para("The experiments file is not in this store (stores record it from "
                   "headless sweeps of this version on); the runs' configs are in the tables "
                   "above and in the store."))
    else:
        b.add(Para(f"Experiments file {study['path']} as the latest sweep read it "
                   f"(sha256 {study['sha256']}):"),
              Code(study["text"], "toml"),
              Para("Command:"), Code(study["command"], "sh"))
    versions = sorted({json.dumps(b.store.run(r["id"])["versions"], sort_keys=True)
                       for e in exps for r in e.done})
    if versions:
        b.add(Para("Library versions the runs recorded:"),
              Code("\n".join(", ".join(f"{k} {v}" for k, v in sorted(json.loads(s).items()))
                             for s in versions)))

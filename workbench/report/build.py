"""The report of a store, in the seed report's order, written out as Markdown, CSV, PNG
and HTML.

Reads only the store (and the test images, for the strip of confused digits); nothing is
trained. The same store gives the same Markdown byte for byte: no clocks, no paths of this
machine beyond what the store holds, every collection in a fixed order.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from workbench import stats
from workbench.report import figures
from workbench.report.confusion import confusion_section
from workbench.report.context import Builder, Experiment
from workbench.report.document import Bullets, Heading, Para, Table
from workbench.report.environment import environment_section, reproduction_section
from workbench.report.experiments import baseline_section, experiment_section
from workbench.report.grid import grid_section
from workbench.report.summary import summary_section
from workbench.store import Store


@dataclass
class Written:
    """What ``write_report`` wrote, for the faces to say."""

    markdown: Path
    html: Path | None
    figures: list[Path]
    tables: list[Path]
    skipped: list[str]  # figures not drawn
    why_skipped: str  # why they were not ('' when all were drawn)


def write_report(store: Store, out: Path | str, only: Sequence[str] = (), html: bool = False,
                 with_figures: bool = True, registry: Any = None,
                 data_dir: Path | None = None) -> Written:
    """Write ``out/report.md`` with its PNG figures and one CSV per table (and
    ``out/report.html`` with the figures inlined when ``html``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    why = figures.available() if with_figures else "figures turned off"
    b = Builder(store, out, draw=why is None, registry=registry, data_dir=data_dir,
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


def _experiments(store: Store, raw: dict[str, Any]) -> list[Experiment]:
    """The store's experiments in the study file's order (when it is stored), then any
    others in the order they were first run, each with its description."""
    by_name: dict[str, Experiment] = {}
    for row in store.runs():  # ids ascend
        by_name.setdefault(row["experiment"], Experiment(row["experiment"], [])).rows.append(row)
    specs = [e for e in raw.get("experiment", []) if isinstance(e, dict)]
    order = [str(e.get("name")) for e in specs]
    for spec in specs:
        if spec.get("name") in by_name:
            by_name[spec["name"]].description = str(spec.get("description", ""))
    return sorted(by_name.values(), key=lambda e: order.index(e.name) if e.name in order
                  else len(order))


def _study(store: Store) -> tuple[dict | None, dict[str, Any]]:
    """The latest recorded experiments file and its parsed TOML ({} when unreadable)."""
    study = store.latest_study()
    if study is None:
        return None, {}
    try:
        return study, tomllib.loads(study["text"])
    except tomllib.TOMLDecodeError:
        return study, {}


def _grid_keys(exp: Experiment, raw: dict[str, Any]) -> list[str]:
    """The grid's keys as the study file lists them (none when it is not stored)."""
    spec = next((e for e in raw.get("experiment", []) if e.get("name") == exp.name), {})
    grid = spec.get("grid")
    return [k for k in grid if k != "seed"] if isinstance(grid, dict) else []


def _baseline(exps: Sequence[Experiment]) -> Experiment | None:
    named = [e for e in exps if e.name == "baseline" and e.done]
    if named:
        return named[0]
    single = [e for e in exps if len(e.done) == 1]
    return single[0] if single else None


def _is_grid(exp: Experiment, raw: dict[str, Any]) -> bool:
    spec = next((e for e in raw.get("experiment", []) if e.get("name") == exp.name), {})
    return bool(spec.get("grid")) or len(stats.varying_keys(r["config"] for r in exp.done)) >= 2


def _build(b: Builder, only: Sequence[str]) -> str:
    study, raw = _study(b.store)
    exps = _experiments(b.store, raw)
    title = str(raw.get("title") or f"Results of {b.store.path.name}")
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
    environment_section(b, chosen)
    if baseline is not None and baseline in chosen:
        baseline_section(b, baseline)
    for exp in chosen:
        if exp is baseline:
            continue
        if _is_grid(exp, raw):
            grid_section(b, exp, _grid_keys(exp, raw))
        else:
            experiment_section(b, exp, baseline, grids)
    confusion_section(b, chosen)
    summary_section(b, chosen, baseline)
    reproduction_section(b, study, chosen)
    if b.skipped:
        b.add(Heading(2, "Figures not drawn"),
              Para(f"Not drawn ({b.why_no_figures}); the tables above hold their numbers:"),
              Bullets(tuple(b.skipped)))
    return title

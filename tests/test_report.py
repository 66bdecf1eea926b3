"""`mnist-workbench report`: the write-up of a store, read from the store alone.

One small real study (mnist-sample, tiny MLPs) is trained once through the headless CLI and
reported through the CLI; constructed stores (fixed curves and accuracies, written through
the Store's own methods) check the observations where their outcome must be known.
"""

from __future__ import annotations

import csv
import hashlib
import re
import struct
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli
from workbench.report import observations as obs
from workbench.report.build import write_report
from workbench.report.tables import pct
from workbench.store import Store
from workbench.types import DONE, EpochMetrics, RunResult, RunSpec

STUDY = """
title = "report test study"
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 2
batch_size = 256
seed = 3

[[experiment]]
name = "baseline"
description = "the defaults, once"
reference = { test_acc = 0.9644, source = "seed report" }

[[experiment]]
name = "grid"
[experiment.grid]
lr = [1e-3, 3e-3, 1e-2]
hidden = [8, 16, 32]

[[experiment.reference]]
where = { lr = 3e-3, hidden = 32 }
best_val_acc = 0.95
source = "a made-up figure"

[[experiment]]
name = "wide"
description = "a wider hidden layer, three epochs"
hidden = 64
epochs = 3
"""


NOTES_PLUGIN = """from workbench import hookimpl


@hookimpl
def on_run_finished(result):
    pass  # loaded by the sweep: its report keeps this file
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real headless sweep of STUDY (11 runs) and its report written by the CLI."""
    folder = tmp_path_factory.mktemp("report-study")
    toml = folder / "experiments.toml"
    toml.write_text(textwrap.dedent(STUDY))
    (folder / "plugins").mkdir()  # a drop-in beside the file: part of what reproduces it
    (folder / "plugins" / "notes.py").write_text(NOTES_PLUGIN)
    store = folder / "workbench.sqlite"
    env = {"MNIST_WORKBENCH_DATA": str(folder / "cache")}
    ran = run_cli("--headless", str(toml), "--store", str(store), env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = folder / "report"
    wrote = run_cli("report", "--store", str(store), "--out", str(out), "--html", env=env)
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    return toml, store, out, wrote.stdout


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_markdown_html_figures_and_a_csv_per_table(study):
    toml, store_path, out, stdout = study
    assert f"wrote {out / 'report.md'} and {out / 'report.html'}: 5 figures" in stdout
    md = (out / "report.md").read_text()
    # the seed's order
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["## Environment", "## Baseline", "## Grid: grid",
                     "## Experiment: wide", "## Confusion matrix of the best run",
                     "## Summary of all experiments", "## Reproduction"]
    for name in re.findall(r"\(table as CSV: `([^`]+)`\)", md):
        assert (out / name).is_file(), name
    assert {p.name for p in out.glob("*.png")} == set(re.findall(r"\]\(([^)]+\.png)\)", md))


def test_report_numbers_equal_the_store(study):
    _, store_path, out, _ = study
    store = Store(store_path, readonly=True)
    rows = {r["id"]: r for r in store.runs()}
    grid = {(r["config"]["lr"], r["config"]["hidden"]): r for r in rows.values()
            if r["experiment"] == "grid"}
    table = _csv(out / "grid-runs.csv")
    assert len(table) == 9
    for line in table:  # raw values, exactly as stored
        row = grid[(float(line["lr"]), int(line["hidden"]))]
        assert float(line["test acc"]) == row["test_acc"]
        assert float(line["best val acc"]) == row["best_val_acc"]
        assert int(line["@epoch"]) == row["best_epoch"]
    md = (out / "report.md").read_text()
    best = max(grid.values(), key=lambda r: r["test_acc"])
    lr, hidden = best["config"]["lr"], best["config"]["hidden"]
    assert f"Best cell: lr={lr:g} hidden={hidden} with test accuracy {pct(best['test_acc'])}." \
        in md
    summary = {line["experiment"]: line for line in _csv(out / "summary.csv")}
    base = next(r for r in rows.values() if r["experiment"] == "baseline")
    assert float(summary["grid"]["test acc"]) == best["test_acc"]
    assert float(summary["grid"]["vs baseline (points)"]) == pytest.approx(
        best["test_acc"] - base["test_acc"])
    assert summary["grid"]["runs"] == "9"
    top = max(rows.values(), key=lambda r: r["test_acc"])
    confusion = [[int(v) for v in list(line.values())[1:]] for line in _csv(out / "confusion.csv")]
    assert confusion == store.run(top["id"])["confusion"]
    wide = next(r for r in rows.values() if r["experiment"] == "wide")
    assert (f"wide: {pct(wide['test_acc'])}, {100 * abs(wide['test_acc'] - base['test_acc']):.2f}"
            f" points {'above' if wide['test_acc'] > base['test_acc'] else 'below'} the "
            f"baseline ({pct(base['test_acc'])})") in md
    assert "Changes from the baseline: epochs 2 -> 3, hidden 16 -> 64." in md
    store.close()


def test_summary_sets_each_reference_figure_against_the_run_it_names(study):
    _, store_path, out, _ = study
    store = Store(store_path, readonly=True)
    rows = store.runs()
    base = next(r for r in rows if r["experiment"] == "baseline")
    cell = next(r for r in rows if r["experiment"] == "grid" and r["config"]["lr"] == 3e-3
                and r["config"]["hidden"] == 32)
    refs = _csv(out / "references.csv")
    assert [(r["experiment"], r["run"], r["metric"], r["source"]) for r in refs] == [
        ("baseline", "baseline", "test_acc", "seed report"),
        ("grid", cell["label"], "best_val_acc", "a made-up figure")]
    assert float(refs[0]["here"]) == base["test_acc"] and float(refs[0]["reference"]) == 0.9644
    assert float(refs[0]["difference"]) == pytest.approx(base["test_acc"] - 0.9644)
    assert float(refs[1]["here"]) == cell["best_val_acc"]
    md = (out / "report.md").read_text()
    assert (f"| baseline | baseline | test accuracy | {100 * base['test_acc']:.2f}% | 96.44% | "
            f"{100 * (base['test_acc'] - 0.9644):+.2f} pp | seed report |") in md
    assert (f"| grid | {cell['label']} | best validation accuracy | "
            f"{100 * cell['best_val_acc']:.2f}% | 95.00% |") in md
    store.close()


def test_environment_says_loudly_that_the_sample_stood_in_and_names_the_split(study):
    md = (study[2] / "report.md").read_text()
    assert "split 7,333 train / 667 validation / 2,000 test" in md
    assert "> **These results are on mnist-sample: 10,000 real MNIST digits" in md
    assert "seed: 3" in md and "device: cpu" in md


def test_reproduction_block_holds_the_study_file_its_hash_and_the_command(study):
    toml, store_path, out, _ = study
    md = (out / "report.md").read_text()
    text = toml.read_text()
    assert f"(sha256 {hashlib.sha256(text.encode()).hexdigest()})" in md
    assert "```toml\n" + text.rstrip() + "\n```" in md
    assert f"mnist-workbench --headless {toml} --store {store_path}" in md
    # and the drop-in plugin code the sweep loaded, as it was
    plugin = toml.parent / "plugins" / "notes.py"
    assert f"Drop-in plugin {plugin} as the sweep loaded it (sha256 " \
           f"{hashlib.sha256(NOTES_PLUGIN.encode()).hexdigest()}):" in md
    assert "```python\n" + NOTES_PLUGIN.rstrip() + "\n```" in md


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def test_figures_are_valid_pngs_of_sensible_size_and_the_html_inlines_them(study):
    out = study[2]
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["confused-digits.png", "confusion.png",
                                      "curves-baseline.png", "curves-wide.png", "grid-grid.png"]
    for png in pngs:
        width, height = _png_size(png)
        assert 300 <= width <= 2000 and 150 <= height <= 2000, (png.name, width, height)
        assert png.stat().st_size > 5000, png.name  # something is drawn
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 5
    assert not re.search(r'src="(?!data:)', html)  # nothing to fetch: one file


def test_the_same_store_gives_byte_identical_markdown_and_csv(study, tmp_path):
    _, store_path, _, _ = study
    store = Store(store_path, readonly=True)
    first = write_report(store, tmp_path / "a", with_figures=False)
    second = write_report(store, tmp_path / "b", with_figures=False)
    store.close()
    assert first.markdown.read_bytes() == second.markdown.read_bytes()
    for a in first.tables:
        assert a.read_bytes() == (tmp_path / "b" / a.name).read_bytes()


def test_without_matplotlib_text_tables_and_the_skipped_figures_named(study, tmp_path,
                                                                      monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    store = Store(study[1], readonly=True)
    written = write_report(store, tmp_path / "r", html=True)
    store.close()
    assert written.figures == [] and not list((tmp_path / "r").glob("*.png"))
    md = written.markdown.read_text()
    assert "## Figures not drawn" in md and "matplotlib is not installed" in md
    assert "- grid-grid.png (grid: test accuracy of every cell (%)" in md
    assert "- confusion.png (" in md and "](" not in md  # no image links
    assert "| 0 | " in md  # the confusion matrix as a text table
    assert "<img" not in written.html.read_text()


def test_only_reports_one_experiment_and_an_unknown_name_is_refused(study, tmp_path):
    _, store_path, _, _ = study
    done = run_cli("report", "--store", str(store_path), "--out", str(tmp_path / "w"),
                   "--only", "wide", "--no-figures")
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "w" / "report.md").read_text()
    assert "## Experiment: wide" in md and "## Grid: grid" not in md
    assert "## Baseline" not in md
    assert "above the baseline" in md or "below the baseline" in md
    bad = run_cli("report", "--store", str(store_path), "--out", str(tmp_path / "x"),
                  "--only", "wid")
    assert bad.returncode == 2
    assert "--only wid: not in" in bad.stderr and "baseline, grid, wide" in bad.stderr
    assert not (tmp_path / "x" / "report.md").exists()


def test_a_missing_store_is_refused_naming_it(tmp_path):
    done = run_cli("report", "--store", str(tmp_path / "nope.sqlite"))
    assert done.returncode == 2
    assert f"--store {tmp_path / 'nope.sqlite'}: no results file there" in done.stderr


# -- observations on constructed numbers ------------------------------------------------------

def test_curve_trend_reads_rising_peaked_and_flat_curves():
    assert obs.curve_trend([0.90, 0.93, 0.95]) == ("rising", None)
    assert obs.curve_trend([0.90, 0.96, 0.95, 0.93]) == ("peaked", 2)
    assert obs.curve_trend([0.90, 0.95, 0.9515]) == ("flat", None)  # one image in 667
    assert obs.curve_trend([0.90, 0.95, 0.9485]) == ("flat", None)
    assert obs.curve_trend([0.95]) == ("flat", None)
    assert "overfitting after epoch 2" in obs.trend_sentence("x", [0.90, 0.96, 0.95, 0.93])
    assert "under-trained" in obs.trend_sentence("x", [0.90, 0.93, 0.95])


def test_a_run_stopped_early_says_so_before_its_curve():
    said = obs.trend_sentence("es", [0.91], stopped="stopped early at epoch 1 of 3: val "
                              "accuracy reached 0.9")
    assert said == ("es: stopped early at epoch 1 of 3: val accuracy reached 0.9; one epoch "
                    "only; no trend to read.")
    assert obs.trend_sentence("es", [0.90, 0.93, 0.95], stopped="stopped early at epoch 3") \
        .startswith("es: stopped early at epoch 3; validation accuracy still rose")


def test_a_run_is_set_beside_a_grid_run_only_where_few_settings_differ():
    """'the same settings but for activation' reads as one change; six differences (another
    model, its parameters, callbacks) are no comparison and are not made."""
    from types import SimpleNamespace

    from workbench.report.experiments import MAX_CHANGES, _closest_grid_run

    base = {"lr": 1e-3, "hidden": 200, "epochs": 10, "seed": 11, "activation": "relu"}
    grid = SimpleNamespace(done=[{"config": {**base, "lr": lr}} for lr in (1e-3, 1e-2)])
    one = {"config": {**base, "activation": "tanh", "seed": 12}}
    other, delta = _closest_grid_run(one, [grid])
    assert (other["config"]["lr"], delta) == (1e-3, ["activation"])
    many = {"config": {**base, "activation": "tanh", **{f"k{i}": i for i in range(MAX_CHANGES)}}}
    assert _closest_grid_run(many, [grid]) is None
    assert MAX_CHANGES == 3


def test_grid_edge_says_which_way_to_extend_only_when_the_best_is_on_an_edge():
    axes = {"lr": [1e-4, 1e-3, 1e-2], "hidden": [50, 100, 200], "batch_size": [64, 128]}
    on_edge = obs.grid_edge(axes, {"lr": 1e-3, "hidden": 200, "batch_size": 64})
    assert on_edge == ["hidden=200 is the highest hidden tried: the best cell is on the "
                       "grid's edge; extend hidden above 200."]
    low = obs.grid_edge(axes, {"lr": 1e-4, "hidden": 100, "batch_size": 128})
    assert low == ["lr=0.0001 is the lowest lr tried: the best cell is on the grid's edge; "
                   "extend lr below 0.0001."]
    inside = obs.grid_edge(axes, {"lr": 1e-3, "hidden": 100, "batch_size": 64})
    assert inside == ["The best cell is inside the grid on every axis with three or more "
                      "values."]


def _constructed(path: Path, grid_acc: dict[tuple[float, int], float],
                 curves: dict[str, list[float]], seeds: dict[int, float] | None = None
                 ) -> Store:
    """A store with a 3x3 lr x hidden grid of fixed test accuracies and single-run
    experiments with fixed validation curves, written through the Store's own methods.
    ``seeds``: repeat every run once per seed, its accuracies shifted by the given amount."""
    store = Store(path)
    base = {"dataset": "mnist-sample", "model": "baseline_mlp", "lr": 1e-3, "hidden": 16,
            "activation": "relu", "dropout": 0.0, "epochs": 3, "batch_size": 256, "seed": 3,
            "optimizer": "adam"}

    def put(exp: str, index: int, config: dict, label: str, vals: list[float], test: float):
        run = RunSpec(exp, index, config, label)
        rid = store.start_run(run, "mnist-sample", "cpu")
        epochs = tuple(EpochMetrics(e + 1, 0.5 - 0.1 * e, 0.4, v, max(vals[:e + 1]),
                                    1 + vals.index(max(vals[:e + 1])), float(e))
                       for e, v in enumerate(vals))
        store.finish_run(rid, RunResult(DONE, epochs, test_acc=test, test_loss=0.2,
                                        confusion=tuple(tuple(50 if t == p else (3 if (t, p) == (4, 9) else 0)
                                                              for p in range(10)) for t in range(10)),
                                        train_seconds=1.0, device="cpu",
                                        dataset="mnist-sample"))

    for seed, shift in (seeds or {3: 0.0}).items():
        put("baseline", 0, {**base, "seed": seed}, "baseline", [0.90, 0.91, 0.92 + shift],
            0.92 + shift)
        for i, ((lr, hidden), acc) in enumerate(sorted(grid_acc.items())):
            acc += shift
            put("grid", i, {**base, "lr": lr, "hidden": hidden, "seed": seed},
                f"lr={lr:g} hidden={hidden}", [acc - 0.02, acc - 0.01, acc], acc)
        for i, (name, vals) in enumerate(curves.items()):
            vals = [v + shift for v in vals]
            put(name, 0, {**base, "epochs": len(vals), "hidden": 32 + i, "seed": seed}, name,
                vals, vals[-1])
    return store


def _grid(best: tuple[float, int]) -> dict[tuple[float, int], float]:
    cells = {(lr, h): 0.90 + 0.001 * i for i, (lr, h) in
             enumerate((lr, h) for lr in (1e-4, 1e-3, 1e-2) for h in (8, 16, 32))}
    cells[best] = 0.97
    return cells


def test_report_names_the_edge_and_the_direction_when_the_best_cell_is_on_it(tmp_path):
    store = _constructed(tmp_path / "edge.sqlite", _grid((1e-2, 16)), {})
    md = write_report(store, tmp_path / "r", with_figures=False).markdown.read_text()
    store.close()
    assert "Best cell: lr=0.01 hidden=16 with test accuracy 97.00%." in md
    assert "lr=0.01 is the highest lr tried: the best cell is on the grid's edge; extend lr " \
           "above 0.01." in md
    assert "hidden=16 is" not in md


def test_report_says_the_best_cell_is_inside_when_it_is(tmp_path):
    store = _constructed(tmp_path / "inside.sqlite", _grid((1e-3, 16)), {})
    md = write_report(store, tmp_path / "r", with_figures=False).markdown.read_text()
    store.close()
    assert "Best cell: lr=0.001 hidden=16 with test accuracy 97.00%." in md
    assert "The best cell is inside the grid on every axis with three or more values." in md
    assert "grid's edge" not in md


def test_report_reads_under_training_and_overfitting_from_the_stored_curves(tmp_path):
    store = _constructed(tmp_path / "curves.sqlite", _grid((1e-3, 16)),
                         {"longer": [0.90, 0.93, 0.95, 0.96],
                          "overfit": [0.90, 0.97, 0.96, 0.94]})
    md = write_report(store, tmp_path / "r", with_figures=False).markdown.read_text()
    store.close()
    assert ("longer: validation accuracy still rose in the last epoch (95.00% -> 96.00% at "
            "epoch 4): under-trained") in md
    assert ("overfit: validation accuracy peaked at epoch 2 (97.00%) and ended 3.00 points "
            "lower at epoch 4 (94.00%): overfitting after epoch 2.") in md
    # the grid run it shares every grid value with (hidden 32, lr 0.001), as experiments 2-x
    # of the seed started from the grid's best cell
    assert ("longer: 96.00%, 5.50 points above the grid run lr=0.001 hidden=32 (90.50%), the "
            "same settings but for epochs.") in md
    assert "The experiments file is not in this store" in md  # written without a sweep
    assert "One seed per config, so seed-to-seed noise is not measured" in md


def test_with_repeated_seeds_cells_are_means_with_intervals_and_noise_is_judged(tmp_path):
    from workbench import stats

    seeds = {1: -0.004, 2: 0.0, 3: 0.004}
    store = _constructed(tmp_path / "seeds.sqlite", _grid((1e-3, 16)),
                         {"much-better": [0.95, 0.96, 0.99], "same": [0.90, 0.91, 0.921]},
                         seeds=seeds)
    written = write_report(store, tmp_path / "r", with_figures=False)
    md = written.markdown.read_text()
    cells = _csv(tmp_path / "r" / "grid-cells.csv")
    assert len(cells) == 9 and {c["seeds"] for c in cells} == {"3"}
    best = next(c for c in cells if (c["lr"], c["hidden"]) == ("0.001", "16"))
    expected = stats.summarize([0.97 + s for s in seeds.values()])
    assert float(best["mean test acc"]) == pytest.approx(expected.mean)
    assert (float(best["CI low"]), float(best["CI high"])) == pytest.approx(
        (expected.low, expected.high))
    assert f"Best cell: lr=0.001 hidden=16 with mean test accuracy over seeds {pct(expected.mean)}." in md
    assert "much-better: 99.00%, 7.00 points above the baseline (92.00%)" in md
    assert "and 92.00% (95 % CI" in md and "do not overlap: beyond seed-to-seed noise." in md
    assert "same: 92.10%, 0.10 points above the baseline (92.00%)" in md
    assert " overlap: within seed-to-seed noise." in md
    effects = _csv(tmp_path / "r" / "grid-effects.csv")
    assert [(e["factor"], e["level"], e["cells"], e["runs"]) for e in effects] == [
        ("lr", "0.0001", "3", "9"), ("lr", "0.001", "3", "9"), ("lr", "0.01", "3", "9"),
        ("hidden", "8", "3", "9"), ("hidden", "16", "3", "9"), ("hidden", "32", "3", "9")]
    grid = stats.factor_effects(stats.aggregate(
        [r for r in store.runs() if r["experiment"] == "grid"]))
    lr_mid = grid.levels["lr"][1]
    assert (float(effects[1]["CI low"]), float(effects[1]["CI high"])) == pytest.approx(
        (lr_mid.low, lr_mid.high))
    store.close()


def test_the_app_writes_the_same_report_from_the_results_view_and_says_where(tmp_path):
    import asyncio

    from test_tui_flows import SIZE
    from tui_data import fixed_store, write_study
    from workbench.tui.launch import make_app

    toml = write_study(tmp_path)
    store_path = tmp_path / "results" / "workbench.sqlite"
    fixed_store(store_path, toml)

    async def press_e() -> list[str]:
        app = make_app(toml, store_path, start_runner=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "e")
            await app.workers.wait_for_complete()
            await pilot.pause()
            return [n.message for n in app._notifications]

    messages = asyncio.run(press_e())
    out = tmp_path / "results" / "report"
    assert f"report written: {out / 'report.md'} and report.html, 4 figures" in messages
    store = Store(store_path, readonly=True)
    expected = write_report(store, tmp_path / "cli", with_figures=False)
    store.close()
    app_md = (out / "report.md").read_text()
    assert app_md.count("![") == 4 and (out / "grid-grid.png").is_file()
    def text(md: str) -> list[str]:
        return [line for line in md.splitlines() if line and not line.startswith(("![", "*"))]

    # the same report as the command line's, its figures aside
    without = expected.markdown.read_text().split("## Figures not drawn")[0]
    assert text(app_md) == text(without)

"""Snapshots of the static screens, on a store written from fixed numbers (tests/tui_data.py)
at a fixed terminal size; the runner is not started, so nothing depends on timing.

Update after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update, then
look at the SVGs (tests/__snapshots__/test_tui_snapshots/) before committing them.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pytest_textual_snapshot")

from tui_data import fixed_store, write_study  # noqa: E402
from workbench.tui.launch import make_app  # noqa: E402

SIZE = (150, 44)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths: the header shows the same text every time
    toml = write_study(tmp_path)
    fixed_store(tmp_path / "results.sqlite", toml)
    return make_app(toml.relative_to(tmp_path), "results.sqlite", start_runner=False)


async def _settle(pilot, condition=lambda: True, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(1.1)  # one chart redraw tick (1 Hz)


def test_experiments_view(app, snap_compare):
    assert snap_compare(app, press=["down", "down"], terminal_size=SIZE)


def test_results_view_sorted_by_test_accuracy(app, snap_compare):
    async def sort(pilot):
        app.query_one("#results-table").sort_by("test_acc", True)
        await pilot.pause()
    assert snap_compare(app, press=["3"], terminal_size=SIZE, run_before=sort)


def test_results_view_filtered(app, snap_compare):
    assert snap_compare(app, press=["3", "slash", *"hidden=8", "enter"], terminal_size=SIZE)


def test_grid_view(app, snap_compare):
    assert snap_compare(app, press=["4"], terminal_size=SIZE)


def test_confusion_view_with_gallery(app, snap_compare):
    async def open_cell(pilot):
        from workbench.tui.widgets.digits import Gallery
        app.query_one("#results-table").sort_by("test_acc", True)
        await pilot.press("3", "enter")
        app.query_one("ConfusionView").open_cell(4, 9)
        await _settle(pilot, lambda: bool(app.query_one(Gallery).indices))
    assert snap_compare(app, terminal_size=(150, 60), run_before=open_cell)


def test_live_view_overlay_of_marked_runs(app, snap_compare):
    async def mark(pilot):
        await pilot.press("3", "space", "down", "space", "down", "down", "space", "2")
        await _settle(pilot)
    assert snap_compare(app, terminal_size=SIZE, run_before=mark)


def test_help_screen(app, snap_compare):
    assert snap_compare(app, press=["question_mark"], terminal_size=SIZE)

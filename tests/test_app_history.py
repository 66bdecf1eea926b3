"""The app never loses a result or a queue: a rerun cancelled with `c` keeps the done result
(the Results view says how many attempts, `h` lists them), the queue kept in the store when the
app quits is offered again at the next start, and an old store is migrated with a notice."""

from __future__ import annotations

import shutil
import textwrap

from conftest import ROOT, run_cli
from test_tui_flows import SIZE, queue_then_cancel, run_async, wait_until
from workbench.store import Store
from workbench.tui.launch import make_app
from workbench.tui.screens import AttemptsScreen, ResumeQueue
from workbench.tui.widgets.results import ResultsTable

RERUN_TOML = """
[defaults]
dataset = "mnist-sample"
hidden = 16
epochs = 12  # long enough that `c` comes while it trains (4 ended first once)
batch_size = 32
seed = 2

[[experiment]]
name = "again"
"""


@run_async
async def test_rerun_cancelled_in_the_app_keeps_the_done_result_and_shows_the_attempts(tmp_path):
    toml = tmp_path / "rerun.toml"
    toml.write_text(textwrap.dedent(RERUN_TOML))
    store_path = tmp_path / "s.sqlite"
    done = run_cli("--headless", str(toml), "--store", str(store_path), "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    with Store(store_path, readonly=True) as before_store:
        (before,) = before_store.runs()
        confusion = before_store.run(before["id"])["confusion"]
    assert before["status"] == "done" and before["test_acc"] > 0.5

    app = make_app(toml, store_path, rerun=True)
    async with app.run_test(size=SIZE) as pilot:
        await queue_then_cancel(pilot, app)
        with Store(store_path, readonly=True) as store:
            (after,) = store.runs()
            assert (after["status"], after["test_acc"], after["attempts"]) == (
                "done", before["test_acc"], 2)
            assert store.run(after["id"])["confusion"] == confusion
            assert [(a["status"], a["shown"]) for a in store.attempts(after["id"])] == [
                ("done", True), ("cancelled", False)]

        await pilot.press("3")
        table = app.query_one(ResultsTable)
        await wait_until(pilot, lambda: "attempts" in table.cell_texts(after["id"])["status"],
                         what="attempts in the results")
        assert table.cell_texts(after["id"])["status"].endswith(
            "done · 2 attempts (latest cancelled)")
        assert table.cell_texts(after["id"])["test_acc"] == f"{100 * before['test_acc']:.2f}%"
        await pilot.press("h")
        await pilot.pause(0.1)
        assert isinstance(app.screen, AttemptsScreen)
        shown = app.screen.query_one("#attempts-table")
        rows = [[str(c) for c in shown.get_row_at(i)] for i in range(shown.row_count)]
        assert [(r[0], r[1], r[2]) for r in rows] == [("●", "1", "done"), ("", "2", "cancelled")]
        assert rows[0][6] == f"{100 * before['test_acc']:.2f}%" and rows[1][6] == "-"
        assert rows[1][9].startswith("cancelled in epoch ")  # within one batch of `c`
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, AttemptsScreen)


@run_async
async def test_a_queue_left_when_quitting_is_offered_at_the_next_start(tiny_toml, tmp_path):
    store_path = tmp_path / "s.sqlite"
    app = make_app(tiny_toml, store_path, start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")  # five runs pending (the runner is not started)
        order = [r.run_id for r in app.runner.pending()]
        assert len(order) == 5
        app.runner.move(order[3], -3)  # the fourth run first
        order = [order[3], *order[:3], order[4]]
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="quit")
    app.store.close()
    with Store(store_path, readonly=True) as store:
        assert [k["run_key"] for k in store.saved_queue()] == order

    again = make_app(tiny_toml, store_path, start_runner=False)
    async with again.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(again.screen, ResumeQueue), what="the offer")
        text = str(again.screen.query_one("#resume-text").render())
        assert text.startswith("5 runs were queued when the app last closed:")
        assert "small-grid: hidden=8 lr=0.001" in text
        await pilot.press("enter")  # the default: resume
        await pilot.pause(0.1)
        assert [r.run_id for r in again.runner.pending()] == order
    again.store.close()

    third = make_app(tiny_toml, store_path, start_runner=False)
    async with third.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(third.screen, ResumeQueue), what="the offer")
        await pilot.press("n")  # drop it
        await pilot.pause(0.1)
        assert third.runner.pending() == [] and third.store.saved_queue() == []
    third.store.close()

    fourth = make_app(tiny_toml, store_path, start_runner=False)
    async with fourth.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert not isinstance(fourth.screen, ResumeQueue)  # nothing kept, nothing offered
    fourth.store.close()


@run_async
async def test_the_app_migrates_an_old_store_and_says_so_once(tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(ROOT / "tests" / "fixtures" / "store_v1", folder)
    store_path = folder / "workbench.sqlite"
    app = make_app(folder / "study.toml", store_path, start_runner=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        notes = [n.message for n in app._notifications if "updated from layout" in n.message]
        assert len(notes) == 1 and f"{store_path}.bak-v1" in notes[0]
        await pilot.press("3")
        assert len(app.query_one(ResultsTable).visible_ids) == 7
    app.store.close()
    reopened = make_app(folder / "study.toml", store_path, start_runner=False)
    async with reopened.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert not [n for n in reopened._notifications if "updated from layout" in n.message]
    reopened.store.close()

"""Screenshots of each main view, from real training on mnist-sample.

    PYTHONPATH=. python docs/screenshots/take_screenshots.py

A headless run fills a store with a small lr x hidden grid (real numbers); the app then opens
on it, trains a stacked pair of runs so the live view has two runs in flight, and saves an
SVG of each view at 160x48 (Results, Live and Confusion at 100x30 too), converted to PNG
with rsvg-convert.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STUDY = """
title = "screenshot study (mnist-sample)"
[defaults]
dataset = "mnist-sample"
hidden = 64
epochs = 2
batch_size = 256
seed = 11

[[experiment]]
name = "baseline"
description = "784-64-10, ReLU, Adam 1e-3"

[[experiment]]
name = "grid"
description = "learning rate x hidden units (9 runs)"
[experiment.grid]
lr = [1e-2, 1e-3, 1e-4]
hidden = [16, 64, 128]

[[experiment]]
name = "long"
description = "two learning rates for 30 epochs, stacked (trained live for the screenshots)"
epochs = 30
[experiment.grid]
lr = [1e-3, 3e-3]
"""


def to_png(svg: Path) -> Path:
    text = svg.read_text()
    # rsvg drops leading no-break spaces unless told to keep whitespace
    fixed = svg.with_suffix(".fixed.svg")
    fixed.write_text(re.sub(r"<svg ", '<svg xml:space="preserve" ', text, count=1))
    png = HERE / (svg.stem + ".png")
    subprocess.run(["rsvg-convert", "-w", "1300", str(fixed), "-o", str(png)], check=True)
    fixed.unlink()
    return png


async def shoot(toml: Path, store: Path, out: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    from workbench.tui.launch import make_app

    app = make_app(toml, store)
    shots = []

    async def save(name: str, narrow: bool = False) -> None:
        await pilot.pause(1.1)
        shots.append(Path(app.save_screenshot(str(out / f"{name}.svg"))))
        if narrow:  # the same view at 100x30
            await pilot.resize_terminal(100, 30)
            await pilot.pause(1.1)
            shots.append(Path(app.save_screenshot(str(out / f"{name}-100x30.svg"))))
            await pilot.resize_terminal(160, 48)
            await pilot.pause(0.3)

    async with app.run_test(size=(160, 48)) as pilot:
        tree = app.query_one("#exp-tree")
        long_node = next(n for n in tree.root.children if n.data == ("experiment", "long"))
        tree.move_cursor(long_node)
        await pilot.press("a")
        deadline = time.monotonic() + 300
        charts = app.query_one("LiveCharts")
        while len(charts.flights) < 2 or any(len(f.series.epochs) < 4
                                               for f in charts.flights.values()):
            assert time.monotonic() < deadline, "the live runs did not progress"
            await pilot.pause(0.2)
        await save("1-experiments")
        await pilot.press("2")
        await save("2-live", narrow=True)
        app.runner.cancel_current()  # cancel the live runs: recorded as cancelled
        await pilot.pause(1.0)
        await pilot.press("3")
        await save("3-results", narrow=True)
        await pilot.press("4")
        await save("4-grid")
        await pilot.press("3", "enter")
        view = app.query_one("ConfusionView")
        from workbench.report import most_confused
        true, pred, _ = most_confused(view.run["confusion"])[0]
        view.open_cell(true, pred)
        while not app.query_one("#cm-gallery").indices:
            await pilot.pause(0.1)
        await save("5-confusion", narrow=True)
        await pilot.press("question_mark")
        await save("6-help")
    return shots


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="wb-shots-"))
    toml = tmp / "experiments.toml"
    toml.write_text(STUDY)
    store = tmp / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "workbench.cli", "--headless", str(toml), "--only",
                    "baseline", "--only", "grid", "--store", str(store)], check=True, env=env)
    for svg in asyncio.run(shoot(toml, store, tmp)):
        print(to_png(svg))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test digits drawn with half-block characters, and the gallery of one confusion cell.

A character cell holds two image rows: the upper half block takes the top pixel as its
foreground colour and the bottom pixel as its background, so a 28x28 digit is 28x14 cells.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from workbench.report.testset import TestSet, misclassified

MAX_SHOWN = 24  # digits drawn per cell; the title says how many there are in all


def digit_text(image: np.ndarray) -> Text:
    """A (H, W) uint8 image as H/2 lines of half blocks (a white digit on black)."""
    img = np.asarray(image, dtype=np.uint8)
    if img.shape[0] % 2:
        img = np.vstack([img, np.zeros((1, img.shape[1]), np.uint8)])
    text = Text(no_wrap=True, overflow="crop")
    for r in range(0, img.shape[0], 2):
        for top, bottom in zip(img[r], img[r + 1]):
            text.append("▀", Style(color=Color.from_rgb(top, top, top),
                                   bgcolor=Color.from_rgb(bottom, bottom, bottom)))
        if r + 2 < img.shape[0]:
            text.append("\n")
    return text


def halved(image: np.ndarray) -> np.ndarray:
    """A digit at half size (2x2 pixel means): 28x28 -> 14x14, drawn in 7 lines."""
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.uint8)


def gallery_text(images: list, indices: list[int], width: int, height: int = 0) -> Text:
    """Digits side by side, as many per band as ``width`` allows, each captioned #index.
    When ``height`` lines cannot hold a whole digit and its caption, digits are drawn at
    half size: a whole small digit reads better than the top half of a large one."""
    if not images:
        return Text("")
    if height and (images[0].shape[0] + 1) // 2 + 1 > height:
        images = [halved(img) for img in images]
    cell = images[0].shape[1] + 2
    per_band = max(1, width // cell)
    out = Text(no_wrap=True, overflow="crop")
    for start in range(0, len(images), per_band):
        band = [digit_text(img).split("\n") for img in images[start:start + per_band]]
        for line in range(len(band[0])):
            for digit in band:
                out.append_text(digit[line])
                out.append("  ")
            out.append("\n")
        for i in indices[start:start + per_band]:
            out.append(f"#{i}".ljust(cell), style="dim")
        out.append("\n\n")
    return out


class Gallery(Vertical):
    """The misclassified test digits of one confusion-matrix cell."""

    def __init__(self, load_test: Callable[[str], TestSet], **kwargs):
        super().__init__(**kwargs)
        self.load_test = load_test  # a stored run's data set identity -> its test set
        self.images: list = []
        self.indices: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static("Select a cell of the matrix (Enter) to see its test digits.",
                     id="gallery-title")
        yield Static("", id="gallery-digits")

    def show(self, run: dict[str, Any], true: int, predicted: int) -> None:
        self.query_one("#gallery-title", Static).update(
            f"loading test digits of {run['dataset']} ...")
        self._load(run, true, predicted)

    @work(thread=True, exclusive=True, group="gallery")
    def _load(self, run: dict[str, Any], true: int, predicted: int) -> None:
        app = self.app
        try:
            test = self.load_test(run["dataset"])
        except Exception as exc:  # the data set is gone: say so, keep the matrix
            app.call_from_thread(self._fill, f"cannot load the test digits: {exc}", [], [])
            return
        preds = run.get("predictions")
        if not preds or len(preds) != len(test.labels):
            app.call_from_thread(self._fill, "this run has no predictions for this test set "
                                 "(stored before predictions were kept?)", [], [])
            return
        if run.get("data_fingerprint") and run["data_fingerprint"] != test.fingerprint:
            app.call_from_thread(self._fill, f"the {run['dataset']} files changed since this "
                                 "run (fingerprint differs): digits would not match", [], [])
            return
        idx = misclassified(test.labels, preds, true, predicted)
        names = test.classes
        what = ("correctly classified" if true == predicted else
                f"predicted {names[predicted]}")
        title = (f"true {names[true]}, {what}: {len(idx)} test image"
                 f"{'s' if len(idx) != 1 else ''}"
                 + (f" (first {MAX_SHOWN} shown)" if len(idx) > MAX_SHOWN else ""))
        shown = idx[:MAX_SHOWN]
        app.call_from_thread(self._fill, title, [test.images[i] for i in shown],
                             [int(i) for i in shown])

    def _fill(self, title: str, images: list, indices: list[int]) -> None:
        self.query_one("#gallery-title", Static).update(title)
        self.images, self.indices = images, indices
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or self.app.size.width
        room = self.parent.size.height if isinstance(self.parent, Widget) else 0
        self.query_one("#gallery-digits", Static).update(
            gallery_text(self.images, self.indices, width - 2, max(0, room - 1)))

    def on_resize(self) -> None:
        if self.images:
            self._draw()

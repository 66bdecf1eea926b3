"""The report's PNG figures, drawn with matplotlib (the optional ``[report]`` extra).

Figures are built on ``matplotlib.figure.Figure`` directly, not pyplot: no global state, so
the app can write a report from a worker thread. Without matplotlib, ``available()`` says why
and the report keeps its text tables.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence

DPI = 100
METADATA = {"Software": None}  # no version stamp: the same store gives the same bytes


def available() -> str | None:
    """None when figures can be drawn, else why not (for the report to say)."""
    try:
        importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        return (f"matplotlib is not installed ({exc}); install the extra with "
                "pip install 'mnist-workbench[report]'")
    return None


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=DPI, metadata=METADATA)
    return path


def learning_curves(path: Path, series: Sequence[tuple[str, Sequence[dict[str, Any]]]],
                    title: str, reference: tuple[str, Sequence[dict[str, Any]]] | None = None
                    ) -> Path:
    """Validation accuracy (left, a star at each run's best epoch) and training/validation
    loss (right) per epoch, one line per run; ``reference`` (the baseline) dashed in grey."""
    fig = _figure(10, 3.8)
    acc, loss = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(series))]
    if reference is not None:
        name, epochs = reference
        xs = [e["epoch"] for e in epochs]
        acc.plot(xs, [100 * e["val_acc"] for e in epochs], "--", color="grey", label=name)
        loss.plot(xs, [e["train_loss"] for e in epochs], "--", color="grey", label=name)
    for (name, epochs), colour in zip(series, colours):
        xs = [e["epoch"] for e in epochs]
        acc.plot(xs, [100 * e["val_acc"] for e in epochs], "o-", ms=3, color=colour, label=name)
        if epochs:
            top = max(epochs, key=lambda e: (e["val_acc"], -e["epoch"]))
            acc.plot([top["epoch"]], [100 * top["val_acc"]], "*", ms=12, color=colour)
        loss.plot(xs, [e["train_loss"] for e in epochs], "o-", ms=3, color=colour,
                  label=f"{name} (train)")
        loss.plot(xs, [e["val_loss"] for e in epochs], ":", color=colour,
                  label=f"{name} (val)")
    acc.set(xlabel="epoch", ylabel="validation accuracy (%)",
            title="validation accuracy (star: best epoch)")
    loss.set(xlabel="epoch", ylabel="loss", title="loss: train (solid), validation (dotted)")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    acc.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def grid_heatmaps(path: Path, cells: dict[tuple, float], axes: Sequence[tuple[str, Sequence[Any]]],
                  best: tuple, title: str) -> Path:
    """Small multiples of a grid of up to four axes: panel rows = axis 0, panel columns =
    axis 3, and inside each panel axis 1 (rows) by axis 2 (columns), coloured by accuracy
    on one shared scale; ``best`` is outlined. ``cells``: value tuple in axis order -> acc."""
    from workbench.report.tables import fmt

    axes = list(axes)
    while len(axes) < 3:  # pad to panels of at least one row/column
        axes.insert(0, ("", [None]))
    outer_r = axes[0]
    inner_r, inner_c = axes[1], axes[2]
    outer_c = axes[3] if len(axes) > 3 else ("", [None])
    nr, nc = len(outer_r[1]), len(outer_c[1])
    fig = _figure(1.1 + 2.0 * nc * max(1, len(inner_c[1])) / 3,
                  0.9 + 1.9 * nr * max(1, len(inner_r[1])) / 3)
    grid = fig.subplots(nr, nc, squeeze=False, sharex=True, sharey=True)
    values = [100 * v for v in cells.values()]
    low, high = min(values), max(values)
    image = None
    for i, ov in enumerate(outer_r[1]):
        for j, cv in enumerate(outer_c[1]):
            ax = grid[i][j]
            data = []
            for rv in inner_r[1]:
                line = []
                for kv in inner_c[1]:
                    key = tuple(v for v, (name, _) in zip((ov, rv, kv, cv), axes + [("", [])])
                                if name)
                    line.append(100 * cells[key] if key in cells else float("nan"))
                data.append(line)
            image = ax.imshow(data, cmap="viridis", vmin=low, vmax=high, aspect="auto")
            for r, line in enumerate(data):
                for c, v in enumerate(line):
                    key = tuple(x for x, (name, _) in zip((ov, inner_r[1][r], inner_c[1][c], cv),
                                                          axes + [("", [])]) if name)
                    mark = key == tuple(best)
                    if v == v:  # not NaN
                        ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=8,
                                color="black" if v > (low + high) / 2 else "white",
                                fontweight="bold" if mark else "normal")
                    if mark:
                        ax.add_patch(_outline(fig, c, r))
            ax.set_xticks(range(len(inner_c[1])), [fmt(v) for v in inner_c[1]])
            ax.set_yticks(range(len(inner_r[1])), [fmt(v) for v in inner_r[1]])
            heads = [f"{n}={fmt(v)}" for n, v in ((outer_r[0], ov), (outer_c[0], cv)) if n]
            ax.set_title(", ".join(heads), fontsize=9)
            if i == nr - 1:
                ax.set_xlabel(inner_c[0])
            if j == 0:
                ax.set_ylabel(inner_r[0])
    if image is not None:
        fig.colorbar(image, ax=grid, shrink=0.8, label="test accuracy (%)")
    fig.suptitle(title)
    return _save(fig, path)


def _outline(fig: Any, x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)


def confusion_matrix(path: Path, matrix: Sequence[Sequence[int]], classes: Sequence[str],
                     title: str) -> Path:
    """Counts on a log-like colour scale for the off-diagonal cells (the diagonal would
    wash them out), the diagonal in green."""
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    n = len(cm)
    off = cm.copy()
    np.fill_diagonal(off, np.nan)
    fig = _figure(6.4, 5.6)
    ax = fig.subplots()
    image = ax.imshow(off, cmap="Reds", vmin=0, vmax=max(1.0, float(np.nanmax(off))))
    diag = np.full_like(cm, np.nan)
    np.fill_diagonal(diag, np.diag(cm))
    ax.imshow(diag, cmap="Greens", vmin=0, vmax=max(1.0, float(np.nanmax(diag)) * 1.3))
    top = float(np.nanmax(off)) if np.isfinite(np.nanmax(off)) else 0.0
    for t in range(n):
        for p in range(n):
            count = int(cm[t, p])
            if count:
                dark = t != p and count > top / 2
                ax.text(p, t, str(count), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), list(classes))
    ax.set_yticks(range(n), list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="misclassified test images")
    return _save(fig, path)


def digit_strip(path: Path, rows: Sequence[tuple[str, Sequence[Any], Sequence[int]]],
                per_row: int) -> Path:
    """One row of test digits per confused pair: (title, images, test indices)."""
    fig = _figure(1.0 + 0.9 * per_row, 0.3 + 1.25 * len(rows))
    grid = fig.subplots(len(rows), per_row, squeeze=False)
    for r, (title, images, indices) in enumerate(rows):
        for c in range(per_row):
            ax = grid[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(images):
                ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=255)
                ax.set_xlabel(f"#{indices[c]}", fontsize=7)
            if c == 0:
                ax.set_ylabel(title, fontsize=9, rotation=0, ha="right", va="center")
    return _save(fig, path)

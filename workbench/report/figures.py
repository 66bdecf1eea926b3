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
                  best: tuple, title: str, label: str = "test accuracy (%)") -> Path:
    """Small multiples of a grid of one to four axes (past four, the best over the rest),
    every cell on one shared colour scale, ``best`` outlined. Inside a panel: axis 1 (rows) by axis 2 (columns); panels: axis 0
    across (with three axes) or axis 0 down and axis 3 across (with four). ``cells``: values
    in axis order -> accuracy (a fraction)."""
    from workbench.report.tables import fmt

    axes = list(axes)
    if len(axes) > 4:  # axes past the fourth: each drawn cell is the best over them
        folded: dict[tuple, float] = {}
        for k, v in cells.items():
            folded[k[:4]] = max(v, folded.get(k[:4], v))
        cells, axes, best = folded, axes[:4], tuple(best)[:4]
    names = [name for name, _ in axes]
    none: tuple[str, Sequence[Any]] = ("", [None])
    # (panel rows, panel columns, inner rows, inner columns), each an axis or none
    if len(axes) == 1:
        outer_r, outer_c, inner_r, inner_c = none, none, none, axes[0]
    elif len(axes) == 2:
        outer_r, outer_c, inner_r, inner_c = none, none, axes[0], axes[1]
    elif len(axes) == 3:
        outer_r, outer_c, inner_r, inner_c = none, axes[0], axes[1], axes[2]
    else:
        outer_r, outer_c, inner_r, inner_c = axes[0], axes[3], axes[1], axes[2]

    def key(pr: Any, pc: Any, ir: Any, ic: Any) -> tuple:
        at = dict(zip((outer_r[0], outer_c[0], inner_r[0], inner_c[0]), (pr, pc, ir, ic)))
        return tuple(at[name] for name in names)

    nr, nc = len(outer_r[1]), len(outer_c[1])
    fig = _figure(max(4.5, 1.4 + 0.75 * nc * len(inner_c[1])),
                  max(2.4, 0.9 + 0.62 * nr * len(inner_r[1])))
    grid = fig.subplots(nr, nc, squeeze=False, sharex=True, sharey=True)
    values = sorted(100 * v for v in cells.values())
    # The scale starts at the lowest quartile: a few far worse cells (a learning rate too
    # small) would otherwise paint every good cell the same colour; their numbers stay.
    low, high = values[len(values) // 4], values[-1]
    image = None
    for i, pr in enumerate(outer_r[1]):
        for j, pc in enumerate(outer_c[1]):
            ax = grid[i][j]
            data = [[100 * cells[k] if (k := key(pr, pc, ir, ic)) in cells else float("nan")
                     for ic in inner_c[1]] for ir in inner_r[1]]
            image = ax.imshow(data, cmap="viridis", vmin=low, vmax=max(high, low + 1e-9),
                              aspect="auto")
            for r, ir in enumerate(inner_r[1]):
                for c, ic in enumerate(inner_c[1]):
                    v, mark = data[r][c], key(pr, pc, ir, ic) == tuple(best)
                    if v == v:  # not NaN
                        ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=8,
                                color="black" if v > (low + high) / 2 else "white",
                                fontweight="bold" if mark else "normal")
                    if mark:
                        ax.add_patch(_outline(c, r))
            ax.set_xticks(range(len(inner_c[1])), [fmt(v) for v in inner_c[1]])
            ax.set_yticks(range(len(inner_r[1])), [fmt(v) for v in inner_r[1]])
            heads = [f"{name}={fmt(v)}" for name, v in ((outer_r[0], pr), (outer_c[0], pc))
                     if name]
            ax.set_title(", ".join(heads), fontsize=9)
            if i == nr - 1:
                ax.set_xlabel(inner_c[0])
            if j == 0:
                ax.set_ylabel(inner_r[0])
    if image is not None:
        fig.colorbar(image, ax=grid, shrink=0.8, label=label, extend="min")
    fig.suptitle(title)
    return _save(fig, path)


def _outline(x: int, y: int) -> Any:
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

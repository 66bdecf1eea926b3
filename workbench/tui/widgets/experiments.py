"""The study as a tree: every experiment with its description and its runs' status marks."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from workbench.formatting import plural
from workbench.types import (CANCELLED, DIVERGED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING,
                             RunSpec)

MARKS = {  # status -> (mark, style)
    QUEUED: ("◷", "cyan"), RUNNING: ("▶", "bold yellow"), DONE: ("✔", "green"),
    FAILED: ("✖", "bold red"), CANCELLED: ("⊘", "magenta"), DIVERGED: ("↯", "red"),
    INTERRUPTED: ("⚠", "bold magenta"),  # its process died while it ran (store says so)
    "": ("·", "dim"),
}


def mark(status: str) -> Text:
    glyph, style = MARKS.get(status, ("?", ""))
    return Text(glyph, style=style)


def run_label(run: RunSpec, status: str, stored: dict[str, Any] | None = None) -> Text:
    """Mark, label, status; a done run also shows its test accuracy."""
    text = mark(status)
    text.append(f" {run.label}")
    if status:
        text.append(f"  {status}", style="dim")
    if status == "done" and stored and stored.get("test_acc") is not None:
        text.append(f"  test {100 * stored['test_acc']:.2f}%", style="green")
    return text


class ExperimentTree(Tree):
    """Root: the study; children: experiments; leaves: runs. Node data: ("study",),
    ("experiment", name) or ("run", RunSpec)."""

    def __init__(self, title: str, experiments: list[tuple[str, str]], runs: list[RunSpec],
                 **kwargs):
        super().__init__(Text(title, style="bold"), data=("study",), **kwargs)
        self._run_nodes: dict[str, TreeNode] = {}
        self._exp_nodes: dict[str, TreeNode] = {}
        by_exp: dict[str, list[RunSpec]] = {}
        for run in runs:
            by_exp.setdefault(run.experiment, []).append(run)
        self._runs = by_exp
        for name, description in experiments:
            exp_runs = by_exp.get(name, [])
            node = self.root.add(self._exp_label(name, description, exp_runs, {}),
                                 data=("experiment", name), expand=len(exp_runs) <= 12)
            self._exp_nodes[name] = node
            node.set_label(self._exp_label(name, description, exp_runs, {}))
            node._description = description  # type: ignore[attr-defined]
            for run in exp_runs:
                self._run_nodes[run.run_id] = node.add_leaf(run_label(run, ""),
                                                            data=("run", run))
        self.root.expand()

    @staticmethod
    def _exp_label(name: str, description: str, runs: list[RunSpec],
                   status: dict[str, str]) -> Text:
        done = sum(1 for r in runs if status.get(r.run_id) == DONE)
        text = Text(name, style="bold")
        text.append(f"  {done}/{len(runs)} done", style="cyan")
        if description:
            text.append(f"  {description}", style="dim")
        return text

    def refresh_marks(self, status_of: Callable[[RunSpec], str],
                      stored_of: Callable[[RunSpec], dict | None] = lambda run: None) -> None:
        status: dict[str, str] = {}
        for name, runs in self._runs.items():
            for run in runs:
                status[run.run_id] = status_of(run)
                self._run_nodes[run.run_id].set_label(
                    run_label(run, status[run.run_id], stored_of(run)))
        for name, node in self._exp_nodes.items():
            node.set_label(self._exp_label(name, node._description,  # type: ignore
                                           self._runs.get(name, []), status))

    def runs_of(self, node: TreeNode | None) -> list[RunSpec]:
        """The runs a node stands for: one run, an experiment's runs, or everything."""
        if node is None or node.data is None or node.data[0] == "study":
            return [r for runs in self._runs.values() for r in runs]
        if node.data[0] == "experiment":
            return list(self._runs.get(node.data[1], []))
        return [node.data[1]]

    def describe(self, node: TreeNode | None) -> str:
        if node is None or node.data is None:
            return ""
        if node.data[0] == "experiment":
            runs = self._runs.get(node.data[1], [])
            return (f"{node.data[1]}: {node._description or '(no description)'}\n"  # type: ignore
                    f"{plural(len(runs), 'run')}, "
                    f"{plural(sum(int(r.config['epochs']) for r in runs), 'epoch')}. "
                    "a: queue this experiment")
        if node.data[0] == "run":
            run: RunSpec = node.data[1]
            cfg = " ".join(f"{k}={v}" for k, v in sorted(run.config.items()))
            return (f"{run.experiment} #{run.index}: {run.label}\n{cfg}\n"
                    "a: queue this run, enter: open its result")
        return "every experiment of the study. a: queue everything"

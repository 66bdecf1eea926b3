"""The package's shape: imports run one way (no loops, function-level imports included), the
core loads without Textual, and an experiment kind's expand() runs once per session."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from conftest import ROOT


def _import_graph() -> dict[str, set[str]]:
    """Module -> the workbench modules it imports anywhere in its body."""
    files = {}
    for path in (ROOT / "workbench").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                found = owner(target) if target.startswith("workbench") else None
                # a package's own __init__ is imported on the way in: not an arrow back
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_loops_inside_workbench():
    graph = _import_graph()
    assert graph["workbench.executors.local"] >= {"workbench.executors.recorder"}  # sees arrows
    assert "workbench.training.unit" in graph["workbench.executors.local"]  # function-level too
    assert _cycles(graph) == []


def test_the_core_and_its_executors_load_without_textual():
    code = textwrap.dedent("""
        import sys
        import workbench.cli, workbench.engine, workbench.headless, workbench.runner
        import workbench.executors.local, workbench.executors.process
        import workbench.executors.recorder, workbench.executors.ray
        import workbench.training.unit, workbench.training.stacked
        print(sorted(m for m in sys.modules if m.split(".")[0] == "textual"))
        print("workbench.executors.process" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


def test_an_experiment_kind_expands_once_per_session(tmp_path):
    """Validation expands every experiment to check it; planning reuses those configs."""
    from workbench.session import open_session

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "counted.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from workbench import ExperimentKind, hookimpl

        LOG = Path(__file__).with_name("calls.txt")

        def expand(base, options):
            with LOG.open("a") as f:
                f.write(f"{base['hidden']}\\n")
            return [{"lr": lr} for lr in options["lrs"]]

        @hookimpl
        def register_experiments(register):
            register(ExperimentKind(name="counted", expand=expand, options={"lrs": [1e-3]}))
    """))
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent("""
        [defaults]
        dataset = "mnist-sample"
        [[experiment]]
        name = "lrs"
        kind = "counted"
        lrs = [1e-3, 1e-2]
        [experiment.grid]
        hidden = [8, 16, 32]
    """))
    session = open_session(toml)
    assert len(session.runs) == 6
    assert (plugins / "calls.txt").read_text().split() == ["8", "16", "32"]

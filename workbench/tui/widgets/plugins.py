"""Every registered model, experiment kind, data set and training callback with its source,
the plugins with event hooks, and load failures."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree

from workbench.plugins import Registry

KIND_TITLES = (("model", "models"), ("experiment", "experiment kinds"), ("dataset", "data sets"),
               ("callback", "training callbacks"), ("hooks", "event hooks"))


class PluginTree(Tree):
    def __init__(self, registry: Registry, **kwargs):
        super().__init__(Text("plugins", style="bold"), **kwargs)
        self.show(registry)

    def show(self, registry: Registry) -> None:
        self.clear()
        listing = registry.listing()
        for kind, title in KIND_TITLES:
            rows = [r for r in listing if r[0] == kind]
            branch = self.root.add(Text(f"{title} ({len(rows)})", style="bold"), expand=True)
            for _, name, description, source in rows:
                label = Text(name, style="bold cyan")
                label.append(f"  {source}", style="dim")
                node = branch.add(label, data=(kind, name), expand=True)
                if description:
                    node.add_leaf(Text(description))
        if registry.failures:
            branch = self.root.add(Text(f"load failures ({len(registry.failures)})",
                                        style="bold red"), expand=True)
            for failure in registry.failures:
                label = Text(failure.source, style="red")
                label.append(f"  {failure.error}")
                branch.add_leaf(label, data=("failure", failure.source))
        self.root.expand()

    def names(self) -> list[tuple[str, str]]:
        """(kind, name) of every listed item, failures included, in display order."""
        out = []

        def walk(node):
            if node.data is not None:
                out.append(node.data)
            for child in node.children:
                walk(child)

        walk(self.root)
        return out

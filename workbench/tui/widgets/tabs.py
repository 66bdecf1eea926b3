"""The app's tabbed views, switched by number keys."""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane


class ViewTabs(TabbedContent):
    """TabbedContent that ignores a pane's late focus notice.

    Showing a view focuses its main widget, and Textual then tells TabbedContent (through a
    queued message) to show the pane holding the focus. Two quick keys (3, then 2) could
    let the first view's notice land after the second switch, which switched back: the key
    looked lost. Worse while training holds the GIL. A notice for a pane that is no longer
    the active one is stale and is dropped here. The app never focuses a widget on a hidden
    pane, so no real switch is lost.
    """

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        if event.tab_pane.id != self.active:
            event.stop()
            event.prevent_default()  # TabbedContent's own handler would switch back

"""The write-up of a store: tables, observations, figures, Markdown and HTML.

``workbench.report.build.write_report`` reads only the store (no retraining) and is deterministic for a given store.
The table helpers the faces share are importable from here as before.
"""

from workbench.report.tables import best_row, most_confused, pct, rows_for

__all__ = ["best_row", "most_confused", "pct", "rows_for"]

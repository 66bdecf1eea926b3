"""The workbench's widgets, one view per module."""

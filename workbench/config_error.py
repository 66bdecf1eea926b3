"""The error an experiments file's problems raise, all of them at once (a leaf, so that the
validation's parts can raise it without importing one another)."""

from __future__ import annotations


class ConfigError(Exception):
    """One or more problems in an experiments file; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

"""Tiny experiments files for tests through the real CLI: defaults that train in a second on
the shipped sample, then the experiments a test is about."""

from __future__ import annotations

import textwrap
from pathlib import Path

DEFAULTS = '''
[defaults]
dataset = "mnist-sample"
hidden = 8
epochs = 1
batch_size = 256
'''


def tiny_study(folder: Path, experiments: str, defaults: str = DEFAULTS) -> Path:
    path = folder / "experiments.toml"
    path.write_text(textwrap.dedent(defaults) + textwrap.dedent(experiments))
    return path

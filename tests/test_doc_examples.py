"""The plugin examples in README.md and docs/plugins.md work as written: copied into a
plugins folder, they load and register what they say (the real CLI)."""

import re

import pytest

from conftest import ROOT, run_cli


def _python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/plugins.md"])
def test_the_dataset_example_with_files_and_sources_loads_as_written(doc, tmp_path):
    (example,) = [b for b in _python_blocks(doc) if "sources=" in b and "@hookimpl" in b]
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "kmnist.py").write_text(example)
    listing = run_cli("--list-plugins", "--plugins", str(folder))
    assert listing.returncode == 0, listing.stderr
    assert "FAILED" not in listing.stdout, listing.stdout
    assert f"kmnist            drop-in {folder / 'kmnist.py'}" in listing.stdout
    # and the data command sees its chain: the files are missing, the npm source is named
    listed = run_cli("data", "--data-dir", str(tmp_path / "cache"), "--plugins", str(folder),
                     "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "| kmnist " in line)
    assert "missing" in row and "npm kmnist@1.0.0" in row

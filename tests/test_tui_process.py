"""The app's own process stays light: training (and torch) lives in the trainer child."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, TINY_TOML

SCRIPT = r"""
import asyncio, re, sys
from pathlib import Path
from workbench.tui.launch import make_app

app = make_app(Path(sys.argv[1]), sys.argv[2], start_runner=False)

async def main():
    async with app.run_test(size=(120, 40)) as pilot:
        for key in "12345":
            await pilot.press(key)
        await pilot.pause(0.2)

asyncio.run(main())
# VmHWM: this process's own peak (ru_maxrss would count the parent's size at fork)
peak = re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())
print("torch" in sys.modules, int(peak.group(1)) // 1024)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_the_app_process_never_imports_torch(tmp_path):
    toml = tmp_path / "experiments.toml"
    toml.write_text(textwrap.dedent(TINY_TOML))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(toml), str(tmp_path / "s.sqlite")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    has_torch, rss_mb = out.stdout.split()[-2:]
    assert has_torch == "False"
    assert int(rss_mb) < 250, out.stdout  # with torch it was 738 MB


def test_a_bad_device_is_still_refused_before_the_app_opens(tiny_toml, tmp_path):
    from workbench.tui.launch import make_app
    with pytest.raises(ValueError, match="--device bogus.*use auto, cpu or cuda"):
        make_app(tiny_toml, tmp_path / "s.sqlite", device="bogus", start_runner=False)

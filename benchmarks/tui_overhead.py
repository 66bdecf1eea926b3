"""What the terminal app costs: training throughput with the TUI showing live charts versus
headless, and key-press latency while a run trains. Real processes, a real terminal (tmux).

    PYTHONPATH=. python benchmarks/tui_overhead.py [--dataset fashion-mnist] [--repeats 2]

Throughput comes from the store (train_seconds of the same run trained by each face, in
alternation, so background load hits both alike). Latency: a tab key is sent to the pane and
the pane is polled (every 20 ms) until the new tab's content shows; the time includes tmux's
capture, so it is an upper bound on what a user waits.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOML = """
[defaults]
dataset = "{dataset}"
model = "baseline_mlp"
hidden = 100
lr = 1e-3
epochs = {epochs}
batch_size = 128
seed = 11

[[experiment]]
name = "baseline"
"""


def stored(store: Path) -> dict | None:
    if not store.exists():
        return None
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT status, train_seconds, epochs_done, dataset FROM runs "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        row = None
    db.close()
    return dict(row) if row else None


THREADS: dict[str, str] = {}  # --threads: the same torch thread count for both faces


def finished(store: Path) -> bool:
    row = stored(store)
    return row is not None and row["status"] != "running"


def env_prefix() -> list[str]:
    env = {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **THREADS}
    return ["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items())]


def headless(toml: Path, store: Path) -> dict:
    subprocess.run([sys.executable, "-m", "workbench.cli", "--headless", str(toml), "--store",
                    str(store), "--rerun"], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT), **THREADS})
    return stored(store)


class Pane:
    def __init__(self, command: list[str]):
        self.sock = f"wb-bench-{uuid.uuid4().hex[:6]}"
        self.tmux("new-session", "-d", "-s", "b", "-x", "160", "-y", "48",
                  " ".join(map(shlex.quote, command)))

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True,
                              text=True).stdout

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b")

    def wait(self, text: str, timeout: float = 120) -> float:
        start = time.perf_counter()
        while text not in self.capture():
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{text!r} not on screen:\n{self.capture()}")
            time.sleep(0.02)
        return time.perf_counter() - start

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "b", *keys)

    def close(self) -> None:
        self.tmux("kill-server")


def tui(toml: Path, store: Path, measure_keys: bool) -> tuple[dict, list[float]]:
    pane = Pane([*env_prefix(), sys.executable, "-m", "workbench.cli", str(toml), "--store",
                 str(store), "--rerun"])
    latencies: list[float] = []
    try:
        pane.wait("Experiments")
        pane.keys("A")
        pane.keys("2")  # the live charts, redrawn while it trains
        while "samples/s" not in pane.capture() and not finished(store):
            time.sleep(0.05)  # training has started (or a short run is already over)
        while not finished(store):
            if measure_keys and not finished(store):  # switch tabs and time until the other view is on screen
                pane.keys("3")
                latencies.append(pane.wait("best val", 10))
                pane.keys("2")
                latencies.append(pane.wait("validation accuracy", 10))
            time.sleep(0.3)
        row = stored(store)
        pane.keys("q")
        time.sleep(1)
    finally:
        pane.close()
    return row, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both faces")
    args = parser.parse_args()
    if args.threads:
        THREADS["OMP_NUM_THREADS"] = str(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    toml = tmp / "bench.toml"
    toml.write_text(TOML.format(dataset=args.dataset, epochs=args.epochs))
    print(f"warm-up: {headless(toml, tmp / 'warm.sqlite')}", file=sys.stderr, flush=True)
    h, t = [], []
    for i in range(args.repeats):
        h.append(headless(toml, tmp / f"h{i}.sqlite"))
        print(f"headless {i}: {h[-1]}", file=sys.stderr, flush=True)
        t.append(tui(toml, tmp / f"t{i}.sqlite", measure_keys=False)[0])
        print(f"tui {i}: {t[-1]}", file=sys.stderr, flush=True)
    long_toml = tmp / "long.toml"  # a longer run, so that many key presses land in it
    long_toml.write_text(TOML.format(dataset=args.dataset, epochs=3 * args.epochs))
    row, latencies = tui(long_toml, tmp / "keys.sqlite", measure_keys=True)
    print(f"key run: {row}, {len(latencies)} key presses timed", file=sys.stderr)
    n_train = {"fashion-mnist": 55000, "mnist": 55000}.get(args.dataset, 7333)
    print(f"baseline 784-100-10, batch 128, {args.epochs} epochs on {h[0]['dataset']}; "
          f"{args.repeats} runs per face, alternating; OMP_NUM_THREADS="
          f"{args.threads or 'unset'}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'face':<22}{'train s (each)':<26}{'median s':>9}{'samples/s':>12}")
    for name, rows in (("headless", h), ("TUI, live charts", t)):
        secs = [r["train_seconds"] for r in rows]
        med = statistics.median(secs)
        print(f"{name:<22}{', '.join(f'{s:.2f}' for s in secs):<26}{med:>9.2f}"
              f"{args.epochs * n_train / med:>12,.0f}")
    ratio = statistics.median(r["train_seconds"] for r in t) / \
        statistics.median(r["train_seconds"] for r in h)
    pairs = [b["train_seconds"] / a["train_seconds"] for a, b in zip(h, t)]
    print(f"TUI / headless training time: ratio of medians {ratio:.3f}; pair by pair "
          f"{', '.join(f'{p:.2f}' for p in pairs)} (median {statistics.median(pairs):.3f}, "
          f"UI cost {100 * (statistics.median(pairs) - 1):+.1f} %)")
    if latencies:
        lat = sorted(1000 * x for x in latencies)
        print(f"key-press latency while training ({len(lat)} tab switches, run "
              f"{row['train_seconds']:.1f}s): median {statistics.median(lat):.0f} ms, "
              f"p90 {lat[int(0.9 * (len(lat) - 1))]:.0f} ms, max {lat[-1]:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

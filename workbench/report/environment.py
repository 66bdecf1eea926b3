"""The report's frame: the environment section (versions, device, seeds, data set, split,
source) and the reproduction block (the experiments file, its hash, the command)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from workbench.report.context import Builder, Experiment
from workbench.report.document import Alert, Bullets, Code, Heading, Para


def environment_section(b: Builder, exps: Sequence[Experiment]) -> None:
    rows = [r for e in exps for r in e.rows]
    b.add(Heading(2, "Environment"))
    if not rows:
        b.add(Para(f"The store {b.store.path.name} holds no runs yet."))
        return
    done = [r for e in exps for r in e.done]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    full = [b.store.run(r["id"]) for r in (done or rows)]
    versions: dict[str, list[str]] = {}
    for run in full:
        for lib, v in sorted(run["versions"].items()):
            if v not in versions.setdefault(lib, []):
                versions[lib].append(v)
    datasets = sorted({r["dataset"] for r in rows})
    devices = sorted({str(r["device"]) for r in rows if r["device"]})
    seeds = sorted({int(r["config"].get("seed", 0)) for r in rows})
    items = [
        "runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        "versions: " + ", ".join(f"{lib} {' / '.join(v)}" for lib, v in versions.items()),
        f"device{'s' if len(devices) > 1 else ''}: {', '.join(devices) or '-'}",
        f"seed{'s' if len(seeds) > 1 else ''}: {', '.join(map(str, seeds))}",
    ]
    for name in datasets:
        fingerprints = sorted({str(run["data_fingerprint"]) for run in full
                               if run["dataset"] == name and run["data_fingerprint"]})
        stored = sorted({str(run["data_source"]) for run in full
                         if run["dataset"] == name and run.get("data_source")})
        items.append(f"data set: {name}" + (f" (fingerprint {', '.join(fingerprints)})"
                                            if fingerprints else "")
                     + _split_text(b, name, "; ".join(stored)))
    b.add(Bullets(tuple(items)))
    from workbench.data import FALLBACK_MARK, loaded_name
    from workbench.data.raw import wanted_name

    for name in datasets:
        if FALLBACK_MARK in name or loaded_name(name) == "mnist-sample":
            b.add(Alert(f"These results are on {loaded_name(name)}"
                        + (f", standing in for {wanted_name(name)}"
                           if FALLBACK_MARK in name else "")
                        + ": 10,000 real MNIST digits (8,000 train, 2,000 test), not the full "
                        "70,000. Accuracies are lower than on full MNIST and NOT comparable to "
                        "the reference figures."))


def _split_text(b: Builder, identity: str, stored_source: str = "") -> str:
    """'; split 55,000 train / 5,000 validation / 10,000 test; source ...': the split from
    the data set's files (which this machine must have), the source as the runs stored it
    (else where the files are here)."""
    test = test_set(b, identity)
    if test is None:
        return ("; split not known here (its files are not available on this machine)"
                + (f"; source {stored_source}" if stored_source else ""))
    from workbench.data import val_size

    testset, n_train, source = test
    source = stored_source or source
    n_val = val_size(n_train)
    return (f"; split {n_train - n_val:,} train / {n_val:,} validation / "
            f"{len(testset.labels):,} test; source {source}")


def test_set(b: Builder, identity: str) -> tuple[Any, int, str] | None:
    """(TestSet, training images, source) of a stored data set, or None when it cannot be
    had here (workbench.data caches what it loads)."""
    from workbench import data
    from workbench.report.testset import TestSet

    if b.registry is None:
        from workbench.plugins import load_plugins

        b.registry = load_plugins()
    try:
        raw = data.resolve(data.loaded_name(identity), b.registry, b.data_dir,
                           allow_fallback=False)
    except data.DataError:
        return None
    source = "the package's shipped sample" if raw.name == "mnist-sample" else raw.source
    return (TestSet(raw.test_images, raw.test_labels, raw.fingerprint, raw.classes),
            len(raw.train_labels), source)


def reproduction_section(b: Builder, study: dict | None, exps: Sequence[Experiment]) -> None:
    b.add(Heading(2, "Reproduction"))
    if study is None:
        b.add(Para("The experiments file is not in this store (stores record it from "
                   "headless sweeps of this version on); the runs' configs are in the tables "
                   "above and in the store."))
    else:
        b.add(Para(f"Experiments file {study['path']} as the latest sweep read it "
                   f"(sha256 {study['sha256']}):"),
              Code(study["text"], "toml"))
        for plugin in study["plugins"]:  # the drop-in code its runs need, as it was
            b.add(Para(f"Drop-in plugin {plugin['path']} as the sweep loaded it (sha256 "
                       f"{plugin['sha256']}):"), Code(plugin["text"], "python"))
        b.add(Para("Command:"), Code(study["command"], "sh"))
    versions = sorted({json.dumps(b.store.run(r["id"])["versions"], sort_keys=True)
                       for e in exps for r in e.done})
    if versions:
        b.add(Para("Library versions the runs recorded:"),
              Code("\n".join(", ".join(f"{k} {v}" for k, v in sorted(json.loads(s).items()))
                             for s in versions)))

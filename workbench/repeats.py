"""Seed repeats: ``seeds = [11, 12, 13]`` or ``repeats = 3`` in [defaults] or an experiment.

Each repeat is a run of its own (its seed in its config, so its own config hash). ``repeats =
k`` trains seeds ``seed, seed + 1, ..., seed + k - 1`` from the experiment's ``seed``, so
``seed = 11`` with ``repeats = 3`` is ``seeds = [11, 12, 13]``. A key given in an experiment
replaces both keys of [defaults].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from workbench.types import RunSpec

KEYS = ("seeds", "repeats")
EXAMPLE = "seeds = [11, 12, 13] or repeats = 3"


def repeat_problems(raw: Mapping[str, Any]) -> list[str]:
    """Problems with the repeat keys of one table ("key: problem"), empty when valid."""
    problems = []
    if "seeds" in raw and "repeats" in raw:
        problems.append("seeds and repeats: give one of them, not both (repeats = k means "
                        "seeds seed, seed + 1, ..., seed + k - 1)")
    seeds = raw.get("seeds")
    if "seeds" in raw:
        ints = isinstance(seeds, list) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        if not ints or not seeds:
            problems.append(f"seeds: got {seeds!r}, expected a non-empty list of integers "
                            f">= 0, e.g. {EXAMPLE}")
        else:
            twice = sorted({s for s in seeds if seeds.count(s) > 1})
            if twice:
                problems.append(f"seeds: {', '.join(map(str, twice))} given more than once; "
                                "each repeat needs a seed of its own")
    count = raw.get("repeats")
    if "repeats" in raw and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        problems.append(f"repeats: got {count!r}, expected an integer >= 1 (the number of "
                        "seeds, counted up from the experiment's seed)")
    return problems


def resolve_seeds(defaults: Mapping[str, Any], experiment: Mapping[str, Any], seed: int
                  ) -> tuple[int, ...]:
    """The seeds an experiment repeats over; () when neither table asks for repeats (the
    runs keep their ``seed``). Both tables must be valid (``repeat_problems``)."""
    table = experiment if any(k in experiment for k in KEYS) else defaults
    if "seeds" in table:
        return tuple(int(s) for s in table["seeds"])
    if "repeats" in table:
        return tuple(seed + i for i in range(int(table["repeats"])))
    return ()


def more_seeds(run: RunSpec, taken: Iterable[int], k: int) -> list[RunSpec]:
    """``k`` more repeats of ``run``'s config: the seeds after the largest one taken (stored
    or queued), each a run of its own labelled with its seed."""
    from workbench.types import RunSpec

    start = max([*taken, int(run.config.get("seed", 0))]) + 1
    base = " ".join(t for t in run.label.split() if not t.startswith("seed="))
    base = "" if base == run.experiment else base
    return [RunSpec(run.experiment, run.index, {**run.config, "seed": seed},
                    f"{base} seed={seed}".strip()) for seed in range(start, start + k)]

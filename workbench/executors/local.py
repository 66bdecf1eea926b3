"""The local executor: units train one after another on the runner thread, on this process's
device."""

from __future__ import annotations

from workbench.executors.context import RunContext
from workbench.executors.recorder import UnitRecorder, prepare


class LocalExecutor:
    """Executor protocol: ``train_unit`` in this process, recorded as it reports."""

    concurrent = False  # one unit at a time: a new unit means the previous one finished
    member_cancel = True  # one run of a stack can be cancelled alone (UnitRecorder.cancelled)

    def execute(self, ctx: RunContext) -> None:
        from workbench.training.unit import train_unit

        while (unit := ctx.next_unit()) is not None:
            for raw, runs in prepare(unit, ctx):
                recorder = UnitRecorder(runs, ctx, raw)
                train_unit(runs, raw, ctx.device, ctx.model_builds(runs), recorder,
                           cancel=recorder, stack=ctx.settings.stack)
                recorder.close()

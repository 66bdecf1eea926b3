"""Engine events as Textual messages: one message class per event type, so the app handles
each in its own ``on_<name>`` method. Posted from the runner thread (``post_message`` is
thread-safe); handled on the UI thread."""

from __future__ import annotations

from textual.message import Message

from workbench import events as ev


class EngineMessage(Message):
    """An engine event; ``event`` is the frozen dataclass the runner emitted."""

    def __init__(self, event: ev.Event):
        super().__init__()
        self.event = event


class Notice(EngineMessage):
    event: ev.Notice


class RunQueued(EngineMessage):
    event: ev.RunQueued


class RunSkipped(EngineMessage):
    event: ev.RunSkipped


class RunStarted(EngineMessage):
    event: ev.RunStarted


class BatchProgress(EngineMessage):
    event: ev.BatchProgress


class EpochEnded(EngineMessage):
    event: ev.EpochEnded


class RunFinished(EngineMessage):
    event: ev.RunFinished


class SweepStarted(EngineMessage):
    event: ev.SweepStarted


class SweepFinished(EngineMessage):
    event: ev.SweepFinished


_BY_EVENT: dict[type, type[EngineMessage]] = {
    ev.Notice: Notice, ev.RunQueued: RunQueued, ev.RunSkipped: RunSkipped,
    ev.RunStarted: RunStarted, ev.BatchProgress: BatchProgress, ev.EpochEnded: EpochEnded,
    ev.RunFinished: RunFinished, ev.SweepStarted: SweepStarted,
    ev.SweepFinished: SweepFinished,
}


def message_for(event: ev.Event) -> EngineMessage:
    """The message that carries ``event`` (EngineMessage itself for an unknown type)."""
    return _BY_EVENT.get(type(event), EngineMessage)(event)

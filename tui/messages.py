"""Messages the screens and widgets exchange (Textual messages, UI thread only)."""

from __future__ import annotations

from textual.message import Message

__all__ = ["SessionChanged", "EventChosen", "FlowRequested"]


class SessionChanged(Message):
    """The session caught up with its source: read it again."""


class EventChosen(Message):
    """A person picked an event (index into the session's EventIndex)."""

    def __init__(self, i: int) -> None:
        super().__init__()
        self.i = i


class FlowRequested(Message):
    """A person wants to see a flow (a correlation id, or text naming one)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

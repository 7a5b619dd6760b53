"""The clock bar: virtual date and time, transport state, speed, position."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..host import Mode
from ..session import Session

__all__ = ["ClockBar"]

_ICON = {Mode.PLAYING: "▶", Mode.PAUSED: "‖", Mode.STEP: "▶|", Mode.UNTIL: "»", "starting": "…"}


class ClockBar(Widget):
    """One line: ``▶ LIVE  Thu 08 Jan 2026 09:30:12  day 8  1h/s  ev 1234  note``."""

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self._status = session.status()

    def sync(self) -> None:
        s = self._status = self.session.status()
        self.set_class(s.mode == Mode.PLAYING, "-playing")
        self.set_class(s.finished, "-finished")
        self.set_class(bool(s.error), "-error")
        self.refresh()

    def render(self) -> Text:
        s = self._status
        clock = self.session.clock
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{_ICON.get(s.mode, '?')} ", style="bold")
        text.append(" LIVE " if s.live else " REPLAY ", style="bold reverse")
        text.append(f" {clock.clock(s.t)}", style="bold")
        text.append(f"  day {clock.day(s.t)}")
        text.append(f"  {s.mode}")
        text.append(f"  {s.speed}", style="bold")
        text.append(f"  ev {s.events}" if s.total is None else f"  ev {s.events}/{s.total}")
        if s.finished:
            text.append("  FINISHED", style="bold")
        if s.error:
            text.append(f"  error: {s.error}", style="bold")
        elif s.note:
            text.append(f"  {s.note}", style="italic")
        return text

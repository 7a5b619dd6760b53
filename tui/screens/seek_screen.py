"""Ask for a moment to go to: a date, a date and time, an offset, a day."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..session import Session
from ..virtual_time import SeekError

__all__ = ["SeekScreen"]


class SeekScreen(ModalScreen[int | None]):
    """Returns virtual microseconds, or None if the person changed their mind."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        s = self.session
        now = s.source.now_us()
        where = "forward only (a live world cannot go back)" if s.live else "back or forward"
        with Vertical(classes="dialog"):
            yield Label("Seek to a moment", classes="dialog-title")
            yield Label(f"now {s.clock.clock(now)}, day {s.clock.day(now)} — {where}")
            yield Input(placeholder="2026-01-15 14:00   +2h30m   -1d   day 12", id="seek-input")
            yield Label("", id="seek-error", classes="error")
            yield Label("enter go · esc cancel", classes="hint")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = False
        field.focus()

    @on(Input.Submitted)
    def _go(self, event: Input.Submitted) -> None:
        s = self.session
        now = s.source.now_us()
        try:
            t = s.clock.parse(event.value, now)
        except SeekError as exc:
            self.query_one("#seek-error", Label).update(str(exc))
            return
        if s.live and t <= now:
            self.query_one("#seek-error", Label).update(
                "that moment has passed; a live run only goes forward (replay its trace to go back)")
            return
        self.dismiss(t)

    def action_cancel(self) -> None:
        self.dismiss(None)

"""The event log: every event so far, filtered by system, kind or flow.

A filter line (`tui.log_filter`: ``system:erp kind:fault corr:deal:0P1
is:business -kind:net``) over the table of rows (`EventTable`). Typing
filters as you go; enter applies the line and goes to the table, where
enter on a row opens its payload.
"""

from __future__ import annotations

from textual import on
from textual.containers import Vertical
from textual.widgets import Input

from ..log_filter import LogFilter
from ..session import Session
from .event_table import EventTable

__all__ = ["EventLog"]


class EventLog(Vertical):
    """The filter line and the table, kept in step with the session."""

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.filter = LogFilter()
        self._seen = 0
        self._pending: str | None = None
        self.border_title = "Events"

    def compose(self):
        yield Input(placeholder="filter: system:erp kind:fault corr:deal: is:business -kind:net", id="log-filter")
        yield EventTable(self.session, id="log-table")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    def sync(self) -> None:
        visible = self.session.visible
        table = self.table
        if visible < self._seen:
            table.truncate(visible)
        elif visible > self._seen:
            table.extend(self.filter.rows(self.session.index, self._seen, visible))
        self._seen = visible
        self._update_title()

    def apply_filter(self, text: str) -> None:
        self.filter = LogFilter(text)
        self._seen = self.session.visible
        self.table.follow = True
        self.table.set_rows(self.filter.rows(self.session.index, 0, self._seen))
        self._update_title()

    def _update_title(self) -> None:
        shown = len(self.table.rows)
        self.border_title = f"Events {shown}" + (f" of {self._seen} ({self.filter.text})" if self.filter else "")

    @on(Input.Changed, "#log-filter")
    def _typed(self, event: Input.Changed) -> None:
        self._pending = event.value
        self.set_timer(0.15, self._apply_pending)

    def _apply_pending(self) -> None:
        if self._pending is not None and self._pending.strip() != self.filter.text:
            self.apply_filter(self._pending)
        self._pending = None

    @on(Input.Submitted, "#log-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        self._pending = None
        if event.value.strip() != self.filter.text:
            self.apply_filter(event.value)
        self.table.focus()

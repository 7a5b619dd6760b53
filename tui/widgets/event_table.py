"""The event log's rows: a Line API widget that draws only the rows on
screen, from the session's `EventIndex`, coloured by what an event is.
It follows the newest row while the cursor is on it; enter on a row opens
its payload."""

from __future__ import annotations

from bisect import bisect_left

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..event_index import summary
from ..messages import EventChosen
from ..session import Session

__all__ = ["EventTable"]

_TONE = {
    "fault": Style(color="#ff5f5f"),
    "net.timeout": Style(color="#ff5f5f"),
    "net.refused": Style(color="#ff5f5f"),
    "net.request": Style(color="#5fd7ff"),
    "core": Style(color="#d7afff"),
    "vendor": Style(color="#5fd787"),
    "chaos": Style(color="#ffaf00", bold=True),
    "actor": Style(color="#ffaf00"),
}
_MUTED = Style(color="#8a8a8a")
_PLAIN = Style()  # never None: Textual's NO_COLOR filter needs a style on every segment
_CURSOR = Style(bgcolor="#005f87", bold=True)


def _tone(kind: str, facts) -> Style:
    if kind == "net.response":
        st = (facts or {}).get("st") or 0
        return Style(color="#ff5f5f") if st >= 500 or st == 429 else (Style(color="#ffaf00") if st >= 400 else _PLAIN)
    if kind in _TONE:
        return _TONE[kind]
    return _TONE.get(kind.split(".", 1)[0], _PLAIN)


class EventTable(ScrollView, can_focus=True):
    """The rows, drawn on demand; follows the newest while the cursor is on it."""

    DEFAULT_CSS = """
    EventTable { overflow-x: hidden; }
    """

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-20)", "Page up", show=False),
        Binding("pagedown", "cursor(20)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "choose", "Payload", show=False),
    ]

    cursor = reactive(-1, always_update=True)

    class Moved(Message):
        def __init__(self, i: int | None) -> None:
            super().__init__()
            self.i = i

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.rows: list[int] = []
        self.follow = True

    def set_rows(self, rows: list[int]) -> None:
        self.rows = rows
        self._resize()
        if self.follow or self.cursor >= len(rows):
            self.cursor = len(rows) - 1
        self.refresh()

    def extend(self, rows: list[int]) -> None:
        if not rows:
            return
        self.rows.extend(rows)
        self._resize()
        if self.follow:
            self.cursor = len(self.rows) - 1
        self.refresh()

    def truncate(self, visible: int) -> None:
        n = bisect_left(self.rows, visible)
        if n < len(self.rows):
            del self.rows[n:]
            self._resize()
            self.cursor = min(self.cursor, len(self.rows) - 1)
            self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.rows))

    def on_resize(self) -> None:
        self._resize()
        self.call_after_refresh(self._reveal)

    def watch_cursor(self, cursor: int) -> None:
        self.call_after_refresh(self._reveal)
        self.refresh()
        self.post_message(self.Moved(self.selected))

    def _reveal(self) -> None:
        cursor = self.cursor
        if 0 <= cursor < len(self.rows):
            top = round(self.scroll_offset.y)
            height = self.scrollable_content_region.height or 1
            if cursor < top:
                self.scroll_to(y=cursor, animate=False, immediate=True)
            elif cursor >= top + height:
                self.scroll_to(y=cursor - height + 1, animate=False, immediate=True)

    @property
    def selected(self) -> int | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))
        self.follow = self.cursor == len(self.rows) - 1

    def action_cursor_to(self, where: int) -> None:
        if self.rows:
            self.cursor = where if where >= 0 else len(self.rows) - 1
            self.follow = self.cursor == len(self.rows) - 1

    def action_choose(self) -> None:
        if self.selected is not None:
            self.post_message(EventChosen(self.selected))

    def on_click(self, event) -> None:
        y = event.y + self.scroll_offset.y
        if 0 <= y < len(self.rows):
            self.cursor = y
            self.follow = y == len(self.rows) - 1

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        n = y + self.scroll_offset.y
        if not 0 <= n < len(self.rows):
            return Strip.blank(width, _PLAIN)
        i = self.rows[n]
        index = self.session.index
        row = index.row(i)
        clock = self.session.clock
        route = f"{row.src or ''}{'→' + row.dst if row.dst else ''}"
        wide = width >= 110
        cells = [
            (f"{row.seq:>6} ", _MUTED),
            (f"{clock.stamp(row.t) if wide else clock.short(row.t)} ", _PLAIN),
            (f"{row.kind:<20.20} " if wide else f"{row.kind:<15.15} ", _tone(row.kind, row.facts)),
            (f"{route:<17.17} " if wide else f"{route:<13.13} ", _PLAIN),
        ]
        if wide:
            cells.append((f"{(row.corr or ''):<24.24} ", _MUTED))
        cells.append((summary(row), _PLAIN))
        segments = [Segment(text, style) for text, style in cells]
        strip = Strip(segments).crop_extend(0, width, _PLAIN)
        if n == self.cursor:
            strip = strip.apply_style(_CURSOR if self.has_focus else Style(bgcolor="#303030"))
        return strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

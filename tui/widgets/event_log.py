"""The event log: every event so far, filtered by system, kind or flow.

A month of a busy world is hundreds of thousands of events, so the table is
a Line API widget that renders only the rows on screen, from the session's
`EventIndex`. The filter is a line of words::

    system:erp            events to or from the ERP   (sys: works too)
    kind:fault            kinds starting with "fault" (kind:net.response, ...)
    corr:deal:0P1         correlation ids containing "deal:0P1"
    is:business  is:fault is:core
    anything else         appears in the kind, an actor or the correlation id
    -word                 leave out what a word matches (-kind:net)

Enter on a row opens its payload.
"""

from __future__ import annotations

from bisect import bisect_left

from rich.segment import Segment
from rich.style import Style
from textual import on
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from ..event_index import EventIndex, is_business, summary
from ..messages import EventChosen
from ..session import Session

__all__ = ["EventLog", "EventTable", "LogFilter"]

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


class LogFilter:
    """A compiled filter line (see the module docstring)."""

    def __init__(self, text: str = "") -> None:
        self.text = text.strip()
        self.tests = []
        for word in self.text.split():
            negate = word.startswith("-") and len(word) > 1
            if negate:
                word = word[1:]
            self.tests.append((negate, self._test(word.lower())))

    @staticmethod
    def _test(word: str):
        key, sep, value = word.partition(":")
        if sep and key in ("system", "sys", "src", "dst"):
            if key == "src":
                return lambda k, s, d, c: s is not None and s.lower().startswith(value)
            if key == "dst":
                return lambda k, s, d, c: d is not None and d.lower().startswith(value)
            return lambda k, s, d, c: (s is not None and s.lower().startswith(value)) or (d is not None and d.lower().startswith(value))
        if sep and key == "kind":
            return lambda k, s, d, c: k.startswith(value)
        if sep and key == "corr":
            return lambda k, s, d, c: c is not None and value in c.lower()
        if sep and key == "is":
            if value.startswith("bus"):
                return lambda k, s, d, c: is_business(k)
            if value.startswith("fault"):
                return lambda k, s, d, c: k.startswith("fault.") or k in ("net.timeout", "net.refused", "core.op.dead")
            return lambda k, s, d, c: k.startswith(value + ".")
        return lambda k, s, d, c: value in k or (s is not None and value in s) or (d is not None and value in d) or (
            c is not None and value in c.lower())

    def __bool__(self) -> bool:
        return bool(self.tests)

    def rows(self, index: EventIndex, start: int, stop: int) -> list[int]:
        if not self.tests:
            return list(range(start, stop))
        kinds, srcs, dsts, corrs = index.kind, index.src, index.dst, index.corr
        tests = self.tests
        out = []
        for i in range(start, stop):
            k, s, d, c = kinds[i], srcs[i], dsts[i], corrs[i]
            if all(test(k, s, d, c) != negate for negate, test in tests):
                out.append(i)
        return out


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

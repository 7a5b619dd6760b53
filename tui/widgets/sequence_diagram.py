"""A sequence (Lamport space-time) diagram of one flow, drawn by hand.

One lifeline per system the flow touched, in the usual left-to-right
order (CRM, core, PSA, ERP, billing, revenue, HRIS, expenses); one row per
event, in trace order, each stamped with its virtual time::

    time                crm        core        psa         erp
    01-08 09:30:00.082   ◆ update   │           │           │
    01-08 09:30:00.119   │◀─GET /Opp─┤           │           │
    01-08 09:30:00.210   ├╌200╌╌╌╌╌▶│           │           │
    01-08 09:30:01.024   │           ├─PUT /cus✕  │           │   (lost)
    01-08 09:30:31.024   │           ⌛ timeout  │           │

Requests are solid arrows, responses dashed and coloured by status, a
message that never arrived ends in ✕ half-way, duplicates and retries are
marked. The header row stays put while the rows scroll; the cursor selects
a row (enter: its payload).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..flow_index import Step
from ..messages import EventChosen
from ..virtual_time import RunClock

__all__ = ["SequenceDiagram"]

TIME_W = 20
TONES = {
    "request": Style(color="#5fd7ff"),
    "ok": Style(color="#5fd787"),
    "warn": Style(color="#ffaf00"),
    "error": Style(color="#ff5f5f", bold=True),
    "fault": Style(color="#ff5f5f", bold=True),
    "note": Style(color="#bcbcbc"),
    "core": Style(color="#d7afff"),
    "effect": Style(color="#87d787"),
}
LIFELINE = Style(color="#585858")
HEAD = Style(bold=True, color="#ffffff", bgcolor="#303030")
CURSOR = Style(bgcolor="#005f87")
MUTED = Style(color="#8a8a8a")
PLAIN = Style()  # never None: Textual's NO_COLOR filter needs a style on every segment


class SequenceDiagram(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    SequenceDiagram { overflow-x: hidden; }
    """

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-15)", "Page up", show=False),
        Binding("pagedown", "move(15)", "Page down", show=False),
        Binding("home", "move_to(0)", "First", show=False),
        Binding("end", "move_to(-1)", "Last", show=False),
        Binding("enter", "choose", "Payload", show=False),
    ]

    cursor = reactive(0, always_update=True)

    class Moved(Message):
        def __init__(self, step: Step | None) -> None:
            super().__init__()
            self.step = step

    def __init__(self, clock: RunClock, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.participants: list[str] = []
        self.steps: list[Step] = []

    def show(self, participants: list[str], steps: list[Step], keep_cursor: bool = False) -> None:
        at_end = self.cursor >= len(self.steps) - 1
        self.participants = participants
        self.steps = steps
        self.virtual_size = Size(self.scrollable_content_region.width, len(steps) + 1)
        if not keep_cursor:
            self.cursor = 0
        elif at_end and steps:
            self.cursor = len(steps) - 1
        else:
            self.cursor = min(self.cursor, max(0, len(steps) - 1))
        self.refresh()

    # ------------------------------------------------------------ movement

    def watch_cursor(self, cursor: int) -> None:
        self.call_after_refresh(self._reveal)
        self.refresh()
        self.post_message(self.Moved(self.selected))

    def _reveal(self) -> None:
        cursor = self.cursor
        top = round(self.scroll_offset.y)
        height = max(1, self.scrollable_content_region.height - 1)
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, immediate=True)
        elif cursor >= top + height:
            self.scroll_to(y=cursor - height + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.steps) + 1)
        self.call_after_refresh(self._reveal)

    @property
    def selected(self) -> Step | None:
        return self.steps[self.cursor] if 0 <= self.cursor < len(self.steps) else None

    def action_move(self, delta: int) -> None:
        if self.steps:
            self.cursor = max(0, min(len(self.steps) - 1, self.cursor + delta))

    def action_move_to(self, where: int) -> None:
        if self.steps:
            self.cursor = where if where >= 0 else len(self.steps) - 1

    def action_choose(self) -> None:
        if self.selected is not None:
            self.post_message(EventChosen(self.selected.i))

    def on_click(self, event) -> None:
        n = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= n < len(self.steps):
            self.cursor = n

    # ------------------------------------------------------------ drawing

    def _time_w(self, width: int) -> int:
        return TIME_W if width >= 110 else 17

    def _columns(self, width: int) -> dict[str, int]:
        n = max(1, len(self.participants))
        tw = self._time_w(width)
        span = max(6, (width - tw - 1) // n)
        return {p: tw + span // 2 + k * span for k, p in enumerate(self.participants)}

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if not self.participants:
            text = " pick a flow on the left (a deal, project, invoice or correlation id)" if y == 0 else ""
            return Strip([Segment(text.ljust(width)[:width], MUTED)])
        cols = self._columns(width)
        if y == 0:
            return self._header(cols, width)
        n = y - 1 + self.scroll_offset.y
        if not 0 <= n < len(self.steps):
            return self._empty(cols, width)
        strip = self._row(self.steps[n], cols, width)
        if n == self.cursor:
            strip = strip.apply_style(CURSOR if self.has_focus else Style(bgcolor="#303030"))
        return strip

    def _header(self, cols: dict[str, int], width: int) -> Strip:
        cells = [(" ", HEAD)] * width
        tw = self._time_w(width)
        for k, ch in enumerate(" virtual time" if tw == TIME_W else " time"):
            cells[k] = (ch, HEAD)
        span = (list(cols.values())[1] - list(cols.values())[0]) if len(cols) > 1 else width
        for p, x in cols.items():
            label = (p.upper() if p == "core" else p)[: max(3, span - 1)]
            x0 = max(tw, x - len(label) // 2)
            for k, ch in enumerate(label):
                if x0 + k < width:
                    cells[x0 + k] = (ch, HEAD)
        return _strip(cells)

    def _empty(self, cols: dict[str, int], width: int) -> Strip:
        cells = [(" ", PLAIN)] * width
        for x in cols.values():
            if x < width:
                cells[x] = ("│", LIFELINE)
        return _strip(cells)

    def _row(self, step: Step, cols: dict[str, int], width: int) -> Strip:
        cells = [(" ", PLAIN)] * width
        tw = self._time_w(width)
        stamp = f" {self.clock.stamp(step.t)}" if tw == TIME_W else f" d{self.clock.day(step.t)} {self.clock.short(step.t)}"
        for k, ch in enumerate(stamp[: tw - 1]):
            cells[k] = (ch, MUTED)
        for x in cols.values():
            if x < width:
                cells[x] = ("│", LIFELINE)
        tone = TONES.get(step.tone, TONES["note"])
        a = cols.get(step.src) if step.src else None
        b = cols.get(step.dst) if step.dst else None

        def put(x: int, text: str, style: Style) -> None:
            for k, ch in enumerate(text):
                if tw <= x + k < width:
                    cells[x + k] = (ch, style)

        if a is not None and b is not None and a != b:
            lo, hi = min(a, b), max(a, b)
            dashed = step.kind == "net.response"
            line = "╌" if dashed else ("═" if step.label.startswith("dup") else "─")
            end = hi if not step.lost else (lo + hi) // 2
            if step.lost:
                # the message leaves its sender and dies half-way
                if a < b:
                    put(a + 1, line * max(0, end - a - 1), tone)
                    put(end, "✕", tone)
                else:
                    put(end + 1, line * max(0, a - end - 1), tone)
                    put(end, "✕", tone)
                put(a, "┤" if a > end else "├", tone)
            else:
                put(lo + 1, line * max(0, hi - lo - 1), tone)
                if a < b:
                    put(a, "├", tone)
                    put(b - 1, "▶", tone)
                else:
                    put(a, "┤", tone)
                    put(b + 1, "◀", tone)
            label = step.label
            room = (hi - lo - 3) if not step.lost else abs(end - a) - 3
            if room >= min(len(label), 14):
                x0 = (min(a, end) if step.lost else lo) + 2
                put(x0, label if room >= len(label) else label[: room - 1] + "…", tone)
            else:  # too narrow between the lifelines: write it beyond the arrow's end
                far = max(a, end) if step.lost else hi
                put(far + 2, label[: max(0, width - far - 2)], tone)
        else:
            x = a if a is not None else (b if b is not None else tw)
            put(x, "●" if step.tone != "fault" else "▲", tone)
            put(x + 2, step.label[: max(0, width - x - 2)], tone)
        return _strip(cells)


def _strip(cells: list[tuple[str, Style]]) -> Strip:
    segments: list[Segment] = []
    run: list[str] = []
    style = None
    for ch, st in cells:
        if st is not style and run:
            segments.append(Segment("".join(run), style))
            run = []
        style = st
        run.append(ch)
    if run:
        segments.append(Segment("".join(run), style))
    return Strip(segments)

"""The topology: the sync core as a hub, the systems around it, live links.

::

         crm ●━━━━ ⇄2 0% ━━━━┫           ┣━━━━ ⇄0 0% ━━━━━● psa
                             ┃           ┃
        hris ●━━━━ ⇄0 0% ━━━━┫ SYNC CORE ┣━━━━ ⇄1 3% ━━━━━● erp
                             ┃  running  ┃
    expenses ●╳╳ PARTITIONED ┫           ┣╌╌╌ +30s slow ╌╌● billing

Each link is the core's connection to one system: exchanges awaiting an
answer (⇄), the error rate over the last virtual hour, and whatever fault
holds it -- a partition is a red line of ╳, a system in an outage or a
crashed process is a red block, unmistakable at a glance. Below: the faults
in force now and the faults fired so far.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ..session import Session
from ..world_view import LinkPicture, NodePicture, Topology

__all__ = ["TopologyView"]

INPUTS = ("crm", "hris", "expenses")  # systems the core mostly reads from: drawn on the left

OK = Style(color="#5fd787")
WARN = Style(color="#ffaf00")
BAD = Style(color="#ff5f5f", bold=True)
DOWN = Style(color="white", bgcolor="#d70000", bold=True)
IDLE = Style(color="#6c6c6c")
FLOW = Style(color="#5fd7ff")
LABEL = Style(bold=True)
MUTED = Style(color="#8a8a8a")


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.cells = [[(" ", Style())] * width for _ in range(height)]

    def put(self, x: int, y: int, text: str, style: Style | None = None) -> None:
        if not 0 <= y < len(self.cells):
            return
        row = self.cells[y]
        for k, ch in enumerate(text):
            if 0 <= x + k < self.width:
                row[x + k] = (ch, style)

    def text(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for y, row in enumerate(self.cells):
            if y:
                out.append("\n")
            run, style = [], None
            for ch, st in row:
                if st is not style and run:
                    out.append("".join(run), style)
                    run = []
                style = st
                run.append(ch)
            if run:
                out.append("".join(run), style)
        return out


def _node_mark(node: NodePicture | None) -> tuple[str, Style]:
    if node is None or node.state == "new":
        return "○", IDLE
    if node.state == "crashed":
        return "✖", BAD
    if node.state == "stopped":
        return "■", WARN
    if node.outage is not None:
        return "▼", BAD
    return "●", OK


def _node_style(node: NodePicture | None) -> Style:
    if node is not None and (node.outage is not None or node.state == "crashed"):
        return DOWN
    return LABEL


def _link_look(link: LinkPicture | None, node: NodePicture | None, clock) -> tuple[str, Style, tuple[str, ...], Style]:
    """(line char, line style, labels from longest to shortest, label style)."""
    if link is None:
        return "─", IDLE, (), IDLE
    if link.partitioned_until is not None:
        until = clock.stamp(link.partitioned_until)[:11]
        return "╳", BAD, (f" PARTITIONED to {until} ", " PARTITIONED ", " CUT "), BAD
    if node is not None and node.outage is not None:
        return "╳", BAD, (f" DOWN to {clock.stamp(node.outage)[:11]} ", " DOWN "), BAD
    if node is not None and node.state == "crashed":
        return "╳", BAD, (" CRASHED ", " DOWN "), BAD
    if link.held_until is not None:
        return "┄", WARN, (" HELD ",), WARN
    rate = f"{link.error_rate * 100:.0f}%"
    if node is not None and node.slow:
        slow = f"+{node.slow // 1_000_000}s"
        return "┅", WARN, (f" ⇄{link.in_flight} {rate} {slow} slow ", f" ⇄{link.in_flight} {slow} ", f" {slow} "), WARN
    labels = (f" ⇄{link.in_flight} err {rate} ", f" ⇄{link.in_flight} {rate} ", f" ⇄{link.in_flight} ")
    if link.last_fault:
        labels = (f" ⇄{link.in_flight} {rate} !{link.last_fault} ", f" ⇄{link.in_flight} !{link.last_fault} ") + labels[1:]
    if link.error_rate >= 0.05:
        return "━", BAD, labels, BAD
    if link.error_rate > 0 or link.last_fault:
        return "━", WARN, labels, WARN
    if link.recent_exchanges == 0:
        return "─", IDLE, labels, MUTED
    return "━", OK, labels, FLOW if link.in_flight else OK


class TopologyView(Widget, can_focus=False):
    """The picture of the world at the session's moment."""

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self._picture: Topology | None = None
        self.border_title = "Topology"

    def sync(self) -> None:
        self._picture = picture = self.session.topology()
        fired = " · ".join(f"{k} {v}" for k, v in picture.fault_counts)
        self.border_subtitle = f"fired: {fired}" if fired else ""
        self.refresh()

    def render(self) -> Text:
        picture = self._picture or self.session.topology()
        width, height = self.content_region.width, self.content_region.height
        if width < 30 or height < 4:
            return Text("(too small for the topology)", style=MUTED)
        return self.draw(picture, width, height)

    def draw(self, pic: Topology, width: int, height: int) -> Text:
        clock = self.session.clock
        center = pic.center
        others = [n.name for n in pic.nodes if n.name != center]
        left = [n for n in others if n in INPUTS]
        right = [n for n in others if n not in INPUTS]
        if not left and len(right) > 1:
            half = len(right) // 2
            left, right = right[:half], right[half:]
        slots = max(len(left), len(right), 1)
        footer = 2
        gap = max(1, min(4, (height - footer - 3) // max(1, slots - 1))) if slots > 1 else 1
        footer = max(footer, height - ((slots - 1) * gap + 3))
        rows = (slots - 1) * gap + 1
        canvas = _Canvas(width, rows + 2 + footer)
        box_w = 13
        name_w = max([len(n) for n in others] + [4]) + 1
        bx0 = (width - box_w) // 2
        bx1 = bx0 + box_w - 1
        core = pic.node(center)
        crashed = core is not None and core.state == "crashed"
        box_style = BAD if crashed else FLOW
        # the hub
        canvas.put(bx0, 0, "┏" + "━" * (box_w - 2) + "┓", box_style)
        for y in range(1, rows + 1):
            canvas.put(bx0, y, "┃", box_style)
            canvas.put(bx1, y, "┃", box_style)
        canvas.put(bx0, rows + 1, "┗" + "━" * (box_w - 2) + "┛", box_style)
        mid = (rows + 1) // 2
        title = "SYNC CORE" if center == "core" else center.upper()
        canvas.put(bx0 + 1 + (box_w - 2 - len(title)) // 2, max(1, mid - 1) if rows > 2 else mid, title, LABEL)
        state = "CRASHED" if crashed else (core.state if core else "?")
        canvas.put(bx0 + 1 + (box_w - 2 - len(state)) // 2, min(rows, mid + 1) if rows > 2 else mid,
                   state, BAD if crashed else (OK if state == "running" else MUTED))
        # the spokes
        for side, names in (("left", left), ("right", right)):
            for k, name in enumerate(names):
                y = 1 + k * gap
                node = pic.node(name)
                link = pic.link(center, name)
                line_ch, line_st, labels, label_st = _link_look(link, node, clock)
                mark, mark_st = _node_mark(node)
                text, text_st = name, _node_style(node)
                if side == "left":
                    canvas.put(name_w - len(text), y, text, text_st)
                    canvas.put(name_w + 1, y, mark, mark_st)
                    seg0, seg1 = name_w + 2, bx0 - 1
                    canvas.put(bx0, y, "┫", box_style)
                else:
                    canvas.put(bx1, y, "┣", box_style)
                    x_mark = width - name_w - 2
                    seg0, seg1 = bx1 + 1, x_mark - 1
                    canvas.put(x_mark, y, mark, mark_st)
                    canvas.put(x_mark + 2, y, text, text_st)
                length = seg1 - seg0 + 1
                if length <= 0:
                    continue
                canvas.put(seg0, y, line_ch * length, line_st)
                label = next((lb for lb in labels if len(lb) <= length - 2), None)
                if label:
                    canvas.put(seg0 + (length - len(label)) // 2, y, label, label_st)
        # what is wrong now (what has gone wrong so far is in the subtitle)
        y = rows + 2
        if pic.faults:
            words = [_fault_words(f, clock) for f in pic.faults]
            lines = _wrap("faults now: " + " · ".join(words), width, max(1, height - y))
            for k, line in enumerate(lines):
                canvas.put(0, y + k, line, BAD)
        elif pic.healed_at is not None:
            canvas.put(0, y, f"faults now: none (healed at {clock.short(pic.healed_at)[:5]})", OK)
        else:
            canvas.put(0, y, "faults now: none", OK)
        return canvas.text()


def _fault_words(f, clock) -> str:
    until = f" to {clock.short(f.until)[:5]}" if f.until else ""
    if f.kind == "partition":
        return f"{f.who} cut{until}"
    if f.kind == "outage":
        return f"{f.who} down{until}"
    if f.kind == "slow":
        return f"{f.who} {f.detail} slow{until}"
    if f.kind == "crash":
        return f"{f.who} crashed{until if f.until else ''}"
    return f"{f.kind} {f.who}{until}"


def _wrap(text: str, width: int, lines: int) -> list[str]:
    out: list[str] = []
    while text and len(out) < lines:
        if len(text) <= width:
            out.append(text)
            break
        cut = text.rfind(" · ", 0, width)
        cut = cut if cut > 0 else width
        out.append(text[:cut])
        text = "  " + text[cut:].lstrip(" ·")
    return out

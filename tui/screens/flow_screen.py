"""The flow view: pick a deal, project, invoice or correlation id; see its
journey across the systems as a sequence diagram.

The picker on the left lists the flows so far (the search matches any id a
flow's events name); the diagram follows the run as it goes on.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList
from textual.widgets.option_list import Option

from ..flow_index import FlowSummary, journey
from ..messages import SessionChanged
from ..session import Session
from ..widgets.clock_bar import ClockBar
from ..widgets.sequence_diagram import SequenceDiagram

__all__ = ["FlowScreen"]


class FlowScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search", show=False),
        Binding("tab", "switch", "Picker/diagram", show=False),
    ]

    def __init__(self, session: Session, corr: str | None = None, search: str = "") -> None:
        super().__init__()
        self.session = session
        self.corr = corr
        self.search = search
        self._listed: list[FlowSummary] = []
        self._shown = None

    def compose(self) -> ComposeResult:
        yield ClockBar(self.session, id="clock")
        with Vertical(id="flow-picker", classes="panel") as picker:
            picker.border_title = "Flows"
            yield Input(value=self.search, placeholder="deal, project, invoice or corr id", id="flow-search")
            yield OptionList(id="flow-list")
        with Vertical(id="flow-main", classes="panel") as main:
            main.border_title = "Flow"
            yield SequenceDiagram(self.session.clock, id="diagram")
            yield Label("", id="flow-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#flow-search", Input).cursor_blink = False
        self._fill_list()
        if self.corr is not None:
            self._show(self.corr)
            self.query_one(SequenceDiagram).focus()
        else:
            self.query_one(OptionList).focus()

    @on(SessionChanged)
    def sync(self) -> None:
        self.query_one(ClockBar).sync()
        self._fill_list()
        if self.corr is not None:
            self._show(self.corr, keep_cursor=True)

    def on_screen_resume(self) -> None:
        self.sync()

    def on_resize(self) -> None:
        self._shown = None
        self.call_after_refresh(self._fill_list)

    # ------------------------------------------------------------ the picker

    def _fill_list(self) -> None:
        s = self.session
        listed = s.flows.search(self.search, s.index, s.visible)
        key = tuple((f.corr, f.events) for f in listed)
        if key == self._shown:
            return
        self._shown = key
        self._listed = listed
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        width = max(16, options.scrollable_content_region.width - 2)
        for f in listed:
            second = Text(f"  {f.events} ev", style="#bcbcbc")
            if f.faults:
                second.append(f" !{f.faults}", style="#ffaf00")
            second.append(f"  {' '.join(f.systems)}", style="#8a8a8a")
            second.truncate(width, overflow="ellipsis")
            first = Text(f.corr, style="bold")
            first.truncate(width, overflow="ellipsis")
            options.add_option(Option(Text.assemble(first, "\n", second), id=f.corr))
        if not listed:
            options.add_option(Option(Text("no flow matches (yet)", style="#8a8a8a"), disabled=True))
        if self.corr is not None:
            for k, f in enumerate(listed):
                if f.corr == self.corr:
                    options.highlighted = k
                    break
        elif highlighted is not None and highlighted < options.option_count:
            options.highlighted = highlighted
        elif listed:
            options.highlighted = 0
        self.query_one("#flow-picker").border_title = f"Flows {len(listed)}"

    @on(Input.Changed, "#flow-search")
    def _search(self, event: Input.Changed) -> None:
        self.search = event.value
        self._fill_list()

    @on(Input.Submitted, "#flow-search")
    def _search_done(self, event: Input.Submitted) -> None:
        if self._listed:
            self._show(self._listed[0].corr)
            self.query_one(SequenceDiagram).focus()

    @on(OptionList.OptionSelected, "#flow-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._show(event.option.id)
            self.query_one(SequenceDiagram).focus()

    @on(OptionList.OptionHighlighted, "#flow-list")
    def _browsed(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.corr:
            self._show(event.option.id)

    # ------------------------------------------------------------ the diagram

    def _show(self, corr: str, keep_cursor: bool = False) -> None:
        s = self.session
        same = corr == self.corr
        self.corr = corr
        participants, steps = journey(s.index, s.flows.event_ids(corr, s.visible))
        diagram = self.query_one(SequenceDiagram)
        if same and keep_cursor and len(steps) == len(diagram.steps):
            return
        diagram.show(participants, steps, keep_cursor=same and keep_cursor)
        summary = s.flows.summary(corr, s.index, s.visible)
        main = self.query_one("#flow-main")
        if summary is None:
            main.border_title = f"Flow {corr}: nothing yet"
            return
        span = s.clock.span(summary.last_t - summary.first_t)
        main.border_title = f"Flow {corr} · {summary.events} events · {span}"
        ids = [k for k in summary.keys if k != corr and not k.startswith(("ob", "m"))][:6]
        main.border_subtitle = "ids: " + " ".join(ids) if ids else ""

    @on(SequenceDiagram.Moved)
    def _moved(self, event: SequenceDiagram.Moved) -> None:
        step = event.step
        detail = self.query_one("#flow-detail", Label)
        if step is None:
            detail.update("")
            return
        row = self.session.index.row(step.i)
        detail.update(
            f"event {row.seq} · {self.session.clock.stamp(row.t)} · {row.kind} · "
            f"{row.src or '-'} → {row.dst or '-'}\n{step.label}   (enter: payload)"
        )

    # ------------------------------------------------------------ keys

    def action_back(self) -> None:
        self.dismiss()

    def action_search(self) -> None:
        self.query_one("#flow-search", Input).focus()

    def action_switch(self) -> None:
        if self.query_one(SequenceDiagram).has_focus:
            self.query_one(OptionList).focus()
        else:
            self.query_one(SequenceDiagram).focus()

"""The main screen: clock, topology, invariants and KPIs, event log, queues.

At 100×30 every panel fits; taller and wider terminals give the picture,
the log and the side panels more room (``-tall`` / ``-wide``).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from ..messages import FlowRequested, SessionChanged
from ..session import Session
from ..widgets.clock_bar import ClockBar
from ..widgets.event_log import EventLog
from ..widgets.event_table import EventTable
from ..widgets.invariants import InvariantsPanel
from ..widgets.kpis import KpiPanel
from ..widgets.queues import QueuesPanel
from ..widgets.topology import TopologyView
from .invariant_screen import InvariantScreen

__all__ = ["MainScreen"]


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter", show=False),
        Binding("l", "focus_log", "Log", show=False),
        Binding("i", "focus_invariants", "Invariants", show=False),
        Binding("d", "focus_dlq", "DLQ"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield ClockBar(self.session, id="clock")
        with Horizontal(id="top"):
            yield TopologyView(self.session, id="topology", classes="panel")
            with Vertical(id="health"):
                yield InvariantsPanel(self.session, id="invariants", classes="panel")
                with VerticalScroll(id="kpis", classes="panel") as kpis:
                    kpis.border_title = "KPIs"
                    yield KpiPanel(self.session, id="kpi-table")
        with Horizontal(id="bottom"):
            yield EventLog(self.session, id="log", classes="panel")
            yield QueuesPanel(self.session, id="queues", classes="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._layout_for(self.size.width, self.size.height)
        self.sync()
        self.query_one(EventTable).focus()

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width, event.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        self.set_class(height >= 40, "-tall")
        self.set_class(width >= 140, "-wide")

    def on_screen_resume(self) -> None:
        self.sync()

    @on(SessionChanged)
    def sync(self) -> None:
        self.query_one(ClockBar).sync()
        self.query_one(TopologyView).sync()
        self.query_one(InvariantsPanel).sync()
        self.query_one(KpiPanel).sync()
        self.query_one(EventLog).sync()
        self.query_one(QueuesPanel).sync()

    # ------------------------------------------------------------ navigation

    def action_filter(self) -> None:
        self.query_one("#log-filter").focus()

    def action_focus_log(self) -> None:
        self.query_one(EventTable).focus()

    def action_focus_invariants(self) -> None:
        self.query_one(InvariantsPanel).focus()

    def action_focus_dlq(self) -> None:
        self.query_one(QueuesPanel).show("dlq")

    def action_act_on_queue(self, queue: str) -> None:
        panel = self.query_one(QueuesPanel)
        panel.show(queue)
        panel.action_act()

    @on(InvariantsPanel.Chosen)
    def _invariant(self, event: InvariantsPanel.Chosen) -> None:
        result = event.result
        corr = None
        for violation in result.violations:
            corr = self.session.flow_of_text(violation)
            if corr:
                break
        if result.ok is False and corr is not None:
            self.notify(f"{result.name}: showing {corr}", title="invariant violated", severity="error")
            self.post_message(FlowRequested(corr))
        else:
            self.app.push_screen(InvariantScreen(self.session, result))

    @on(QueuesPanel.ActionRequested)
    def _queue_action(self, event: QueuesPanel.ActionRequested) -> None:
        self.app.action_queue_action(event.item.queue, event.item.key)

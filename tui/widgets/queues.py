"""The core's queues: outbox, dead letters, exceptions -- and acting on them.

``r`` on a dead letter replays it (back to the head of its aggregate,
attempts reset); on an exception it sends the operation back for a retry.
Both are commands to the simulation thread, applied between events. Enter
opens the item's flow.
"""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, TabbedContent, TabPane

from ..messages import FlowRequested
from ..samples import QueueItem
from ..session import Session

__all__ = ["QueuesPanel"]

TABS = (("outbox", "Outbox"), ("dlq", "DLQ"), ("exceptions", "Exceptions"))


class QueuesPanel(Vertical):
    BINDINGS = [
        Binding("r", "act", "Replay/retry"),
    ]

    class ActionRequested(Message):
        """A person asked to replay a dead letter or retry an exception."""

        def __init__(self, item: QueueItem) -> None:
            super().__init__()
            self.item = item

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.items: dict[str, list[QueueItem]] = {name: [] for name, _ in TABS}
        self._shown = None
        self.border_title = "Queues"

    def compose(self):
        with TabbedContent(id="queue-tabs"):
            for name, title in TABS:
                with TabPane(title, id=f"tab-{name}"):
                    yield DataTable(id=f"table-{name}", cursor_type="row", zebra_stripes=True)
        yield Label("", id="queue-detail")
        hint = "r replay/retry · enter flow" if self.session.live else "enter flow"
        yield Label(hint, classes="hint")

    def on_mount(self) -> None:
        for name, _ in TABS:
            table = self.query_one(f"#table-{name}", DataTable)
            table.add_columns("id", "op")

    def sync(self) -> None:
        sample = self.session.sample()
        queues = sample.queues if sample is not None else ()
        if queues == self._shown:
            return
        self._shown = queues
        tabs = self.query_one(TabbedContent)
        for name, title in TABS:
            items = [q for q in queues if q.queue == name]
            self.items[name] = items
            table = self.query_one(f"#table-{name}", DataTable)
            row = table.cursor_row
            table.clear()
            for q in items:
                table.add_row(q.key, q.op, key=q.key)
            if items:
                table.move_cursor(row=min(row, len(items) - 1))
            tab = tabs.get_tab(f"tab-{name}")
            tab.label = f"{title} {len(items)}"
        dlq = len(self.items["dlq"])
        exc = len(self.items["exceptions"])
        self.border_title = f"Queues · dlq {dlq} · exc {exc}"
        self.set_class(bool(dlq or exc), "-attention")
        self._detail()

    @on(DataTable.RowHighlighted)
    @on(TabbedContent.TabActivated)
    def _detail(self) -> None:
        item = self.selected()
        label = self.query_one("#queue-detail", Label)
        if item is None:
            label.update("")
            return
        why = item.reason or (f"attempt {item.attempts}" if item.attempts else "waiting")
        label.update(f"{item.corr or item.aggregate}: {why}")

    @property
    def active(self) -> str:
        return (self.query_one(TabbedContent).active or "tab-outbox")[4:]

    def selected(self) -> QueueItem | None:
        name = self.active
        table = self.query_one(f"#table-{name}", DataTable)
        items = self.items[name]
        if not items or table.cursor_row < 0 or table.cursor_row >= len(items):
            return None
        return items[table.cursor_row]

    def show(self, name: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{name}"
        self.query_one(f"#table-{name}", DataTable).focus()

    def action_act(self) -> None:
        item = self.selected()
        if item is None:
            self.notify("nothing selected: pick a dead letter or an exception", severity="warning")
        elif item.queue == "outbox":
            self.notify("outbox messages are still being tried; replay is for the DLQ, retry for exceptions",
                        severity="warning")
        else:
            self.post_message(self.ActionRequested(item))

    @on(DataTable.RowSelected)
    def _open_flow(self, event: DataTable.RowSelected) -> None:
        event.stop()
        item = self.selected()
        if item is not None:
            self.post_message(FlowRequested(item.corr or item.key.split(":")[-1]))

"""One event, whole: its header fields and its payload, read from the trace."""

from __future__ import annotations

import json

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..messages import FlowRequested
from ..session import Session

__all__ = ["PayloadScreen"]


class PayloadScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("f", "flow", "Its flow"),
    ]

    def __init__(self, session: Session, i: int) -> None:
        super().__init__()
        self.session = session
        self.i = i
        self.row = session.index.row(i)

    def compose(self) -> ComposeResult:
        row = self.row
        try:
            event = self.session.index.payload(self.i)
            body = json.dumps(event, indent=2, sort_keys=True, ensure_ascii=False)
        except (OSError, LookupError, ValueError) as exc:
            body = f"(the payload cannot be read: {exc})"
        title = f"event {row.seq} · {row.kind} · {self.session.clock.stamp(row.t)}"
        route = f"{row.src or '-'} → {row.dst or '-'}   corr {row.corr or '-'}"
        with Vertical(classes="dialog"):
            yield Label(title, classes="dialog-title")
            yield Label(route)
            with VerticalScroll():
                yield Static(Syntax(body, "json", theme="monokai", word_wrap=True, background_color="default"),
                             id="payload")
            yield Label("esc close · f open its flow", classes="hint")

    def action_flow(self) -> None:
        corr = self.row.corr
        if corr is None:
            keys = (self.row.facts or {}).get("keys", ())
            corr = next((c for k in keys for c in sorted(self.session.flows.by_key.get(k, ()))), None)
        if corr is None:
            self.notify("this event belongs to no flow", severity="warning")
            return
        self.dismiss()
        self.app.post_message(FlowRequested(corr))

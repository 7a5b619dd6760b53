"""One invariant: what it says and every violation, each leading to its flow."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ..messages import FlowRequested
from ..samples import InvariantResult
from ..session import Session

__all__ = ["InvariantScreen"]


class InvariantScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, session: Session, result: InvariantResult) -> None:
        super().__init__()
        self.session = session
        self.result = result

    def compose(self) -> ComposeResult:
        r = self.result
        state = {True: "holds", False: "VIOLATED", None: "decided at the end of the run"}[r.ok]
        with Vertical(classes="dialog"):
            yield Label(f"{r.name} — {state}", classes="dialog-title")
            options = OptionList(id="violations")
            for k, v in enumerate(r.violations):
                corr = self.session.flow_of_text(v)
                line = Text(v)
                if corr:
                    line.append(f"   → {corr}", style="#5fd7ff")
                options.add_option(Option(line, id=f"v{k}"))
            if not r.violations:
                options.add_option(Option(Text("no violations", style="#5fd787"), disabled=True))
            yield options
            yield Label("enter open the violation's flow · esc close", classes="hint")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        text = self.result.violations[int(event.option.id[1:])]
        corr = self.session.flow_of_text(text)
        if corr is None:
            self.notify("no flow is named in this violation", severity="warning")
            return
        self.dismiss()
        self.app.post_message(FlowRequested(corr))

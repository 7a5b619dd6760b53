"""Order a fault for a live world: partition a link, take a system down,
slow a system's answers, crash the core."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from simulator import parse_duration

from ..steering import ChaosOrder

__all__ = ["ChaosScreen", "KINDS"]

KINDS = [
    ("partition the link core ⇄ system", "partition"),
    ("take a system down (outage)", "outage"),
    ("raise a system's latency (slow answers)", "slow"),
    ("crash a process (restarts at the end)", "crash"),
]


class ChaosScreen(ModalScreen[ChaosOrder | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, center: str, systems: list[str], kind: str = "partition", target: str | None = None) -> None:
        super().__init__()
        self.center = center
        self.systems = systems
        self.kind = kind
        self.target = target or (systems[0] if systems else center)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Chaos: inject a fault now", classes="dialog-title")
            yield Select(KINDS, value=self.kind, allow_blank=False, id="chaos-kind")
            yield Select(self._targets(self.kind), value=self.target, allow_blank=False, id="chaos-target")
            with Horizontal(id="chaos-times"):
                yield Input(value="1h", placeholder="for how long: 30m, 2h, 1d", id="chaos-duration")
                yield Input(value="45s", placeholder="extra delay per answer: 45s", id="chaos-delay")
            yield Label("", id="chaos-error", classes="error")
            yield Button("Inject", variant="error", id="chaos-go")
            yield Label("applied between two events; the trace records it · esc cancel", classes="hint")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self._delay_visible()
        self.query_one("#chaos-kind", Select).focus()

    def _targets(self, kind: str) -> list[tuple[str, str]]:
        if kind == "crash":
            return [(f"the sync {self.center}" if self.center == "core" else self.center, self.center)] + [
                (s, s) for s in self.systems]
        return [(s, s) for s in self.systems]

    def _delay_visible(self) -> None:
        self.query_one("#chaos-delay", Input).display = self.query_one("#chaos-kind", Select).value == "slow"

    @on(Select.Changed, "#chaos-kind")
    def _kind(self, event: Select.Changed) -> None:
        target = self.query_one("#chaos-target", Select)
        current = target.value
        options = self._targets(str(event.value))
        target.set_options(options)
        values = [v for _, v in options]
        target.value = current if current in values else values[0]
        self._delay_visible()

    @on(Button.Pressed, "#chaos-go")
    @on(Input.Submitted)
    def _go(self) -> None:
        kind = str(self.query_one("#chaos-kind", Select).value)
        target = str(self.query_one("#chaos-target", Select).value)
        try:
            duration = parse_duration(self.query_one("#chaos-duration", Input).value)
            delay = parse_duration(self.query_one("#chaos-delay", Input).value) if kind == "slow" else None
        except ValueError as exc:
            self.query_one("#chaos-error", Label).update(str(exc))
            return
        if duration <= 0:
            self.query_one("#chaos-error", Label).update("the fault must last longer than 0s")
            return
        self.dismiss(ChaosOrder(kind, target, duration, delay))

    def action_cancel(self) -> None:
        self.dismiss(None)

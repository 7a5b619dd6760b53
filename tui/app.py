"""The syncbed terminal UI: watch, steer and replay the flows.

`SyncbedApp` takes a `Source` -- a live world (`LiveSource`) or a recorded
trace (`ReplaySource`) -- and a `Session` folds what the source makes
visible. The source calls back from its own thread; the app coalesces those
calls into one message at a time and brings the session up to date on the
UI thread, then tells the screen on top. Every action is a key in the
footer and a command in the palette (ctrl+p).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from simulator import HOUR, MINUTE, SECOND

from .steering import ChaosOrder
from .messages import EventChosen, FlowRequested, SessionChanged
from .screens.chaos_screen import ChaosScreen
from .screens.flow_screen import FlowScreen
from .screens.help_screen import HelpScreen
from .screens.main_screen import MainScreen
from .screens.payload_screen import PayloadScreen
from .screens.seek_screen import SeekScreen
from .session import Session
from .sources import ReplaySource, Source

__all__ = ["SyncbedApp"]


class _SourceChanged(Message):
    """The source moved on (posted from any thread, at most one queued)."""


class SyncbedApp(App[int]):
    CSS_PATH = "syncbed.tcss"
    TITLE = "syncbed"
    BINDINGS = [
        Binding("space", "toggle", "Play"),
        Binding("full_stop", "step", "Step"),
        Binding("n", "next_business", "Next"),
        Binding("plus,equals_sign", "faster", "Fast", key_display="+"),
        Binding("minus", "slower", "Slow", key_display="-"),
        Binding("g", "seek", "Seek"),
        Binding("b", "step_back", "Back", show=False),
        Binding("f", "flows", "Flows"),
        Binding("x", "chaos", "Chaos"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.session = Session(source)
        self._pending = False
        self._closed = False
        kind = "live" if source.live else "replay"
        self.sub_title = f"{kind} · {source.header.get('scenario')} · seed {source.header.get('seed')}"

    # ------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.session))
        self.source.start(self._source_changed)
        self._ticker = None
        if isinstance(self.source, ReplaySource):
            self._ticker = self.set_interval(0.05, self.source.tick, pause=True)
        self._source_changed()

    def _source_changed(self) -> None:
        # Called by the simulation thread (or a timer): coalesce.
        if not self._pending:
            self._pending = True
            self.post_message(_SourceChanged())

    @on(_SourceChanged)
    def _catch_up(self) -> None:
        self._pending = False
        if self._ticker is not None:  # a replay moves on a timer only while it plays
            if self.source.status().mode == "playing":
                self._ticker.resume()
            else:
                self._ticker.pause()
        self.session.sync()
        self.screen.post_message(SessionChanged())

    def close_source(self) -> None:
        if not self._closed:
            self._closed = True
            self.source.close()

    def on_unmount(self) -> None:
        self.close_source()

    async def action_quit(self) -> None:
        self.close_source()
        self.exit(0)

    # ------------------------------------------------------------ transport

    def action_toggle(self) -> None:
        self.source.toggle()

    def action_step(self) -> None:
        self.source.step()

    def action_step_back(self) -> None:
        if isinstance(self.source, ReplaySource):
            self.source.step_back()
        else:
            self.notify("a live run only goes forward; replay its trace to go back", severity="warning")

    def action_next_business(self) -> None:
        self.source.next_business()

    def action_faster(self) -> None:
        self.source.faster()

    def action_slower(self) -> None:
        self.source.slower()

    def action_seek(self) -> None:
        def go(t: int | None) -> None:
            if t is not None:
                try:
                    self.source.seek(t)
                except ValueError as exc:
                    self.notify(str(exc), severity="warning")

        self.push_screen(SeekScreen(self.session), go)

    # ------------------------------------------------------------ views

    def action_flows(self) -> None:
        if not isinstance(self.screen, FlowScreen):
            self.push_screen(FlowScreen(self.session))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    @on(EventChosen)
    def _payload(self, event: EventChosen) -> None:
        self.push_screen(PayloadScreen(self.session, event.i))

    @on(FlowRequested)
    def _flow(self, event: FlowRequested) -> None:
        flows = self.session.flows
        what = event.what
        corr = what if flows.known(what) else None
        if corr is None:
            named = sorted(flows.by_key.get(what, ()))
            corr = named[0] if named else None
        if isinstance(self.screen, FlowScreen):
            self.screen.dismiss()
        self.push_screen(FlowScreen(self.session, corr, search="" if corr else what))

    # ------------------------------------------------------------ steering (live)

    def _steerable(self) -> bool:
        if not self.source.live:
            self.notify("a replay cannot be steered; run the world live to inject faults or replay queues",
                        severity="warning")
            return False
        return True

    def action_chaos(self) -> None:
        if self._steerable():
            self.push_screen(ChaosScreen(self.source.center, self.source.systems), self._inject)

    def action_chaos_now(self, kind: str, target: str, duration_us: int, delay_us: int = 0) -> None:
        if self._steerable():
            self._inject(ChaosOrder(kind, target, duration_us, delay_us or None))

    def _inject(self, order: ChaosOrder | None) -> None:
        if order is not None:
            self.source.inject(order)
            self.notify(f"{order.describe()} (applied between events)", title="chaos")

    def action_queue_action(self, queue: str, key: str) -> None:
        if not self._steerable():
            return
        if queue == "dlq":
            self.source.replay_dead_letter(key)
            self.notify(f"replaying dead letter {key}", title="DLQ")
        elif queue == "exceptions":
            self.source.retry_exception(key)
            self.notify(f"retrying {key}", title="exceptions")

    # ------------------------------------------------------------ the palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        act = self.run_action
        yield SystemCommand("Play / pause", "Start or stop virtual time", partial(act, "toggle"))
        yield SystemCommand("Step one event", "Let exactly one more event happen", partial(act, "step"))
        yield SystemCommand("Run to the next business event", "A record changed or the core decided",
                            partial(act, "next_business"))
        yield SystemCommand("Faster", "More virtual time per wall second", partial(act, "faster"))
        yield SystemCommand("Slower", "Less virtual time per wall second", partial(act, "slower"))
        yield SystemCommand("Seek to a date", "Go to a moment of the run", partial(act, "seek"))
        if not self.source.live:
            yield SystemCommand("Step back one event", "Replays go both ways", partial(act, "step_back"))
        yield SystemCommand("Flows", "Pick a deal, project, invoice or correlation id", partial(act, "flows"))
        yield SystemCommand("Help", "Keys, panels and the log filter", partial(act, "help"))
        yield SystemCommand("Filter the event log", "By system, kind, correlation id",
                            partial(self._main_action, "filter"))
        yield SystemCommand("Show the dead-letter queue", "Then r replays the selected item",
                            partial(self._main_action, "focus_dlq"))
        if self.source.live:
            yield SystemCommand("Replay the selected dead letter", "Back to the head of its aggregate, attempts reset",
                                partial(self._main_action, "act_on_queue('dlq')"))
            yield SystemCommand("Retry the selected exception", "Run its operation again",
                                partial(self._main_action, "act_on_queue('exceptions')"))
        if self.source.live:
            yield SystemCommand("Chaos…", "Choose a fault to inject now", partial(act, "chaos"))
            center = self.source.center
            for system in self.source.systems:
                yield SystemCommand(f"Chaos: partition {center} ⇄ {system} for 1h", "Messages both ways are dropped",
                                    partial(act, f"chaos_now('partition', {system!r}, {HOUR})"))
                yield SystemCommand(f"Chaos: take {system} down for 1h", "The system answers as if down",
                                    partial(act, f"chaos_now('outage', {system!r}, {HOUR})"))
                yield SystemCommand(f"Chaos: slow {system} by 45s for 1h", "Every answer comes 45s later",
                                    partial(act, f"chaos_now('slow', {system!r}, {HOUR}, {45 * SECOND})"))
            yield SystemCommand(f"Chaos: crash the {center} (restart after 1m)", "Volatile state lost, store kept",
                                partial(act, f"chaos_now('crash', {center!r}, {MINUTE})"))
        yield SystemCommand("Quit syncbed", "Stop the world and leave", partial(act, "quit"))

    async def _main_action(self, name: str) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, MainScreen):
            self.pop_screen()
        if isinstance(self.screen, MainScreen):
            await self.screen.run_action(name)

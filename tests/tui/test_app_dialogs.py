"""The keys and dialog paths the tour tests leave out: wrong input in the
seek and chaos dialogs, cancelling them, searching the flows, switching
focus, and what a live run says to "step back"."""

from textual.widgets import Input, Label, OptionList, Select

from tui.app import SyncbedApp
from tui.host import Mode
from tui.launch import build_app
from tui.screens.chaos_screen import ChaosScreen
from tui.screens.flow_screen import FlowScreen
from tui.screens.main_screen import MainScreen
from tui.screens.seek_screen import SeekScreen
from tui.sources import ReplaySource
from tui.trace_file import open_trace
from tui.widgets.event_table import EventTable
from tui.widgets.invariants import InvariantsPanel
from tui.widgets.sequence_diagram import SequenceDiagram

from .helpers import FIXTURES, SMALL_WORLD, enter_text, run, samples_from_json, wait_for


def _replay() -> SyncbedApp:
    samples = samples_from_json((FIXTURES / "small.samples.json").read_text())
    return SyncbedApp(ReplaySource(open_trace(FIXTURES / "small.jsonl"), samples=samples))


def _label(screen, selector) -> str:
    return str(screen.query_one(selector, Label).render())


def test_seek_says_what_it_takes_and_escape_changes_nothing():
    async def scenario():
        app = _replay()
        async with app.run_test(size=(100, 30)) as pilot:
            session = app.session
            await pilot.press("g")
            await enter_text(pilot, "next tuesday")
            assert isinstance(app.screen, SeekScreen)  # still asking
            assert "is not a moment" in _label(app.screen, "#seek-error")
            await enter_text(pilot, "2026-02-30")
            assert "day is out of range" in _label(app.screen, "#seek-error")
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen) and session.visible == 0
            await pilot.press("g")
            await enter_text(pilot, "day 1 01:00")
            await wait_for(pilot, lambda: session.status().t == 3_600_000_000)
            assert session.visible == app.source.index.count_until(3_600_000_000)
            await pilot.press("q")

    run(scenario())


def test_the_flow_search_tab_and_focus_keys():
    async def scenario():
        app = _replay()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("g")
            await enter_text(pilot, "day 9")
            await wait_for(pilot, lambda: app.session.status().finished)
            await pilot.press("i")
            assert isinstance(app.focused, InvariantsPanel)
            await pilot.press("l")
            assert isinstance(app.focused, EventTable)
            await pilot.press("f")
            assert isinstance(app.screen, FlowScreen)
            flows = app.screen.query_one("#flow-list", OptionList)
            everything = flows.option_count
            await pilot.press("slash")
            assert app.focused.id == "flow-search"
            await enter_text(pilot, "0P1000000000002")  # a deal's id, not its correlation id
            assert flows.option_count == 1 < everything
            assert app.screen.corr == "deal:0P1000000000002"
            diagram = app.screen.query_one(SequenceDiagram)
            assert diagram.has_focus and diagram.steps
            await pilot.press("tab")
            assert flows.has_focus
            await pilot.press("tab")
            assert diagram.has_focus
            await pilot.press("slash")
            await enter_text(pilot, "no-such-flow")
            assert flows.option_count == 1 and flows.get_option_at_index(0).disabled  # "no flow matches (yet)"
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            await pilot.press("q")

    run(scenario())


def test_a_live_run_refuses_to_go_back_and_the_chaos_dialog_checks_its_fields():
    async def scenario():
        app = build_app(SMALL_WORLD, seed=3)
        host = app.source.host
        said = []
        app.notify = lambda message, **kwargs: said.append(message)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: host.status.parked is not None)
            await pilot.press("b")
            assert said == ["a live run only goes forward; replay its trace to go back"]
            events = host.status.events
            await pilot.press("g")  # a live world cannot seek back
            await enter_text(pilot, "-1h")
            assert "that moment has passed" in _label(app.screen, "#seek-error")
            await pilot.press("escape")

            await pilot.press("x")
            dialog = app.screen
            assert isinstance(dialog, ChaosScreen)
            assert not dialog.query_one("#chaos-delay", Input).display  # only "slow" asks for a delay
            dialog.query_one("#chaos-kind", Select).value = "slow"
            await pilot.pause()
            assert dialog.query_one("#chaos-delay", Input).display
            dialog.query_one("#chaos-duration", Input).value = "an hour"
            await pilot.click("#chaos-go")
            assert isinstance(app.screen, ChaosScreen)
            assert "is not a duration" in _label(dialog, "#chaos-error")
            duration = dialog.query_one("#chaos-duration", Input)
            duration.value = "0s"
            duration.focus()
            await pilot.pause()
            await pilot.press("enter")  # enter in a field is "Inject" too
            assert "longer than 0s" in _label(dialog, "#chaos-error")
            dialog.query_one("#chaos-kind", Select).value = "crash"
            await pilot.pause()
            # the core can crash too (a Select refuses a value it does not offer)
            dialog.query_one("#chaos-target", Select).value = "core"
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            # nothing was ordered: the world is where it was, with no fault injected
            assert host.status.events == events and host.status.mode == Mode.PAUSED
            assert "chaos.inject" not in app.source.index.kind[app.source.host.first_seq:]
            await pilot.press("q")
        assert app.return_value == 0

    run(scenario())

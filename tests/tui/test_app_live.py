"""The app over a live world, driven through every panel and action."""

from textual.widgets import OptionList, Select

from tui.host import Mode
from tui.launch import build_app
from tui.screens.chaos_screen import ChaosScreen
from tui.screens.flow_screen import FlowScreen
from tui.screens.help_screen import HelpScreen
from tui.screens.invariant_screen import InvariantScreen
from tui.screens.main_screen import MainScreen
from tui.screens.payload_screen import PayloadScreen
from tui.screens.seek_screen import SeekScreen
from tui.widgets.clock_bar import ClockBar
from tui.widgets.event_log import EventLog
from tui.widgets.event_table import EventTable
from tui.widgets.invariants import InvariantsPanel
from tui.widgets.queues import QueuesPanel
from tui.widgets.sequence_diagram import SequenceDiagram

from .helpers import DLQ_CORE, SMALL_WORLD, run, wait_for, enter_text


def test_watch_step_play_seek_filter_open_payloads_and_flows_inject_chaos_and_quit():
    async def scenario():
        app = build_app(SMALL_WORLD, seed=3)
        source = app.source
        async with app.run_test(size=(100, 30)) as pilot:
            status = lambda: source.host.status
            await wait_for(pilot, lambda: status().parked is not None, what="the world to start paused")
            assert isinstance(app.screen, MainScreen)
            clock = app.screen.query_one(ClockBar)
            assert "LIVE" in str(clock.render()) and "paused" in str(clock.render())

            # step one event, then to the next business event
            before = status().events
            await pilot.press("full_stop")
            await wait_for(pilot, lambda: status().events == before + 1 and status().parked)
            await pilot.press("n")
            await wait_for(pilot, lambda: status().parked and status().note.startswith("business event"))

            # slower, play, pause, faster
            await pilot.press("minus")
            await wait_for(pilot, lambda: status().speed == "10m/s")
            await pilot.press("space")
            await wait_for(pilot, lambda: status().mode == Mode.PLAYING)
            await pilot.press("space")
            await wait_for(pilot, lambda: status().parked and status().mode == Mode.PAUSED)
            for _ in range(4):
                await pilot.press("plus")
            await wait_for(pilot, lambda: status().speed == "max")
            await pilot.press("minus")
            await wait_for(pilot, lambda: status().speed == "1d/s")

            # seek forward ten minutes
            t0 = status().t
            await pilot.press("g")
            assert isinstance(app.screen, SeekScreen)
            await enter_text(pilot, "+10m")
            await wait_for(pilot, lambda: status().parked and status().note.startswith("arrived"))
            assert status().t == t0 + 600_000_000
            await wait_for(pilot, lambda: "arrived" in str(clock.render()), what="the clock bar to say so")

            # chaos from the dialog: partition core <-> erp
            await pilot.press("x")
            assert isinstance(app.screen, ChaosScreen)
            app.screen.query_one("#chaos-target", Select).value = "erp"
            await pilot.click("#chaos-go")
            await wait_for(pilot, lambda: app.session.topology().link("core", "erp").partitioned_until is not None,
                           what="the partition to show")
            # ... and from the palette: billing down, then crash the core
            for words, check in (
                ("take bil", lambda: app.session.topology().node("billing").outage is not None),
                ("crash", lambda: "fault.crash" in source.index.kind[: app.session.visible]),
            ):
                await pilot.press("ctrl+p")
                await pilot.press(*words)
                await wait_for(pilot, lambda: app.screen.query(OptionList) and app.screen.query_one(OptionList).option_count)
                await pilot.press("enter")
                if words == "crash":
                    await pilot.press("full_stop")
                await wait_for(pilot, check, what=words)
            await pilot.press("full_stop")
            await wait_for(pilot, lambda: app.session.topology().node("core").state == "crashed")

            # the event log: filter, open a payload
            await pilot.press("slash")
            await enter_text(pilot, "kind:chaos")
            log = app.screen.query_one(EventLog)
            await wait_for(pilot, lambda: log.filter.text == "kind:chaos")
            table = app.screen.query_one(EventTable)
            assert all(source.index.kind[i] == "chaos.inject" for i in table.rows)
            ours = [source.index.facts[i]["w"] for i in table.rows[-2:]]  # the script injects its own too
            assert [(w["kind"], w.get("between") or w.get("target")) for w in ours] == [
                ("partition", ["core", "erp"]), ("outage", "billing")]
            assert table.has_focus
            await pilot.press("enter")
            assert isinstance(app.screen, PayloadScreen) and app.screen.row.kind == "chaos.inject"
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)

            # run to the end; the verdict
            await pilot.press("plus", "space")
            await wait_for(pilot, lambda: status().finished, timeout=60, what="the run to finish")
            await pilot.pause()
            panel = app.screen.query_one(InvariantsPanel)
            await wait_for(pilot, lambda: "verdict" in str(panel.border_title))

            # help, flows, a flow's payload
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("f")
            assert isinstance(app.screen, FlowScreen)
            flows = app.screen.query_one("#flow-list", OptionList)
            await wait_for(pilot, lambda: flows.option_count > 0)
            await pilot.press("enter")
            diagram = app.screen.query_one(SequenceDiagram)
            await wait_for(pilot, lambda: diagram.steps and diagram.has_focus)
            assert app.screen.corr and app.screen.corr.startswith("deal:")
            await pilot.press("down", "enter")
            assert isinstance(app.screen, PayloadScreen)
            assert app.screen.i == diagram.steps[1].i
            await pilot.press("f")  # from the payload to its flow
            await wait_for(pilot, lambda: isinstance(app.screen, FlowScreen))
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            await pilot.press("q")
        assert app.return_value == 0
        assert not source.host._thread.is_alive()

    run(scenario())


def test_replay_a_dead_letter_from_the_queues_and_follow_a_failed_invariant_to_its_flow():
    async def scenario():
        app = build_app(SMALL_WORLD, seed=3, core=DLQ_CORE)
        source = app.source
        async with app.run_test(size=(100, 30)) as pilot:
            status = lambda: source.host.status
            await wait_for(pilot, lambda: status().parked is not None)
            await pilot.press("plus", "plus", "plus", "space")
            await wait_for(pilot, lambda: status().finished, timeout=60)
            queues = app.screen.query_one(QueuesPanel)
            await wait_for(pilot, lambda: [q.key for q in queues.items["dlq"]] == ["ob00000001"])
            await pilot.press("d")
            assert queues.active == "dlq"
            await pilot.press("r")
            await wait_for(pilot, lambda: status().note.startswith("settled"), what="the replay to settle")
            await wait_for(pilot, lambda: queues.items["dlq"] == [])
            assert "core.op.done" in source.index.kind
            # the exception, retried from the command palette
            assert [q.key for q in queues.items["exceptions"]] == ["finance:ob00000002"]
            await pilot.press("ctrl+p", *"retry the sel")
            await wait_for(pilot, lambda: app.screen.query(OptionList) and app.screen.query_one(OptionList).option_count)
            await pilot.press("enter")
            await wait_for(pilot, lambda: queues.items["exceptions"] == [], what="the retry to settle")
            assert queues.active == "exceptions"
            assert [source.index.corr[i] for i, k in enumerate(source.index.kind) if k == "core.op.done"] == [
                "ping:1", "post:1"]

            # a failing invariant leads to the flow its violation names
            panel = app.screen.query_one(InvariantsPanel)
            failing = next(k for k, r in enumerate(panel.results) if r.ok is False)
            await pilot.press("i")
            panel.highlighted = next(n for n in range(panel.option_count)
                                     if panel.get_option_at_index(n).id == f"inv-{failing}")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, FlowScreen))
            assert app.screen.corr.startswith("deal:0P1")
            assert app.screen.query_one(SequenceDiagram).steps  # the deal closing in the CRM, and nothing else
            await pilot.press("escape")
            # an invariant that holds opens its details
            holding = next(k for k, r in enumerate(panel.results) if r.ok)
            panel.highlighted = next(n for n in range(panel.option_count)
                                     if panel.get_option_at_index(n).id == f"inv-{holding}")
            panel.focus()
            await pilot.press("enter")
            assert isinstance(app.screen, InvariantScreen)
            await pilot.press("escape")
            await pilot.press("q")
        assert app.return_value == 0

    run(scenario())

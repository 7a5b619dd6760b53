"""Replaying a trace shows the flows and the invariant verdict of the run
that wrote it; a replay goes back as well as forward."""

import threading
import time

import pytest

from harness.runner import run_world
from tui.flow_index import journey
from tui.host import Mode
from tui.launch import build_app
from tui.screens.flow_screen import FlowScreen
from tui.session import Session
from tui.sources import LiveSource
from tui.widgets.invariants import InvariantsPanel
from tui.widgets.sequence_diagram import SequenceDiagram
from tui.world_plan import plan_live

from .helpers import SMALL_WORLD, run, wait_for, enter_text


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "small.jsonl"
    report = run_world(SMALL_WORLD, 3, None, str(path))
    return path, report


@pytest.fixture(scope="module")
def live_session(tmp_path_factory):
    """The same world run live (unsteered) to its end, as the UI folds it."""
    changed = threading.Event()
    source = LiveSource(plan_live(SMALL_WORLD, 3, None, None), spool_dir=tmp_path_factory.mktemp("live"), speed=7)
    source.start(changed.set)
    source.play()
    deadline = time.monotonic() + 60
    while not source.host.status.finished:
        assert time.monotonic() < deadline, "the live run did not finish"
        changed.wait(0.05)
        changed.clear()
    session = Session(source)
    session.sync()
    yield session
    source.close()


def _flows(session):
    return [(f.corr, f.events, f.systems) for f in session.flows.search("", session.index, session.visible)]


def test_a_replay_shows_the_recorded_runs_flows_and_verdict(recorded, live_session):
    path, report = recorded

    async def scenario():
        app = build_app(trace=str(path))
        async with app.run_test(size=(100, 30)) as pilot:
            session = app.session
            await wait_for(pilot, lambda: session.verification().state == "matched", timeout=60,
                           what="the re-run to match the trace")
            await pilot.press("g")
            await enter_text(pilot, "day 9")  # past the end: the end
            await wait_for(pilot, lambda: session.status().finished)
            panel = app.screen.query_one(InvariantsPanel)
            await wait_for(pilot, lambda: "verdict" in str(panel.border_title))
            shown = [(r.name, r.ok) for r in panel.results]
            assert shown == [(i["name"], i["ok"]) for i in report["invariants"]]
            assert _flows(session) == _flows(live_session)
            # the same journey, row for row, in the flow view
            corr = _flows(session)[0][0]
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FlowScreen))
            await pilot.press("enter")
            diagram = app.screen.query_one(SequenceDiagram)
            await wait_for(pilot, lambda: diagram.steps)
            assert app.screen.corr == corr
            live = journey(live_session.index, live_session.flows.event_ids(corr, live_session.visible))
            assert ([(s.t, s.kind, s.label) for s in diagram.steps], diagram.participants) == (
                [(s.t, s.kind, s.label) for s in live[1]], live[0])
            await pilot.press("escape", "q")

    run(scenario())


def test_a_replay_seeks_back_and_forth_and_cannot_be_steered(recorded):
    path, _ = recorded

    async def scenario():
        app = build_app(trace=str(path), verify=False)
        async with app.run_test(size=(100, 30)) as pilot:
            session = app.session
            await pilot.press("n")
            await wait_for(pilot, lambda: session.status().note.startswith("business event"))
            assert session.visible > 0
            await pilot.press("g")
            await enter_text(pilot, "day 9")
            await wait_for(pilot, lambda: session.status().finished)
            end = session.visible
            assert session.topology().faults == ()  # healed at the end
            # back into the partition window (00:30 to 01:30 on day 1)
            await pilot.press("g")
            await enter_text(pilot, "day 1 00:45")
            await wait_for(pilot, lambda: session.visible < end)
            topology = session.topology()
            assert topology.link("core", "erp").partitioned_until is not None
            assert topology.node("billing").outage is not None
            here = session.visible
            await pilot.press("b")
            await wait_for(pilot, lambda: session.visible == here - 1)
            await pilot.press("full_stop", "full_stop")
            await wait_for(pilot, lambda: session.visible == here + 1)
            # play at full speed to the end
            for _ in range(4):
                await pilot.press("plus")
            await pilot.press("space")
            await wait_for(pilot, lambda: session.status().mode == Mode.PLAYING or session.status().finished)
            await wait_for(pilot, lambda: session.status().finished, timeout=30)
            assert session.visible == end
            await pilot.press("x")  # a replay cannot be steered
            assert not app.screen.query("#chaos-go")
            await pilot.press("q")

    run(scenario())

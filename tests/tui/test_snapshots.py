"""Visual regressions: SVG screenshots compared with reviewed expectations.

The scenes replay a trace recorded once (tests/tui/fixtures/small.jsonl)
with the world samples recorded alongside it, so they do not move when the
fakes or the core change. To regenerate after a deliberate change, run

    SYNCBED_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/tui/test_snapshots.py

then look at every changed SVG under tests/tui/snapshots/ before committing.
(With SYNCBED_UPDATE_SNAPSHOTS=fixtures the trace and samples are recorded
again from the current code first.)
"""

import os
import threading

import pytest

from harness.runner import run_world
from tui.app import SyncbedApp
from tui.host import Mode, WorldHost
from tui.screens.flow_screen import FlowScreen
from tui.sources import ReplaySource
from tui.trace_file import open_trace
from tui.widgets.sequence_diagram import SequenceDiagram
from tui.world_plan import plan_live

from .helpers import FIXTURES, SMALL_WORLD, SNAPSHOTS, run, samples_from_json, samples_to_json, wait_for, enter_text

UPDATE = os.environ.get("SYNCBED_UPDATE_SNAPSHOTS", "")
TRACE = FIXTURES / "small.jsonl"
SAMPLES = FIXTURES / "small.samples.json"


def _record_fixtures() -> None:
    run_world(SMALL_WORLD, 3, None, str(TRACE))
    changed = threading.Event()
    host = WorldHost(plan_live(SMALL_WORLD, 3, None, None), on_update=changed.set, mode=Mode.PLAYING, speed=7)
    host.start()
    while not host.status.finished:
        changed.wait(0.05)
        changed.clear()
    host.stop()
    SAMPLES.write_text(samples_to_json(host.samples) + "\n")


if UPDATE == "fixtures":
    _record_fixtures()


@pytest.fixture(autouse=True)
def _colours(monkeypatch):
    # The expectations are in colour; a NO_COLOR in the environment would
    # (rightly) make Textual draw in monochrome.
    monkeypatch.delenv("NO_COLOR", raising=False)


def _app() -> SyncbedApp:
    return SyncbedApp(ReplaySource(open_trace(TRACE), samples=samples_from_json(SAMPLES.read_text())))


def _compare(name: str, svg: str) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no expected screenshot {path}; run with SYNCBED_UPDATE_SNAPSHOTS=1 and review it")
        path.write_text(svg)
        return
    expected = path.read_text()
    if svg != expected:
        got = path.with_suffix(".actual.svg")
        got.write_text(svg)
        pytest.fail(f"{name} looks different from {path}; see {got} (regenerate with SYNCBED_UPDATE_SNAPSHOTS=1 "
                    "if the change is intended)")


async def _settle(pilot):
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("size", [(100, 30), (160, 45)])
def test_main_screen_during_the_partition_and_the_outage(size):
    async def scenario():
        app = _app()
        async with app.run_test(size=size) as pilot:
            await pilot.press("g")
            await enter_text(pilot, "day 1 00:50")
            await wait_for(pilot, lambda: app.session.topology().faults)
            await _settle(pilot)
            _compare(f"main_{size[0]}x{size[1]}", app.export_screenshot())
            await pilot.press("q")

    run(scenario())


def test_main_screen_at_the_end():
    async def scenario():
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("g")
            await enter_text(pilot, "day 9")
            await wait_for(pilot, lambda: app.session.status().finished)
            await _settle(pilot)
            _compare("main_end_100x30", app.export_screenshot())
            await pilot.press("q")

    run(scenario())


def test_flow_view():
    async def scenario():
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("g")
            await enter_text(pilot, "day 9")
            await wait_for(pilot, lambda: app.session.status().finished)
            await pilot.press("f", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, FlowScreen) and app.screen.query_one(SequenceDiagram).steps)
            app.screen.query_one(SequenceDiagram).cursor = 8
            await _settle(pilot)
            _compare("flow_100x30", app.export_screenshot())
            await pilot.press("escape", "q")

    run(scenario())

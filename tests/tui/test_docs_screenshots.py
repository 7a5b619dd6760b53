"""The screenshots in docs/screenshots/, taken from a live quote-to-cash run.

Not a regression test (the world they show changes as the core grows):
run it to refresh the pictures, then look at them::

    SYNCBED_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest tests/tui/test_docs_screenshots.py
"""

import os

import pytest

from simulator import HOUR
from tui.launch import build_app
from tui.screens.flow_screen import FlowScreen
from tui.widgets.sequence_diagram import SequenceDiagram

from .helpers import ROOT, enter_text, run, wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("SYNCBED_DOCS_SCREENSHOTS"),
                                reason="set SYNCBED_DOCS_SCREENSHOTS=1 to refresh docs/screenshots/")

OUT = ROOT / "docs" / "screenshots"
SIZE = (140, 42)


async def _settle(pilot):
    """Let the screen catch up with the world and draw it."""
    app = pilot.app
    await wait_for(pilot, lambda: app.session.visible == app.source.host.status.events, what="the screen to catch up")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def test_refresh_the_documentation_screenshots():
    async def scenario():
        app = build_app("quote-to-cash", seed=1)
        host = app.source.host
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: host.status.parked is not None)
            await pilot.press("g")
            await enter_text(pilot, "2026-01-02 09:00")
            for _ in range(3):
                await pilot.press("plus")
            await wait_for(pilot, lambda: host.status.parked and host.status.note.startswith("arrived"), timeout=120)
            app.action_chaos_now("partition", "erp", 2 * HOUR)
            app.action_chaos_now("outage", "billing", 2 * HOUR)
            app.action_chaos_now("slow", "psa", 2 * HOUR, 45_000_000)
            await pilot.press("g")
            await enter_text(pilot, "+40m")
            await wait_for(pilot, lambda: host.status.parked and host.status.note.startswith("arrived"), timeout=120)
            await _settle(pilot)
            OUT.joinpath("main.svg").write_text(app.export_screenshot(title="syncbed tui quote-to-cash --seed 1"))
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FlowScreen))
            await pilot.press("enter")
            diagram = app.screen.query_one(SequenceDiagram)
            await wait_for(pilot, lambda: diagram.steps)
            diagram.cursor = 12
            await _settle(pilot)
            OUT.joinpath("flow.svg").write_text(app.export_screenshot(title="syncbed tui: the flow of a deal"))
            await pilot.press("escape", "q")

    run(scenario())

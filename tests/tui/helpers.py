"""Shared by the TUI tests: paths, waiting on the app, fixture samples."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import attrs

from tui.samples import InvariantResult, QueueItem, WorldSample

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SMALL_WORLD = str(HERE / "small_world.py")
DLQ_CORE = f"{HERE / 'dlq_core.py'}:build"
FIXTURES = HERE / "fixtures"
SNAPSHOTS = HERE / "snapshots"


async def wait_for(pilot, condition, timeout: float = 30.0, what: str = "the app") -> None:
    """Let the app work until `condition()` holds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def enter_text(pilot, value: str) -> None:
    """Put `value` in the focused input and submit it (typing a long value
    key by key only makes a test slower)."""
    pilot.app.focused.value = value
    await pilot.press("enter")


def run(coro):
    """Textual tests are plain sync tests running their own asyncio loop
    (pytest-trio's trio mode stays off)."""
    return asyncio.run(coro)


def samples_to_json(samples: list[WorldSample]) -> str:
    return json.dumps([attrs.asdict(s, recurse=True) for s in samples], indent=1, sort_keys=True)


def samples_from_json(text: str) -> list[WorldSample]:
    out = []
    for d in json.loads(text):
        out.append(WorldSample(
            t=d["t"], final=d["final"],
            invariants=tuple(InvariantResult(i["name"], i["ok"], tuple(i["violations"])) for i in d["invariants"]),
            kpis=tuple((k, v) for k, v in d["kpis"]),
            queues=tuple(QueueItem(**q) for q in d["queues"]),
            error=d["error"],
        ))
    return out

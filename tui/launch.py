"""From command-line arguments to a ready app, or one clear error.

Everything that can be wrong with the input is found here, before the UI
takes the terminal: an unknown scenario or chaos profile, a core that does
not import, a trace file that is missing, cut short, edited or not a trace
at all. Each raises the harness's `InputError` (exit status 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.runner import InputError
from simulator import TraceError

from .app import SyncbedApp
from .sources import LiveSource, ReplaySource
from .trace_file import open_trace
from .world_plan import plan_live

__all__ = ["build_app", "DEFAULT_TUI_SCENARIO"]

DEFAULT_TUI_SCENARIO = "quote-to-cash"
_BIG = 50_000_000  # bytes: say how far the reading has got


def build_app(
    scenario: str | None = None,
    *,
    seed: int = 0,
    chaos: str | None = None,
    core: str | None = None,
    trace: str | None = None,
    verify: bool = True,
) -> SyncbedApp:
    if trace is not None:
        if scenario is not None or chaos is not None or core is not None or seed:
            raise InputError(
                "--trace replays a recorded run, whose scenario, seed, chaos and core are in the file; "
                "give either --trace FILE or a SCENARIO with --seed/--chaos/--core"
            )
        return SyncbedApp(ReplaySource(_read(trace), verify=verify))
    plan = plan_live(scenario or DEFAULT_TUI_SCENARIO, seed, chaos, core)
    return SyncbedApp(LiveSource(plan))


def _read(path: str):
    big = Path(path).is_file() and Path(path).stat().st_size > _BIG

    def progress(share: float) -> None:
        print(f"\rsyncbed tui: reading {path}: {share:4.0%}", end="", file=sys.stderr, flush=True)

    try:
        trace = open_trace(path, progress if big else None)
    except TraceError as exc:
        if big:
            print(file=sys.stderr)
        raise InputError(str(exc)) from None
    if big:
        print(file=sys.stderr)
    return trace

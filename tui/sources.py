"""What the UI watches: a live world, or a recorded trace.

Both give the screens the same things -- the events visible now (an
`EventIndex` and a count), the virtual time, world samples, a clock status
-- and take the same transport controls. A live run moves forward only and
can be steered (chaos, queue actions); a replay moves both ways over the
file, and re-runs the recorded world in the background to know its
invariants, KPIs and queues at every moment, checking as it goes that the
re-run writes the very same events.
"""

from __future__ import annotations

import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

import attrs

from .event_index import EventIndex, is_business
from .host import DEFAULT_SPEED, SPEEDS, HostStatus, Mode, WorldHost
from .steering import ChaosOrder
from .samples import WorldSample
from .trace_file import TraceFile
from .virtual_time import RunClock
from .world_plan import WorldPlan, layout_of, plan_rerun

__all__ = ["Source", "LiveSource", "ReplaySource", "ClockStatus", "Verification"]

REPLAY_MAX_STEP = 5_000  # events a "max" replay tick moves


@attrs.frozen
class ClockStatus:
    """The clock bar's data."""

    live: bool
    t: int
    events: int
    total: int | None  # a replay's length
    mode: str
    speed: str
    finished: bool
    note: str = ""
    error: str | None = None


@attrs.frozen
class Verification:
    state: str  # running | matched | diverged | unavailable
    detail: str = ""


class Source:
    """The protocol both sources follow (a base class only for its docs)."""

    live: bool
    index: EventIndex
    header: dict
    clock: RunClock
    center: str
    systems: list[str]

    def start(self, on_change: Callable[[], None]) -> None: ...
    def close(self) -> None: ...
    def visible(self) -> int: ...
    def now_us(self) -> int: ...
    def status(self) -> ClockStatus: ...
    def samples(self) -> list[WorldSample]: ...
    def verification(self) -> Verification | None: ...
    def toggle(self) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def step(self) -> None: ...
    def next_business(self) -> None: ...
    def seek(self, t_us: int) -> None: ...
    def faster(self) -> None: ...
    def slower(self) -> None: ...

    def sample(self) -> WorldSample | None:
        found = self.samples()
        return found[-1] if found else None


class LiveSource(Source):
    """A world running now, in the simulation thread."""

    live = True

    def __init__(self, plan: WorldPlan, *, spool_dir: Path | None = None, speed: int = DEFAULT_SPEED) -> None:
        self.plan = plan
        self._tmp = None
        if spool_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="syncbed-tui-")
            spool_dir = Path(self._tmp.name)
        self.spool = Path(spool_dir) / "live-trace.jsonl"
        self._on_change: Callable[[], None] = lambda: None
        self.host = WorldHost(plan, spool=self.spool, on_update=self._changed, speed=speed)
        self.index = self.host.index
        self.header = self.host.header
        self.clock = RunClock(self.header)
        self.center = plan.center
        self.systems = plan.systems

    def _changed(self) -> None:
        self._on_change()

    def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.host.start()

    def close(self) -> None:
        self.host.stop()
        if self._tmp is not None and not self.host._thread.is_alive():
            self._tmp.cleanup()

    @property
    def host_status(self) -> HostStatus:
        return self.host.status

    def visible(self) -> int:
        return self.host.status.events

    def now_us(self) -> int:
        return self.host.status.t

    def status(self) -> ClockStatus:
        s = self.host.status
        mode = s.mode if s.started else "starting"
        return ClockStatus(True, s.t, s.events, None, mode, s.speed, s.finished, s.note, s.error)

    def samples(self) -> list[WorldSample]:
        return self.host.samples[: self.host.status.samples]

    def verification(self) -> Verification | None:
        return None

    def toggle(self) -> None:
        if self.host.status.mode == Mode.PAUSED:
            self.host.play()
        else:
            self.host.pause()

    def play(self) -> None:
        self.host.play()

    def pause(self) -> None:
        self.host.pause()

    def step(self) -> None:
        self.host.step()

    def next_business(self) -> None:
        self.host.next_business()

    def seek(self, t_us: int) -> None:
        self.host.seek(t_us)

    def faster(self) -> None:
        self.host.faster()

    def slower(self) -> None:
        self.host.slower()

    # ------------------------------------------------------------ steering

    def inject(self, order: ChaosOrder) -> None:
        self.host.inject(order)

    def replay_dead_letter(self, msg_id: str) -> None:
        self.host.replay_dead_letter(msg_id)

    def retry_exception(self, key: str) -> None:
        self.host.retry_exception(key)


class ReplaySource(Source):
    """A recorded trace, played back over its index; the recorded world is
    re-run in the background for its invariants, KPIs and queues."""

    live = False

    def __init__(self, trace: TraceFile, *, verify: bool = True, samples: list[WorldSample] | None = None) -> None:
        self.trace = trace
        self.index = trace.index
        self.header = trace.header
        self.clock = RunClock(self.header)
        self.center, self.systems = layout_of(self.header)
        self._cursor = 0
        self._now = 0
        self._mode = Mode.PAUSED
        self._speed = DEFAULT_SPEED
        self._note = f"replaying {trace.path.name}: {len(self.index)} events"
        self._on_change: Callable[[], None] = lambda: None
        self._given_samples = samples
        self._rerun: WorldHost | None = None
        self._verify = verify
        self._compared = 0
        if samples is not None:
            self._verdict = Verification("supplied", "the world's samples were given with the trace")
        elif not verify:
            self._verdict = Verification("unavailable", "not checked: the recorded world is not re-run")
        else:
            self._verdict = Verification("running")
        self._last_tick = time.monotonic()

    # ------------------------------------------------------------ lifecycle

    def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        if not self._verify or self._given_samples is not None:
            return
        try:
            plan = plan_rerun(self.header, f"trace file {self.trace.path}")
            self._rerun = WorldHost(plan, on_update=self._rerun_changed, mode=Mode.PLAYING, speed=len(SPEEDS) - 1)
        except Exception as exc:  # InputError, or a core that will not load
            self._verdict = Verification("unavailable", f"the recorded world cannot be re-run: {exc}")
            return
        self._rerun.start()

    def _rerun_changed(self) -> None:
        host = self._rerun
        status = host.status
        if status.finished and self._verdict.state == "running":
            if status.fingerprint == self.trace.fingerprint:
                self._verdict = Verification("matched", f"re-run wrote the same trace (sha256 {status.fingerprint[:12]}…)")
            else:
                self._verdict = Verification(
                    "diverged",
                    "the re-run wrote a different trace (was the run steered live, or has the code changed?); "
                    "invariants and KPIs shown are the re-run's",
                )
            host.stop(timeout=0)
        elif status.error and self._verdict.state == "running":
            self._verdict = Verification("unavailable", f"re-run failed: {status.error}")
        self._on_change()

    def close(self) -> None:
        if self._rerun is not None:
            self._rerun.stop()

    # ------------------------------------------------------------ reading

    def visible(self) -> int:
        return self._cursor

    def now_us(self) -> int:
        return self._now

    def status(self) -> ClockStatus:
        finished = self._cursor >= len(self.index)
        return ClockStatus(False, self._now, self._cursor, len(self.index), self._mode, SPEEDS[self._speed][1],
                           finished, self._note, None)

    def samples(self) -> list[WorldSample]:
        if self._given_samples is not None:
            pool = self._given_samples
        elif self._rerun is not None:
            pool = self._rerun.samples[: self._rerun.status.samples]
        else:
            return []
        if self._cursor >= len(self.index) and pool and pool[-1].final:
            return list(pool)  # the end of the recording: the run's verdict
        n = bisect_right([s.t for s in pool], self._now)
        return list(pool[:n])

    def verification(self) -> Verification:
        self._compare()
        return self._verdict

    def _compare(self) -> None:
        """Check the re-run's events against the file's, as far as both go."""
        host = self._rerun
        if host is None or self._verdict.state not in ("running", "matched"):
            return
        mine, theirs = host.index, self.index
        base = host.first_seq  # the re-run's index starts after the build's events
        upto = min(host.status.events, len(theirs) - base)
        for i in range(self._compared, upto):
            a, b = mine.row(i), theirs.row(i + base)
            if a[1:6] != b[1:6]:
                def said(r):
                    return f"{r.kind} {r.src or ''}→{r.dst or ''} at {self.clock.stamp(r.t)}"

                self._verdict = Verification(
                    "diverged",
                    f"the re-run differs from the trace at event {i + base + 1}: the file has {said(b)}, "
                    f"the re-run {said(a)} (has the code changed since?); invariants and KPIs shown are the re-run's",
                )
                return
        self._compared = max(self._compared, upto)

    # ------------------------------------------------------------ transport

    def _go(self, cursor: int, now: int | None = None) -> None:
        n = len(self.index)
        self._cursor = max(0, min(n, cursor))
        if now is None:
            now = self.index.t[self._cursor - 1] if self._cursor else 0
        self._now = now
        if self._cursor >= n and self._mode != Mode.PAUSED:
            self._mode = Mode.PAUSED
            self._note = "end of the recording"
        self._on_change()

    def toggle(self) -> None:
        self.pause() if self._mode == Mode.PLAYING else self.play()

    def play(self) -> None:
        if self._cursor >= len(self.index):
            self._note = "end of the recording; seek back to play again"
        else:
            self._mode = Mode.PLAYING
            self._note = ""
            self._last_tick = time.monotonic()
        self._on_change()

    def pause(self) -> None:
        self._mode = Mode.PAUSED
        self._note = "paused"
        self._on_change()

    def step(self) -> None:
        self._mode = Mode.PAUSED
        self._note = f"stepped to event {min(len(self.index), self._cursor + 1)}"
        self._go(self._cursor + 1)

    def step_back(self) -> None:
        self._mode = Mode.PAUSED
        self._note = f"back to event {max(0, self._cursor - 1)}"
        self._go(self._cursor - 1)

    def next_business(self) -> None:
        self._mode = Mode.PAUSED
        kinds = self.index.kind
        for i in range(self._cursor, len(self.index)):
            if is_business(kinds[i]):
                self._note = f"business event: {kinds[i]}"
                self._go(i + 1)
                return
        self._note = "no business event after this one"
        self._go(len(self.index))

    def seek(self, t_us: int) -> None:
        self._mode = Mode.PAUSED
        end = self.index.t[-1] if len(self.index) else 0
        t_us = max(0, min(t_us, end))
        self._note = "arrived"
        self._go(self.index.count_until(t_us), t_us)

    def faster(self) -> None:
        self._speed = min(len(SPEEDS) - 1, self._speed + 1)
        self._on_change()

    def slower(self) -> None:
        self._speed = max(0, self._speed - 1)
        self._on_change()

    def tick(self) -> None:
        """Move a playing replay on by the wall time since the last tick
        (the app calls this from a timer)."""
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        if self._mode != Mode.PLAYING:
            return
        speed = SPEEDS[self._speed][0]
        if speed is None:
            self._go(self._cursor + REPLAY_MAX_STEP)
            return
        target = self._now + int(min(dt, 0.5) * speed)
        self._go(self.index.count_until(target), min(target, self.index.t[-1]) if len(self.index) else 0)

"""The simulation thread: one world, run under the UI's hand.

Textual runs on asyncio in the main thread; a world runs on trio, so it
runs here, in ``trio.run`` on a thread of its own. The two share nothing
mutable but this object's gate, a `threading.Condition`:

  * the UI *sets* the gate -- play, pause, step, run to the next business
    event, seek, speed -- and *submits* commands (chaos, replaying a dead
    letter), never touching the world;
  * the simulation *obeys* the gate at two points:

      after each trace event   (the observer): stepping counts events here,
                               pacing holds the world here until wall time
                               catches up with the speed, and a pause stops
                               on the exact event;
      before time moves        (the clock): trio asks the clock how long to
                               sleep exactly when no task can run; here the
                               world is between events with no transaction
                               open, so this is where commands run, where
                               samples of the world are taken, and where a
                               pause waits for real I/O -- which
                               ``trio.from_thread`` (``TrioToken.run_sync_soon``)
                               interrupts to wake it;

  * the UI reads only what the simulation publishes: `HostStatus` (an
    immutable snapshot swapped atomically), the append-only `EventIndex`
    and `WorldSample` list, and the trace spool file.

Pausing never changes what the world does. The clock only delays the
moment trio moves virtual time, or stops it short at a time where nothing
happens (a seek's target, paced play through a quiet hour), and a wake-up
is sent only while the world
waits at the clock with no task runnable, when trio's scheduler has nothing
to shuffle -- so an unsteered live run writes the same trace as
``syncbed run``, byte for byte (tests/tui/test_host.py holds this).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from simulator import DAY, HOUR, MINUTE, SECOND
from simulator.clock import seconds_to_us

from .event_index import EventIndex, is_business
from .samples import WorldSample, sample_world
from .steering import ChaosOrder, chaos_window, operator_action
from .world_plan import WorldPlan

__all__ = ["WorldHost", "HostStatus", "SPEEDS", "Mode"]

PARK_S = 3600.0  # a pause waits for I/O this long at most (a wake-up ends it)
PUBLISH_EVERY_S = 0.05
TICK_S = 0.1  # paced play moves the clock through a quiet stretch this often
SAMPLE_EVERY_US = 15 * MINUTE
SAMPLE_MIN_GAP_S = 0.2

# Virtual time per wall second; None is "as fast as it goes".
SPEEDS: list[tuple[int | None, str]] = [
    (SECOND, "1s/s"), (10 * SECOND, "10s/s"), (MINUTE, "1m/s"), (10 * MINUTE, "10m/s"),
    (HOUR, "1h/s"), (6 * HOUR, "6h/s"), (DAY, "1d/s"), (None, "max"),
]
DEFAULT_SPEED = 4


class Mode:
    PAUSED = "paused"
    PLAYING = "playing"
    STEP = "stepping"
    UNTIL = "seeking"


@attrs.frozen
class HostStatus:
    t: int = 0
    events: int = 0
    samples: int = 0
    mode: str = Mode.PAUSED
    speed: str = SPEEDS[DEFAULT_SPEED][1]
    parked: str | None = None  # "event" | "clock" while waiting for the UI
    started: bool = False
    finished: bool = False
    ended: bool = False  # the thread is gone (quit, error)
    fingerprint: str | None = None  # the trace's SHA-256 when the run finished
    note: str = ""
    error: str | None = None


class SpoolSink:
    """The trace sink: a file, and where each line starts in it."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("w", encoding="ascii", newline="\n")
        self.pos = 0
        self.line_at = 0

    def write(self, line: str) -> None:
        self.line_at = self.pos
        self._f.write(line)
        self.pos += len(line)

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        self._f.close()


class _GatedClock(trio.abc.Clock):
    """The kernel's clock, asked first whether time may move at all."""

    def __init__(self, inner: trio.abc.Clock, host: WorldHost) -> None:
        self._inner = inner
        self._host = host

    def start_clock(self) -> None:
        self._inner.start_clock()

    def current_time(self) -> float:
        return self._inner.current_time()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return self._host._before_time_moves(deadline, self._inner.deadline_to_sleep_time)


def _noop() -> None:
    pass


class WorldHost:
    """Builds a world from a plan and runs it on a thread, as the gate says."""

    def __init__(
        self,
        plan: WorldPlan,
        *,
        spool: Path | None = None,
        on_update: Callable[[], None] = _noop,
        mode: str = Mode.PAUSED,
        speed: int = DEFAULT_SPEED,
    ) -> None:
        self.plan = plan
        self._sink = SpoolSink(spool) if spool is not None else None
        self.built = plan.build(self._sink)
        sim = self.built.sim
        self.header = dict(sim.trace.header)
        self.index = EventIndex(spool, self.header)
        self.first_seq = sim.trace.seq  # events recorded while the world was built
        self._index_early_events()
        self.samples: list[WorldSample] = []
        self.outcome: dict = {}
        self._on_update = on_update
        self._cv = threading.Condition()
        self._mode = mode
        self._speed = speed
        self._budget = 0
        self._until_t: int | None = None
        self._until_business = False
        self._anchor = (0.0, 0)  # (wall, virtual) where pacing started
        self._parked: str | None = None
        self._kicked = False
        self._commands: list[Callable[[], str | None]] = []
        self._in_command = False
        self._stopping = False
        self._cancelled = False
        self._settling = False
        self._after_end = False
        self._finished = False
        self._fingerprint: str | None = None
        self._note = ""
        self._error: str | None = None
        self._last_publish = 0.0
        self._last_sample = (-math.inf, -SAMPLE_EVERY_US)  # (wall, virtual)
        self._token: trio.lowlevel.TrioToken | None = None
        self._wake_main: trio.Event | None = None
        self.status = HostStatus(mode=mode, speed=SPEEDS[speed][1])
        self._thread = threading.Thread(target=self._thread_main, name="syncbed-world", daemon=True)
        sim.subscribe(self._on_event)
        sim.kernel.clock = _GatedClock(sim.kernel.clock, self)

    def _index_early_events(self) -> None:
        # Building a world records events (the CRM's records at go-live)
        # before anyone can subscribe; read them back from the spool.
        if self._sink is None or self.built.sim.trace.seq == 0:
            return
        self._sink.flush()
        with self.index.path.open("rb") as f:
            offset = len(f.readline())
            for raw in f:
                self.index.append(json.loads(raw), offset)
                offset += len(raw)

    # ================================================================ UI side

    def start(self) -> None:
        self._thread.start()

    def play(self) -> None:
        self._set(Mode.PLAYING, note="")

    def pause(self) -> None:
        self._set(Mode.PAUSED, note="paused")

    def step(self, events: int = 1) -> None:
        self._set(Mode.STEP, budget=events, note="")

    def next_business(self) -> None:
        self._set(Mode.UNTIL, until_business=True, note="running to the next business event")

    def seek(self, t_us: int) -> None:
        """Run forward to virtual time `t_us` (a live world cannot go back)."""
        if t_us <= self.status.t:
            raise ValueError("a live run only goes forward; replay its trace to go back")
        self._set(Mode.UNTIL, until_t=t_us, note="seeking")

    def faster(self) -> None:
        self._set_speed(+1)

    def slower(self) -> None:
        self._set_speed(-1)

    def inject(self, order: ChaosOrder) -> None:
        self._submit(lambda: self._apply_chaos(order))

    def replay_dead_letter(self, msg_id: str) -> None:
        self._submit(lambda: self._operator("replay_dead_letter", msg_id))

    def retry_exception(self, key: str) -> None:
        self._submit(lambda: self._operator("retry_exception", key))

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            kick = self._kick_wanted_locked()
        if kick:
            self._kick()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._sink is not None and not self._thread.is_alive():
            self._sink.close()

    def _set(self, mode: str, *, budget: int = 0, until_t: int | None = None, until_business: bool = False,
             note: str | None = None) -> None:
        with self._cv:
            self._mode = mode
            self._budget = budget
            self._until_t = until_t
            self._until_business = until_business
            self._anchor = (time.monotonic(), self.built.sim.now_us)
            if note is not None:
                self._note = note
            self._status_locked()
            self._cv.notify_all()
            kick = self._kick_wanted_locked()
        if kick:
            self._kick()
        self._on_update()

    def _set_speed(self, delta: int) -> None:
        with self._cv:
            self._speed = max(0, min(len(SPEEDS) - 1, self._speed + delta))
            self._anchor = (time.monotonic(), self.built.sim.now_us)
            self._status_locked()
            self._cv.notify_all()
            kick = self._kick_wanted_locked()
        if kick:
            self._kick()
        self._on_update()

    def _submit(self, command: Callable[[], str | None]) -> None:
        with self._cv:
            self._commands.append(command)
            self._cv.notify_all()
            kick = self._kick_wanted_locked()
        if kick:
            self._kick()

    def _kick_wanted_locked(self) -> bool:
        # Wake trio only while the world waits at the clock, and once per
        # wait: then trio is idle in its I/O wait, the wake-up task runs
        # alone, and the scheduler's seeded shuffle is not disturbed. (A
        # second wake-up could land after the world moved on, in a batch
        # with the world's own tasks.)
        if self._parked == "clock" and not self._kicked:
            self._kicked = True
            return True
        return False

    def _kick(self) -> None:
        token = self._token
        if token is not None:
            try:
                token.run_sync_soon(_noop)
            except trio.RunFinishedError:
                pass

    # ======================================================= simulation side

    def _thread_main(self) -> None:
        sim = self.built.sim
        try:
            sim.run(self._main)
        except BaseException as exc:  # the world failed: say so, keep the UI up
            with self._cv:
                self._error = f"{type(exc).__name__}: {exc}"
        finally:
            if self._sink is not None:
                self._sink.flush()
            with self._cv:
                self._parked = None
                self._status_locked(ended=True)
            self._on_update()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._wake_main = trio.Event()
        self._take_sample()
        with self._cv:
            self._status_locked()
        plan, built = self.plan, self.built
        sim = built.sim
        if plan.business:
            from harness.driver import Driver

            world = built.world
            # World.run's main, step for step (a test compares fingerprints).
            driver = Driver(world)
            sim.start_all()
            driver.start_pmo()
            await plan.target.script(driver)
            self.outcome["script_ended_us"] = sim.now_us
            sim.heal()
            self.outcome["quiet"] = await world.quiescence.wait(sim.now_us + world.liveness_limit_us)
            self.outcome["quiet_at_us"] = sim.now_us
        else:
            await plan.target.script(sim, built.world)
            self.outcome["quiet"] = True
        self._finish()
        while True:  # the run is over; a person may still act on the world
            await self._wake_main.wait()
            self._wake_main = trio.Event()
            if plan.business:
                world = built.world
                self._settling = True
                try:
                    self.outcome["quiet"] = await world.quiescence.wait(sim.now_us + world.liveness_limit_us)
                finally:
                    self._settling = False
                self._take_sample()
                with self._cv:
                    self._note = "settled after your action; verdict updated"
                    self._publish_locked(force=True)

    def _finish(self) -> None:
        self._fingerprint = self.built.sim.trace.fingerprint
        self._take_sample()
        with self._cv:
            self._finished = True
            self._after_end = True
            self._mode = Mode.PAUSED
            verdict = "all invariants hold" if not self.samples[-1].failed else "INVARIANT VIOLATED"
            self._note = f"run finished: {verdict}"
            self._publish_locked(force=True)

    def _on_event(self, event: dict) -> None:
        sink = self._sink
        self.index.append(event, sink.line_at if sink is not None else 0)
        if self._in_command:
            return
        t = event["t"]
        with self._cv:
            if self._stopping or self._settling:
                return
            mode = self._mode
            if mode == Mode.STEP:
                self._budget -= 1
                if self._budget <= 0:
                    self._mode = Mode.PAUSED
                    self._note = f"stepped to event {len(self.index)}"
            elif mode == Mode.UNTIL:
                if (self._until_business and is_business(event["kind"])) or (
                    self._until_t is not None and t >= self._until_t
                ):
                    self._mode = Mode.PAUSED
                    self._note = "arrived" if self._until_t is not None else f"business event: {event['kind']}"
            elif mode == Mode.PLAYING:
                self._pace_locked(t)
            if self._mode == Mode.PAUSED and not self._commands:
                self._parked = "event"
                self._publish_locked(force=True)
                while self._mode == Mode.PAUSED and not self._commands and not self._stopping:
                    self._cv.wait()
                self._parked = None
            else:
                self._publish_locked()

    def _pace_locked(self, t: int) -> None:
        while True:
            speed = SPEEDS[self._speed][0]
            if speed is None or self._mode != Mode.PLAYING or self._stopping or self._commands:
                return
            wall0, virt0 = self._anchor
            allowed = virt0 + (time.monotonic() - wall0) * speed
            if t <= allowed:
                return
            self._publish_locked()
            self._cv.wait(min(0.2, (t - allowed) / speed))

    def _before_time_moves(self, deadline: float, move: Callable[[float], float]) -> float:
        """The clock's question: how long may trio wait for real I/O?

        Either the host's own answer (0 to ask again at once; a wait while
        paused or pacing) or ``move(deadline)``: the kernel's, after telling
        it where the UI wants the clock to stop at a time where nothing
        happens -- a seek's target, or where paced play has got to
        (`Kernel.stop_clock_at`). The kernel runs what falls before the stop,
        lets a driving task's ``run_until`` win if that comes first, and
        otherwise moves the clock to it and comes back here. A stop is not
        an event (a script's ``kernel.step`` does not count it) and leaves
        the trace as it is: it changes when the world is looked at, never
        what the world does.
        """
        with self._cv:
            if self._stopping:
                if not self._cancelled:
                    self._cancelled = True
                    self.built.sim.kernel.nursery.cancel_scope.cancel()
                return 0.0
            commands, self._commands = self._commands, []
        if commands:
            self._run_commands(commands)
            return 0.0  # let the tasks the commands woke run before time moves
        kernel = self.built.sim.kernel
        now = kernel.now_us
        nxt = kernel.next_event_time()
        if deadline != math.inf:
            d = seconds_to_us(deadline)
            nxt = d if nxt is None else min(nxt, d)
        horizon: int | None = None
        sample_due = False
        with self._cv:
            if self._settling:
                kernel.stop_clock_at(None)
                return move(deadline)
            mode = self._mode
            if mode == Mode.UNTIL and self._until_t is not None:
                if now >= self._until_t:
                    self._mode = mode = Mode.PAUSED
                    self._note = "arrived"
                else:
                    horizon = self._until_t
            if nxt is None and self._after_end and horizon is None:
                return self._park_at_clock_locked("nothing left to happen")
            if mode == Mode.PAUSED:
                sample_due = self._sample_due(force=True)
                if not sample_due:
                    return self._park_at_clock_locked(None)
            elif mode == Mode.PLAYING and nxt is not None:
                speed = SPEEDS[self._speed][0]
                if speed is not None:
                    wall0, virt0 = self._anchor
                    allowed = int(virt0 + (time.monotonic() - wall0) * speed)
                    if nxt > allowed:
                        if allowed - now < TICK_S * speed:
                            # The clock is where the speed says: wait for the next tick.
                            self._parked = "clock"
                            self._kicked = False
                            self._publish_locked()
                            return min(TICK_S, (nxt - allowed) / speed)
                        horizon = allowed  # nothing happens until later: let the clock tick on
            self._parked = None
            if not sample_due:
                sample_due = self._sample_due()
        if sample_due:
            self._take_sample()
            return 0.0  # ask again: the gate may want to park now
        kernel.stop_clock_at(horizon)
        return move(deadline)

    def _run_commands(self, commands: list[Callable[[], str | None]]) -> None:
        notes = []
        self._in_command = True
        try:
            for command in commands:
                try:
                    notes.append(command() or "")
                except Exception as exc:
                    notes.append(f"could not do that: {exc}")
        finally:
            self._in_command = False
        self._take_sample()
        with self._cv:
            self._note = "; ".join(n for n in notes if n)
            self._publish_locked(force=True)

    def _park_at_clock_locked(self, note: str | None) -> float:
        if note is not None and not self._note:
            self._note = note
        self._parked = "clock"
        self._kicked = False
        self._publish_locked(force=True)
        return PARK_S

    def _sample_due(self, force: bool = False) -> bool:
        wall, virt = self._last_sample
        now = self.built.sim.now_us
        if force:
            return virt != now
        return now - virt >= SAMPLE_EVERY_US and time.monotonic() - wall >= SAMPLE_MIN_GAP_S

    def _take_sample(self) -> None:
        outcome = self.outcome if self._after_end or "quiet" in self.outcome else None
        sample = sample_world(self.built, outcome)
        self.samples.append(sample)
        self._last_sample = (time.monotonic(), sample.t)

    # -------------------------------------------------------- publishing

    def _status_locked(self, ended: bool = False) -> None:
        self.status = HostStatus(
            t=self.built.sim.now_us,
            events=len(self.index),
            samples=len(self.samples),
            mode=self._mode,
            speed=SPEEDS[self._speed][1],
            parked=self._parked,
            started=self._token is not None,
            finished=self._finished,
            ended=ended or self.status.ended,
            fingerprint=self._fingerprint,
            note=self._note,
            error=self._error,
        )

    def _publish_locked(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < PUBLISH_EVERY_S:
            return
        self._last_publish = now
        if self._sink is not None:
            self._sink.flush()
        self._status_locked()
        self._on_update()

    # -------------------------------------------------------- commands (run at the clock)

    def _apply_chaos(self, order: ChaosOrder) -> str:
        sim = self.built.sim
        sim.inject(chaos_window(order, self.plan.center, sim.now_us))
        return f"injected: {order.describe()}"

    def _operator(self, action: str, key: str) -> str:
        if not self.plan.business:
            raise ValueError("this world has no sync core queues")
        done = operator_action(self.built.world, action, key)
        if not done:
            return f"{key}: not in the queue any more"
        if self._after_end and self._wake_main is not None:
            self._wake_main.set()  # let the world settle again, then re-check
        verb = "replayed" if action == "replay_dead_letter" else "sent back for retry"
        return f"{key} {verb}"

"""The discrete-event kernel, driven from inside trio's run loop.

Design (see ARCHITECTURE.md, "Performance model"): the world's plain events
-- a message arriving, a vendor's timer -- live in one heap of
``(time_us, seq, Timer)`` and run as plain function calls, SimPy-style, with
`seq` breaking ties first-in first-out. Only code that really is concurrent
(the sync core, an actor that chooses to serve in a task) runs as trio tasks.

The two meet in `VirtualClock.deadline_to_sleep_time`, which trio calls exactly
when no task is runnable. There the kernel pops the next instant's events; if
one of them made a task runnable it returns 0 so trio runs that task at once,
otherwise it goes on to the next instant. If trio's own next deadline (a
`trio.sleep` or `move_on_after` in the core) comes first, the clock jumps to it
and trio expires it. Time therefore advances only when every task is blocked,
and nothing ever sleeps in wall time.

Determinism rests on three things, each tested:
  * the heap orders by (time, seq) only, never by object identity;
  * trio's scheduler runs in its deterministic mode (the batch of runnable
    tasks sorted by spawn order, then shuffled by a generator we seed from the
    world's seed) -- the hook trio keeps for Hypothesis;
  * abort callbacks (run when trio cancels a parked task) only set flags:
    trio expires simultaneous deadlines in ``id()`` order, so anything an
    abort callback recorded directly would leak memory addresses into the
    trace.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

from .clock import VirtualClock, seconds_to_us
from .random_streams import derive_seed

__all__ = [
    "Kernel",
    "Timer",
    "Waiter",
    "SimulationError",
    "Deadlock",
    "StopReason",
]

# How long trio may wait for real I/O while the world is paused (a UI thread
# sends commands through trio's wakeup socket, which ends the wait early).
_PAUSED_REAL_WAIT = 3600.0


class SimulationError(Exception):
    """Code running inside a kernel event raised; the world was stopped."""


class Deadlock(SimulationError):
    """The world's main task waits for something that can no longer happen."""


class StopReason:
    """Why a controller's run call returned (plain strings, for the trace)."""

    TIME = "time"  # reached the requested virtual time
    STEP = "step"  # processed the requested number of events
    QUIET = "quiet"  # the quiet predicate held with every task blocked
    IDLE = "idle"  # nothing is left to happen at all


class Timer:
    """A scheduled call; cancelling it is O(1) (the heap skips it later)."""

    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when: int, fn: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Waiter:
    """One task parked until something (usually a kernel event) wakes it."""

    __slots__ = ("_kernel", "_task")

    def __init__(self, kernel: "Kernel") -> None:
        self._kernel = kernel
        self._task = None

    async def wait(self) -> None:
        assert self._task is None, "a Waiter parks one task at a time"
        self._task = trio.lowlevel.current_task()

        def abort(_):
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            self._kernel.wake(task)


class _Controller:
    __slots__ = ("task", "stop_at", "budget", "quiet")

    def __init__(self, task, stop_at, budget, quiet) -> None:
        self.task = task
        self.stop_at = stop_at
        self.budget = budget
        self.quiet = quiet


def _enable_deterministic_trio(seed: int) -> None:
    # trio shuffles each batch of runnable tasks on purpose. Its deterministic
    # mode (sort by spawn counter, then shuffle with the module's generator)
    # exists for Hypothesis; we switch it on and seed it ourselves at the start
    # of every run, so a run never depends on whether Hypothesis was imported.
    # Both names are private: pyproject pins trio, and
    # tests/simulator/test_determinism.py fails loudly if they move.
    from trio._core import _run

    if not hasattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING") or not hasattr(_run, "_r"):
        raise RuntimeError(
            "this trio release has no deterministic-scheduling hook; "
            "install the trio version pinned in syncbed's pyproject.toml"
        )
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True
    _run._r.seed(derive_seed(seed, "trio.scheduler"))


class Kernel:
    """Virtual time, the event heap and run control for one world."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.now_us = 0
        self.clock = VirtualClock(self)
        self.events_processed = 0
        self.paused = False
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = 0
        self._runq = None  # trio's run queue, read to see whether an event woke a task
        self._controller: _Controller | None = None
        self._clock_stop: int | None = None
        self._failure: BaseException | None = None
        self._deadlocked = False
        self._main_done = False
        self._nursery: trio.Nursery | None = None
        self._spawn_queue: list[tuple[Callable[..., Awaitable[Any]], tuple]] = []
        self._spawner = Waiter(self)
        self._idle_hooks: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- events

    def call_at(self, when_us: int, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` at virtual time `when_us` (FIFO among equals)."""
        if when_us < self.now_us:
            raise ValueError(f"cannot schedule at {when_us}us: the clock is already at {self.now_us}us")
        timer = Timer(when_us, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (when_us, self._seq, timer))
        return timer

    def call_later(self, delay_us: int, fn: Callable[..., Any], *args: Any) -> Timer:
        if delay_us < 0:
            raise ValueError(f"delay must not be negative, got {delay_us}us")
        # Inlined call_at: this is the network's hot path.
        when = self.now_us + delay_us
        timer = Timer(when, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def pending_events(self) -> int:
        """Live (not cancelled) scheduled events."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def next_event_time(self) -> int | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ----------------------------------------------------------- trio tasks

    def wake(self, task, value: Any = None) -> None:
        """Make a task parked in ``trio.lowlevel.wait_task_rescheduled``
        runnable with `value`."""
        trio.lowlevel.reschedule(task, outcome.Value(value))

    def wake_with_error(self, task, exc: BaseException) -> None:
        trio.lowlevel.reschedule(task, outcome.Error(exc))

    def spawn(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a task in the world's nursery; safe to call from a kernel
        event, where there is no current task to spawn from."""
        self._spawn_queue.append((async_fn, args))
        self._spawner.wake()

    async def _run_spawner(self) -> None:
        while True:
            while self._spawn_queue:
                batch, self._spawn_queue = self._spawn_queue, []
                for fn, args in batch:
                    self._nursery.start_soon(fn, *args)
            await self._spawner.wait()

    # ---------------------------------------------------------- run control

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        """Run `main` (the world's script) on virtual time; return its result.

        Raises `SimulationError` if a kernel event raised and `Deadlock` if
        main waited for something that could no longer happen.
        """
        _enable_deterministic_trio(self.seed)
        # A world allocates many short-lived objects and few cycles; at the
        # default threshold (700) the cyclic collector ran every few
        # exchanges and cost about a fifth of the kernel benchmark.
        threshold = gc.get_threshold()
        gc.set_threshold(50_000, 20, 100)
        try:
            result = trio.run(self._root, main, clock=self.clock)
        finally:
            gc.set_threshold(*threshold)
        if self._failure is not None:
            raise SimulationError(
                f"{type(self._failure).__name__} in a kernel event at {self.now_us}us: {self._failure}"
            ) from self._failure
        if self._deadlocked:
            raise Deadlock(
                f"at {self.now_us}us the world's main task was still waiting, "
                "but no event, timer or deadline was left to wake it"
            )
        return result

    async def _root(self, main):
        result = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Read to learn whether a kernel event made a task runnable, by
            # any means (a wake, a cancelled scope, a trio.Event set by a fake).
            self._runq = trio._core._run.GLOBAL_RUN_CONTEXT.runner.runq
            nursery.start_soon(self._run_spawner)
            try:
                result = await main()
            finally:
                self._main_done = True
                nursery.cancel_scope.cancel()
        return result

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the kernel is not running"
        return self._nursery

    async def run_until(self, when_us: int) -> str:
        """Let the world run until virtual time `when_us`."""
        return await self._drive(stop_at=when_us, budget=None, quiet=None)

    async def run_for(self, duration_us: int) -> str:
        return await self._drive(stop_at=self.now_us + duration_us, budget=None, quiet=None)

    async def step(self, events: int = 1) -> str:
        """Process exactly `events` events (a message, a timer, a trio
        deadline), let the tasks they woke run, and return."""
        if events < 1:
            raise ValueError("step needs at least one event")
        return await self._drive(stop_at=None, budget=events, quiet=None)

    async def run_until_quiet(
        self, quiet: Callable[[], bool] | None = None, limit_us: int | None = None
    ) -> str:
        """Run until, with every task blocked, `quiet()` holds (by default:
        no event is scheduled), or until `limit_us`; returns the reason."""
        if quiet is None:
            quiet = self._no_events
        return await self._drive(stop_at=limit_us, budget=None, quiet=quiet)

    def stop_clock_at(self, when_us: int | None) -> None:
        """Stop the clock at `when_us` on its way past, for whoever watches it.

        Once everything due at or before `when_us` has run, the clock moves
        to `when_us` (if it is not there already) and stops there once: the
        kernel hands back to trio with no task runnable, and trio asks the
        clock again at once -- the moment a clock wrapper (the TUI's gate)
        gets to look at the world at a time where nothing happens: a seek's
        target, paced play through a quiet hour. Then time goes on as before.

        The stop is not an event. Nothing runs at it, `events_processed` and
        a `step`'s count do not move, a driving `run_until` is neither
        released nor overtaken (whichever of the two times comes first
        wins), no random draw is spent (trio shuffles an empty batch), and
        so the trace is the one the world writes without it. One stop is
        pending at a time: a call replaces it, None clears it.
        """
        if when_us is not None and when_us < self.now_us:
            raise ValueError(f"cannot stop the clock at {when_us}us: it is already at {self.now_us}us")
        self._clock_stop = when_us

    def _no_events(self) -> bool:
        return self.next_event_time() is None

    async def _drive(self, stop_at, budget, quiet) -> str:
        if self._controller is not None:
            raise RuntimeError("another task is already driving this world's clock")
        if stop_at is not None and stop_at < self.now_us:
            raise ValueError(f"cannot run until {stop_at}us: the clock is already at {self.now_us}us")
        # No need to let other tasks settle first: trio only consults the
        # clock (and so the kernel) once no task at all is runnable.
        self._controller = _Controller(trio.lowlevel.current_task(), stop_at, budget, quiet)

        def abort(_):
            self._controller = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _release_controller(self, reason: str) -> None:
        ctl = self._controller
        self._controller = None
        self.wake(ctl.task, reason)

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._nursery.cancel_scope.cancel()

    # ------------------------------------------------------- the idle hook

    def _on_idle(self, deadline: float) -> float:
        """Called by trio when no task is runnable; returns trio's sleep time."""
        if self._failure is not None or self._deadlocked or self._main_done:
            return 0.0  # the world is shutting down: let trio finish it
        ctl = self._controller
        if ctl is None and self.paused:
            return _PAUSED_REAL_WAIT
        heap = self._heap
        heappop = heapq.heappop
        deadline_us = None if deadline == math.inf else seconds_to_us(deadline)
        runq = self._runq
        while True:
            while heap and heap[0][2].cancelled:
                heappop(heap)
            if ctl is not None and ctl.quiet is not None and ctl.quiet():
                self._release_controller(StopReason.QUIET)
                return 0.0
            t = heap[0][0] if heap else None
            stop = self._clock_stop
            if t is not None and (deadline_us is None or t <= deadline_us) and (stop is None or t <= stop):
                if ctl is not None and ctl.stop_at is not None and t > ctl.stop_at:
                    self.now_us = ctl.stop_at
                    self._release_controller(StopReason.TIME)
                    return 0.0
                # Run every event of this instant, in FIFO order.
                self.now_us = t
                while heap and heap[0][0] == t:
                    timer = heappop(heap)[2]
                    if timer.cancelled:
                        continue
                    try:
                        timer.fn(*timer.args)
                    except Exception as exc:  # a bug in a fake or the harness
                        self._fail(exc)
                        return 0.0
                    self.events_processed += 1
                    if ctl is not None and ctl.budget is not None:
                        ctl.budget -= 1
                        if ctl.budget == 0:
                            self._release_controller(StopReason.STEP)
                            return 0.0
                if runq:
                    return 0.0
                continue
            if (
                stop is not None
                and (deadline_us is None or stop < deadline_us)
                and (ctl is None or ctl.stop_at is None or stop <= ctl.stop_at)
            ):
                # A watcher's stop (`stop_clock_at`) is next. Not an event:
                # nothing is counted; trio finds nothing to run and asks the
                # clock again, so the watcher looks at the world here.
                self._clock_stop = None
                self.now_us = stop
                return 0.0
            if deadline_us is not None:
                if ctl is not None and ctl.stop_at is not None and deadline_us > ctl.stop_at:
                    self.now_us = ctl.stop_at
                    self._release_controller(StopReason.TIME)
                    return 0.0
                # trio's own deadline is next: move there; trio expires it.
                self.now_us = max(self.now_us, deadline_us)
                self.events_processed += 1
                if ctl is not None and ctl.budget is not None:
                    ctl.budget -= 1
                    if ctl.budget == 0:
                        self._release_controller(StopReason.STEP)
                return 0.0
            # Nothing scheduled and no deadline: nothing can ever happen again.
            if ctl is not None:
                if ctl.stop_at is not None:
                    self.now_us = ctl.stop_at
                    self._release_controller(StopReason.TIME)
                else:
                    self._release_controller(StopReason.IDLE)
                return 0.0
            self._deadlocked = True
            self._nursery.cancel_scope.cancel()
            return 0.0

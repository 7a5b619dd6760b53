"""The kernel: virtual time, FIFO order, run control, failure handling."""

import threading

import pytest
import trio

from simulator import HOUR, SECOND, Deadlock, Kernel, SimulationError, StopReason


def run(kernel, main):
    return kernel.run(main)


def test_trio_sleep_jumps_the_clock_exactly():
    k = Kernel(1)
    seen = []

    async def main():
        seen.append(k.now_us)
        await trio.sleep(3600)
        seen.append(k.now_us)
        await trio.sleep(0.25)
        seen.append(k.now_us)
        seen.append(trio.current_time())

    run(k, main)
    assert seen == [0, 3600 * SECOND, 3600 * SECOND + 250_000, 3600.25]


def test_move_on_after_runs_on_virtual_time():
    k = Kernel(1)
    out = {}

    async def main():
        with trio.move_on_after(30) as scope:
            await trio.sleep(10_000)
        out["cancelled"] = scope.cancelled_caught
        out["t"] = k.now_us

    run(k, main)
    assert out == {"cancelled": True, "t": 30 * SECOND}


def test_simultaneous_events_run_first_in_first_out():
    k = Kernel(1)
    order = []

    async def main():
        for name in ["c", "a", "b", "e", "d"]:
            k.call_at(5 * SECOND, order.append, name)
        k.call_at(1 * SECOND, order.append, "early")
        await k.run_until(10 * SECOND)

    run(k, main)
    assert order == ["early", "c", "a", "b", "e", "d"]


def test_cancelled_timer_never_fires_and_does_not_move_time():
    k = Kernel(1)
    fired = []

    async def main():
        t = k.call_at(50 * SECOND, fired.append, "late")
        k.call_at(2 * SECOND, fired.append, "kept")
        t.cancel()
        return await k.run_until_quiet()

    reason = run(k, main)
    assert fired == ["kept"]
    assert reason == StopReason.QUIET
    assert k.now_us == 2 * SECOND


def test_cannot_schedule_in_the_past():
    k = Kernel(1)

    async def main():
        await trio.sleep(5)
        with pytest.raises(ValueError, match="already at"):
            k.call_at(1 * SECOND, lambda: None)

    run(k, main)


def test_run_until_stops_exactly_and_leaves_later_events():
    k = Kernel(1)
    fired = []

    async def main():
        for s in (1, 2, 3, 4):
            k.call_at(s * SECOND, fired.append, s)
        reason = await k.run_until(2 * SECOND + 500_000)
        snapshot = (reason, k.now_us, list(fired))
        await k.run_until(10 * SECOND)
        return snapshot

    snapshot = run(k, main)
    assert snapshot == (StopReason.TIME, 2 * SECOND + 500_000, [1, 2])
    assert fired == [1, 2, 3, 4]


def test_step_processes_one_event_at_a_time_and_counts_trio_deadlines():
    k = Kernel(1)
    fired = []

    async def sleeper():
        await trio.sleep(2.5)
        fired.append("deadline")

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(sleeper)
            k.call_at(1 * SECOND, fired.append, "one")
            k.call_at(3 * SECOND, fired.append, "three")
            await trio.sleep(0)  # let the sleeper register its deadline
            steps = []
            for _ in range(3):
                reason = await k.step()
                await trio.sleep(0)
                steps.append((reason, k.now_us, list(fired)))
            return steps

    steps = run(k, main)
    assert steps == [
        (StopReason.STEP, 1 * SECOND, ["one"]),
        (StopReason.STEP, 2_500_000, ["one", "deadline"]),
        (StopReason.STEP, 3 * SECOND, ["one", "deadline", "three"]),
    ]


def test_run_until_quiet_with_predicate():
    k = Kernel(1)
    state = {"n": 0}

    def tick():
        state["n"] += 1
        k.call_later(SECOND, tick)  # a timer that never runs out

    async def main():
        k.call_later(SECOND, tick)
        reason = await k.run_until_quiet(lambda: state["n"] >= 7, limit_us=HOUR)
        return reason, k.now_us

    assert run(k, main) == (StopReason.QUIET, 7 * SECOND)


def test_run_until_quiet_respects_its_limit():
    k = Kernel(1)

    def tick():
        k.call_later(SECOND, tick)

    async def main():
        k.call_later(SECOND, tick)
        return await k.run_until_quiet(lambda: False, limit_us=10 * SECOND), k.now_us

    assert run(k, main) == (StopReason.TIME, 10 * SECOND)


def test_quiet_means_no_events_when_no_predicate_given():
    k = Kernel(1)

    async def main():
        k.call_at(4 * SECOND, lambda: None)
        return await k.run_until_quiet(), k.now_us

    assert run(k, main) == (StopReason.QUIET, 4 * SECOND)


def test_waiting_for_nothing_is_a_deadlock_not_a_hang():
    k = Kernel(1)

    async def main():
        await trio.Event().wait()

    with pytest.raises(Deadlock, match="no event, timer or deadline"):
        run(k, main)


def test_an_exception_in_a_kernel_event_stops_the_world():
    k = Kernel(1)

    def boom():
        raise KeyError("ledger-7")

    async def main():
        k.call_at(3 * SECOND, boom)
        await trio.sleep(60)

    with pytest.raises(SimulationError, match="KeyError in a kernel event at 3000000us") as info:
        run(k, main)
    assert isinstance(info.value.__cause__, KeyError)


def test_an_event_that_wakes_a_task_lets_it_run_before_time_moves():
    # The woken task must observe the instant it was woken at, even though
    # a later event is already scheduled.
    k = Kernel(1)
    seen = []

    async def main():
        task = trio.lowlevel.current_task()
        k.call_at(5 * SECOND, k.wake, task, "hello")
        k.call_at(6 * SECOND, lambda: seen.append(("later event", k.now_us)))
        value = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)
        seen.append((value, k.now_us))
        await k.run_until(10 * SECOND)

    run(k, main)
    assert seen == [("hello", 5 * SECOND), ("later event", 6 * SECOND)]


def test_a_trio_event_set_by_a_kernel_event_is_noticed():
    # A fake that sets a trio.Event (instead of using kernel.wake) still
    # must not let time run past the woken task.
    k = Kernel(1)
    ev = trio.Event()
    seen = []

    async def waiter():
        await ev.wait()
        seen.append(k.now_us)

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            k.call_at(2 * SECOND, ev.set)
            k.call_at(9 * SECOND, lambda: None)
            await k.run_until(20 * SECOND)

    run(k, main)
    assert seen == [2 * SECOND]


def test_pause_freezes_time_until_resumed_from_another_thread():
    k = Kernel(1)
    paused = threading.Event()
    report = {}

    async def main():
        k.call_at(1 * SECOND, lambda: None)
        k.call_at(2 * SECOND, lambda: None)
        report["token"] = trio.lowlevel.current_trio_token()
        k.paused = True
        paused.set()
        await trio.sleep(100)  # would jump at once if not paused
        report["woke_at"] = k.now_us

    def controller():
        paused.wait()
        token = report["token"]
        first = trio.from_thread.run_sync(lambda: k.now_us, trio_token=token)
        again = trio.from_thread.run_sync(lambda: k.now_us, trio_token=token)
        reason = trio.from_thread.run(k.step, trio_token=token)
        after_step = trio.from_thread.run_sync(lambda: k.now_us, trio_token=token)
        trio.from_thread.run_sync(lambda: setattr(k, "paused", False), trio_token=token)
        report["seen"] = (first, again, reason, after_step)

    thread = threading.Thread(target=controller)
    thread.start()
    run(k, main)
    thread.join()
    assert report["seen"] == (0, 0, StopReason.STEP, 1 * SECOND)
    assert report["woke_at"] == 100 * SECOND


def test_only_one_controller_at_a_time():
    k = Kernel(1)

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(k.run_until, 10 * SECOND)
            await trio.sleep(0)
            with pytest.raises(RuntimeError, match="already driving"):
                await k.run_until(5 * SECOND)

    run(k, main)


def test_spawn_from_a_kernel_event_starts_a_task_at_that_instant():
    k = Kernel(1)
    seen = []

    async def child(tag):
        seen.append((tag, k.now_us))
        await trio.sleep(1)
        seen.append((tag + " done", k.now_us))

    async def main():
        k.call_at(4 * SECOND, k.spawn, child, "x")
        await k.run_until(10 * SECOND)

    run(k, main)
    assert seen == [("x", 4 * SECOND), ("x done", 5 * SECOND)]


# ------------------------------------------------------------ clock stops


class StopWatch(trio.abc.Clock):
    """Wraps a kernel's clock the way the TUI's gate does: each time trio
    asks it, it asks the kernel to stop the clock at the next planned time
    and notes when the clock stood at one."""

    def __init__(self, kernel, stops) -> None:
        self._kernel = kernel
        self._inner = kernel.clock
        self._stops = sorted(stops)
        self.seen: list[int] = []
        kernel.clock = self

    def start_clock(self) -> None:
        self._inner.start_clock()

    def current_time(self) -> float:
        return self._inner.current_time()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        k = self._kernel
        while self._stops and self._stops[0] <= k.now_us:
            if self._stops[0] == k.now_us:
                self.seen.append(k.now_us)
            self._stops.pop(0)
        k.stop_clock_at(self._stops[0] if self._stops else None)
        return self._inner.deadline_to_sleep_time(deadline)


def stepped_world(stops=()):
    k = Kernel(1)
    watch = StopWatch(k, stops)
    fired = []

    async def sleeper():
        await trio.sleep(6)
        fired.append("deadline")

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(sleeper)
            for s in (1, 3, 10):
                k.call_at(s * SECOND, fired.append, s)
            await trio.sleep(0)  # let the sleeper register its deadline
            steps = []
            for _ in range(4):
                reason = await k.step()
                await trio.sleep(0)
                steps.append((reason, k.now_us, list(fired), k.events_processed))
            return steps

    return run(k, main), watch.seen


def test_a_clock_stop_is_not_an_event_and_not_a_step():
    plain, _ = stepped_world()
    assert [now for _, now, _, _ in plain] == [1 * SECOND, 3 * SECOND, 6 * SECOND, 10 * SECOND]
    stops = [2 * SECOND, 5 * SECOND, 7 * SECOND, 9 * SECOND]
    stopped, seen = stepped_world(stops)
    assert seen == stops  # the clock stood at each, where nothing happens
    assert stopped == plain


def test_a_run_until_before_the_stop_wins_and_the_stop_waits_for_later():
    k = Kernel(1)
    out = []

    async def main():
        k.call_at(9 * SECOND, lambda: None)
        k.stop_clock_at(5 * SECOND)
        out.append((await k.run_until(3 * SECOND), k.now_us))
        out.append((await k.run_until(5 * SECOND), k.now_us))  # the same time as the stop
        out.append((await k.run_until_quiet(), k.now_us))
        with pytest.raises(ValueError, match="already at"):
            k.stop_clock_at(SECOND)

    run(k, main)
    assert out == [(StopReason.TIME, 3 * SECOND), (StopReason.TIME, 5 * SECOND), (StopReason.QUIET, 9 * SECOND)]
    assert k.events_processed == 1


def test_a_run_with_clock_stops_writes_the_same_trace_as_one_without():
    from tests.simulator.toy_worlds import busy_world

    plain = busy_world(7)
    plain.run(plain._main)
    stopped = busy_world(7)
    every = 137_000  # off the world's whole seconds, and some on its events
    watch = StopWatch(stopped.kernel, range(every, 12 * SECOND, every))
    stopped.run(stopped._main)
    assert len(watch.seen) >= 70
    assert stopped.kernel.events_processed == plain.kernel.events_processed
    assert stopped.trace.seq == plain.trace.seq > 100
    assert stopped.trace.fingerprint == plain.trace.fingerprint

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

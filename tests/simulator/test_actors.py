"""Actor lifecycle: durable vs volatile state, timers and tasks across crashes."""

import pytest
import trio

from simulator import (
    MILLISECOND,
    SECOND,
    Actor,
    Fixed,
    NetworkError,
    Request,
    Response,
    Simulation,
    Window,
)
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults


def make_sim(**kw):
    return Simulation(5, chaos=ChaosProfile("t", links=(LinkRule(latency=Fixed(MILLISECOND)),), **kw), keep_trace=True)


class Store(Actor):
    def init_durable(self):
        return {"rows": []}

    def init_volatile(self):
        return {"cache": {}, "ticks": 0}

    def handle(self, request):
        self.durable["rows"].append(request.json)
        self.volatile["cache"][len(self.durable["rows"])] = request.json
        return Response(201, {"row": len(self.durable["rows"])})

    def on_start(self):
        self.call_later(SECOND, self.tick)

    def tick(self):
        self.volatile["ticks"] += 1
        self.call_later(SECOND, self.tick)


def test_crash_keeps_durable_state_and_loses_volatile_state():
    sim = make_sim()
    store = sim.add(Store("store"))

    async def main():
        sim.start_all()
        await sim.network.request("client", "store", Request("POST", "/rows", json="a"))
        await sim.kernel.run_until(3500 * MILLISECOND)
        before = (list(store.durable["rows"]), dict(store.volatile["cache"]), store.volatile["ticks"])
        sim.crash(store)
        crashed = (store.state, store.volatile)
        sim.restart(store)
        after = (list(store.durable["rows"]), dict(store.volatile["cache"]), store.volatile["ticks"])
        return before, crashed, after

    before, crashed, after = sim.run(main)
    assert before == (["a"], {1: "a"}, 3)
    assert crashed == ("crashed", None)
    assert after == (["a"], {}, 0)


def test_timers_from_an_earlier_life_never_fire():
    sim = make_sim()
    store = sim.add(Store("store"))

    async def main():
        sim.start_all()
        await sim.kernel.run_until(2500 * MILLISECOND)  # ticks at 1s, 2s
        sim.crash(store)
        await sim.kernel.run_until(2700 * MILLISECOND)
        sim.restart(store)  # a new tick chain starts at 3.7s
        await sim.kernel.run_until(4 * SECOND)
        return store.volatile["ticks"]

    assert sim.run(main) == 1


def test_requests_to_a_crashed_actor_are_refused_and_the_trace_says_so():
    sim = make_sim()
    store = sim.add(Store("store"))

    async def main():
        sim.start_all()
        sim.crash(store)
        with pytest.raises(NetworkError):
            await sim.network.request("client", "store", Request("POST", "/rows", json="x"))

    sim.run(main)
    assert store.durable["rows"] == []
    kinds = [line.split('"kind":"')[1].split('"')[0] for line in sim.trace.lines[1:-1]]
    assert kinds == ["actor.start", "actor.crash", "net.refused"]


class Worker(Actor):
    """Serves each request in a task, like a web server; keeps a journal."""

    serves_in_task = True

    def init_durable(self):
        return {"journal": [], "finished": []}

    async def handle(self, request):
        self.durable["journal"].append(("begin", request.json))
        await trio.sleep(10)
        self.durable["finished"].append(request.json)
        return Response(200, {"done": request.json})

    async def run(self):
        while True:
            await trio.sleep(1)
            self.durable["journal"].append(("heartbeat", self.now_us // SECOND))


def test_a_crash_cancels_the_actors_tasks_mid_request():
    sim = make_sim()
    worker = sim.add(Worker("worker"))

    async def main():
        sim.start_all()
        async with trio.open_nursery() as n:

            async def call():
                with pytest.raises(NetworkError):
                    await sim.network.request("client", "worker", Request("POST", "/job", json="j1"), timeout_us=30 * SECOND)

            n.start_soon(call)
            await sim.kernel.run_until(2500 * MILLISECOND)
            sim.crash(worker)
            await sim.kernel.run_until(40 * SECOND)
        journal_at_crash = list(worker.durable["journal"])
        sim.restart(worker)
        r = await sim.network.request("client", "worker", Request("POST", "/job", json="j2"))
        return journal_at_crash, r.json

    journal, answer = sim.run(main)
    assert journal == [("begin", "j1"), ("heartbeat", 1), ("heartbeat", 2)]
    assert worker.durable["finished"] == ["j2"]  # j1 never finished: its task died in the crash
    assert answer == {"done": "j2"}


def test_an_exception_in_handle_becomes_a_500_and_a_trace_event():
    class Buggy(Actor):
        def handle(self, request):
            raise ZeroDivisionError("rate / hours")

    sim = make_sim()
    sim.add(Buggy("erp"))

    async def main():
        sim.start_all()
        return await sim.network.request("client", "erp", Request("GET", "/x"))

    r = sim.run(main)
    assert r.status == 500 and "ZeroDivisionError" in r.json["message"]
    assert any('"kind":"actor.error"' in line for line in sim.trace.lines)


def test_an_exception_escaping_run_crashes_the_actor():
    class Fragile(Actor):
        async def run(self):
            await trio.sleep(3)
            raise RuntimeError("lost connection to store")

    sim = make_sim()
    fragile = sim.add(Fragile("core"))

    async def main():
        sim.start_all()
        await sim.kernel.run_until(10 * SECOND)
        return fragile.state

    assert sim.run(main) == "crashed"
    assert any('"kind":"actor.crash"' in line and "unhandled RuntimeError" in line for line in sim.trace.lines)


def test_crash_window_and_random_crashes_come_from_the_profile():
    sim = make_sim(
        windows=(Window("crash", 5 * SECOND, 8 * SECOND, target="store"),),
        process=ProcessFaults(actors=("store",), crash_every=3600 * SECOND, restart_after=30 * SECOND),
    )
    store = sim.add(Store("store"))
    states = []

    async def main():
        sim.start_all()
        for t in (4, 6, 9):
            await sim.kernel.run_until(t * SECOND)
            states.append(store.state)
        await sim.kernel.run_until(24 * 3600 * SECOND)

    sim.run(main)
    assert states == ["running", "crashed", "running"]
    crashes = [line for line in sim.trace.lines if '"kind":"fault.crash"' in line]
    # One from the window, and about 24 from a mean of one an hour.
    assert 10 <= len(crashes) <= 45


def test_handle_must_match_serves_in_task():
    class Confused(Actor):
        async def handle(self, request):
            return Response(200)

    sim = make_sim()
    sim.add(Confused("x"))

    async def main():
        with pytest.raises(TypeError, match="serves_in_task"):
            sim.start_all()

    sim.run(main)

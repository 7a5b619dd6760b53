"""``syncbed bench``: speed, measured in one process run, never in tests.

kernel: request/response round trips with a latency each way, between a trio
client task and a synchronous actor endpoint, against the same model written
idiomatically in SimPy (a Store per direction plus timeouts). syncbed's side
does everything a real run does per message -- bodies copied through JSON,
two trace events encoded and hashed, a timeout armed and cancelled -- SimPy's
side does none of it, so the ratio is the price of real trio code and a full
trace over a bare discrete-event loop.
"""

from __future__ import annotations

import platform
import time

from simulator import Actor, Fixed, Request, Response, Simulation
from simulator.faults import ChaosProfile, LinkRule

LATENCY_US = 1_000


class _Counter(Actor):
    def init_durable(self) -> dict:
        return {"n": 0}

    def handle(self, request: Request) -> Response:
        self.durable["n"] += 1
        return Response(200, {"n": self.durable["n"]})


def syncbed_round_trips(n: int) -> tuple[float, int]:
    """Wall seconds for `n` round trips, and the server's final count."""
    profile = ChaosProfile("bench", links=(LinkRule(latency=Fixed(LATENCY_US)),))
    sim = Simulation(1, chaos=profile, header={"scenario": "bench-kernel"})
    server = sim.add(_Counter("server"))
    request = Request("POST", "/count", json={"op": "increment"})

    async def main() -> None:
        sim.start_all()
        send = sim.network.request
        for _ in range(n):
            await send("client", "server", request)

    started = time.perf_counter()
    sim.run(main)
    return time.perf_counter() - started, server.durable["n"]


def simpy_round_trips(n: int) -> tuple[float, int]:
    import simpy

    env = simpy.Environment()
    requests = simpy.Store(env)
    responses = simpy.Store(env)
    state = {"n": 0}
    latency = LATENCY_US / 1_000_000

    def server():
        while True:
            yield requests.get()
            state["n"] += 1
            yield env.timeout(latency)  # the response travels back
            yield responses.put({"n": state["n"]})

    def client():
        for _ in range(n):
            yield env.timeout(latency)  # the request travels out
            yield requests.put({"op": "increment"})
            yield responses.get()

    env.process(server())
    started = time.perf_counter()
    env.run(until=env.process(client()))
    return time.perf_counter() - started, state["n"]


def bench_kernel(round_trips: int = 50_000, repeats: int = 3) -> dict:
    """Best of `repeats` for each side (the least disturbed run)."""
    try:
        import simpy  # noqa: F401
    except ImportError:
        raise RuntimeError("the kernel benchmark compares against SimPy: pip install 'syncbed[bench]'") from None
    ours = min(syncbed_round_trips(round_trips)[0] for _ in range(repeats))
    theirs = min(simpy_round_trips(round_trips)[0] for _ in range(repeats))
    ours_rate = round_trips / ours
    theirs_rate = round_trips / theirs
    return {
        "benchmark": "kernel",
        "round_trips": round_trips,
        "repeats": repeats,
        "syncbed_round_trips_per_second": round(ours_rate),
        "simpy_round_trips_per_second": round(theirs_rate),
        "ratio": round(ours_rate / theirs_rate, 3),
        "syncbed_us_per_round_trip": round(ours / round_trips * 1e6, 2),
        "simpy_us_per_round_trip": round(theirs / round_trips * 1e6, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def format_kernel(result: dict) -> str:
    return "\n".join(
        [
            f"kernel round trips ({result['round_trips']} each, best of {result['repeats']}, Python {result['python']})",
            f"  syncbed  {result['syncbed_round_trips_per_second']:>9,} /s   {result['syncbed_us_per_round_trip']:>6} us each",
            f"  simpy    {result['simpy_round_trips_per_second']:>9,} /s   {result['simpy_us_per_round_trip']:>6} us each",
            f"  ratio    {result['ratio']}  (syncbed / simpy; goal >= 1.0)",
        ]
    )

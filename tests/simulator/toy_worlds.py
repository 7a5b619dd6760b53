"""Small worlds for the determinism tests, importable from a subprocess:

    python -c "from tests.simulator.toy_worlds import fingerprint; print(fingerprint('busy', 7))"
"""

from __future__ import annotations

import sys

import trio

from simulator import SECOND, Actor, NetworkError, Request, Response, Simulation, load_profile


class Echo(Actor):
    def init_durable(self):
        return {"n": 0}

    def handle(self, request):
        self.durable["n"] += 1
        return Response(200, {"n": self.durable["n"], "echo": request.json})


class Fanout(Actor):
    """Deliberately buggy: sends to its peers in *set* iteration order, which
    depends on PYTHONHASHSEED. The determinism check must catch it."""

    def init_durable(self):
        return {"peers": {"crm", "psa", "erp", "billing", "revenue", "hris", "expenses", "bank"}}

    def on_start(self):
        for peer in self.durable["peers"]:  # the leak
            self.send("echo", Request("POST", "/fanout", json={"peer": peer}))


def busy_world(seed: int) -> Simulation:
    """Many trio tasks woken at the same instants, talking over a lossy
    network: their interleaving is trio's scheduling order, made visible."""
    sim = Simulation(seed, chaos=load_profile("harsh"), header={"scenario": "toy-busy"})
    sim.add(Echo("echo"))
    tick = {"event": trio.Event()}

    def ring():
        old, tick["event"] = tick["event"], trio.Event()
        old.set()
        sim.kernel.call_later(SECOND, ring)

    async def worker(i: int) -> None:
        for round_ in range(6):
            await tick["event"].wait()
            sim.trace.record("toy.woke", {"worker": i, "round": round_})
            try:
                await sim.network.request(f"w{i}", "echo", Request("POST", "/work", json={"w": i, "r": round_}), timeout_us=2 * SECOND)
            except NetworkError as exc:
                sim.trace.record("toy.failed", {"worker": i, "error": type(exc).__name__})

    async def main():
        sim.start_all()
        sim.kernel.call_later(SECOND, ring)
        async with trio.open_nursery() as nursery:
            for i in range(25):
                nursery.start_soon(worker, i)
        await sim.kernel.run_until(sim.now_us + 10 * SECOND)

    sim._main = main
    return sim


def leaky_world(seed: int) -> Simulation:
    sim = Simulation(seed, chaos=load_profile("calm"), header={"scenario": "toy-leaky"})
    sim.add(Echo("echo"))
    sim.add(Fanout("fanout"))

    async def main():
        sim.start_all()
        await sim.kernel.run_until_quiet()

    sim._main = main
    return sim


WORLDS = {"busy": busy_world, "leaky": leaky_world}


def fingerprint(world: str, seed: int) -> str:
    sim = WORLDS[world](seed)
    sim.run(sim._main)
    return sim.trace.fingerprint


if __name__ == "__main__":
    print(fingerprint(sys.argv[1], int(sys.argv[2])))

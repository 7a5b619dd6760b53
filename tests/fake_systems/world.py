"""A small world around one fake, for contract tests through its HTTP API.

    fake = Crm("crm")
    w = World(fake)                       # or World(fake, chaos=profile)
    sink = w.add_sink("core")             # receives webhooks; answers 200

    async def script(call):
        r = await call("POST", "/things", json={...}, headers={...})
        assert r.status == 201
        await w.sim.kernel.run_until(w.sim.now_us + HOUR)   # let time pass

    w.run(script)
    assert fake.records("things") == [...]
"""

from __future__ import annotations

from simulator import MILLISECOND, Actor, Fixed, Request, Response, Simulation
from simulator.faults import ChaosProfile, LinkRule

QUICK = ChaosProfile("contract-test", links=(LinkRule(latency=Fixed(1 * MILLISECOND)),))


class WebhookSink(Actor):
    """Stands in for the sync core's webhook endpoint: records every
    delivery; answers with `statuses` in turn (then 200)."""

    def __init__(self, name: str = "core", statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        super().__init__(name)

    def init_durable(self) -> dict:
        return {"received": []}

    def handle(self, request: Request) -> Response:
        self.durable["received"].append({"t": self.now_us, "path": request.path, "headers": dict(request.headers), "json": request.json})
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status, {"received": True})

    @property
    def received(self) -> list[dict]:
        return self.durable["received"]


class World:
    def __init__(self, *fakes: Actor, chaos: ChaosProfile | None = None, seed: int = 1) -> None:
        self.sim = Simulation(seed, chaos=chaos or QUICK, keep_trace=True)
        self.fakes = {f.name: self.sim.add(f) for f in fakes}
        self.default = fakes[0].name if fakes else None

    def add_sink(self, name: str = "core", statuses: list[int] | None = None) -> WebhookSink:
        return self.sim.add(WebhookSink(name, statuses))

    def run(self, script, caller: str = "core-client"):
        sim = self.sim

        async def call(method, path, json=None, headers=None, query=None, *, to=None, timeout_us=None):
            return await sim.network.request(
                caller, to or self.default, Request(method, path, query, headers, json), timeout_us=timeout_us
            )

        async def main():
            sim.start_all()
            return await script(call)

        return sim.run(main)

    def trace_kinds(self) -> list[str]:
        import json

        return [json.loads(line).get("kind") for line in self.sim.trace.lines[1:-1]]

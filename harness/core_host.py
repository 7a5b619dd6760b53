"""Hosts a sync core inside a world, behind the seam of `sync_core.ports`.

The core gets what production would give it, built from the simulation:
HTTP clients whose requests travel the simulated network (as the actor
"core"), its durable store, a seeded generator, a tracer writing ``core.*``
events into the trace, and business time from the world's calendar. The
`CoreActor` runs ``core.run()`` in its own tasks and passes inbound webhooks
to ``core.handle_inbound``; when chaos crashes it, every task dies and the
store keeps only what was committed; a restart calls the factory again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator import Actor, NetworkError, Request, Response, Simulation
from sync_core.ports import Environment, InboundRequest, Store, TransportError

__all__ = ["NetworkClient", "TraceTracer", "CoreActor", "CORE"]

CORE = "core"


class NetworkClient:
    """`sync_core.ports.HttpClient` over the simulated network."""

    def __init__(self, sim: Simulation, src: str, dst: str, default_timeout: float = 30.0) -> None:
        self._sim = sim
        self._src = src
        self._dst = dst
        self._timeout_us = int(default_timeout * 1_000_000)

    async def request(self, method, path, *, json=None, headers=None, query=None, timeout=None) -> Response:
        timeout_us = self._timeout_us if timeout is None else int(timeout * 1_000_000)
        try:
            return await self._sim.network.request(
                self._src, self._dst, Request(method, path, query, headers, json), timeout_us=timeout_us
            )
        except NetworkError as exc:
            raise TransportError(str(exc)) from None


class TraceTracer:
    def __init__(self, sim: Simulation, actor: str = CORE) -> None:
        self._sim = sim
        self._actor = actor

    def event(self, kind: str, data: dict | None = None, *, corr: str | None = None, cause: str | None = None) -> None:
        self._sim.trace.record(kind, data, src=self._actor, corr=corr, cause=cause)


class CoreActor(Actor):
    """The sync core as a process in the world."""

    serves_in_task = True

    def __init__(
        self,
        sim: Simulation,
        factory: Callable[[Environment], Any],
        store: Store,
        systems: list[str],
        config: dict | None = None,
        name: str = CORE,
    ) -> None:
        self._factory = factory
        self._store = store
        self._systems = sorted(systems)
        self._config = dict(config or {})
        self._sim_ref = sim
        self.core = None
        super().__init__(name)

    def init_durable(self) -> Store:
        return self._store

    def _environment(self) -> Environment:
        sim = self._sim_ref
        calendar = sim.calendar
        return Environment(
            clients={s: NetworkClient(sim, self.name, s) for s in self._systems},
            store=self.durable,
            # A fresh stream per life: a restarted process does not resume its
            # predecessor's random sequence.
            random=sim.streams.rng(f"{self.name}.random.{self.generation}"),
            tracer=TraceTracer(sim, self.name),
            now=lambda: calendar.datetime_at(sim.kernel.now_us),
            config=dict(self._config),
        )

    def on_start(self) -> None:
        self.core = self._factory(self._environment())

    async def run(self) -> None:
        await self.core.run()

    async def handle(self, request: Request) -> Response:
        system = request.path.strip("/").split("/")[1] if request.path.startswith("/webhooks/") else "unknown"
        answer = await self.core.handle_inbound(
            InboundRequest(system, request.method, request.path, dict(request.headers), request.json)
        )
        return Response(answer.status, answer.json)

    def idle(self) -> bool:
        return self.running and self.core is not None and self.core.idle()

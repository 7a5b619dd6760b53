"""Hosts a sync core inside a world, behind the seam of `sync_core.ports`.

The core gets what production would give it, built from the simulation:
HTTP clients whose requests travel the simulated network (as the actor
"core"), its durable store, a seeded generator, a tracer writing ``core.*``
events into the trace, and business time from the world's calendar. The
`CoreActor` runs ``core.run()`` in its own tasks and passes inbound webhooks
to ``core.handle_inbound``; when chaos crashes it, every task dies and the
store keeps only what was committed; a restart calls the factory again.

A crash from the chaos schedule fires from a kernel event, between the
core's steps. `CoreActor.kill` strikes *inside* one, for the crash-point
tests: from a hook the core host calls at each step boundary (`on_step`),
it crashes the core so that nothing after that instruction has an effect --
the rest of that life's code may still run up to its next checkpoint (trio
delivers cancellation only there), but its transactions are discarded and
its requests never leave, exactly as if the process had died on the spot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from simulator import Actor, NetworkError, Request, Response, Simulation, Window
from sync_core.ports import Environment, InboundRequest, Store, Transaction, TransportError

__all__ = ["NetworkClient", "TraceTracer", "CoreActor", "CORE"]

CORE = "core"


class NetworkClient:
    """`sync_core.ports.HttpClient` over the simulated network."""

    def __init__(
        self, sim: Simulation, src: str, dst: str, default_timeout: float = 30.0, *, host: CoreActor | None = None
    ) -> None:
        self._sim = sim
        self._src = src
        self._dst = dst
        self._timeout_us = int(default_timeout * 1_000_000)
        self._host = host
        self._life = host.generation if host is not None else None

    async def request(self, method, path, *, json=None, headers=None, query=None, timeout=None) -> Response:
        host = self._host
        if host is not None and host._killed_life == self._life:
            await _die()  # a killed process sends nothing
        timeout_us = self._timeout_us if timeout is None else int(timeout * 1_000_000)
        try:
            response = await self._sim.network.request(
                self._src, self._dst, Request(method, path, query, headers, json), timeout_us=timeout_us
            )
        except NetworkError as exc:
            if host is not None and host._step(self._life, "answer"):
                await _die()
            raise TransportError(str(exc)) from None
        # The call finished: a step boundary. Killed here, the vendor did
        # the work and the core never hears of it.
        if host is not None and host._step(self._life, "answer"):
            await _die()
        return response


async def _die() -> None:
    # The core's scope is cancelled (CoreActor.kill crashed it): this
    # checkpoint raises trio.Cancelled, which unwinds the task as a crash
    # from the chaos schedule would have.
    await trio.lowlevel.checkpoint()
    raise AssertionError("a killed core task ran past a checkpoint")  # pragma: no cover


class _Discarded(Exception):
    pass


class _WriteProbe:
    """A transaction that notes whether it wrote (reads are no boundary:
    crashing after one is crashing before it)."""

    __slots__ = ("_txn", "wrote")

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn
        self.wrote = False

    def get(self, table, key):
        return self._txn.get(table, key)

    def scan(self, table, prefix="", limit=None):
        return self._txn.scan(table, prefix, limit)

    def put(self, table, key, value) -> None:
        self.wrote = True
        self._txn.put(table, key, value)

    def delete(self, table, key) -> None:
        self.wrote = True
        self._txn.delete(table, key)


class _LifeStore:
    """The durable store as one life of the core sees it: after `kill`,
    that life's transactions run but never commit; while `on_step` is set,
    each committed write is a step boundary."""

    def __init__(self, host: CoreActor, life: int) -> None:
        self._host = host
        self._life = life

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        host = self._host
        store = host.durable
        if host._killed_life == self._life:
            try:
                with store.transaction() as txn:
                    yield txn
                    raise _Discarded
            except _Discarded:
                pass
            return
        if host.on_step is None:
            with store.transaction() as txn:
                yield txn
            return
        with store.transaction() as txn:
            probe = _WriteProbe(txn)
            yield probe
        if probe.wrote:
            host._step(self._life, "commit")


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
        # Called as on_step(kind) at each step boundary of a running core:
        # "commit" after each of its transactions that wrote, "answer" when
        # one of its vendor calls finishes (a response, or no answer). The
        # crash-point tests count them and `kill` at one.
        self.on_step: Callable[[str], None] | None = None
        self._killed_life: int | None = None
        super().__init__(name)

    def init_durable(self) -> Store:
        return self._store

    def _environment(self) -> Environment:
        sim = self._sim_ref
        calendar = sim.calendar
        return Environment(
            clients={s: NetworkClient(sim, self.name, s, host=self) for s in self._systems},
            store=_LifeStore(self, self.generation),
            # A fresh stream per life: a restarted process does not resume its
            # predecessor's random sequence.
            random=sim.streams.rng(f"{self.name}.random.{self.generation}"),
            tracer=TraceTracer(sim, self.name),
            now=lambda: calendar.datetime_at(sim.kernel.now_us),
            config=dict(self._config),
        )

    def on_start(self) -> None:
        self.core = self._factory(self._environment())

    def _step(self, life: int, kind: str) -> bool:
        """A step boundary of `life`; True if the hook killed that life."""
        if self.on_step is not None and life == self.generation and self.running:
            self.on_step(kind)
        return self._killed_life == life

    def kill(self, reason: str, *, restart_after_us: int) -> None:
        """Crash the core right now, even from inside one of its own tasks
        (a step hook), and restart it `restart_after_us` later."""
        if not self.running:
            return
        sim = self._sim_ref
        self._killed_life = self.generation
        sim.trace.record("fault.crash", {"actor": self.name, "why": reason})
        sim.crash(self, reason=f"killed ({reason})")
        now = sim.now_us
        # The window's crash finds the core down already; its end restarts it.
        sim.inject(Window("crash", now, now + restart_after_us, target=self.name))

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

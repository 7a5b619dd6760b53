"""Actors: the named participants of a world.

An actor is a network endpoint with a lifecycle (start, stop, crash,
restart) and state in two parts: `durable` survives a crash (a vendor's
database, the core's store), `volatile` is rebuilt from scratch at every
start (caches, in-flight work, timers).

An actor serves a request in one of two ways:

  * synchronously (the default): ``handle(request) -> Response`` is called
    at the moment of delivery, inside the kernel event -- no task switch, the
    way a fake vendor should answer (see ARCHITECTURE.md, performance);
  * in a task (``serves_in_task = True``): ``async handle(request)`` runs in
    a trio task of the actor's own, like a web server's request handler.

Either kind may define ``async run()`` for background work while running.
A crash cancels every task of the actor and every timer it set with
`call_later`, and drops its volatile state; a request that reaches it while
it is down is refused.

An exception escaping ``handle`` becomes a 500 (as a web framework would
answer) and an ``actor.error`` trace event; one escaping ``run`` crashes the
actor. The harness reports both: in a fake they are bugs.
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from .kernel import Waiter
from .messages import Request, Response, encode_body

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["Actor", "Delayed"]


class Delayed:
    """What a synchronous `handle` returns to answer after a service time.

    The effect happens at once (the handler already ran); the response
    leaves `delay_us` later -- unless the actor crashes first, in which case
    it never leaves: a committed write whose caller hears nothing.
    """

    __slots__ = ("response", "delay_us")

    def __init__(self, response: Response, delay_us: int) -> None:
        self.response = response
        self.delay_us = delay_us


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class Actor:
    serves_in_task = False

    def __init__(self, name: str) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"an actor needs a non-empty name, got {name!r}")
        self.name = name
        self.state = "stopped"
        self.sim: Simulation | None = None
        # Incremented at every start and crash; timers and replies from an
        # earlier life check it and do nothing.
        self.generation = 0
        self.durable = self.init_durable()
        self.volatile: Any = None
        self._scope: trio.CancelScope | None = None
        self._inbox: deque = deque()
        self._dispatcher: Waiter | None = None

    # ------------------------------------------------- for subclasses

    def init_durable(self) -> Any:
        """State that survives a crash; built once."""
        return None

    def init_volatile(self) -> Any:
        """State lost in a crash; built at every start."""
        return None

    def handle(self, request: Request) -> Response:
        return Response(404, {"error": "not_found", "message": f"{self.name} serves no {request.method} {request.path}"})

    async def run(self) -> None:
        """Background work while running (optional)."""

    def on_start(self) -> None:
        """Called after every start and restart, volatile state fresh."""

    def inject(self, window) -> None:
        """A fault window aimed at this actor (an outage, say) while the
        world runs; actors that model such faults override this."""
        raise ValueError(f"actor {self.name} does not model {window.kind!r} windows")

    # ------------------------------------------------- helpers

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def now_us(self) -> int:
        return self.sim.kernel.now_us

    def record(self, kind: str, data: dict | None = None, **ids: Any) -> int:
        ids.setdefault("src", self.name)
        return self.sim.trace.record(kind, data, **ids)

    def call_later(self, delay_us: int, fn, *args: Any):
        """A timer that dies with this life of the actor."""
        return self.sim.kernel.call_later(delay_us, self._timer_fired, self.generation, fn, args)

    def _timer_fired(self, generation: int, fn, args) -> None:
        if generation == self.generation and self.state == "running":
            fn(*args)

    def send(self, dst: str, request: Request, on_reply=None, timeout_us: int | None = None) -> str:
        """Send from a synchronous actor; `on_reply` (if given) gets the
        Response or NetworkError, unless the actor crashed meanwhile."""
        if on_reply is None:
            return self.sim.network.post(self.name, dst, request)
        generation = self.generation

        def guarded(result) -> None:
            if generation == self.generation and self.state == "running":
                on_reply(result)

        return self.sim.network.send_request(self.name, dst, request, guarded, timeout_us)

    async def request(self, dst: str, request: Request, *, timeout_us: int | None = None) -> Response:
        """Send from one of this actor's tasks and wait for the response."""
        return await self.sim.network.request(self.name, dst, request, timeout_us=timeout_us)

    # ------------------------------------------------- lifecycle (via Simulation)

    def _start(self) -> None:
        assert self.state != "running", f"{self.name} is already running"
        if inspect.iscoroutinefunction(self.handle) != self.serves_in_task:
            raise TypeError(
                f"actor {self.name}: handle() must be async exactly when serves_in_task is True"
            )
        self.generation += 1
        self.state = "running"
        self.volatile = self.init_volatile()
        self._inbox.clear()
        if self.serves_in_task or type(self).run is not Actor.run:
            self.sim.kernel.spawn(self._host, self.generation)
        self.on_start()

    def _halt(self, state: str) -> None:
        assert self.state == "running", f"{self.name} is not running"
        self.generation += 1
        self.state = state
        self.volatile = None
        self._inbox.clear()
        self._dispatcher = None
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _host(self, generation: int) -> None:
        if generation != self.generation:
            return  # crashed again before this life began
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                async with trio.open_nursery() as nursery:
                    if type(self).run is not Actor.run:
                        nursery.start_soon(self.run)
                    if self.serves_in_task:
                        self._dispatcher = waiter = Waiter(self.sim.kernel)
                        while True:
                            while self._inbox:
                                network, ex, request = self._inbox.popleft()
                                nursery.start_soon(self._serve, network, ex, request, generation)
                            await waiter.wait()
            except Exception as group:
                # An exception escaping the actor's own tasks is a process
                # death, as in production: record it and crash.
                exc = _first_leaf(group)
                self.record("actor.error", {"where": "run", "error": f"{type(exc).__name__}: {exc}"})
                if generation == self.generation and self.state == "running":
                    self.sim.crash(self, reason=f"unhandled {type(exc).__name__}")

    def _accept(self, network, ex, request: Request) -> None:
        if self.serves_in_task:
            self._inbox.append((network, ex, request))
            if self._dispatcher is not None:
                self._dispatcher.wake()
            return
        try:
            response = self.handle(request)
        except Exception as exc:
            response = self._internal_error(request, exc)
        if type(response) is Delayed:
            # The answer is what the handler said now, not what its records
            # say when the answer leaves: snapshot it.
            # Encoded now, once: the text is what travels.
            r = response.response
            self.call_later(response.delay_us, network.reply, ex, r, encode_body(r.json))
        else:
            network.reply(ex, response)

    async def _serve(self, network, ex, request: Request, generation: int) -> None:
        try:
            response = await self.handle(request)
        except Exception as exc:
            response = self._internal_error(request, exc)
        if generation == self.generation:
            network.reply(ex, response)

    def _internal_error(self, request: Request, exc: Exception) -> Response:
        message = f"{type(exc).__name__}: {exc}"
        self.record("actor.error", {"where": f"{request.method} {request.path}", "error": message})
        return Response(500, {"error": "internal_error", "message": message})

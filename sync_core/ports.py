"""The seam: everything the sync core may touch, and nothing else.

The core is production code. It imports neither the simulator nor the fakes
(a test checks); it is handed an `Environment` holding

  * one HTTP client per vendor system (`HttpClient`): in a simulation they
    travel through the simulated network, in production they would wrap
    httpx -- the core cannot tell;
  * a durable `Store` with transactions: what a transaction committed
    survives a crash of the core, what it did not commit is lost;
  * a seeded `random.Random` for jitter, a `Tracer` for decisions, a clock
    for business dates, and its configuration.

Inbound webhooks reach the core as `InboundRequest`s through
``Core.handle_inbound``. Only JSON data crosses: dicts, lists, str, int,
bool, None, with money as decimal strings.

A core is built by a factory, ``factory(env) -> Core``, named on the command
line as ``module:factory``; after a crash the harness calls the factory
again with the same store.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "HttpResponse",
    "HttpClient",
    "InboundRequest",
    "InboundResponse",
    "Transaction",
    "Store",
    "Tracer",
    "Environment",
    "Core",
    "TransportError",
]


class TransportError(Exception):
    """No HTTP answer: a timeout, a refused connection. Whether the vendor
    acted on the request is unknown -- the core must find out."""


@runtime_checkable
class HttpResponse(Protocol):
    status: int
    headers: dict
    json: Any


@runtime_checkable
class HttpClient(Protocol):
    """One vendor's API. Raises `TransportError` when no answer came."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict | None = None,
        query: dict | None = None,
        timeout: float | None = None,
    ) -> HttpResponse: ...


@attrs.frozen
class InboundRequest:
    """A webhook delivered to the core: which system sent it, and the HTTP
    request as it arrived."""

    system: str
    method: str
    path: str
    headers: dict
    json: Any


@attrs.frozen
class InboundResponse:
    status: int
    json: Any = None


class Transaction(Protocol):
    """Key-value tables; values are JSON data. Reads see this transaction's
    own writes."""

    def get(self, table: str, key: str) -> Any | None: ...

    def put(self, table: str, key: str, value: Any) -> None: ...

    def delete(self, table: str, key: str) -> None: ...

    def scan(self, table: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """(key, value) pairs in key order whose key starts with `prefix`, at
        most `limit` of them, as they were when the iteration began."""
        ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commits when the block ends normally, rolls back if it raises.
        Transactions are synchronous: never await inside one."""
        ...


class Tracer(Protocol):
    def event(self, kind: str, data: dict | None = None, *, corr: str | None = None, cause: str | None = None) -> None:
        """Record a decision (``core.*`` kinds) in the run's trace."""
        ...


@attrs.define
class Environment:
    clients: dict[str, HttpClient]
    store: Store
    random: random.Random
    tracer: Tracer
    now: Callable[[], datetime]  # business time (aware UTC datetime)
    config: dict = attrs.Factory(dict)


class Core(Protocol):
    async def run(self) -> None:
        """The core's long-running work (pollers, dispatchers); cancelled
        when the process stops or crashes."""
        ...

    async def handle_inbound(self, request: InboundRequest) -> InboundResponse:
        """A webhook; answer quickly (2xx once it is durably accepted)."""
        ...

    def idle(self) -> bool:
        """True when nothing is queued or in progress (for quiescence)."""
        ...

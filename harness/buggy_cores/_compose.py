"""How a catalogue bug is put into the reference core: by composition.

The reference core (`sync_core.core.ReferenceCore`) carries no switch for
any of these bugs. Each buggy core is the reference core built over a
slightly wrong seam, or with one of its parts swapped on the instance:

  * `wrap_clients` -- a vendor's HTTP client that changes what goes out or
    what comes back (a header dropped, a field rewritten);
  * `StoreOverlay` -- a store in which some tables are not durable;
  * `replace_operation` -- one named outbox operation performed differently;
  * `flow` -- one flow instance, to override a method on it.

Like any user's core, the buggy cores see only the seam of
`sync_core.ports`: they import neither the simulator nor the fakes.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from sync_core.core import ReferenceCore
from sync_core.dispatcher import OpContext, Operation
from sync_core.ports import Environment, HttpClient, HttpResponse, Store, Transaction
from sync_core.stores import MemoryStore

__all__ = ["Reply", "WrappedClient", "wrap_clients", "StoreOverlay", "replace_operation", "flow", "first_attempt",
           "Outgoing", "Incoming"]

#: ``outgoing(method, path, json, headers, query) -> (json, headers)``
Outgoing = Callable[[str, str, Any, dict, Any], tuple[Any, dict]]
#: ``incoming(method, path, response) -> response``
Incoming = Callable[[str, str, HttpResponse], HttpResponse]


@attrs.frozen
class Reply:
    """A vendor's answer as a wrapper rewrote it (`HttpResponse`)."""

    status: int
    headers: dict
    json: Any

    @classmethod
    def of(cls, response: HttpResponse, **changes: Any) -> Reply:
        return cls(**{"status": response.status, "headers": dict(response.headers or {}), "json": response.json,
                      **changes})


class WrappedClient:
    """`sync_core.ports.HttpClient` around another one."""

    def __init__(self, inner: HttpClient, outgoing: Outgoing | None = None, incoming: Incoming | None = None) -> None:
        self._inner = inner
        self._outgoing = outgoing
        self._incoming = incoming

    async def request(self, method, path, *, json=None, headers=None, query=None, timeout=None) -> HttpResponse:
        headers = dict(headers or {})
        if self._outgoing is not None:
            json, headers = self._outgoing(method, path, json, headers, query)
        response = await self._inner.request(method, path, json=json, headers=headers, query=query, timeout=timeout)
        return response if self._incoming is None else self._incoming(method, path, response)


def wrap_clients(env: Environment, systems: tuple[str, ...] | None = None, *, outgoing: Outgoing | None = None,
                 incoming: Incoming | None = None) -> Environment:
    """`env` with the clients of `systems` (all when None) wrapped."""
    clients = {name: (WrappedClient(client, outgoing, incoming) if systems is None or name in systems else client)
               for name, client in env.clients.items()}
    return attrs.evolve(env, clients=clients)


class _OverlayTxn:
    def __init__(self, durable: Transaction, volatile: Transaction, tables: frozenset[str]) -> None:
        self._durable = durable
        self._volatile = volatile
        self._tables = tables

    def _of(self, table: str) -> Transaction:
        return self._volatile if table in self._tables else self._durable

    def get(self, table: str, key: str) -> Any | None:
        return self._of(table).get(table, key)

    def put(self, table: str, key: str, value: Any) -> None:
        self._of(table).put(table, key, value)

    def delete(self, table: str, key: str) -> None:
        self._of(table).delete(table, key)

    def scan(self, table: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, Any]]:
        return self._of(table).scan(table, prefix, limit)


class StoreOverlay:
    """A `Store` whose `tables` live in memory and die with the process
    (a fresh overlay per life of the core); every other table is the
    durable store's. A transaction spans both and commits both."""

    def __init__(self, durable: Store, tables: tuple[str, ...]) -> None:
        self._durable = durable
        self._volatile = MemoryStore()
        self._tables = frozenset(tables)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._durable.transaction() as durable, self._volatile.transaction() as volatile:
            yield _OverlayTxn(durable, volatile, self._tables)


def replace_operation(core: ReferenceCore, name: str,
                      perform: Callable[[Callable[[OpContext, dict], Awaitable[Any]], OpContext, dict], Awaitable[Any]]
                      ) -> None:
    """Perform operation `name` as ``perform(original, ctx, payload)``."""
    op: Operation = core.dispatcher.operations[name]
    original = op.perform

    async def performed(ctx: OpContext, payload: dict) -> Any:
        return await perform(original, ctx, payload)

    core.dispatcher.operations[name] = attrs.evolve(op, perform=performed)


def flow(core: ReferenceCore, name: str) -> Any:
    """The core's flow called `name` (``"amendments"``, ``"feedback"``...)."""
    for f in core.flows:
        if f.name == name:
            return f
    raise LookupError(f"the reference core has no flow named {name!r}; its flows: {[f.name for f in core.flows]}")


def first_attempt(ctx: OpContext) -> OpContext:
    """`ctx` as if no earlier attempt had ever been made."""
    fresh = copy.copy(ctx)
    fresh.attempt = 1
    return fresh

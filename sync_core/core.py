"""The reference sync core: the seeds' flows over the reliability machinery.

Each flow (one module in `sync_core.flows`) contributes

  * operations -- named vendor calls the dispatcher performs from the outbox;
  * pollers -- loops that read a vendor's change feed through the inbox;
  * webhook handlers -- for the systems that push.

The core owns what they share: the dispatcher (outbox, retries, limits,
breakers, DLQ, exception queues), the store, cross-references between
systems' ids, and the clock. ``factory(env)`` is `ReferenceCore`; the harness
names it ``sync_core.core:ReferenceCore``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .dispatcher import Dispatcher, Operation, now_us
from .feeds import FeedReaders
from .kpis import CoreKpis
from .outbox import Outbox, next_counter
from .pollers import Poller
from .ports import Environment, InboundRequest, InboundResponse, Transaction
from .reconciliation import ReconciliationJob

__all__ = ["ReferenceCore", "Flow", "FLOWS", "DEFAULT_LIMITS"]

# Flow modules in sync_core.flows, in the order a deal lives through them.
FLOWS = [
    "quote_to_project",
    "time_to_finance",
    "milestones",
    "amendments",
    "feedback",
    "workers",
]

# Requests in flight per vendor: below each vendor's published caps, so the
# core is a good citizen of a concurrency limit shared with other integrations.
DEFAULT_LIMITS = {"crm": 4, "psa": 4, "erp": 2, "billing": 4, "revenue": 4, "hris": 2, "expenses": 2}


class Flow(Protocol):
    name: str

    def operations(self) -> list[Operation]: ...

    def pollers(self) -> list[Poller]: ...

    def webhooks(self) -> dict[str, Callable[[InboundRequest], Awaitable[InboundResponse]]]: ...

    # Optional: ``idle() -> bool``, False while the flow has work due on a
    # timer (a fetch it will make when a wait runs out) that neither the
    # outbox nor a poller shows.


class ReferenceCore:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.config = dict(env.config)
        self.feeds = FeedReaders(self)
        self.flows: list[Flow] = []
        for name in self.config.get("flows", FLOWS):
            try:
                module = importlib.import_module(f"sync_core.flows.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"sync_core.flows.{name}":
                    raise
                continue  # a flow not written yet
            self.flows.append(module.build(self))
        self.kpis = CoreKpis(self)
        self.reconciliation = ReconciliationJob(self)  # after the flows: it reads what they post
        operations = self.kpis.instrument([op for flow in self.flows for op in flow.operations()])
        limits = dict(DEFAULT_LIMITS, **self.config.get("limits", {}))
        self.dispatcher = Dispatcher(env, operations, limits=limits)
        self.pollers = self.feeds.pollers() + [p for flow in self.flows for p in flow.pollers()]
        self.inbound: dict[str, Callable[[InboundRequest], Awaitable[InboundResponse]]] = {}
        for flow in self.flows:
            for system, handler in flow.webhooks().items():
                if system in self.inbound:
                    raise ValueError(f"two flows handle {system} webhooks; route them through one")
                self.inbound[system] = handler

    # ------------------------------------------------------------ the Core protocol

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.dispatcher.run)
            nursery.start_soon(self.reconciliation.run)
            nursery.start_soon(self.kpis.run)
            for poller in self.pollers:
                nursery.start_soon(poller.run)

    async def handle_inbound(self, request: InboundRequest) -> InboundResponse:
        handler = self.inbound.get(request.system)
        if handler is None:
            return InboundResponse(404, {"error": f"no webhook handler for {request.system}"})
        return await handler(request)

    def idle(self) -> bool:
        return (self.dispatcher.idle() and all(p.caught_up for p in self.pollers) and self.reconciliation.idle()
                and all(flow.idle() for flow in self.flows if hasattr(flow, "idle")))

    # ------------------------------------------------------------ for flows

    def now_us(self) -> int:
        return now_us(self.env)

    def enqueue(
        self,
        txn: Transaction,
        op: str,
        payload: dict,
        *,
        aggregate: str,
        corr: str | None = None,
        cause: str | None = None,
        delay_us: int = 0,
    ) -> str:
        """Queue an operation in the caller's transaction. The dispatcher is
        woken now; it looks once this task next yields, by which time the
        transaction (which never awaits) has committed."""
        msg_id = Outbox.enqueue(
            txn, op, payload, aggregate=aggregate, now_us=self.now_us(), corr=corr, cause=cause, delay_us=delay_us
        )
        self.dispatcher.wake()
        return msg_id

    def poller(self, name: str, poll_once: Callable[[], Awaitable[bool]], interval: float) -> Poller:
        return Poller(self.env, name, poll_once, interval=interval)

    @staticmethod
    def xref_get(txn: Transaction, system: str, kind: str, source_id: str) -> Any:
        """What the core knows of `source_id` (an id in `system`) as `kind`."""
        return txn.get("xref", f"{system}:{kind}:{source_id}")

    @staticmethod
    def xref_put(txn: Transaction, system: str, kind: str, source_id: str, value: Any) -> None:
        txn.put("xref", f"{system}:{kind}:{source_id}", value)

    def open_exception(self, txn: Transaction, domain: str, code: str, message: str, details: dict | None = None) -> str:
        """An exception not tied to an outbox message (a feed gap, a record
        that cannot be mapped): a person must look."""
        item_id = f"ex{next_counter(txn, 'exceptions'):08d}"
        txn.put("exceptions", f"{domain}:{item_id}", {
            "id": item_id, "domain": domain, "code": code, "message": message, "details": details or {},
            "op": None, "aggregate": None, "opened_us": self.now_us(),
        })
        self.trace("core.exception.opened", {"id": item_id, "domain": domain, "code": code, "reason": message})
        return item_id

    def trace(self, kind: str, data: dict | None = None, *, corr: str | None = None, cause: str | None = None) -> None:
        self.env.tracer.event(kind, data, corr=corr, cause=cause)

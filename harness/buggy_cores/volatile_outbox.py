"""No durable outbox: a crash loses work."""

from __future__ import annotations

import attrs

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import StoreOverlay

__all__ = ["outbox_in_memory"]

# The outbox's tables (sync_core.outbox): messages, the ready heads and the
# per-aggregate lines. The dead-letter and exception queues stay durable.
OUTBOX_TABLES = ("msgs", "ready", "agg")


def outbox_in_memory(env: Environment) -> ReferenceCore:
    """The work queue lives in memory; decisions and the inbox are durable.

    The real-world bug: the core commits "event handled" to its database and
    puts the resulting vendor calls on an in-process queue. A crash between
    the two -- or before the queue drains -- loses the calls, and because
    the events are marked handled, nothing ever brings them back: a deal
    never provisioned, approved time never posted.

    Exposed by: ``core-crash-restart`` (the core crashes every couple of
    hours, and at the worst moments).
    Caught by: "core crashes: no work was lost across the crashes" (and
    "nothing silently lost").
    """
    return ReferenceCore(attrs.evolve(env, store=StoreOverlay(env.store, OUTBOX_TABLES)))

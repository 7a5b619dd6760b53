"""What a person can do to a live world besides moving time: order a fault,
or act on the core's queues.

Both are carried out by the simulation thread between two events
(`host.WorldHost`), never by the UI.
"""

from __future__ import annotations

import importlib

import attrs

from simulator import SECOND, Window, format_duration

__all__ = ["ChaosOrder", "chaos_window", "operator_action"]


@attrs.frozen
class ChaosOrder:
    """A fault a person asks for, from now for `duration_us`."""

    kind: str  # partition | outage | slow | crash
    target: str
    duration_us: int
    delay_us: int | None = None  # slow: extra response time

    def describe(self) -> str:
        what = {"partition": f"partition core ⇄ {self.target}", "outage": f"outage of {self.target}",
                "slow": f"{self.target} answers {format_duration(self.delay_us or 0)} slower",
                "crash": f"crash {self.target}"}[self.kind]
        return f"{what} for {format_duration(self.duration_us)}"


def chaos_window(order: ChaosOrder, center: str, now_us: int) -> Window:
    """The fault window an order stands for, from `now_us`."""
    end = now_us + order.duration_us
    if order.kind == "partition":
        return Window("partition", now_us, end, between=(center, order.target))
    if order.kind == "outage":
        return Window("outage", now_us, end, target=order.target)
    if order.kind == "slow":
        return Window("slow", now_us, end, target=order.target, delay=order.delay_us or 30 * SECOND)
    if order.kind == "crash":
        return Window("crash", now_us, end, target=order.target)
    raise ValueError(f"no such fault: {order.kind!r}; choose partition, outage, slow or crash")


def operator_action(world, action: str, key: str) -> bool:
    """A person's action on the core's queues: replay a dead letter, or
    retry an item from an exception queue.

    The harness or the core may offer it (``world.<action>(key)`` or
    ``core.<action>(key)``). Until one does, the reference core's own outbox
    operations are used, through the store the harness gave it -- the one
    place the UI reaches past the harness, and only for these two verbs.
    """
    hook = getattr(world, action, None)
    if callable(hook):
        return bool(hook(key))
    core = world.core.core
    if core is None:
        raise ValueError("the core has not started yet")
    hook = getattr(core, action, None)
    if callable(hook):
        return bool(hook(key))
    outbox = importlib.import_module("sync_core.outbox").Outbox
    now = core.now_us()
    with world.store.transaction() as txn:
        if action == "replay_dead_letter":
            done = outbox.replay_dead_letter(txn, key, now)
        else:
            domain, _, msg_id = key.partition(":")
            done = outbox.resolve_exception(txn, domain, msg_id, retry=True, now_us=now)
    core.dispatcher.wake()
    return done

"""What a person can do to a live world besides moving time: order a fault,
or act on the core's queues.

Both are carried out by the simulation thread between two events
(`host.WorldHost`), never by the UI.
"""

from __future__ import annotations

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
    retry an item from an exception queue (key ``domain:msg_id``).

    The harness's world carries it out (`BusinessWorld.replay_dead_letter`,
    `BusinessWorld.retry_exception`); the UI never reaches into the core.
    False if the item is no longer in its queue.
    """
    if action == "replay_dead_letter":
        return world.replay_dead_letter(key)
    if action == "retry_exception":
        return world.retry_exception(key)
    raise ValueError(f"no such action on the core's queues: {action!r}; choose replay_dead_letter or retry_exception")

"""Contract amendments applied in the order the consumer takes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import flow, replace_operation

__all__ = ["amendments_applied_in_arrival_order"]

OP = "revenue.apply_contract_version"


class _Stack:
    """The store, with the amendment messages a transaction pushed taken off
    newest first just before it commits (the consumer pops the top)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.pushed: list[tuple] = []
        self.on_commit = None

    @contextmanager
    def transaction(self) -> Iterator:
        with self._inner.transaction() as txn:
            self.pushed = []
            try:
                yield txn
                if self.pushed and self.on_commit is not None:
                    self.on_commit(txn)
            finally:
                self.pushed = []


def amendments_applied_in_arrival_order(env: Environment) -> ReferenceCore:
    """Contract versions reach the revenue engine in the order the amendment
    consumer takes them -- newest first -- each applied as the message says.

    The real-world bug: the amendment messages go through a "queue" that is
    in fact a stack (a Redis list pushed and popped at the same end), and the
    consumer applies "the version in the message" to the revenue contract
    instead of bringing the contract up from where it stands. Two change
    orders signed minutes apart and read together are taken newest first:
    the engine jumps from version 1 to 3, then refuses version 2 as stale --
    version 2's change never reaches revenue, and the contract's history
    skips it.

    Exposed by: ``change-order`` (versions 2 and 3 signed two minutes apart,
    read from the CRM's feed together).
    Caught by: "contract versions applied in order, never backwards" (the
    revenue contract jumps from version 1 to 3). The scenario's own "the
    revenue contract went from the baseline through every version in order"
    only looks for a step back, so a skip passes it.
    """
    stack = _Stack(env.store)
    core = ReferenceCore(attrs.evolve(env, store=stack))
    amendments = flow(core, "amendments")
    enqueue = core.enqueue

    def push(txn, op, payload, *, aggregate, **kw):
        if op != OP:
            return enqueue(txn, op, payload, aggregate=aggregate, **kw)
        stack.pushed.append((payload, f"{aggregate}:revenue", kw))
        return None

    def pop_all(txn):  # what was pushed in this transaction, newest first, onto the consumer's line
        for payload, aggregate, kw in reversed(stack.pushed):
            enqueue(txn, OP, payload, aggregate=aggregate, **kw)

    stack.on_commit = pop_all
    core.enqueue = push

    async def apply_as_it_comes(original, ctx, p):
        contract = amendments._contract(p["deal"])
        rc = await amendments._revenue_contract(ctx, p["deal"])
        if rc["source_version"] >= p["version"]:
            return {"rc": rc["rc_id"], "version": rc["source_version"], "steps": []}
        step = await amendments._revenue_step(ctx, rc, contract, p["version"])
        return {"rc": rc["rc_id"], "version": p["version"], "steps": [step]}

    replace_operation(core, OP, apply_as_it_comes)
    return core

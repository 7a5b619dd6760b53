"""A won deal's provisioning record, and the shape of the flow's operations.

Table ``provisioning``, one record per CRM Opportunity Id::

    {"deal", "state", "source_event", "planned_us", "provisioned_us",
     "contract_gid", "customer_gid", "snapshot", "entity"}

``state`` moves planned -> read (the CRM was read) -> mapped (canonical
contract stored, legal entity chosen) -> provisioned (every step done, the
CRM written back); or planned -> not_won, when the opportunity read back is
not won after all (the steps queued behind then do nothing). Table
``customer_gids`` keeps the canonical customer gid of each CRM Account,
``customers`` its canonical `CustomerAccount`.

Every operation of the flow takes the payload ``{"deal": <Opportunity Id>}``
and reads what it needs -- the record, the contract, cross-references left
by the steps before it -- from the store when it runs, so the whole plan
can be queued at once, in order, when the deal is won (`deal_op`).

Every vendor call goes through `call`, which waits out a vendor's "slow
down" on the spot. A rate limit, a concurrency cap or a lock contention is
answered before the vendor does anything (nothing is saved, not even under
an idempotency key), so resending the same request is safe, and a setup
step of several calls must not spend its attempts on them: the dispatcher
counts every failed attempt, and under a one-second rate window shared by
four busy operations a step can otherwise use up all twelve without getting
through (a swarm seed did). For the same reason a request that is safe
to repeat -- a read, an upsert, a keyed create -- is asked again when its
answer is lost; a PSA create is not (its step looks up first instead).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .. import xrefs
from ..dispatcher import OpContext, Operation
from ..ports import Environment, HttpResponse, Transaction
from ..replies import error_code, retry_after
from ..retry import BusinessException, RetryLater

__all__ = ["DEALS", "call", "deal_op", "read", "record_of", "require_xref", "update_record"]

DEALS = "provisioning"

# Answers that mean "not now, nothing done": each vendor's rate limit,
# concurrency cap and lock contention (429s are recognised by status).
SLOW_DOWN = {
    "crm": {"REQUEST_LIMIT_EXCEEDED", "RECORD_LOCKED"},
    "erp": {"ACCT_CONCURRENCY_LIMIT_EXCEEDED", "RECORD_CHANGED_SINCE_LOADED"},
    "psa": {"record_locked"},
    "revenue": {"RC_LOCKED"},
}
WAITS = 8  # at most this many waits per call,
LOST = 3  # this many repeats of a safe request whose answer was lost,
MARGIN_S = 35.0  # and never so late that the call could outrun the operation's deadline

Perform = Callable[[OpContext, str, dict], Awaitable[dict]]
Record = Callable[[Transaction, str, dict, int], None]


def _slow_down(system: str, response: HttpResponse) -> bool:
    return response.status == 429 or error_code(system, response.json) in SLOW_DOWN.get(system, ())


async def call(ctx: OpContext, method: str, path: str, *, json: Any = None, headers: dict | None = None,
               query: dict | None = None, idempotent: bool | None = None) -> HttpResponse:
    """`ctx.call`, waiting out "slow down" answers (Retry-After if the vendor
    gives one, else exponential backoff with seeded jitter) and, for a
    request that is safe to repeat (`idempotent`; by default anything but a
    POST), asking again when no answer came. The last answer is returned for
    the caller to judge; a lost answer to an unsafe request raises
    `RetryLater(ambiguous=True)` at once, for the operation to look before
    it repeats anything."""
    safe = method != "POST" if idempotent is None else idempotent
    waits = lost = 0
    while True:
        try:
            response = await ctx.call(method, path, json=json, headers=headers, query=query)
        except RetryLater:
            lost += 1
            if not safe or lost > LOST or trio.current_time() + MARGIN_S > trio.current_effective_deadline():
                raise
            ctx.env.tracer.event("core.call.repeated", {"method": method, "path": path}, corr=ctx.corr,
                                 cause=ctx.message["id"])
            continue
        if waits == WAITS or not _slow_down(ctx.system, response):
            return response
        after = retry_after(response)
        wait = (after if after is not None else min(30.0, 0.5 * 2 ** waits)) * (1 + ctx.env.random.random() / 4)
        if trio.current_time() + wait + MARGIN_S > trio.current_effective_deadline():
            return response
        ctx.env.tracer.event("core.call.waited", {"path": path, "status": response.status, "wait_ms": int(wait * 1000)},
                             corr=ctx.corr, cause=ctx.message["id"])
        await trio.sleep(wait)
        waits += 1


def read(env: Environment, fn: Callable[[Transaction], Any]) -> Any:
    """`fn(txn)` in a read transaction of its own (no await inside)."""
    with env.store.transaction() as txn:
        return fn(txn)


def record_of(txn: Transaction, deal: str) -> dict | None:
    return txn.get(DEALS, deal)


def update_record(txn: Transaction, deal: str, **fields: Any) -> dict:
    record = dict(txn.get(DEALS, deal) or {"deal": deal}, **fields)
    txn.put(DEALS, deal, record)
    return record


def require_xref(env: Environment, kind: str, source_id: str, step: str) -> Any:
    """A cross-reference an earlier step wrote; missing means that step was
    skipped (a person resolved its exception without running it)."""
    value = read(env, lambda txn: xrefs.get(txn, kind, source_id))
    if value is None:
        raise BusinessException("it", "PREREQUISITE_MISSING",
                                f"{step} needs the {kind} of {source_id}, which no earlier step recorded; "
                                "re-run the deal's earlier steps (or provision it by hand)",
                                {"kind": kind, "source_id": source_id})
    return value


def deal_op(name: str, perform: Perform, on_success: Record | None = None, *, timeout: float = 120.0,
            states: tuple[str, ...] = ("mapped", "provisioned")) -> Operation:
    """An operation on one deal: runs `perform(ctx, deal, record)` when the
    deal's record is in one of `states`; a deal found not won is skipped."""

    async def run(ctx: OpContext, payload: dict) -> dict:
        deal = payload["deal"]
        record = read(ctx.env, lambda txn: record_of(txn, deal))
        if record is None or record["state"] == "not_won":
            return {"skipped": True}
        if record["state"] not in states:
            raise BusinessException("it", "OUT_OF_ORDER", f"{name} ran for deal {deal} in state {record['state']}; "
                                    f"it needs {' or '.join(states)}", {"deal": deal})
        return await perform(ctx, deal, record)

    def done(txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        if on_success is not None and not result.get("skipped"):
            on_success(txn, message["payload"]["deal"], result, now_us)

    return Operation(name, run, done, timeout)

"""Reads an operation makes on the way to its write.

An operation writes to one vendor (its name says which: ``psa.*``), but may
need to read first -- from the same vendor or another (the CRM write-back
reads billing's invoices; the HRIS read feeds the PSA write). A read is
safe to repeat, so a short "slow down" is worth waiting out on the spot
rather than failing the whole operation: every failed attempt starts the
operation again from its first call, and a vendor with a one-second rate
window and an operation of several calls can otherwise use up all its
attempts without ever getting through (a swarm seed did exactly that).

For the same reason a read whose answer was lost is asked again on the
spot (as `quote_deal.call` does for the deal flow's own safe requests):
an operation that reads the CRM twice and starts over whenever an answer
goes missing gets through at 60% response loss one attempt in six, and
spends its retry budget in a couple of hours; asked again in place, each read gets
there (a swarm seed dead-lettered a deal's ERP customer step exactly so --
its look at the opportunity and at the country's accounts -- and with it
the whole deal: nothing was set up after the world healed).

`read` carries the operation's correlation and causation ids, like
`OpContext.call`, to whichever vendor it asks.
"""

from __future__ import annotations

from typing import Any

import trio

from ..dispatcher import OpContext
from ..ports import HttpResponse, TransportError
from ..replies import check, retry_after
from ..retry import RetryLater

__all__ = ["read"]

SHORT_WAIT_S = 5.0  # a Retry-After up to this is waited out in place
WAITS = 3  # at most this many times per read
LOST = 3  # a read whose answer was lost is asked again up to this many times,
MARGIN_S = 35.0  # but never so late that the read could outrun the operation's deadline


async def read(ctx: OpContext, system: str, path: str, query: dict | None = None, *, ok: tuple[int, ...] = (200,)) -> HttpResponse:
    """GET `path` from `system`; the answer if its status is in `ok`, else
    what `replies.check` makes of it (after waiting out short 429s)."""
    for _ in range(WAITS + 1):
        response = await _get(ctx, system, path, query)
        wait = retry_after(response) if response.status == 429 else None
        if wait is None or wait > SHORT_WAIT_S:
            break
        await trio.sleep(wait + ctx.env.random.uniform(0, 0.25))
    return check(system, response, ok=ok, doing=f"reading {path}")


async def _get(ctx: OpContext, system: str, path: str, query: dict | None) -> Any:
    """One answer to GET `path`, asking again when an answer is lost
    (a GET is safe to repeat) while the operation's deadline allows."""
    lost = 0
    while True:
        try:
            return await _get_once(ctx, system, path, query)
        except RetryLater:
            lost += 1
            if lost > LOST or trio.current_time() + MARGIN_S > trio.current_effective_deadline():
                raise
            ctx.env.tracer.event("core.call.repeated", {"method": "GET", "path": path, "system": system},
                                 corr=ctx.corr, cause=ctx.message["id"])


async def _get_once(ctx: OpContext, system: str, path: str, query: dict | None) -> Any:
    if system == ctx.system:
        return await ctx.call("GET", path, query=query)
    headers = {"x-causation-id": ctx.message["id"]}
    if ctx.corr:
        headers["x-correlation-id"] = ctx.corr
    try:
        return await ctx.env.clients[system].request("GET", path, headers=headers, query=query)
    except TransportError as exc:
        raise RetryLater(f"no answer from {system}: {exc}") from None

"""Vendor calls that wait out a throttle, for operations of several calls.

An operation of the milestone, amendment and time-to-finance flows makes up
to half a dozen calls (look up, look up, create, create). Under a tight rate
limit -- two requests a second, shared with the feed pollers and every other
flow -- the third or fifth call meets a 429; failing the whole operation
there only repeats the first calls next time, into the same wall, for ever
(a throttle costs no retry budget, so nothing ends the loop). A throttle (or
a record locked by another writer) means the request was *not executed*, so
the call itself can wait what the vendor asks (Retry-After, else a second)
and go again, and the operation carries on where it was. Only throttles are
waited out here: a 5xx or a timeout may have acted, and goes back to the
dispatcher's retry policy as before. After `PATIENCE` waits, or when the
vendor asks for longer than is worth holding a running operation (or than
its timeout leaves), the operation gives up this attempt with the vendor's
Retry-After, like any other throttled one.

`patient(ctx)` is the operation's context with that `call`; everything else
passes through.
"""

from __future__ import annotations

from typing import Any

import trio

from ..dispatcher import OpContext, Operation
from ..ports import HttpResponse
from ..replies import error_code, retry_after, throttled
from ..retry import RetryLater

__all__ = ["patient", "patient_operation", "PATIENCE", "OP_TIMEOUT"]

PATIENCE = 8  # throttles waited out per call before the attempt gives up
OP_TIMEOUT = 600.0  # seconds: room for the waits
LONGEST_WAIT_S = 60.0  # a longer Retry-After is waited out by the dispatcher, the operation ended
MARGIN_S = 5.0  # what a wait leaves of the operation's timeout, for the call after it

# Refusals that mean "not now, and nothing was done", in each family's words:
# rate limits and caps on requests in flight (429s, the CRM's 403, the ERP's
# 400), and records locked by another writer (refused before any change).
_THROTTLES = {"ACCT_CONCURRENCY_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED", "lock_timeout", "rate_limit",
              "concurrent_requests_limit", "too_many_requests", "too_many_concurrent_requests", "RATE_LIMIT_EXCEEDED",
              "CONCURRENT_JOB_LIMIT", "ACCT_REQUEST_RATE_EXCEEDED", "TOO_MANY_REQUESTS", "RATE_LIMIT_REACHED",
              "RC_LOCKED", "record_locked", "RECORD_LOCKED", "RECORD_CHANGED_SINCE_LOADED"}


def _throttled(system: str, response: HttpResponse) -> bool:
    return response.status == 429 or (
        response.status in (400, 403, 409) and error_code(system, response.json) in _THROTTLES)


class _Patient:
    def __init__(self, ctx: OpContext) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def call(self, method: str, path: str, *, json: Any = None, headers: dict | None = None,
                   query: dict | None = None) -> HttpResponse:
        ctx = self._ctx
        for waits in range(PATIENCE + 1):
            response = await ctx.call(method, path, json=json, headers=headers, query=query)
            if not _throttled(ctx.system, response):
                return response
            asked = retry_after(response)
            wait = max(0.5, 1.0 if asked is None else asked)
            longest = wait * 1.25  # with the jitter below
            if (waits == PATIENCE or wait > LONGEST_WAIT_S
                    or trio.current_time() + longest + MARGIN_S > trio.current_effective_deadline()):
                break
            # Jitter from the seeded generator, so a crowd of waiters spreads out.
            await trio.sleep(wait * (1 + ctx.env.random.random() / 4))
        raise RetryLater(f"{ctx.system} {method} {path}: still throttled after {waits} waits",
                         after=asked, throttled=throttled(ctx.system, response))


def patient(ctx: OpContext) -> OpContext:
    """`ctx`, whose `call` waits out throttles (module doc)."""
    return _Patient(ctx)  # type: ignore[return-value]


def patient_operation(name: str, perform, on_success=None, *, timeout: float = OP_TIMEOUT) -> Operation:
    """An `Operation` whose `perform` gets a `patient` context."""

    async def run(ctx: OpContext, payload: dict) -> Any:
        return await perform(patient(ctx), payload)

    return Operation(name, run, on_success, timeout)

"""A posting refused for a closed period is dropped."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment
from sync_core.retry import BusinessException

from ._compose import replace_operation

__all__ = ["closed_period_posting_dropped"]

CLOSED = ("PERIOD_CLOSED", "PERIOD_AR_LOCKED")


def closed_period_posting_dropped(env: Environment) -> ReferenceCore:
    """An ERP posting refused because its period is closed is logged and
    forgotten -- neither routed to finance nor reposted in the open period.

    The real-world bug: "the ERP said the period is closed, so there is
    nothing to post" -- the error handler treats the refusal as final and
    marks the message done. A time correction approved after the close
    (its reversal dated in the closed month) silently vanishes: the ERP
    keeps the old hours, billing and revenue move on, and no person is
    told.

    Exposed by: ``retro-time-correction`` (an invoiced January entry
    corrected after January closed).
    Caught by: "nothing silently lost" (and "ERP: approved time posted
    exactly once, earlier versions reversed", and the scenario's "retro
    correction, closed period: nothing lands in January; finance or the
    open period takes it").
    """
    core = ReferenceCore(env)

    async def forget_closed(original, ctx, payload):
        try:
            return await original(ctx, payload)
        except BusinessException as exc:
            if exc.code not in CLOSED:
                raise
            ctx.env.tracer.event("core.erp.refusal_ignored", {"op": ctx.message["op"], "code": exc.code,
                                                              "reason": exc.message}, corr=ctx.corr,
                                 cause=ctx.message["id"])
            return {"skipped": f"{exc.code}: {exc.message}"}

    for name in sorted(core.dispatcher.operations):
        if name.startswith("erp."):
            replace_operation(core, name, forget_closed)
    return core

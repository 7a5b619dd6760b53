"""Milestones billed on completion, before the client signs off."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.flows.milestone_calls import patient
from sync_core.ports import Environment

from ._compose import flow, replace_operation

__all__ = ["milestone_billed_before_signoff"]

OP = "billing.hold_milestone"


def milestone_billed_before_signoff(env: Environment) -> ReferenceCore:
    """A completed milestone is billed at once, with no hold.

    The real-world bug: the integration maps the PSA's "milestone completed"
    to "bill it", skipping the seeds' control -- "billing held until client
    sign-off". The next billing run invoices work the client has not
    accepted (and may never accept).

    Exposed by: ``milestone-signoff-hold`` (a milestone finished in January
    is signed off only in February; another is never signed off).
    Caught by: "milestone hold: no milestone reached an invoice before the
    client signed it off".
    """
    core = ReferenceCore(env)
    milestones = flow(core, "milestones")

    async def bill_now(original, ctx, p):
        ctx = patient(ctx)
        schedule = await milestones._schedule(ctx, p)
        item = await milestones._ensure_item(ctx, schedule, p)
        return {"hold": None, "item": item["id"], "item_status": item["status"]}

    replace_operation(core, OP, bill_now)
    return core

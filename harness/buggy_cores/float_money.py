"""Money in binary floating point."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import replace_operation

__all__ = ["float_money"]

OP = "psa.price_time_entry"


def float_money(env: Environment) -> ReferenceCore:
    """Time is priced as ``f"{float(hours) * float(rate):.2f}"``.

    The real-world bug: amounts parsed to ``float`` and formatted to two
    places. Formatting rounds the binary value half to even, not half up as
    every ledger does, so whenever hours x rate ends in half a cent -- 7.5 h
    at 183.75 is 1378.125 -- the ERP is posted a cent less than billing
    charges (billing prices quantity x unit amount itself), and the books no
    longer tie.

    Exposed by: ``change-order`` (a 5% rate rise gives rates with cents,
    183.75 an hour, so half cents appear).
    Caught by: "ERP: time priced at the contract rate in force on the work
    date".
    """
    core = ReferenceCore(env)

    async def price_in_floats(original, ctx, payload):
        result = await original(ctx, payload)
        priced = result["priced"]
        if priced["billable_tm"] and priced["rate"] is not None:
            priced["bill_amount"] = f"{float(priced['hours']) * float(priced['rate']):.2f}"
        return result

    replace_operation(core, OP, price_in_floats)
    return core

"""A retroactive cost-rate change never re-costs posted time."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

__all__ = ["retro_cost_rate_not_recosted"]

EVENT = ("core", "worker.cost_rates_changed")


def retro_cost_rate_not_recosted(env: Environment) -> ReferenceCore:
    """Cost is stamped once, when time is posted; a raise entered later but
    effective earlier leaves the posted hours at the old cost.

    The real-world bug: the worker sync updates the PSA's effective-dated
    rates correctly, but nothing listens for "cost rates changed" to re-cost
    the ERP actuals already posted for days on or after the new rate's
    effective date. Margins on those projects stay wrong for good.

    Exposed by: ``hr-onboarding-cost-rates`` (a raise entered on 20 January,
    effective from the 5th).
    Caught by: "HR: the ERP's cost of each hour of a changed worker is at
    the HRIS rate in force on the work date".
    """
    core = ReferenceCore(env)
    core.feeds.handlers[EVENT] = []
    return core

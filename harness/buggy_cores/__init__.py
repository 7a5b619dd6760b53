"""The self-test catalogue: deliberately buggy sync cores.

Each is the reference core with exactly one realistic integration bug,
put in by composition (`_compose`): a wrapped vendor client, a store whose
outbox is not durable, one operation or flow method swapped on the
instance. The reference core itself (``sync_core``) carries no switch for
any of them. Every factory plugs in like a user's core::

    syncbed run change-order --core harness.buggy_cores:float_money

`syncbed selftest` runs each against the scenarios meant to expose it and
demands that an invariant catches it (`harness.selftest`). A bug's
docstring tells the real-world story, the scenario that exposes it and the
invariant that should catch it; `CATALOGUE` holds the same as data.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .amendment_order import amendments_applied_in_arrival_order
from .billing_keys import billing_without_idempotency_key
from .closed_period import closed_period_posting_dropped
from .cost_rates import retro_cost_rate_not_recosted
from .customer_match import customer_matched_by_external_id_only
from .float_money import float_money
from .milestone_hold import milestone_billed_before_signoff
from .posting_date import posting_dated_when_sent
from .psa_lookup import psa_create_retried_without_lookup
from .retry_after import retry_after_ignored
from .revenue_method import recurring_revenue_booked_point_in_time
from .volatile_outbox import outbox_in_memory

__all__ = ["Bug", "CATALOGUE", "bug_named", *sorted([
    "amendments_applied_in_arrival_order", "billing_without_idempotency_key", "closed_period_posting_dropped",
    "retro_cost_rate_not_recosted", "float_money", "milestone_billed_before_signoff", "posting_dated_when_sent",
    "psa_create_retried_without_lookup", "retry_after_ignored", "recurring_revenue_booked_point_in_time",
    "outbox_in_memory", "customer_matched_by_external_id_only",
])]

MODULE = __name__


@attrs.frozen
class Bug:
    """One catalogue entry.

    `scenarios`: the scenarios meant to expose it, the one to try first
    first. `invariant`: the name of the check expected to catch it.
    """

    factory: Callable
    scenarios: tuple[str, ...]
    invariant: str

    @property
    def name(self) -> str:
        return self.factory.__name__

    @property
    def core(self) -> str:
        """The ``--core`` spec that runs it."""
        return f"{MODULE}:{self.name}"

    @property
    def summary(self) -> str:
        """The docstring's first line."""
        return " ".join((self.factory.__doc__ or "").strip().split("\n\n", 1)[0].split())


# In the order `syncbed selftest` starts them: a bug whose failure needs
# several faults (the slowest to shrink) early, so the others run beside it.
CATALOGUE: tuple[Bug, ...] = (
    Bug(billing_without_idempotency_key, ("quote-to-cash", "webhook-storm"),
        "billing: every billable item on exactly one invoice item"),
    Bug(outbox_in_memory, ("core-crash-restart",), "core crashes: no work was lost across the crashes"),
    Bug(psa_create_retried_without_lookup, ("lost-response-after-commit",),
        "lost responses: nothing written twice in psa"),
    Bug(retry_after_ignored, ("rate-limit-month-end",),
        "rate limits: no throttled request was sent again before its Retry-After"),
    Bug(amendments_applied_in_arrival_order, ("change-order", "amendment-after-invoice"),
        "contract versions applied in order, never backwards"),
    Bug(closed_period_posting_dropped, ("retro-time-correction",), "nothing silently lost"),
    Bug(float_money, ("change-order",), "ERP: time priced at the contract rate in force on the work date"),
    Bug(milestone_billed_before_signoff, ("milestone-signoff-hold",),
        "milestone hold: no milestone reached an invoice before the client signed it off"),
    Bug(retro_cost_rate_not_recosted, ("hr-onboarding-cost-rates",),
        "HR: the ERP's cost of each hour of a changed worker is at the HRIS rate in force on the work date"),
    Bug(posting_dated_when_sent, ("month-end-erp-outage", "global-multi-entity"),
        "ERP outage: work approved while the ERP was down posted within hours of its return, in January"),
    Bug(recurring_revenue_booked_point_in_time, ("fixed-fee-plus-managed-services",),
        "fixed fee + managed services: one revenue contract, milestones point in time, the service ratable"),
    Bug(customer_matched_by_external_id_only, ("duplicate-customers",),
        "duplicate customers: one active ERP customer per business"),
)


def bug_named(name: str) -> Bug | None:
    for bug in CATALOGUE:
        if bug.name == name:
            return bug
    return None

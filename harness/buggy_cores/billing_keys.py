"""No idempotency key on billing writes."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import wrap_clients

__all__ = ["billing_without_idempotency_key"]


def _drop_key(method, path, json, headers, query):
    if method == "POST":
        headers = {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}
    return json, headers


def billing_without_idempotency_key(env: Environment) -> ReferenceCore:
    """Billing POSTs go out without their ``Idempotency-Key``.

    The real-world bug: the HTTP layer of the integration builds its own
    requests and never sets Stripe-style idempotency keys (or a refactoring
    dropped the header). Every look-up the core makes still works, so a
    retry after a timeout finds what the first attempt made -- but a
    request the network delivers twice, or one whose copy is still on its
    way when the retry's look-up runs, creates twice: two invoice items for
    one approved time entry, two holds, two schedules.

    Exposed by: ``quote-to-cash`` (the ``default`` profile duplicates one
    request in two hundred; a month brings hundreds of invoice items).
    Caught by: "billing: every billable item on exactly one invoice item".
    """
    return ReferenceCore(wrap_clients(env, ("billing",), outgoing=_drop_key))

"""Postings dated the day they are sent, not the day of the work."""

from __future__ import annotations

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import wrap_clients

__all__ = ["posting_dated_when_sent"]

ACTUALS = "/erp/v1/projectActuals/"


def posting_dated_when_sent(env: Environment) -> ReferenceCore:
    """ERP actuals carry the core's today as ``tranDate``.

    The real-world bug: the posting's date is filled with "now" (the
    server's clock, in UTC) instead of the work date. Time approved on the
    1st for the last days of the month lands in the new month; work queued
    during an outage over month end posts into February; a cost converted
    at the work date's exchange rate is booked on another day's.

    Exposed by: ``month-end-erp-outage`` (January's work queued while the
    ERP is down posts when it is back, on 2 February).
    Caught by: "ERP outage: work approved while the ERP was down posted
    within hours of its return, in January".
    """
    def date_it_today(method, path, json, headers, query):
        if method == "PUT" and path.startswith(ACTUALS) and not path.endswith(":rev") and isinstance(json, dict):
            json = dict(json, tranDate=env.now().date().isoformat())
        return json, headers

    return ReferenceCore(wrap_clients(env, ("erp",), outgoing=date_it_today))

"""Vendor answers, classified as `sync_core.replies` does -- plus the lock
conflicts its table does not list yet.

Two vendors answer "someone else holds this record, try again shortly" with
a 409 whose code `replies.TRANSIENT` does not know: the revenue engine's
``RC_LOCKED`` (a running job holds the contract) and the expense system's
``REPORT_LOCKED`` (the approver has the report open). Read as permanent,
one such answer would park a posting in IT's queue and, heading its deal's
outbox line, hold up everything behind it. Here they are retried. (Once the
shared table lists them, this module reduces to `replies.check`.)
"""

from __future__ import annotations

from ..ports import HttpResponse
from ..replies import check as _check
from ..replies import error_code
from ..retry import RetryLater

__all__ = ["check", "LOCKED"]

LOCKED = {"revenue": {"RC_LOCKED"}, "expenses": {"REPORT_LOCKED"}}


def check(system: str, response: HttpResponse, *, ok: tuple[int, ...] = (200, 201, 204),
          doing: str = "") -> HttpResponse:
    if response.status not in ok and error_code(system, response.json) in LOCKED.get(system, ()):
        raise RetryLater(f"{system} {doing}: {response.status} {error_code(system, response.json)} (locked; retrying)")
    return _check(system, response, ok=ok, doing=doing)

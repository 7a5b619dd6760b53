"""Reading vendors' answers: success, try again, or a person must act.

Every vendor says "slow down", "not now" and "no" differently -- a 403
REQUEST_LIMIT_EXCEEDED here, a 400 concurrency error there, Retry-After or
x-ratelimit-reset or nothing. This module knows each family's error body and
which of its codes are transient, and turns an unwanted answer into the
exception the dispatcher understands (`RetryLater`, `BusinessException`).
Codes not listed as transient are permanent: retrying the same request
would fail the same way, so they go to an exception queue with the vendor's
own code as the reason.
"""

from __future__ import annotations

from typing import Any

from .ports import HttpResponse
from .retry import BusinessException, RetryLater

__all__ = ["check", "error_code", "error_message", "retry_after", "throttled"]

# Codes that mean "the same request may succeed later".
TRANSIENT = {
    "crm": {"REQUEST_LIMIT_EXCEEDED", "RECORD_LOCKED", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"},
    "erp": {"ACCT_CONCURRENCY_LIMIT_EXCEEDED", "RECORD_CHANGED_SINCE_LOADED", "ACCT_REQUEST_RATE_EXCEEDED",
            "UNEXPECTED_ERROR", "ACCOUNT_UNAVAILABLE"},
    "psa": {"record_locked", "too_many_requests", "too_many_concurrent_requests"},
    "billing": {"lock_timeout", "rate_limit", "idempotency_key_in_use"},
    "revenue": {"RATE_LIMIT_EXCEEDED", "RC_LOCKED"},
    "hris": {"TOO_MANY_REQUESTS"},
    "expenses": {"RATE_LIMIT_REACHED", "REPORT_LOCKED"},
}

# Transient answers that say "over the limit" (requests per window, or in
# flight at once), besides any 429: back-pressure, not failure (retry.py).
THROTTLES = {
    "crm": {"REQUEST_LIMIT_EXCEEDED"},
    "erp": {"ACCT_CONCURRENCY_LIMIT_EXCEEDED", "ACCT_REQUEST_RATE_EXCEEDED"},
    "psa": {"too_many_requests", "too_many_concurrent_requests"},
    "billing": {"rate_limit"},
    "revenue": {"RATE_LIMIT_EXCEEDED"},
    "hris": {"TOO_MANY_REQUESTS", "SERVER_BUSY"},  # its cap on requests in flight is a 503
    "expenses": {"RATE_LIMIT_REACHED"},
}

# Permanent refusals that belong to finance (the books) or the PMO (delivery
# data); everything else permanent is IT's (mapping, master data, bugs).
FINANCE = {"PERIOD_CLOSED", "PERIOD_AR_LOCKED", "TAX_REGISTRATION_REQUIRED", "TRANSACTION_HAS_APPLICATIONS",
           "CURRENCY_NOT_ENABLED", "EXCHANGE_RATE_MISSING"}
PMO = {"not_assigned", "project_not_active", "resource_terminated", "PROJECT_NOT_ACTIVE"}


def _first(items: Any) -> dict:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def error_code(system: str, body: Any) -> str | None:
    """The vendor's error code from its error body, whatever its shape."""
    if not isinstance(body, (dict, list)):
        return None
    if system == "crm":
        return _first(body).get("code")
    if system == "psa":
        return _first(body.get("errors")).get("code") if isinstance(body, dict) else None
    if system == "erp":
        return _first(body.get("issues")).get("code") if isinstance(body, dict) else None
    if system == "billing":
        return (body.get("error") or {}).get("code") if isinstance(body, dict) else None
    if system == "revenue":
        return _first(body.get("errors")).get("error_code") if isinstance(body, dict) else None
    if system == "hris":
        return body.get("errorCode") if isinstance(body, dict) else None
    if system == "expenses":
        return (body.get("Error") or {}).get("Code") if isinstance(body, dict) else None
    return None


def error_message(system: str, body: Any) -> str:
    if isinstance(body, list):
        return str(_first(body).get("message", body))
    if not isinstance(body, dict):
        return repr(body)
    for path in (("errors", "message"), ("issues", "detail"), ("error", "message"), ("errors", "error_message"),
                 ("Error", "Message")):
        container = body.get(path[0])
        item = _first(container) if isinstance(container, list) else container if isinstance(container, dict) else {}
        if path[1] in item:
            return str(item[path[1]])
    return str(body.get("message", body))


def retry_after(response: HttpResponse) -> float | None:
    """Seconds the vendor asked us to wait before asking again (None: it did
    not say). Families say it as ``Retry-After`` or, the expense service,
    ``x-ratelimit-reset``; an unreadable value counts as not said."""
    for header in ("retry-after", "x-ratelimit-reset"):
        try:
            return max(0.0, float(response.headers[header]))
        except (KeyError, ValueError, TypeError):
            continue
    return None


def throttled(system: str, response: HttpResponse) -> bool:
    """The vendor refused `response`'s request for a limit and did nothing."""
    return response.status == 429 or error_code(system, response.json) in THROTTLES.get(system, ())


def check(system: str, response: HttpResponse, *, ok: tuple[int, ...] = (200, 201, 204), doing: str = "") -> HttpResponse:
    """`response` if its status is in `ok`; otherwise raise what the
    dispatcher should do about it."""
    status = response.status
    if status in ok:
        return response
    code = error_code(system, response.json)
    message = error_message(system, response.json)
    what = f"{system} {doing}: {status} {code or ''} {message}".strip()
    if status == 429 or status >= 500 or code in TRANSIENT.get(system, ()):
        raise RetryLater(what, after=retry_after(response), throttled=throttled(system, response))
    domain = "finance" if code in FINANCE else "pmo" if code in PMO else "it"
    raise BusinessException(domain, code or f"HTTP_{status}", what, {"status": status, "system": system})

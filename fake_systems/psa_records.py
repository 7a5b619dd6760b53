"""The PSA's records: vocabularies, id style, and the checks every write shares.

Kept apart from `psa.py` so the fake's module reads as routes and business
rules while this one holds the small, pure pieces they are built from:

  * ids: numeric strings from one counter per kind, each kind in its own
    range (a project id never equals a task id, so a core that mixes them up
    gets a 404, not someone else's record);
  * field checks that raise `VendorError(422, code, message, field)` -- the
    PSA family answers a bad field with 422 and a validation error naming it;
    a body that is not a JSON object is a 400;
  * money and hours as `Decimal` parsed from strings, written back as strings
    tied to the cent (hours in quarter hours);
  * effective-dated rate lookup and list paging.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .money import MINOR_UNITS, Money, round_money
from .vendor import VendorError, VendorStore

__all__ = [
    "BOOKKEEPING", "BILLING_RULES", "BILLING_STATUSES", "PROJECT_STATUSES", "TIME_STATUSES", "EXPENSE_STATUSES",
    "MAX_DAY_HOURS", "invalid", "new_id", "body_object", "check_keys", "text", "flag", "choice", "currency", "iso_date",
    "money", "rate", "hours", "percent", "rate_at", "amount", "whole_number", "page_of", "wants", "since_us",
]

# ---- vocabularies (deliberately the PSA's own words, not the CRM's or ERP's)

BOOKKEEPING = ("id", "lock_version", "created_at", "updated_at")  # read-only on every record
PROJECT_STATUSES = ("draft", "active", "closed")
BILLING_RULES = ("time_and_materials", "fixed_fee", "retainer", "subscription", "mixed", "non_billable")
TIME_STATUSES = ("draft", "submitted", "approved", "rejected")
EXPENSE_STATUSES = ("submitted", "approved", "rejected")
MILESTONE_STATUSES = ("open", "completed")
BILLING_STATUSES = ("unbilled", "invoiced", "paid")

# Each kind's ids live in their own numeric range.
_ID_BASE = {
    "project": 4_100_000,
    "task": 5_200_000,
    "role": 30_000,
    "resource": 710_000,
    "assignment": 8_200_000,
    "time_entry": 93_000_000,
    "expense": 64_000_000,
    "milestone": 2_700_000,
}

_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
QUARTER = Decimal("0.25")
MAX_DAY_HOURS = Decimal(24)


def new_id(store: VendorStore, kind: str) -> str:
    return str(_ID_BASE[kind] + store.next_id(kind))


def invalid(field: str | None, code: str, message: str, status: int = 422) -> VendorError:
    return VendorError(status, code, message, field)


# ---- bodies and fields


def body_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid(None, "malformed_request",
                      f"the request body must be a JSON object, got {type(body).__name__}; send {{\"field\": value}}", 400)
    return body


def check_keys(body: dict, allowed: tuple[str, ...], read_only: tuple[str, ...] = ()) -> None:
    """Unknown and read-only attributes are refused, not ignored: a core that
    sends a misspelt field should hear about it."""
    for key in sorted(body):
        if key in allowed:
            continue
        if key in read_only:
            raise invalid(key, "read_only", f"{key} is read-only here; it changes only through its own action")
        raise invalid(key, "unknown_attribute", f"{key} is not an attribute of this record; allowed: {', '.join(allowed)}")


def text(body: dict, field: str, *, required: bool = False, max_len: int = 255) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise invalid(field, "blank", f"{field} can't be blank")
        return None
    if not isinstance(value, str):
        raise invalid(field, "not_a_string", f"{field} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise invalid(field, "too_long", f"{field} is longer than {max_len} characters")
    return value


def flag(body: dict, field: str, default: bool | None = None) -> bool | None:
    value = body.get(field, default)
    if value is not None and not isinstance(value, bool):
        raise invalid(field, "not_a_boolean", f"{field} must be true or false, got {value!r}")
    return value


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise invalid(field, "inclusion", f"{field} {value!r} is not one of {', '.join(allowed)}")
    return value


def currency(value: Any, field: str = "currency") -> str:
    if not isinstance(value, str) or value not in MINOR_UNITS:
        raise invalid(field, "invalid_currency", f"{field} {value!r} is not a supported ISO 4217 code, e.g. 'USD'")
    return value


def iso_date(value: Any, field: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise invalid(field, "invalid_date", f"{field} must be a date string like '2026-01-31', got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "invalid_date", f"{field} {value!r} is not a date; write YYYY-MM-DD") from None


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern already rules this out
            pass
    raise invalid(field, "not_a_number", f"{field} must be a decimal string like \"120.50\", got {value!r}")


def money(value: Any, ccy: str, field: str, *, positive: bool = True) -> Decimal:
    """An amount exact to `ccy`'s minor units (never rounded here)."""
    d = _decimal(value, field)
    places = MINOR_UNITS[ccy]
    q = d.quantize(Decimal(1).scaleb(-places))
    if q != d:
        raise invalid(field, "too_precise", f"{field} {value} has more than {places} decimal places for {ccy}")
    if positive and q <= 0:
        raise invalid(field, "not_positive", f"{field} must be greater than 0, got {value}")
    return q


def rate(value: Any, field: str = "rate") -> Decimal:
    """An hourly rate: zero or more, at most four places, written with two or more."""
    d = _decimal(value, field)
    if d < 0 or d != d.quantize(Decimal("0.0001")):
        raise invalid(field, "invalid_rate", f"{field} {value} must be 0 or more with at most 4 decimal places")
    return d.quantize(Decimal("0.01")) if d == d.quantize(Decimal("0.01")) else d


def hours(value: Any, field: str = "hours") -> Decimal:
    d = _decimal(value, field)
    if d <= 0 or d > MAX_DAY_HOURS or d % QUARTER != 0:
        raise invalid(field, "invalid_hours",
                      f"{field} {value} must be more than 0 and at most 24, in quarter hours (e.g. \"7.25\")")
    return d.quantize(Decimal("0.01"))


def percent(value: Any, field: str = "allocation_percent") -> Decimal:
    d = _decimal(value, field)
    if d <= 0 or d > 100 or d != d.quantize(Decimal("0.01")):
        raise invalid(field, "invalid_percent", f"{field} {value} must be more than 0 and at most 100, two places at most")
    return d.quantize(Decimal("0.01"))


# ---- rates and amounts


def rate_at(rates: list[dict], on: date, ccy: str | None = None) -> dict | None:
    """The rate row in force on `on` (the latest ``effective_from`` on or
    before it), optionally in `ccy`; rows are kept sorted by date."""
    day = on.isoformat()
    found = None
    for row in rates:
        if row["effective_from"] <= day and (ccy is None or row["currency"] == ccy):
            found = row
    return found


def amount(qty: Decimal, unit: str, ccy: str) -> str:
    """`qty` hours at `unit` per hour, rounded half-up to `ccy`'s minor unit."""
    return str(round_money(Money(qty * Decimal(unit), ccy), ROUND_HALF_UP).amount)


# ---- queries


def whole_number(query: dict, key: str, default: int, most: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not (isinstance(raw, str) and raw.isdigit()) and not (isinstance(raw, int) and not isinstance(raw, bool)):
        raise invalid(key, "invalid_parameter", f"{key} must be a whole number from 1 to {most}, got {raw!r}", 400)
    n = int(raw)
    if not 1 <= n <= most:
        raise invalid(key, "invalid_parameter", f"{key} must be a whole number from 1 to {most}, got {raw!r}", 400)
    return n


def page_of(rows: list[dict], query: dict) -> dict:
    """One page of `rows` (already in id order): ``page`` from 1,
    ``per_page`` up to 200 (default 50)."""
    page = whole_number(query, "page", 1, 1_000_000)
    per = whole_number(query, "per_page", 50, 200)
    chunk = rows[(page - 1) * per : page * per]
    return {"count": len(rows), "page": page, "per_page": per, "more": page * per < len(rows), "results": chunk}


def wants(record: dict, query: dict, filters: tuple[str, ...]) -> bool:
    """True if `record` matches every filter present in `query` (string
    comparison: query values arrive as strings)."""
    for key in filters:
        if key in query:
            value = record.get(key)
            want = query[key]
            if isinstance(value, bool):
                value = "true" if value else "false"
            if ("" if value is None else str(value)) != str(want):
                return False
    return True


def since_us(raw: Any, calendar, system: str) -> int:
    """``since`` of the change feed: virtual microseconds (an integer, as in
    each change's ``changed_at``) or an ISO-8601 timestamp with an offset, as
    the PSA's own clock writes it (``changed_at_time``, ``updated_at``)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return calendar.us_at(moment) - calendar.skews_us.get(system, 0)
    raise invalid("since", "invalid_parameter",
                  f"since {raw!r} must be microseconds of virtual time (e.g. 3600000000) "
                  "or an ISO timestamp with an offset (e.g. 2026-01-05T09:00:00+00:00)", 400)

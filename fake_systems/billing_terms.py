"""Reading a contract's billing terms and a billing event's price.

A billing schedule carries the terms of one contract line under one model:

* ``time_and_materials``: a rate card, ``[{code, unit_amount, description}]``;
  a billing event (time entry) then names a ``price_code`` and a quantity;
* ``fixed_fee``: milestones, ``[{ref, description, amount}]``; a billing event
  whose ``source`` is ``{"type": "milestone", "id": ref}`` is priced from it;
* ``retainer`` / ``subscription``: ``recurring {amount, interval}``, charged
  per period by the monthly billing run.

The functions here read those from a request (`Params`) and return plain
values for `BillingBook`; every mistake is a 400 naming the parameter.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .billing_records import Params, fmt_money
from .vendor import VendorError

__all__ = [
    "CREDIT_REASONS", "PAYMENT_METHODS", "SOURCE_TYPES",
    "read_endpoint", "read_item_price", "read_schedule_terms", "read_source", "read_tax_percent",
]

PAYMENT_METHODS = ("bank_transfer", "card", "check", "direct_debit", "other")
CREDIT_REASONS = ("billing_error", "duplicate", "service_issue", "contract_change", "other")
_ENDPOINT_URL = re.compile(r"([\w.-]+):(/(?!/)\S*)")  # "core:/webhooks/billing", not "https://..."
SOURCE_TYPES = ("time_entry", "expense", "milestone", "recurring", "adjustment", "manual")
RECURRING = ("retainer", "subscription")


def read_tax_percent(p: Params) -> str | None:
    rate = p.decimal("tax_percent", places=4, non_negative=True)
    if rate is None:
        return None
    if rate > 100:
        raise VendorError(400, "parameter_invalid", f"tax_percent {rate} is over 100; write 20% as \"20\"", "tax_percent")
    return format(rate, "f")


def read_source(p: Params) -> dict | None:
    """What a billing event bills: ``{"type": "time_entry", "id": "TE0000001"}``."""
    src = p.nested("source", ("type", "id"))
    if src is None:
        return None
    return {"type": src.choice("type", SOURCE_TYPES, required=True), "id": src.text("id", required=True, max_len=200)}


def _refuse(p: Params, key: str, model: str, belongs: str) -> None:
    if p.has(key):
        raise VendorError(400, "parameter_invalid", f"{key} applies to {belongs} schedules, not {model}", key)


def read_schedule_terms(p: Params, currency: str, model: str, existing: dict | None) -> dict:
    """The terms given in `p`: all of them for a new schedule (`existing`
    None), only those present for an amendment."""
    out: dict = {}
    if existing is None:
        out["start_date"] = p.date("start_date", required=True).isoformat()
    if existing is None or p.has("end_date"):
        end = p.date("end_date")
        start = out.get("start_date") or existing["start_date"]
        if end is not None and end.isoformat() < start:
            raise VendorError(400, "parameter_invalid", f"end_date {end} is before start_date {start}", "end_date")
        out["end_date"] = end.isoformat() if end else None
    if model != "time_and_materials":
        _refuse(p, "rate_card", model, "time_and_materials")
    if model != "fixed_fee":
        _refuse(p, "milestones", model, "fixed_fee")
    if model not in RECURRING:
        _refuse(p, "recurring", model, "retainer and subscription")
    if existing is None or p.has("rate_card"):
        out["rate_card"] = _rate_card(p, currency)
    if existing is None or p.has("milestones"):
        out["milestones"] = _milestones(p, currency)
    if model in RECURRING and (existing is None or p.has("recurring")):
        rec = p.nested("recurring", ("amount", "interval"), required=True)
        out["recurring"] = {"amount": fmt_money(rec.money("amount", currency, required=True, positive=True), currency),
                            "interval": rec.choice("interval", ("month", "quarter", "year"), default="month")}
    elif existing is None:
        out["recurring"] = None
    return out


def _unique(rows: list[dict], key: str, param: str) -> None:
    seen: list[str] = []
    for i, row in enumerate(rows):
        if row[key] in seen:
            raise VendorError(400, "parameter_invalid", f"{param}[{i}][{key}] {row[key]!r} appears twice", f"{param}[{i}][{key}]")
        seen.append(row[key])


def _rate_card(p: Params, currency: str) -> list[dict]:
    rows = [{"code": e.text("code", required=True, max_len=100),
             "unit_amount": format(e.decimal("unit_amount", required=True, positive=True), "f"),
             "description": e.text("description")}
            for e in p.items("rate_card", ("code", "unit_amount", "description")) or []]
    _unique(rows, "code", "rate_card")
    return rows


def _milestones(p: Params, currency: str) -> list[dict]:
    rows = [{"ref": m.text("ref", required=True, max_len=200), "description": m.text("description", required=True),
             "amount": fmt_money(m.money("amount", currency, required=True, positive=True), currency)}
            for m in p.items("milestones", ("ref", "description", "amount")) or []]
    _unique(rows, "ref", "milestones")
    return rows


def read_item_price(p: Params, currency: str, schedule: dict | None, source: dict | None) -> tuple[str, Decimal, Decimal]:
    """(description, quantity, unit_amount) of a billing event, priced by
    exactly one of: ``amount`` (quantity 1), ``unit_amount`` x ``quantity``
    (default 1), ``price_code`` x ``quantity`` from the schedule's rate card,
    or -- given none -- the schedule's milestone named by ``source``."""
    quantity = p.decimal("quantity", places=4, positive=True)
    unit = p.decimal("unit_amount", places=6)  # negative: an adjustment (a reversal)
    amount = p.money("amount", currency)
    code = p.text("price_code", max_len=100)
    given = [k for k, v in (("amount", amount), ("unit_amount", unit), ("price_code", code)) if v is not None]
    if len(given) > 1:
        raise VendorError(400, "parameter_invalid", f"Give one of amount, unit_amount or price_code, not {' and '.join(given)}",
                          given[1])
    description = p.text("description")
    milestone = None
    if schedule is not None and source is not None and source["type"] == "milestone" and schedule["milestones"]:
        milestone = next((m for m in schedule["milestones"] if m["ref"] == source["id"]), None)
        if milestone is None:
            raise VendorError(400, "parameter_invalid", f"billing schedule {schedule['id']} has no milestone "
                              f"{source['id']!r}; add it to the schedule first", "source[id]")
    if amount is not None:
        if quantity is not None:
            raise VendorError(400, "parameter_invalid", "quantity goes with unit_amount or price_code, not amount", "quantity")
        unit = amount
    elif code is not None:
        entry = next((e for e in (schedule or {}).get("rate_card") or [] if e["code"] == code), None)
        if entry is None:
            where = f"billing schedule {schedule['id']}'s rate card" if schedule else "a rate card (give a schedule)"
            raise VendorError(400, "parameter_invalid", f"price_code {code!r} is not in {where}", "price_code")
        unit = Decimal(entry["unit_amount"])
        description = description or entry["description"]
    elif unit is None:
        if milestone is None:
            raise VendorError(400, "parameter_missing", "Missing price: give amount, unit_amount or price_code "
                              "(or bill a milestone of the schedule)", "amount")
        if quantity is not None:
            raise VendorError(400, "parameter_invalid", "a milestone is billed whole; drop quantity", "quantity")
        unit = Decimal(milestone["amount"])
    if milestone is not None:
        description = description or milestone["description"]
    if description is None:
        raise VendorError(400, "parameter_missing", "Missing required param: description.", "description")
    return description, quantity if quantity is not None else Decimal(1), unit


def read_endpoint(p: Params) -> tuple[str, str, list[str], str | None]:
    """(actor, path, event types or ["*"], description) of a webhook endpoint
    whose url is ``"<endpoint>:<path>"``, like ``"core:/webhooks/billing"``."""
    url = p.text("url", required=True)
    match = _ENDPOINT_URL.fullmatch(url)
    if match is None:
        raise VendorError(400, "url_invalid", f"url {url!r} must be '<endpoint>:<path>', like 'core:/webhooks/billing'", "url")
    events = p.body.get("enabled_events", ["*"])
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise VendorError(400, "parameter_invalid", "enabled_events must be a list of event types, or [\"*\"]",
                          "enabled_events")
    return match.group(1), match.group(2), events, p.text("description")

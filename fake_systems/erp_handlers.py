"""The ERP's write path and HTTP handlers, shared by every record kind.

`create` and `update` are the one way a record is written, through the API
or by a person in the UI: build (validate), admit (periods, applications),
then commit, record the effect and do what follows. Nothing is changed
before the last check has passed, so a refused request leaves no trace in
the books (a period record may come into being on first touch; it is open
and was always there, conceptually).

The handlers are plain functions of the `Erp`; `Erp.routes` binds them.
"""

from __future__ import annotations

import bisect
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator import Request, Response

from .erp_books import fx_rate, period_of
from .erp_fields import day
from .erp_records import CUSTOMERS, Kind
from .vendor import VendorError

if TYPE_CHECKING:
    from .erp import Erp

__all__ = ["guard", "create", "update", "insert", "post", "put", "get", "query", "invoice_status", "reference",
           "periods", "exchange_rates"]

BASE = "/erp/v1"
_EXTERNAL_ID = re.compile(r"[^/\s][^/]{0,99}")
_NUMERIC = re.compile(r"[0-9]{1,12}")
_REF_FILTERS = {"customer": "customers", "project": "projects", "subsidiary": "subsidiaries", "invoice": "invoices",
                "createdFrom": "invoices"}


def guard(erp: Erp, handler, *bound):
    """`handler` bound to `bound`; its own bugs answer as the vendor would
    (500, vendor shape) and still leave the `actor.error` event the harness
    reports."""
    def guarded(request: Request, **params):
        try:
            return handler(erp, *bound, request, **params)
        except VendorError:
            raise
        except Exception as exc:
            erp.record("actor.error", {"where": f"{request.method} {request.path}",
                                       "error": f"{type(exc).__name__}: {exc}"})
            raise VendorError(500, "UNEXPECTED_ERROR", "an unexpected error occurred") from None
    return guarded


# ------------------------------------------------------------------ writing records


def _external_id(erp: Erp, kind: Kind, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _EXTERNAL_ID.fullmatch(value):
        raise VendorError(400, "INVALID_FIELD_VALUE", "externalId must be 1-100 characters without '/' or a "
                          f"leading space, not {value!r}", "externalId")
    taken = erp.eids(kind.table).get(value)
    if taken is not None:
        raise VendorError(400, "DUPLICATE_EXTERNAL_ID", f"{kind.noun} {taken} already has externalId {value!r}; "
                          f"update it with PUT {BASE}/{kind.table}/eid:{value}", "externalId")
    return value


def _summary(kind: Kind, rec: dict) -> dict:
    keys = (kind.number_field, "externalId", "tranDate", "postingPeriodName", "currency", "total", "hours",
            "costAmount", "revenueAmount", "amount", "payment")
    return {k: rec[k] for k in keys if rec.get(k) is not None}


def insert(erp: Erp, kind: Kind, fields: dict, external_id: str | None, request: Request | None) -> dict:
    """Commit a new record of `kind` whose fields have passed every check."""
    rid = erp.store.next_id(kind.id_space)
    number = kind.number_format.format(erp.store.next_id(f"{kind.table}.number"))
    rec = {"id": rid, kind.number_field: number, "externalId": external_id, **fields}
    if kind.initial is not None:
        rec.update(kind.initial(rec))
    rec["dateCreated"] = rec["lastModifiedDate"] = erp.stamp()
    erp.table(kind.table)[str(rid)] = rec
    if external_id is not None:
        erp.eids(kind.table)[external_id] = rid
    if "project" in kind.filters:
        erp.by_project.setdefault(kind.table, {}).setdefault(str(rec.get("project")), []).append(rid)
    erp.effect("create", kind.table, str(rid), request, **_summary(kind, rec))
    if kind.after_write is not None:
        kind.after_write(erp, rec, request)
    return rec


def create(erp: Erp, kind: Kind, body: dict, request: Request | None, external_id: str | None = None) -> dict:
    ext = _external_id(erp, kind, body.get("externalId") if external_id is None else external_id)
    fields = kind.build(erp, body, None)
    if kind.admit is not None:
        kind.admit(erp, fields, None)
    return insert(erp, kind, fields, ext, request)


def update(erp: Erp, kind: Kind, rec: dict, body: dict, request: Request | None) -> dict:
    """Lay `body` over `rec`; a write that changes nothing is no effect."""
    old_ext = rec["externalId"]
    ext = body.get("externalId", old_ext)
    if ext != old_ext:
        ext = _external_id(erp, kind, ext)
    fields = {**kind.build(erp, body, rec), "externalId": ext}
    changed = sorted(k for k, v in fields.items() if rec.get(k) != v)
    if not changed:
        return rec
    if kind.admit is not None:
        kind.admit(erp, fields, rec)
    if kind.initial is not None:
        fields.update(kind.initial({**rec, **fields}))
    moved_from = str(rec.get("project"))
    rec.update(fields)
    rec["lastModifiedDate"] = erp.stamp()
    if "project" in kind.filters and str(rec.get("project")) != moved_from:
        index = erp.by_project.setdefault(kind.table, {})
        index.get(moved_from, []).remove(rec["id"])
        bisect.insort(index.setdefault(str(rec.get("project")), []), rec["id"])
    if old_ext != ext:
        erp.eids(kind.table).pop(old_ext, None)
        if ext is not None:
            erp.eids(kind.table)[ext] = rec["id"]
    erp.effect("update", kind.table, str(rec["id"]), request, changed=changed, **_summary(kind, rec))
    if kind.after_write is not None:
        kind.after_write(erp, rec, request)
    return rec


# ------------------------------------------------------------------ handlers


def _body(request: Request) -> dict:
    if not isinstance(request.json, dict):
        raise VendorError(400, "MALFORMED_REQUEST", "the request body must be a JSON object of record fields, "
                          f"not {type(request.json).__name__}")
    return request.json


def _created(kind: Kind, rec: dict) -> Response:
    return Response(201, rec, {"location": f"{BASE}/{kind.table}/{rec['id']}"})


def post(erp: Erp, kind: Kind, request: Request) -> Response:
    return _created(kind, create(erp, kind, _body(request), request))


def put(erp: Erp, kind: Kind, request: Request, key: str) -> Response:
    """Upsert on an ``eid:`` key; update on an internal id."""
    body = _body(request)
    rec = erp.find(kind.table, key)
    path_ext = key[4:] if key.startswith("eid:") else None
    if path_ext is not None and body.get("externalId", path_ext) != path_ext:
        raise VendorError(400, "INVALID_FIELD_VALUE", f"the body's externalId {body['externalId']!r} differs from "
                          f"the path's ({path_ext!r}); change an externalId through the numeric key", "externalId")
    if rec is None and path_ext is not None:
        return _created(kind, create(erp, kind, body, request, path_ext))
    if rec is None:
        raise erp.not_found(kind.table, key)
    return Response(200, update(erp, kind, rec, body, request))


def get(erp: Erp, kind: Kind, request: Request, key: str) -> Response:
    rec = erp.find(kind.table, key)
    if rec is None:
        raise erp.not_found(kind.table, key)
    return Response(200, rec)


def invoice_status(erp: Erp, request: Request, key: str) -> Response:
    """What the CRM and PSA want back: how much is still owed, and by what it was settled."""
    inv = erp.find("invoices", key)
    if inv is None:
        raise erp.not_found("invoices", key)
    keys = ("id", "tranId", "externalId", "customer", "currency", "total", "amountPaid", "amountCredited",
            "amountRemaining", "status", "dueDate", "links", "lastModifiedDate")
    return Response(200, {k: inv[k] for k in keys})


def _params(request: Request) -> dict[str, str]:
    return {str(k): str(v) for k, v in request.query.items()}


def _page(rows: list[dict], params: dict[str, str]) -> Response:
    def number(name: str, default: int, lo: int, hi: int) -> int:
        raw = params.pop(name, str(default))
        if not _NUMERIC.fullmatch(raw) or not lo <= int(raw) <= hi:
            raise VendorError(400, "INVALID_QUERY_PARAMETER", f"{name} must be a whole number from {lo} to {hi}, "
                              f"not {raw!r}", name)
        return int(raw)

    limit, offset = number("limit", 100, 1, 1000), number("offset", 0, 0, 10**9)
    if params:
        name = sorted(params)[0]
        raise VendorError(400, "INVALID_QUERY_PARAMETER", f"unknown query parameter {name!r}", name)
    items = rows[offset:offset + limit]
    return Response(200, {"items": items, "count": len(items), "offset": offset, "totalResults": len(rows),
                          "hasMore": offset + len(items) < len(rows)})


def query(erp: Erp, kind: Kind, request: Request) -> Response:
    """Records by field equality (references also by eid:), in creation order, paged."""
    params = _params(request)
    since = params.pop("lastModifiedAfter", None)
    contains = params.pop("nameContains", None) if kind is CUSTOMERS else None
    wanted = {}
    for name in sorted(set(params) - {"limit", "offset"}):
        if name not in kind.filters:
            raise VendorError(400, "INVALID_QUERY_PARAMETER", f"{kind.table} cannot be filtered by {name!r}; filters "
                              f"are {', '.join(kind.filters + ('lastModifiedAfter', 'limit', 'offset'))}", name)
        value = params.pop(name)
        if name in _REF_FILTERS and value.startswith("eid:"):
            found = erp.find(_REF_FILTERS[name], value)
            value = "" if found is None else str(found["id"])
        wanted[name] = value
    table = erp.table(kind.table)
    if "project" in wanted and kind.table in erp.by_project:
        ids = erp.by_project[kind.table].get(wanted["project"], ())
        candidates = [table[str(i)] for i in ids if str(i) in table]
    else:
        candidates = table.values()
    rows = [r for r in candidates if all(str(r.get(k)) == v for k, v in wanted.items())]
    if contains is not None:
        rows = [r for r in rows if contains.casefold() in r["companyName"].casefold()]
    if since is not None:
        try:
            after = datetime.fromisoformat(since)
            rows = [r for r in rows if r["lastModifiedDate"] and datetime.fromisoformat(r["lastModifiedDate"]) > after]
        except (ValueError, TypeError):
            raise VendorError(400, "INVALID_QUERY_PARAMETER", "lastModifiedAfter must be an ISO date-time with an "
                              f"offset, like 2026-01-31T18:00:00+00:00, not {since!r}", "lastModifiedAfter") from None
    return _page(rows, params)


def reference(erp: Erp, table: str, request: Request) -> Response:
    return _page(list(erp.table(table).values()), _params(request))


def periods(erp: Erp, request: Request) -> Response:
    """Periods of a subsidiary (those touched so far), or the one holding `date`."""
    params = _params(request)
    sub_key, on = params.pop("subsidiary", None), params.pop("date", None)
    sub = None if sub_key is None else erp.resolve("subsidiaries", sub_key, "subsidiary")
    if on is not None:
        if sub is None:
            raise VendorError(400, "INVALID_QUERY_PARAMETER", "date needs subsidiary too: periods are kept per "
                              "subsidiary", "subsidiary")
        return _page([period_of(erp, sub["id"], day(on or "?", "date"))], params)
    rows = [r for r in erp.table("accountingPeriods").values() if sub is None or r["subsidiary"] == sub["id"]]
    return _page(sorted(rows, key=lambda r: (r["subsidiary"], r["startDate"])), params)


def exchange_rates(erp: Erp, request: Request) -> Response:
    """Stored quotes, or with from, to and date the rate a transaction that day would use."""
    params = _params(request)
    frm, to, on = params.pop("from", None), params.pop("to", None), params.pop("date", None)
    if on is not None:
        frm, to = erp.currency(frm, "from"), erp.currency(to, "to")
        rate = fx_rate(erp, frm, to, day(on or "?", "date"))
        return _page([{"fromCurrency": frm, "toCurrency": to, "date": on, "rate": format(rate, "f")}], params)
    rows = [r for r in erp.table("exchangeRates").values()
            if frm in (None, r["fromCurrency"]) and to in (None, r["toCurrency"])]
    return _page(rows, params)

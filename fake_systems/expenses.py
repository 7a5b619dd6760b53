"""A fake expense system in the Concur / Expensify family.

Employees file expense reports of entries (date, merchant, category, amount
net of tax, currency, tax, billable flag, project, receipt). A report moves
DRAFT -> SUBMITTED -> APPROVED -> REIMBURSED, or SUBMITTED -> REJECTED; people
move it in the UI. Integrations read approved work and write back what they
did with it:

* ``GET /api/v3/entries`` lists entries of approved (or since reimbursed)
  reports, filtered by the approval date, billable flag and export status,
  paged by ``offset``/``limit`` with a ``TotalCount``.
* ``POST /api/v3/entries/marks`` marks entries EXPORTED (to the ledger) or
  BILLED (to the client) under an external reference. It is a batch with an
  outcome per entry and answers 200 even when some fail; marking again with
  the same reference is harmless (ALREADY_MARKED), with another reference it
  is refused (MARKED_ELSEWHERE) -- the trace of a double export.
* Entries can also be added through the API to a draft report (card feeds do
  this), validated like the UI: amount above zero, a known currency, tax not
  negative, a project on every billable entry.
* Over the allowance the API answers 429 with ``x-ratelimit-reset`` (seconds),
  not Retry-After.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from simulator import Request, Response

from .firm_model import REJECTED, ExpenseEntry
from .money import MINOR_UNITS, Money, minor_units, sum_money
from .vendor import Route, VendorError, VendorSystem, require, require_fields

__all__ = ["Expenses", "CATEGORIES", "STATUSES"]

STATUSES = ("DRAFT", "SUBMITTED", "APPROVED", "REJECTED", "REIMBURSED")
APPROVED_STATUSES = ("APPROVED", "REIMBURSED")
CATEGORIES = ("airfare", "lodging", "meals", "ground_transport", "mileage", "supplies", "other")
MARKS = {"EXPORTED": ("ExportStatus", "ExportRef"), "BILLED": ("BillingStatus", "BillingRef")}
MAX_PAGE = 200
RECEIPT_THRESHOLD = Decimal("25.00")  # the seeded firm's receipts: kept for anything above this
MERCHANTS = {
    "airfare": ("Skyline Air", "Transatlantic Airways", "Northern Jet"),
    "lodging": ("Harbour Hotel", "The Grand Meridian", "Cityside Suites"),
    "meals": ("Corner Bistro", "Station Cafe", "Noodle House"),
    "ground_transport": ("Metro Taxi", "RideNow", "Airport Express"),
    "mileage": ("Personal vehicle",),
}
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(value: object, field: str) -> date:
    try:
        if isinstance(value, str) and _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise VendorError(400, "INVALID_DATE", f"{field} must be a date 'YYYY-MM-DD', got {value!r}", field)


def _amount(body: dict, field: str, currency: str, *, positive: bool) -> Decimal:
    v = body.get(field)
    require(isinstance(v, str) and _AMOUNT.fullmatch(v) is not None, "INVALID_AMOUNT",
            f"{field} must be a decimal string like \"42.50\", got {v!r}", field)
    d = Decimal(v)
    require(d > 0 if positive else d >= 0, "INVALID_AMOUNT",
            f"{field} must be {'greater than zero' if positive else 'zero or more'}, got {v}", field)
    require(-d.as_tuple().exponent <= minor_units(currency), "INVALID_AMOUNT",
            f"{field} {v} has more decimals than {currency} allows ({minor_units(currency)})", field)
    return d.quantize(Decimal(1).scaleb(-minor_units(currency)))  # exact: the precision was checked


def _validated_entry(body: object) -> dict:
    """An entry as the UI would accept it, in this vendor's field names; VendorError names the bad field."""
    body = require_fields(body, ("TransactionDate", "Merchant", "Category", "Amount", "Currency"))
    currency = body["Currency"]
    require(isinstance(currency, str) and currency in MINOR_UNITS, "UNKNOWN_CURRENCY",
            f"Currency {currency!r} is not an ISO 4217 code this company accepts, like 'USD'", "Currency")
    category = body["Category"]
    require(isinstance(category, str) and category in CATEGORIES, "INVALID_CATEGORY",
            f"Category must be one of {list(CATEGORIES)}, got {category!r}", "Category")
    require(isinstance(body["Merchant"], str), "INVALID_FIELD", "Merchant must be a string", "Merchant")
    flags = {f: body.get(f, False) for f in ("IsBillable", "ReceiptAttached")}
    for f, v in flags.items():
        require(isinstance(v, bool), "INVALID_FIELD", f"{f} must be true or false, got {v!r}", f)
    project = body.get("ProjectRef")
    require(project is None or isinstance(project, str), "INVALID_FIELD", "ProjectRef must be a string", "ProjectRef")
    require(not flags["IsBillable"] or bool(project), "PROJECT_REQUIRED",
            "a billable entry needs a ProjectRef (the project to bill); add one or set IsBillable false", "ProjectRef")
    external = body.get("ExternalId")
    require(external is None or isinstance(external, str), "INVALID_FIELD", "ExternalId must be a string", "ExternalId")
    tax = _amount(body, "TaxAmount", currency, positive=False) if "TaxAmount" in body else Decimal(0)
    return {"TransactionDate": _date(body["TransactionDate"], "TransactionDate").isoformat(),
            "Merchant": body["Merchant"], "Category": category,
            "Amount": str(_amount(body, "Amount", currency, positive=True)), "Currency": currency,
            "TaxAmount": str(tax), "IsBillable": flags["IsBillable"], "ProjectRef": project or None,
            "ReceiptAttached": flags["ReceiptAttached"], "ExternalId": external}


class Expenses(VendorSystem):
    family = "Concur/Expensify-like expenses"

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/v3/reports", self._create_report, writes=True),
            Route("GET", "/api/v3/reports", self._list_reports),
            Route("GET", "/api/v3/reports/{report_id}", self._get_report),
            Route("POST", "/api/v3/reports/{report_id}/entries", self._add_entry, writes=True),
            Route("GET", "/api/v3/entries", self._list_entries),
            Route("POST", "/api/v3/entries/marks", self._mark_entries, writes=True),
        ]

    # ---- the vendor's error shape

    def error(self, status, code, message, field=None, headers=None) -> Response:
        return Response(status, {"Error": {"Code": code, "Message": message, "Field": field}}, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "RATE_LIMIT_REACHED", "request allowance reached for this partner app",
                          headers={"x-ratelimit-reset": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(429, "CONCURRENT_REQUEST_LIMIT", "too many requests in flight for this partner app")

    def unavailable(self) -> Response:
        return self.error(503, "SERVICE_UNAVAILABLE", "expense service unavailable", headers={"retry-after": "60"})

    def server_error(self) -> Response:
        return self.error(500, "INTERNAL_SERVER_ERROR", "something went wrong on our side; try again")

    def conflict(self) -> Response:
        return self.error(409, "REPORT_LOCKED", "the report is being edited by its approver; try again later")

    # ---- state

    @property
    def today(self) -> date:
        return self.sim.calendar.date_at(self.now_us, self.name)

    def _stamp(self) -> str:
        return self.sim.calendar.datetime_at(self.now_us, self.name).isoformat(timespec="seconds")

    def _report(self, report_id: str) -> dict:
        r = self.table("reports").get(report_id)
        require(r is not None, "REPORT_NOT_FOUND", f"no expense report {report_id}", "ReportId", status=404)
        return r

    def _entries_of(self, report_id: str) -> list[dict]:
        return [e for e in self.table("entries").values() if e["ReportId"] == report_id]

    def _view(self, r: dict) -> dict:
        entries = [dict(e) for e in self._entries_of(r["ReportId"])]
        totals = []
        for cur in sorted({e["Currency"] for e in entries}):
            mine = [e for e in entries if e["Currency"] == cur]
            totals.append({"Currency": cur, "Amount": self._sum(mine, "Amount", cur),
                           "TaxAmount": self._sum(mine, "TaxAmount", cur), "EntryCount": len(mine)})
        return {**r, "Totals": totals, "Entries": entries}

    @staticmethod
    def _sum(entries: list[dict], field: str, cur: str) -> str:
        return str(sum_money((Money(Decimal(e[field]), cur) for e in entries), cur).amount)

    def _new_report(self, employee_id: str, name: str, request: Request | None) -> dict:
        report_id = f"RPT-{self.store.next_id('report'):06d}"
        r = {"ReportId": report_id, "EmployeeId": employee_id, "ReportName": name, "Status": "DRAFT",
             "CreatedOn": self.today.isoformat(), "SubmittedOn": None, "ApprovedOn": None, "RejectedOn": None,
             "RejectionReason": None, "ReimbursedOn": None, "LastModified": self._stamp()}
        self.table("reports")[report_id] = r
        self.record_effect("report.created", "reports", report_id, request, employee=employee_id)
        return r

    def _new_entry(self, r: dict, fields: dict, request: Request | None) -> dict:
        require(r["Status"] == "DRAFT", "REPORT_NOT_EDITABLE", f"report {r['ReportId']} is {r['Status']}; "
                "entries can only be added to a DRAFT report", "ReportId", status=409)
        entry_id = f"ENT-{self.store.next_id('entry'):07d}"
        e = {"EntryId": entry_id, "ReportId": r["ReportId"], **fields, "ExportStatus": "NOT_EXPORTED",
             "ExportRef": None, "BillingStatus": "NOT_BILLED" if fields["IsBillable"] else "NOT_BILLABLE",
             "BillingRef": None}
        self.table("entries")[entry_id] = e
        r["LastModified"] = self._stamp()
        self.record_effect("entry.added", "entries", entry_id, request, report=r["ReportId"], amount=e["Amount"],
                           currency=e["Currency"])
        return e

    @staticmethod
    def _page(request: Request) -> tuple[int, int]:
        out = []
        for name, default, hi in (("offset", 0, None), ("limit", 50, MAX_PAGE)):
            v = str(request.query.get(name, default))
            lo = 0 if name == "offset" else 1
            require(v.isdigit() and int(v) >= lo and (hi is None or int(v) <= hi), "INVALID_PARAMETER",
                    f"{name} must be a whole number from {lo}" + (f" to {hi}" if hi else "") + f", got {v!r}", name)
            out.append(int(v))
        return out[0], out[1]

    @staticmethod
    def _paged(items: list[dict], offset: int, limit: int) -> dict:
        page = items[offset:offset + limit]
        more = offset + len(page) < len(items)
        return {"TotalCount": len(items), "Offset": offset, "Limit": limit,
                "NextOffset": offset + len(page) if more else None, "Items": page}

    # ---- routes

    def _create_report(self, request: Request) -> Response:
        body = require_fields(request.json, ("EmployeeId",))
        name = body.get("ReportName", "Expenses")
        require(isinstance(body["EmployeeId"], str) and isinstance(name, str), "INVALID_FIELD",
                "EmployeeId and ReportName must be strings", "EmployeeId")
        return Response(201, self._view(self._new_report(body["EmployeeId"], name, request)))

    def _add_entry(self, request: Request, report_id: str) -> Response:
        r = self._report(report_id)
        return Response(201, dict(self._new_entry(r, _validated_entry(request.json), request)))

    def _get_report(self, request: Request, report_id: str) -> Response:
        return Response(200, self._view(self._report(report_id)))

    def _list_reports(self, request: Request) -> Response:
        q, (offset, limit) = request.query, self._page(request)
        status = q.get("status")
        require(status is None or status in STATUSES, "INVALID_PARAMETER", f"status must be one of {list(STATUSES)}",
                "status")
        since = _date(q["approvedSince"], "approvedSince").isoformat() if "approvedSince" in q else None
        rows = [self._view(r) for r in self.table("reports").values()
                if (status is None or r["Status"] == status) and (since is None or (r["ApprovedOn"] or "") >= since)
                and q.get("employeeId") in (None, r["EmployeeId"])]
        return Response(200, self._paged(rows, offset, limit))

    def _list_entries(self, request: Request) -> Response:
        """Entries of approved (or reimbursed) reports, oldest report first."""
        q, (offset, limit) = request.query, self._page(request)
        since = _date(q["approvedSince"], "approvedSince").isoformat() if "approvedSince" in q else ""
        billable = q.get("billable")
        require(billable in (None, "true", "false"), "INVALID_PARAMETER", "billable must be true or false", "billable")
        export = q.get("exportStatus")
        require(export in (None, "NOT_EXPORTED", "EXPORTED"), "INVALID_PARAMETER",
                "exportStatus must be NOT_EXPORTED or EXPORTED", "exportStatus")
        reports = self.table("reports")
        rows = []
        for e in self.table("entries").values():
            r = reports[e["ReportId"]]
            if (r["Status"] in APPROVED_STATUSES and r["ApprovedOn"] >= since
                    and billable in (None, str(e["IsBillable"]).lower()) and export in (None, e["ExportStatus"])):
                rows.append({**e, "EmployeeId": r["EmployeeId"], "ReportStatus": r["Status"],
                             "ApprovedOn": r["ApprovedOn"]})
        return Response(200, self._paged(rows, offset, limit))

    def _mark_entries(self, request: Request) -> Response:
        body = require_fields(request.json, ("Mark", "ExternalRef", "EntryIds"))
        mark, ref, ids = body["Mark"], body["ExternalRef"], body["EntryIds"]
        require(isinstance(mark, str) and mark in MARKS, "INVALID_FIELD", f"Mark must be one of {list(MARKS)}", "Mark")
        require(isinstance(ref, str), "INVALID_FIELD", "ExternalRef must be a string", "ExternalRef")
        require(isinstance(ids, list) and 0 < len(ids) <= 100 and all(isinstance(i, str) for i in ids),
                "INVALID_FIELD", "EntryIds must be a list of 1 to 100 entry ids", "EntryIds")
        status_field, ref_field = MARKS[mark]
        results = []
        for entry_id in ids:
            e = self.table("entries").get(entry_id)
            outcome = self._mark(e, mark, ref, status_field, ref_field, request) if e else "NOT_FOUND"
            results.append({"EntryId": entry_id, "Outcome": outcome,
                             ref_field: e[ref_field] if e else None})
        return Response(200, {"Mark": mark, "Results": results,
                              "MarkedCount": sum(r["Outcome"] == "MARKED" for r in results)})

    def _mark(self, e: dict, mark: str, ref: str, status_field: str, ref_field: str, request: Request) -> str:
        if self.table("reports")[e["ReportId"]]["Status"] not in APPROVED_STATUSES:
            return "NOT_APPROVED"
        if mark == "BILLED" and not e["IsBillable"]:
            return "NOT_BILLABLE"
        if e[status_field] == mark:
            return "ALREADY_MARKED" if e[ref_field] == ref else "MARKED_ELSEWHERE"
        e[status_field], e[ref_field] = mark, ref
        self.record_effect(f"entry.{mark.lower()}", "entries", e["EntryId"], request, ref=ref)
        return "MARKED"

    # ---- seeding from the generated firm

    def load_firm(self, firm, *, settle: bool = False) -> list[str]:
        """Every month's expenses of a generated firm (see `load_expenses`)."""
        return self.load_expenses((x for m in firm.months for x in m.expenses), settle=settle)

    def load_expenses(self, entries: Iterable[ExpenseEntry], *, settle: bool = False) -> list[str]:
        """One report per worker, month and intended outcome, submitted on its last receipt's date; with
        `settle` (for history) also approved or rejected that day as the firm intended -- otherwise a
        scenario approves them when it chooses. Returns the report ids in creation order."""
        if self.sim is None:
            raise RuntimeError("add the expense system to a Simulation (or World) before loading records")
        reports: dict[tuple, dict] = {}
        for x in entries:
            key = (x.worker_id, f"{x.incurred_on:%Y-%m}", x.outcome == REJECTED)
            if key not in reports:
                reports[key] = self._new_report(x.worker_id, f"{key[1]} expenses", None)
            merchants = MERCHANTS.get(x.category, ("Various",))
            self._new_entry(reports[key], {
                "TransactionDate": x.incurred_on.isoformat(), "Merchant": merchants[int(x.id[2:]) % len(merchants)],
                "Category": x.category, "Amount": str(x.amount), "Currency": x.currency, "TaxAmount": str(x.tax_amount),
                "IsBillable": x.billable, "ProjectRef": x.project_id,
                "ReceiptAttached": x.amount > RECEIPT_THRESHOLD, "ExternalId": x.id}, None)
        for (_, _, rejected), r in reports.items():
            on = date.fromisoformat(max(e["TransactionDate"] for e in self._entries_of(r["ReportId"])))
            self._move(r["ReportId"], "DRAFT", "SUBMITTED", "SubmittedOn", on)
            if settle and rejected:
                self._move(r["ReportId"], "SUBMITTED", "REJECTED", "RejectedOn", on, RejectionReason="not billable")
            elif settle:
                self._move(r["ReportId"], "SUBMITTED", "APPROVED", "ApprovedOn", on)
        return [r["ReportId"] for r in reports.values()]

    # ---- what people do in the UI

    def create_report(self, employee_id: str, name: str = "Expenses") -> str:
        """An employee starts a draft report."""
        return self._new_report(employee_id, name, None)["ReportId"]

    def add_entry(self, report_id: str, **fields) -> str:
        """Add an entry as the employee would (same fields and checks as the API); ValueError if invalid."""
        try:
            return self._new_entry(self._report(report_id), _validated_entry(fields), None)["EntryId"]
        except VendorError as e:
            raise ValueError(f"{e.field}: {e.message}") from None

    def submit(self, report_id: str) -> dict:
        return self._move(report_id, "DRAFT", "SUBMITTED", "SubmittedOn")

    def approve(self, report_id: str) -> dict:
        return self._move(report_id, "SUBMITTED", "APPROVED", "ApprovedOn")

    def reject(self, report_id: str, reason: str) -> dict:
        return self._move(report_id, "SUBMITTED", "REJECTED", "RejectedOn", RejectionReason=reason)

    def reimburse(self, report_id: str) -> dict:
        return self._move(report_id, "APPROVED", "REIMBURSED", "ReimbursedOn")

    def _move(self, report_id: str, frm: str, to: str, date_field: str, on: date | None = None, **extra) -> dict:
        r = self.table("reports").get(report_id)
        if r is None:
            raise ValueError(f"no expense report {report_id}")
        if r["Status"] != frm:
            raise ValueError(f"report {report_id} is {r['Status']}; only a {frm} report can become {to}")
        if to == "SUBMITTED" and not self._entries_of(report_id):
            raise ValueError(f"report {report_id} has no entries; add one before submitting")
        r.update(Status=to, LastModified=self._stamp(), **{date_field: (on or self.today).isoformat()}, **extra)
        self.record_effect(f"report.{to.lower()}", "reports", report_id, None, **extra)
        return dict(r)

"""What each ERP record may hold, and what a write must pass.

Each kind the API writes is a `Kind`: its table, the document number it is
given, and three functions the generic create/upsert handlers of `erp.Erp`
call in turn:

* ``build(erp, body, existing)`` turns a body -- or an update laid over the
  stored record -- into the record's fields: every value validated, every
  reference resolved, totals computed. It changes nothing.
* ``admit(erp, fields, existing)`` decides whether the write may happen at
  all (an open period, no payment applied yet, a project not closed). It
  runs only when something would change, so replaying an upsert that was
  already applied is answered 200 even after its period has closed.
* ``initial(record)`` gives the state a written document starts from (what is
  still owed), and ``after_write(erp, record, request)`` does what follows
  from it (a credit memo created from an invoice applies to it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from .erp_books import (
    LINE_FIELDS, apply_to_invoice, fx_rate, period_of, price_lines, require_postable, tax_for, to_base,
)
from .erp_fields import amount, country_code, day, decimal_text, flag, fmt, only, text, whole, writable
from .vendor import VendorError

if TYPE_CHECKING:
    from .erp import Erp

__all__ = [
    "Kind", "posting_fields", "CUSTOMERS", "PROJECTS", "ACTUALS", "INVOICES", "CREDIT_MEMOS", "JOURNALS", "PAYMENTS",
    "KINDS",
]


@attrs.frozen
class Kind:
    table: str
    noun: str
    id_space: str  # ids are shared: "entity" (customers, projects) or "transaction"
    number_field: str
    number_format: str
    build: Callable[[Erp, dict, dict | None], dict] | None
    filters: tuple[str, ...] = ()
    admit: Callable[[Erp, dict, dict | None], None] | None = None
    initial: Callable[[dict], dict] | None = None
    after_write: Callable[[Erp, dict, Any], None] | None = None


def _refuse(code: str, message: str, field: str | None = None) -> VendorError:
    return VendorError(400, code, message, field)


def posting_fields(erp: Erp, sub: dict, on: date, currency: str) -> dict:
    """The date, period and exchange rate fields every transaction carries."""
    period = period_of(erp, sub["id"], on)
    return {
        "subsidiary": sub["id"],
        "tranDate": on.isoformat(),
        "postingPeriod": period["id"],
        "postingPeriodName": period["periodName"],
        "currency": currency,
        "exchangeRate": format(fx_rate(erp, currency, sub["currency"], on), "f"),
        "baseCurrency": sub["currency"],
    }


def _admit_dates(erp: Erp, fields: dict, existing: dict | None, receivables: bool, what: str) -> None:
    """Both the new date and, for an update, the date being replaced must be postable."""
    sub = erp.subsidiary(fields["subsidiary"])
    require_postable(erp, sub, date.fromisoformat(fields["tranDate"]), receivables=receivables, what=what)
    if existing is not None:
        old = erp.subsidiary(existing["subsidiary"])
        require_postable(erp, old, date.fromisoformat(existing["tranDate"]), receivables=receivables,
                         what=f"{what} {existing['tranId']}")


# ------------------------------------------------------------------ customers

CUSTOMER_FIELDS = ("externalId", "companyName", "subsidiary", "currency", "country", "taxRegistration", "email",
                   "termsDays", "isInactive")


def build_customer(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, CUSTOMER_FIELDS, "a customer")
    name = text(b, "companyName", required=True)
    sub = erp.resolve("subsidiaries", b.get("subsidiary"), "subsidiary", required=True)
    currency = erp.currency(b.get("currency") or sub["currency"], "currency")
    country = country_code(b.get("country") or sub["country"], "country")
    registration = text(b, "taxRegistration", max_len=40)
    rule = erp.table("taxRules").get(country)
    if registration is None and rule is not None and rule["registrationRequired"]:
        raise _refuse("TAX_REGISTRATION_REQUIRED",
                      f"customers in {country} must carry a {rule['kind'].upper()} registration number; send "
                      f"taxRegistration, or correct country", "taxRegistration")
    return {
        "companyName": name, "subsidiary": sub["id"], "currency": currency, "country": country,
        "taxRegistration": registration, "email": text(b, "email", max_len=254),
        "termsDays": whole(b, "termsDays", 30, 0, 365), "isInactive": flag(b, "isInactive", False),
    }


def admit_customer(erp: Erp, fields: dict, existing: dict | None) -> None:
    if existing is None:
        return
    for f in ("subsidiary", "currency"):
        if fields[f] != existing[f] and erp.customer_has_transactions(existing["id"]):
            raise _refuse("CUSTOMER_HAS_TRANSACTIONS",
                          f"customer {existing['id']} has transactions, so its {f} can no longer change; "
                          f"create a new customer for the other {f}", f)


# ------------------------------------------------------------------ projects and their actuals

PROJECT_FIELDS = ("externalId", "name", "customer", "currency", "department", "class", "location", "startDate",
                  "endDate", "status")
PROJECT_STATUSES = ("pending", "in_progress", "closed")


def build_project(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, PROJECT_FIELDS, "a project")
    name = text(b, "name", required=True)
    customer = erp.resolve("customers", b.get("customer"), "customer", required=True)
    sub = erp.subsidiary(customer["subsidiary"])
    start, end = day(b.get("startDate"), "startDate"), day(b.get("endDate"), "endDate")
    if start and end and end < start:
        raise _refuse("INVALID_FIELD_VALUE", f"endDate {end} is before startDate {start}", "endDate")
    status = b.get("status", "in_progress")
    if status not in PROJECT_STATUSES:
        raise _refuse("INVALID_FIELD_VALUE", f"status must be one of {', '.join(PROJECT_STATUSES)}, not {status!r}",
                      "status")
    return {
        "name": name, "customer": customer["id"], "subsidiary": sub["id"],
        "currency": erp.currency(b.get("currency") or customer["currency"], "currency"),
        **erp.dimensions(b, sub["id"]),
        "startDate": start and start.isoformat(), "endDate": end and end.isoformat(), "status": status,
    }


ACTUAL_FIELDS = ("externalId", "project", "type", "tranDate", "employee", "hours", "costAmount", "revenueAmount",
                 "amount", "billable", "currency", "memo", "department", "class", "location")
_ONLY_TIME, _ONLY_EXPENSE = ("hours", "costAmount", "revenueAmount"), ("amount", "billable")


def build_actual(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, ACTUAL_FIELDS, "a project actual")
    project = erp.resolve("projects", b.get("project"), "project", required=True)
    kind = b.get("type")
    if kind not in ("time", "expense"):
        raise _refuse("INVALID_FIELD_VALUE", f"type must be 'time' or 'expense', not {kind!r}", "type")
    for f in _ONLY_EXPENSE if kind == "time" else _ONLY_TIME:
        if b.get(f) is not None:
            raise _refuse("INVALID_FIELD_VALUE", f"{f} belongs to {'expense' if kind == 'time' else 'time'} "
                          f"actuals, not {kind} actuals; leave it out", f)
    sub = erp.subsidiary(project["subsidiary"])
    currency = erp.currency(b.get("currency") or project["currency"], "currency")
    on = day(b.get("tranDate"), "tranDate") or erp.today()
    fields = {"project": project["id"], "customer": project["customer"], "type": kind,
              **posting_fields(erp, sub, on, currency),
              "employee": text(b, "employee", max_len=40), "memo": text(b, "memo", max_len=4000),
              **erp.dimensions(b, sub["id"], defaults=project)}
    rate = Decimal(fields["exchangeRate"])

    def money(f: str, required: bool = True) -> Decimal:
        value = amount(b.get(f), currency, f)
        if value is None and required:
            raise _refuse("REQUIRED_FIELD_MISSING", f"a {kind} actual needs {f} (a decimal string in {currency})", f)
        return Decimal(0) if value is None else value

    if kind == "time":
        hours = decimal_text(b.get("hours"), "hours", 2)
        if hours is None:
            raise _refuse("REQUIRED_FIELD_MISSING", 'a time actual needs hours (a decimal string like "7.50")',
                          "hours")
        cost, revenue = money("costAmount"), money("revenueAmount", required=False)
        fields.update(hours=format(hours, "f"), costAmount=fmt(cost, currency), revenueAmount=fmt(revenue, currency),
                      baseCostAmount=fmt(to_base(cost, sub["currency"], rate), sub["currency"]),
                      baseRevenueAmount=fmt(to_base(revenue, sub["currency"], rate), sub["currency"]))
    else:
        spent = money("amount")
        fields.update(amount=fmt(spent, currency), billable=flag(b, "billable", False),
                      baseAmount=fmt(to_base(spent, sub["currency"], rate), sub["currency"]))
    return fields


def admit_actual(erp: Erp, fields: dict, existing: dict | None) -> None:
    project = erp.table("projects")[str(fields["project"])]
    if project["status"] == "closed":
        raise _refuse("PROJECT_CLOSED", f"project {project['id']} ({project['name']}) is closed and takes no "
                      "more actuals; reopen it (status in_progress) first", "project")
    _admit_dates(erp, fields, existing, False, "a project actual")


# ------------------------------------------------------------------ receivables: invoices and credit memos

INVOICE_FIELDS = ("externalId", "customer", "currency", "tranDate", "dueDate", "project", "department", "class",
                  "location", "memo", "poNumber", "lines")
CREDIT_MEMO_FIELDS = ("externalId", "customer", "currency", "tranDate", "createdFrom", "project", "department",
                      "class", "location", "memo", "lines")


def _receivable(erp: Erp, b: dict, noun: str) -> tuple[dict, dict]:
    customer = erp.resolve("customers", b.get("customer"), "customer", required=True)
    sub = erp.subsidiary(customer["subsidiary"])
    currency = erp.currency(b.get("currency") or customer["currency"], "currency")
    if currency != customer["currency"]:
        raise _refuse("INVALID_FIELD_VALUE", f"{noun}s are issued in the customer's currency {customer['currency']}; "
                      f"send currency {customer['currency']} or leave it out", "currency")
    project = erp.resolve("projects", b.get("project"), "project")
    if project is not None and project["customer"] != customer["id"]:
        raise _refuse("INVALID_REFERENCE", f"project {project['id']} belongs to customer {project['customer']}, "
                      f"not to customer {customer['id']}", "project")
    on = day(b.get("tranDate"), "tranDate") or erp.today()
    tax_code, tax_rate = tax_for(sub, customer)
    lines, subtotal, tax = price_lines(b.get("lines"), currency, tax_rate, noun)
    total = subtotal + tax
    if total <= 0:
        raise _refuse("INVALID_AMOUNT", f"a {noun} must total more than zero, not {fmt(total, currency)}", "lines")
    fields = {"customer": customer["id"], "project": project and project["id"],
              **posting_fields(erp, sub, on, currency),
              **erp.dimensions(b, sub["id"], defaults=project), "memo": text(b, "memo", max_len=4000),
              "taxCode": tax_code, "taxRate": format(tax_rate, "f"), "lines": lines,
              "subtotal": fmt(subtotal, currency), "taxTotal": fmt(tax, currency), "total": fmt(total, currency)}
    fields["baseTotal"] = fmt(to_base(total, sub["currency"], Decimal(fields["exchangeRate"])), sub["currency"])
    return fields, customer


def build_invoice(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, INVOICE_FIELDS, "an invoice", LINE_FIELDS)
    fields, customer = _receivable(erp, b, "invoice")
    on = date.fromisoformat(fields["tranDate"])
    due = day(b.get("dueDate"), "dueDate") or on + timedelta(days=customer["termsDays"])
    if due < on:
        raise _refuse("INVALID_FIELD_VALUE", f"dueDate {due} is before tranDate {on}", "dueDate")
    return {**fields, "dueDate": due.isoformat(), "poNumber": text(b, "poNumber", max_len=60)}


def build_credit_memo(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, CREDIT_MEMO_FIELDS, "a credit memo", LINE_FIELDS)
    fields, customer = _receivable(erp, b, "credit memo")
    invoice = erp.resolve("invoices", b.get("createdFrom"), "createdFrom")
    if invoice is not None and invoice["customer"] != customer["id"]:
        raise _refuse("INVALID_REFERENCE", f"invoice {invoice['tranId']} was issued to customer {invoice['customer']}, "
                      f"not to customer {customer['id']}", "createdFrom")
    return {**fields, "createdFrom": invoice and invoice["id"]}


def admit_receivable(noun: str) -> Callable[[Erp, dict, dict | None], None]:
    def admit(erp: Erp, fields: dict, existing: dict | None) -> None:
        if existing is not None and existing["links"]:
            raise _refuse("TRANSACTION_HAS_APPLICATIONS",
                          f"{noun} {existing['tranId']} has payments or credits applied and can no longer change; "
                          f"issue a credit memo for the difference instead")
        _admit_dates(erp, fields, existing, True, f"a {noun}")
    return admit


def initial_invoice(rec: dict) -> dict:
    zero = fmt(Decimal(0), rec["currency"])
    return {"amountPaid": zero, "amountCredited": zero, "amountRemaining": rec["total"], "status": "open", "links": []}


def initial_credit_memo(rec: dict) -> dict:
    zero = fmt(Decimal(0), rec["currency"])
    return {"amountApplied": zero, "amountUnapplied": rec["total"], "status": "open", "links": []}


def apply_credit_memo(erp: Erp, memo: dict, request: Any) -> None:
    """A credit memo created from an invoice settles as much of it as is still owed."""
    if memo["createdFrom"] is None or memo["links"]:
        return
    invoice = erp.table("invoices")[str(memo["createdFrom"])]
    applied = min(Decimal(memo["total"]), Decimal(invoice["amountRemaining"]))
    if applied <= 0:
        return
    apply_to_invoice(invoice, memo, "creditMemo", applied)
    invoice["lastModifiedDate"] = memo["lastModifiedDate"]
    cur = memo["currency"]
    unapplied = Decimal(memo["total"]) - applied
    memo.update(amountApplied=fmt(applied, cur), amountUnapplied=fmt(unapplied, cur),
                status="fully_applied" if unapplied == 0 else "open")
    memo["links"].append({"type": "invoice", "id": invoice["id"], "tranId": invoice["tranId"],
                          "tranDate": invoice["tranDate"], "amount": fmt(applied, cur)})
    erp.effect("apply", "invoices", str(invoice["id"]), request, source=memo["tranId"], amount=fmt(applied, cur))


# ------------------------------------------------------------------ journal entries

JOURNAL_FIELDS = ("externalId", "subsidiary", "currency", "tranDate", "memo", "lines")
JOURNAL_LINE_FIELDS = ("account", "debit", "credit", "memo", "project", "department", "class", "location")


def build_journal(erp: Erp, body: dict, existing: dict | None) -> dict:
    b = writable(body, existing, JOURNAL_FIELDS, "a journal entry", JOURNAL_LINE_FIELDS)
    sub = erp.resolve("subsidiaries", b.get("subsidiary"), "subsidiary", required=True)
    currency = erp.currency(b.get("currency") or sub["currency"], "currency")
    on = day(b.get("tranDate"), "tranDate") or erp.today()
    raw = b.get("lines")
    if not isinstance(raw, list) or not 2 <= len(raw) <= 1000:
        raise _refuse("REQUIRED_FIELD_MISSING", "lines must be a list of 2 to 1000 journal lines, each "
                      "{account, debit or credit}", "lines")
    lines, debits, credits = [], Decimal(0), Decimal(0)
    for i, ln in enumerate(raw):
        where = f"lines[{i}]"
        only(ln, JOURNAL_LINE_FIELDS, "a journal line", where)
        account = erp.resolve("accounts", ln.get("account"), where + ".account", required=True)
        debit, credit = amount(ln.get("debit"), currency, where + ".debit"), amount(ln.get("credit"), currency,
                                                                                    where + ".credit")
        if (debit is None) == (credit is None) or (debit if credit is None else credit) <= 0:
            raise _refuse("INVALID_AMOUNT", f"{where} needs exactly one of debit or credit, above zero", where)
        project = erp.resolve("projects", ln.get("project"), where + ".project")
        if project is not None and project["subsidiary"] != sub["id"]:
            raise _refuse("INVALID_REFERENCE", f"project {project['id']} belongs to subsidiary "
                          f"{project['subsidiary']}, not {sub['id']}", where + ".project")
        debits += debit or 0
        credits += credit or 0
        lines.append({"line": i + 1, "account": account["id"],
                      "debit": None if debit is None else fmt(debit, currency),
                      "credit": None if credit is None else fmt(credit, currency),
                      "memo": text(ln, "memo", max_len=4000, where=where + "."), "project": project and project["id"],
                      **erp.dimensions(ln, sub["id"], where=where + ".")})
    if debits != credits:
        raise _refuse("UNBALANCED_JOURNAL", f"debits {fmt(debits, currency)} and credits {fmt(credits, currency)} "
                      f"differ by {fmt(abs(debits - credits), currency)}; a journal entry must balance", "lines")
    fields = {**posting_fields(erp, sub, on, currency), "memo": text(b, "memo", max_len=4000), "lines": lines,
              "totalDebit": fmt(debits, currency), "totalCredit": fmt(credits, currency)}
    fields["baseTotal"] = fmt(to_base(debits, sub["currency"], Decimal(fields["exchangeRate"])), sub["currency"])
    return fields


def admit_journal(erp: Erp, fields: dict, existing: dict | None) -> None:
    _admit_dates(erp, fields, existing, False, "a journal entry")


# ------------------------------------------------------------------ the table of kinds

_TXN = ("externalId", "subsidiary", "postingPeriod", "tranId", "currency")
CUSTOMERS = Kind("customers", "customer", "entity", "entityId", "CUST-{:05d}", build_customer,
                 ("externalId", "companyName", "subsidiary", "currency", "country", "taxRegistration", "entityId"),
                 admit=admit_customer)
PROJECTS = Kind("projects", "project", "entity", "projectNumber", "PRJ-{:05d}", build_project,
                ("externalId", "customer", "subsidiary", "status", "projectNumber"))
ACTUALS = Kind("projectActuals", "project actual", "transaction", "tranId", "PA-{:06d}", build_actual,
               _TXN + ("project", "customer", "type", "employee"), admit=admit_actual)
INVOICES = Kind("invoices", "invoice", "transaction", "tranId", "INV-{:06d}", build_invoice,
                _TXN + ("customer", "project", "status"), admit=admit_receivable("invoice"), initial=initial_invoice)
CREDIT_MEMOS = Kind("creditMemos", "credit memo", "transaction", "tranId", "CM-{:06d}", build_credit_memo,
                    _TXN + ("customer", "project", "status", "createdFrom"), admit=admit_receivable("credit memo"),
                    initial=initial_credit_memo, after_write=apply_credit_memo)
JOURNALS = Kind("journalEntries", "journal entry", "transaction", "tranId", "JE-{:06d}", build_journal, _TXN,
                admit=admit_journal)
PAYMENTS = Kind("customerPayments", "customer payment", "transaction", "tranId", "PYT-{:06d}", None,
                _TXN + ("customer", "invoice"))
KINDS = {k.table: k for k in (CUSTOMERS, PROJECTS, ACTUALS, INVOICES, CREDIT_MEMOS, JOURNALS, PAYMENTS)}

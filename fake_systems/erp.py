"""The ERP (NetSuite-like): system of record for customers (bill-to), legal
entities, currencies, tax, dimensions, the ledger, receivables, invoices,
journals and accounting periods.

What a caller meets (the route table is `Erp.routes`; record shapes are in
`erp_records`, the books' rules -- periods, tax, exchange rates -- in
`erp_books`):

* Internal ids are numbers from shared counters, as in the family: customers
  and projects share the "entity" ids, every transaction (invoice, credit
  memo, journal entry, project actual, customer payment) the "transaction"
  ids. Documents also carry a number: tranId "INV-000123", entityId
  "CUST-00042".
* Upsert by external id: ``PUT /erp/v1/customers/eid:ACC-42`` creates the
  record (201) or updates it (200; an update that changes nothing is no
  effect). The same for projects, projectActuals, invoices, creditMemos and
  journalEntries. ``PUT`` on a numeric id updates (404 if absent) and may set
  the externalId. A plain ``POST`` is not idempotent: a retried POST makes a
  second record -- unless it carries an externalId already in use, which is
  refused (DUPLICATE_EXTERNAL_ID).
* A reference (customer, project, subsidiary, department, class, location,
  account, createdFrom) is an internal id or "eid:<externalId>".
* Accounting periods, per subsidiary and month: a posting dated in a closed
  period is refused (PERIOD_CLOSED), and so is a receivables document --
  invoice, credit memo, payment -- in an AR-locked one (PERIOD_AR_LOCKED);
  the error names the period. Never moved silently to another period.
* Errors: ``{"httpStatus": 400, "title": "...", "issues": [{"code", "detail",
  "path"}]}``. Transient ones, which a caller should retry: 400
  ACCT_CONCURRENCY_LIMIT_EXCEEDED (more requests in service than the
  account's limit, shared by every integration -- a 400, as the family's
  older APIs answer, so a caller must read the code), 400
  RECORD_CHANGED_SINCE_LOADED (changed underneath the writer; nothing was
  written), 429 ACCT_REQUEST_RATE_EXCEEDED with Retry-After, 500
  UNEXPECTED_ERROR (nothing written) and 503 ACCOUNT_UNAVAILABLE with
  Retry-After. Every other code is permanent: the same request gets the
  same answer until someone changes the data.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simulator import Request, Response
from simulator.latency import LogNormal

from . import erp_handlers as h
from . import erp_seed
from .erp_books import CURRENCY_NAMES, DEFAULT_ACCOUNTS, DEFAULT_TAX_RULES, apply_to_invoice, period_of
from .erp_books import require_postable, to_base
from .erp_fields import amount as parse_amount
from .erp_fields import country_code, currency_code, decimal_text, fmt
from .erp_records import ACTUALS, CREDIT_MEMOS, CUSTOMERS, INVOICES, JOURNALS, KINDS, PAYMENTS, PROJECTS
from .erp_records import posting_fields
from .firm_model import Client, Firm
from .money import MINOR_UNITS
from .vendor import Route, VendorError, VendorStore, VendorSystem, copy_data

__all__ = ["Erp", "BASE"]

BASE = h.BASE
_NOUNS = {"subsidiaries": "subsidiary", "departments": "department", "classes": "class", "locations": "location",
          "accounts": "account", **{k.table: k.noun for k in KINDS.values()}}
_DIMENSIONS = {"department": "departments", "class": "classes", "location": "locations"}
_TITLES = {400: "Bad request", 404: "Record not found", 405: "Method not allowed", 429: "Too many requests",
           500: "Unexpected error", 503: "Service unavailable"}
_NUMERIC = re.compile(r"[0-9]{1,12}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class Erp(VendorSystem):
    family = "NetSuite-like"
    # Saving a record in this family takes a good fraction of a second.
    service_time = LogNormal(median_us=350_000, sigma_milli=500, cap_us=15_000_000)

    def __init__(self, name: str = "erp") -> None:
        self._loading = False
        # table -> str(project) -> record ids, ascending (= creation order):
        # kept by erp_handlers.insert/update so a query by project reads its
        # own records, not every posting of the month.
        self.by_project: dict[str, dict[str, list[int]]] = {}
        super().__init__(name)

    def routes(self) -> list[Route]:
        def r(method: str, path: str, handler, *bound, writes: bool = False) -> Route:
            return Route(method, BASE + path, h.guard(self, handler, *bound), writes=writes)

        c, p, a, i, m, j, pay = CUSTOMERS, PROJECTS, ACTUALS, INVOICES, CREDIT_MEMOS, JOURNALS, PAYMENTS
        return [
            # reference data: finance keeps it in the UI; integrations read it
            r("GET", "/subsidiaries", h.reference, "subsidiaries"),
            r("GET", "/currencies", h.reference, "currencies"),
            r("GET", "/exchangeRates", h.exchange_rates),
            r("GET", "/taxRules", h.reference, "taxRules"),
            r("GET", "/accounts", h.reference, "accounts"),
            r("GET", "/departments", h.reference, "departments"),
            r("GET", "/classes", h.reference, "classes"),
            r("GET", "/locations", h.reference, "locations"),
            r("GET", "/accountingPeriods", h.periods),
            # customers (bill-to) and projects (jobs)
            r("POST", "/customers", h.post, c, writes=True),
            r("GET", "/customers", h.query, c),
            r("GET", "/customers/{key}", h.get, c),
            r("PUT", "/customers/{key}", h.put, c, writes=True),
            r("POST", "/projects", h.post, p, writes=True),
            r("GET", "/projects", h.query, p),
            r("GET", "/projects/{key}", h.get, p),
            r("PUT", "/projects/{key}", h.put, p, writes=True),
            # transactions
            r("POST", "/projectActuals", h.post, a, writes=True),
            r("GET", "/projectActuals", h.query, a),
            r("GET", "/projectActuals/{key}", h.get, a),
            r("PUT", "/projectActuals/{key}", h.put, a, writes=True),
            r("POST", "/invoices", h.post, i, writes=True),
            r("GET", "/invoices", h.query, i),
            r("GET", "/invoices/{key}", h.get, i),
            r("PUT", "/invoices/{key}", h.put, i, writes=True),
            r("GET", "/invoices/{key}/status", h.invoice_status),
            r("POST", "/creditMemos", h.post, m, writes=True),
            r("GET", "/creditMemos", h.query, m),
            r("GET", "/creditMemos/{key}", h.get, m),
            r("PUT", "/creditMemos/{key}", h.put, m, writes=True),
            r("POST", "/journalEntries", h.post, j, writes=True),
            r("GET", "/journalEntries", h.query, j),
            r("GET", "/journalEntries/{key}", h.get, j),
            r("PUT", "/journalEntries/{key}", h.put, j, writes=True),
            # payments are recorded by finance (record_payment); integrations read them
            r("GET", "/customerPayments", h.query, pay),
            r("GET", "/customerPayments/{key}", h.get, pay),
        ]

    # ------------------------------------------------------------ error shapes

    def error(self, status: int, code: str, message: str, field: str | None = None,
              headers: dict | None = None) -> Response:
        issue = {"code": code, "detail": message}
        if field is not None:
            issue["path"] = field
        body = {"httpStatus": status, "title": _TITLES.get(status, "Error"), "issues": [issue]}
        return Response(status, body, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "ACCT_REQUEST_RATE_EXCEEDED", "the account is over its request rate; retry after "
                          f"{retry_after_s}s", headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(400, "ACCT_CONCURRENCY_LIMIT_EXCEEDED", "the account already has as many requests in "
                          "progress as its concurrency limit allows (shared by every integration); retry when one ends")

    def unavailable(self) -> Response:
        return self.error(503, "ACCOUNT_UNAVAILABLE", "the account is offline for scheduled maintenance",
                          headers={"retry-after": "300"})

    def server_error(self) -> Response:
        return self.error(500, "UNEXPECTED_ERROR", "an unexpected error occurred; nothing was saved, retry the request")

    def conflict(self) -> Response:
        return self.error(400, "RECORD_CHANGED_SINCE_LOADED", "the record has been changed since it was loaded; "
                          "nothing was saved, reload it and retry")

    # ------------------------------------------------------------ state (also used by the erp_* modules)

    def init_durable(self) -> VendorStore:
        store = VendorStore()
        for country, (kind, rate, registration) in sorted(DEFAULT_TAX_RULES.items()):
            store.table("taxRules")[country] = {"id": store.next_id("taxRule"), "country": country, "kind": kind,
                                                "serviceRate": rate, "registrationRequired": registration}
        for number, name, kind in DEFAULT_ACCOUNTS:
            rid = store.next_id("account")
            store.table("accounts")[str(rid)] = {"id": rid, "acctNumber": number, "acctName": name,
                                                 "acctType": kind, "isInactive": False}
        store.extra.update(eid={}, mergedCustomers={}, firm_ids={})
        return store

    def today(self) -> date:
        """The ERP's business date: its own zone, its own (skewed) clock."""
        return self.sim.calendar.date_at(self.now_us, self.name)

    def stamp(self) -> str | None:
        return None if self.sim is None else self.sim.calendar.datetime_at(self.now_us, self.name).isoformat()

    def effect(self, kind: str, table: str, record_id: str, request: Request | None, **detail: Any) -> None:
        # What a load_* method puts in is the world's initial state, not an effect.
        if self.sim is not None and not self._loading:
            self.record_effect(kind, table, record_id, request, **detail)

    def eids(self, table: str) -> dict[str, int]:
        return self.store.extra["eid"].setdefault(table, {})

    def find(self, table: str, key: str) -> dict | None:
        """A record by internal id or "eid:<externalId>"."""
        if key.startswith("eid:"):
            rid = self.eids(table).get(key[4:])
            return None if rid is None else self.table(table).get(str(rid))
        if not _NUMERIC.fullmatch(key):
            raise VendorError(400, "INVALID_KEY", f"{key!r} is not a record key; use an internal id like 123 or "
                              "eid:<externalId>")
        return self.table(table).get(str(int(key)))

    def not_found(self, table: str, key: str) -> VendorError:
        into = self.store.extra["mergedCustomers"].get(key) if table == "customers" else None
        why = "" if into is None else f"; it was merged into customer {into}"
        return VendorError(404, "RECORD_NOT_FOUND", f"no {_NOUNS.get(table, table)} with key {key}{why}")

    def resolve(self, table: str, value: Any, field: str, required: bool = False) -> dict | None:
        """The active record a reference names, or the error naming `field`."""
        noun = _NOUNS[table]
        if value is None or value == "":
            if required:
                raise VendorError(400, "REQUIRED_FIELD_MISSING", f"required field {field} is missing (a {noun} id)",
                                  field)
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        if not isinstance(value, str) or not (value.startswith("eid:") or _NUMERIC.fullmatch(value)):
            raise VendorError(400, "INVALID_FIELD_VALUE", f"{field} must be a {noun} id (an integer) or "
                              f"'eid:<externalId>', not {value!r}", field)
        rec = self.find(table, value)
        if rec is None:
            raise VendorError(400, "INVALID_REFERENCE", f"{field}: {self.not_found(table, value).message}", field)
        if rec.get("isInactive"):
            raise VendorError(400, "INVALID_REFERENCE", f"{field}: {noun} {rec['id']} is inactive; use an active "
                              f"{noun} or ask finance to reactivate it", field)
        return rec

    def subsidiary(self, sub_id: int) -> dict:
        return self.table("subsidiaries")[str(sub_id)]

    def currency(self, code: Any, field: str) -> str:
        """`code` if the account has that currency enabled."""
        code = currency_code(code, field)
        enabled = sorted(c["symbol"] for c in self.table("currencies").values())
        if code not in enabled:
            raise VendorError(400, "INVALID_REFERENCE", f"currency {code} is not enabled in this account (enabled: "
                              f"{', '.join(enabled) or 'none'})", field)
        return code

    def dimensions(self, src: dict, sub_id: int, defaults: dict | None = None, where: str = "") -> dict:
        """department, class and location of a record: each active and open to `sub_id`."""
        out = {}
        for field, table in _DIMENSIONS.items():
            value = src.get(field)
            if value is None and defaults is not None:
                value = defaults.get(field)
            dim = self.resolve(table, value, where + field)
            if dim is not None and dim["subsidiary"] not in (None, sub_id):
                raise VendorError(400, "INVALID_REFERENCE", f"{where + field}: {field} {dim['id']} ({dim['name']}) "
                                  f"is restricted to subsidiary {dim['subsidiary']}, not {sub_id}", where + field)
            out[field] = None if dim is None else dim["id"]
        return out

    def customer_has_transactions(self, customer_id: int) -> bool:
        return any(r["customer"] == customer_id for t in ("invoices", "creditMemos", "customerPayments",
                                                           "projectActuals") for r in self.table(t).values())

    def _pick(self, table: str, key: int | str) -> dict:
        """A record a person points at: internal id, "eid:..." or document number."""
        if isinstance(key, str) and not key.startswith("eid:") and not _NUMERIC.fullmatch(key):
            rec = next((r for r in self.table(table).values() if key in (r.get("tranId"), r.get("entityId"))), None)
        elif isinstance(key, (int, str)) and not isinstance(key, bool):
            rec = self.find(table, str(key))
        else:
            rec = None
        if rec is None:
            raise self.not_found(table, str(key))
        return rec

    # ---- what people do in the UI
    # The finance team's actions. They bypass the API's faults (it is the UI)
    # but not its rules: a refused action raises the VendorError the screen
    # would show. Records are named by internal id, "eid:..." or number.

    def open_period(self, subsidiary: int | str, month: str | date) -> dict:
        """Reopen a period: clears both the close and the AR lock."""
        return self._set_period(subsidiary, month, closed=False, ar_locked=False, action="open")

    def lock_ar_period(self, subsidiary: int | str, month: str | date) -> dict:
        """Lock receivables for a period: journals and project actuals still post."""
        return self._set_period(subsidiary, month, closed=False, ar_locked=True, action="lock_ar")

    def close_period(self, subsidiary: int | str, month: str | date) -> dict:
        return self._set_period(subsidiary, month, closed=True, ar_locked=True, action="close")

    def _set_period(self, subsidiary: int | str, month: str | date, *, closed: bool, ar_locked: bool,
                    action: str) -> dict:
        sub = self._pick("subsidiaries", subsidiary)
        if isinstance(month, date):
            first = date(month.year, month.month, 1)
        elif isinstance(month, str) and _MONTH.fullmatch(month) and 1 <= int(month[5:]) <= 12:
            first = date(int(month[:4]), int(month[5:]), 1)
        else:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"a period is a month like '2026-01' or a date, not "
                              f"{month!r}", "period")
        period = period_of(self, sub["id"], first)
        period.update(isClosed=closed, arLocked=ar_locked)
        self.effect(f"period.{action}", "accountingPeriods", str(period["id"]), None, subsidiary=sub["id"],
                    periodName=period["periodName"])
        return dict(period)

    def record_payment(self, invoice: int | str, amount: str | Decimal | None = None, *, on: date | None = None,
                       memo: str | None = None) -> dict:
        """A customer's payment arrives and finance applies it to `invoice`
        (default: everything still owed, today)."""
        inv = self._pick("invoices", invoice)
        cur, owed = inv["currency"], Decimal(inv["amountRemaining"])
        if owed == 0:
            raise VendorError(400, "INVOICE_ALREADY_PAID", f"invoice {inv['tranId']} is paid in full", "invoice")
        paid = owed if amount is None else parse_amount(
            format(amount, "f") if isinstance(amount, Decimal) else amount, cur, "amount")
        if paid is None or not 0 < paid <= owed:
            raise VendorError(400, "INVALID_AMOUNT", f"a payment on {inv['tranId']} must be above zero and at most "
                              f"the {fmt(owed, cur)} {cur} still owed", "amount")
        if on is not None and (isinstance(on, datetime) or not isinstance(on, date)):
            raise VendorError(400, "INVALID_FIELD_VALUE", f"on must be a date, not {on!r}", "on")
        on = on or self.today()
        sub = self.subsidiary(inv["subsidiary"])
        require_postable(self, sub, on, receivables=True, what="a customer payment")
        fields = {"customer": inv["customer"], "invoice": inv["id"], **posting_fields(self, sub, on, cur),
                  "payment": fmt(paid, cur), "memo": memo}
        fields["basePayment"] = fmt(to_base(paid, sub["currency"], Decimal(fields["exchangeRate"])), sub["currency"])
        payment = h.insert(self, PAYMENTS, fields, None, None)
        apply_to_invoice(inv, payment, "payment", paid)
        inv["lastModifiedDate"] = payment["lastModifiedDate"]
        self.effect("apply", "invoices", str(inv["id"]), None, source=payment["tranId"], amount=fmt(paid, cur))
        return copy_data(payment)

    def set_fx_rate(self, frm: str, to: str, effective: date, rate: str | Decimal) -> dict:
        """1 `frm` = `rate` `to` from `effective` on (replacing that day's rate, if any)."""
        frm, to = self.currency(frm, "from"), self.currency(to, "to")
        if frm == to:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"a {frm}->{to} rate is always 1", "to")
        if isinstance(effective, datetime) or not isinstance(effective, date):
            raise VendorError(400, "INVALID_FIELD_VALUE", f"effective must be a date, not {effective!r}", "effective")
        value = decimal_text(format(rate, "f") if isinstance(rate, Decimal) else rate, "rate", 10)
        if value is None or value <= 0:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"rate must be above zero, not {rate!r}", "rate")
        rates = self.table("exchangeRates")
        key = f"{frm}:{to}:{effective.isoformat()}"
        rec = rates.get(key)
        if rec is None:
            rec = rates[key] = {"id": self.store.next_id("exchangeRate"), "fromCurrency": frm, "toCurrency": to,
                                "effectiveDate": effective.isoformat()}
        rec["rate"] = format(value, "f")
        self.store.next_id("fxVersion")
        self.effect("fx.set", "exchangeRates", str(rec["id"]), None, rate=rec["rate"], effectiveDate=key[8:])
        return dict(rec)

    def add_currency(self, code: str) -> dict:
        currency_code(code, "currency")
        if code not in MINOR_UNITS:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"{code} is not a currency this account can enable",
                              "currency")
        for rec in self.table("currencies").values():
            if rec["symbol"] == code:
                return dict(rec)
        rid = self.store.next_id("currency")
        rec = self.table("currencies")[str(rid)] = {"id": rid, "symbol": code, "name": CURRENCY_NAMES.get(code, code),
                                                    "precision": MINOR_UNITS[code]}
        self.effect("create", "currencies", str(rid), None, symbol=code)
        return dict(rec)

    def create_subsidiary(self, name: str, country: str, currency: str, *, tax_kind: str | None = None,
                          service_rate: str | Decimal | None = None, registration_required: bool | None = None,
                          external_id: str | None = None) -> dict:
        """A new legal entity; its tax regime (given, or the country's rule) becomes the country's rule."""
        if not isinstance(name, str) or not name:
            raise VendorError(400, "REQUIRED_FIELD_MISSING", "a subsidiary needs a name", "name")
        country, currency = country_code(country, "country"), self.currency(currency, "currency")
        external_id = self._free_eid("subsidiaries", external_id)
        rate = decimal_text(format(service_rate, "f") if isinstance(service_rate, Decimal) else service_rate,
                            "service_rate", 4)
        rules = self.table("taxRules")
        rule = rules.get(country) or {"id": self.store.next_id("taxRule"), "country": country, "kind": "none",
                                      "serviceRate": "0.00", "registrationRequired": False}
        given = (("kind", tax_kind), ("serviceRate", None if rate is None else format(rate, "f")),
                 ("registrationRequired", registration_required))
        rule.update({k: v for k, v in given if v is not None})
        rules[country] = rule
        rid = self.store.next_id("subsidiary")
        rec = {"id": rid, "name": name, "externalId": external_id, "country": country, "currency": currency,
               "isInactive": False, "taxRegime": {"kind": rule["kind"], "serviceRate": rule["serviceRate"],
                                                  "clientRegistrationRequired": rule["registrationRequired"]}}
        return self._add_reference("subsidiaries", rec)

    def create_dimension(self, kind: str, name: str, *, subsidiary: int | str | None = None,
                         external_id: str | None = None) -> dict:
        """A department, class or location; restricted to `subsidiary` if given."""
        if kind not in _DIMENSIONS:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"kind must be one of {', '.join(_DIMENSIONS)}", "kind")
        if not isinstance(name, str) or not name:
            raise VendorError(400, "REQUIRED_FIELD_MISSING", f"a {kind} needs a name", "name")
        table = _DIMENSIONS[kind]
        sub = None if subsidiary is None else self._pick("subsidiaries", subsidiary)
        external_id = self._free_eid(table, external_id)
        rec = {"id": self.store.next_id(kind), "name": name, "externalId": external_id,
               "subsidiary": sub and sub["id"], "isInactive": False}
        return self._add_reference(table, rec)

    def deactivate_dimension(self, kind: str, dimension: int | str) -> dict:
        """Master data goes stale: postings naming it are refused from now on."""
        if kind not in _DIMENSIONS:
            raise VendorError(400, "INVALID_FIELD_VALUE", f"kind must be one of {', '.join(_DIMENSIONS)}", "kind")
        rec = self._pick(_DIMENSIONS[kind], dimension)
        rec["isInactive"] = True
        self.effect("update", _DIMENSIONS[kind], str(rec["id"]), None, changed=["isInactive"])
        return dict(rec)

    def enter_customer_by_hand(self, company_name: str, subsidiary: int | str, *, currency: str | None = None,
                               country: str | None = None, tax_registration: str | None = None,
                               email: str | None = None) -> dict:
        """A clerk keys in a customer (often one the CRM already has, spelled differently)."""
        body = {"companyName": company_name, "subsidiary": subsidiary, "currency": currency, "country": country,
                "taxRegistration": tax_registration, "email": email}
        return copy_data(h.create(self, CUSTOMERS, {k: v for k, v in body.items() if v is not None}, None))

    def merge_customers(self, duplicate: int | str, survivor: int | str) -> dict:
        """Merge `duplicate` into `survivor`: its projects and transactions move
        over and it is deleted. Its externalId goes with it: an upsert by that
        id afterwards creates a new customer."""
        dup, keep = self._pick("customers", duplicate), self._pick("customers", survivor)
        if dup["id"] == keep["id"]:
            raise VendorError(400, "INVALID_FIELD_VALUE", "a customer cannot be merged into itself", "survivor")
        for f in ("subsidiary", "currency"):
            if dup[f] != keep[f]:
                raise VendorError(400, "MERGE_NOT_ALLOWED", f"customers {dup['id']} and {keep['id']} differ in {f} "
                                  f"({dup[f]} vs {keep[f]}); only customers of one {f} can merge", f)
        stamp, moved = self.stamp(), {}
        for table in ("projects", "projectActuals", "invoices", "creditMemos", "customerPayments"):
            rows = [r for r in self.table(table).values() if r["customer"] == dup["id"]]
            for r in rows:
                r.update(customer=keep["id"], lastModifiedDate=stamp)
            moved[table] = len(rows)
        del self.table("customers")[str(dup["id"])]
        if dup["externalId"] is not None:
            self.eids("customers").pop(dup["externalId"], None)
        self.store.extra["mergedCustomers"][str(dup["id"])] = keep["id"]
        keep["lastModifiedDate"] = stamp
        self.effect("merge", "customers", str(keep["id"]), None, merged=dup["id"], moved=moved,
                    mergedExternalId=dup["externalId"])
        return copy_data(keep)

    def _free_eid(self, table: str, external_id: str | None) -> str | None:
        if external_id is not None and external_id in self.eids(table):
            raise VendorError(400, "DUPLICATE_EXTERNAL_ID", f"{_NOUNS[table]} externalId {external_id!r} is taken",
                              "externalId")
        return external_id

    def _add_reference(self, table: str, rec: dict) -> dict:
        self.table(table)[str(rec["id"])] = rec
        if rec["externalId"] is not None:
            self.eids(table)[rec["externalId"]] = rec["id"]
        self.effect("create", table, str(rec["id"]), None, name=rec["name"])
        return copy_data(rec)

    # ------------------------------------------------------------ seeding from a generated firm

    def load_firm(self, firm: Firm, *, clients: Iterable[Client] = (),
                  client_external_ids: bool = True) -> dict[str, str]:
        """Subsidiaries (and an office location each), currencies with rates
        for every pair, cost centres as departments, practices as classes --
        and `clients` as customers already in the ERP: keyed by the CRM's id
        when `client_external_ids`, else keyed in by hand with no externalId.
        Loaded state is the world's starting point, not effects. Returns
        firm id -> ERP internal id (see also `erp_id`)."""
        with self._initial_state():
            return erp_seed.load_firm(self, firm, tuple(clients), client_external_ids)

    def erp_id(self, firm_id: str) -> int:
        """The internal id of a loaded firm record (entity, cost centre, client)."""
        try:
            return int(self.store.extra["firm_ids"][firm_id])
        except KeyError:
            raise KeyError(f"{firm_id!r} was not loaded into {self.name}; call load_firm first") from None

    @contextlib.contextmanager
    def _initial_state(self):
        self._loading = True
        try:
            yield
        finally:
            self._loading = False

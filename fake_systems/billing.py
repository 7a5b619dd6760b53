"""The billing fake (payment-platform family): schedules, invoices, payments.

Bills a professional-services firm's clients under three models: time and
materials (billing events priced from a rate card), fixed-fee milestones
(held until the client signs off), and recurring retainers / managed-service
subscriptions (charged per period by the monthly billing run).

The API, all JSON, money as decimal strings exact to the currency's minor
unit ("1087.50"; currencies written lower-case, "usd"). Every success is a
200 with the record; ids come from per-kind counters (``in_000042``):

  POST /v1/customers                 name, currency, external_ref, email, tax_percent, tax_id, metadata
  POST /v1/billing_schedules         customer, contract_ref, model (time_and_materials | fixed_fee | retainer |
                                     subscription), start_date, end_date, rate_card [{code, unit_amount,
                                     description}], milestones [{ref, description, amount}], recurring {amount,
                                     interval: month|quarter|year}, tax_percent, days_until_due, currency
  POST /v1/billing_schedules/{id}    amend: rate_card, milestones, recurring, end_date, metadata
  POST /v1/invoice_items             a billing event: customer, description, and one price of amount |
                                     unit_amount (x quantity) | price_code (the schedule's rate card) | nothing
                                     for a milestone of the schedule; source {type, id}, schedule, invoice (a
                                     draft to add it to), service_date
  POST /v1/holds                     invoice_item, or customer + source {type, id} (covers items to come)
  POST /v1/holds/{id}/release        client sign-off: held items become pending
  POST /v1/invoices                  customer, schedule, pending_items include|exclude (default include: all
                                     pending, unheld items of the customer, or of the schedule if given),
                                     auto_finalize (create and finalise in one step), days_until_due
  POST /v1/invoices/{id}/finalize    pending_items include|exclude (default exclude)
  POST /v1/invoices/{id}/void
  POST /v1/payments                  invoice, amount, method, reference, received_on
  POST /v1/credit_notes              invoice, amount, reason, memo
  POST /v1/webhook_endpoints         url "<actor>:<path>" (e.g. "core:/webhooks/billing"), enabled_events
  GET  /v1/<kind>/{id}, and lists    ?limit (1-100, default 10) &starting_after=<id> (older) or
                                     &ending_before=<id> (newer), newest first, with
                                     filters: customers external_ref; billing_schedules customer, contract_ref;
                                     invoice_items customer, schedule, status, invoice, source_type, source_id;
                                     invoices customer, schedule, contract_ref, status; holds customer, status;
                                     payments and credit_notes invoice, customer
  GET  /v1/events                    newest first, kept 30 days: type, created_gte, created_lt, limit,
                                     starting_after / ending_before (an event id: older / newer events)

Amounts: a line is quantity x unit_amount rounded once, half up, to the minor
unit; tax is rounded once on the subtotal (`billing_records`). Idempotency
keys: `billing_idempotency`. Webhooks carry an event (id, type, created in
virtual us on the vendor's clock, data.object), at least once, in any order.

Faults, in the order a request meets them: outage 503, rate limit 429 with
Retry-After, concurrency cap 429, write lock contention 429 ``lock_timeout``
(all before execution: nothing saved under an idempotency key), then a 500
during execution, saved and replayed for a keyed request, striking before or
after the write (drawn at `error_5xx_after_commit`).
"""

from __future__ import annotations

import bisect
from datetime import date
from decimal import Decimal

from simulator import DAY, Request, Response
from simulator.actors import Delayed

from .billing_book import PREFIX, RECURRING_MODELS, BillingBook
from .billing_idempotency import MAX_KEY_LENGTH, IdempotencyKeys, fingerprint
from .billing_records import Params, parse_decimal, sequence_of
from .billing_terms import (
    CREDIT_REASONS, PAYMENT_METHODS, read_endpoint, read_item_price, read_schedule_terms, read_source, read_tax_percent,
)
from .money import minor_units
from .vendor import Route, VendorError, VendorSystem, copy_data
from .webhooks import WebhookSender

__all__ = ["Billing", "EVENT_RETENTION_US"]

EVENT_RETENTION_US = 30 * DAY
LIST_FILTERS = {
    "customers": ("external_ref",),
    "billing_schedules": ("customer", "contract_ref"),
    "invoice_items": ("customer", "schedule", "status", "invoice", "source_type", "source_id"),
    "invoices": ("customer", "schedule", "contract_ref", "status"),
    "holds": ("customer", "status"),
    "payments": ("invoice", "customer"),
    "credit_notes": ("invoice", "customer"),
    "webhook_endpoints": (),
}


def _field(row: dict, name: str) -> object:
    return (row["source"] or {}).get(name[7:]) if name.startswith("source_") else row.get(name)


def _error_type(status: int, code: str) -> str:
    if code.startswith("idempotency_key"):
        return "idempotency_error"
    return "rate_limit_error" if status == 429 else "api_error" if status >= 500 else "invalid_request_error"


class Billing(VendorSystem):
    family = "Stripe-like"

    def __init__(self, name: str = "billing", *, error_5xx_after_commit: Decimal | str = "0.5") -> None:
        self.error_5xx_after_commit = Decimal(error_5xx_after_commit)
        if not 0 <= self.error_5xx_after_commit <= 1:
            raise ValueError(f"error_5xx_after_commit {error_5xx_after_commit} is a probability; give \"0\" to \"1\"")
        super().__init__(name)
        self.book = BillingBook(self)
        self.keys = IdempotencyKeys(self.durable)
        self.webhooks = WebhookSender(self, id_header="x-billing-event-id")

    def routes(self) -> list[Route]:
        reads = [Route("GET", f"/v1/{t}", self._lister(t)) for t in LIST_FILTERS]
        reads += [Route("GET", f"/v1/{t}/{{id}}", self._getter(t)) for t in LIST_FILTERS]
        return reads + [
            Route("POST", "/v1/customers", self._create_customer, writes=True),
            Route("POST", "/v1/billing_schedules", self._create_schedule, writes=True),
            Route("POST", "/v1/billing_schedules/{id}", self._update_schedule, writes=True),
            Route("POST", "/v1/invoice_items", self._create_item, writes=True),
            Route("POST", "/v1/holds", self._create_hold, writes=True),
            Route("POST", "/v1/holds/{id}/release", self._release_hold, writes=True),
            Route("POST", "/v1/invoices", self._create_invoice, writes=True),
            Route("POST", "/v1/invoices/{id}/finalize", self._finalize_invoice, writes=True),
            Route("POST", "/v1/invoices/{id}/void", self._void_invoice, writes=True),
            Route("POST", "/v1/payments", self._create_payment, writes=True),
            Route("POST", "/v1/credit_notes", self._create_credit_note, writes=True),
            Route("POST", "/v1/webhook_endpoints", self._create_webhook_endpoint, writes=True),
            Route("GET", "/v1/events", self._list_events),
            Route("GET", "/v1/events/{id}", self._get_event),
        ]

    # ------------------------------------------------------------ error shapes

    def error(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> Response:
        body = {"type": _error_type(status, code), "code": code, "message": message}
        if field is not None:
            body["param"] = field
        return Response(status, {"error": body}, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "rate_limit", "Too many requests hit the API too quickly; back off and retry",
                          headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(429, "concurrent_requests_limit", "Too many concurrent requests; retry with backoff")

    def unavailable(self) -> Response:
        return self.error(503, "service_unavailable", "Billing is temporarily unavailable; retry later",
                          headers={"retry-after": "60"})

    def server_error(self) -> Response:
        return self.error(500, "internal_error", "An unexpected error occurred; the request may or may not have "
                          "been applied: look the record up, or retry with the same idempotency key")

    def conflict(self) -> Response:
        return self.error(429, "lock_timeout", "This object is being changed by another request; retry shortly")

    # ------------------------------------------------------------ state and clock

    def init_volatile(self) -> dict:
        volatile = super().init_volatile()
        volatile["keys_in_service"] = {}  # key -> when its first answer leaves
        return volatile

    def on_start(self) -> None:
        self.webhooks.resume()  # deliveries pending before a restart carry on

    def clock_us(self) -> int:
        """The vendor's own clock (virtual time plus any chaos skew)."""
        return self.now_us + self.sim.calendar.skews_us.get(self.name, 0)

    def today(self) -> date:
        return self.sim.calendar.date_at(self.now_us, self.name)

    def emit(self, event_type: str, record: dict, request: Request | None) -> dict:
        n = self.store.next_id("events")
        event = {
            "id": f"evt_{n:06d}", "object": "event", "type": event_type, "created": self.clock_us(),
            "data": {"object": copy_data(record)},
            "request": {"idempotency_key": request.header("idempotency-key") if request is not None else None},
        }
        self.store.events.append(event)
        self.webhooks.emit(event, corr=request.header("x-correlation-id") if request is not None else None)
        return event

    # ------------------------------------------------------------ serving

    def handle(self, request: Request):
        route, params, path_known = self.match(request)
        if route is None:
            if path_known:
                return self.error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")
            return self.error(404, "unrecognized_url", f"Unrecognized request URL ({request.method}: {request.path})")
        refused = self._refused(route, request)
        if refused is not None:
            return self._serve(refused)
        key = request.header("idempotency-key") if request.method == "POST" else None
        if key is None:
            return self._serve(self._execute(route, request, params))
        return self._serve_keyed(route, request, params, key)

    def _refused(self, route: Route, request: Request) -> Response | None:
        """Faults that turn a request away before it executes (never saved)."""
        corr = request.header("x-correlation-id")
        if self.in_outage():
            self.record("fault.outage", {"path": route.pattern}, corr=corr)
            return self.unavailable()
        if not self.faults_active:
            return None
        f = self.faults
        retry = self._over_rate_limit()
        if retry is not None:
            self.record("fault.rate_limited", {"path": route.pattern, "retry_after": retry}, corr=corr)
            return self.rate_limited(retry)
        if f.concurrency_limit is not None and self.volatile["in_service"] >= f.concurrency_limit:
            self.record("fault.concurrency_limited", {"path": route.pattern}, corr=corr)
            return self.over_concurrency()
        if route.writes and self.draw("conflict", float(f.conflict)):
            self.record("fault.conflict", {"path": route.pattern}, corr=corr)
            return self.conflict()
        return None

    def _execute(self, route: Route, request: Request, params: dict) -> Response:
        """Run the handler, with a 5xx during execution (before or after the write)."""
        fail = route.writes and self.faults_active and self.draw("error_5xx", float(self.faults.error_5xx))
        after = fail and self.draw("error_5xx.after_commit", float(self.error_5xx_after_commit))
        corr = request.header("x-correlation-id")
        if fail and not after:
            self.record("fault.error_5xx", {"path": route.pattern, "committed": False}, corr=corr)
            return self.server_error()
        try:
            response = route.handler(request, **params)
        except VendorError as e:
            return self.error(e.status, e.code, e.message, e.field, e.headers)
        if fail:
            self.record("fault.error_5xx", {"path": route.pattern, "committed": True}, corr=corr)
            return self.server_error()
        return response

    def _serve_keyed(self, route: Route, request: Request, params: dict, key: str):
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            return self._serve(self.error(400, "idempotency_key_invalid",
                                          f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters", "Idempotency-Key"))
        entry = self.keys.lookup(key, self.now_us)
        if entry is not None:
            if entry["fingerprint"] != fingerprint(request):
                return self._serve(self.error(
                    400, "idempotency_key_reused",
                    f"Idempotency key {key!r} was first used with other parameters ({entry['method']} {entry['path']}); "
                    "use a new key for a different request", "Idempotency-Key"))
            until = self.volatile["keys_in_service"].get(key)
            if until is not None and self.now_us < until:
                return self._serve(self.error(
                    409, "idempotency_key_in_use",
                    f"A request with idempotency key {key!r} is still in progress; retry after it completes"))
            self.record("billing.idempotent_replay", {"key": key, "status": entry["status"]},
                        corr=request.header("x-correlation-id"))
            return self._serve(self.keys.replay(entry))
        response = self._execute(route, request, params)
        if 400 <= response.status < 500:
            return self._serve(response)  # refused before execution started: nothing saved
        response = Response(response.status, response.json, {**response.headers, "idempotency-key": key})
        self.keys.save(key, request, response, self.now_us)
        return self._serve(response, key)

    def _serve(self, response: Response, key: str | None = None):
        served = self._in_service(response)
        if key is not None and type(served) is Delayed:
            until = self.now_us + served.delay_us
            self.volatile["keys_in_service"][key] = until
            self.call_later(served.delay_us, self._key_done, key, until)
        return served

    def _key_done(self, key: str, until: int) -> None:
        if self.volatile["keys_in_service"].get(key) == until:
            del self.volatile["keys_in_service"][key]

    @staticmethod
    def _ok(row: dict) -> Response:
        return Response(200, row)

    # ------------------------------------------------------------ reads

    def _getter(self, table: str):
        def get(request: Request, id: str) -> Response:
            return self._ok(self.book.get(table, id))
        return get

    def _lister(self, table: str):
        filters = LIST_FILTERS[table]

        def list_(request: Request) -> Response:
            return self._page(request, f"/v1/{table}", self.book.newest_first(table, request.query), filters)
        return list_

    def _page(self, request: Request, url: str, rows: list[dict], filters: tuple[str, ...], extra: tuple[str, ...] = ()) -> Response:
        """One page of `rows` (newest first), filtered by the query.

        ``starting_after`` pages back to older records; ``ending_before``
        forward to newer ones -- the page is then the `limit` records just
        newer than the cursor, still newest first, and ``has_more`` says
        there are newer still (how a subscriber catches up on the events
        list)."""
        q = Params(request.query, filters + extra + ("limit", "starting_after", "ending_before"))
        for name in filters:
            want = q.text(name)
            if want is not None:
                rows = [r for r in rows if _field(r, name) == want]
        limit = int(parse_decimal(request.query.get("limit", 10), "limit", places=0))
        if not 1 <= limit <= 100:
            raise VendorError(400, "parameter_invalid", "limit must be from 1 to 100", "limit")
        after, before = self._cursor(q, url, "starting_after"), self._cursor(q, url, "ending_before")
        if after is not None and before is not None:
            raise VendorError(400, "parameter_invalid", "give starting_after or ending_before, not both", "ending_before")
        if after is not None:
            rows = [r for r in rows if sequence_of(r["id"]) < after]
            page = rows[:limit]
        elif before is not None:
            rows = [r for r in rows if sequence_of(r["id"]) > before]
            page = rows[-limit:]
        else:
            page = rows[:limit]
        return Response(200, {"object": "list", "url": url, "data": page,
                              "has_more": len(rows) > limit})

    @staticmethod
    def _cursor(q: Params, url: str, name: str) -> int | None:
        value = q.text(name)
        if value is None:
            return None
        prefix = "evt" if url == "/v1/events" else PREFIX[url.rsplit("/", 1)[1]]
        head, _, digits = value.rpartition("_")
        if head != prefix or not digits.isdigit():
            raise VendorError(400, "parameter_invalid", f"{name} {value!r} is not a {prefix}_ id", name)
        return int(digits)

    def _retained_events(self, newer_than: int = 0) -> list[dict]:
        """Events kept (30 days) with a sequence above `newer_than`, newest first."""
        cutoff = self.clock_us() - EVENT_RETENTION_US
        events = self.store.events
        # Ids are issued in order, so the store's list is sorted by them.
        start = bisect.bisect_right(events, newer_than, key=lambda e: sequence_of(e["id"]))
        return [e for e in reversed(events[start:]) if e["created"] >= cutoff]

    def _list_events(self, request: Request) -> Response:
        before = request.query.get("ending_before")
        newer_than = 0
        if isinstance(before, str) and before.startswith("evt_") and before[4:].isdigit():
            newer_than = int(before[4:])  # only a narrowing: _page checks the cursor
        rows = self._retained_events(newer_than)
        for name, keep in (("created_gte", lambda e, t: e["created"] >= t), ("created_lt", lambda e, t: e["created"] < t)):
            if request.query.get(name) is not None:
                t = int(parse_decimal(request.query[name], name, places=0))
                rows = [e for e in rows if keep(e, t)]
        return self._page(request, "/v1/events", rows, ("type",), ("created_gte", "created_lt"))

    def _get_event(self, request: Request, id: str) -> Response:
        for event in self._retained_events():
            if event["id"] == id:
                return self._ok(event)
        raise VendorError(404, "resource_missing", f"No such event: {id!r} (events are kept for 30 days)")

    # ------------------------------------------------------------ writes

    def _customer(self, p: Params) -> dict:
        return self.book.get("customers", p.text("customer", required=True), "customer")

    def _create_customer(self, request: Request) -> Response:
        p = Params(request.json, ("name", "currency", "email", "external_ref", "tax_percent", "tax_id", "metadata"))
        return self._ok(self.book.create_customer(
            request, name=p.text("name", required=True), email=p.text("email"), currency=p.currency("currency", required=True),
            external_ref=p.text("external_ref"), tax_percent=read_tax_percent(p) or "0", tax_id=p.text("tax_id"),
            metadata=p.metadata()))

    def _create_schedule(self, request: Request) -> Response:
        p = Params(request.json, ("customer", "contract_ref", "model", "currency", "start_date", "end_date", "rate_card",
                                  "milestones", "recurring", "tax_percent", "days_until_due", "metadata"))
        customer = self._customer(p)
        currency = p.currency("currency") or customer["currency"]
        fields = {"contract_ref": p.text("contract_ref", required=True),
                  "model": p.choice("model", ("time_and_materials", "fixed_fee", *RECURRING_MODELS), required=True),
                  "currency": currency}
        fields.update(read_schedule_terms(p, currency, fields["model"], None))
        fields.update(tax_percent=read_tax_percent(p), days_until_due=p.integer("days_until_due", low=0, high=365, default=30),
                      metadata=p.metadata())
        return self._ok(self.book.create_schedule(request, customer, **fields))

    def _update_schedule(self, request: Request, id: str) -> Response:
        schedule = self.book.get("billing_schedules", id)
        p = Params(request.json, ("rate_card", "milestones", "recurring", "end_date", "metadata"))
        changes = read_schedule_terms(p, schedule["currency"], schedule["model"], schedule)
        if p.has("metadata"):
            changes["metadata"] = p.metadata()
        if not changes:
            raise VendorError(400, "parameter_missing", "Give at least one of rate_card, milestones, recurring, end_date, metadata")
        return self._ok(self.book.update_schedule(request, schedule, changes))

    def _create_item(self, request: Request) -> Response:
        p = Params(request.json, ("customer", "schedule", "invoice", "currency", "description", "quantity", "unit_amount",
                                  "amount", "price_code", "source", "service_date", "metadata"))
        customer = self._customer(p)
        if p.has("currency") and p.currency("currency") != customer["currency"]:
            raise VendorError(400, "currency_mismatch", f"customer {customer['id']} is billed in {customer['currency']}; "
                              "convert the amount before creating the item", "currency")
        schedule = self.book.get("billing_schedules", p.text("schedule"), "schedule") if p.has("schedule") else None
        invoice = self.book.get("invoices", p.text("invoice"), "invoice") if p.has("invoice") else None
        source = read_source(p)
        description, quantity, unit_amount = read_item_price(p, customer["currency"], schedule, source)
        return self._ok(self.book.create_item(
            request, customer, schedule, invoice, description=description, quantity=quantity, unit_amount=unit_amount,
            source=source, service_date=p.date("service_date"), metadata=p.metadata()))

    def _create_hold(self, request: Request) -> Response:
        p = Params(request.json, ("invoice_item", "customer", "source", "reason"))
        if p.has("invoice_item") == p.has("source"):
            raise VendorError(400, "parameter_invalid", "Give exactly one of invoice_item or source (with customer)")
        item = self.book.get("invoice_items", p.text("invoice_item"), "invoice_item") if p.has("invoice_item") else None
        customer = self.book.get("customers", item["customer"]) if item else self._customer(p)
        return self._ok(self.book.create_hold(request, customer, item, read_source(p), p.text("reason")))

    def _release_hold(self, request: Request, id: str) -> Response:
        Params(request.json, (), optional=True)
        return self._ok(self.book.release_hold(request, self.book.get("holds", id)))

    def _create_invoice(self, request: Request) -> Response:
        p = Params(request.json, ("customer", "schedule", "pending_items", "auto_finalize", "days_until_due",
                                  "description", "metadata"))
        customer = self._customer(p)
        schedule = self.book.get("billing_schedules", p.text("schedule"), "schedule") if p.has("schedule") else None
        include = p.choice("pending_items", ("include", "exclude"), default="include") == "include"
        items = self.book.pending_items(customer["id"], schedule["id"] if schedule else None,
                                        any_schedule=schedule is None) if include else []
        return self._ok(self.book.create_invoice(
            request, customer, schedule, items=items, auto_finalize=p.boolean("auto_finalize"),
            days_until_due=p.integer("days_until_due", low=0, high=365), description=p.text("description"),
            metadata=p.metadata()))

    def _finalize_invoice(self, request: Request, id: str) -> Response:
        invoice = self.book.get("invoices", id)
        p = Params(request.json, ("pending_items",), optional=True)
        include = p.choice("pending_items", ("include", "exclude"), default="exclude") == "include"
        return self._ok(self.book.finalize(request, invoice, include_pending=include))

    def _void_invoice(self, request: Request, id: str) -> Response:
        invoice = self.book.get("invoices", id)
        Params(request.json, (), optional=True)
        return self._ok(self.book.void(request, invoice))

    def _create_payment(self, request: Request) -> Response:
        p = Params(request.json, ("invoice", "amount", "currency", "method", "reference", "received_on"))
        invoice = self.book.get("invoices", p.text("invoice", required=True), "invoice")
        if p.has("currency") and p.currency("currency") != invoice["currency"]:
            raise VendorError(400, "currency_mismatch", f"invoice {invoice['id']} is in {invoice['currency']}", "currency")
        return self._ok(self.book.pay(
            request, invoice, p.money("amount", invoice["currency"], required=True, positive=True),
            p.choice("method", PAYMENT_METHODS, default="bank_transfer"), p.text("reference"), p.date("received_on")))

    def _create_credit_note(self, request: Request) -> Response:
        p = Params(request.json, ("invoice", "amount", "reason", "memo"))
        invoice = self.book.get("invoices", p.text("invoice", required=True), "invoice")
        return self._ok(self.book.credit(
            request, invoice, p.money("amount", invoice["currency"], required=True, positive=True),
            p.choice("reason", CREDIT_REASONS, default="other"), p.text("memo")))

    def _create_webhook_endpoint(self, request: Request) -> Response:
        p = Params(request.json, ("url", "enabled_events", "description"))
        return self._ok(self.book.create_endpoint(request, *read_endpoint(p)))

    # ---- what people do in the UI

    def _ui(self, action: str, **detail) -> None:
        self.record("vendor.ui", {"action": action, **detail})

    def register_webhook(self, url: str, events: list[str] | None = None) -> dict:
        """The developer adds an endpoint in the dashboard ("core:/webhooks/billing")."""
        self._ui("register_webhook", url=url)
        p = Params({"url": url, "enabled_events": events or ["*"]}, ("url", "enabled_events"))
        return copy_data(self.book.create_endpoint(None, *read_endpoint(p)))

    def client_signs_off(self, hold_id: str) -> dict:
        """The client accepts the milestone: the clerk releases its hold."""
        self._ui("client_signs_off", hold=hold_id)
        return copy_data(self.book.release_hold(None, self.book.get("holds", hold_id)))

    def record_payment_received(self, invoice_id: str, amount: str | None = None, method: str = "bank_transfer",
                                reference: str | None = None) -> dict:
        """The clerk matches money on the bank statement (all that is due, unless `amount`)."""
        invoice = self.book.get("invoices", invoice_id)
        self._ui("record_payment_received", invoice=invoice_id, amount=amount)
        places = minor_units(invoice["currency"].upper())
        due = Decimal(invoice["amount_remaining"]) if amount is None else parse_decimal(amount, "amount", places=places, positive=True)
        return copy_data(self.book.pay(None, invoice, due, method, reference, None))

    def void_invoice(self, invoice_id: str) -> dict:
        self._ui("void_invoice", invoice=invoice_id)
        return copy_data(self.book.void(None, self.book.get("invoices", invoice_id)))

    def issue_credit_note(self, invoice_id: str, amount: str, reason: str = "billing_error") -> dict:
        invoice = self.book.get("invoices", invoice_id)
        self._ui("issue_credit_note", invoice=invoice_id, amount=amount)
        credit = parse_decimal(amount, "amount", places=minor_units(invoice["currency"].upper()), positive=True)
        return copy_data(self.book.credit(None, invoice, credit, reason, None))

    def run_monthly_billing(self) -> list[dict]:
        """The clerk's monthly run: charge every retainer and subscription
        period begun by today and not charged yet, then invoice and finalise
        the pending, unheld items of each customer, one invoice per billing
        schedule (items on no schedule together). A group that would total
        below zero is left pending and noted in the trace."""
        today = self.today()
        self._ui("run_monthly_billing", date=today.isoformat())
        for schedule in list(self.table("billing_schedules").values()):
            if schedule["model"] in RECURRING_MODELS:
                self.book.recurring_charges(None, schedule, today)
        groups: dict[tuple[str, str | None], None] = {}
        for item in self.table("invoice_items").values():
            if item["status"] == "pending":
                groups.setdefault((item["customer"], item["schedule"]), None)
        invoices = []
        for customer_id, schedule_id in groups:
            customer = self.book.get("customers", customer_id)
            schedule = self.book.get("billing_schedules", schedule_id) if schedule_id else None
            try:
                invoices.append(self.book.create_invoice(
                    None, customer, schedule, items=self.book.pending_items(customer_id, schedule_id),
                    auto_finalize=True, days_until_due=None, description=f"Billing run {today.isoformat()}", metadata={}))
            except VendorError as e:
                self.record("billing.run_skipped", {"customer": customer_id, "schedule": schedule_id, "code": e.code})
        return copy_data(invoices)

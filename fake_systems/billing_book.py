"""Billing's records and what may happen to them: the vendor's business rules.

`BillingBook` owns the tables of the billing fake (customers, billing
schedules, invoice items, holds, invoices, payments, credit notes) and every
operation on them. Each operation checks its preconditions first and raises a
`VendorError` before touching anything, so a refused request changes nothing;
then it writes, logs one side effect per write (`record_effect`, the
harness's ground truth) and emits the event clients hear about.

Arguments arrive already parsed (Decimal, date, str); `Billing` does the
reading of requests. Records hold JSON data only: money as decimal strings.

Lifecycles:

* invoice item: ``pending`` -> ``invoiced`` (on an invoice) -> ``void`` (its
  invoice voided); ``pending`` <-> ``held`` while a hold covers it. A held
  item never reaches an invoice.
* invoice: ``draft`` -> ``open`` (finalised: numbered, due date set, lines
  frozen) -> ``paid`` (payments and credits cover the total) or ``void``
  (open and nothing paid or credited). A finalised invoice of total zero is
  paid at once. A voided invoice's items are not billed again by themselves:
  re-billing is a new billing event, as on the payment platforms.
* hold: ``active`` -> ``released`` (client sign-off).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from simulator import Request

from .billing_records import fmt_money, invoice_totals, line_amount, recurring_periods, sequence_of
from .vendor import VendorError, copy_data

if TYPE_CHECKING:
    from .billing import Billing

__all__ = ["BillingBook", "PREFIX", "RECURRING_MODELS"]

PREFIX = {
    "customers": "cus", "billing_schedules": "bs", "invoice_items": "ii", "holds": "hd",
    "invoices": "in", "payments": "py", "credit_notes": "cn", "webhook_endpoints": "we",
}
OBJECT = {
    "customers": "customer", "billing_schedules": "billing_schedule", "invoice_items": "invoice_item",
    "holds": "hold", "invoices": "invoice", "payments": "payment", "credit_notes": "credit_note",
    "webhook_endpoints": "webhook_endpoint",
}
RECURRING_MODELS = ("retainer", "subscription")

# Fields a record keeps for life (no operation reassigns them). Reads that
# filter on one go through an index of ids in creation order, kept in the
# durable store: scanning every invoice item per list, per invoice and per
# hold made a month's billing quadratic in the size of the firm.
INDEXED = ("customer", "schedule", "contract_ref")


def _d(text: str) -> Decimal:
    return Decimal(text)


class BillingBook:
    def __init__(self, vendor: Billing) -> None:
        self.v = vendor

    # ------------------------------------------------------------ records

    def get(self, table: str, record_id: object, param: str | None = None) -> dict:
        """The record, or the vendor's "no such" error: 404 for a path id,
        400 naming the parameter for an id given in a body."""
        row = self.v.table(table).get(record_id) if isinstance(record_id, str) else None
        if row is None:
            message = f"No such {OBJECT[table]}: {record_id!r}"
            raise VendorError(400 if param else 404, "resource_missing", message, param)
        return row

    def _new(self, table: str, request: Request | None, **fields) -> dict:
        rid = f"{PREFIX[table]}_{self.v.store.next_id(table):06d}"
        row = {"id": rid, "object": OBJECT[table], "created": self.v.clock_us(), **fields}
        self.v.table(table)[rid] = row
        index = self.v.store.extra.setdefault("index", {})
        for field in INDEXED:
            value = fields.get(field)
            if type(value) is str:
                index.setdefault(f"{table}\x00{field}\x00{value}", []).append(rid)
        return row

    def rows_where(self, table: str, field: str, value: str) -> list[dict]:
        """The rows of `table` whose `field` (one of INDEXED) is `value`, oldest
        first. A row removed from the table behind the vendor's back (a test
        losing data on purpose) is gone from here too, as from a scan."""
        rows = self.v.table(table)
        found = (rows.get(i) for i in self.v.store.extra.get("index", {}).get(f"{table}\x00{field}\x00{value}", ()))
        return [row for row in found if row is not None]

    def newest_first(self, table: str, query: dict) -> list[dict]:
        """The rows a list request can match, newest first: through the index
        when the query filters on an indexed field, else the whole table. The
        caller still applies every filter; this only narrows the candidates."""
        for field in INDEXED:
            value = query.get(field)
            if type(value) is str:
                return self.rows_where(table, field, value)[::-1]
        return list(reversed(self.v.table(table).values()))

    def _touch(self, kind: str, table: str, row: dict, request: Request | None, event: str | None, **detail) -> None:
        self.v.record_effect(kind, table, row["id"], request, **detail)
        if event:
            self.v.emit(event, row, request)

    # ------------------------------------------------------------ customers and schedules

    def create_customer(self, request: Request | None, **fields) -> dict:
        row = self._new("customers", request, balance=fmt_money(Decimal(0), fields["currency"]),
                        invoice_prefix=None, next_invoice_sequence=1, **fields)
        row["invoice_prefix"] = f"C{sequence_of(row['id']):05d}"  # invoice numbers: C00001-0001, ...
        self._touch("customer.create", "customers", row, request, "customer.created", external_ref=row["external_ref"])
        return row

    def create_schedule(self, request: Request | None, customer: dict, **fields) -> dict:
        if fields["currency"] != customer["currency"]:
            raise VendorError(400, "currency_mismatch",
                              f"currency {fields['currency']} differs from customer {customer['id']}'s "
                              f"{customer['currency']}; bill this contract to a customer in {fields['currency']}", "currency")
        row = self._new("billing_schedules", request, customer=customer["id"], billed_periods=[], **fields)
        self._touch("billing_schedule.create", "billing_schedules", row, request, "billing_schedule.created",
                    contract_ref=row["contract_ref"], model=row["model"])
        return row

    def update_schedule(self, request: Request | None, schedule: dict, changes: dict) -> dict:
        if "milestones" in changes:
            billed = self._billed_milestones(schedule)
            new = {m["ref"]: m["amount"] for m in changes["milestones"]}
            for ref, amount in sorted(billed.items()):
                if new.get(ref) != amount:
                    raise VendorError(400, "milestone_already_billed",
                                      f"milestone {ref} already has a billing event at {amount}; keep it "
                                      "unchanged and bill any difference as an adjustment item", "milestones")
        schedule.update(changes)
        self._touch("billing_schedule.update", "billing_schedules", schedule, request, "billing_schedule.updated",
                    fields=sorted(changes))
        return schedule

    def _billed_milestones(self, schedule: dict) -> dict[str, str]:
        out = {}
        for item in self.rows_where("invoice_items", "schedule", schedule["id"]):
            src = item["source"]
            if src and src["type"] == "milestone" and item["status"] != "void":
                for m in schedule["milestones"]:
                    if m["ref"] == src["id"]:
                        out[m["ref"]] = m["amount"]
        return out

    def create_endpoint(self, request: Request | None, actor: str, path: str, events: list[str], description: str | None) -> dict:
        """A webhook endpoint: events (None or "*": every type) POSTed to `actor` at `path`."""
        wanted = None if "*" in events else sorted(set(events))
        sub = self.v.webhooks.subscribe(actor, path, wanted)
        row = self._new("webhook_endpoints", request, url=f"{actor}:{path}", enabled_events=wanted or ["*"],
                        description=description, status="enabled", subscription=sub["id"])
        self.v.record_effect("webhook_endpoint.create", "webhook_endpoints", row["id"], request)
        return row

    # ------------------------------------------------------------ billing events (invoice items)

    def create_item(self, request: Request | None, customer: dict, schedule: dict | None, invoice: dict | None,
                    *, description: str, quantity: Decimal, unit_amount: Decimal, source: dict | None,
                    service_date: date | None, metadata: dict) -> dict:
        cur = customer["currency"]
        if schedule is not None and schedule["customer"] != customer["id"]:
            raise VendorError(400, "schedule_mismatch",
                              f"billing schedule {schedule['id']} belongs to {schedule['customer']}, not {customer['id']}",
                              "schedule")
        hold = self._active_hold_for_source(customer["id"], source)
        row_schedule = schedule["id"] if schedule else None
        if invoice is not None:
            self._require_draft(invoice, "invoice")
            if invoice["customer"] != customer["id"] or invoice["schedule"] not in (None, row_schedule):
                raise VendorError(400, "invoice_mismatch", f"invoice {invoice['id']} bills {invoice['customer']}"
                                  f"{' on ' + invoice['schedule'] if invoice['schedule'] else ''}; this item does not", "invoice")
            if hold is not None:
                raise VendorError(400, "item_on_hold",
                                  f"{source['type']} {source['id']} is on hold ({hold['id']}) until the client signs off; "
                                  "create the item without an invoice", "invoice")
        row = self._new(
            "invoice_items", request, customer=customer["id"], schedule=schedule["id"] if schedule else None,
            currency=cur, description=description, quantity=format(quantity, "f"), unit_amount=format(unit_amount, "f"),
            amount=fmt_money(line_amount(quantity, unit_amount, cur), cur), source=source,
            service_date=service_date.isoformat() if service_date else None,
            status="held" if hold else "pending", hold=hold["id"] if hold else None, invoice=None, metadata=metadata,
        )
        if hold is not None:
            hold["items"].append(row["id"])
        self._touch("invoice_item.create", "invoice_items", row, request, "invoice_item.created",
                    amount=row["amount"], source_type=source["type"] if source else None,
                    source_id=source["id"] if source else None)
        if invoice is not None:
            self._attach(invoice, [row], request)
            self.v.emit("invoice.updated", invoice, request)
        return row

    def recurring_charges(self, request: Request | None, schedule: dict, through: date) -> list[dict]:
        """One item per period of a retainer/subscription begun by `through`
        and not billed yet (a missed month is caught up, never doubled).
        Each period is charged in full, in advance; no proration."""
        rec = schedule["recurring"]
        start = date.fromisoformat(schedule["start_date"])
        end = date.fromisoformat(schedule["end_date"]) if schedule["end_date"] else None
        customer = self.get("customers", schedule["customer"])
        made = []
        for first, last in recurring_periods(start, end, rec["interval"], through):
            key = first.isoformat()
            if key in schedule["billed_periods"]:
                continue
            schedule["billed_periods"].append(key)
            made.append(self.create_item(
                request, customer, schedule, None,
                description=f"{schedule['model'].capitalize()} {first.isoformat()} to {last.isoformat()}",
                quantity=Decimal(1), unit_amount=_d(rec["amount"]),
                source={"type": "recurring", "id": f"{schedule['id']}:{key}"}, service_date=first, metadata={},
            ))
        return made

    # ------------------------------------------------------------ holds

    def _active_hold_for_source(self, customer_id: str, source: dict | None) -> dict | None:
        if source is None:
            return None
        for hold in self.rows_where("holds", "customer", customer_id):
            if hold["status"] == "active" and hold["source"] == source:
                return hold
        return None

    def create_hold(self, request: Request | None, customer: dict, item: dict | None, source: dict | None, reason: str | None) -> dict:
        if item is not None:
            if item["status"] == "held":
                raise VendorError(400, "already_held", f"invoice item {item['id']} is already held by {item['hold']}",
                                  "invoice_item")
            if item["status"] != "pending":
                raise VendorError(400, "item_already_invoiced",
                                  f"invoice item {item['id']} is already on invoice {item['invoice']}; "
                                  "holds apply before invoicing", "invoice_item")
            covered = [item]
        else:
            existing = self._active_hold_for_source(customer["id"], source)
            if existing is not None:
                raise VendorError(400, "already_held", f"{source['type']} {source['id']} is already held by {existing['id']}",
                                  "source")
            covered = [i for i in self.rows_where("invoice_items", "customer", customer["id"])
                       if i["source"] == source and i["status"] == "pending"]
        hold = self._new("holds", request, customer=customer["id"], invoice_item=item["id"] if item else None,
                         source=source, reason=reason, status="active", released_at=None, items=[i["id"] for i in covered])
        for i in covered:
            i["status"], i["hold"] = "held", hold["id"]
        self._touch("hold.create", "holds", hold, request, "hold.created", items=list(hold["items"]))
        return hold

    def release_hold(self, request: Request | None, hold: dict) -> dict:
        if hold["status"] != "active":
            raise VendorError(400, "hold_not_active", f"hold {hold['id']} was already released at {hold['released_at']}")
        hold["status"], hold["released_at"] = "released", self.v.clock_us()
        for iid in hold["items"]:
            item = self.v.table("invoice_items")[iid]
            if item["status"] == "held" and item["hold"] == hold["id"]:
                item["status"], item["hold"] = "pending", None
        self._touch("hold.release", "holds", hold, request, "hold.released", items=list(hold["items"]))
        return hold

    # ------------------------------------------------------------ invoices

    def _require_draft(self, invoice: dict, param: str | None = None) -> None:
        if invoice["status"] != "draft":
            raise VendorError(400, "invoice_not_editable",
                              f"invoice {invoice['id']} is {invoice['status']}; only a draft invoice can change", param)

    def pending_items(self, customer_id: str, schedule_id: str | None, *, any_schedule: bool = False) -> list[dict]:
        """Items waiting for an invoice (held ones never are), oldest first:
        those of `schedule_id` (None: items on no schedule), or with
        `any_schedule` all of the customer's."""
        return [i for i in self.rows_where("invoice_items", "customer", customer_id)
                if i["status"] == "pending"
                and (any_schedule or i["schedule"] == schedule_id)]

    def create_invoice(self, request: Request | None, customer: dict, schedule: dict | None, *, items: list[dict],
                       auto_finalize: bool, days_until_due: int | None, description: str | None, metadata: dict) -> dict:
        """A draft holding `items` (pending items of this customer); with
        `auto_finalize`, finalised in the same step."""
        if schedule is not None and schedule["customer"] != customer["id"]:
            raise VendorError(400, "schedule_mismatch",
                              f"billing schedule {schedule['id']} belongs to {schedule['customer']}, not {customer['id']}",
                              "schedule")
        if auto_finalize and not items:
            raise VendorError(400, "invoice_no_lines",
                              f"customer {customer['id']} has no pending, unheld items"
                              f"{' on ' + schedule['id'] if schedule else ''} to invoice; nothing was created")
        tax = schedule["tax_percent"] if schedule and schedule["tax_percent"] is not None else customer["tax_percent"]
        if auto_finalize:
            self._check_total("(new)", [i["amount"] for i in items], tax, customer["currency"])
        due = days_until_due if days_until_due is not None else (schedule["days_until_due"] if schedule else 30)
        zero = fmt_money(Decimal(0), customer["currency"])
        invoice = self._new(
            "invoices", request, number=None, customer=customer["id"], schedule=schedule["id"] if schedule else None,
            contract_ref=schedule["contract_ref"] if schedule else None, currency=customer["currency"], status="draft",
            description=description, lines=[], subtotal=zero, tax_percent=tax, tax=zero, total=zero, amount_paid=zero,
            amount_credited=zero, amount_remaining=zero, days_until_due=due, due_date=None, finalized_at=None,
            paid_at=None, voided_at=None, payments=[], credit_notes=[], metadata=metadata,
        )
        self._touch("invoice.create", "invoices", invoice, request, None, customer=customer["id"])
        self._attach(invoice, items, request)
        self.v.emit("invoice.created", invoice, request)
        if auto_finalize:
            self.finalize(request, invoice, include_pending=False)
        return invoice

    def _attach(self, invoice: dict, items: list[dict], request: Request | None) -> None:
        for item in items:
            assert item["status"] == "pending", f"{item['id']} is {item['status']}"
            item["status"], item["invoice"] = "invoiced", invoice["id"]
            invoice["lines"].append({
                "invoice_item": item["id"], "description": item["description"], "quantity": item["quantity"],
                "unit_amount": item["unit_amount"], "amount": item["amount"], "source": copy_data(item["source"]),
                "service_date": item["service_date"],
            })
            self.v.record_effect("invoice_item.invoice", "invoice_items", item["id"], request, invoice=invoice["id"],
                                 amount=item["amount"])
        self._recompute(invoice)

    @staticmethod
    def _check_total(invoice_id: str, amounts: list[str], tax_percent: str, currency: str) -> None:
        total = invoice_totals([_d(a) for a in amounts], _d(tax_percent), currency)[2]
        if total < 0:
            raise VendorError(400, "invoice_total_negative",
                              f"invoice {invoice_id} would total {fmt_money(total, currency)}; a negative balance is a "
                              "credit note against an earlier invoice, not an invoice")

    def _recompute(self, invoice: dict) -> None:
        cur = invoice["currency"]
        subtotal, tax, total = invoice_totals([_d(line["amount"]) for line in invoice["lines"]],
                                              _d(invoice["tax_percent"]), cur)
        pre_payment = sum((_d(self.v.table("credit_notes")[c]["amount"]) for c in invoice["credit_notes"]
                           if self.v.table("credit_notes")[c]["type"] == "pre_payment"), Decimal(0))
        invoice["subtotal"], invoice["tax"], invoice["total"] = (fmt_money(x, cur) for x in (subtotal, tax, total))
        remaining = total - _d(invoice["amount_paid"]) - pre_payment
        invoice["amount_remaining"] = fmt_money(remaining if invoice["status"] in ("draft", "open") else Decimal(0), cur)

    def finalize(self, request: Request | None, invoice: dict, *, include_pending: bool) -> dict:
        self._require_draft(invoice)
        items = self.pending_items(invoice["customer"], invoice["schedule"], any_schedule=invoice["schedule"] is None
                                   ) if include_pending else []
        if not invoice["lines"] and not items:
            raise VendorError(400, "invoice_no_lines", f"invoice {invoice['id']} has no lines; add items before finalizing")
        self._check_total(invoice["id"], [ln["amount"] for ln in invoice["lines"]] + [i["amount"] for i in items],
                          invoice["tax_percent"], invoice["currency"])
        self._attach(invoice, items, request)
        customer = self.get("customers", invoice["customer"])
        invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        today = self.v.today()
        invoice["status"], invoice["finalized_at"] = "open", self.v.clock_us()
        invoice["due_date"] = (today + timedelta(days=invoice["days_until_due"])).isoformat()
        self._touch("invoice.finalize", "invoices", invoice, request, "invoice.finalized",
                    number=invoice["number"], total=invoice["total"], items=[ln["invoice_item"] for ln in invoice["lines"]])
        if _d(invoice["amount_remaining"]) == 0:
            self._settle(invoice, request)
        return invoice

    def _settle(self, invoice: dict, request: Request | None) -> None:
        invoice["status"], invoice["paid_at"] = "paid", self.v.clock_us()
        self._recompute(invoice)
        self._touch("invoice.pay", "invoices", invoice, request, "invoice.paid", total=invoice["total"])

    def void(self, request: Request | None, invoice: dict) -> dict:
        if invoice["status"] != "open":
            fix = "a draft is edited, not voided" if invoice["status"] == "draft" else "issue a credit note instead"
            raise VendorError(400, "invoice_not_voidable", f"invoice {invoice['id']} is {invoice['status']}; {fix}")
        if _d(invoice["amount_paid"]) or invoice["credit_notes"]:
            raise VendorError(400, "invoice_not_voidable",
                              f"invoice {invoice['id']} has payments or credit notes; issue a credit note instead")
        invoice["status"], invoice["voided_at"] = "void", self.v.clock_us()
        for line in invoice["lines"]:
            self.v.table("invoice_items")[line["invoice_item"]]["status"] = "void"
        self._recompute(invoice)
        self._touch("invoice.void", "invoices", invoice, request, "invoice.voided", total=invoice["total"])
        return invoice

    # ------------------------------------------------------------ money in

    def _require_open(self, invoice: dict, what: str) -> None:
        if invoice["status"] != "open":
            raise VendorError(400, "invoice_not_open",
                              f"invoice {invoice['id']} is {invoice['status']}; {what} only an open invoice", "invoice")

    def pay(self, request: Request | None, invoice: dict, amount: Decimal, method: str, reference: str | None,
            received_on: date | None) -> dict:
        self._require_open(invoice, "a payment settles")
        cur = invoice["currency"]
        remaining = _d(invoice["amount_remaining"])
        if amount > remaining:
            raise VendorError(400, "amount_too_large",
                              f"payment {fmt_money(amount, cur)} exceeds invoice {invoice['id']}'s "
                              f"amount_remaining {invoice['amount_remaining']}", "amount")
        payment = self._new("payments", request, invoice=invoice["id"], customer=invoice["customer"],
                            amount=fmt_money(amount, cur), currency=cur, method=method, reference=reference,
                            received_on=(received_on or self.v.today()).isoformat(), status="succeeded")
        invoice["payments"].append(payment["id"])
        invoice["amount_paid"] = fmt_money(_d(invoice["amount_paid"]) + amount, cur)
        self._recompute(invoice)
        self._touch("payment.create", "payments", payment, request, "payment.succeeded",
                    invoice=invoice["id"], amount=payment["amount"])
        if _d(invoice["amount_remaining"]) == 0:
            self._settle(invoice, request)
        return payment

    def credit(self, request: Request | None, invoice: dict, amount: Decimal, reason: str, memo: str | None) -> dict:
        cur = invoice["currency"]
        if invoice["status"] == "open":
            kind, room = "pre_payment", _d(invoice["amount_remaining"])
        elif invoice["status"] == "paid":
            notes = self.v.table("credit_notes")
            kind = "post_payment"
            room = _d(invoice["amount_paid"]) - sum(
                (_d(notes[c]["amount"]) for c in invoice["credit_notes"] if notes[c]["type"] == "post_payment"), Decimal(0))
        else:
            raise VendorError(400, "invoice_not_creditable",
                              f"invoice {invoice['id']} is {invoice['status']}; credit notes apply to open or paid invoices",
                              "invoice")
        if amount > room:
            raise VendorError(400, "amount_too_large",
                              f"credit {fmt_money(amount, cur)} exceeds the {fmt_money(room, cur)} that invoice "
                              f"{invoice['id']} leaves to credit", "amount")
        note = self._new("credit_notes", request, invoice=invoice["id"], customer=invoice["customer"],
                         number=f"{invoice['number']}-CN{len(invoice['credit_notes']) + 1:02d}", amount=fmt_money(amount, cur),
                         currency=cur, type=kind, reason=reason, memo=memo, status="issued")
        invoice["credit_notes"].append(note["id"])
        invoice["amount_credited"] = fmt_money(_d(invoice["amount_credited"]) + amount, cur)
        if kind == "post_payment":
            customer = self.get("customers", invoice["customer"])
            customer["balance"] = fmt_money(_d(customer["balance"]) - amount, cur)  # negative: credit owed
        self._recompute(invoice)
        self._touch("credit_note.create", "credit_notes", note, request, "credit_note.created",
                    invoice=invoice["id"], amount=note["amount"], type=kind)
        if kind == "pre_payment" and _d(invoice["amount_remaining"]) == 0:
            self._settle(invoice, request)
        return note

"""Feedback: invoice and payment status back to the PSA and the CRM.

The billing system is the system of record for invoices and payments; the
people who deliver (PSA) and the people who sell (CRM) want to see them.
Billing pushes events (webhooks: at least once, duplicated, late, in any
order) and keeps them for 30 days in its events list; this flow listens to
both and writes back

  * onto every PSA time entry and milestone an invoice line came from (the
    line's ``source``, per the integration contract: ``time_entry`` /
    ``<PSA time entry id>:v<version>``, ``milestone`` / ``<PSA milestone
    id>``): ``billing_status`` ``invoiced`` or ``paid`` and the invoice's
    number as ``invoice_reference`` -- ``unbilled`` again if its invoice is
    voided and nothing else bills it;
  * onto the CRM Opportunity of the invoice's contract (the billing
    schedule's ``contract_ref`` is the Opportunity Id): ``Invoice_Status__x``
    and ``Payment_Status__x`` over all of the deal's invoices -- read from
    billing when the write is made, because the events heard so far may
    lack an invoice of the same run, and "Paid" with an invoice still open
    would be a status that goes backwards.

How it stays right whatever the order of arrival:

  * Every event is handled once: webhook and recovery poller share the inbox
    (source ``billing``, the event id), in the transaction that applies it.
  * An invoice's state is a snapshot taken from its events. A snapshot
    replaces the one held only if it ranks higher by ``(status rank, event
    sequence)`` -- draft < open < paid | void, then the vendor's event ids,
    which it issues in commit order -- so a late ``invoice.finalized`` never
    turns a paid invoice open again. Payments are a set keyed by payment id,
    which is order-free by nature.
  * Write-backs are not "apply this event" but "make the record match what
    the core now knows": an operation reads the wanted state when it runs,
    so a stale or repeated message writes the newest state or nothing. Both
    vendors' updates set only the fields sent and change nothing when the
    values are equal (safe to repeat). A time entry is written with its
    ``version``: if it was recalled or corrected since it was invoiced, the
    PSA refuses (409 ``stale_version``) and the entry's new version stays
    unbilled, as it should -- the correction is time-to-finance's business.

Missed webhooks (given up after the vendor's retries, or lost in an outage)
come back through the poller over ``GET /v1/events``, paging forward from the
newest event read before (``ending_before``). The events list is the
vendor's log in creation order and lists an event as soon as it exists, so
nothing appears behind that cursor; a cursor on the ``created`` clock would
re-read every event of one instant (a billing run's burst) on every poll. Once a day the same
poller looks for invoices that fell overdue and refreshes their deals.

Operations (each reads what it needs when it runs; none needs the order of
the deal's other work, so none waits in the deal's own line):

  ``psa.write_billing_status``  aggregate ``te:<id>`` / ``ms:<id>``, corr
                                ``te:<id>`` / ``deal:<Opportunity Id>``
  ``crm.write_deal_status``     aggregate ``deal:<Opportunity Id>:status``
  ``billing.find_invoice_deal`` aggregate ``invoice:<id>``: an invoice on no
                                schedule finds its deal in its items'
                                ``metadata.deal``

Other flows can hear billing events too: this flow owns the billing webhook
and dispatches every first-seen event to ``core.feeds.on("billing", type,
handler)`` handlers, inside the inbox transaction.

Store tables:
  billing_invoices  "<invoice id>"           -> snapshot, payments, deal
  billing_sources   "<source type>:<id>"     -> invoices billing it, what was written
  deal_invoices     "<Opportunity Id>"       -> its invoices, what was written
  cursors           "billing-events"         -> the newest event id read
                    "billing-overdue"        -> the last day overdue was swept
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..dispatcher import OpContext, Operation
from ..inbox import Inbox
from ..outbox import Outbox
from ..ports import InboundRequest, InboundResponse, Transaction
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .lookups import read
from .milestone_calls import patient_operation

if TYPE_CHECKING:
    from ..core import ReferenceCore

__all__ = ["build", "FeedbackFlow", "deal_status", "invoice_facts", "wanted_billing", "RANK", "HANDLED"]

# The billing events that change what the PSA or CRM should show.
# invoice.created / invoice.updated concern drafts (invoiced nothing yet); a
# credit note that settles an invoice comes with its own invoice.paid.
HANDLED = ("invoice.finalized", "invoice.paid", "invoice.voided", "payment.succeeded")
RANK = {"draft": 0, "open": 1, "paid": 2, "void": 2}  # paid and void are both final, and exclusive
LIVE = ("open", "paid")  # invoices that bill their lines
WRITTEN_BACK = ("time_entry", "milestone")  # sources the PSA holds
PAGE = "100"

PSA_OP = "psa.write_billing_status"
CRM_OP = "crm.write_deal_status"
DEAL_OP = "billing.find_invoice_deal"


def build(core: ReferenceCore) -> FeedbackFlow:
    return FeedbackFlow(core)


def event_sequence(event_id: str) -> int:
    """The vendor's event counter ("evt_000123" -> 123): its commit order."""
    digits = event_id.rpartition("_")[2]
    return int(digits) if digits.isdigit() else 0


def _money(text: Any) -> Decimal:
    return Decimal(text) if isinstance(text, str) and text else Decimal(0)


def invoice_facts(invoice: dict) -> dict:
    """What the deal's statuses need of a billing invoice."""
    return {k: invoice.get(k) for k in ("id", "status", "currency", "subtotal", "total", "amount_paid",
                                        "amount_credited", "due_date")}


# ---------------------------------------------------------------- wanted states


def wanted_billing(source: dict) -> list:
    """What the PSA record should show, from the invoices billing it:
    ``[billing_status, invoice_reference]``. The invoice that decides is the
    highest by (paid over open, newest); none live: unbilled."""
    best = None
    for inv_id in sorted(source["invoices"]):
        entry = source["invoices"][inv_id]
        if entry["status"] not in LIVE:
            continue
        key = (RANK[entry["status"]], event_sequence(inv_id))
        if best is None or key > best[0]:
            best = (key, entry)
    if best is None:
        return ["unbilled", None]
    entry = best[1]
    return ["paid" if entry["status"] == "paid" else "invoiced", entry["number"] or entry["id"]]


def deal_status(invoices: Iterable[dict], amount: str | None, currency: str | None, today: date) -> list:
    """``[Invoice_Status__x, Payment_Status__x]`` of a deal from its invoices.

    Invoice status compares the net invoiced (subtotals of open and paid
    invoices) with the Opportunity's amount, when both are in one currency:
    all of it is "Invoiced", some "Partially Invoiced". Payment status: all
    paid is "Paid"; an open invoice past its due date "Overdue"; something
    paid "Partially Paid"; else "Unpaid". No live invoice: "Not Invoiced"
    and no payment status."""
    live = [i for i in invoices if i.get("status") in LIVE]
    if not live:
        return ["Not Invoiced", None]
    invoiced = sum((_money(i["subtotal"]) for i in live), Decimal(0))
    same_currency = currency is not None and all((i.get("currency") or "").upper() == currency.upper() for i in live)
    whole = amount is not None and same_currency and invoiced >= _money(amount) > 0
    invoice_status = "Invoiced" if whole else "Partially Invoiced"
    paid = [i for i in live if i["status"] == "paid"]
    if len(paid) == len(live):
        return [invoice_status, "Paid"]
    today_text = today.isoformat()
    open_ = [i for i in live if i["status"] == "open"]
    if any(i.get("due_date") and i["due_date"] < today_text and _remaining(i) > 0 for i in open_):
        return [invoice_status, "Overdue"]
    if paid or any(_paid(i) > 0 for i in open_):
        return [invoice_status, "Partially Paid"]
    return [invoice_status, "Unpaid"]


def _paid(invoice: dict) -> Decimal:
    """Paid so far: the snapshot's figure or the payments heard of, whichever is newer (larger)."""
    payments = invoice.get("payments")
    heard = sum((_money(a) for a in payments.values()), Decimal(0)) if isinstance(payments, dict) else Decimal(0)
    return max(_money(invoice.get("amount_paid")), heard)


def _remaining(invoice: dict) -> Decimal:
    return _money(invoice.get("total")) - _paid(invoice) - _money(invoice.get("amount_credited"))


# ---------------------------------------------------------------- the flow


class FeedbackFlow:
    name = "feedback"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        interval = core.config.get("poll_interval", {})
        self.poll_interval = float(interval.get("billing_events", 600.0))
        self._via = None  # how the event being handled arrived, for the trace
        for kind in HANDLED:
            core.feeds.on("billing", kind, self.on_billing_event)

    def operations(self) -> list[Operation]:
        return [
            # Two calls (read, then write on its ETag) against a PSA whose
            # rate window is shared with the feed poller and every other
            # flow, hundreds of them after a billing run: a throttle waited
            # out in place, not a failed attempt that starts over from the
            # read into the same wall until the retries run out.
            patient_operation(PSA_OP, self.write_billing_status, self.billing_status_written),
            Operation(CRM_OP, self.write_deal_status, self.deal_status_written, timeout=60.0),
            Operation(DEAL_OP, self.find_invoice_deal, self.invoice_deal_found, timeout=60.0),
        ]

    def pollers(self) -> list:
        return [self.core.poller("billing-events", self.poll_events, self.poll_interval)]

    def webhooks(self) -> dict:
        return {"billing": self.on_webhook}

    # ------------------------------------------------------------ inbound

    async def on_webhook(self, request: InboundRequest) -> InboundResponse:
        event = request.json
        if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
                and isinstance(event.get("data"), dict)):
            return InboundResponse(400, {"error": "expected a billing event: {id, type, data: {object}}"})
        with self.core.env.store.transaction() as txn:
            self.receive(txn, event, via="webhook")
        return InboundResponse(200, {"received": event["id"]})

    def receive(self, txn: Transaction, event: dict, *, via: str) -> bool:
        """Hand a billing event to every handler, once. True if it was new."""
        handlers = self.core.feeds.handlers.get(("billing", event["type"]))
        if not handlers:
            return False  # nobody listens: not even worth an inbox row
        if not Inbox.first_time(txn, "billing", event["id"], self.core.now_us()):
            return False
        self._via = via
        for handler in handlers:
            handler(txn, event)
        return True

    async def poll_events(self) -> bool:
        """Recover events the webhooks missed: every event after the newest
        one read before (``ending_before`` pages forward), or on the first
        read everything the vendor still keeps; applied oldest first."""
        core = self.core
        with core.env.store.transaction() as txn:
            cursor = txn.get("cursors", "billing-events")
        query = {"limit": PAGE}
        if cursor is not None:
            query["ending_before"] = cursor
        events: list[dict] = []
        try:
            while True:
                response = await core.env.clients["billing"].request("GET", "/v1/events", query=query)
                check("billing", response, ok=(200,), doing="listing events")
                page = response.json["data"]
                events.extend(page)
                if not response.json.get("has_more") or not page:
                    break
                if cursor is not None:
                    query = dict(query, ending_before=page[0]["id"])  # newest first: page[0] is the newest
                else:
                    query = dict(query, starting_after=page[-1]["id"])
        except BusinessException as exc:
            # A refusal of the read itself (a bad parameter after an API
            # change): a person must look; the poller keeps its cursor.
            with core.env.store.transaction() as txn:
                core.open_exception(txn, "it", exc.code, f"billing events list refused: {exc.message}",
                                    {"query": query})
            return False
        events.sort(key=lambda e: event_sequence(e["id"]))
        recovered = []
        with core.env.store.transaction() as txn:
            for event in events:
                if self.receive(txn, event, via="events_list"):
                    recovered.append(event["id"])
            if events:
                newest = events[-1]["id"]
                if cursor is None or event_sequence(newest) > event_sequence(cursor):
                    txn.put("cursors", "billing-events", newest)
            self._sweep_overdue(txn)
        if recovered:
            core.trace("core.feedback.recovered", {"events": len(recovered), "first": recovered[0],
                                                   "last": recovered[-1]})
        return bool(recovered)

    # ------------------------------------------------------------ applying an event

    def on_billing_event(self, txn: Transaction, event: dict) -> None:
        obj = event["data"].get("object") or {}
        seq = event_sequence(event["id"])
        if event["type"] == "payment.succeeded":
            self._payment(txn, event, obj)
        else:
            self._invoice_snapshot(txn, event, obj, seq)

    def _invoice(self, txn: Transaction, invoice_id: str) -> dict:
        return txn.get("billing_invoices", invoice_id) or {
            "id": invoice_id, "number": None, "deal": None, "status": None, "rank": -1, "seq": 0, "currency": None,
            "subtotal": None, "total": None, "amount_paid": None, "amount_credited": None, "due_date": None,
            "sources": [], "payments": {},
        }

    def _payment(self, txn: Transaction, event: dict, payment: dict) -> None:
        invoice_id = payment.get("invoice")
        if not isinstance(invoice_id, str) or payment.get("status", "succeeded") != "succeeded":
            return
        invoice = self._invoice(txn, invoice_id)
        if payment["id"] in invoice["payments"]:
            return
        invoice["payments"][payment["id"]] = payment.get("amount")
        txn.put("billing_invoices", invoice_id, invoice)
        self.core.trace("core.feedback.payment", {"invoice": invoice_id, "payment": payment["id"],
                                                  "amount": payment.get("amount"), "event": event["id"]},
                        corr=f"deal:{invoice['deal']}" if invoice["deal"] else None)
        self._deal_changed(txn, invoice, f"billing:{event['id']}")

    def _invoice_snapshot(self, txn: Transaction, event: dict, obj: dict, seq: int) -> None:
        invoice_id, status = obj.get("id"), obj.get("status")
        if not isinstance(invoice_id, str) or status not in RANK:
            return
        invoice = self._invoice(txn, invoice_id)
        corr = f"deal:{obj['contract_ref']}" if obj.get("contract_ref") else None
        if (RANK[status], seq) <= (invoice["rank"], invoice["seq"]):
            self.core.trace("core.feedback.stale_event", {"invoice": invoice_id, "event": event["id"], "status": status,
                                                          "held": invoice["status"]}, corr=corr)
            return
        sources = [[ln["source"]["type"], ln["source"]["id"]] for ln in obj.get("lines") or []
                   if isinstance(ln.get("source"), dict)]
        deal = obj.get("contract_ref") or invoice["deal"] or self._deal_of_sources(txn, sources)
        before = (invoice["status"], invoice["deal"])
        invoice.update(
            number=obj.get("number"), deal=deal, status=status, rank=RANK[status], seq=seq,
            currency=obj.get("currency"), subtotal=obj.get("subtotal"), total=obj.get("total"),
            amount_paid=obj.get("amount_paid"), amount_credited=obj.get("amount_credited"),
            due_date=obj.get("due_date"), sources=sources,
        )
        txn.put("billing_invoices", invoice_id, invoice)
        self.core.trace("core.feedback.invoice", {"invoice": invoice_id, "number": invoice["number"], "status": status,
                                                  "event": event["id"], "via": self._via,
                                                  "lines": len(sources)}, corr=f"deal:{deal}" if deal else None)
        for stype, sid in sources:
            if stype in WRITTEN_BACK:
                self._source_changed(txn, stype, sid, invoice, event["id"])
        if deal is None:
            if not self._queued(txn, invoice.get("deal_lookup")):
                invoice["deal_lookup"] = self.core.enqueue(txn, DEAL_OP, {"invoice": invoice_id},
                                                           aggregate=f"invoice:{invoice_id}", cause=f"billing:{event['id']}")
                txn.put("billing_invoices", invoice_id, invoice)
        elif before != (status, deal):
            self._deal_changed(txn, invoice, f"billing:{event['id']}")

    async def find_invoice_deal(self, ctx: OpContext, payload: dict) -> dict:
        """An invoice on no billing schedule (rebilled expenses, say) names
        no contract; the items on it were tagged with their deal by the
        flow that created them (``metadata.deal``)."""
        invoice_id = payload["invoice"]
        deals: set[str] = set()
        query = {"invoice": invoice_id, "limit": PAGE}
        while True:
            body = (await read(ctx, "billing", "/v1/invoice_items", query)).json
            deals.update(i["metadata"]["deal"] for i in body["data"] if isinstance((i.get("metadata") or {}).get("deal"), str))
            if not body.get("has_more") or not body["data"]:
                break
            query = dict(query, starting_after=body["data"][-1]["id"])
        return {"invoice": invoice_id, "deals": sorted(deals)}

    def invoice_deal_found(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        invoice = self._invoice(txn, result["invoice"])
        invoice["deal_lookup"] = None
        if len(result["deals"]) != 1:
            txn.put("billing_invoices", invoice["id"], invoice)
            self.core.trace("core.feedback.no_deal", {"invoice": invoice["id"], "deals": result["deals"]},
                            cause=message["id"])
            return
        invoice["deal"] = result["deals"][0]
        txn.put("billing_invoices", invoice["id"], invoice)
        self._deal_changed(txn, invoice, message["id"])

    def _deal_of_sources(self, txn: Transaction, sources: list) -> str | None:
        """An invoice on no billing schedule: its deal from a milestone it bills."""
        for stype, sid in sources:
            if stype == "milestone":
                known = xrefs.get(txn, "psa_milestone.milestone", sid)
                if isinstance(known, dict) and isinstance(known.get("deal"), str):
                    return known["deal"]
                if isinstance(known, (list, tuple)) and known and isinstance(known[0], str):
                    return known[0]
        return None

    # ------------------------------------------------------------ deciding what to write

    def _queued(self, txn: Transaction, msg_id: str | None) -> bool:
        """A write-back message still waiting to start: it will read the
        newest state when it runs, so another is not needed."""
        if msg_id is None:
            return False
        message = Outbox.get(txn, msg_id)
        return message is not None and message["attempts"] == 0

    def _source_changed(self, txn: Transaction, stype: str, sid: str, invoice: dict, cause: str) -> None:
        key = f"{stype}:{sid}"
        source = txn.get("billing_sources", key) or {"type": stype, "id": sid, "invoices": {}, "written": None,
                                                     "queued": None}
        source["invoices"][invoice["id"]] = {"id": invoice["id"], "number": invoice["number"],
                                             "status": invoice["status"]}
        want = wanted_billing(source)
        if want != (source["written"] or ["unbilled", None]) and not self._queued(txn, source["queued"]):
            record_id = sid.rpartition(":v")[0] if stype == "time_entry" else sid
            aggregate = f"te:{record_id}" if stype == "time_entry" else f"ms:{record_id}"
            corr = f"te:{record_id}" if stype == "time_entry" else (f"deal:{invoice['deal']}" if invoice["deal"] else None)
            source["queued"] = self.core.enqueue(txn, PSA_OP, {"source": key, "want": want}, aggregate=aggregate,
                                                 corr=corr, cause=f"billing:{cause}")
        txn.put("billing_sources", key, source)

    def _deal_changed(self, txn: Transaction, invoice: dict, cause: str | None) -> None:
        deal = invoice["deal"]
        if deal is None:
            return  # a payment heard before its invoice: the invoice's own event brings the deal
        record = txn.get("deal_invoices", deal) or {"deal": deal, "invoices": [], "written": None, "queued": None}
        if invoice["id"] not in record["invoices"]:
            record["invoices"] = sorted([*record["invoices"], invoice["id"]])
            txn.put("deal_invoices", deal, record)
        self._refresh_deal(txn, deal, cause)

    def _refresh_deal(self, txn: Transaction, deal: str, cause: str | None) -> None:
        record = txn.get("deal_invoices", deal)
        if not self._queued(txn, record["queued"]):
            # A lane of its own beside the deal's: the write reads billing's
            # truth when it runs, so it needs no order against the deal's
            # other work -- and must not freeze behind a parked posting.
            record["queued"] = self.core.enqueue(txn, CRM_OP, {"deal": deal}, aggregate=f"deal:{deal}:status",
                                                 corr=f"deal:{deal}", cause=cause)
            txn.put("deal_invoices", deal, record)

    def _sweep_overdue(self, txn: Transaction) -> None:
        """Once a day: deals with an open invoice past due whose CRM does not
        say so yet (an invoice falls overdue with no event to announce it)."""
        today = self.core.env.now().date()
        if txn.get("cursors", "billing-overdue") == today.isoformat():
            return
        txn.put("cursors", "billing-overdue", today.isoformat())
        for deal, record in list(txn.scan("deal_invoices")):
            invoices = [txn.get("billing_invoices", i) for i in record["invoices"]]
            if deal_status(invoices, None, None, today)[1] == "Overdue" and (record["written"] or [None, None])[1] != "Overdue":
                self._refresh_deal(txn, deal, None)

    # ------------------------------------------------------------ operations: PSA

    async def write_billing_status(self, ctx: OpContext, payload: dict) -> dict:
        key = payload["source"]
        with ctx.env.store.transaction() as txn:
            source = txn.get("billing_sources", key)
        want = wanted_billing(source)
        if want == (source["written"] or ["unbilled", None]):
            return {"source": key, "written": want, "unchanged": True}
        status, reference = want
        body: dict[str, Any] = {"billing_status": status, "invoice_reference": reference}
        if source["type"] == "time_entry":
            entry_id, _, version = source["id"].rpartition(":v")
            if not entry_id or not version.isdigit():
                raise BusinessException("it", "BAD_SOURCE_REF", f"billing source time_entry {source['id']!r} is not "
                                        "<PSA time entry id>:v<version> (integration contract)", {"source": key})
            path = f"/time_entries/{entry_id}"
            body["version"] = int(version)
        else:
            path = f"/milestones/{source['id']}"
        # Read, then write on that ETag: the network can deliver an earlier
        # write of this status again long after (a copy, a late retry), and
        # the If-Match makes the PSA refuse it instead of turning a paid
        # entry back to invoiced.
        current = await read(ctx, "psa", path)
        if source["type"] == "time_entry" and current.json.get("version") != body["version"]:
            return {"source": key, "written": want, "superseded": True}
        if [current.json.get("billing_status"), current.json.get("invoice_reference")] == list(want):
            return {"source": key, "written": want}
        response = await ctx.call("PATCH", path, json=body, headers={"if-match": current.headers.get("etag", "*")})
        if response.status == 412:
            raise RetryLater(f"{source['type']} {source['id']} changed while its billing status was written; read it again")
        if response.status == 409 and error_code("psa", response.json) == "stale_version":
            # Recalled or corrected since it was invoiced: the billed version
            # is history, the new one is rightly unbilled.
            return {"source": key, "written": want, "superseded": True}
        check("psa", response, ok=(200,), doing=f"writing billing status {status} on {source['type']} {source['id']}")
        return {"source": key, "written": want}

    def billing_status_written(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        key = result["source"]
        source = txn.get("billing_sources", key)
        source["written"] = result["written"]
        if source["queued"] == message["id"]:
            source["queued"] = None
        txn.put("billing_sources", key, source)
        if result.get("superseded"):
            self.core.trace("core.feedback.superseded", {"source": key, "invoice_reference": result["written"][1]},
                            corr=message.get("corr"), cause=message["id"])

    # ------------------------------------------------------------ operations: CRM

    async def write_deal_status(self, ctx: OpContext, payload: dict) -> dict:
        """The deal's statuses from billing's invoices *as they are now* --
        not from the events heard so far, which may not yet include an
        invoice finalized in the same run (its webhook still on the way):
        a deal must not show "Paid" while one of its invoices is open."""
        deal = payload["deal"]
        with ctx.env.store.transaction() as txn:
            heard = list((txn.get("deal_invoices", deal) or {}).get("invoices", []))
        invoices = await self._invoices_of_deal(ctx, deal, heard)
        path = f"/services/v1/objects/Opportunity/{deal}"
        opp = (await read(ctx, "crm", path)).json
        want = deal_status(invoices, opp.get("Amount"), opp.get("CurrencyIsoCode"), ctx.env.now().date())
        if [opp.get("Invoice_Status__x"), opp.get("Payment_Status__x")] == want:
            return {"deal": deal, "written": want, "unchanged": True}
        response = await ctx.call("PATCH", path, json={"Invoice_Status__x": want[0], "Payment_Status__x": want[1]})
        check("crm", response, ok=(200, 204), doing=f"writing invoice and payment status on Opportunity {deal}")
        return {"deal": deal, "written": want}

    async def _invoices_of_deal(self, ctx: OpContext, deal: str, heard: list[str]) -> list[dict]:
        """Every invoice of the deal's billing schedules, and any other the
        events tied to it (an invoice on no schedule), read from billing."""
        found: dict[str, dict] = {}
        query = {"contract_ref": deal, "limit": PAGE}
        while True:
            body = (await read(ctx, "billing", "/v1/invoices", query)).json
            for invoice in body["data"]:
                found[invoice["id"]] = invoice
            if not body.get("has_more") or not body["data"]:
                break
            query = dict(query, starting_after=body["data"][-1]["id"])
        for invoice_id in sorted(set(heard) - set(found)):
            found[invoice_id] = (await read(ctx, "billing", f"/v1/invoices/{invoice_id}")).json
        return [invoice_facts(found[i]) for i in sorted(found)]

    def deal_status_written(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        record = txn.get("deal_invoices", result["deal"])
        record["written"] = result["written"]
        if record["queued"] == message["id"]:
            record["queued"] = None
        txn.put("deal_invoices", result["deal"], record)

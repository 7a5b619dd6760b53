"""Approved time into the books: price it, post it, bill it, recognise it --
and undo all three when the approval is withdrawn.

One approved version of a time entry becomes, in the deal's outbox line:

  ``psa.price_time_entry``        which contract line and rate (time_pricing);
                                  reads the PSA only to learn a task's line or
                                  an assignment's role it has not seen yet
  ``erp.post_time_actual``        PUT /projectActuals/eid:te:<id>:v<n> -- an
                                  upsert, safe to repeat
  ``billing.bill_time_entry``     billable T&M only: an invoice item, source
                                  time_entry/<id>:v<n>, under an Idempotency-Key
                                  (time_billing.create_once)
  ``revenue.recognise_time_entry``  billable T&M only: a TIME_APPROVED event,
                                  event_ref te:<id>:v<n> (idempotent by ref)

and a version that no longer stands (recalled, corrected) is undone by

  ``erp.reverse_time_actual``     reads what the ERP holds under te:<id>:v<n>
                                  and posts its negation as te:<id>:v<n>:rev,
                                  dated like the original -- into a closed
                                  period the ERP refuses (PERIOD_CLOSED) and
                                  the reversal waits in finance's queue;
  ``billing.reverse_time_item``   the item still pending: a negative item,
                                  source adjustment/te:<id>:v<n>:rev, that nets
                                  it on the same invoice; already invoiced: a
                                  credit note (net + its tax) on that invoice;
  ``revenue.reverse_time_event``  a TIME_APPROVED event of minus the hours,
                                  event_ref te:<id>:v<n>:rev.

Price once, post everywhere: the three postings read the one priced record
(table ``t2f_priced``), so the ERP's revenue, the invoice item and the
revenue event agree to the cent even if the contract changes in between.
Steps that do not apply (not billable, not T&M) complete without a call, so
the set of messages per decision is fixed and their order in the line holds.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..dispatcher import OpContext, Operation
from ..model import exact_product, round_cents
from ..ports import Transaction
from .time_replies import check
from ..retry import BusinessException
from .milestone_calls import patient_operation
from .quote_contract import pob_ref
from .time_billing import create_once, find_credit_note, find_item, item_payload
from .time_pricing import Unpriceable, amount, bill_rate, line_ids, line_on, negate
from .time_state import BY_RESOURCE, CACHE, ENTRIES, PRICED, account_of, contract_of
from .workers import cost_rate_on

if TYPE_CHECKING:
    from ..core import ReferenceCore

__all__ = ["TimePostings", "POST_OPS", "REVERSE_OPS", "ERP_RECOST", "priced_key", "fx_rate"]

PRICE, ERP_POST, BILL_POST, REV_POST = (
    "psa.price_time_entry", "erp.post_time_actual", "billing.bill_time_entry", "revenue.recognise_time_entry")
ERP_REV, BILL_REV, REV_REV = "erp.reverse_time_actual", "billing.reverse_time_item", "revenue.reverse_time_event"
ERP_RECOST = "erp.recost_time_actual"
POST_OPS = (PRICE, ERP_POST, BILL_POST, REV_POST)
REVERSE_OPS = (ERP_REV, BILL_REV, REV_REV)
ERP = "/erp/v1"
_TASK_DEPTH = 4  # how far up the WBS a task's contract line is looked for


def priced_key(entry: str, version: int) -> str:
    return f"{entry}:v{version}"


def ref_id(value: Any) -> str | None:
    """A cross-reference's id, whether stored bare or as {"id": ...}."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else str(value)


async def fx_rate(ctx: OpContext, frm: str, to: str, on: str) -> Decimal:
    """The ERP's rate from `frm` to `to` on `on` (the books' own, so what the
    flow converts agrees with what the ERP would)."""
    key = f"fx:{frm}:{to}:{on}"
    with ctx.env.store.transaction() as txn:
        cached = txn.get(CACHE, key)
    if cached is not None:
        return Decimal(cached)
    response = check("erp", await ctx.call("GET", f"{ERP}/exchangeRates", query={"from": frm, "to": to, "date": on}),
                     ok=(200,), doing=f"reading the {frm}->{to} rate on {on}")
    rate = response.json["items"][0]["rate"]
    with ctx.env.store.transaction() as txn:
        txn.put(CACHE, key, rate)
    return Decimal(rate)


class TimePostings:
    def __init__(self, core: ReferenceCore) -> None:
        self.core = core

    def operations(self) -> list[Operation]:
        # Patient: a reversal or a repeated bill makes several calls (look up,
        # read the invoice, look up, create), more than a tight rate limit lets
        # through at once; each call waits out its throttle (milestone_calls).
        return [
            patient_operation(PRICE, self.price, self.priced),
            patient_operation(ERP_POST, self.post_actual, self.recorded("erp")),
            patient_operation(BILL_POST, self.bill, self.recorded("billing")),
            patient_operation(REV_POST, self.recognise, self.recorded("revenue")),
            patient_operation(ERP_REV, self.reverse_actual, self.recorded("erp_reversal")),
            patient_operation(BILL_REV, self.reverse_item, self.recorded("billing_reversal")),
            patient_operation(REV_REV, self.reverse_event, self.recorded("revenue_reversal")),
            patient_operation(ERP_RECOST, self.recost_actual, self.recorded("erp", keep_on_skip=True)),
        ]

    # ------------------------------------------------------------ deciding (in the feed's transaction)

    def may_bill(self, txn: Transaction, state: dict) -> bool:
        """Could this version be billable T&M? Not if the PSA says it is not
        billable, or its task is known to deliver a line of another model;
        only then are the billing and revenue steps left out of the line."""
        snap = state["snap"]
        if not snap.get("billable"):
            return False
        contract = xrefs.contract_json(txn, state["deal"])
        if contract is None:
            return True
        models = {ln["line_id"]: ln["billing_model"] for v in contract["versions"] for ln in v["lines"]}
        line = self._task_line_known(txn, snap.get("task_id"), sorted(models))
        return line is None or models[line] == "t_and_m"

    def enqueue_post(self, txn: Transaction, state: dict, cause: str | None) -> bool:
        """Queue the postings of the state's version; True if they include
        billing and revenue (so its reversal must too)."""
        entry, version, deal = state["entry"], state["version"], state["deal"]
        billed = self.may_bill(txn, state)
        for op in POST_OPS if billed else POST_OPS[:2]:
            payload = {"entry": entry, "version": version, "deal": deal}
            if op == PRICE:
                payload["snap"] = state["snap"]
            self.core.enqueue(txn, op, payload, aggregate=f"deal:{deal}", corr=f"te:{entry}", cause=cause)
        snap = state["snap"]
        if snap.get("resource_id") is not None:
            txn.put(BY_RESOURCE, f"{snap['resource_id']}\x00{entry}", {"version": version, "date": snap["date"], "deal": deal})
        self.core.trace("core.t2f.decided", {"entry": entry, "version": version, "deal": deal, "action": "post",
                                             "billed": billed}, corr=f"te:{entry}", cause=cause)
        return billed

    def enqueue_reverse(self, txn: Transaction, entry: str, version: int, deal: str, billed: bool,
                        cause: str | None) -> None:
        for op in REVERSE_OPS if billed else REVERSE_OPS[:1]:
            self.core.enqueue(txn, op, {"entry": entry, "version": version, "deal": deal}, aggregate=f"deal:{deal}",
                              corr=f"te:{entry}", cause=cause)
        self.core.trace("core.t2f.decided", {"entry": entry, "version": version, "deal": deal, "action": "reverse",
                                             "billed": billed}, corr=f"te:{entry}", cause=cause)

    def enqueue_recost(self, txn: Transaction, resource_id: str, from_day: str, cause: str | None) -> int:
        """Queue a re-cost of every version of the person's time posted for
        a day from `from_day` on; returns how many."""
        n = 0
        for key, row in txn.scan(BY_RESOURCE, prefix=f"{resource_id}\x00"):
            if row["date"] < from_day:
                continue
            entry = key.split("\x00", 1)[1]
            self.core.enqueue(txn, ERP_RECOST, {"entry": entry, "version": row["version"], "deal": row["deal"]},
                              aggregate=f"deal:{row['deal']}", corr=f"te:{entry}", cause=cause)
            n += 1
        return n

    # ------------------------------------------------------------ shared

    def _priced(self, payload: dict) -> dict | None:
        with self.core.env.store.transaction() as txn:
            return txn.get(PRICED, priced_key(payload["entry"], payload["version"]))

    def recorded(self, step: str, *, keep_on_skip: bool = False):
        """on_success: keep what `step` did on the priced record (with
        `keep_on_skip`, a step that did nothing leaves the record as it was)."""
        def on_success(txn: Transaction, message: dict, result: Any, now_us: int) -> None:
            p = message["payload"]
            key = priced_key(p["entry"], p["version"])
            priced = txn.get(PRICED, key)
            if keep_on_skip and isinstance(result, dict) and "skipped" in result:
                return
            if priced is not None and result is not None:
                priced[step] = result
                txn.put(PRICED, key, priced)
        return on_success

    def _skip(self, ctx: OpContext, payload: dict, why: str) -> dict:
        self.core.trace("core.t2f.skipped", {"op": ctx.message["op"], "entry": payload["entry"],
                                             "version": payload["version"], "why": why},
                        corr=ctx.corr, cause=ctx.message["id"])
        return {"skipped": why}

    # ------------------------------------------------------------ pricing

    async def price(self, ctx: OpContext, p: dict) -> dict:
        snap, deal = p["snap"], p["deal"]
        with ctx.env.store.transaction() as txn:
            contract = contract_of(txn, deal)
            known = line_ids(contract) if contract is not None else []
            line_id = self._task_line_known(txn, snap.get("task_id"), known)
        if contract is None:
            raise BusinessException("it", "NO_CONTRACT", f"deal {deal} has no canonical contract to price time entry "
                                    f"{p['entry']} v{p['version']}", {"deal": deal})
        cache: dict[str, Any] = {}
        if line_id is None:
            line_id = await self._task_line_remote(ctx, snap.get("task_id"), known, cache)
        if line_id is None and len(known) == 1:
            line_id = known[0]
        on = date.fromisoformat(snap["date"])
        hours = Decimal(snap["hours"])
        priced = {
            "entry": p["entry"], "version": p["version"], "deal": deal, "date": snap["date"], "hours": snap["hours"],
            "currency": contract.currency, "line": line_id, "model": None, "billable_tm": False, "rate": None,
            "contract_version": None, "bill_amount": "0.00", "resource": snap.get("resource_id"),
            "cost_rate": snap.get("cost_rate"), "cost_currency": snap.get("cost_currency"),
            "psa_bill_rate": snap.get("bill_rate"),
        }
        if line_id is not None:
            version, line = line_on(contract, on, line_id)
            priced.update(model=line.billing_model, contract_version=version.version)
            if snap.get("billable") and line.billing_model == "t_and_m":
                roles = await self._roles(ctx, snap, cache)
                try:
                    rate, cv = bill_rate(contract, on, line_id, roles)
                except Unpriceable as exc:
                    raise BusinessException("finance", exc.code, exc.message,
                                            {"entry": p["entry"], "version": p["version"], "roles": roles}) from None
                priced.update(billable_tm=True, rate=format(rate, "f"), contract_version=cv,
                              bill_amount=format(amount(hours, rate), "f"), roles=roles)
        return {"priced": priced, "cache": cache}

    def priced(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        priced = result["priced"]
        for key, value in sorted(result["cache"].items()):
            txn.put(CACHE, key, value)
        key = priced_key(priced["entry"], priced["version"])
        if txn.get(PRICED, key) is None:  # a replayed pricing never reprices what was posted
            txn.put(PRICED, key, priced)
        psa = priced["psa_bill_rate"]
        if priced["billable_tm"] and psa is not None and Decimal(psa) != Decimal(priced["rate"]):
            self.core.trace("core.t2f.rate_mismatch", {
                "entry": priced["entry"], "version": priced["version"], "line": priced["line"],
                "contract_version": priced["contract_version"], "contract_rate": priced["rate"], "psa_rate": psa,
                "authoritative": "contract"}, corr=message.get("corr"), cause=message["id"])

    @staticmethod
    def _task_line_known(txn: Transaction, task_id: str | None, known: list[str]) -> str | None:
        if task_id is None:
            return None
        cached = txn.get(CACHE, f"task:{task_id}")
        if cached:
            return cached
        for line in known:
            if ref_id(xrefs.get(txn, "line.psa_task", line)) == str(task_id):
                return line
        return None

    async def _task_line_remote(self, ctx: OpContext, task_id: str | None, known: list[str],
                                cache: dict) -> str | None:
        """A task under a line's task (or made by hand) names its line by its
        own reference, or its parent does."""
        first, current = task_id, task_id
        for _ in range(_TASK_DEPTH):
            if current is None:
                return None
            task = await self._psa_get(ctx, f"/tasks/{current}", f"reading task {current}")
            if task is None:
                return None
            for ref in (task.get("external_reference"), task.get("line_ref")):
                if ref in known:
                    cache[f"task:{first}"] = ref
                    return ref
            current = task.get("parent_id")
        return None

    @staticmethod
    async def _psa_get(ctx: OpContext, path: str, doing: str) -> dict | None:
        response = await ctx.call("GET", path)
        if response.status == 404:
            return None
        return check("psa", response, ok=(200,), doing=doing).json

    async def _roles(self, ctx: OpContext, snap: dict, cache: dict) -> list[str]:
        """The names the entry's role goes by: the PSA role's external
        reference (the CRM rate card's role), then its name."""
        with ctx.env.store.transaction() as txn:
            role_id = txn.get(CACHE, f"assignment:{snap.get('assignment_id')}")
        if role_id is None and snap.get("assignment_id") is not None:
            assignment = await self._psa_get(ctx, f"/assignments/{snap['assignment_id']}", "reading an assignment")
            role_id = assignment and assignment.get("role_id")
            if role_id is not None:
                cache[f"assignment:{snap['assignment_id']}"] = role_id
        if role_id is None and snap.get("resource_id") is not None:
            resource = await self._psa_get(ctx, f"/resources/{snap['resource_id']}", "reading a resource")
            role_id = resource and resource.get("role_id")
        if role_id is None:
            return []
        with ctx.env.store.transaction() as txn:
            names = txn.get(CACHE, f"role:{role_id}")
        if names is None:
            role = await self._psa_get(ctx, f"/roles/{role_id}", "reading a role")
            role = role or {}
            names = [n for n in (role.get("external_reference"), role.get("name")) if n]
            cache[f"role:{role_id}"] = names
        return list(names)

    # ------------------------------------------------------------ ERP

    async def post_actual(self, ctx: OpContext, p: dict) -> dict:
        priced = self._priced(p)
        if priced is None:
            return self._skip(ctx, p, "the version was never priced")
        cost, fx = await self._cost(ctx, priced)
        eid = f"te:{p['entry']}:v{p['version']}"
        body = {
            "project": f"eid:{priced['deal']}", "type": "time", "tranDate": priced["date"], "hours": priced["hours"],
            "costAmount": cost, "currency": priced["currency"], "employee": priced["resource"],
            "memo": self._memo(priced, fx),
        }
        if priced["billable_tm"]:
            body["revenueAmount"] = priced["bill_amount"]
        response = await ctx.call("PUT", f"{ERP}/projectActuals/eid:{eid}", json=body)
        check("erp", response, ok=(200, 201), doing=f"posting time actual {eid}")
        return {"eid": eid, "id": response.json["id"], "tranId": response.json.get("tranId"), "costAmount": cost,
                "revenueAmount": body.get("revenueAmount", "0.00")}

    async def _cost(self, ctx: OpContext, priced: dict) -> tuple[str, str | None]:
        """hours x cost rate in the contract's currency, rounded once: a
        worker costed in another currency is converted at the ERP's rate on
        the work date before rounding. The rate is the HRIS's in force on
        the work date, as the core knows it now; the PSA's stamp on the
        entry (made when it was logged, blind to a raise entered later but
        effective earlier) only when the core does not know the person."""
        rate, ccy = priced["cost_rate"], priced["cost_currency"]
        if priced.get("resource") is not None:
            with ctx.env.store.transaction() as txn:
                known = cost_rate_on(txn, str(priced["resource"]), date.fromisoformat(priced["date"]))
            if known is not None:
                rate, ccy = format(known.rate, "f"), known.currency
        if rate is None:
            return "0.00", None
        cost = exact_product(Decimal(priced["hours"]), Decimal(rate))
        if ccy is None or ccy == priced["currency"]:
            return format(round_cents(cost), "f"), None
        fx = await fx_rate(ctx, ccy, priced["currency"], priced["date"])
        return format(round_cents(exact_product(cost, fx)), "f"), format(fx, "f")

    @staticmethod
    def _memo(priced: dict, fx: str | None) -> str:
        what = f"PSA time entry {priced['entry']} v{priced['version']}: {priced['hours']} h"
        if priced["billable_tm"]:
            what += (f" at {priced['rate']} {priced['currency']} (line {priced['line']}, "
                     f"contract v{priced['contract_version']})")
        if priced["cost_rate"] is not None:
            what += f"; cost rate {priced['cost_rate']} {priced['cost_currency']}" + (f" at fx {fx}" if fx else "")
        return what

    async def recost_actual(self, ctx: OpContext, p: dict) -> dict:
        """The posted version again at the cost rate in force now: the same
        upsert as the posting (the ERP changes only the cost; nothing
        changed is no effect). A version no longer standing is left alone --
        its reversal negates whatever the ERP holds."""
        with ctx.env.store.transaction() as txn:
            state = txn.get(ENTRIES, p["entry"])
        priced = self._priced(p)
        if state is None or state.get("decided") != p["version"]:
            return self._skip(ctx, p, "the version no longer stands")
        if priced is None or "erp" not in priced or "skipped" in priced["erp"]:
            return self._skip(ctx, p, "the version was never posted to the ERP")
        if priced["erp"].get("costAmount") == (await self._cost(ctx, priced))[0]:
            return self._skip(ctx, p, "already at the rate in force")
        return await self.post_actual(ctx, p)

    async def reverse_actual(self, ctx: OpContext, p: dict) -> dict:
        eid = f"te:{p['entry']}:v{p['version']}"
        response = await ctx.call("GET", f"{ERP}/projectActuals/eid:{eid}")
        if response.status == 404:
            return self._skip(ctx, p, f"no ERP actual {eid} to reverse")
        original = check("erp", response, ok=(200,), doing=f"reading time actual {eid}").json
        body = {
            "project": str(original["project"]), "type": "time", "tranDate": original["tranDate"],
            "hours": negate(original["hours"]), "costAmount": negate(original["costAmount"]),
            "revenueAmount": negate(original["revenueAmount"]), "currency": original["currency"],
            "employee": original.get("employee"), "memo": f"Reversal of {eid} ({original.get('tranId')})",
        }
        for dim in ("department", "class", "location"):
            if original.get(dim) is not None:
                body[dim] = original[dim]
        response = await ctx.call("PUT", f"{ERP}/projectActuals/eid:{eid}:rev", json=body)
        check("erp", response, ok=(200, 201), doing=f"reversing time actual {eid}")
        return {"eid": f"{eid}:rev", "id": response.json["id"], "tranDate": original["tranDate"]}

    # ------------------------------------------------------------ billing

    def _billing_refs(self, priced: dict) -> tuple[str, str | None]:
        with self.core.env.store.transaction() as txn:
            account = account_of(txn, priced["deal"])
            customer = ref_id(xrefs.get(txn, "account.billing_customer", account)) if account else None
            schedule = ref_id(xrefs.get(txn, "line.billing_schedule", priced["line"])) if priced["line"] else None
        if customer is None:
            raise BusinessException("it", "NO_BILLING_CUSTOMER", f"deal {priced['deal']} (account {account}) has no "
                                    "billing customer to bill time to", {"deal": priced["deal"]})
        return customer, schedule

    async def bill(self, ctx: OpContext, p: dict) -> dict:
        priced = self._priced(p)
        if priced is None or not priced["billable_tm"]:
            return self._skip(ctx, p, "not billable time and materials")
        customer, schedule = self._billing_refs(priced)
        source = f"{p['entry']}:v{p['version']}"
        body = {
            "customer": customer, "quantity": priced["hours"], "unit_amount": priced["rate"],
            "description": f"Time {priced['date']}: {priced['hours']} h at {priced['rate']}",
            "source": {"type": "time_entry", "id": source}, "service_date": priced["date"],
            "metadata": {"deal": priced["deal"], "line": priced["line"],
                         "contract_version": str(priced["contract_version"])},
        }
        if schedule is not None:
            body["schedule"] = schedule
        else:
            self.core.trace("core.t2f.no_schedule", {"entry": p["entry"], "line": priced["line"]}, corr=ctx.corr)
        item = await create_once(ctx, key=f"t2f-te-{source}", path="/v1/invoice_items", body=body,
                                 find=lambda: find_item(ctx, customer, "time_entry", source),
                                 doing=f"billing time entry {source}")
        if item["amount"] != priced["bill_amount"]:
            self.core.trace("core.t2f.amount_mismatch", {"entry": p["entry"], "item": item["id"],
                                                         "billing": item["amount"], "priced": priced["bill_amount"]},
                            corr=ctx.corr)
        return item_payload(item)

    async def reverse_item(self, ctx: OpContext, p: dict) -> dict:
        priced = self._priced(p)
        if priced is None or not priced["billable_tm"]:
            return self._skip(ctx, p, "not billable time and materials")
        customer, _ = self._billing_refs(priced)
        source = f"{p['entry']}:v{p['version']}"
        original = await find_item(ctx, customer, "time_entry", source)
        if original is None:
            return self._skip(ctx, p, f"no invoice item for {source} to reverse")
        if original["status"] == "void":
            return self._skip(ctx, p, f"item {original['id']} is void with its invoice")
        if original["status"] == "invoiced":
            invoice = check("billing", await ctx.call("GET", f"/v1/invoices/{original['invoice']}"), ok=(200,),
                            doing=f"reading invoice {original['invoice']}").json
            if invoice["status"] in ("open", "paid"):
                return await self._credit(ctx, p, source, original, invoice)
            if invoice["status"] == "void":
                return self._skip(ctx, p, f"invoice {invoice['id']} is void")
        body = {
            "customer": customer, "quantity": original["quantity"], "unit_amount": negate(original["unit_amount"]),
            "description": f"Reversal: {original['description']}",
            "source": {"type": "adjustment", "id": f"te:{source}:rev"},
            "metadata": {"reverses": original["id"]},
        }
        if original.get("schedule"):
            body["schedule"] = original["schedule"]
        if original.get("service_date"):
            body["service_date"] = original["service_date"]
        item = await create_once(ctx, key=f"t2f-te-{source}:rev", path="/v1/invoice_items", body=body,
                                 find=lambda: find_item(ctx, customer, "adjustment", f"te:{source}:rev"),
                                 doing=f"reversing the item of {source}")
        return {"kind": "negative_item", **item_payload(item)}

    async def _credit(self, ctx: OpContext, p: dict, source: str, original: dict, invoice: dict) -> dict:
        """A credit note for the item and the tax the invoice charged on it."""
        net = Decimal(original["amount"])
        tax = round_cents(exact_product(net, Decimal(invoice["tax_percent"])).scaleb(-2))
        memo = f"te:{source}:rev"
        body = {"invoice": invoice["id"], "amount": format(net + tax, "f"), "reason": "billing_error", "memo": memo}
        try:
            note = await create_once(ctx, key=f"t2f-cn-{source}", path="/v1/credit_notes", body=body,
                                     find=lambda: find_credit_note(ctx, invoice["id"], memo),
                                     doing=f"crediting {source} on {invoice['id']}")
        except BusinessException as exc:  # more than the invoice leaves to credit: finance decides
            raise BusinessException("finance", exc.code, exc.message, {**exc.details, "invoice": invoice["id"],
                                                                       "item": original["id"]}) from None
        return {"kind": "credit_note", "id": note["id"], "invoice": invoice["id"], "amount": note["amount"]}

    # ------------------------------------------------------------ revenue

    def _event(self, priced: dict, ref: str, hours: str) -> dict:
        pob = pob_ref(priced["line"])
        return {"event_ref": ref, "source_contract_id": priced["deal"], "pob_ref": pob, "event_type": "TIME_APPROVED",
                "event_date": priced["date"], "hours": hours, "bill_rate": priced["rate"]}

    async def recognise(self, ctx: OpContext, p: dict) -> dict:
        priced = self._priced(p)
        if priced is None or not priced["billable_tm"]:
            return self._skip(ctx, p, "not billable time and materials")
        ref = f"te:{p['entry']}:v{p['version']}"
        response = await ctx.call("POST", "/rc/events", json=self._event(priced, ref, priced["hours"]))
        check("revenue", response, ok=(200, 201), doing=f"posting revenue event {ref}")
        return {"event_ref": ref, "rc_id": response.json.get("rc_id")}

    async def reverse_event(self, ctx: OpContext, p: dict) -> dict:
        priced = self._priced(p)
        if priced is None or not priced["billable_tm"]:
            return self._skip(ctx, p, "not billable time and materials")
        if "revenue" not in priced or "skipped" in priced["revenue"]:
            return self._skip(ctx, p, "no revenue event was posted for this version")
        ref = f"te:{p['entry']}:v{p['version']}:rev"
        response = await ctx.call("POST", "/rc/events", json=self._event(priced, ref, negate(priced["hours"])))
        check("revenue", response, ok=(200, 201), doing=f"posting revenue event {ref}")
        return {"event_ref": ref, "rc_id": response.json.get("rc_id")}

"""Approved project expenses into the books and, when billable, onto the
bill; and back to the expense system as exported and billed.

The expense system (not the PSA) is the system of record for expenses: the
flow reads its approved lines (``core.feeds``, kind ``"entry"``). A line
names the engagement it was spent on by ``ProjectRef`` -- the CRM
Opportunity Id. In the deal's outbox line it becomes

  ``erp.post_expense_actual``   PUT /projectActuals/eid:ex:<EntryId>: the net
                                amount in the line's own currency (the ERP
                                converts to the books' base), billable as the
                                line says -- project cost either way; and, when
                                a billable line's customer is billed in another
                                currency, the ERP's rate on the expense date;
  ``billing.bill_expense``      billable lines only: an invoice item of the
                                net amount in the customer's currency (tax is
                                the invoice's), source expense/<EntryId>, on
                                the deal's first T&M schedule (else on no
                                schedule), created once (time_billing.create_once);

and each success queues its mark -- EXPORTED after the ERP, BILLED after
billing. Marks are the one batch API among these vendors: up to 100 entries
per request under one ExternalRef, so ``expenses.mark_entries`` sends every
mark waiting (table ``t2f_marks``; the first waits `MARK_DELAY_US` for
company) in one call, under a reference naming its
outbox message ("syncbed-t2f:<message id>": a retry re-marks harmlessly as
ALREADY_MARKED). A mark the vendor refuses (MARKED_ELSEWHERE: someone
exported it too) is an IT exception, never dropped.

A line on no project is not the flow's: its cost reaches the ledger through
reimbursement (accounts payable), not through project accounting.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..dispatcher import OpContext, Operation
from ..model import exact_product, round_cents
from ..ports import Transaction
from .time_replies import check
from ..retry import BusinessException
from .milestone_calls import patient_operation
from .time_billing import create_once, find_item, item_payload
from .time_postings import ERP, fx_rate, ref_id
from .time_state import account_of, contract_of, tm_lines

if TYPE_CHECKING:
    from ..core import ReferenceCore

__all__ = ["ExpensePostings", "EXPENSES"]

EXPENSES = "t2f_expenses"  # EntryId -> {"line": the approved line, "deal", "decided", "erp", "billing"}
MARKS = "t2f_marks"  # "<EXPORTED|BILLED>\x00<EntryId>" -> what it records
FLAGS = "t2f_flags"  # "marks:<mark>" -> True while a mark message is queued
ERP_POST, BILL, MARK = "erp.post_expense_actual", "billing.bill_expense", "expenses.mark_entries"
MARK_BATCH = 100  # the vendor's limit per request
MARK_DELAY_US = 5 * 60 * 1_000_000  # a mark waits this long for others to share its request
_SEP = "\x00"


class ExpensePostings:
    def __init__(self, core: ReferenceCore) -> None:
        self.core = core

    def operations(self) -> list[Operation]:
        # Patient, like the time postings: several calls per operation.
        return [
            patient_operation(ERP_POST, self.post_actual, self.posted),
            patient_operation(BILL, self.bill, self.billed),
            patient_operation(MARK, self.mark, self.marked),
        ]

    # ------------------------------------------------------------ deciding (in the feed's transaction)

    def enqueue_post(self, txn: Transaction, state: dict, cause: str | None) -> None:
        entry, deal = state["line"]["EntryId"], state["deal"]
        billable = bool(state["line"].get("IsBillable"))
        for op in (ERP_POST, BILL) if billable else (ERP_POST,):
            self.core.enqueue(txn, op, {"entry": entry, "deal": deal}, aggregate=f"deal:{deal}", corr=f"ex:{entry}",
                              cause=cause)
        self.core.trace("core.t2f.decided", {"expense": entry, "deal": deal, "action": "post", "billed": billable},
                        corr=f"ex:{entry}", cause=cause)

    def _state(self, entry: str) -> dict:
        with self.core.env.store.transaction() as txn:
            state = txn.get(EXPENSES, entry)
        if state is None:  # the state is written with the decision: a message without one is a bug
            raise BusinessException("it", "UNKNOWN_EXPENSE", f"no state for expense line {entry}")
        return state

    def _update(self, step: str):
        def on_success(txn: Transaction, message: dict, result: Any, now_us: int) -> None:
            entry = message["payload"]["entry"]
            state = txn.get(EXPENSES, entry)
            state[step] = result
            txn.put(EXPENSES, entry, state)
        return on_success

    # ------------------------------------------------------------ ERP

    async def post_actual(self, ctx: OpContext, p: dict) -> dict:
        state = self._state(p["entry"])
        line, deal = state["line"], state["deal"]
        eid = f"ex:{line['EntryId']}"
        body = {
            "project": f"eid:{deal}", "type": "expense", "tranDate": line["TransactionDate"], "amount": line["Amount"],
            "billable": bool(line.get("IsBillable")), "currency": line["Currency"], "employee": line.get("EmployeeId"),
            "memo": f"Expense {line['EntryId']} ({line.get('Category')}, {line.get('Merchant')}), "
                    f"report {line.get('ReportId')}",
        }
        response = await ctx.call("PUT", f"{ERP}/projectActuals/eid:{eid}", json=body)
        check("erp", response, ok=(200, 201), doing=f"posting expense actual {eid}")
        with ctx.env.store.transaction() as txn:
            contract = contract_of(txn, deal)
        currency = contract.currency if contract is not None else line["Currency"]
        result = {"eid": eid, "id": response.json["id"], "bill_currency": currency, "bill_amount": line["Amount"],
                  "fx": None}
        if line.get("IsBillable") and currency != line["Currency"]:
            rate = await fx_rate(ctx, line["Currency"], currency, line["TransactionDate"])
            result.update(fx=format(rate, "f"),
                          bill_amount=format(round_cents(exact_product(Decimal(line["Amount"]), rate)), "f"))
        return result

    def posted(self, txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        self._update("erp")(txn, message, result, now_us)
        self.queue_mark(txn, "EXPORTED", message["payload"]["entry"], result["eid"], cause=message["id"])

    # ------------------------------------------------------------ billing

    async def bill(self, ctx: OpContext, p: dict) -> dict:
        state = self._state(p["entry"])
        line, deal = state["line"], state["deal"]
        entry = line["EntryId"]
        erp = state.get("erp")
        if erp is None:  # the ERP step was set aside by a person: bill in the line's currency if the customer's
            erp = {"bill_amount": line["Amount"], "bill_currency": line["Currency"]}
        with ctx.env.store.transaction() as txn:
            account = account_of(txn, deal)
            customer = ref_id(xrefs.get(txn, "account.billing_customer", account)) if account else None
            contract = contract_of(txn, deal)
            lines = tm_lines(contract) if contract is not None else []
            schedule = ref_id(xrefs.get(txn, "line.billing_schedule", lines[0])) if lines else None
        if customer is None:
            raise BusinessException("it", "NO_BILLING_CUSTOMER", f"deal {deal} has no billing customer to rebill "
                                    f"expense {entry} to", {"deal": deal})
        body = {
            "customer": customer, "amount": erp["bill_amount"], "source": {"type": "expense", "id": entry},
            "description": f"Expense {line['TransactionDate']}: {line.get('Category')} ({line.get('Merchant')})",
            "service_date": line["TransactionDate"],
            "metadata": {"deal": deal, "expense_amount": line["Amount"], "expense_currency": line["Currency"],
                         **({"fx_rate": erp["fx"]} if erp.get("fx") else {})},
        }
        if schedule is not None:
            body["schedule"] = schedule
        item = await create_once(ctx, key=f"t2f-ex-{entry}", path="/v1/invoice_items", body=body,
                                 find=lambda: find_item(ctx, customer, "expense", entry),
                                 doing=f"billing expense {entry}")
        return item_payload(item)

    def billed(self, txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        self._update("billing")(txn, message, result, now_us)
        self.queue_mark(txn, "BILLED", message["payload"]["entry"], result["id"], cause=message["id"])

    # ------------------------------------------------------------ marks, batched

    def queue_mark(self, txn: Transaction, mark: str, entry: str, target: str, cause: str | None) -> None:
        txn.put(MARKS, f"{mark}{_SEP}{entry}", {"entry": entry, "target": target})
        if not txn.get(FLAGS, f"marks:{mark}"):
            txn.put(FLAGS, f"marks:{mark}", True)
            self.core.enqueue(txn, MARK, {"mark": mark}, aggregate=f"expenses:marks:{mark}", cause=cause,
                              delay_us=MARK_DELAY_US)

    async def mark(self, ctx: OpContext, p: dict) -> dict:
        mark = p["mark"]
        with ctx.env.store.transaction() as txn:
            entries = [v["entry"] for _, v in txn.scan(MARKS, prefix=f"{mark}{_SEP}", limit=MARK_BATCH)]
        if not entries:
            return {"mark": mark, "ref": None, "results": []}
        ref = f"syncbed-t2f:{ctx.message['id']}"
        response = await ctx.call("POST", "/api/v3/entries/marks", json={"Mark": mark, "ExternalRef": ref,
                                                                         "EntryIds": entries})
        check("expenses", response, ok=(200,), doing=f"marking {len(entries)} entries {mark}")
        return {"mark": mark, "ref": ref,
                "results": [{"entry": r["EntryId"], "outcome": r["Outcome"]} for r in response.json["Results"]]}

    def marked(self, txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        mark = result["mark"]
        for r in result["results"]:
            txn.delete(MARKS, f"{mark}{_SEP}{r['entry']}")
            if r["outcome"] not in ("MARKED", "ALREADY_MARKED"):
                self.core.open_exception(txn, "it", r["outcome"], f"expense entry {r['entry']} could not be marked "
                                         f"{mark}: {r['outcome']}", {"entry": r["entry"], "mark": mark,
                                                                      "ref": result["ref"]})
        if next(txn.scan(MARKS, prefix=f"{mark}{_SEP}", limit=1), None) is not None:
            self.core.enqueue(txn, MARK, {"mark": mark}, aggregate=f"expenses:marks:{mark}", cause=message["id"])
        else:
            txn.put(FLAGS, f"marks:{mark}", False)

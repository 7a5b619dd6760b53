"""Invariants of billing: every billable thing billed exactly once, every
invoice adds up.

Billable things, by the source each invoice item must carry (contract):

  * T&M time: the final version of an approved, billable entry on a T&M
    line -- ``time_entry`` / ``<entry>:v<version>``, priced hours x the
    contract rate in force on the work date. A billed earlier version is
    offset by an ``adjustment`` with id ``<entry>:v<version>:rev`` (or, as
    the ERP spells it, ``te:<entry>:v<version>:rev``), so the net billed per
    entry is the final amount. A billed version may instead be taken back
    by a credit note on its invoice whose memo is ``te:<entry>:v<n>:rev``
    (an invoice the client holds is never rewritten);
  * an accepted milestone -- ``milestone`` / ``<PSA milestone id>``, at its
    amount. Before the client's sign-off an item may exist only held;
  * an approved billable expense -- ``expense`` / ``<expense entry id>``.

Voided items do not count: re-billing after a void is a new billing event.
Nothing unbillable (rejected, draft, non-billable, non-T&M time) is billed.
An invoice's lines are quantity x unit amount rounded once, tax once on the
subtotal, total = subtotal + tax, to the cent; the ERP's invoices likewise.
"""

from __future__ import annotations

from collections import defaultdict

from .invariants_truth import ZERO, Entry, Findings, Gap, Truth, cents, dec, time_source

__all__ = ["analyse_billed_once", "analyse_invoices"]


def _items(rows: list[dict]) -> str:
    return ", ".join(f"{i['id']} ({i['amount']}, {i['status']})" for i in rows)


def _customers_of(truth: Truth, opp: str | None) -> set[str]:
    if opp is None:
        return set()
    account = truth.opportunities[opp]["AccountId"]
    return {c["id"] for c in truth.billing_customers_by_ref.get(account, [])}


def _time(truth: Truth, f: Findings, e: Entry) -> None:
    items = truth.time_items.get(e.id, [])
    if not e.billable_tm and not items:
        return
    f.checked += 1
    say = lambda what: truth.say(f"{e.label()}: {what}", e.corr)  # noqa: E731
    net = truth.net_time_billed(e.id)
    shown = items + [{"id": f"{n['id']} crediting {i['id']}", "amount": f"-{i['amount']}", "status": "credit note"}
                     for n, i in truth.time_credits.get(e.id, [])]
    if not e.billable_tm:
        why = "not approved" if not e.approved else "not billable T&M time"
        if net != ZERO:
            f.hard.append(say(f"billed {net} though {why}: {_items(shown)}"))
        return
    final = truth.live_items_by_source.get(("time_entry", f"{e.id}:v{e.version}"), [])
    if not final:
        keys = (e.id, e.record["project_id"], *((e.deal, truth.opportunities[e.deal]["AccountId"]) if e.deal else ()))
        f.gaps.append(Gap(f"{e.label()}: billable but on no invoice item (time_entry {e.id}:v{e.version})", keys, e.corr))
        return
    if len(final) > 1:
        f.hard.append(say(f"billed {len(final)} times: {_items(final)}"))
    for i in items:
        found = time_source(i["source"]["type"], i["source"]["id"])
        if i["source"]["type"] == "time_entry" and found and found[1] not in e.approved_versions:
            f.hard.append(say(f"item {i['id']} bills version {found[1]}, which was never approved"))
    want, why = truth.expected_amount(e)
    if want is None:
        f.hard.append(say(f"cannot be priced: {why}"))
    elif net != want:
        f.hard.append(say(f"net billed {net} != {e.record['hours']} h at the contract rate = {want} ({_items(shown)})"))
    customers = _customers_of(truth, e.deal)
    wrong = [i["id"] for i in items if customers and i["customer"] not in customers]
    if wrong:
        f.hard.append(say(f"items {', '.join(wrong)} bill another customer than the deal's ({', '.join(sorted(customers))})"))


def _milestone(truth: Truth, f: Findings, m: dict) -> None:
    opp = truth.deal_of_psa_project(m["project_id"])
    if opp not in truth.won or (m.get("invoice_reference") or "").startswith("historical:"):
        return
    items = truth.live_items_by_source.get(("milestone", m["id"]), [])
    accepted = m.get("accepted_on") is not None
    if not accepted and not items:
        return
    f.checked += 1
    corr = f"deal:{opp}"
    label = f"milestone {m['id']} ({m['title']}, {m['amount']} {m['currency']}, {m['status']}, deal {opp})"
    if not accepted:
        early = [i for i in items if i["status"] != "held"]
        if early:
            f.hard.append(truth.say(f"{label}: billed before the client's sign-off, not held: {_items(early)}", corr))
        return
    if not items:
        f.gaps.append(Gap(f"{label}: accepted on {m['accepted_on']} but on no invoice item (milestone {m['id']})",
                          (m["id"], m.get("external_reference") or m["id"], opp), corr))
        return
    if len(items) > 1:
        f.hard.append(truth.say(f"{label}: billed {len(items)} times: {_items(items)}", corr))
    elif dec(items[0]["amount"]) != dec(m["amount"]):
        f.hard.append(truth.say(f"{label}: billed {items[0]['amount']}, not its amount {m['amount']}", corr))


def _expense(truth: Truth, f: Findings, entry_id: str, x: dict) -> None:
    items = truth.live_items_by_source.get(("expense", entry_id), [])
    billable = truth.expense_approved(x) and x["IsBillable"] and x.get("ProjectRef") in truth.opportunities
    if not billable and not items:
        return
    f.checked += 1
    corr = f"ex:{entry_id}"
    label = f"expense {entry_id} ({x['Amount']} {x['Currency']}, {x['ReportStatus']}, billable {x['IsBillable']})"
    if not billable:
        f.hard.append(truth.say(f"{label}: billed though not an approved billable project expense: {_items(items)}", corr))
    elif not items:
        f.gaps.append(Gap(f"{label}: on no invoice item (expense {entry_id})",
                          (entry_id, x["ProjectRef"], x.get("ExternalId") or entry_id), corr))
    elif len(items) > 1:
        f.hard.append(truth.say(f"{label}: billed {len(items)} times: {_items(items)}", corr))
    elif items[0]["currency"].upper() == x["Currency"] and dec(items[0]["amount"]) != cents(dec(x["Amount"]), x["Currency"]):
        f.hard.append(truth.say(f"{label}: billed {items[0]['amount']}, not {x['Amount']}", corr))


def analyse_billed_once(truth: Truth) -> Findings:
    f = Findings("billing: every billable item on exactly one invoice item")
    for e in truth.entries.values():
        _time(truth, f, e)
    for m in truth.psa_milestones.values():
        _milestone(truth, f, m)
    for entry_id, x in sorted(truth.expense_entries.items()):
        _expense(truth, f, entry_id, x)
    return f


def _check_billing_invoice(truth: Truth, f: Findings, inv: dict, items: dict[str, dict]) -> None:
    cur = inv["currency"]
    say = lambda what: truth.say(f"invoice {inv['id']} ({inv.get('number') or inv['status']}, customer "  # noqa: E731
                                 f"{inv['customer']}): {what}", None)
    subtotal = ZERO
    for n, line in enumerate(inv["lines"]):
        amount = dec(line["amount"])
        priced = cents(dec(line["quantity"]) * dec(line["unit_amount"]), cur)
        if amount != priced:
            f.hard.append(say(f"line {n + 1} is {line['amount']}, not {line['quantity']} x {line['unit_amount']} = {priced}"))
        item = items.get(line["invoice_item"])
        if item is None or item["invoice"] != inv["id"] or dec(item["amount"]) != amount:
            f.hard.append(say(f"line {n + 1} does not match invoice item {line['invoice_item']}"))
        subtotal += amount
    tax = cents(subtotal * dec(inv["tax_percent"]) / 100, cur)
    for field, want in (("subtotal", subtotal), ("tax", tax), ("total", subtotal + tax)):
        if dec(inv[field]) != want:
            f.hard.append(say(f"{field} {inv[field]} != {want} (from its {len(inv['lines'])} lines)"))


def _check_erp_invoice(truth: Truth, f: Findings, inv: dict, noun: str) -> None:
    lines = inv.get("lines") or []
    subtotal = sum((dec(ln.get("amount")) for ln in lines), ZERO)
    say = lambda what: truth.say(f"ERP {noun} {inv.get('tranId')} (externalId {inv.get('externalId')}): {what}", None)  # noqa: E731
    if dec(inv.get("subtotal")) != subtotal:
        f.hard.append(say(f"subtotal {inv.get('subtotal')} != the sum of its lines {subtotal}"))
    if dec(inv.get("total")) != dec(inv.get("subtotal")) + dec(inv.get("taxTotal")):
        f.hard.append(say(f"total {inv.get('total')} != subtotal {inv.get('subtotal')} + tax {inv.get('taxTotal')}"))


def analyse_invoices(truth: Truth) -> Findings:
    f = Findings("invoices: no billing event on two invoices, totals tie to the cent")
    items = {i["id"]: i for i in truth.items}
    on_invoices: dict[tuple[str, str], list[str]] = defaultdict(list)
    api_made = {e["id"] for e in truth.effects("billing", "invoice.create") if e.get("request")}
    for inv in truth.invoices:
        f.checked += 1
        _check_billing_invoice(truth, f, inv, items)
        if inv["status"] != "void":
            for line in inv["lines"]:
                src = line.get("source")
                if src and src["type"] != "adjustment":
                    on_invoices[(src["type"], src["id"])].append(inv["id"])
            if not inv["lines"] and inv["id"] in api_made:
                f.hard.append(truth.say(f"invoice {inv['id']} ({inv['status']}) was created by the integration and "
                                        "holds no lines (a retried create?)", None))
    for (kind, ref), invoices in sorted(on_invoices.items()):
        if len(invoices) > 1:
            corr = f"te:{ref.split(':v', 1)[0]}" if kind == "time_entry" else None
            f.hard.append(truth.say(f"{kind} {ref} is on {len(invoices)} invoices: {', '.join(invoices)}", corr))
    for table, noun in (("invoices", "invoice"), ("creditMemos", "credit memo")):
        for inv in truth.rows("erp", table):
            f.checked += 1
            _check_erp_invoice(truth, f, inv, noun)
    return f

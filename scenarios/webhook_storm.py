"""Webhook storm: every event at least once, late, out of order -- at volume.

A month of a mid-sized firm, with everything that makes vendors talk:
deals closing, a month of time, HR's rate changes and leavers, the
month-end billing run, and then the bank statement -- the AR clerk matches
payments for most invoices the day after the run and the rest two days
later. Billing and the HRIS push every event as a webhook, and under this
profile (``webhook-storm``) four in ten are sent twice, four in ten delayed
past later ones, all of them up to ten minutes late; the network duplicates
and reorders what flows to the core besides. Right after the billing run
billing's traffic to the core is held for two hours and then arrives at
once.

Beyond the general invariants this scenario checks that the final state
reflects the latest truth whatever the order of arrival: every PSA time
entry and milestone on an invoice shows the invoice's status (invoiced, or
paid once paid -- never back to invoiced), every deal in the CRM shows the
payment status of its invoices, every worker HR changed has in the PSA the
HRIS's cost-rate history and leaving date; and that nothing was done twice.
"""

from __future__ import annotations

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._chaos import profile


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.submit_expenses(0)
    d.play_hr_changes(0)
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    d.hold_deliveries("billing", hours=2)
    await d.advance(days=1)
    d.note(paid_first=d.collect_payments(0.7))
    await d.advance(days=2)
    d.note(paid_later=d.collect_payments())
    await d.advance(days=1)


def psa_shows_invoice_status(world) -> dict:
    name = "webhook storm: every PSA record on an invoice shows that invoice's latest status"
    invoices = world.billing.table("invoices")
    want_of = {"open": "invoiced", "paid": "paid"}
    records = {("time_entry", e["id"]): e for e in world.psa.records("time_entries")}
    records |= {("milestone", m["id"]): m for m in world.psa.records("milestones")}
    violations, checked = [], 0
    for item in t.billing_items(world):
        src = item.get("source") or {}
        inv = invoices.get(item["invoice"] or "")
        if inv is None or inv["status"] not in want_of or src.get("type") not in ("time_entry", "milestone"):
            continue
        rid, _, version = src["id"].partition(":v")
        rec = records.get((src["type"], rid))
        if rec is None or (version and version != str(rec.get("version"))):
            continue  # a reversal, or a version since corrected
        checked += 1
        if rec["billing_status"] != want_of[inv["status"]] or rec["invoice_reference"] is None:
            violations.append(f"{src['type']} {src['id']} on invoice {inv['id']} ({inv['status']}): the PSA shows "
                              f"{rec['billing_status']} (corr te:{rid})")
    if not checked:
        violations.append("no invoice billed PSA work: the story did not happen")
    return check(name, violations)


def crm_shows_payment_status(world) -> dict:
    name = "webhook storm: every deal in the CRM shows the payment status of its invoices"
    by_deal: dict[str, list[dict]] = {}
    for inv in world.billing.records("invoices"):
        if inv["status"] in ("open", "paid") and inv.get("contract_ref"):
            by_deal.setdefault(inv["contract_ref"], []).append(inv)
    violations = []
    opps = t.won_deals(world)
    for opp, invs in sorted(by_deal.items()):
        paid = sum(i["status"] == "paid" for i in invs)
        want = {len(invs): "Paid", 0: "Unpaid"}.get(paid, "Partially Paid")
        have = (opps.get(opp) or {}).get("Payment_Status__x")
        if have != want and not (want == "Unpaid" and have == "Overdue"):
            violations.append(f"deal {opp}: {paid} of {len(invs)} invoices paid, the CRM says {have} (corr deal:{opp})")
    if not t.notes(world).get("paid_first"):
        violations.append("no invoice was paid: the story did not happen")
    return check(name, violations)


def workers_match_hris(world) -> dict:
    name = "webhook storm: each worker HR changed has the HRIS's cost rates and leaving date in the PSA"
    changed = {e["id"] for e in world.hris.effects() if e["kind"] in ("worker.cost_rate_changed", "worker.terminated")}
    violations = t.worker_mismatches(world, changed)
    if not changed:
        violations.append("HR changed no worker: the story did not happen")
    return check(name, violations)


def nothing_twice(world) -> dict:
    found = t.duplicates(world)
    return check("webhook storm: no duplicated event did anything twice", [v for vs in found.values() for v in vs])


def expectations(world) -> list[dict]:
    return [psa_shows_invoice_status(world), crm_shows_payment_status(world), workers_match_hris(world),
            nothing_twice(world)]


SCENARIO = Scenario(
    name="webhook-storm",
    summary="billing and HR webhooks duplicated, delayed and reordered at volume; the latest truth wins",
    script=script,
    firm={"consultants": 20},
    default_chaos=profile("webhook-storm"),
    expectations=expectations,
    horizon_days=35,
)

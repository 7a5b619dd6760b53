"""Expense rebill: the client pays for the consultants' travel.

A small firm's January. Consultants travel to client sites and file their
expense reports at the end of the month; managers approve them the same
day. Expenses marked billable are rebilled to the client on the month-end
invoice, at their net amount, once each.

Beyond the general invariants this scenario checks that every approved
billable expense is on exactly one invoice item (source ``expense`` /
<expense entry id>, per the integration contract), at its net amount when
the client is billed in the expense's currency -- unless the core routed
the deal to a person, with a reason.

Run it:  syncbed run docs/examples/my_scenario.py --seed 1
"""

import json
from datetime import time
from decimal import Decimal

from harness.scenario_api import Scenario, check


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)  # sales wins the month's deals
    d.play_month(0)  # people log, submit and approve their time
    last_day = d.sim.calendar.last_business_day_of_month(d.today)
    await d.advance_to(last_day, time(14))
    d.submit_expenses(0)  # everyone files the month's reports; managers approve
    await d.settle(days=2)  # let the integration catch up
    d.run_billing()  # the month-end billing run
    await d.advance(days=1)


def routed_to_people(world, deal: str) -> bool:
    """Did the core put the deal in a person's queue (an exception, a dead
    letter) -- a client refused for a missing tax id, say? Then its expenses
    wait for that person, and that is not this scenario's failure."""
    queues = world.store.dump()
    return any(deal in json.dumps(item) for table in ("exceptions", "dlq") for item in queues.get(table, {}).values())


def rebilled_once(world):
    reports = {r["ReportId"]: r for r in world.expenses.records("reports")}
    items = {}
    for item in world.billing.records("invoice_items"):
        source = item.get("source") or {}
        if source.get("type") == "expense" and item["status"] != "void":
            items.setdefault(source["id"], []).append(item)
    violations, checked = [], 0
    for entry in world.expenses.records("entries"):
        if not entry["IsBillable"] or reports[entry["ReportId"]]["Status"] not in ("APPROVED", "REIMBURSED"):
            continue
        if routed_to_people(world, entry["ProjectRef"]):
            continue
        checked += 1
        billed = items.get(entry["EntryId"], [])
        if len(billed) != 1:
            violations.append(f"expense {entry['EntryId']} ({entry['Amount']} {entry['Currency']}): "
                              f"{len(billed)} invoice items")
            continue
        same_currency = billed[0]["currency"].upper() == entry["Currency"]
        if same_currency and Decimal(billed[0]["amount"]) != Decimal(entry["Amount"]):
            violations.append(f"expense {entry['EntryId']}: billed {billed[0]['amount']}, spent {entry['Amount']}")
    if not checked:
        violations.append("nobody filed a billable expense: the story did not happen")
    return check("expense rebill: every approved billable expense billed once, at its net amount", violations)


def expectations(world):
    return [rebilled_once(world)]


SCENARIO = Scenario(
    name="expense-rebill",
    summary="approved billable expenses are rebilled to the client once each",
    script=script,
    firm={"consultants": 10},
    default_chaos="default",
    expectations=expectations,
)

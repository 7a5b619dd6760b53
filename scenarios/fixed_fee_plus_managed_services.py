"""Fixed fee plus managed services: one contract family, two kinds of revenue.

The seeds' "realistic scenario": a consulting firm sells a fixed-fee
implementation with a managed-services tail. On the first business day of
January sales closes it for a client as one deal: the implementation paid by
three milestones (January, February, March) and twelve months of managed
service from 1 February. The team finishes the first milestone in January
and the client signs it off; January is billed and closed; the second
milestone is finished and accepted in February and February is billed. The
third is still in progress when the run ends.

The ERP must see one customer and one project; billing a fixed-fee
schedule (milestones, on acceptance) and a monthly subscription; the revenue
engine one contract whose milestone obligations are recognised at a point
in time -- on acceptance, each its own price -- and whose managed service is
recognised ratably over its service period, and never the one by the
other's rule. Beyond the general invariants this scenario checks exactly
that separation.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._firm import clean_clients, fixed_fee_line, recurring_line
from ._people import client_accepts, complete_milestone

MILESTONES = (("Discovery complete", "45000.00", date(2026, 1, 23)),
              ("Build complete", "80000.00", date(2026, 2, 20)),
              ("Go-live", "35000.00", date(2026, 3, 27)))
MS_START, MS_MONTHS, MS_FEE = date(2026, 2, 1), 12, "9500.00"


async def script(d):
    client = clean_clients(d.firm)[-1]
    await d.advance_to(date(2026, 1, 2), time(11))
    opp = d.sell(client.id, f"{client.name} - implementation and run", [
        fixed_fee_line("Platform implementation (fixed fee)", date(2026, 1, 5), MILESTONES),
        recurring_line("Managed service", "managed_service", MS_START, MS_MONTHS, MS_FEE),
    ])
    lines = {ln["BillingModel"]: ln["Id"] for ln in d.quote_lines(opp)}
    d.note(family={"opp": opp, "fixed_fee": lines["fixed_fee"], "managed_service": lines["managed_service"],
                   "accepted": []})
    for name, (done, signed) in (("Discovery complete", (date(2026, 1, 21), date(2026, 1, 23))),
                                 ("Build complete", (date(2026, 2, 18), date(2026, 2, 20)))):
        await d.advance_to(done, time(12))
        await complete_milestone(d, lines["fixed_fee"], name)
        await d.advance_to(signed, time(15))
        if await client_accepts(d, lines["fixed_fee"], name):
            d.world.notes["family"]["accepted"].append(name)
        if signed.month == 1:
            await d.to_month_end()
            await d.settle(days=2)
            d.run_billing()
            await d.advance_to(date(2026, 2, 3), time(17))
            d.close_period("2026-01")
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    await d.advance(days=2)


def _family(world):
    fam = t.notes(world).get("family")
    rc = fam and t.revenue_contract(world, fam["opp"])
    return fam, rc


def one_contract_two_methods(world) -> dict:
    name = "fixed fee + managed services: one revenue contract, milestones point in time, the service ratable"
    fam, rc = _family(world)
    if rc is None:
        return check(name, [f"deal {fam and fam['opp']}: no revenue contract"])
    pobs = {p["pob_ref"]: p for p in rc["pobs"]}
    violations = []
    for n, _, _ in MILESTONES:
        p = pobs.get(f"{fam['fixed_fee']}:{n}") or pobs.get(fam["fixed_fee"])
        if p is None or p["rec_method"] not in ("point_in_time", "input"):
            violations.append(f"{rc['rc_id']}: milestone '{n}' has no point-in-time (or input) obligation: {p}")
    ms = pobs.get(fam["managed_service"])
    if ms is None or ms["rec_method"] != "ratable":
        violations.append(f"{rc['rc_id']}: managed service {fam['managed_service']} is not a ratable obligation: {ms}")
    return check(name, violations)


def ratable_inside_service_period(world) -> dict:
    name = "fixed fee + managed services: service revenue is spread over its service period, all of it"
    fam, rc = _family(world)
    if rc is None:
        return check(name, [f"deal {fam and fam['opp']}: no revenue contract"])
    lines = t.revenue_lines(world, rc["rc_id"], fam["managed_service"])
    first, last = f"{MS_START:%Y-%m}", "2027-01"
    violations = [f"{rc['rc_id']}: managed-service revenue {ln['amount']} in {ln['period']}, outside {first}..{last}"
                  for ln in lines if not first <= (ln["moved_from"] or ln["period"]) <= last]
    total = sum((t.dec(ln["amount"]) for ln in lines), Decimal(0))
    if total != Decimal(MS_FEE) * MS_MONTHS:
        violations.append(f"{rc['rc_id']}: managed service scheduled {total}, priced {Decimal(MS_FEE) * MS_MONTHS}")
    return check(name, violations)


def milestones_on_acceptance(world) -> dict:
    name = "fixed fee + managed services: a milestone's revenue is its price, recognised when the client accepts"
    fam, rc = _family(world)
    if rc is None:
        return check(name, [f"deal {fam and fam['opp']}: no revenue contract"])
    violations = []
    for n, amount, _ in MILESTONES:
        lines = t.revenue_lines(world, rc["rc_id"], f"{fam['fixed_fee']}:{n}")
        total = sum((t.dec(ln["amount"]) for ln in lines), Decimal(0))
        ms = t.psa_milestone_for(world, fam["fixed_fee"], n)
        accepted = ms[0]["accepted_on"] if ms and ms[0]["accepted_on"] else None
        if accepted is None and total:
            violations.append(f"milestone '{n}': {total} recognised though the client has not accepted it")
        elif accepted and total != Decimal(amount):
            violations.append(f"milestone '{n}' accepted {accepted}: {total} recognised, its price is {amount}")
        elif accepted and any((ln["moved_from"] or ln["period"]) != accepted[:7] for ln in lines):
            violations.append(f"milestone '{n}' accepted {accepted}: recognised in {[ln['period'] for ln in lines]}")
    if not fam["accepted"]:
        violations.append("no milestone was accepted: the story did not happen")
    return check(name, violations)


def billed_apart(world) -> dict:
    name = "fixed fee + managed services: milestones billed on acceptance, the service monthly from its start"
    fam = t.notes(world).get("family")
    if fam is None:
        return check(name, ["the script sold no deal"])
    schedules = {(s.get("metadata") or {}).get("line"): s for s in world.billing.records("billing_schedules")
                 if s["contract_ref"] == fam["opp"]}
    violations = []
    sub = schedules.get(fam["managed_service"])
    fee = t.dec(((sub or {}).get("recurring") or {}).get("amount"))
    if sub is None or sub["model"] != "subscription" or fee != Decimal(MS_FEE):
        violations.append(f"line {fam['managed_service']}: no monthly subscription of {MS_FEE} ({sub and sub['id']})")
    else:
        months = sorted(i["service_date"][:7] for i in t.billing_items(world, "recurring")
                        if i["schedule"] == sub["id"])
        if months != ["2026-02"]:
            violations.append(f"subscription {sub['id']}: charged for {months}, expected February only by end of run")
    for n, amount, _ in MILESTONES:
        ms = t.psa_milestone_for(world, fam["fixed_fee"], n)
        items = [i for i in t.billing_items(world, "milestone", ms[0]["id"]) if i["invoice"]] if ms else []
        if n in fam["accepted"] and [t.dec(i["amount"]) for i in items] != [Decimal(amount)]:
            violations.append(f"milestone '{n}' (accepted): invoiced as {[i['amount'] for i in items]}, "
                              f"expected [{amount}]")
        if n not in fam["accepted"] and items:
            violations.append(f"milestone '{n}' (not accepted): invoiced as {[i['id'] for i in items]}")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [one_contract_two_methods(world), ratable_inside_service_period(world), milestones_on_acceptance(world),
            billed_apart(world)]


SCENARIO = Scenario(
    name="fixed-fee-plus-managed-services",
    summary="a fixed-fee implementation with a managed-service tail: milestone and ratable revenue kept apart",
    script=script,
    firm={"consultants": 8, "clients": 6},
    default_chaos="default",
    expectations=expectations,
    horizon_days=62,
)

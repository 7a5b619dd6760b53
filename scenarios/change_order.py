"""Change order: a statement of work changes mid-project.

Halfway through January the firm's busiest time-and-materials client signs
a change order: every rate on the T&M line goes up 5% from that day. Two
minutes later, in the same meeting, a second amendment adds a fixed-fee
data-migration phase paid by two milestones. The CRM signs them as contract
versions 2 and 3 in quick succession, and on the way to the core the CRM's
traffic is reordered and duplicated (profile ``change-order``), so the
versions may be read in either order, twice.

The seeds' control: "versioned; baseline kept; schedules recalculated".
Beyond the general invariants this scenario checks that the revenue
contract went through the versions in order from the signed baseline and
ends at the CRM's latest; that the new phase reached the PSA (a task and
its two milestones) and billing (a fixed-fee schedule); that the T&M
schedule carries the new rate card; and that every hour billed on the deal
is billed at the rate in force on the day it was worked -- the old rate
before the change, the new one from its effective date.
"""

from __future__ import annotations

from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._chaos import profile
from ._firm import busiest_deals

PHASE = "Data migration phase"
PHASE_MILESTONES = (("Migration plan", "24000.00"), ("Cutover complete", "36000.00"))


def subject_deal(firm):
    """The busiest deal signed before the run that bills time (T&M)."""
    deals = busiest_deals(firm, model="t_and_m")
    return deals[0] if deals else None


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.submit_expenses(0)
    deal = subject_deal(d.firm)
    mid_month = d.sim.calendar.add_business_days(d.today.replace(day=1), 10)
    await d.advance_to(mid_month, time(10))
    if deal is not None:
        opp = d.crm.crm_id(deal.id)
        rates = d.raise_rates(opp, 5)
        await d.advance(minutes=2)
        scope = d.add_scope(opp, PHASE, list(PHASE_MILESTONES))
        d.note(change_order={"opp": opp, "effective": d.today.isoformat(), "versions": [rates, scope]})
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


# ------------------------------------------------------------------ expectations


def _subject(world) -> tuple[str | None, list[str]]:
    noted = t.notes(world).get("change_order")
    if noted is None:
        return None, ["the script signed no change order: the firm has no deal with a T&M line to change"]
    return noted["opp"], []


def versions_in_order(world) -> dict:
    name = "change order: the revenue contract went from the baseline through every version in order"
    opp, bad = _subject(world)
    if opp is None:
        return check(name, bad)
    latest = t.won_deals(world).get(opp, {}).get("ContractVersion__x") or 1
    rc = t.revenue_contract(world, opp)
    if rc is None:
        return check(name, [f"deal {opp}: no revenue contract (source_contract_id {opp})"])
    history = [v["version"] for v in rc["version_history"]]
    violations = []
    if not history or history[0] != 1 or rc["version_history"][0]["action"] != "CREATED":
        violations.append(f"deal {opp}: revenue contract {rc['rc_id']} was not booked from the signed baseline "
                          f"(version 1); its history is {rc['version_history']}")
    if any(b < a for a, b in zip(history, history[1:])):
        violations.append(f"deal {opp}: revenue contract {rc['rc_id']} went back a version: {history}")
    if rc["source_version"] != latest:
        violations.append(f"deal {opp}: revenue contract {rc['rc_id']} is at version {rc['source_version']}, "
                          f"the CRM at version {latest}")
    return check(name, violations)


def new_phase_set_up(world) -> dict:
    name = "change order: the added phase has its PSA task, PSA milestones and a fixed-fee billing schedule"
    opp, bad = _subject(world)
    if opp is None:
        return check(name, bad)
    added = [ln for ln in t.lines_of(world, opp) if ln["Product"] == PHASE]
    if len(added) != 1:
        return check(name, [f"deal {opp}: the CRM holds {len(added)} '{PHASE}' lines, expected 1"])
    line = added[0]
    violations = []
    tasks = t.psa(world, "tasks", external_reference=line["Id"])
    if len(tasks) != 1:
        violations.append(f"line {line['Id']}: {len(tasks)} PSA tasks with external_reference {line['Id']}, expected 1")
    for m in line["Milestones"]:
        found = t.psa_milestone_for(world, line["Id"], m["Name"])
        if len(found) != 1:
            violations.append(f"line {line['Id']}: {len(found)} PSA milestones '{line['Id']}:{m['Name']}', expected 1")
    schedules = _schedules(world, opp, line["Id"])
    if len(schedules) != 1:
        violations.append(f"line {line['Id']}: {len(schedules)} billing schedules, expected 1")
    elif schedules[0]["model"] != "fixed_fee" or sum(t.dec(m["amount"]) for m in schedules[0]["milestones"] or []) \
            != t.dec(line["TotalPrice"]):
        violations.append(f"line {line['Id']}: billing schedule {schedules[0]['id']} is not a fixed-fee schedule "
                          f"of {line['TotalPrice']}")
    return check(name, violations)


def _schedules(world, opp: str, line_id: str) -> list[dict]:
    return [s for s in world.billing.records("billing_schedules")
            if s["contract_ref"] == opp and (s.get("metadata") or {}).get("line") == line_id]


def rate_card_updated(world) -> dict:
    name = "change order: the T&M billing schedule carries the amended rate card"
    opp, bad = _subject(world)
    if opp is None:
        return check(name, bad)
    violations = []
    for line in t.lines_of(world, opp):
        if line["BillingModel"] != "t_and_m":
            continue
        want = {e["Role"]: t.dec(e["Rate"]) for e in line["RateCard"] or []}
        for s in _schedules(world, opp, line["Id"]):
            have = {e["code"]: t.dec(e["unit_amount"]) for e in s.get("rate_card") or []}
            if have != want:
                violations.append(f"line {line['Id']}: schedule {s['id']} bills {have}, the contract says {want}")
        if not _schedules(world, opp, line["Id"]):
            violations.append(f"line {line['Id']}: no billing schedule")
    return check(name, violations)


def billed_at_rate_in_force(world) -> dict:
    name = "change order: hours are billed at the rate in force on the day they were worked"
    opp, bad = _subject(world)
    if opp is None:
        return check(name, bad)
    effective = date.fromisoformat(t.notes(world)["change_order"]["effective"])
    versions = sorted((v for v in world.crm.records("ContractVersion") if v["OpportunityId"] == opp),
                      key=lambda v: v["VersionNumber"])
    roles = {r["id"]: r.get("external_reference") for r in world.psa.records("roles")}
    assignments = {a["id"]: a for a in world.psa.records("assignments")}
    entries = {e["id"]: e for e in world.psa.records("time_entries")}
    projects = {p["id"] for p in t.psa_projects_for(world, opp)}
    violations, checked, after = [], 0, 0
    for item in t.billing_items(world, "time_entry"):
        entry_id, _, version = item["source"]["id"].partition(":v")
        entry = entries.get(entry_id)
        if entry is None or entry["project_id"] not in projects or version != str(entry["version"]):
            continue
        role = roles.get((assignments.get(entry["assignment_id"]) or {}).get("role_id"))
        rate = _rate_in_force(versions, entry["date"], role)
        if rate is None:
            continue
        checked += 1
        after += entry["date"] >= effective.isoformat()
        want = (t.dec(entry["hours"]) * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if t.dec(item["amount"]) != want:
            violations.append(f"time entry {entry_id} v{version} ({entry['hours']} h on {entry['date']}, role {role}): "
                              f"billed {item['amount']} in item {item['id']}, the rate in force gives {want}")
    if not after:
        violations.append(f"deal {opp}: no hours worked on or after the change ({effective}) were billed")
    return check(name, violations)


def _rate_in_force(versions: list[dict], day: str, role: str | None) -> Decimal | None:
    card: dict[str, Decimal] = {}
    for v in versions:
        if v["VersionNumber"] > 1 and v["EffectiveDate"] > day:
            continue
        for snap in v.get("ChangedLines") or []:
            if snap.get("BillingModel") == "t_and_m" and snap.get("RateCard"):
                card = {e["Role"]: t.dec(e["Rate"]) for e in snap["RateCard"]}
    return card.get(role) if role else None


def expectations(world) -> list[dict]:
    return [versions_in_order(world), new_phase_set_up(world), rate_card_updated(world),
            billed_at_rate_in_force(world)]


SCENARIO = Scenario(
    name="change-order",
    summary="a SOW changes mid-project (rates up, a fixed-fee phase added); versions reach every system in order",
    script=script,
    firm={"consultants": 12},
    default_chaos=profile("change-order"),
    expectations=expectations,
)

"""HR onboarding and cost rates: people change, margins must follow.

A small firm's January, seen from HR. The month's cost-rate rises and
leavers are entered in the HRIS on their effective dates. On 5 January HR
hires two consultants starting on the 12th. On 20 January a raise agreed
before Christmas is finally entered for the firm's busiest consultant --
the one with the most time since 5 January approved in the PSA and posted
to the ERP (HR waits for it, up to a week, should the integration be
behind) -- effective from 5 January, retroactive over that posted time.
Meanwhile everyone works and their time is approved and posted; billing
runs at month end.

The seeds' control: "effective-dated" -- the HRIS is the system of record
for people, the PSA must price each hour at the cost rate in force on the
day it was worked, and margin reporting in the ERP must use that cost.
Beyond the general invariants this scenario checks that the new hires
became PSA resources with the HRIS's role, entity and starting rate; that
every worker HR changed has in the PSA exactly the HRIS's effective-dated
rates and leaving date; that a leaver's assignments end on their last day;
and that the cost the ERP holds for each hour of those workers -- after any
re-costing -- is the hours at the HRIS rate in force on the work date
(converted at the ERP's rate of that date when the worker is costed in
another currency than the project's).
"""

from __future__ import annotations

from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal

from fake_systems.erp_books import fx_rate
from harness.scenario_api import Scenario, check

from . import _truth as t

HIRES = (("Amara", "Okafor", 1), ("Lukas", "Brandt", 2))  # first, last, role (by level order)
RAISE_FROM = date(2026, 1, 5)  # the retroactive raise's effective date


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.play_hr_changes(0)
    await d.advance_to(date(2026, 1, 5), time(9))
    centre = d.firm.cost_centres[0]
    hired = []
    for first, last, level in HIRES:
        role = d.firm.roles[min(level, len(d.firm.roles) - 1)]
        rate = role.rate(d.hris.table("companies")[centre.entity_id]["currency"]).cost_rate
        hired.append(d.hris.hire(first, last, role.id, centre.id, date(2026, 1, 12), rate)["employeeId"])
    d.note(hired=hired)
    await d.advance_to(date(2026, 1, 20), time(9))
    # The raise must land on time already posted, or there is nothing to
    # re-cost: wait (as HR would for the month's figures) until someone's
    # is. A week without any -- the integration posts nothing -- and HR
    # enters it for the busiest by the plan: the raise is due either way.
    await d.wait_for(lambda: _busiest_worker(d) is not None, days=7)
    busiest = _busiest_worker(d) or _busiest_planned(d.firm)
    if busiest is not None:
        rate = Decimal(d.hris.table("workers")[busiest]["costRateHistory"][-1]["amount"])
        d.hris.change_cost_rate(busiest, (rate * Decimal("1.06")).quantize(Decimal("0.01")), RAISE_FROM)
        d.note(retro_raise=busiest)
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


def _busiest_worker(d) -> str | None:
    """The consultant (not leaving this month) with the most entries worked
    since `RAISE_FROM` that are approved in the PSA and posted to the ERP;
    None while nobody has any. Counted from the systems, not the firm's
    plan: work on a deal whose setup waits on a person (a duplicate client,
    a missing tax id) is never logged, and a raise for its people would
    re-cost nothing."""
    terminated = {e.worker_id for e in d.firm.months[0].hr_events if e.kind == "termination"}
    employee = {r["id"]: r.get("external_reference") for r in d.psa.records("resources")}
    posted = t.erp_actuals_by_entry(d.world)
    counts: dict[str, int] = {}
    for e in d.psa.records("time_entries"):
        emp = employee.get(e["resource_id"])
        if emp is None or emp in terminated or e["status"] != "approved" or e["date"] < RAISE_FROM.isoformat():
            continue
        if any(not reversal for _, reversal, _ in posted.get(e["id"], [])):
            counts[emp] = counts.get(emp, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return ranked[0] if ranked else None


def _busiest_planned(firm) -> str | None:
    """The consultant (not leaving this month) with the most time in the firm's plan."""
    terminated = {e.worker_id for e in firm.months[0].hr_events if e.kind == "termination"}
    counts: dict[str, int] = {}
    for e in firm.months[0].time_entries:
        counts[e.worker_id] = counts.get(e.worker_id, 0) + 1
    ranked = sorted((w for w in counts if w not in terminated), key=lambda w: (-counts[w], w))
    return ranked[0] if ranked else None


def _changed(world) -> set[str]:
    return {e["id"] for e in world.hris.effects() if e["kind"] in ("worker.cost_rate_changed", "worker.terminated")}


def hires_onboarded(world) -> dict:
    name = "HR: each new hire is a PSA resource with the HRIS's role, entity and starting cost rate"
    hired = t.notes(world).get("hired", [])
    roles = {r["id"]: r.get("external_reference") for r in world.psa.records("roles")}
    violations = [] if hired else ["HR hired nobody: the story did not happen"]
    for emp in hired:
        w = world.hris.table("workers")[emp]
        found = t.psa(world, "resources", external_reference=emp)
        if len(found) != 1:
            violations.append(f"new hire {emp}: {len(found)} PSA resources")
            continue
        r = found[0]
        start = w["costRateHistory"][0]
        if roles.get(r["role_id"]) != w["jobProfile"] or r["home_entity_code"] not in (w["company"], None):
            violations.append(f"new hire {emp}: PSA role {roles.get(r['role_id'])} / entity {r['home_entity_code']}, "
                              f"HRIS {w['jobProfile']} / {w['company']}")
        if not any(row["effective_from"] == start["effectiveDate"] and t.dec(row["rate"]) == t.dec(start["amount"])
                   for row in r["cost_rates"]):
            violations.append(f"new hire {emp}: no PSA cost rate {start['amount']} from {start['effectiveDate']} "
                              f"({r['cost_rates']})")
    return check(name, violations)


def rates_and_leavers_match(world) -> dict:
    name = "HR: every worker HR changed has the HRIS's effective-dated rates and leaving date in the PSA"
    changed = _changed(world)
    violations = t.worker_mismatches(world, changed)
    if t.notes(world).get("retro_raise") not in changed:
        violations.append("the retroactive raise was never entered: the story did not happen")
    return check(name, violations)


def leavers_unassigned(world) -> dict:
    """One that starts only after the last day cannot end before it starts:
    ended on its first day with the PMO told to restaff it is right too."""
    name = "HR: a leaver's assignments end by their last day"
    violations, leavers = [], 0
    for emp, w in sorted(world.hris.table("workers").items()):
        if w["terminationDate"] is None:
            continue
        leavers += 1
        for r in t.psa(world, "resources", external_reference=emp):
            for a in t.psa(world, "assignments", resource_id=r["id"]):
                if a["end_date"] is None or a["end_date"] > w["terminationDate"]:
                    if a["start_date"] > w["terminationDate"] and a["end_date"] == a["start_date"] \
                            and t.queued_for_people(world, f'"assignment": "{a["id"]}"'):
                        continue  # starts after they left: ended on its first day, the PMO restaffs it
                    violations.append(f"worker {emp} left {w['terminationDate']}: assignment {a['id']} runs to "
                                      f"{a['end_date']}")
    return check(name, violations)


def margins_at_right_rates(world) -> dict:
    name = "HR: the ERP's cost of each hour of a changed worker is at the HRIS rate in force on the work date"
    changed = _changed(world)
    resources = {r["id"]: r.get("external_reference") for r in world.psa.records("resources")}
    posts = t.erp_actuals_by_entry(world)
    violations, checked = [], 0
    for e in world.psa.records("time_entries"):
        emp = resources.get(e["resource_id"])
        actuals = [a for _, _, a in posts.get(e["id"], [])]
        if emp not in changed or e["status"] != "approved" or not actuals:
            continue
        rate = t.hris_rate_on(world.hris.table("workers")[emp], e["date"])
        if rate is None:
            continue
        checked += 1
        cost = Decimal(e["hours"]) * Decimal(rate["amount"])
        if actuals[0]["currency"] != rate["currency"]:  # costed abroad: the ERP's rate on the work date
            cost *= fx_rate(world.erp, rate["currency"], actuals[0]["currency"], date.fromisoformat(e["date"]))
        want = cost.quantize(Decimal("0.01"), ROUND_HALF_UP)
        have = sum((t.dec(a["costAmount"]) for a in actuals), Decimal(0))
        if have != want:
            violations.append(f"time entry {e['id']} ({emp}, {e['hours']} h on {e['date']}): ERP cost {have}, "
                              f"{e['hours']} h at {rate['amount']} = {want} (corr te:{e['id']})")
    if not checked:
        violations.append("no posted time of a changed worker could be checked: the story did not happen")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [hires_onboarded(world), rates_and_leavers_match(world), leavers_unassigned(world),
            margins_at_right_rates(world)]


SCENARIO = Scenario(
    name="hr-onboarding-cost-rates",
    summary="hires, cost-rate changes (one retroactive) and leavers flow from the HRIS; margins use the right rates",
    script=script,
    firm={"consultants": 12},
    default_chaos="default",
    expectations=expectations,
)

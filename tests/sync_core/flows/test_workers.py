"""The workers flow: HRIS hires, cost-rate changes and terminations in the PSA.

Ground truth is the HRIS and the PSA after the world has run and healed:
every HRIS worker is exactly one PSA resource (``external_reference`` = the
employeeId), whose effective-dated cost rates give the HRIS's rate on every
day, terminated on the HRIS's last day worked, its assignments ended then;
and the core's canonical Worker knows the rate in force on any work date.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from simulator import Request
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults
from simulator.latency import LogNormal
from sync_core.flows.workers import cost_rate_on, rate_history, worker
from sync_core import xrefs
from tests.sync_core.flows.billed_deals import MY_OPS, broken_invariants, make_world, run_quote_to_cash


def _in_force(rows: list[dict], day: str) -> tuple | None:
    found = None
    for row in sorted(rows, key=lambda r: r["effective_from"]):
        if row["effective_from"] <= day:
            found = (Decimal(row["rate"]), row["currency"])
    return found


def psa_matches_hris(world) -> list[str]:
    """Every HRIS worker: one PSA resource, the same rate on every day that
    matters, the same employment status."""
    problems = []
    resources: dict[str, list[dict]] = {}
    for r in world.psa.records("resources"):
        resources.setdefault(r["external_reference"], []).append(r)
    for employee_id, w in sorted(world.hris.table("workers").items()):
        found = resources.get(employee_id, [])
        if len(found) != 1:
            problems.append(f"{employee_id}: {len(found)} PSA resources")
            continue
        res = found[0]
        hris = rate_history([dict(e, entrySeq=i + 1) for i, e in enumerate(w["costRateHistory"])])
        days = sorted({r["effective_from"] for r in hris} | {r["effective_from"] for r in res["cost_rates"]})
        for day in days:
            if day < hris[0]["effective_from"]:
                continue
            want = _in_force(hris, day)
            got = _in_force(res["cost_rates"], day)
            if want != got:
                problems.append(f"{employee_id} on {day}: PSA rate {got}, HRIS rate {want}")
        if w["terminationDate"] != res["terminated_on"]:
            problems.append(f"{employee_id}: HRIS last day {w['terminationDate']}, PSA terminated_on {res['terminated_on']}")
    return problems


def canonical_matches_hris(world, employee_ids) -> list[str]:
    problems = []
    with world.store.transaction() as txn:
        for employee_id in employee_ids:
            w = world.hris.table("workers")[employee_id]
            record = worker(txn, employee_id)
            if record is None:
                problems.append(f"{employee_id}: no canonical Worker")
                continue
            history = rate_history([dict(e, entrySeq=i + 1) for i, e in enumerate(w["costRateHistory"])])
            for row in history:
                got = record.cost_rate_on(date.fromisoformat(row["effective_from"]))
                if (got.rate, got.currency) != (Decimal(row["rate"]), row["currency"]):
                    problems.append(f"{employee_id} on {row['effective_from']}: Worker says {got.rate}, HRIS {row['rate']}")
            if (record.termination_date and record.termination_date.isoformat()) != w["terminationDate"]:
                problems.append(f"{employee_id}: Worker left {record.termination_date}, HRIS {w['terminationDate']}")
            resource = xrefs.get(txn, "employee.psa_resource", employee_id)
            if record.id_in("psa") != resource or xrefs.get(txn, "psa_resource.employee", resource) != employee_id:
                problems.append(f"{employee_id}: cross-references disagree ({resource}, {record.id_in('psa')})")
    return problems


def _first_centre_and_profile(world):
    hris = world.hris
    return sorted(hris.table("cost_centers"))[0], sorted(hris.table("job_profiles"))[0]


def _seeded(world, n: int = 1) -> list[str]:
    return sorted(w for w in world.hris.table("workers") if w.startswith("W"))[:n]


def test_a_hire_appears_in_the_psa_once_with_its_role_and_cost_rate():
    world = make_world(1, "none", flows=("workers",))
    hired = []

    async def script(d):
        centre, profile = _first_centre_and_profile(world)
        hired.append(world.hris.hire("Ada", "Lovelace", profile, centre, date(2026, 1, 12), "80.00")["employeeId"])
        await d.advance(days=1)
        # hired for next month: known to the PSA before the first day
        hired.append(world.hris.hire("Alan", "Turing", profile, centre, date(2026, 2, 2), "95.50")["employeeId"])
        await d.advance(days=1)

    outcome = world.run(script)
    assert broken_invariants(world, outcome) == []
    assert psa_matches_hris(world) == []
    assert canonical_matches_hris(world, hired) == []
    created = [r for r in world.psa.records("resources") if r["external_reference"] in hired]
    assert [(r["first_name"], r["cost_rates"]) for r in created] == [
        ("Ada", [{"effective_from": "2026-01-12", "rate": "80.00", "currency": created[0]["cost_rates"][0]["currency"]}]),
        ("Alan", [{"effective_from": "2026-02-02", "rate": "95.50", "currency": created[1]["cost_rates"][0]["currency"]}]),
    ]
    role = world.psa.table("roles")[created[0]["role_id"]]
    assert role["external_reference"] == _first_centre_and_profile(world)[1]
    assert len(world.psa.effects("resource.created")) == 2
    with world.store.transaction() as txn:
        assert worker(txn, hired[1]).cost_centre == _first_centre_and_profile(world)[0]


def test_a_retroactive_cost_rate_change_lands_effective_dated_and_prices_later_time():
    world = make_world(2, "none", flows=("workers",))
    (employee,) = _seeded(world)
    ids = {}

    async def script(d):
        psa = world.psa
        resource = next(r for r in psa.records("resources") if r["external_reference"] == employee)["id"]
        project = psa.create_project(Request("POST", "/projects", json={
            "title": "Margins", "client_name": "Client", "currency": "USD", "billing_rule": "time_and_materials",
            "legal_entity_code": "LE"})).json["id"]
        psa.activate_project(project)
        psa.create_assignment(Request("POST", "/assignments", json={
            "resource_id": resource, "project_id": project, "allocation_percent": "100", "bill_rate": "200.00",
            "start_date": "2026-01-01"}))
        ids.update(resource=resource, project=project)
        before = psa.log_time(resource, project, date(2026, 1, 5), "8")  # logged at the old rate
        await d.advance(days=10)
        # entered on the 11th, effective from the 7th: retroactive
        world.hris.change_cost_rate(employee, "123.00", date(2026, 1, 7))
        await d.advance(days=1)
        ids["after"] = psa.log_time(resource, project, date(2026, 1, 8), "8")["id"]
        ids["before"] = before["id"]

    outcome = world.run(script)
    assert broken_invariants(world, outcome) == []
    assert psa_matches_hris(world) == []
    assert canonical_matches_hris(world, [employee]) == []
    resource = world.psa.table("resources")[ids["resource"]]
    assert {"effective_from": "2026-01-07", "rate": "123.00", "currency": resource["cost_rates"][-1]["currency"]} \
        in resource["cost_rates"]
    entries = world.psa.table("time_entries")
    old_rate = resource["cost_rates"][0]["rate"]
    assert entries[ids["before"]]["cost_rate"] == old_rate
    assert entries[ids["after"]]["cost_rate"] == "123.00"  # the PSA's own margin is right from now on
    with world.store.transaction() as txn:
        assert cost_rate_on(txn, ids["resource"], date(2026, 1, 6)).rate == Decimal(old_rate)
        assert cost_rate_on(txn, ids["resource"], date(2026, 1, 7)).rate == Decimal("123.00")
        assert cost_rate_on(txn, "no-such-resource", date(2026, 1, 7)) is None


def test_a_termination_ends_the_resource_and_its_open_assignments():
    world = make_world(3, "none", flows=("workers",))
    (employee,) = _seeded(world)
    ids = {}

    async def script(d):
        psa = world.psa
        resource = next(r for r in psa.records("resources") if r["external_reference"] == employee)["id"]
        project = psa.create_project(Request("POST", "/projects", json={
            "title": "Leaver", "client_name": "Client", "currency": "USD", "billing_rule": "time_and_materials",
            "legal_entity_code": "LE"})).json["id"]
        psa.activate_project(project)
        ids["open"] = psa.create_assignment(Request("POST", "/assignments", json={
            "resource_id": resource, "project_id": project, "allocation_percent": "60", "bill_rate": "200.00",
            "start_date": "2026-01-01"})).json["id"]
        ids["short"] = psa.create_assignment(Request("POST", "/assignments", json={
            "resource_id": resource, "project_id": project, "allocation_percent": "40", "bill_rate": "200.00",
            "start_date": "2026-01-01", "end_date": "2026-01-09"})).json["id"]
        ids["later"] = psa.create_assignment(Request("POST", "/assignments", json={
            "resource_id": resource, "project_id": project, "allocation_percent": "50", "bill_rate": "200.00",
            "start_date": "2026-01-20"})).json["id"]
        ids["resource"] = resource
        world.hris.terminate(employee, date(2026, 1, 16))
        await d.advance(days=1)
        # a second report of the same termination changes nothing
        world.hris._changed(world.hris.table("workers")[employee], "worker.terminated", date(2026, 1, 16))
        await d.advance(days=1)

    outcome = world.run(script)
    assert broken_invariants(world, outcome) == []
    assert psa_matches_hris(world) == []
    assert canonical_matches_hris(world, [employee]) == []
    resource = world.psa.table("resources")[ids["resource"]]
    assert (resource["status"], resource["terminated_on"]) == ("terminated", "2026-01-16")
    assignments = world.psa.table("assignments")
    assert assignments[ids["open"]]["end_date"] == "2026-01-16"
    assert assignments[ids["short"]]["end_date"] == "2026-01-09"  # already over: left alone
    # starts after the last day: cannot end before it starts, so it ends on its
    # first day and the PMO is asked to restaff it -- once, not per report
    assert assignments[ids["later"]]["end_date"] == "2026-01-20"
    late = [x for x in world.store.dump().get("exceptions", {}).values() if x["code"] == "ASSIGNMENT_AFTER_LEAVING"]
    assert [(x["domain"], x["details"]["assignment"]) for x in late] == [("pmo", ids["later"])]
    assert len(world.psa.effects("resource.terminated")) == 1
    with world.store.transaction() as txn:
        assert worker(txn, employee).status == "terminated"


def test_a_cost_centre_transfer_moves_the_worker_and_leaves_the_psa_alone():
    world = make_world(5, "none", flows=("workers",))
    (employee,) = _seeded(world)
    company = world.hris.table("workers")[employee]["company"]
    current = world.hris.table("workers")[employee]["costCenterHistory"][-1]["costCenter"]
    target = sorted(c for c, row in world.hris.table("cost_centers").items()
                    if row["company"] == company and c != current)[0]

    async def script(d):
        await d.advance(days=1)
        writes_before = len(world.psa.effects())
        world.hris.transfer_cost_centre(employee, target, d.today)
        await d.advance(days=1)
        assert len(world.psa.effects()) == writes_before  # nothing in the PSA changes

    outcome = world.run(script)
    assert broken_invariants(world, outcome) == []
    with world.store.transaction() as txn:
        assert worker(txn, employee).cost_centre == target


def test_a_duplicate_resource_is_reported_and_the_oldest_kept():
    world = make_world(4, "none", flows=("workers",))
    (employee,) = _seeded(world)

    async def script(d):
        world.psa.create_resource(Request("POST", "/resources", json={
            "first_name": "Twin", "last_name": "Record", "external_reference": employee}))
        world.hris.change_cost_rate(employee, "150.00", date(2026, 1, 10))
        await d.advance(days=1)

    outcome = world.run(script)
    assert broken_invariants(world, outcome) == []
    exceptions = world.store.dump().get("exceptions", {})
    assert [e["code"] for e in exceptions.values()] == ["DUPLICATE_RESOURCE"]
    original, twin = sorted((r for r in world.psa.records("resources") if r["external_reference"] == employee),
                            key=lambda r: int(r["id"]))
    assert _in_force(original["cost_rates"], "2026-01-10") == (Decimal("150.00"), original["cost_rates"][0]["currency"])
    assert twin["cost_rates"] == []


def _hr_month(world, made: list):
    """A month of HR: two hires, the firm's own cost-rate changes and
    terminations for the month (its hires are already loaded at go-live),
    and a retroactive correction."""

    async def script(d):
        centre, profile = _first_centre_and_profile(world)
        for n, day in enumerate((date(2026, 1, 5), date(2026, 1, 19))):
            made.append(world.hris.hire(f"New{n}", "Hire", profile, centre, day, f"{70 + n}.00")["employeeId"])
        for event in d.hr_events(0):
            if event.kind == "hire":
                continue
            await d.advance_to(event.effective_date)
            world.hris.apply_hr_event(event)
            made.append(event.worker_id)
        await d.advance(days=2)
        made.append(_seeded(world)[0])
        world.hris.change_cost_rate(made[-1], "111.00", date(2025, 12, 1))
        world.hris.change_cost_rate(made[-1], "112.00", date(2025, 12, 1))  # corrected the same day
        await d.advance(days=1)

    return script


HARSH_PSA = ChaosProfile(
    "harsh-psa", "answers lost after the PSA committed, 5xx, 429s, and core crashes",
    links=(LinkRule(latency=LogNormal(median_us=80_000, sigma_milli=900, cap_us=20_000_000),
                    request_loss="5%", response_loss="10%", duplicate="3%", reorder="5%"),),
    systems=(("psa", SystemFaults(error_5xx="5%", rate_limit=5, conflict="3%")),
             ("hris", SystemFaults(error_5xx="5%"))),
    process=ProcessFaults(actors=("core",), crash_every=6 * 3_600_000_000, restart_after=60_000_000),
)


@pytest.mark.parametrize("seed,chaos", [(5, HARSH_PSA), (6, "swarm")])
def test_hires_land_once_and_rates_match_under_chaos(seed, chaos):
    world = make_world(seed, chaos, flows=("workers",))
    made: list[str] = []
    outcome = world.run(_hr_month(world, made))
    assert broken_invariants(world, outcome) == []
    assert psa_matches_hris(world) == []
    assert canonical_matches_hris(world, sorted(set(made))) == []


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8, 9, 10])
def test_workers_hold_under_swarm(seed):
    world = make_world(seed, "swarm", flows=("workers",), consultants=40)
    made: list[str] = []
    outcome = world.run(_hr_month(world, made))
    assert broken_invariants(world, outcome) == []
    assert psa_matches_hris(world) == []
    assert canonical_matches_hris(world, sorted(set(made))) == []


@pytest.mark.slow
@pytest.mark.parametrize("seed,chaos", [(1, "default"), (3, "swarm")])
def test_the_psa_matches_the_hris_after_a_quote_to_cash_month(seed, chaos):
    world, outcome, _ = run_quote_to_cash(seed, chaos)
    assert broken_invariants(world, outcome, ops=MY_OPS) == []
    assert psa_matches_hris(world) == []
    touched = sorted({e.worker_id for e in world.firm.months[0].hr_events if e.kind != "hire"})
    assert touched and canonical_matches_hris(world, touched) == []


def test_a_raise_entered_late_re_costs_the_time_already_posted_for_its_effective_days():
    """hr-onboarding-cost-rates: on 20 January a raise effective from the 5th
    is entered for the busiest consultant, whose time of the 5th to the 19th
    is already posted at the old rate."""
    from harness.runner import run_world

    report = run_world("hr-onboarding-cost-rates", 1, "none", keep_trace=True)
    margins = next(i for i in report["invariants"] if i["name"].startswith("HR: the ERP's cost"))
    assert margins["ok"], margins["violations"]
    assert report["ok"], [i for i in report["invariants"] if not i["ok"]]
    lines = [json.loads(line) for line in report["trace_lines"][1:-1]]
    recosts = [e for e in lines if e["kind"] == "core.t2f.recost"]
    assert recosts and recosts[0]["data"]["from"] == "2026-01-05" and recosts[0]["data"]["postings"] > 0
    changed = [e for e in lines if e["kind"] == "vendor.effect" and e["src"] == "erp" and e["data"]["kind"] == "update"
               and e["corr"] and e["corr"].startswith("te:")]
    assert changed, "no posted actual was re-costed in the ERP"

"""The core's own reconciliation job and KPI events, against the fakes.

Worlds run quote-to-project and time-to-finance (the flows whose postings the
job reconciles) on a small firm. What the job reports is checked against the
fakes' ground truth -- the PSA's approved hours, the ERP row a test tampered
with -- never against the core's own store, so the core cannot grade its
own homework.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from fake_systems.firm_generator import FirmParams
from harness.world import BusinessWorld
from simulator import load_profile
from sync_core.core import ReferenceCore
from sync_core.kpis import spread
from sync_core.reconciliation import DIRTY, RESULTS, RUNS, _config

CORE_CONFIG = {"flows": ["quote_to_project", "time_to_finance"],
               "poll_interval": {"crm": 300.0, "psa": 300.0, "expenses": 600.0, "t2f-waiting": 600.0}}
KPIS = {"project_setup_hours", "billing_lag_hours", "unbilled_approved_time", "revenue_schedule_mismatches",
        "dlq_depth", "exception_age_hours", "traceability_coverage_percent"}


def make_world(*, seed: int = 1, consultants: int = 10, reconcile: dict | None = None) -> BusinessWorld:
    return BusinessWorld(seed=seed, chaos=load_profile("none"), core_factory=ReferenceCore,
                         header={"scenario": "reconciliation-test"}, firm_params=FirmParams(consultants=consultants),
                         core_config={**CORE_CONFIG, "reconcile": reconcile or {}}, keep_trace=True)


def events(world: BusinessWorld, kind: str, *, after_us: int = -1) -> list[dict]:
    out = []
    for line in world.sim.trace.lines:
        if f'"kind":"{kind}"' in line:
            event = json.loads(line)
            if event["kind"] == kind and event["t"] > after_us:
                out.append(event)
    return out


def core_of(world: BusinessWorld):
    return world.core.core


async def worked_week(d) -> None:
    """Deals close, the firm works its first week, the world settles."""
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    await d.advance(days=1)
    d.play_month(0)
    await d.advance(days=6)


async def reconcile_now(d, *, full: bool = True, hours: int = 1) -> dict:
    core_of(d.world).reconciliation.request(full=full)
    await d.advance(hours=hours)
    with d.world.store.transaction() as txn:
        return txn.get(RUNS, "last")


def results(world: BusinessWorld) -> dict[tuple[str, str], dict]:
    return {tuple(k.split("\x00")): v for k, v in world.store.dump().get(RESULTS, {}).items()}


def psa_approved_hours(world: BusinessWorld) -> dict[tuple[str, str], Decimal]:
    """Ground truth: approved hours per (deal, month), from the PSA's records."""
    deal_of = {p["id"]: p["external_reference"] for p in world.psa.records("projects") if p["external_reference"]}
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in world.psa.records("time_entries"):
        if e["status"] == "approved" and e["project_id"] in deal_of:
            out[deal_of[e["project_id"]], e["date"][:7]] += Decimal(e["hours"])
    return out


# ------------------------------------------------------------------ a clean world


@pytest.fixture(scope="module")
def clean():
    world = make_world()
    seen: dict = {}

    async def script(d):
        await worked_week(d)
        seen["summary"] = await reconcile_now(d)

    outcome = world.run(script)
    assert outcome["quiet"]
    return world, seen["summary"]


def test_a_clean_world_reconciles_every_project_and_month_with_no_difference(clean):
    world, summary = clean
    assert summary["mode"] == "full" and summary["differences"] == 0
    assert summary["pending"] == 0 and summary["unread"] == 0
    assert events(world, "core.reconciliation.difference") == []
    found = results(world)
    truth = {k: v for k, v in psa_approved_hours(world).items() if v}
    assert len(truth) >= 2, f"too little approved time to prove anything: {truth}"
    # every month with approved time was judged, at the PSA's own figure, and ties
    assert {k: Decimal(found[k]["figures"]["psa"]["hours"]) for k in truth if k in found} == truth
    billed = 0
    for key, row in found.items():
        fig = row["figures"]
        assert row["status"] == "ok", (key, row)
        assert fig["psa"]["hours"] == fig["erp"]["hours"]
        assert fig["psa"]["amount"] == fig["erp"]["revenue"] == fig["billing"]["net"] == fig["revenue"]["recognised"]
        billed += Decimal(fig["billing"]["net"]) > 0
    assert billed >= 1, "no month billed any T&M time"
    assert world.store.dump().get(DIRTY, {}) == {}, "a month that ties is no longer dirty"


def test_the_job_runs_once_a_day_at_its_hour_and_summarises_each_run(clean):
    world, _ = clean
    runs = events(world, "core.reconciliation.run")
    scheduled = [e for e in runs if e["data"]["mode"] == "scheduled"]
    assert len(scheduled) >= 6
    hour_us = 3_600_000_000
    starts = [e["data"]["started_us"] for e in scheduled]  # business time: microseconds since 1970, UTC
    assert {t % (24 * hour_us) for t in starts} == {2 * hour_us}
    assert [b - a for a, b in zip(starts, starts[1:])] == [24 * hour_us] * (len(starts) - 1)
    for e in runs:
        assert e["data"]["requests"] >= 0 and e["cause"] == e["data"]["run"]


# ------------------------------------------------------------------ a tampered book


def _tamper_erp(world: BusinessWorld) -> tuple[str, str, str]:
    """Finance edits a posted time actual by hand: an hour more, 100 more revenue."""
    projects = world.erp.table("projects")
    actual = next(a for a in world.erp.table("projectActuals").values()
                  if a["type"] == "time" and Decimal(a["revenueAmount"]) > 0 and (a["externalId"] or "").startswith("te:"))
    actual["hours"] = format(Decimal(actual["hours"]) + 1, "f")
    actual["revenueAmount"] = format(Decimal(actual["revenueAmount"]) + 100, "f")
    return projects[str(actual["project"])]["externalId"], actual["tranDate"][:7], actual["externalId"].split(":")[1]


def _drop_billing_item(world: BusinessWorld) -> tuple[str, str, str]:
    """An invoice item for time disappears from billing."""
    items = world.billing.table("invoice_items")
    item = next(i for i in items.values() if (i.get("source") or {}).get("type") == "time_entry")
    del items[item["id"]]
    return item["metadata"]["deal"], item["service_date"][:7], item["source"]["id"].split(":")[0]


@pytest.mark.parametrize("tamper", [_tamper_erp, _drop_billing_item], ids=["erp-edited", "billing-item-dropped"])
def test_a_tampered_book_is_reported_for_exactly_its_project_and_month(tamper):
    world = make_world()
    seen: dict = {}

    async def script(d):
        await worked_week(d)
        seen["clean"] = await reconcile_now(d)
        seen["exceptions"] = world.store.dump().get("exceptions", {})
        seen["at"] = world.sim.now_us
        seen["where"] = tamper(world)
        seen["summary"] = await reconcile_now(d)

    world.run(script)
    deal, period, entry = seen["where"]
    assert seen["clean"]["differences"] == 0
    assert seen["summary"]["differences"] == 1 and seen["summary"]["different"] == [f"{deal} {period}"]
    assert {k for k, v in results(world).items() if v["status"] == "different"} == {(deal, period)}
    reported = events(world, "core.reconciliation.difference", after_us=seen["at"])
    assert {(e["data"]["deal"], e["data"]["period"]) for e in reported} == {(deal, period)}
    event = reported[0]
    assert event["corr"] == f"deal:{deal}" and entry in event["data"]["entries"]
    assert set(event["data"]) >= {"psa", "erp", "billing", "revenue", "currency", "project", "reasons"}
    # a difference is a report, never an exception the core could be excused by
    assert world.store.dump().get("exceptions", {}) == seen["exceptions"]


# ------------------------------------------------------------------ work still on its way


def _log_approved(d, hours: str) -> tuple[str, str]:
    """A consultant logs time on a billable task of an active project, and it is approved."""
    psa = d.psa
    active = {p["id"]: p for p in psa.records("projects") if p["status"] == "active" and p["external_reference"]}
    tasks = {t["project_id"]: t for t in sorted(psa.records("tasks"), key=lambda t: t["id"]) if t["billable"]}
    day = d.today.isoformat()
    a = next(a for a in sorted(psa.records("assignments"), key=lambda a: a["id"])
             if a["project_id"] in active and a["project_id"] in tasks and a["start_date"] <= day <= a["end_date"])
    entry = psa.log_time(a["resource_id"], a["project_id"], day, hours, task_id=tasks[a["project_id"]]["id"])
    psa.submit_time_entry(entry["id"])
    psa.approve_time_entry(entry["id"])
    return active[a["project_id"]]["external_reference"], day[:7]


def test_work_queued_in_the_outbox_is_pending_not_different_and_ties_once_it_lands():
    world = make_world(reconcile={"sweep_projects": 0})
    seen: dict = {}

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        await d.advance(days=2)  # provisioned; the PMO staffs at 08:30
        d.outage("revenue", hours=6)  # the revenue step of every posting waits, retrying
        seen["at"] = world.sim.now_us
        seen["where"] = _log_approved(d, "3")
        await d.advance(minutes=30)
        seen["during"] = await reconcile_now(d, full=False, hours=1)
        seen["row"] = dict(results(world)[seen["where"]])
        await d.advance(hours=6)
        await d.settle(days=1)
        seen["after"] = await reconcile_now(d, full=False)

    world.run(script)
    deal, period = seen["where"]
    assert seen["during"]["pending"] == 1 and seen["during"]["differences"] == 0
    assert seen["row"]["status"] == "pending" and "queued" in seen["row"]["reasons"][0]
    assert seen["during"]["requests"] == 0, "a deal with work queued is not read: its verdict could only be pending"
    row = results(world)[deal, period]
    assert row["status"] == "ok" and Decimal(row["figures"]["revenue"]["recognised"]) > 0
    assert events(world, "core.reconciliation.difference", after_us=seen["at"]) == []
    assert world.store.dump().get(DIRTY, {}) == {}


def test_a_quiet_day_reads_nothing_and_a_busy_one_reads_only_its_project_and_month():
    world = make_world(reconcile={"sweep_projects": 0})
    seen: dict = {}

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        await d.advance(days=2)
        seen["where"] = _log_approved(d, "2")
        seen["at"] = world.sim.now_us
        await d.advance(days=3)

    world.run(script)
    deal, period = seen["where"]
    runs = [e["data"] for e in events(world, "core.reconciliation.run", after_us=seen["at"])]
    busy, quiet = runs[0], runs[1:]
    assert busy["projects_read"] == 1 and busy["periods_checked"] == 1 and busy["differences"] == 0
    assert len(quiet) >= 2 and all(r["projects_checked"] == 0 and r["requests"] == 0 for r in quiet)
    assert results(world)[deal, period]["status"] == "ok"
    # the PSA was asked for that month's approved time only, with the vendor's filters
    asked = [e["data"] for e in events(world, "net.request", after_us=seen["at"])
             if (e["data"].get("headers") or {}).get("x-causation-id", "").startswith("recon")]
    psa = [r["query"] for r in asked if r["path"] == "/time_entries"]
    lo, hi = f"{period}-01", f"{period}-31"
    assert psa and all(q["status"] == "approved" and lo <= q["date_from"] and q["date_to"] <= hi for q in psa)
    assert all(r["headers"]["x-correlation-id"] == f"deal:{deal}" for r in asked)


# ------------------------------------------------------------------ KPIs


def _no_floats(value) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_floats(v) for v in value)
    return True


def test_kpi_events_are_present_float_free_and_plausible(clean):
    world, _ = clean
    kpis = events(world, "core.kpi")
    assert all(_no_floats(e["data"]) for e in kpis)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for e in kpis:
        by_name[e["data"]["kpi"]].append(e["data"])
    assert set(by_name) == KPIS
    last = {name: rows[-1] for name, rows in by_name.items()}
    # project setup: one event per deal as it is activated, then spreads
    activated = [p for p in world.psa.records("projects") if p["status"] == "active" and p["external_reference"]]
    per_deal = [r for r in by_name["project_setup_hours"] if "deal" in r]
    assert sorted(r["deal"] for r in per_deal) == sorted(p["external_reference"] for p in activated)
    setup = last["project_setup_hours"]
    assert setup["count"] == len(activated) and Decimal(setup["max"]) < 24
    assert Decimal(setup["median"]) <= Decimal(setup["p90"]) <= Decimal(setup["max"])
    # billing lag: every time item billed counted once, over the windows
    items = [i for i in world.billing.records("invoice_items") if (i.get("source") or {}).get("type") == "time_entry"]
    assert sum(r["count"] for r in by_name["billing_lag_hours"]) == len(items) > 0
    assert all(Decimal(r["max"]) < 24 for r in by_name["billing_lag_hours"] if r["count"])
    assert last["unbilled_approved_time"]["value"] == {}  # settled: all approved T&M time is on an item
    assert last["revenue_schedule_mismatches"]["value"] == 0
    assert last["dlq_depth"]["value"] == len(world.store.dump().get("dlq", {})) == 0
    open_by_domain = Counter(k.split(":")[0] for k in world.store.dump().get("exceptions", {}))
    assert {d: v["open"] for d, v in last["exception_age_hours"]["domains"].items()} == {
        d: open_by_domain.get(d, 0) for d in ("finance", "pmo", "it")}
    trace = last["traceability_coverage_percent"]
    assert trace["value"] == "100.00" and trace["postings"] == trace["traceable"] > 0


def test_spreads_report_the_lower_median_and_nearest_rank_p90_and_only_a_count_when_empty():
    hour = 3_600_000_000
    assert spread([]) == {"count": 0}
    assert spread([h * hour for h in (5, 1, 4, 2, 3, 10, 6, 7, 8, 9)]) == {
        "count": 10, "median": "5.00", "p90": "9.00", "max": "10.00"}


def test_a_bad_reconcile_setting_is_refused_with_the_setting_and_the_fix():
    assert _config(None)["every_s"] == 86400
    with pytest.raises(ValueError, match="no setting 'every_hour'.*at_hour"):
        _config({"every_hour": 2})
    with pytest.raises(ValueError, match="reconcile.every_s must be a whole number above zero"):
        _config({"every_s": 0})
    with pytest.raises(ValueError, match="at_hour must be an hour from 0 to 23"):
        _config({"at_hour": 24})

"""Contract tests of the fake HRIS, through its HTTP-shaped API. The world starts 2026-01-05 08:00 UTC."""

from datetime import date
from decimal import Decimal

from fake_systems.firm_generator import FirmParams, generate_firm
from fake_systems.firm_model import CostCentre, LegalEntity, Role, RoleRate, TaxRegime, Worker
from fake_systems.hris import Hris
from simulator import HOUR, MINUTE, Fixed, RandomStreams
from simulator.faults import ChaosProfile, LinkRule, SystemFaults, Window
from tests.fake_systems.world import World

US = LegalEntity("LE01", "Meridian Advisory Inc.", "US", "USD", TaxRegime("US", "sales_tax", Decimal("0.00"), False))
GB = LegalEntity("LE02", "Meridian Advisory Ltd", "GB", "GBP", TaxRegime("GB", "vat", Decimal("0.20"), True))
ROLE = Role("R03", "senior consultant", 3, Decimal("0.72"), (RoleRate("USD", Decimal("80.00"), Decimal("185.00")),))
CENTRES = (CostCentre("CC001", "LE01", "Strategy", "US Strategy"), CostCentre("CC002", "LE01", "Technology", "US Technology"),
           CostCentre("CC005", "LE02", "Strategy", "GB Strategy"))
ADA = Worker("W000001", "Ada", "Lovelace", "R03", "LE01", "CC001", date(2025, 6, 1), Decimal("80.00"), "USD", Decimal("0.72"))
ALAN = Worker("W000002", "Alan", "Turing", "R03", "LE01", "CC001", date(2024, 3, 4), Decimal("90.00"), "USD", Decimal("0.72"))


def world(chaos=None):
    hris = Hris("hris")
    w = World(hris, chaos=chaos)
    hris.load_companies([US, GB])
    hris.load_job_profiles([ROLE])
    hris.load_cost_centres(CENTRES)
    hris.load_workers([ADA, ALAN])
    return w, hris


def at(w, day: date) -> int:
    return w.sim.calendar.us_at_date(day)


def test_workers_seeded_from_the_firm_page_through_with_a_total():
    firm = generate_firm(FirmParams(consultants=30), RandomStreams(3))
    hris = Hris("hris")
    w = World(hris)
    hris.load_firm(firm, hired_by=date(2026, 1, 5))
    expected = [x for x in firm.workers if x.hire_date <= date(2026, 1, 5)]
    assert len(expected) < len(firm.workers)  # the month's hires are not loaded yet

    async def script(call):
        seen, offset = [], 0
        while True:
            r = await call("GET", "/hr/v2/workers", query={"offset": str(offset), "limit": "7"})
            assert r.status == 200 and r.json["total"] == len(expected) and r.json["limit"] == 7
            seen += r.json["data"]
            offset += len(r.json["data"])
            if not r.json["hasMore"]:
                return seen

    seen = w.run(script)
    assert [x["employeeId"] for x in seen] == [x.id for x in expected]
    assert [(x["costRate"]["amount"], x["costRate"]["currency"]) for x in seen] == [
        (str(x.cost_rate), x.cost_currency) for x in expected]
    assert [x["costCenter"]["id"] for x in seen] == [x.cost_centre_id for x in expected]
    assert {x["workerStatus"] for x in seen} == {"Active"}
    assert seen[0]["workerRef"] == "WKR-00001"


def test_the_firms_hr_events_replay_through_the_people_actions():
    firm = generate_firm(FirmParams(consultants=30), RandomStreams(3))
    hris = Hris("hris")
    w = World(hris)
    hris.load_firm(firm, hired_by=date(2026, 1, 4))
    workers = {x.id: x for x in firm.workers}
    events = [e for m in firm.months for e in m.hr_events]
    assert sorted({e.kind for e in events}) == ["cost_rate_change", "hire", "termination"]

    async def script(call):
        for e in events:
            hris.apply_hr_event(e, workers.get(e.worker_id))
        out = []
        for e in events:
            r = await call("GET", f"/hr/v2/workers/{e.worker_id}/costRates", query={"asOf": e.effective_date.isoformat()})
            before = await call("GET", f"/hr/v2/workers/{e.worker_id}/costRates",
                                query={"asOf": date.fromordinal(e.effective_date.toordinal() - 1).isoformat()})
            worker = await call("GET", f"/hr/v2/workers/{e.worker_id}")
            out.append((e, (r.json.get("amount"), r.json.get("currency")), before.json.get("amount"), worker.json))
        return out

    for e, on, before, worker in w.run(script):
        if e.kind == "hire":
            assert (on, before) == ((str(e.new_cost_rate), e.currency), None)  # no rate before the hire
            assert worker["workerStatus"] == ("Pre-Hire" if e.effective_date > date(2026, 1, 5) else "Active")
        elif e.kind == "cost_rate_change":
            assert (on, before) == ((str(e.new_cost_rate), e.currency), str(e.old_cost_rate))
        else:
            assert worker["terminationDate"] == e.effective_date.isoformat()
    assert len(hris.effects()) == len(events)


def test_paging_parameters_are_validated():
    w, hris = world()

    async def script(call):
        for query, field in (({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"offset": "-1"}, "offset"),
                             ({"limit": "ten"}, "limit"), ({"updatedSince": "yesterday"}, "updatedSince"),
                             ({"updatedSince": "2026-01-05T08:00:00"}, "updatedSince")):
            r = await call("GET", "/hr/v2/workers", query=query)
            assert r.status == 400 and r.json["errorCode"] == "INVALID_PARAMETER" and r.json["invalidField"] == field
        past = await call("GET", "/hr/v2/workers", query={"offset": "5"})
        assert past.json == {"total": 2, "offset": 5, "limit": 20, "hasMore": False, "data": []}
        missing = await call("GET", "/hr/v2/workers/W999999")
        assert missing.status == 404 and missing.json["errorCode"] == "WORKER_NOT_FOUND"

    w.run(script)


def test_cost_rates_are_effective_dated_and_may_change_retroactively():
    w, hris = world()

    async def rate(call, on):
        r = await call("GET", "/hr/v2/workers/W000001/costRates", query={"asOf": on})
        return r.json.get("amount") if r.status == 200 else r.json["errorCode"]

    async def script(call):
        hris.change_cost_rate("W000001", "85.00", date(2026, 2, 1))  # a future rise
        assert [await rate(call, d) for d in ("2026-01-31", "2026-02-01")] == ["80.00", "85.00"]
        hris.change_cost_rate("W000001", Decimal("82.00"), date(2025, 12, 1))  # retroactive, entered later
        assert [await rate(call, d) for d in ("2025-11-30", "2025-12-15", "2026-02-02")] == ["80.00", "82.00", "85.00"]
        hris.change_cost_rate("W000001", "83.00", date(2025, 12, 1))  # corrects the same day: the later entry wins
        assert await rate(call, "2025-12-15") == "83.00"
        assert await rate(call, "2025-05-31") == "NO_EFFECTIVE_RATE"  # before the hire
        history = await call("GET", "/hr/v2/workers/W000001/costRates")
        assert [(e["effectiveDate"], e["amount"], e["entrySeq"]) for e in history.json["data"]] == [
            ("2025-06-01", "80.00", 1), ("2026-02-01", "85.00", 2), ("2025-12-01", "82.00", 3), ("2025-12-01", "83.00", 4)]
        today = await call("GET", "/hr/v2/workers/W000001")
        assert today.json["costRate"] == {"amount": "83.00", "currency": "USD", "effectiveDate": "2025-12-01"}
        later = await call("GET", "/hr/v2/workers/W000001", query={"asOf": "2026-03-01"})
        assert later.json["costRate"]["amount"] == "85.00"

    w.run(script)
    assert [e["detail"]["retroactive"] for e in hris.effects("worker.cost_rate_changed")] == [False, True, True]


def test_updated_since_finds_what_people_changed_and_status_follows_the_effective_dates():
    w, hris = world()

    async def script(call):
        await w.sim.kernel.run_until(1 * HOUR)
        hris.terminate("W000002", date(2026, 1, 20))
        hris.transfer_cost_centre("W000001", "CC002", date(2026, 1, 12))
        since = "2026-01-05T08:30:00+00:00"
        changed = await call("GET", "/hr/v2/workers", query={"updatedSince": since})
        assert [x["employeeId"] for x in changed.json["data"]] == ["W000001", "W000002"]
        assert changed.json["data"][0]["lastUpdated"] == "2026-01-05T09:00:00.000000+00:00"
        nothing = await call("GET", "/hr/v2/workers", query={"updatedSince": "2026-01-05T09:00:00.000001+00:00"})
        assert nothing.json["total"] == 0
        alan = await call("GET", "/hr/v2/workers/W000002")
        assert (alan.json["workerStatus"], alan.json["terminationDate"]) == ("Active", "2026-01-20")  # still working
        ada = await call("GET", "/hr/v2/workers/W000001")
        assert ada.json["costCenter"]["id"] == "CC001"  # the transfer takes effect on the 12th
        await w.sim.kernel.run_until(at(w, date(2026, 1, 21)))
        alan = await call("GET", "/hr/v2/workers/W000002")
        assert alan.json["workerStatus"] == "Terminated"
        ada = await call("GET", "/hr/v2/workers/W000001")
        assert ada.json["costCenter"] == {"id": "CC002", "name": "US Technology"}
        gone = await call("GET", "/hr/v2/workers", query={"status": "Terminated"})
        assert [x["employeeId"] for x in gone.json["data"]] == ["W000002"]
        tech = await call("GET", "/hr/v2/workers", query={"costCenter": "CC002"})
        assert [x["employeeId"] for x in tech.json["data"]] == ["W000001"]

    w.run(script)
    try:
        hris.transfer_cost_centre("W000001", "CC005", date(2026, 2, 1))
        raise AssertionError("a cross-company transfer was accepted")
    except ValueError as exc:
        assert "between companies" in str(exc)
    try:
        hris.terminate("W000002", date(2026, 1, 25))
        raise AssertionError("terminated twice")
    except ValueError as exc:
        assert "already terminated" in str(exc)


def test_a_hire_is_announced_by_webhook_and_listed_as_an_event():
    w, hris = world()
    sink = w.add_sink("core")

    async def script(call):
        sub = await call("POST", "/hr/v2/subscriptions", json={"endpoint": "core", "path": "/hooks/hris",
                                                               "eventTypes": ["worker.hired"]})
        assert sub.status == 201 and sub.json["eventTypes"] == ["worker.hired"]
        hired = hris.hire("Grace", "Hopper", "R03", "CC005", date(2026, 2, 2), "50.00")
        assert (hired["employeeId"], hired["company"], hired["workerStatus"]) == ("E000001", "LE02", "Pre-Hire")
        assert hired["costRate"] is None  # nothing in effect before the hire date
        hris.change_cost_rate("E000001", "52.00", date(2026, 2, 2))  # not subscribed: no webhook
        await w.sim.kernel.run_until(w.sim.now_us + MINUTE)
        events = await call("GET", "/hr/v2/events")
        assert [e["type"] for e in events.json["data"]] == ["worker.hired", "worker.cost_rate_changed"]
        rest = await call("GET", "/hr/v2/events", query={"after": events.json["data"][0]["id"]})
        assert [e["id"] for e in rest.json["data"]] == ["HREV-000002"]
        grace = await call("GET", "/hr/v2/workers/E000001/costRates", query={"asOf": "2026-02-02"})
        assert (grace.json["amount"], grace.json["currency"]) == ("52.00", "GBP")

    w.run(script)
    assert [(r["path"], r["json"]["type"], r["json"]["employeeId"]) for r in sink.received] == [
        ("/hooks/hris", "worker.hired", "E000001")]
    assert sink.received[0]["headers"]["x-hris-event-id"] == "HREV-000001"


def test_writes_are_validated_and_a_malformed_body_is_refused():
    w, hris = world()

    async def script(call):
        for body, field in (({"path": "/x"}, "endpoint"), ({"endpoint": "core", "path": "x"}, "path"),
                            ({"endpoint": "core", "path": "/x", "eventTypes": ["worker.promoted"]}, "eventTypes"),
                            ({"endpoint": "core", "path": "/x", "eventTypes": []}, "eventTypes")):
            r = await call("POST", "/hr/v2/subscriptions", json=body)
            assert r.status == 400 and r.json["invalidField"] == field and r.json["httpStatus"] == 400
        for junk in ([], "subscribe me", 7):
            r = await call("POST", "/hr/v2/subscriptions", json=junk)
            assert r.status == 400 and r.json["errorCode"] == "MALFORMED_REQUEST"
        assert (await call("DELETE", "/hr/v2/workers")).status == 405

    w.run(script)
    assert hris.webhooks.subscriptions() == []
    for bad in (lambda: hris.hire("A", "B", "R99", "CC001", date(2026, 1, 5), "1.00"),
                lambda: hris.change_cost_rate("W000001", "-1.00", date(2026, 1, 5)),
                lambda: hris.change_cost_rate("W000001", 81.5, date(2026, 1, 5)),
                lambda: hris.terminate("W000001", date(2025, 1, 1))):
        try:
            bad()
            raise AssertionError("accepted a bad people action")
        except (ValueError, TypeError):
            pass


def test_vendor_faults_take_the_hris_shape():
    limited = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), systems=(("hris", SystemFaults(rate_limit=2)),))
    w, _ = world(limited)

    async def script(call):
        statuses = [(await call("GET", "/hr/v2/jobProfiles")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        r = await call("GET", "/hr/v2/costCenters")
        assert r.json["errorCode"] == "TOO_MANY_REQUESTS" and int(r.header("retry-after")) >= 1

    w.run(script)
    down = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), windows=(Window("outage", 0, HOUR, target="hris"),))
    w, _ = world(down)

    async def outage(call):
        r = await call("GET", "/hr/v2/workers")
        assert r.status == 503 and r.json["errorCode"] == "SCHEDULED_MAINTENANCE"
        await w.sim.kernel.run_until(HOUR)
        assert (await call("GET", "/hr/v2/workers")).status == 200

    w.run(outage)


def test_workers_subscriptions_and_pending_webhooks_survive_a_restart():
    w, hris = world()
    sink = w.add_sink("core", statuses=[500])

    async def script(call):
        await call("POST", "/hr/v2/subscriptions", json={"endpoint": "core", "path": "/hooks/hris"})
        hris.terminate("W000001", date(2026, 1, 30))
        await w.sim.kernel.run_until(w.sim.now_us + 10 * 1_000_000)  # first attempt answered 500
        assert len(sink.received) == 1 and len(hris.webhooks.pending()) == 1
        w.sim.crash(hris)
        w.sim.restart(hris)
        await w.sim.kernel.run_until(w.sim.now_us + 2 * MINUTE)  # the retry is re-armed after the restart
        r = await call("GET", "/hr/v2/workers/W000001")
        assert r.json["terminationDate"] == "2026-01-30"

    w.run(script)
    assert [x["json"]["id"] for x in sink.received] == ["HREV-000001", "HREV-000001"]
    assert hris.webhooks.pending() == [] and len(hris.webhooks.subscriptions()) == 1

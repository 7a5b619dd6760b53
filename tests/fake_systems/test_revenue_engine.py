"""Contract tests of the fake revenue engine, through its HTTP-shaped API.

Every expected figure is worked by hand in the comment beside it. The world
starts on 2026-01-05, so the first open period is 2026-01.
"""

from datetime import date

from fake_systems.revenue_engine import RevenueEngine
from simulator import Fixed
from simulator.faults import ChaosProfile, LinkRule, SystemFaults
from tests.fake_systems.world import World

SUPPORT_AND_GO_LIVE = {
    "source_contract_id": "D00001", "source_version": 1, "currency_code": "USD", "transaction_price": "12000.00",
    "pobs": [
        {"pob_ref": "SUP", "rec_method": "ratable", "ssp_amount": "6000.00",
         "start_date": "2026-01-01", "end_date": "2026-03-31"},
        {"pob_ref": "GOLIVE", "rec_method": "point_in_time", "ssp_amount": "12000.00"},
    ],
}


def run(script, chaos=None, first_open=None):
    engine = RevenueEngine("revenue", first_open_period=first_open)
    w = World(engine, chaos=chaos)
    return w.run(lambda call: script(call, w, engine)), engine


def at(w, day: date) -> int:
    return w.sim.calendar.us_at_date(day)


def amounts(schedule: dict) -> list[tuple]:
    return [(ln["pob_ref"], ln["period"], ln["amount"], ln["moved_from"]) for ln in schedule["lines"]]


def contract(ref="D00009", version=1, price="1000.00", pobs=None):
    return {"source_contract_id": ref, "source_version": version, "currency_code": "USD", "transaction_price": price,
            "pobs": pobs or [{"pob_ref": "P1", "rec_method": "point_in_time", "ssp_amount": "1000.00"}]}


def event(ref, pob, kind, on, source="D00009", **extra):
    return {"event_ref": ref, "source_contract_id": source, "pob_ref": pob, "event_type": kind, "event_date": on, **extra}


# -- booking and allocation -----------------------------------------------------


def test_a_new_contract_is_allocated_by_ssp_and_its_ratable_pob_scheduled_by_day():
    async def script(call, w, engine):
        r = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        assert r.status == 201 and r.json["result"] == "CREATED"
        rc = r.json["contract"]
        # SSP 6,000 : 12,000 of a 12,000.00 price -> 4,000.00 and 8,000.00.
        assert [(p["pob_ref"], p["allocated_amount"]) for p in rc["pobs"]] == [("SUP", "4000.00"), ("GOLIVE", "8000.00")]
        s = await call("GET", f"/rc/contracts/{rc['rc_id']}/schedule")
        # 4,000.00 over 90 days: Jan 31 -> 1377.777.., Feb 28 -> 1244.444.., Mar 31 -> 1377.777..; floors sum to
        # 3999.98 and the two spare cents go to the largest remainders (.777 Jan, .777 Mar).
        assert amounts(s.json) == [("SUP", "2026-01", "1377.78", None), ("SUP", "2026-02", "1244.44", None),
                                   ("SUP", "2026-03", "1377.78", None)]
        assert s.json["total"] == "4000.00"
        feb = await call("GET", f"/rc/contracts/{rc['rc_id']}/schedule", query={"period": "2026-02"})
        assert amounts(feb.json) == [("SUP", "2026-02", "1244.44", None)]
        t = await call("GET", f"/rc/contracts/{rc['rc_id']}/totals")
        # As of 2026-01: recognised = January's 1377.78; deferred 12,000.00 - 1,377.78 = 10,622.22;
        # scheduled 4,000.00, so 8,000.00 (the go-live) is not scheduled yet.
        assert t.json["totals"] == {"allocated_amount": "12000.00", "scheduled_amount": "4000.00",
                                    "recognised_to_date": "1377.78", "in_closed_periods": "0.00",
                                    "deferred_amount": "10622.22", "unscheduled_amount": "8000.00"}
        assert t.json["allocation_ties"] is True
        found = await call("GET", "/rc/contracts", query={"source_contract_id": "D00001"})
        assert [c["rc_id"] for c in found.json["contracts"]] == [rc["rc_id"]]
        return rc["rc_id"]

    rc_id, engine = run(script)
    assert rc_id == "RC-000001"
    assert [e["id"] for e in engine.effects("rc.created")] == ["RC-000001"]


def test_versions_are_idempotent_and_an_older_version_never_regresses_the_contract():
    async def script(call, w, engine):
        first = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        rc_id = first.json["contract"]["rc_id"]
        again = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        assert again.status == 200 and again.json["result"] == "UNCHANGED"
        other = await call("POST", "/rc/contracts", json={**SUPPORT_AND_GO_LIVE, "transaction_price": "1.00"})
        assert other.status == 409 and other.json["errors"][0]["error_code"] == "VERSION_CONFLICT"
        # v2 restates the price while nothing is recognised: 9,000.00 -> SUP 3,000.00, GOLIVE 6,000.00.
        v2 = await call("POST", "/rc/contracts", json={**SUPPORT_AND_GO_LIVE, "source_version": 2,
                                                       "transaction_price": "9000.00"})
        assert v2.status == 200 and v2.json["result"] == "RESTATED"
        assert [p["allocated_amount"] for p in v2.json["contract"]["pobs"]] == ["3000.00", "6000.00"]
        stale = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        assert stale.status == 409
        assert stale.json["errors"][0]["error_code"] == "STALE_VERSION" and stale.json["current_version"] == 2
        s = await call("GET", f"/rc/contracts/{rc_id}/schedule")
        # 3,000.00 over 90 days: 1033.333.., 933.333.., 1033.333..; one spare cent, equal remainders -> January.
        assert amounts(s.json) == [("SUP", "2026-01", "1033.34", None), ("SUP", "2026-02", "933.33", None),
                                   ("SUP", "2026-03", "1033.33", None)]
        history = await call("GET", f"/rc/contracts/{rc_id}/schedule", query={"include_superseded": "true"})
        assert sum(ln["line_status"] == "SUPERSEDED" for ln in history.json["lines"]) == 3
        same_terms_v3 = await call("POST", "/rc/contracts", json={**SUPPORT_AND_GO_LIVE, "source_version": 3,
                                                                  "transaction_price": "9000.00"})
        assert same_terms_v3.json["result"] == "VERSION_ACCEPTED"
        await call("POST", "/rc/events", json=event("E1", "GOLIVE", "MILESTONE_ACCEPTED", "2026-01-20", "D00001"))
        v4 = await call("POST", "/rc/contracts", json={**SUPPORT_AND_GO_LIVE, "source_version": 4})
        assert v4.status == 422 and v4.json["errors"][0]["error_code"] == "MODIFICATION_REQUIRED"
        now = await call("GET", f"/rc/contracts/{rc_id}")
        assert now.json["contract"]["source_version"] == 3
        assert now.json["contract"]["transaction_price"] == "9000.00"

    run(script)


# -- fulfilment events ---------------------------------------------------------


def test_milestone_acceptance_recognises_the_allocation_once():
    async def script(call, w, engine):
        await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        accept = event("ME1", "GOLIVE", "MILESTONE_ACCEPTED", "2026-01-22", "D00001")
        r = await call("POST", "/rc/events", json=accept)
        assert r.status == 201
        assert [(ln["period"], ln["amount"]) for ln in r.json["lines"]] == [("2026-01", "8000.00")]
        replay = await call("POST", "/rc/events", json=accept)
        assert replay.status == 200 and replay.json["replayed"] is True
        assert replay.json["lines"] == r.json["lines"]
        reused = await call("POST", "/rc/events", json={**accept, "event_date": "2026-01-23"})
        assert reused.status == 409 and reused.json["errors"][0]["error_code"] == "EVENT_REF_REUSED"
        twice = await call("POST", "/rc/events", json={**accept, "event_ref": "ME2"})
        assert twice.status == 409 and twice.json["errors"][0]["error_code"] == "POB_ALREADY_SATISFIED"
        wrong = await call("POST", "/rc/events", json=event("ME3", "SUP", "MILESTONE_ACCEPTED", "2026-01-22", "D00001"))
        assert wrong.status == 422 and wrong.json["errors"][0]["error_code"] == "METHOD_MISMATCH"
        unknown = await call("POST", "/rc/events", json=event("ME4", "NOPE", "MILESTONE_ACCEPTED", "2026-01-22", "D00001"))
        assert unknown.status == 422 and unknown.json["errors"][0]["error_field"] == "pob_ref"
        nobody = await call("POST", "/rc/events", json=event("ME5", "GOLIVE", "MILESTONE_ACCEPTED", "2026-01-22", "D404"))
        assert nobody.status == 404

    _, engine = run(script)
    assert len(engine.effects("rev_event.applied")) == 1


def test_progress_reports_recognise_by_input_method_with_negative_catch_up_on_a_raised_estimate():
    build = [{"pob_ref": "BUILD", "rec_method": "input", "ssp_amount": "10000.00"}]

    async def script(call, w, engine):
        await call("POST", "/rc/contracts", json=contract(price="10000.00", pobs=build))
        r1 = await call("POST", "/rc/events", json=event("PR1", "BUILD", "PROGRESS_REPORTED", "2026-01-20",
                                                         incurred_to_date="30", estimate_at_completion="120"))
        # 30 / 120 = 25% of 10,000.00 = 2,500.00.
        assert [ln["amount"] for ln in r1.json["lines"]] == ["2500.00"]
        r2 = await call("POST", "/rc/events", json=event("PR2", "BUILD", "PROGRESS_REPORTED", "2026-02-15",
                                                         incurred_to_date="90", estimate_at_completion="150"))
        # 90 / 150 = 60% -> 6,000.00 to date, 3,500.00 in February.
        assert [(ln["period"], ln["amount"]) for ln in r2.json["lines"]] == [("2026-02", "3500.00")]
        old = await call("POST", "/rc/events", json=event("PR0", "BUILD", "PROGRESS_REPORTED", "2026-01-25",
                                                          incurred_to_date="40", estimate_at_completion="120"))
        assert old.status == 409 and old.json["errors"][0]["error_code"] == "STALE_PROGRESS"
        r3 = await call("POST", "/rc/events", json=event("PR3", "BUILD", "PROGRESS_REPORTED", "2026-02-27",
                                                         incurred_to_date="100", estimate_at_completion="250"))
        # 100 / 250 = 40% -> 4,000.00 to date: February gives back 2,000.00.
        assert [ln["amount"] for ln in r3.json["lines"]] == ["-2000.00"]
        s = await call("GET", "/rc/contracts/RC-000001/schedule")
        assert s.json["period_totals"] == {"2026-01": "2500.00", "2026-02": "1500.00"}
        bad = await call("POST", "/rc/events", json=event("PR4", "BUILD", "PROGRESS_REPORTED", "2026-02-28",
                                                          incurred_to_date="1", estimate_at_completion="0"))
        assert bad.status == 400 and bad.json["errors"][0]["error_field"] == "estimate_at_completion"

    run(script)


def test_approved_time_recognises_what_may_be_invoiced_rounded_per_entry():
    tm = [{"pob_ref": "TM", "rec_method": "t_and_m", "ssp_amount": "5000.00"}]

    async def script(call, w, engine):
        await call("POST", "/rc/contracts", json=contract(price="5000.00", pobs=tm))
        a = await call("POST", "/rc/events", json=event("TE1", "TM", "TIME_APPROVED", "2026-01-12",
                                                        hours="7.50", bill_rate="150.00"))
        # 7.5 h x 150.00 = 1,125.00.
        assert [(ln["period"], ln["amount"]) for ln in a.json["lines"]] == [("2026-01", "1125.00")]
        b = await call("POST", "/rc/events", json=event("TE2", "TM", "TIME_APPROVED", "2026-01-13",
                                                        hours="1.25", bill_rate="133.33"))
        # 1.25 x 133.33 = 166.6625 -> 166.66 (half-up at the cent).
        assert [ln["amount"] for ln in b.json["lines"]] == ["166.66"]
        c = await call("POST", "/rc/events", json=event("TE3", "TM", "TIME_APPROVED", "2026-01-12",
                                                        hours="-2.25", bill_rate="150.00"))
        # A correction's reversal: -2.25 x 150.00 = -337.50.
        assert [ln["amount"] for ln in c.json["lines"]] == ["-337.50"]
        t = await call("GET", "/rc/contracts/RC-000001/totals")
        # 1,125.00 + 166.66 - 337.50 = 954.16.
        assert t.json["totals"]["recognised_to_date"] == "954.16"
        bad = await call("POST", "/rc/events", json=event("TE4", "TM", "TIME_APPROVED", "2026-01-12",
                                                          hours="1", bill_rate="150.001"))
        assert bad.status == 400 and bad.json["errors"][0]["error_code"] == "INVALID_PRECISION"

    run(script)


# -- periods -------------------------------------------------------------------


def test_nothing_lands_in_a_closed_period_and_moved_amounts_say_where_they_came_from():
    async def script(call, w, engine):
        await call("POST", "/rc/contracts", json=contract())
        try:
            engine.close_period("2026-01")
            raise AssertionError("closed a period that has not ended")
        except ValueError as exc:
            assert "has not ended" in str(exc)
        await w.sim.kernel.run_until(at(w, date(2026, 2, 2)))
        try:
            engine.close_period("2026-02")
            raise AssertionError("closed a period out of order")
        except ValueError as exc:
            assert "first open is 2026-01" in str(exc)
        engine.close_period("2026-01")
        periods = await call("GET", "/rc/periods")
        assert periods.json["first_open_period"] == "2026-02"
        assert [(p["period_name"], p["period_status"]) for p in periods.json["periods"]] == [("2026-01", "CLOSED")]
        late = await call("POST", "/rc/events", json=event("ME1", "P1", "MILESTONE_ACCEPTED", "2026-01-28"))
        assert [(ln["period"], ln["amount"], ln["moved_from"]) for ln in late.json["lines"]] == [
            ("2026-02", "1000.00", "2026-01")]
        # A ratable contract booked late: January's share (1,000.00 over Jan 1..Feb 28, 59 days:
        # Jan 31 -> 525.423.., Feb 28 -> 474.576..; the spare cent to February's .576) lands in February.
        ratable = [{"pob_ref": "R1", "rec_method": "ratable", "ssp_amount": "1.00",
                    "start_date": "2026-01-01", "end_date": "2026-02-28"}]
        r = await call("POST", "/rc/contracts", json=contract("D00010", pobs=ratable))
        s = await call("GET", f"/rc/contracts/{r.json['contract']['rc_id']}/schedule")
        assert amounts(s.json) == [("R1", "2026-02", "525.42", "2026-01"), ("R1", "2026-02", "474.58", None)]
        assert s.json["period_totals"] == {"2026-02": "1000.00"}

    _, engine = run(script)
    assert [e["id"] for e in engine.effects("period.closed")] == ["2026-01"]


# -- modifications -------------------------------------------------------------

FOUR_MONTHS = {  # 120 days: 1,200.00 is 10.00 a day
    "source_contract_id": "D00020", "source_version": 1, "currency_code": "USD", "transaction_price": "3000.00",
    "pobs": [{"pob_ref": "A", "rec_method": "ratable", "ssp_amount": "1200.00",
              "start_date": "2026-01-01", "end_date": "2026-04-30"},
             {"pob_ref": "B", "rec_method": "point_in_time", "ssp_amount": "1800.00"}],
}


def test_a_prospective_modification_spreads_the_remaining_consideration_over_the_remaining_obligations():
    async def script(call, w, engine):
        rc_id = (await call("POST", "/rc/contracts", json=FOUR_MONTHS)).json["contract"]["rc_id"]
        await w.sim.kernel.run_until(at(w, date(2026, 2, 2)))
        engine.close_period("2026-01")
        mod = {"source_version": 2, "treatment": "prospective", "effective_date": "2026-02-01",
               "added_consideration": "600.00"}
        r = await call("POST", f"/rc/contracts/{rc_id}/modifications", json=mod)
        assert r.status == 201
        # Recognised: A 310.00 (January). Pool = A 890.00 + B 1,800.00 + 600.00 = 3,290.00, weighed by what is
        # left: A 1,200 x 890/1,200 = 890, B 1,800. A: 329,000c x 890/2,690 = 108,851.30c, B: 220,148.70c;
        # the spare cent goes to B's larger remainder -> A 1,088.51 (+310.00 = 1,398.51), B 2,201.49.
        assert r.json["modification"]["allocation_after"] == {"A": "1398.51", "B": "2201.49"}
        assert r.json["contract"]["transaction_price"] == "3600.00"
        assert r.json["modification"]["superseded_lines"] == 3
        s = await call("GET", f"/rc/contracts/{rc_id}/schedule", query={"pob_ref": "A"})
        # 1,088.51 over Feb 1..Apr 30 (89 days): 108,851c x 28/89 = 34,245.26, x 31/89 = 37,914.39,
        # x 30/89 = 36,691.35; the spare cent to March (.39).
        assert amounts(s.json) == [("A", "2026-01", "310.00", None), ("A", "2026-02", "342.45", None),
                                   ("A", "2026-03", "379.15", None), ("A", "2026-04", "366.91", None)]
        assert s.json["total"] == "1398.51"
        b = await call("POST", "/rc/events", json=event("ME1", "B", "MILESTONE_ACCEPTED", "2026-03-10", "D00020"))
        assert [ln["amount"] for ln in b.json["lines"]] == ["2201.49"]
        replay = await call("POST", f"/rc/contracts/{rc_id}/modifications", json=mod)
        assert replay.status == 200 and replay.json["replayed"] is True
        stale = await call("POST", f"/rc/contracts/{rc_id}/modifications", json={**mod, "source_version": 1})
        assert stale.status == 409 and stale.json["errors"][0]["error_code"] == "STALE_VERSION"
        t = await call("GET", f"/rc/contracts/{rc_id}/totals")
        assert t.json["totals"]["allocated_amount"] == t.json["totals"]["scheduled_amount"] == "3600.00"

    run(script)


def test_a_cumulative_catch_up_books_the_difference_in_the_first_open_period():
    pobs = [{"pob_ref": "X", "rec_method": "input", "ssp_amount": "8000.00"},
            {"pob_ref": "Y", "rec_method": "point_in_time", "ssp_amount": "2000.00"}]

    async def script(call, w, engine):
        rc_id = (await call("POST", "/rc/contracts", json=contract(price="10000.00", pobs=pobs))).json["contract"]["rc_id"]
        await call("POST", "/rc/events", json=event("PR1", "X", "PROGRESS_REPORTED", "2026-01-15",
                                                    incurred_to_date="25", estimate_at_completion="100"))
        await w.sim.kernel.run_until(at(w, date(2026, 2, 3)))
        engine.close_period("2026-01")
        mod = {"source_version": 2, "treatment": "cumulative_catch_up", "effective_date": "2026-01-20",
               "added_consideration": "1000.00"}
        r = await call("POST", f"/rc/contracts/{rc_id}/modifications", json=mod)
        assert r.status == 201
        # New price 11,000.00 by SSP 8:2 -> X 8,800.00, Y 2,200.00. X was 25% done: 8,800.00 x 25% = 2,200.00,
        # 200.00 more than the 2,000.00 recognised; January is closed, so it lands in February.
        assert r.json["modification"]["allocation_after"] == {"X": "8800.00", "Y": "2200.00"}
        assert r.json["modification"]["effective_period"] == "2026-02"
        assert [(a["pob_ref"], a["period"], a["amount"], a["moved_from"]) for a in r.json["modification"]["adjustments"]] == [
            ("X", "2026-02", "200.00", "2026-01")]
        p2 = await call("POST", "/rc/events", json=event("PR2", "X", "PROGRESS_REPORTED", "2026-02-20",
                                                         incurred_to_date="50", estimate_at_completion="100"))
        # 50% of 8,800.00 = 4,400.00 to date; 2,200.00 already -> 2,200.00.
        assert [ln["amount"] for ln in p2.json["lines"]] == ["2200.00"]

    run(script)


def test_a_separate_contract_modification_books_a_new_contract_and_leaves_the_old_one():
    tm = [{"pob_ref": "TM", "rec_method": "t_and_m", "ssp_amount": "5000.00"}]

    async def script(call, w, engine):
        rc_id = (await call("POST", "/rc/contracts", json=contract(price="5000.00", pobs=tm))).json["contract"]["rc_id"]
        extra = [{"pob_ref": "EXTRA", "rec_method": "point_in_time", "ssp_amount": "1500.00"}]
        nothing = await call("POST", f"/rc/contracts/{rc_id}/modifications", json={
            "source_version": 2, "treatment": "prospective", "effective_date": "2026-01-15",
            "added_consideration": "1500.00", "added_pobs": extra})
        assert nothing.status == 422 and nothing.json["errors"][0]["error_code"] == "NOTHING_TO_MODIFY"
        r = await call("POST", f"/rc/contracts/{rc_id}/modifications", json={
            "source_version": 2, "treatment": "separate_contract", "effective_date": "2026-01-15",
            "added_consideration": "1500.00", "added_pobs": extra})
        assert r.status == 201
        child = r.json["modification"]["new_rc_id"]
        assert child == "RC-000002" and r.json["contract"]["transaction_price"] == "5000.00"
        new = await call("GET", f"/rc/contracts/{child}")
        assert new.json["contract"]["parent_rc_id"] == rc_id
        assert [(p["pob_ref"], p["allocated_amount"]) for p in new.json["contract"]["pobs"]] == [("EXTRA", "1500.00")]
        accepted = await call("POST", "/rc/events", json=event("ME1", "EXTRA", "MILESTONE_ACCEPTED", "2026-01-30"))
        assert accepted.json["rc_id"] == child and accepted.json["lines"][0]["amount"] == "1500.00"
        clash = await call("POST", f"/rc/contracts/{rc_id}/modifications", json={
            "source_version": 3, "treatment": "separate_contract", "effective_date": "2026-01-15",
            "added_consideration": "1.00", "added_pobs": extra})
        assert clash.status == 400 and clash.json["errors"][0]["error_code"] == "DUPLICATE_POB"
        bad = await call("POST", f"/rc/contracts/{rc_id}/modifications", json={
            "source_version": 3, "treatment": "rewrite_history", "effective_date": "2026-01-15"})
        assert bad.status == 400 and bad.json["errors"][0]["error_field"] == "treatment"

    run(script)


# -- validation, faults, restart -----------------------------------------------


def test_writes_are_validated_with_the_field_named():
    async def script(call, w, engine):
        cases = [
            ({**SUPPORT_AND_GO_LIVE, "transaction_price": "12000.505"}, "transaction_price"),
            ({**SUPPORT_AND_GO_LIVE, "transaction_price": "-1.00"}, "transaction_price"),
            ({**SUPPORT_AND_GO_LIVE, "currency_code": "XXX"}, "currency_code"),
            ({**SUPPORT_AND_GO_LIVE, "source_version": "1"}, "source_version"),
            (contract(pobs=[{"pob_ref": "R", "rec_method": "ratable", "ssp_amount": "1.00"}]), "start_date"),
            (contract(pobs=[{"pob_ref": "R", "rec_method": "when_paid", "ssp_amount": "1.00"}]), "pobs[0].rec_method"),
            (contract(pobs=[{"pob_ref": "R", "rec_method": "input", "ssp_amount": "0.00"}]), "pobs"),
            ({k: v for k, v in SUPPORT_AND_GO_LIVE.items() if k != "source_contract_id"}, "source_contract_id"),
        ]
        for body, field in cases:
            r = await call("POST", "/rc/contracts", json=body)
            assert r.status == 400, (field, r.json)
            assert r.json["status"] == "ERROR" and r.json["errors"][0]["error_field"] == field
        for junk in ([1, 2], "contract", None):
            r = await call("POST", "/rc/contracts", json=junk)
            assert r.status == 400 and r.json["errors"][0]["error_code"] == "MALFORMED_REQUEST"
        assert (await call("GET", "/rc/nowhere")).status == 404
        assert (await call("DELETE", "/rc/contracts")).status == 405
        assert (await call("GET", "/rc/contracts/RC-999999")).json["errors"][0]["error_code"] == "RC_NOT_FOUND"

    _, engine = run(script)
    assert engine.records("rev_contracts") == [] and engine.effects() == []


def test_vendor_faults_take_the_engines_own_shape():
    limited = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), systems=(("revenue", SystemFaults(rate_limit=2)),))

    async def script(call, w, engine):
        statuses = [(await call("GET", "/rc/periods")).status for _ in range(2)]
        third = await call("GET", "/rc/periods")
        assert statuses == [200, 200] and third.status == 429
        assert third.json["errors"][0]["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert int(third.header("retry-after")) >= 1

    run(script, chaos=limited)

    locked = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),),
                          systems=(("revenue", SystemFaults(conflict="100%")),))

    async def write(call, w, engine):
        r = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        assert r.status == 409 and r.json["errors"][0]["error_code"] == "RC_LOCKED"
        assert (await call("GET", "/rc/periods")).status == 200  # reads are not locked

    _, engine = run(write, chaos=locked)
    assert engine.records("rev_contracts") == []


def test_contracts_and_closed_periods_survive_a_restart():
    async def script(call, w, engine):
        await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        await w.sim.kernel.run_until(at(w, date(2026, 2, 2)))
        engine.close_period("2026-01")
        w.sim.crash(engine)
        w.sim.restart(engine)
        again = await call("POST", "/rc/contracts", json=SUPPORT_AND_GO_LIVE)
        assert again.json["result"] == "UNCHANGED"
        periods = await call("GET", "/rc/periods")
        assert periods.json["first_open_period"] == "2026-02"
        t = await call("GET", "/rc/contracts/RC-000001/totals")
        # January closed: 1,377.78 sits in a closed period; recognised to date now includes February's 1,244.44.
        assert t.json["totals"]["in_closed_periods"] == "1377.78"
        assert t.json["totals"]["recognised_to_date"] == "2622.22"

    run(script)

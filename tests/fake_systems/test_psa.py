"""Contract tests of the PSA fake, through its HTTP-shaped interface.

Each test builds a small World around the fake, drives it as the sync core
would (and, where the PSA's users act, through the people actions), and
checks the answers and the ground truth (records, effects, the change feed).
Expected amounts are worked out by hand in the comments, not by the fake's
own helpers.
"""

from __future__ import annotations

from collections import Counter
import pytest
import trio

from fake_systems.firm_generator import FirmParams, generate_firm
from fake_systems.firm_model import APPROVED, COMPLETED, RECALLED_CORRECTED, REJECTED
from fake_systems.psa import Psa
from fake_systems.vendor import VendorError
from simulator import DAY, HOUR, MILLISECOND, MINUTE, SECOND, ConnectionRefused, Fixed, RequestTimeout
from simulator.faults import ChaosProfile, LinkRule, SystemFaults, Window
from simulator.random_streams import RandomStreams
from tests.fake_systems.world import World

PROJECT = {"title": "Acme ERP rollout", "client_name": "Acme Ltd", "currency": "USD",
           "billing_rule": "time_and_materials", "legal_entity_code": "LE01", "opportunity_ref": "OPP-1",
           "external_reference": "deal-1"}
TODAY = "2026-01-05"  # the PSA's date at the world's epoch (UTC, no skew)


def world(**faults) -> tuple[Psa, World]:
    psa = Psa("psa")
    chaos = None
    if faults:
        chaos = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), systems=(("psa", SystemFaults(**faults)),))
    return psa, World(psa, chaos=chaos)


async def wait(w: World, us: int) -> None:
    await w.sim.kernel.run_until(w.sim.now_us + us)


def code(response) -> str:
    return response.json["errors"][0]["code"]


def field(response) -> str | None:
    return response.json["errors"][0]["field"]


async def staffed(call) -> dict:
    """An active T&M project with a task, and a resource assigned to it at
    120.00 USD an hour, costing 60.00 USD an hour from 2025-01-01."""
    role = (await call("POST", "/roles", json={"name": "consultant"})).json
    resource = (await call("POST", "/resources", json={
        "first_name": "Ada", "last_name": "Byron", "role_id": role["id"], "external_reference": "W1",
        "cost_rate": {"rate": "60.00", "currency": "USD", "effective_from": "2025-01-01"}})).json
    project = (await call("POST", "/projects", json=PROJECT)).json
    assert (await call("POST", f"/projects/{project['id']}/activate")).status == 200
    task = (await call("POST", "/tasks", json={"project_id": project["id"], "title": "Build"})).json
    r = await call("POST", "/assignments", json={"resource_id": resource["id"], "project_id": project["id"],
                                                 "allocation_percent": "50", "bill_rate": "120.00"})
    assert r.status == 201, r.json
    return {"role": role["id"], "resource": resource["id"], "project": project["id"], "task": task["id"],
            "assignment": r.json["id"]}


async def all_changes(call, since="0") -> dict[int, dict]:
    """Every visible change since `since`, all pages, duplicates folded by id."""
    out, page = {}, 1
    while True:
        r = await call("GET", "/changes", query={"since": since, "page": str(page), "per_page": "50"})
        assert r.status == 200, r.json
        out.update({c["id"]: c for c in r.json["changes"]})
        if not r.json["more"]:
            return out
        page += 1


# ---- projects: create, query, validation


def test_create_answers_201_with_a_draft_project_an_etag_and_an_effect():
    psa, w = world()

    async def script(call):
        r = await call("POST", "/projects", json=PROJECT, headers={"x-correlation-id": "c-1"})
        assert r.status == 201
        assert r.json["status"] == "draft" and r.json["title"] == "Acme ERP rollout"
        assert r.json["external_reference"] == "deal-1" and r.json["lock_version"] == 1
        assert r.header("etag") == f'W/"{r.json["id"]}.1"'
        assert r.header("location") == f"/projects/{r.json['id']}"
        got = await call("GET", f"/projects/{r.json['id']}")
        assert got.status == 200 and got.json == r.json

    w.run(script)
    [effect] = psa.effects("project.created")
    assert effect["request"]["correlation_id"] == "c-1" and effect["table"] == "projects"


def test_a_retried_create_makes_a_duplicate_and_the_lookup_finds_both():
    psa, w = world()

    async def script(call):
        first = await call("POST", "/projects", json=PROJECT)
        again = await call("POST", "/projects", json=PROJECT)
        assert first.status == again.status == 201
        assert first.json["id"] != again.json["id"]
        found = await call("GET", "/projects", query={"external_reference": "deal-1"})
        assert found.json["count"] == 2
        assert [p["id"] for p in found.json["results"]] == [first.json["id"], again.json["id"]]
        none = await call("GET", "/projects", query={"external_reference": "deal-2"})
        assert none.status == 200 and none.json["count"] == 0 and none.json["results"] == []

    w.run(script)
    assert len(psa.records("projects")) == 2
    assert len(psa.effects("project.created")) == 2


def test_lists_page_and_refuse_unknown_filters():
    psa, w = world()

    async def script(call):
        for n in range(5):
            await call("POST", "/projects", json={**PROJECT, "external_reference": f"deal-{n}"})
        p2 = await call("GET", "/projects", query={"status": "draft", "per_page": "2", "page": "2"})
        assert p2.json["count"] == 5 and p2.json["more"] is True
        assert [p["external_reference"] for p in p2.json["results"]] == ["deal-2", "deal-3"]
        last = await call("GET", "/projects", query={"per_page": "2", "page": "3"})
        assert len(last.json["results"]) == 1 and last.json["more"] is False
        bad = await call("GET", "/projects", query={"colour": "red"})
        assert bad.status == 400 and code(bad) == "invalid_parameter" and field(bad) == "colour"
        bad_page = await call("GET", "/projects", query={"page": "0"})
        assert bad_page.status == 400 and field(bad_page) == "page"

    w.run(script)


@pytest.mark.parametrize("body", [["a", "list"], "text", 7, None])
def test_a_body_that_is_not_a_json_object_is_a_400_and_changes_nothing(body):
    psa, w = world()

    async def script(call):
        r = await call("POST", "/projects", json=body)
        assert r.status == 400
        [err] = r.json["errors"]
        assert err["type"] == "bad_request" and err["code"] == "malformed_request" and "JSON object" in err["message"]

    w.run(script)
    assert psa.records("projects") == [] and psa.effects() == []


@pytest.mark.parametrize("change, fld, error_code", [
    ({"title": ""}, "title", "blank"),
    ({"currency": "usd"}, "currency", "invalid_currency"),
    ({"billing_rule": "hourly"}, "billing_rule", "inclusion"),
    ({"status": "active"}, "status", "read_only"),
    ({"colour": "red"}, "colour", "unknown_attribute"),
    ({"start_date": "2026-02-01", "due_date": "2026-01-31"}, "due_date", "before_start"),
    ({"start_date": "01/02/2026"}, "start_date", "invalid_date"),
])
def test_a_bad_field_is_a_422_naming_it(change, fld, error_code):
    psa, w = world()

    async def script(call):
        r = await call("POST", "/projects", json={**PROJECT, **change})
        assert r.status == 422
        [err] = r.json["errors"]
        assert (err["type"], err["field"], err["code"]) == ("validation", fld, error_code)
        assert err["message"]

    w.run(script)
    assert psa.records("projects") == []


def test_unknown_paths_and_methods_answer_in_the_psa_shape():
    psa, w = world()

    async def script(call):
        r = await call("GET", "/projects/999")
        assert r.status == 404 and r.json["errors"][0]["type"] == "not_found"
        r = await call("GET", "/invoices")
        assert r.status == 404 and code(r) == "not_found"
        r = await call("DELETE", "/projects/1")
        assert r.status == 405 and code(r) == "method_not_allowed"

    w.run(script)


# ---- projects: activation, optimistic concurrency


def test_activation_needs_billing_rule_and_legal_entity_and_happens_once():
    psa, w = world()

    async def script(call):
        draft = (await call("POST", "/projects", json={"title": "T", "client_name": "C", "currency": "EUR"})).json
        pid = draft["id"]
        r = await call("POST", f"/projects/{pid}/activate")
        assert r.status == 422 and (field(r), code(r)) == ("billing_rule", "activation_incomplete")
        await call("PATCH", f"/projects/{pid}", json={"billing_rule": "fixed_fee"})
        r = await call("POST", f"/projects/{pid}/activate")
        assert (field(r), code(r)) == ("legal_entity_code", "activation_incomplete")
        await call("PATCH", f"/projects/{pid}", json={"legal_entity_code": "LE02"})
        r = await call("POST", f"/projects/{pid}/activate")
        assert r.status == 200 and r.json["status"] == "active" and r.json["activated_on"] == TODAY
        again = await call("POST", f"/projects/{pid}/activate")
        assert again.status == 422 and code(again) == "invalid_transition"
        locked = await call("PATCH", f"/projects/{pid}", json={"currency": "USD"})
        assert locked.status == 422 and code(locked) == "locked_after_activation"
        cleared = await call("PATCH", f"/projects/{pid}", json={"billing_rule": None})
        assert cleared.status == 422 and (field(cleared), code(cleared)) == ("billing_rule", "blank")
        closed = await call("POST", f"/projects/{pid}/close")
        assert closed.json["status"] == "closed" and closed.json["closed_on"] == TODAY
        r = await call("PATCH", f"/projects/{pid}", json={"title": "renamed"})
        assert r.status == 422 and code(r) == "project_closed"
        r = await call("PATCH", f"/projects/{pid}", json={"external_reference": "x-9"})
        assert r.status == 200 and r.json["external_reference"] == "x-9"

    w.run(script)
    assert [e["kind"] for e in psa.effects() if e["kind"] in ("project.activated", "project.closed")] == [
        "project.activated", "project.closed"]


def test_a_stale_if_match_is_412_and_changes_nothing():
    psa, w = world()

    async def script(call):
        created = await call("POST", "/projects", json=PROJECT)
        pid, old = created.json["id"], created.header("etag")
        r = await call("PATCH", f"/projects/{pid}", json={"title": "v2"}, headers={"if-match": old})
        assert r.status == 200 and r.json["lock_version"] == 2
        assert r.header("etag") != old
        stale = await call("PATCH", f"/projects/{pid}", json={"title": "v3"}, headers={"if-match": old})
        assert stale.status == 412
        assert stale.json["errors"][0]["type"] == "precondition" and code(stale) == "precondition_failed"
        act = await call("POST", f"/projects/{pid}/activate", headers={"if-match": old})
        assert act.status == 412
        star = await call("PATCH", f"/projects/{pid}", json={"title": "v4"}, headers={"if-match": "*"})
        assert star.status == 200 and star.json["title"] == "v4"
        bare = await call("PATCH", f"/projects/{pid}", json={"title": "v5"})
        assert bare.status == 200 and bare.json["lock_version"] == 4

    w.run(script)
    [project] = psa.records("projects")
    assert project["title"] == "v5" and project["status"] == "draft"
    assert len(psa.effects("project.updated")) == 3


def test_an_update_that_changes_nothing_keeps_the_etag_and_records_no_effect():
    psa, w = world()

    async def script(call):
        created = await call("POST", "/projects", json=PROJECT)
        same = await call("PATCH", f"/projects/{created.json['id']}", json={"title": PROJECT["title"]})
        assert same.status == 200 and same.header("etag") == created.header("etag")

    w.run(script)
    assert psa.effects("project.updated") == []


# ---- tasks


def test_tasks_form_a_wbs_with_codes_under_their_parents():
    psa, w = world()

    async def script(call):
        pid = (await call("POST", "/projects", json=PROJECT)).json["id"]
        other = (await call("POST", "/projects", json=PROJECT)).json["id"]
        one = (await call("POST", "/tasks", json={"project_id": pid, "title": "Discovery"})).json
        two = (await call("POST", "/tasks", json={"project_id": pid, "title": "Build", "billable": False})).json
        child = (await call("POST", "/tasks", json={"project_id": pid, "title": "API", "parent_id": two["id"]})).json
        chosen = (await call("POST", "/tasks", json={"project_id": pid, "title": "UI", "parent_id": two["id"],
                                                     "wbs_code": "2.5"})).json
        assert [one["wbs_code"], two["wbs_code"], child["wbs_code"], chosen["wbs_code"]] == ["1", "2", "2.1", "2.5"]
        assert one["billable"] is True and two["billable"] is False
        nxt = (await call("POST", "/tasks", json={"project_id": pid, "title": "Docs", "parent_id": two["id"]})).json
        assert nxt["wbs_code"] == "2.6"
        taken = await call("POST", "/tasks", json={"project_id": pid, "title": "x", "wbs_code": "1"})
        assert taken.status == 422 and code(taken) == "taken"
        wrong = await call("POST", "/tasks", json={"project_id": pid, "title": "x", "parent_id": two["id"], "wbs_code": "3.1"})
        assert wrong.status == 422 and code(wrong) == "invalid_wbs_code"
        foreign = await call("POST", "/tasks", json={"project_id": other, "title": "x", "parent_id": two["id"]})
        assert foreign.status == 422 and (field(foreign), code(foreign)) == ("parent_id", "invalid_reference")
        missing = await call("POST", "/tasks", json={"project_id": "42", "title": "x"})
        assert missing.status == 422 and (field(missing), code(missing)) == ("project_id", "invalid_reference")
        under = await call("GET", "/tasks", query={"project_id": pid, "parent_id": two["id"]})
        assert [t["wbs_code"] for t in under.json["results"]] == ["2.1", "2.5", "2.6"]
        r = await call("PATCH", f"/tasks/{child['id']}", json={"state": "done", "wbs_code": "9"})
        assert r.status == 422 and code(r) == "read_only"
        r = await call("PATCH", f"/tasks/{child['id']}", json={"state": "done"})
        assert r.status == 200 and r.json["state"] == "done"

    w.run(script)
    assert len(psa.effects("task.created")) == 5 and len(psa.effects("task.updated")) == 1


# ---- resources, rates, assignments


def test_rates_are_effective_dated_upserts_and_time_is_costed_at_the_rate_in_force():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        rid = ids["resource"]
        r = await call("PUT", f"/resources/{rid}/cost_rates/2026-01-07", json={"rate": "70.00", "currency": "USD"})
        assert r.status == 201
        assert [(x["effective_from"], x["rate"]) for x in r.json["cost_rates"]] == [
            ("2025-01-01", "60.00"), ("2026-01-07", "70.00")]
        same = await call("PUT", f"/resources/{rid}/cost_rates/2026-01-07", json={"rate": "70.00", "currency": "USD"})
        assert same.status == 200 and same.header("etag") == r.header("etag")
        changed = await call("PUT", f"/resources/{rid}/cost_rates/2026-01-07", json={"rate": "66.67", "currency": "USD"})
        assert changed.status == 200 and [x["rate"] for x in changed.json["cost_rates"]] == ["60.00", "66.67"]
        bad = await call("PUT", f"/resources/{rid}/cost_rates/2026-13-01", json={"rate": "1", "currency": "USD"})
        assert bad.status == 422 and code(bad) == "invalid_date"
        neg = await call("PUT", f"/resources/{rid}/cost_rates/2026-02-01", json={"rate": "-1", "currency": "USD"})
        assert neg.status == 422 and code(neg) == "invalid_rate"
        eur = await call("PUT", f"/resources/{rid}/bill_rates/2026-01-01", json={"rate": "99.00", "currency": "EUR"})
        assert eur.status == 201
        assert eur.json["bill_rates"] == [{"effective_from": "2026-01-01", "rate": "99.00", "currency": "EUR"}]
        before = psa.log_time(rid, ids["project"], "2026-01-06", "7.25", task_id=ids["task"])
        after = psa.log_time(rid, ids["project"], "2026-01-07", "7.25", task_id=ids["task"])
        # 7.25 h x 60.00 = 435.00; x 66.67 = 483.3575 -> 483.36; billed 7.25 x 120.00 = 870.00
        assert (before["cost_rate"], before["cost_amount"]) == ("60.00", "435.00")
        assert (after["cost_rate"], after["cost_amount"]) == ("66.67", "483.36")
        assert (after["bill_rate"], after["bill_amount"], after["bill_currency"]) == ("120.00", "870.00", "USD")

    w.run(script)
    assert len(psa.effects("resource.cost_rate_set")) == 2 and len(psa.effects("resource.bill_rate_set")) == 1


def test_without_an_assignment_rate_time_is_billed_at_the_resource_rate_rounded_half_up():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        await call("PATCH", f"/assignments/{ids['assignment']}", json={"bill_rate": None})
        await call("PUT", f"/resources/{ids['resource']}/bill_rates/2025-06-01", json={"rate": "10.10", "currency": "USD"})
        entry = psa.log_time(ids["resource"], ids["project"], TODAY, "0.25", task_id=ids["task"])
        # 0.25 x 10.10 = 2.525 -> 2.53 half-up (2.52 would be banker's rounding)
        assert entry["bill_amount"] == "2.53"

    w.run(script)


def test_a_terminated_resource_books_no_time_after_leaving_and_terminates_once():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        rid = ids["resource"]
        r = await call("POST", f"/resources/{rid}/terminate", json={"terminated_on": "2026-01-06"})
        assert r.status == 200 and (r.json["status"], r.json["terminated_on"]) == ("terminated", "2026-01-06")
        again = await call("POST", f"/resources/{rid}/terminate", json={"terminated_on": "2026-01-06"})
        assert again.status == 422 and code(again) == "already_terminated"
        assert psa.log_time(rid, ids["project"], "2026-01-06", "8", task_id=ids["task"])["hours"] == "8.00"
        with pytest.raises(VendorError) as late:
            psa.log_time(rid, ids["project"], "2026-01-07", "8", task_id=ids["task"])
        assert (late.value.status, late.value.code) == (422, "resource_terminated")
        r = await call("POST", "/assignments",
                       json={"resource_id": rid, "project_id": ids["project"], "allocation_percent": "10"})
        assert r.status == 422 and code(r) == "resource_terminated"
        found = await call("GET", "/resources", query={"status": "terminated", "external_reference": "W1"})
        assert [x["id"] for x in found.json["results"]] == [rid]

    w.run(script)
    assert len(psa.effects("resource.terminated")) == 1


def test_assignments_validate_allocation_and_time_needs_one():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        other = (await call("POST", "/resources", json={"first_name": "Bo", "last_name": "Li"})).json["id"]
        for pct in ("0", "100.5", "12.345", "ten"):
            r = await call("POST", "/assignments",
                           json={"resource_id": other, "project_id": ids["project"], "allocation_percent": pct})
            assert r.status == 422 and field(r) == "allocation_percent", pct
        with pytest.raises(VendorError) as unassigned:
            psa.log_time(other, ids["project"], TODAY, "1", task_id=ids["task"])
        assert unassigned.value.code == "not_assigned"
        r = await call("POST", "/assignments", json={"resource_id": other, "project_id": ids["project"],
                                                     "allocation_percent": "25", "start_date": "2026-01-06"})
        assert r.status == 201 and r.json["currency"] == "USD" and r.json["allocation_percent"] == "25.00"
        with pytest.raises(VendorError):
            psa.log_time(other, ids["project"], TODAY, "1")  # the day before the assignment starts
        assert psa.log_time(other, ids["project"], "2026-01-06", "1")["assignment_id"] == r.json["id"]
        found = await call("GET", "/assignments", query={"project_id": ids["project"]})
        assert found.json["count"] == 2

    w.run(script)


# ---- time entries


def test_time_goes_draft_submitted_approved_and_the_core_reads_it():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        entry = psa.log_time(ids["resource"], ids["project"], TODAY, "7.5", task_id=ids["task"], notes="design")
        assert (entry["status"], entry["version"], entry["billable"]) == ("draft", 1, True)
        assert psa.submit_time_entry(entry["id"])["status"] == "submitted"
        approved = psa.approve_time_entry(entry["id"], approver="pm@firm")
        assert approved["status"] == "approved" and approved["approved_by"] == "pm@firm"
        r = await call("GET", f"/time_entries/{entry['id']}")
        assert r.status == 200 and r.json["status"] == "approved"
        assert (r.json["hours"], r.json["bill_amount"], r.json["cost_amount"]) == ("7.50", "900.00", "450.00")
        q = await call("GET", "/time_entries", query={"project_id": ids["project"], "status": "approved",
                                                      "date_from": TODAY, "date_to": TODAY})
        assert [x["id"] for x in q.json["results"]] == [entry["id"]]
        out = await call("GET", "/time_entries", query={"date_from": "2026-01-06"})
        assert out.json["count"] == 0
        bad = await call("GET", "/time_entries", query={"date_to": "soon"})
        assert bad.status == 400 and field(bad) == "date_to"

    w.run(script)
    kinds = [e["kind"] for e in psa.effects() if e["table"] == "time_entries"]
    assert kinds == ["time_entry.logged", "time_entry.submitted", "time_entry.approved"]
    assert all("request" not in e for e in psa.effects() if e["table"] == "time_entries")


def test_time_entry_rules_refuse_bad_hours_days_and_transitions():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)

        def log(hours, day=TODAY):
            return psa.log_time(ids["resource"], ids["project"], day, hours, task_id=ids["task"])

        for hours in ("0", "7.3", "24.25", "-1", 7.5):
            with pytest.raises(VendorError) as bad:
                log(hours)
            assert bad.value.status == 422 and bad.value.field == "hours", hours
        log("16")
        with pytest.raises(VendorError) as full:
            log("8.25")
        assert full.value.code == "daily_limit_exceeded"
        entry = log("8")
        with pytest.raises(VendorError) as early:
            psa.approve_time_entry(entry["id"])
        assert early.value.code == "invalid_transition"
        draft = (await call("POST", "/projects", json=PROJECT)).json["id"]
        with pytest.raises(VendorError) as inactive:
            psa.log_time(ids["resource"], draft, TODAY, "1")
        assert inactive.value.code == "project_not_active"

    w.run(script)


def test_a_rejected_entry_is_edited_and_submitted_again():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        entry = psa.log_time(ids["resource"], ids["project"], TODAY, "4", task_id=ids["task"])
        psa.submit_time_entry(entry["id"])
        rejected = psa.reject_time_entry(entry["id"], "wrong task")
        assert (rejected["status"], rejected["rejection_reason"]) == ("rejected", "wrong task")
        edited = psa.edit_time_entry(entry["id"], hours="3.75", work_date="2026-01-06")
        assert (edited["hours"], edited["date"], edited["bill_amount"]) == ("3.75", "2026-01-06", "450.00")
        assert psa.submit_time_entry(entry["id"])["rejection_reason"] is None
        assert psa.approve_time_entry(entry["id"])["version"] == 1
        with pytest.raises(VendorError) as locked:
            psa.edit_time_entry(entry["id"], hours="1")
        assert locked.value.code == "not_editable"

    w.run(script)


def test_recalling_an_approved_entry_makes_a_new_version_and_keeps_the_invoiced_one():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        eid = psa.log_time(ids["resource"], ids["project"], TODAY, "8", task_id=ids["task"])["id"]
        psa.submit_time_entry(eid)
        psa.approve_time_entry(eid)
        r = await call("PATCH", f"/time_entries/{eid}",
                       json={"billing_status": "invoiced", "invoice_reference": "INV-7", "version": 1})
        assert r.status == 200 and r.json["billing_status"] == "invoiced"
        recalled = psa.recall_time_entry(eid)
        assert (recalled["status"], recalled["version"], recalled["billing_status"], recalled["invoice_reference"]) == (
            "draft", 2, "unbilled", None)
        psa.edit_time_entry(eid, hours="6")
        psa.submit_time_entry(eid)
        psa.approve_time_entry(eid)
        stale = await call("PATCH", f"/time_entries/{eid}",
                           json={"billing_status": "invoiced", "invoice_reference": "INV-8", "version": 1})
        assert stale.status == 409 and (code(stale), field(stale)) == ("stale_version", "version")
        v = await call("GET", f"/time_entries/{eid}/versions")
        assert v.json["current_version"] == 2
        old, new = v.json["versions"]
        assert (old["version"], old["hours"], old["status"], old["billing_status"], old["invoice_reference"], old["ended"]) == (
            1, "8.00", "approved", "invoiced", "INV-7", "recalled")
        assert (new["version"], new["hours"], new["status"], new["bill_amount"], new["ended"]) == (
            2, "6.00", "approved", "720.00", None)  # 6 x 120.00

    w.run(script)
    assert [e["detail"]["status_before"] for e in psa.effects("time_entry.recalled")] == ["approved"]


def test_correcting_after_approval_makes_a_new_version_awaiting_approval():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        eid = psa.log_time(ids["resource"], ids["project"], TODAY, "8", task_id=ids["task"])["id"]
        with pytest.raises(VendorError) as draft:
            psa.correct_time_entry(eid, "6")
        assert draft.value.code == "invalid_transition"
        psa.submit_time_entry(eid)
        psa.approve_time_entry(eid)
        with pytest.raises(VendorError) as same:
            psa.correct_time_entry(eid, "8.00")
        assert same.value.code == "unchanged"
        corrected = psa.correct_time_entry(eid, "5.5", notes="double-booked")
        assert (corrected["status"], corrected["version"], corrected["hours"]) == ("submitted", 2, "5.50")
        assert corrected["bill_amount"] == "660.00"  # 5.5 x 120.00
        v = (await call("GET", f"/time_entries/{eid}/versions")).json
        assert [(x["version"], x["hours"], x["ended"]) for x in v["versions"]] == [(1, "8.00", "corrected"), (2, "5.50", None)]
        assert psa.approve_time_entry(eid)["version"] == 2

    w.run(script)
    [effect] = psa.effects("time_entry.corrected")
    assert effect["detail"] == {"from_version": 1, "to_version": 2, "hours_before": "8.00", "hours_after": "5.50"}


def test_billing_status_is_written_back_only_on_approved_billable_time():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        eid = psa.log_time(ids["resource"], ids["project"], TODAY, "2", task_id=ids["task"])["id"]
        early = await call("PATCH", f"/time_entries/{eid}", json={"billing_status": "invoiced", "invoice_reference": "INV-1"})
        assert early.status == 422 and code(early) == "not_billable"
        psa.submit_time_entry(eid)
        psa.approve_time_entry(eid)
        no_ref = await call("PATCH", f"/time_entries/{eid}", json={"billing_status": "invoiced"})
        assert no_ref.status == 422 and field(no_ref) == "invoice_reference"
        bad = await call("PATCH", f"/time_entries/{eid}", json={"billing_status": "settled", "invoice_reference": "INV-1"})
        assert bad.status == 422 and code(bad) == "inclusion"
        hours = await call("PATCH", f"/time_entries/{eid}", json={"hours": "1"})
        assert hours.status == 422 and code(hours) == "read_only"
        inv = await call("PATCH", f"/time_entries/{eid}", json={"billing_status": "invoiced", "invoice_reference": "INV-1"})
        paid = await call("PATCH", f"/time_entries/{eid}", json={"billing_status": "paid"},
                          headers={"if-match": inv.header("etag")})
        assert paid.status == 200 and (paid.json["billing_status"], paid.json["invoice_reference"]) == ("paid", "INV-1")
        nb = psa.log_time(ids["resource"], ids["project"], "2026-01-06", "1", task_id=ids["task"], billable=False)
        psa.submit_time_entry(nb["id"])
        psa.approve_time_entry(nb["id"])
        assert nb["bill_amount"] is None
        r = await call("PATCH", f"/time_entries/{nb['id']}", json={"billing_status": "invoiced", "invoice_reference": "INV-1"})
        assert r.status == 422 and code(r) == "not_billable"
        q = await call("GET", "/time_entries", query={"billing_status": "paid"})
        assert [x["id"] for x in q.json["results"]] == [eid]

    w.run(script)
    assert len(psa.effects("time_entry.billing_updated")) == 2


# ---- expenses


def test_expenses_need_a_receipt_over_75_and_are_billed_when_approved():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        rid, pid = ids["resource"], ids["project"]
        taxi = psa.log_expense(rid, pid, "2026-01-02", "ground_transport", "80.00", "GBP", tax_amount="16.00")
        assert (taxi["status"], taxi["amount"], taxi["currency"], taxi["receipt_attached"]) == (
            "submitted", "80.00", "GBP", False)
        with pytest.raises(VendorError) as no_receipt:
            psa.approve_expense(taxi["id"])
        assert no_receipt.value.code == "receipt_required"
        psa.attach_receipt(taxi["id"])
        assert psa.approve_expense(taxi["id"])["status"] == "approved"
        lunch = psa.log_expense(rid, pid, TODAY, "meals", "75.00", "USD")
        assert psa.reject_expense(lunch["id"], "personal")["status"] == "rejected"
        for amount in ("0", "12.345", "1e3"):
            with pytest.raises(VendorError) as bad:
                psa.log_expense(rid, pid, TODAY, "meals", amount, "USD")
            assert bad.value.field == "amount", amount
        r = await call("PATCH", f"/expenses/{lunch['id']}", json={"billing_status": "invoiced", "invoice_reference": "INV-2"})
        assert r.status == 422 and code(r) == "not_billable"
        r = await call("PATCH", f"/expenses/{taxi['id']}", json={"billing_status": "invoiced", "invoice_reference": "INV-2"})
        assert r.status == 200 and r.json["billing_status"] == "invoiced"
        q = await call("GET", "/expenses", query={"project_id": pid, "date_to": "2026-01-03"})
        assert [x["id"] for x in q.json["results"]] == [taxi["id"]]

    w.run(script)
    assert [e["kind"] for e in psa.effects() if e["table"] == "expenses"] == [
        "expense.logged", "expense.receipt_attached", "expense.approved", "expense.logged", "expense.rejected",
        "expense.billing_updated"]


# ---- milestones


def test_milestones_complete_then_are_accepted_and_a_second_acceptance_is_kept():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        created = await call("POST", "/milestones", json={"project_id": ids["project"], "title": "UAT", "amount": "12.50",
                                                          "due_date": "2026-02-01"})
        assert created.status == 201
        m = created.json
        assert (m["status"], m["currency"], m["amount"], m["acceptances"]) == ("open", "USD", "12.50", [])
        too_fine = await call("POST", "/milestones", json={"project_id": ids["project"], "title": "x", "amount": "1.005",
                                                           "due_date": "2026-02-01"})
        assert too_fine.status == 422 and code(too_fine) == "too_precise"
        r = await call("PATCH", f"/milestones/{m['id']}", json={"amount": "15000.00"})
        assert r.status == 200 and r.json["amount"] == "15000.00"
        with pytest.raises(VendorError) as early:
            psa.record_client_acceptance(m["id"])
        assert early.value.code == "not_completed"
        early_bill = await call("PATCH", f"/milestones/{m['id']}",
                                json={"billing_status": "invoiced", "invoice_reference": "INV-3"})
        assert early_bill.status == 422 and code(early_bill) == "not_billable"
        done = psa.complete_milestone(m["id"], on="2026-01-30")
        assert (done["status"], done["completed_on"]) == ("completed", "2026-01-30")
        fixed = await call("PATCH", f"/milestones/{m['id']}", json={"amount": "1.00"})
        assert fixed.status == 422 and code(fixed) == "milestone_completed"
        first = psa.record_client_acceptance(m["id"], on="2026-02-02", accepted_by="cfo@acme")
        second = psa.record_client_acceptance(m["id"], on="2026-02-03")
        assert first["accepted_on"] == second["accepted_on"] == "2026-02-02"
        assert [a["accepted_on"] for a in second["acceptances"]] == ["2026-02-02", "2026-02-03"]
        billed = await call("PATCH", f"/milestones/{m['id']}", json={"billing_status": "invoiced", "invoice_reference": "INV-3"})
        assert billed.status == 200
        q = await call("GET", "/milestones", query={"project_id": ids["project"], "billing_status": "invoiced"})
        assert [x["id"] for x in q.json["results"]] == [m["id"]]

    w.run(script)
    assert [e["detail"]["repeat"] for e in psa.effects("milestone.accepted")] == [False, True]


# ---- the change feed


def test_every_write_appends_a_change_with_the_snapshot_after_it():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        eid = psa.log_time(ids["resource"], ids["project"], TODAY, "1", task_id=ids["task"])["id"]
        psa.submit_time_entry(eid)
        psa.approve_time_entry(eid)
        await wait(w, 30 * SECOND)  # past the visibility lag
        changes = list((await all_changes(call)).values())
        seen = Counter((c["item_type"], c["action"]) for c in changes)
        assert seen == Counter({
            ("project", "created"): 1, ("project", "status_changed"): 1, ("task", "created"): 1,
            ("assignment", "created"): 1, ("time_entry", "created"): 1, ("time_entry", "status_changed"): 2})
        entry_states = sorted((c["snapshot"]["lock_version"], c["snapshot"]["status"]) for c in changes if c["item_id"] == eid)
        assert entry_states == [(1, "draft"), (2, "submitted"), (3, "approved")]
        assert all(isinstance(c["changed_at"], int) and c["changed_at_time"].startswith("2026-01-05T") for c in changes)

    w.run(script)


def test_changes_become_visible_late_and_since_filters_by_time():
    psa, w = world()

    async def script(call):
        for n in range(20):
            await call("POST", "/projects", json={**PROJECT, "external_reference": f"d{n}"})
        soon = await all_changes(call)
        assert len(soon) < 20  # some changes are not visible yet
        await wait(w, 30 * SECOND)
        everything = await all_changes(call)
        assert len(everything) == 20
        assert sorted(c["snapshot"]["external_reference"] for c in everything.values()) == sorted(f"d{n}" for n in range(20))
        mark = w.sim.now_us
        await call("POST", "/projects", json={**PROJECT, "external_reference": "late"})
        await wait(w, 30 * SECOND)
        newer = await all_changes(call, since=str(mark))
        assert [c["snapshot"]["external_reference"] for c in newer.values()] == ["late"]
        stamp = next(iter(newer.values()))["changed_at_time"]
        assert [c["item_id"] for c in (await all_changes(call, since=stamp)).values()] == list(
            c["item_id"] for c in newer.values())
        bad = await call("GET", "/changes", query={"since": "yesterday"})
        assert bad.status == 400 and field(bad) == "since"
        missing = await call("GET", "/changes")
        assert missing.status == 400 and code(missing) == "missing_parameter"

    w.run(script)


def test_changes_are_kept_seven_to_nine_days():
    psa, w = world()

    async def script(call):
        await call("POST", "/projects", json=PROJECT)
        await wait(w, 7 * DAY - HOUR)
        assert len(await all_changes(call)) == 1
        await wait(w, 2 * DAY + 2 * HOUR)
        assert await all_changes(call) == {}
        assert len(psa.records("projects")) == 1  # only the change expired, not the record

    w.run(script)
    assert "feed.expired" in w.trace_kinds()


def test_a_chaos_retention_override_expires_changes_sooner():
    psa, w = world(feed_retention=HOUR)

    async def script(call):
        await call("POST", "/projects", json=PROJECT)
        await wait(w, 30 * MINUTE)
        assert len(await all_changes(call)) == 1
        await wait(w, 31 * MINUTE)
        assert await all_changes(call) == {}

    w.run(script)


# ---- vendor faults


def test_over_the_rate_limit_is_429_with_retry_after_over_a_sliding_window():
    psa, w = world(rate_limit=2)

    async def script(call):
        assert (await call("GET", "/projects")).status == 200
        assert (await call("POST", "/projects", json=PROJECT)).status == 201
        limited = await call("POST", "/projects", json=PROJECT)
        assert limited.status == 429 and limited.header("retry-after") == "1"
        assert limited.json["errors"][0]["type"] == "rate_limit" and code(limited) == "too_many_requests"
        await wait(w, SECOND)
        assert (await call("POST", "/projects", json=PROJECT)).status == 201

    w.run(script)
    assert len(psa.records("projects")) == 2  # the limited create did nothing
    assert "fault.rate_limited" in w.trace_kinds()


def test_over_the_concurrency_cap_is_429():
    psa, w = world(concurrency_limit=1)
    answers = []

    async def script(call):
        async def get():
            answers.append((await call("GET", "/projects")).status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get)
            nursery.start_soon(get)

    w.run(script)
    assert sorted(answers) == [200, 429]


def test_a_5xx_comes_before_commit_and_spares_reads():
    psa, w = world(error_5xx=1)

    async def script(call):
        r = await call("POST", "/projects", json=PROJECT)
        assert r.status == 500 and r.json["errors"][0]["type"] == "system" and code(r) == "internal_server_error"
        assert (await call("GET", "/projects")).status == 200

    w.run(script)
    assert psa.records("projects") == [] and psa.effects() == []


def test_a_record_changed_underneath_is_409_until_the_world_heals():
    psa, w = world(conflict=1)

    async def script(call):
        r = await call("POST", "/projects", json=PROJECT)
        assert r.status == 409 and code(r) == "record_locked"
        w.sim.heal()
        assert (await call("POST", "/projects", json=PROJECT)).status == 201

    w.run(script)
    assert len(psa.records("projects")) == 1


def test_an_outage_window_answers_503_with_retry_after():
    psa = Psa("psa")
    chaos = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), windows=(Window("outage", 0, HOUR, target="psa"),))
    w = World(psa, chaos=chaos)

    async def script(call):
        r = await call("POST", "/projects", json=PROJECT)
        assert r.status == 503 and r.header("retry-after") == "120" and code(r) == "service_unavailable"
        await wait(w, HOUR)
        assert (await call("POST", "/projects", json=PROJECT)).status == 201

    w.run(script)
    assert len(psa.records("projects")) == 1


# ---- restarts


def test_a_restart_keeps_records_counters_and_the_feed():
    psa, w = world()

    async def script(call):
        ids = await staffed(call)
        eid = psa.log_time(ids["resource"], ids["project"], TODAY, "3", task_id=ids["task"])["id"]
        w.sim.crash(psa)
        with pytest.raises(ConnectionRefused):
            await call("GET", f"/projects/{ids['project']}")
        with pytest.raises(VendorError) as down:
            psa.submit_time_entry(eid)
        assert down.value.status == 503
        w.sim.restart(psa)
        r = await call("GET", f"/time_entries/{eid}")
        assert r.status == 200 and r.json["status"] == "draft"
        again = await call("POST", "/projects", json=PROJECT)
        assert int(again.json["id"]) == int(ids["project"]) + 1
        assert psa.submit_time_entry(eid)["status"] == "submitted"
        await wait(w, 30 * SECOND)
        assert len(await all_changes(call)) == 7

    w.run(script)


def test_a_crash_in_service_commits_the_create_but_loses_the_answer():
    psa, w = world()
    outcome = []

    async def script(call):
        async def create():
            try:
                await call("POST", "/projects", json=PROJECT, timeout_us=10 * SECOND)
            except RequestTimeout:
                outcome.append("timeout")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create)
            await wait(w, 5 * MILLISECOND)  # arrived (1 ms) and in service (tens of ms)
            w.sim.crash(psa)
            w.sim.restart(psa)
        found = await call("GET", "/projects", query={"external_reference": "deal-1"})
        assert found.json["count"] == 1

    w.run(script)
    assert outcome == ["timeout"]



# ---- seeding from a generated firm


@pytest.fixture(scope="module")
def firm():
    return generate_firm(FirmParams(consultants=8, months=1), RandomStreams(3))


def test_load_firm_seeds_resources_projects_wbs_milestones_and_assignments(firm):
    psa, w = world()
    ids = psa.load_firm(firm)
    later = set(firm.months[0].closed_deal_ids)
    projects = [p for p in firm.projects if p.deal_id not in later]
    deals = {d.id: d for d in firm.deals}
    worker = firm.workers[0]
    project = next(p for p in projects if len({ln.billing_model for ln in deals[p.deal_id].lines}) > 1)
    task = project.tasks[-1]

    async def script(call):
        r = await call("GET", "/resources", query={"external_reference": worker.id})
        [res] = r.json["results"]
        assert (res["first_name"], res["status"]) == (worker.first_name, "active")
        assert res["cost_rates"] == [{"effective_from": worker.hire_date.isoformat(), "rate": str(worker.cost_rate),
                                      "currency": worker.cost_currency}]
        r = await call("GET", "/projects", query={"external_reference": project.id})
        [p] = r.json["results"]
        assert (p["status"], p["billing_rule"], p["currency"], p["opportunity_ref"]) == (
            "active", "mixed", project.currency, project.deal_id)
        r = await call("GET", "/tasks", query={"project_id": p["id"], "wbs_code": task.wbs})
        [t] = r.json["results"]
        parent = (await call("GET", f"/tasks/{t['parent_id']}")).json
        assert parent["wbs_code"] == task.wbs.split(".")[0] and t["external_reference"] == task.id

    w.run(script)
    assert ids[worker.id] == psa.firm_id(worker.id)
    counts = psa.counts()
    assert counts["resources"] == len(firm.workers) and counts["roles"] == len(firm.roles)
    assert counts["projects"] == len(projects)
    lines = {t.line_id for p in projects for t in p.tasks}
    assert counts["tasks"] == sum(len(p.tasks) for p in projects) + len(lines)
    assert counts["assignments"] == sum(a.project_id in {p.id for p in projects} for a in firm.assignments)
    milestones = [m for p in projects for ln in deals[p.deal_id].lines for m in ln.milestones]
    assert counts["milestones"] == len(milestones)
    history = {m.id for m in milestones if m.due_date < firm.params.start} - {
        e.milestone_id for e in firm.months[0].milestone_events if e.kind == COMPLETED}
    invoiced = {m["external_reference"] for m in psa.records("milestones") if m["billing_status"] == "invoiced"}
    assert invoiced == history
    assert psa.effects() == []  # initial state, not activity


def play(firm) -> tuple[Psa, World]:
    psa, w = world()
    psa.load_firm(firm)

    async def script(call):
        psa.play_month(firm.months[0])
        await wait(w, 45 * DAY)

    w.run(script)
    return psa, w


def test_play_month_applies_each_entrys_intended_outcome(firm):
    psa, w = play(firm)
    workers = {r["id"]: r["external_reference"] for r in psa.records("resources")}
    tasks = {t["id"]: t["external_reference"] for t in psa.records("tasks")}
    expected = Counter()
    for e in firm.months[0].time_entries:
        hours, status, version = {
            APPROVED: (e.hours, "approved", 1),
            REJECTED: (e.hours, "rejected", 1),
            RECALLED_CORRECTED: (e.corrected_hours, "approved", 2),
        }[e.outcome]
        expected[(e.worker_id, e.task_id, e.work_date.isoformat(), str(hours), status, version)] += 1
    got = Counter((workers[t["resource_id"]], tasks[t["task_id"]], t["date"], t["hours"], t["status"], t["version"])
                  for t in psa.records("time_entries"))
    assert got == expected
    expenses = Counter((x["amount"], x["status"]) for x in psa.records("expenses"))
    assert expenses == Counter((str(x.amount), "approved" if x.outcome == APPROVED else "rejected")
                               for x in firm.months[0].expenses)
    assert "psa.people.gave_up" not in w.trace_kinds()


def test_playing_the_same_month_twice_is_byte_identical(firm):
    one, w1 = play(firm)
    two, w2 = play(firm)
    assert one.records("time_entries") == two.records("time_entries")
    assert w1.sim.trace.fingerprint == w2.sim.trace.fingerprint


def test_the_pmo_does_not_staff_someone_who_has_left(firm):
    # As POST /assignments refuses a terminated resource, so does the PMO's
    # staffing from the plan: nobody is assigned after their last day.
    deal = firm.months[0].closed_deal_ids[0]
    project = next(p for p in firm.projects if p.deal_id == deal)
    planned = [a for a in firm.assignments if a.project_id == project.id]
    leaver = planned[0].worker_id
    psa, w = world()
    ids = psa.load_firm(firm)

    async def script(call):
        p = (await call("POST", "/projects", json={**PROJECT, "external_reference": deal})).json
        assert (await call("POST", f"/projects/{p['id']}/activate")).status == 200
        r = await call("POST", f"/resources/{ids[leaver]}/terminate", json={"terminated_on": TODAY})
        assert r.status == 200
        refused = await call("POST", "/assignments", json={"resource_id": ids[leaver], "project_id": p["id"]})
        assert (refused.status, code(refused)) == (422, "resource_terminated")
        made = psa.staff_project(firm, project.id, p["id"])
        staffed = {a["resource_id"] for a in psa.records("assignments") if a["id"] in made}
        assert ids[leaver] not in staffed
        assert len(made) == sum(a.worker_id != leaver for a in planned)

    w.run(script)
    assert "psa.people.refused" in w.trace_kinds()


def test_a_reference_lookup_sees_records_made_or_re_marked_after_it_missed():
    # People look a project up by its firm id, miss, and try again an hour
    # later; the answer must follow the table, not the first miss.
    psa, w = world()

    async def script(call):
        assert psa.find_reference("projects", "deal-7") is None
        first = (await call("POST", "/projects", json={**PROJECT, "external_reference": "deal-7"})).json
        assert psa.find_reference("projects", "deal-7") == first["id"]
        other = (await call("POST", "/projects", json={**PROJECT, "external_reference": "deal-8"})).json
        await call("PATCH", f"/projects/{first['id']}", json={"external_reference": "dup-of:x"})
        assert psa.find_reference("projects", "deal-7") is None
        await call("PATCH", f"/projects/{other['id']}", json={"external_reference": "deal-7"})
        assert psa.find_reference("projects", "deal-7") == other["id"]

    w.run(script)


def test_a_list_filtered_by_project_holds_that_projects_records_in_creation_order():
    psa, w = world()

    async def script(call):
        a = (await call("POST", "/projects", json={**PROJECT, "external_reference": "A"})).json
        b = (await call("POST", "/projects", json={**PROJECT, "external_reference": "B"})).json
        made = []
        for n, pid in enumerate([a["id"], b["id"], a["id"], b["id"], a["id"]]):
            r = await call("POST", "/tasks", json={"project_id": pid, "title": f"t{n}"})
            assert r.status == 201, r.json
            made.append((pid, r.json["id"]))
        for pid in (a["id"], b["id"]):
            r = await call("GET", "/tasks", query={"project_id": pid, "per_page": "2", "page": "1"})
            r2 = await call("GET", "/tasks", query={"project_id": pid, "per_page": "2", "page": "2"})
            got = [t["id"] for t in r.json["results"] + r2.json["results"]]
            assert got == [tid for p, tid in made if p == pid]
            assert r.json["count"] == len(got)
        none = await call("GET", "/tasks", query={"project_id": "nope"})
        assert none.status == 200 and none.json["count"] == 0

    w.run(script)

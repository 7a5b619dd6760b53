"""Contract tests of the fake expense system, through its HTTP-shaped API. The world starts 2026-01-05."""

from datetime import date

from fake_systems.expenses import Expenses
from fake_systems.firm_generator import FirmParams, generate_firm
from fake_systems.firm_model import APPROVED
from simulator import Fixed, RandomStreams
from simulator.faults import ChaosProfile, LinkRule, SystemFaults
from tests.fake_systems.world import World

TAXI = {"TransactionDate": "2026-01-06", "Merchant": "Metro Taxi", "Category": "ground_transport",
        "Amount": "120.50", "Currency": "USD", "TaxAmount": "24.10", "IsBillable": True, "ProjectRef": "P00001",
        "ReceiptAttached": True}
LUNCH = {"TransactionDate": "2026-01-07", "Merchant": "Corner Bistro", "Category": "meals",
         "Amount": "35.25", "Currency": "USD", "TaxAmount": "7.05"}
HOTEL = {"TransactionDate": "2026-01-07", "Merchant": "Harbour Hotel", "Category": "lodging",
         "Amount": "180.00", "Currency": "EUR", "TaxAmount": "34.20", "IsBillable": True, "ProjectRef": "P00002"}


def world(chaos=None):
    fake = Expenses("expenses")
    return World(fake, chaos=chaos), fake


def at(w, day: date) -> int:
    return w.sim.calendar.us_at_date(day)


async def approved_report(call, fake, *entries, employee="W000001"):
    r = await call("POST", "/api/v3/reports", json={"EmployeeId": employee, "ReportName": "January"})
    report_id = r.json["ReportId"]
    ids = [(await call("POST", f"/api/v3/reports/{report_id}/entries", json=e)).json["EntryId"] for e in entries]
    fake.submit(report_id)
    fake.approve(report_id)
    return report_id, ids


def test_the_firms_expenses_load_as_reports_and_only_approved_ones_are_listed():
    firm = generate_firm(FirmParams(consultants=30), RandomStreams(3))
    expenses = [x for m in firm.months for x in m.expenses]
    w, fake = world()
    report_ids = fake.load_firm(firm, settle=True)
    # One report per worker, month and intended outcome.
    groups = []
    for x in expenses:
        key = (x.worker_id, x.incurred_on.strftime("%Y-%m"), x.outcome)
        if key not in groups:
            groups.append(key)
    assert len(report_ids) == len(groups)
    approved = [x for x in expenses if x.outcome == APPROVED]
    assert 0 < len(approved) < len(expenses)

    async def script(call):
        r = await call("GET", "/api/v3/entries", query={"approvedSince": "2026-01-01", "limit": "200"})
        rejected = await call("GET", "/api/v3/reports", query={"status": "REJECTED"})
        late = await call("GET", "/api/v3/entries", query={"approvedSince": "2026-01-20", "limit": "200"})
        return r.json, rejected.json, late.json

    listed, rejected, late = w.run(script)
    assert listed["TotalCount"] == len(approved)
    assert [(e["ExternalId"], e["EmployeeId"], e["Amount"], e["TaxAmount"], e["Currency"], e["IsBillable"],
             e["ProjectRef"]) for e in listed["Items"]] == [
        (x.id, x.worker_id, str(x.amount), str(x.tax_amount), x.currency, x.billable, x.project_id) for x in approved]
    assert {e["ReportStatus"] for e in listed["Items"]} == {"APPROVED"}
    # Settled history is dated by its receipts: a report is approved on its last receipt's date.
    last_receipt = {}
    for x in approved:
        key = (x.worker_id, x.incurred_on.strftime("%Y-%m"))
        last_receipt[key] = max(last_receipt.get(key, x.incurred_on), x.incurred_on)
    assert [e["ApprovedOn"] for e in listed["Items"]] == [
        last_receipt[x.worker_id, x.incurred_on.strftime("%Y-%m")].isoformat() for x in approved]
    assert [e["ExternalId"] for e in late["Items"]] == [
        x.id for x in approved if last_receipt[x.worker_id, x.incurred_on.strftime("%Y-%m")] >= date(2026, 1, 20)]
    assert sorted(e["ExternalId"] for r in rejected["Items"] for e in r["Entries"]) == sorted(
        x.id for x in expenses if x.outcome != APPROVED)


def test_a_report_goes_from_draft_to_reimbursed_with_totals_per_currency():
    w, fake = world()

    async def script(call):
        r = await call("POST", "/api/v3/reports", json={"EmployeeId": "W000007", "ReportName": "Client visit"})
        assert r.status == 201 and r.json["Status"] == "DRAFT" and r.json["ReportId"] == "RPT-000001"
        rid = r.json["ReportId"]
        for e in (TAXI, LUNCH, HOTEL):
            assert (await call("POST", f"/api/v3/reports/{rid}/entries", json=e)).status == 201
        try:
            fake.approve(rid)
            raise AssertionError("approved a draft")
        except ValueError as exc:
            assert "only a SUBMITTED report" in str(exc)
        fake.submit(rid)
        late = await call("POST", f"/api/v3/reports/{rid}/entries", json=LUNCH)
        assert late.status == 409 and late.json["Error"]["Code"] == "REPORT_NOT_EDITABLE"
        none_yet = await call("GET", "/api/v3/entries")
        assert none_yet.json["TotalCount"] == 0  # submitted is not approved
        fake.approve(rid)
        fake.reimburse(rid)
        got = await call("GET", f"/api/v3/reports/{rid}")
        assert (got.json["Status"], got.json["ApprovedOn"], got.json["ReimbursedOn"]) == ("REIMBURSED", "2026-01-05",
                                                                                          "2026-01-05")
        # EUR: 180.00 (tax 34.20); USD: 120.50 + 35.25 = 155.75 (tax 24.10 + 7.05 = 31.15).
        assert got.json["Totals"] == [{"Currency": "EUR", "Amount": "180.00", "TaxAmount": "34.20", "EntryCount": 1},
                                      {"Currency": "USD", "Amount": "155.75", "TaxAmount": "31.15", "EntryCount": 2}]
        lines = await call("GET", "/api/v3/entries", query={"billable": "true"})
        assert [e["Merchant"] for e in lines.json["Items"]] == ["Metro Taxi", "Harbour Hotel"]
        assert [e["BillingStatus"] for e in got.json["Entries"]] == ["NOT_BILLED", "NOT_BILLABLE", "NOT_BILLED"]

    w.run(script)
    assert [e["kind"] for e in fake.effects() if e["table"] == "reports"] == [
        "report.created", "report.submitted", "report.approved", "report.reimbursed"]


def test_rejected_reports_never_reach_the_approved_list():
    w, fake = world()

    async def script(call):
        rid = (await call("POST", "/api/v3/reports", json={"EmployeeId": "W000003"})).json["ReportId"]
        await call("POST", f"/api/v3/reports/{rid}/entries", json=TAXI)
        fake.submit(rid)
        fake.reject(rid, "duplicate of RPT-000009")
        got = await call("GET", f"/api/v3/reports/{rid}")
        assert (got.json["Status"], got.json["RejectionReason"]) == ("REJECTED", "duplicate of RPT-000009")
        assert (await call("GET", "/api/v3/entries")).json["TotalCount"] == 0
        try:
            fake.reimburse(rid)
            raise AssertionError("reimbursed a rejected report")
        except ValueError as exc:
            assert "REJECTED" in str(exc)
        empty = fake.create_report("W000003")
        try:
            fake.submit(empty)
            raise AssertionError("submitted an empty report")
        except ValueError as exc:
            assert "no entries" in str(exc)

    w.run(script)


def test_entries_are_validated_with_the_field_named():
    w, fake = world()

    async def script(call):
        rid = (await call("POST", "/api/v3/reports", json={"EmployeeId": "W000001"})).json["ReportId"]
        cases = [
            ({**LUNCH, "Amount": "0.00"}, "Amount"), ({**LUNCH, "Amount": "-5.00"}, "Amount"),
            ({**LUNCH, "Amount": "12.345"}, "Amount"), ({**LUNCH, "Amount": 12}, "Amount"),
            ({**LUNCH, "Currency": "ABC"}, "Currency"), ({**LUNCH, "TaxAmount": "-0.01"}, "TaxAmount"),
            ({**TAXI, "ProjectRef": None}, "ProjectRef"), ({**TAXI, "ProjectRef": ""}, "ProjectRef"),
            ({**LUNCH, "Category": "casino"}, "Category"), ({**LUNCH, "TransactionDate": "2026-02-30"}, "TransactionDate"),
            ({**LUNCH, "IsBillable": "yes"}, "IsBillable"), ({k: v for k, v in LUNCH.items() if k != "Merchant"}, "Merchant"),
        ]
        for body, field in cases:
            r = await call("POST", f"/api/v3/reports/{rid}/entries", json=body)
            assert r.status == 400 and r.json["Error"]["Field"] == field, (field, r.json)
        billable_without_project = await call("POST", f"/api/v3/reports/{rid}/entries", json={**TAXI, "ProjectRef": None})
        assert billable_without_project.json["Error"]["Code"] == "PROJECT_REQUIRED"
        for junk in ([TAXI], "taxi", None):
            r = await call("POST", f"/api/v3/reports/{rid}/entries", json=junk)
            assert r.status == 400 and r.json["Error"]["Code"] == "MALFORMED_REQUEST"
        jpy = await call("POST", f"/api/v3/reports/{rid}/entries", json={**LUNCH, "Currency": "JPY", "Amount": "3500",
                                                                         "TaxAmount": "350"})
        assert jpy.status == 201 and jpy.json["Amount"] == "3500"
        tidy = await call("POST", f"/api/v3/reports/{rid}/entries", json={**LUNCH, "Amount": "35.5", "TaxAmount": "7"})
        assert (tidy.json["Amount"], tidy.json["TaxAmount"]) == ("35.50", "7.00")
        assert (await call("POST", "/api/v3/reports/RPT-999999/entries", json=LUNCH)).status == 404
        assert (await call("PUT", "/api/v3/reports")).status == 405

    w.run(script)
    assert len(fake.records("entries")) == 2
    try:
        fake.add_entry(fake.create_report("W000001"), **{**LUNCH, "Currency": "XYZ"})
        raise AssertionError("the UI accepted an unknown currency")
    except ValueError as exc:
        assert "Currency" in str(exc)


def test_approved_lines_since_a_date_and_paging():
    w, fake = world()

    async def script(call):
        await approved_report(call, fake, TAXI, LUNCH)  # approved on 2026-01-05
        await w.sim.kernel.run_until(at(w, date(2026, 1, 12)))
        await approved_report(call, fake, HOTEL, employee="W000002")  # approved on 2026-01-12
        recent = await call("GET", "/api/v3/entries", query={"approvedSince": "2026-01-10"})
        assert [(e["Merchant"], e["ApprovedOn"]) for e in recent.json["Items"]] == [("Harbour Hotel", "2026-01-12")]
        reports = await call("GET", "/api/v3/reports", query={"status": "APPROVED", "approvedSince": "2026-01-06"})
        assert [r["EmployeeId"] for r in reports.json["Items"]] == ["W000002"]
        first = await call("GET", "/api/v3/entries", query={"limit": "2"})
        assert (first.json["TotalCount"], len(first.json["Items"]), first.json["NextOffset"]) == (3, 2, 2)
        rest = await call("GET", "/api/v3/entries", query={"limit": "2", "offset": "2"})
        assert [e["Merchant"] for e in rest.json["Items"]] == ["Harbour Hotel"] and rest.json["NextOffset"] is None
        for query, field in (({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"offset": "x"}, "offset"),
                             ({"approvedSince": "last week"}, "approvedSince"), ({"billable": "maybe"}, "billable")):
            r = await call("GET", "/api/v3/entries", query=query)
            assert r.status == 400 and r.json["Error"]["Field"] == field

    w.run(script)


def test_marking_lines_exported_or_billed_is_idempotent_per_reference():
    w, fake = world()

    async def script(call):
        _, (taxi, lunch) = await approved_report(call, fake, TAXI, LUNCH)
        pending = (await call("POST", "/api/v3/reports", json={"EmployeeId": "W000009"})).json["ReportId"]
        draft_entry = (await call("POST", f"/api/v3/reports/{pending}/entries", json=HOTEL)).json["EntryId"]
        r = await call("POST", "/api/v3/entries/marks", json={"Mark": "EXPORTED", "ExternalRef": "JE-100",
                                                              "EntryIds": [taxi, lunch, draft_entry, "ENT-9999999"]})
        assert r.status == 200 and r.json["MarkedCount"] == 2
        assert [x["Outcome"] for x in r.json["Results"]] == ["MARKED", "MARKED", "NOT_APPROVED", "NOT_FOUND"]
        again = await call("POST", "/api/v3/entries/marks", json={"Mark": "EXPORTED", "ExternalRef": "JE-100",
                                                                  "EntryIds": [taxi]})
        assert again.json["Results"][0]["Outcome"] == "ALREADY_MARKED"
        elsewhere = await call("POST", "/api/v3/entries/marks", json={"Mark": "EXPORTED", "ExternalRef": "JE-200",
                                                                      "EntryIds": [taxi]})
        assert elsewhere.json["Results"][0] == {"EntryId": taxi, "Outcome": "MARKED_ELSEWHERE", "ExportRef": "JE-100"}
        billed = await call("POST", "/api/v3/entries/marks", json={"Mark": "BILLED", "ExternalRef": "INV-7",
                                                                   "EntryIds": [taxi, lunch]})
        assert [x["Outcome"] for x in billed.json["Results"]] == ["MARKED", "NOT_BILLABLE"]
        left = await call("GET", "/api/v3/entries", query={"exportStatus": "NOT_EXPORTED"})
        assert left.json["TotalCount"] == 0
        for body, field in (({"Mark": "PAID", "ExternalRef": "x", "EntryIds": [taxi]}, "Mark"),
                            ({"Mark": "BILLED", "ExternalRef": "x", "EntryIds": []}, "EntryIds"),
                            ({"Mark": "BILLED", "EntryIds": [taxi]}, "ExternalRef")):
            bad = await call("POST", "/api/v3/entries/marks", json=body)
            assert bad.status == 400 and bad.json["Error"]["Field"] == field
        return taxi

    taxi = w.run(script)
    assert [(e["kind"], e["id"], e["detail"]["ref"]) for e in fake.effects() if e["kind"].startswith("entry.") and
            e["kind"] != "entry.added"] == [("entry.exported", taxi, "JE-100"), ("entry.exported", "ENT-0000002", "JE-100"),
                                            ("entry.billed", taxi, "INV-7")]


def test_vendor_faults_take_the_expense_systems_shape():
    limited = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),),
                           systems=(("expenses", SystemFaults(rate_limit=2)),))
    w, _ = world(limited)

    async def script(call):
        statuses = [(await call("GET", "/api/v3/entries")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        r = await call("GET", "/api/v3/reports")
        assert r.json["Error"]["Code"] == "RATE_LIMIT_REACHED"
        assert int(r.header("x-ratelimit-reset")) >= 1 and r.header("retry-after") is None

    w.run(script)
    broken = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),),
                          systems=(("expenses", SystemFaults(error_5xx="100%")),))
    w, fake = world(broken)

    async def write(call):
        r = await call("POST", "/api/v3/reports", json={"EmployeeId": "W000001"})
        assert r.status == 500 and r.json["Error"]["Code"] == "INTERNAL_SERVER_ERROR"
        assert (await call("GET", "/api/v3/reports")).status == 200

    w.run(write)
    assert fake.records("reports") == []


def test_reports_and_marks_survive_a_restart():
    w, fake = world()

    async def script(call):
        rid, (taxi,) = await approved_report(call, fake, TAXI)
        await call("POST", "/api/v3/entries/marks", json={"Mark": "EXPORTED", "ExternalRef": "JE-1", "EntryIds": [taxi]})
        w.sim.crash(fake)
        w.sim.restart(fake)
        again = await call("POST", "/api/v3/entries/marks", json={"Mark": "EXPORTED", "ExternalRef": "JE-1",
                                                                  "EntryIds": [taxi]})
        assert again.json["Results"][0]["Outcome"] == "ALREADY_MARKED"
        got = await call("GET", f"/api/v3/reports/{rid}")
        assert got.json["Status"] == "APPROVED" and got.json["Entries"][0]["ExportRef"] == "JE-1"
        new = await call("POST", "/api/v3/reports", json={"EmployeeId": "W000001"})
        assert new.json["ReportId"] == "RPT-000002"  # the id counter is durable too

    w.run(script)

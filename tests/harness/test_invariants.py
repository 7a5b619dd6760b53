"""The invariants, each fed a world that breaks it.

`hand_core.clean_world()` runs a small firm's month with a careful core
played by hand; every invariant holds there. Each test breaks one thing --
a core with one method wrong, or a `tamper` step at the end of the month, or
a record written straight into a fake -- and looks for the violation by its
business keys and correlation id.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from fake_systems.firm_generator import FirmParams
from harness.invariants import check_world
from harness.world import BusinessWorld
from simulator import load_profile
from tests.harness.hand_core import HandCore, clean_world
from tests.harness.idle_world import IdleCore


def results(world, outcome) -> dict[str, dict]:
    return {r["name"]: r for r in check_world(world, outcome)}


def find(res: dict[str, dict], prefix: str) -> dict:
    matches = [r for name, r in res.items() if name.startswith(prefix)]
    assert len(matches) == 1, f"no single invariant named {prefix!r}: {sorted(res)}"
    return matches[0]


def failing(res: dict[str, dict]) -> list[str]:
    return sorted(name for name, r in res.items() if not r["ok"])


def opp(world, firm_id: str) -> str:
    return world.crm.crm_id(firm_id)


def entry_on(world, day: str, deal: str = "D00001") -> dict:
    """The time entry worked on `day` on the firm deal's PSA project."""
    projects = {p["id"] for p in world.psa.records("projects") if p["external_reference"] == opp(world, deal)}
    return next(e for e in world.psa.records("time_entries") if e["date"] == day and e["project_id"] in projects)


@pytest.fixture(scope="module")
def clean():
    world, outcome, hand = clean_world()
    return world, outcome, hand, results(world, outcome)


# ------------------------------------------------------------------ the clean month


def test_a_careful_core_holds_every_invariant_and_each_check_verified_something(clean):
    world, _, _, res = clean
    assert failing(res) == []
    for name, r in res.items():
        assert r["checked"] > 0, f"{name} verified nothing in a month full of work"
        assert r["excused"] == 0, name
    assert find(res, "traceability")["coverage_percent"] == "100.00"


def test_the_clean_month_really_priced_time_by_the_version_in_force(clean):
    world, _, _, _ = clean
    actuals = {a["externalId"]: a for a in world.erp.records("projectActuals")}
    before, after = entry_on(world, "2026-01-12"), entry_on(world, "2026-01-14")
    baseline = {e.role_id: e.bill_rate for d in world.firm.deals if d.id == "D00001" for ln in d.lines
                if ln.id == "L000003" for e in ln.rate_card}
    amended = {e.role_id: e.bill_rate for a in world.firm.months[0].amendments for e in a.rate_card}
    assert baseline["R02"] != amended["R02"]  # the amendment changed W000001's rate
    assert Decimal(actuals[f"te:{before['id']}:v1"]["revenueAmount"]) == Decimal("7.50") * baseline["R02"]
    assert Decimal(actuals[f"te:{after['id']}:v1"]["revenueAmount"]) == Decimal("8.00") * amended["R02"]


# ------------------------------------------------------------------ setup


def test_a_retried_psa_create_leaves_a_duplicate_project_and_it_is_caught():
    class RetriesPsaCreates(HandCore):
        def create_psa_project(self, opp_id, body):
            first = super().create_psa_project(opp_id, body)
            if body["title"].endswith("2025") and not hasattr(self, "retried"):
                self.retried = opp_id
                super().create_psa_project(opp_id, body)  # the answer was lost; the retry creates again
            return first

    world, outcome, hand = clean_world(RetriesPsaCreates)
    r = find(results(world, outcome), "PSA: one project per won deal")
    assert not r["ok"]
    dupes = [p["id"] for p in world.psa.records("projects") if p["external_reference"] == hand.retried]
    assert len(dupes) == 2
    (v,) = r["violations"]
    assert hand.retried in v and f"corr deal:{hand.retried}" in v and all(p in v for p in dupes)
    assert "2 PSA projects" in v and "POST /projects" in v


def test_a_deal_never_provisioned_is_lost_unless_an_exception_explains_it():
    world, outcome, _ = clean_world(skip=("D00002",))
    missing = opp(world, "D00002")
    res = results(world, outcome)
    r = find(res, "PSA: one project per won deal")
    assert not r["ok"] and any(missing in v and f"corr deal:{missing}" in v for v in r["violations"])
    lost = find(res, "nothing silently lost")
    assert any(v.startswith(f"deal:{missing} did not get through") for v in lost["violations"])

    with world.store.transaction() as txn:  # the core parked the deal, with its reason
        txn.put("exceptions", "customer:ex00000001", {"id": "ex00000001", "code": "CUSTOMER_INVALID",
                                                      "message": "ERP refused the customer", "details": {"deal": missing}})
    res = results(world, outcome)
    for name in ("PSA: one project per won deal", "every won deal set up", "nothing silently lost"):
        assert find(res, name)["ok"], find(res, name)["violations"][:3]
    assert find(res, "PSA: one project per won deal")["excused"] == 1


def test_an_erp_customer_created_twice_without_external_id_is_untraceable():
    def tamper(hand, d):
        hand.call("erp", "POST", "/customers", {"companyName": "Copy", "subsidiary": 1, "currency": "USD"},
                  corr="deal:copy")

    world, outcome, _ = clean_world(tamper=tamper)
    r = find(results(world, outcome), "ERP: one customer per account")
    assert not r["ok"] and "no externalId" in r["violations"][0] and "corr deal:copy" in r["violations"][0]


# ------------------------------------------------------------------ ERP postings


def test_posting_a_rejected_entry_is_caught():
    def tamper(hand, d):
        rejected = next(e for e in hand.world.psa.table("time_entries").values() if e["status"] == "rejected")
        hand.post_time(rejected)

    world, outcome, _ = clean_world(tamper=tamper)
    rejected = next(e for e in world.psa.records("time_entries") if e["status"] == "rejected")
    res = results(world, outcome)
    r = find(res, "ERP: approved time posted exactly once")
    assert any(f"time entry {rejected['id']}" in v and "never approved" in v and f"corr te:{rejected['id']}" in v
               for v in r["violations"])
    assert not find(res, "billing: every billable item")["ok"]  # billed while rejected, too


def test_a_correction_that_is_not_reversed_double_counts_and_is_caught():
    class NeverReverses(HandCore):
        def reverse_time(self, entry, version):
            pass

    world, outcome, _ = clean_world(NeverReverses)
    corrected = next(e for e in world.psa.records("time_entries") if e["version"] == 2)
    res = results(world, outcome)
    r = find(res, "ERP: approved time posted exactly once")
    assert any(f"te:{corrected['id']}:v1" in v and "still posted" in v for v in r["violations"])
    assert any("net hours 9.00 != 5.00" in v for v in r["violations"])
    rec = find(res, "reconciliation")
    assert any("2026-01" in v and "hours PSA" in v for v in rec["violations"])


def test_a_core_that_ignores_the_amendment_prices_at_the_wrong_rate():
    class BaselineRates(HandCore):
        def bill_rate(self, opp_id, line, role, day):
            return super().bill_rate(opp_id, line, role, "0000-00-00")  # always the baseline

    world, outcome, _ = clean_world(BaselineRates)
    after = entry_on(world, "2026-01-14")
    res = results(world, outcome)
    corrected = entry_on(world, "2026-01-16")
    r = find(res, "ERP: time priced at the contract rate")
    assert len(r["violations"]) == 2  # the entries worked after the rate change: the 14th and the 16th
    (v,) = [v for v in r["violations"] if f"time entry {after['id']}" in v]
    assert "contract version 2 in force on 2026-01-14" in v and "= 1200.00" in v and f"corr te:{after['id']}" in v
    assert any(f"time entry {corrected['id']} v2" in v and "= 750.00" in v for v in r["violations"])
    assert any(f"time entry {after['id']}" in v for v in find(res, "billing: every billable item")["violations"])
    assert not find(res, "reconciliation")["ok"]


def test_an_expense_posted_at_another_amount_is_caught():
    def tamper(hand, d):
        x = next(iter(hand.world.expenses.table("entries").values()))
        hand.call("erp", "PUT", f"/projectActuals/eid:ex:{x['EntryId']}", {"amount": "1.00"}, corr=f"ex:{x['EntryId']}")
        hand.tampered = x

    world, outcome, hand = clean_world(tamper=tamper)
    x = hand.tampered
    (v,) = find(results(world, outcome), "ERP: approved expenses posted exactly once")["violations"]
    assert f"expense {x['EntryId']}" in v and f"ERP amount 1.00 != {x['Amount']}" in v and f"corr ex:{x['EntryId']}" in v


def test_an_approved_expense_never_posted_is_a_gap():
    class ForgetsExpenses(HandCore):
        def sync_expenses(self):
            pass

    world, outcome, _ = clean_world(ForgetsExpenses)
    entries = world.expenses.records("entries")
    res = results(world, outcome)
    r = find(res, "ERP: approved expenses posted exactly once")
    assert len(r["violations"]) == r["checked"] == len(entries)
    billable = [x for x in entries if x["IsBillable"]]
    assert sum("on no invoice item" in v for v in find(res, "billing: every billable item")["violations"]) == len(billable)


# ------------------------------------------------------------------ billing


def test_billing_a_time_entry_twice_and_invoicing_it_twice_are_caught():
    def tamper(hand, d):
        world = hand.world
        e = next(e for e in world.psa.table("time_entries").values() if e["date"] == "2026-01-12"
                 and e["project_id"] == hand.ids[world.crm.crm_id("D00002")]["psa_project"])
        opp_id = world.crm.crm_id("D00002")
        customer = hand.ids[opp_id]["billing_customer"]
        hand.call("billing", "POST", "/invoice_items", {
            "customer": customer, "amount": "580.00", "description": "again",
            "source": {"type": "time_entry", "id": f"{e['id']}:v1"}}, corr=f"te:{e['id']}", key="retry-with-new-key")
        hand.call("billing", "POST", "/invoices", {"customer": customer, "auto_finalize": True}, corr=f"te:{e['id']}")
        hand.tampered = e["id"]

    world, outcome, hand = clean_world(tamper=tamper)
    res = results(world, outcome)
    billed = find(res, "billing: every billable item")
    assert any(f"time entry {hand.tampered}" in v and "billed 2 times" in v for v in billed["violations"])
    invoices = find(res, "invoices: no billing event on two invoices")
    assert any(f"time_entry {hand.tampered}:v1 is on 2 invoices" in v and f"corr te:{hand.tampered}" in v
               for v in invoices["violations"])


def test_an_invoice_whose_total_does_not_tie_is_caught():
    world, outcome, _ = clean_world()
    invoice = next(iter(world.billing.table("invoices").values()))
    invoice["total"] = str(Decimal(invoice["total"]) + Decimal("0.01"))  # written straight into the fake
    r = find(results(world, outcome), "invoices: no billing event")
    assert any(f"invoice {invoice['id']}" in v and "total" in v for v in r["violations"])


def test_a_milestone_billed_before_the_client_signs_off_is_caught():
    def tamper(hand, d):
        world = hand.world
        opp_id = world.crm.crm_id("D00001")
        ref = f"{world.crm.crm_id('L000002')}:Integration tested"
        milestone = hand.ids[opp_id]["milestones"][ref]
        world.psa.complete_milestone(milestone, date(2026, 1, 30))
        hand.call("billing", "POST", "/invoice_items", {
            "customer": hand.ids[opp_id]["billing_customer"], "schedule": hand.ids[opp_id]["schedules"][ref.split(":")[0]],
            "source": {"type": "milestone", "id": milestone}}, corr=f"deal:{opp_id}", key="early")
        hand.tampered = milestone

    world, outcome, hand = clean_world(tamper=tamper)
    r = find(results(world, outcome), "billing: every billable item")
    (v,) = r["violations"]
    assert f"milestone {hand.tampered}" in v and "before the client's sign-off" in v


def test_an_accepted_milestone_never_billed_is_a_gap():
    class ForgetsMilestones(HandCore):
        def sync_milestones(self):
            pass

    world, outcome, _ = clean_world(ForgetsMilestones)
    accepted = next(m for m in world.psa.records("milestones") if m["accepted_on"])
    res = results(world, outcome)
    r = find(res, "billing: every billable item")
    assert any(f"milestone {accepted['id']}" in v and "on no invoice item" in v for v in r["violations"])
    assert world.kpis()["billing_lag_hours_count"] < 13


# ------------------------------------------------------------------ contract versions and revenue


def test_an_amendment_left_unpropagated_is_caught():
    class IgnoresAmendments(HandCore):
        def apply_amendment(self, opp_id):
            pass

    world, outcome, _ = clean_world(IgnoresAmendments)
    amended = opp(world, "D00001")
    r = find(results(world, outcome), "every system at the latest contract version")
    assert any(f"deal {amended}: revenue contract" in v and "at version 1, the CRM at 2" in v for v in r["violations"])
    assert any(f"line {opp(world, 'L000003')} carries version 1's terms" in v for v in r["violations"])
    assert world.kpis()["amendments_awaiting_propagation"] == 2


def test_a_schedule_going_back_to_an_older_version_is_caught():
    def tamper(hand, d):
        world = hand.world
        opp_id, line = world.crm.crm_id("D00001"), world.crm.crm_id("L000003")
        baseline = next(s for s in hand.versions(opp_id)[0]["ChangedLines"] if s["LineId"] == line)
        hand.call("billing", "POST", f"/billing_schedules/{hand.ids[opp_id]['schedules'][line]}", {
            "rate_card": [{"code": e["Role"], "unit_amount": e["Rate"]} for e in baseline["RateCard"]],
            "metadata": {"line": line, "version": "1"}}, corr=f"deal:{opp_id}", key="stale-replay")

    world, outcome, hand = clean_world(tamper=tamper)
    schedule = hand.ids[opp(world, "D00001")]["schedules"][opp(world, "L000003")]
    res = results(world, outcome)
    (v,) = find(res, "contract versions applied in order")["violations"]
    assert f"billing schedule {schedule} went back from version 2 to 1" in v and f"deal:{opp(world, 'D00001')}" in v
    assert not find(res, "every system at the latest contract version")["ok"]


def test_a_revenue_schedule_that_does_not_tie_is_caught():
    world, outcome, _ = clean_world()
    line = next(ln for ln in world.revenue.table("rev_lines").values() if ln["basis"] == "RATABLE")
    line["amount"] = str(Decimal(line["amount"]) + Decimal("0.01"))  # a cent lost to rounding
    r = find(results(world, outcome), "revenue schedules tie")
    (v,) = r["violations"]
    assert line["rc_id"] in v and line["pob_ref"] in v and "ratable" in v
    assert r["mismatched_contracts"] == 1


def test_revenue_recognised_into_a_closed_period_is_caught():
    def tamper(hand, d):
        revenue = hand.world.revenue
        revenue.close_period("2026-01")
        # a buggy engine: a line recognised into the period just closed
        revenue.record_effect("rev_line.posted", "rev_lines", "RL-9999999", None, rc_id="RC-000001",
                              period="2026-01", amount="1.00", moved_from=None)

    world, outcome, _ = clean_world(tamper=tamper)
    r = find(results(world, outcome), "nothing recognised or posted into a closed period")
    (v,) = r["violations"]
    assert "RL-9999999" in v and "2026-01" in v


# ------------------------------------------------------------------ traceability and loss


def test_postings_without_a_resolvable_source_lower_coverage():
    def tamper(hand, d):
        opp_id = hand.world.crm.crm_id("D00002")
        hand.call("erp", "PUT", "/projectActuals/eid:te:99999999:v1", {
            "project": f"eid:{opp_id}", "type": "time", "hours": "1.00", "costAmount": "10.00"}, corr="te:99999999")
        hand.call("billing", "POST", "/invoice_items", {
            "customer": hand.ids[opp_id]["billing_customer"], "amount": "10.00", "description": "goodwill",
            "source": {"type": "manual", "id": "someone"}}, key="manual")
        hand.call("erp", "POST", "/projectActuals", {"project": f"eid:{opp_id}", "type": "expense", "amount": "5.00"})

    world, outcome, _ = clean_world(tamper=tamper)
    res = results(world, outcome)
    r = find(res, "traceability")
    assert len(r["violations"]) == 3 and Decimal(r["coverage_percent"]) < 100
    assert any("PSA time entry 99999999 does not exist" in v and "corr te:99999999" in v for v in r["violations"])
    assert any("manual/someone names no source record" in v for v in r["violations"])
    assert any("externalId None" in v for v in r["violations"])
    assert any("99999999" in v for v in find(res, "ERP: approved time posted exactly once")["violations"])
    assert world.kpis()["traceability_coverage_percent"] == r["coverage_percent"]


def test_a_dead_letter_without_a_reason_is_lost():
    world, outcome, _ = clean_world()
    with world.store.transaction() as txn:
        txn.put("dlq", "ob00000042", {"id": "ob00000042", "op": "erp.post_actual", "corr": "te:1"})
    r = find(results(world, outcome), "nothing silently lost")
    assert r["violations"] == ["dlq:ob00000042 (erp.post_actual) has no reason"]
    assert world.kpis()["failed_postings"] == 1


def test_checks_do_not_pass_vacuously_when_the_core_does_nothing():
    world = BusinessWorld(seed=5, chaos=load_profile("none"), core_factory=IdleCore, header={},
                          firm_params=FirmParams(consultants=10, entities=1, currencies=("USD",)))

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        d.play_month(0)
        await d.to_month_end()

    outcome = world.run(script)
    res = results(world, outcome)
    assert find(res, "ERP: approved time posted exactly once")["violations"][0].startswith("nothing to check")
    assert find(res, "revenue schedules tie")["ok"]  # no PSA project either: nothing was expected there
    won = [o["Id"] for o in world.crm.records("Opportunity") if o["IsWon"]]
    r = find(res, "PSA: one project per won deal")
    assert r["checked"] == len(won) == len(r["violations"])
    lost = find(res, "nothing silently lost")
    assert sorted(v.split(" ", 1)[0] for v in lost["violations"]) == sorted(f"deal:{o}" for o in won)


# ------------------------------------------------------------------ evidence and KPIs


def test_violations_carry_the_event_chain_from_the_trace_or_the_effect_log():
    class BaselineRates(HandCore):
        def bill_rate(self, opp_id, line, role, day):
            return super().bill_rate(opp_id, line, role, "0000-00-00")

    for keep, marker in ((True, "trace: "), (False, "effects: ")):
        world, outcome, _ = clean_world(BaselineRates, keep_trace=keep)
        v = find(results(world, outcome), "ERP: time priced")["violations"][0]
        assert marker in v
        assert ("vendor.effect erp create projectActuals" in v) if keep else ("erp create projectActuals" in v)


def test_kpis_are_integers_or_decimal_strings_and_measure_the_month(clean):
    world, _, _, _ = clean
    kpis = world.kpis()
    assert all(type(v) in (int, str) for v in kpis.values()), kpis
    assert all(Decimal(v) >= 0 for v in kpis.values() if isinstance(v, str))
    json.dumps(kpis)
    assert kpis["project_setup_hours_count"] == 4 and kpis["projects_awaiting_setup"] == 0
    assert kpis["project_setup_hours_max"] == "34.00"  # the go-live backlog, provisioned 34 h after go-live
    assert kpis["billing_lag_hours_median"] == "1.00" and kpis["invoice_lag_hours_count"] == 13
    assert kpis["unbilled_approved_time_entries"] == 0
    assert kpis["traceability_coverage_percent"] == "100.00"
    assert kpis["automated_invoice_share_percent"] == "100.00"
    assert kpis["dlq_depth"] == 0 and kpis["revenue_schedule_mismatches"] == 0


def test_unbilled_time_is_valued_at_the_contract_rate():
    class NeverBillsTime(HandCore):
        def send_time(self, entry, snapshot, ref, sign):
            rate, amount, billable = self.priced(entry, snapshot)
            self.call("erp", "PUT", f"/projectActuals/eid:te:{ref}", {
                "project": f"eid:{self.deal_of_project(entry['project_id'])}", "type": "time",
                "tranDate": snapshot["date"], "hours": str(sign * Decimal(snapshot["hours"])), "costAmount": "0.00",
                "revenueAmount": str(sign * amount)})

    world, outcome, _ = clean_world(NeverBillsTime)
    kpis = world.kpis()
    assert kpis["unbilled_approved_time_entries"] == 4
    assert kpis["unbilled_approved_time_value.USD"] == "3580.00"  # 7.5h x 140 + 8h x 150 + 5h x 150 + 4h x 145
    r = find(results(world, outcome), "billing: every billable item")
    assert sum("on no invoice item" in v for v in r["violations"]) == 4


def test_billing_reversals_are_read_in_either_spelling():
    from harness.invariants_truth import time_source

    assert time_source("time_entry", "93000004:v2") == ("93000004", 2)
    assert time_source("adjustment", "93000004:v1:rev") == ("93000004", 1)
    assert time_source("adjustment", "te:93000004:v1:rev") == ("93000004", 1)
    assert time_source("time_entry", "te:93000004:v1") is None  # the contract: no prefix on the billing event
    assert time_source("time_entry", "93000004:v1:rev") is None  # a reversal is an adjustment
    assert time_source("milestone", "2700001") is None


def test_exception_aging_reads_virtual_or_unix_stamps():
    world, outcome, _ = clean_world()
    now = world.sim.now_us
    unix_now = world.sim.calendar.datetime_at(now).timestamp()  # exact: whole seconds of a virtual clock
    with world.store.transaction() as txn:
        txn.put("exceptions", "it:ex1", {"code": "X", "reason": "r", "opened_us": now - 2 * 3_600_000_000})
        txn.put("dlq", "ob1", {"op": "billing.create_item", "reason": "r",
                               "dead_us": int(unix_now) * 1_000_000 - 5 * 3_600_000_000})
    kpis = world.kpis()
    assert kpis["exception_age_hours_count"] == 2
    assert kpis["exception_age_hours_median"] == "2.00" and kpis["exception_age_hours_max"] == "5.00"
    assert kpis["exceptions_by_code.X"] == 1 and kpis["failed_postings"] == 1


def test_a_credit_note_naming_a_billed_version_takes_it_back():
    """An invoice the client holds is never rewritten: a billed version is
    taken back by a credit note whose memo names its reversal. Crediting an
    item whose entry still stands is then caught as under-billing, in billing
    and in the reconciliation; a credit note with any other memo is not read
    as taking back time."""
    def tamper(hand, d):
        world = hand.world
        item = next(i for i in world.billing.records("invoice_items")
                    if i["source"] and i["source"]["type"] == "time_entry" and i["invoice"])
        entry = item["source"]["id"].split(":v")[0]
        hand.call("billing", "POST", "/credit_notes", {"invoice": item["invoice"], "amount": item["amount"],
                                                       "reason": "billing_error", "memo": f"te:{entry}:v1:rev"},
                  corr=f"te:{entry}")
        hand.call("billing", "POST", "/credit_notes", {"invoice": item["invoice"], "amount": "1.00",
                                                       "reason": "other", "memo": "goodwill"}, corr=f"te:{entry}")
        hand.tampered = (entry, item["amount"])

    world, outcome, hand = clean_world(tamper=tamper)
    entry, amount = hand.tampered
    res = results(world, outcome)
    billed = find(res, "billing: every billable item")
    (v,) = [v for v in billed["violations"] if f"time entry {entry}" in v]
    assert "net billed 0.00" in v and f"crediting" in v
    rec = find(res, "reconciliation")
    assert any("billed" in v for v in rec["violations"])

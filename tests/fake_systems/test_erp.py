"""Contract tests of the ERP fake, through its HTTP-shaped interface.

Each test builds a small World around the fake, sets up the books the way a
finance team would (people actions), drives the API as the sync core would,
and checks the answers and the ground truth (records, effects). Expected
amounts are worked out by hand in the comments, never with the fake's own
helpers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import trio

from fake_systems.erp import Erp
from fake_systems.firm_generator import FirmParams, generate_firm
from fake_systems.firm_model import FLAG_DUPLICATE_NAME, FLAG_MISSING_TAX_ID
from fake_systems.vendor import VendorError
from simulator import HOUR, BusinessCalendar, Fixed
from simulator.faults import ChaosProfile, LinkRule, SystemFaults, Window
from simulator.random_streams import RandomStreams
from tests.fake_systems.world import World

B = "/erp/v1"
JAN_20, FEB_03 = "2026-01-20", "2026-02-03"


def world(chaos: ChaosProfile | None = None, **faults) -> tuple[Erp, World, dict]:
    """An ERP whose finance team has set up two subsidiaries:
    1 "Acme Inc." (US, USD, no tax on services) and 2 "Acme Ltd" (GB, GBP,
    20% VAT, customers need a VAT number); EUR->GBP at 0.85 and USD->GBP at
    0.79 from 2025-01-01; a department restricted to the UK and one open to all."""
    erp = Erp("erp")
    if faults:
        chaos = ChaosProfile("t", links=(LinkRule(latency=Fixed(1000)),), systems=(("erp", SystemFaults(**faults)),))
    w = World(erp, chaos=chaos)
    for code_ in ("USD", "GBP", "EUR"):
        erp.add_currency(code_)
    erp.set_fx_rate("EUR", "GBP", date(2025, 1, 1), "0.85")
    erp.set_fx_rate("USD", "GBP", date(2025, 1, 1), "0.79")
    us = erp.create_subsidiary("Acme Inc.", "US", "USD", external_id="LE-US")
    uk = erp.create_subsidiary("Acme Ltd", "GB", "GBP", external_id="LE-UK")
    uk_dept = erp.create_dimension("department", "Strategy UK", subsidiary=uk["id"], external_id="CC-UK")
    shared = erp.create_dimension("department", "Shared services")
    return erp, w, {"us": us["id"], "uk": uk["id"], "uk_dept": uk_dept["id"], "shared": shared["id"]}


def code(response) -> str:
    return response.json["issues"][0]["code"]


def path(response) -> str | None:
    return response.json["issues"][0].get("path")


def detail(response) -> str:
    return response.json["issues"][0]["detail"]


async def created(call, method: str, url: str, body: dict) -> dict:
    r = await call(method, url, json=body)
    assert r.status == 201, r.json
    return r.json


def uk_customer(ids: dict, **extra) -> dict:
    return {"companyName": "Globex Ltd", "subsidiary": ids["uk"], "currency": "EUR", "country": "GB",
            "taxRegistration": "GB123456789", **extra}


def invoice_lines() -> list[dict]:
    return [{"description": "Consulting, January", "quantity": "3", "rate": "333.33"},
            {"description": "Travel admin", "amount": "0.03"}]


# ------------------------------------------------------------------ bodies, keys and routes


def test_a_body_that_is_not_a_json_object_gets_a_400_in_the_erp_shape():
    erp, w, ids = world()

    async def script(call):
        r = await call("POST", f"{B}/customers", json=["Globex"])
        assert r.status == 400
        assert r.json["httpStatus"] == 400 and r.json["title"] == "Bad request"
        assert code(r) == "MALFORMED_REQUEST" and "JSON object" in detail(r)
        r = await call("PUT", f"{B}/invoices/eid:X", json=None)
        assert (r.status, code(r)) == (400, "MALFORMED_REQUEST")

    w.run(script)
    assert erp.records("customers") == [] and erp.records("invoices") == []


def test_unknown_paths_methods_fields_and_numbers_for_money_are_refused():
    erp, w, ids = world()

    async def script(call):
        r = await call("GET", f"{B}/widgets")
        assert (r.status, code(r)) == (404, "NOT_FOUND")
        r = await call("DELETE", f"{B}/customers/1")
        assert (r.status, code(r)) == (405, "METHOD_NOT_ALLOWED")
        r = await call("POST", f"{B}/customers", json=uk_customer(ids, balance="0.00"))
        assert (r.status, code(r), path(r)) == (400, "UNKNOWN_FIELD", "balance")
        customer = await created(call, "POST", f"{B}/customers", uk_customer(ids))
        r = await call("POST", f"{B}/invoices", json={"customer": customer["id"], "tranDate": JAN_20,
                                                      "lines": [{"description": "x", "amount": 100}]})
        assert (r.status, code(r), path(r)) == (400, "INVALID_FIELD_VALUE", "lines[0].amount")
        r = await call("POST", f"{B}/invoices", json={"customer": customer["id"], "tranDate": JAN_20,
                                                      "lines": [{"description": "x", "amount": "1.001"}]})
        assert (r.status, code(r)) == (400, "INVALID_AMOUNT")
        r = await call("GET", f"{B}/customers/not-a-key")
        assert (r.status, code(r)) == (400, "INVALID_KEY")

    w.run(script)
    assert len(erp.records("customers")) == 1 and erp.records("invoices") == []


# ------------------------------------------------------------------ customers


def test_customer_upsert_by_external_id_creates_then_updates_and_a_replay_changes_nothing():
    erp, w, ids = world()

    async def script(call):
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json=uk_customer(ids))
        assert r.status == 201
        assert r.json["externalId"] == "ACC-1" and r.json["entityId"] == "CUST-00001"
        assert r.headers["location"] == f"{B}/customers/{r.json['id']}"
        first = r.json
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json=uk_customer(ids))
        assert r.status == 200 and r.json["id"] == first["id"]
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json={"email": "ap@globex.example"})
        assert r.status == 200 and r.json["email"] == "ap@globex.example"
        assert r.json["companyName"] == "Globex Ltd"  # fields left out keep their values
        by_id = await call("GET", f"{B}/customers/{first['id']}")
        by_eid = await call("GET", f"{B}/customers/eid:ACC-1")
        assert by_id.json == by_eid.json == r.json

    w.run(script)
    assert len(erp.records("customers")) == 1
    effects = [(e["kind"], e["table"]) for e in erp.effects() if e["table"] == "customers"]
    assert effects == [("create", "customers"), ("update", "customers")]
    assert erp.effects("update")[-1]["detail"]["changed"] == ["email"]


def test_plain_post_is_not_idempotent_but_an_external_id_is_never_used_twice():
    erp, w, ids = world()

    async def script(call):
        a = await created(call, "POST", f"{B}/customers", uk_customer(ids))
        b = await created(call, "POST", f"{B}/customers", uk_customer(ids))
        assert a["id"] != b["id"]
        await created(call, "POST", f"{B}/customers", uk_customer(ids, externalId="ACC-7"))
        r = await call("POST", f"{B}/customers", json=uk_customer(ids, externalId="ACC-7"))
        assert (r.status, code(r), path(r)) == (400, "DUPLICATE_EXTERNAL_ID", "externalId")
        assert "eid:ACC-7" in detail(r)

    w.run(script)
    assert [c["externalId"] for c in erp.records("customers")] == [None, None, "ACC-7"]


def test_a_country_that_requires_a_tax_registration_rejects_a_customer_without_one():
    erp, w, ids = world()

    async def script(call):
        body = uk_customer(ids, country="DE")
        del body["taxRegistration"]
        r = await call("POST", f"{B}/customers", json=body)
        assert (r.status, code(r), path(r)) == (400, "TAX_REGISTRATION_REQUIRED", "taxRegistration")
        await created(call, "POST", f"{B}/customers", {**body, "taxRegistration": "DE123456789"})
        # The US asks for none.
        await created(call, "POST", f"{B}/customers", {"companyName": "Initech", "subsidiary": ids["us"]})

    w.run(script)
    assert [(c["country"], c["currency"]) for c in erp.records("customers")] == [("DE", "EUR"), ("US", "USD")]


def test_unknown_inactive_and_restricted_references_are_refused_naming_the_field():
    erp, w, ids = world()

    async def script(call):
        r = await call("POST", f"{B}/customers", json=uk_customer(ids, subsidiary=999))
        assert (r.status, code(r), path(r)) == (400, "INVALID_REFERENCE", "subsidiary")
        r = await call("POST", f"{B}/customers", json=uk_customer(ids, currency="JPY"))
        assert (code(r), path(r)) == ("INVALID_REFERENCE", "currency")
        us_customer = await created(call, "POST", f"{B}/customers",
                                    {"companyName": "Initech", "subsidiary": "eid:LE-US"})
        body = {"customer": us_customer["id"], "tranDate": JAN_20, "lines": invoice_lines()}
        r = await call("POST", f"{B}/invoices", json={**body, "department": 999})
        assert (code(r), path(r)) == ("INVALID_REFERENCE", "department")
        r = await call("POST", f"{B}/invoices", json={**body, "department": ids["uk_dept"]})
        assert (code(r), path(r)) == ("INVALID_REFERENCE", "department")
        assert "restricted to subsidiary" in detail(r)
        ok = await created(call, "POST", f"{B}/invoices", {**body, "department": ids["shared"]})
        assert ok["department"] == ids["shared"]
        erp.deactivate_dimension("department", ids["shared"])
        r = await call("POST", f"{B}/invoices", json={**body, "department": ids["shared"]})
        assert (code(r), path(r)) == ("INVALID_REFERENCE", "department") and "inactive" in detail(r)

    w.run(script)
    assert len(erp.records("invoices")) == 1


# ------------------------------------------------------------------ invoices, tax and currencies


def test_an_invoice_is_in_the_customers_currency_with_tax_and_a_rate_to_the_functional_currency():
    erp, w, ids = world()

    async def script(call):
        customer = await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        inv = await created(call, "POST", f"{B}/invoices",
                            {"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()})
        # Tax per line: 3 x 333.33 = 999.99, VAT 20% = 199.998 -> 200.00; 0.03, VAT 0.006 -> 0.01.
        # (On the subtotal it would be 1000.02 x 20% = 200.004 -> 200.00: a cent less.)
        assert [(ln["amount"], ln["taxAmount"]) for ln in inv["lines"]] == [("999.99", "200.00"), ("0.03", "0.01")]
        assert (inv["subtotal"], inv["taxTotal"], inv["total"]) == ("1000.02", "200.01", "1200.03")
        assert (inv["currency"], inv["customer"], inv["subsidiary"]) == ("EUR", customer["id"], ids["uk"])
        # 1200.03 EUR x 0.85 = 1020.0255 -> 1020.03 GBP (half up).
        assert (inv["exchangeRate"], inv["baseCurrency"], inv["baseTotal"]) == ("0.85", "GBP", "1020.03")
        assert (inv["tranId"], inv["status"], inv["amountRemaining"]) == ("INV-000001", "open", "1200.03")
        assert (inv["postingPeriodName"], inv["dueDate"], inv["taxCode"]) == ("Jan 2026", "2026-02-19", "standard")
        r = await call("POST", f"{B}/invoices", json={"customer": customer["id"], "currency": "USD",
                                                      "lines": invoice_lines()})
        assert (r.status, code(r), path(r)) == (400, "INVALID_FIELD_VALUE", "currency")
        r = await call("POST", f"{B}/invoices", json={"customer": customer["id"], "lines": [
            {"description": "x", "quantity": "2", "rate": "10.00", "amount": "25.00"}]})
        assert (code(r), path(r)) == ("INVALID_AMOUNT", "lines[0].amount")

    w.run(script)
    assert len(erp.records("invoices")) == 1


def test_a_cross_border_service_is_outside_the_scope_of_the_subsidiarys_tax():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:US-1",
                      {"companyName": "Initech", "subsidiary": ids["uk"], "currency": "USD", "country": "US"})
        inv = await created(call, "POST", f"{B}/invoices", {"customer": "eid:US-1", "tranDate": JAN_20,
                                                             "lines": [{"description": "x", "amount": "1001.50"}]})
        # No VAT; 1001.50 USD x 0.79 = 791.185 GBP, a half cent: rounded up to 791.19.
        assert (inv["taxCode"], inv["taxTotal"], inv["total"], inv["baseTotal"]) == (
            "outside_scope", "0.00", "1001.50", "791.19")

    w.run(script)


def test_a_new_rate_applies_from_its_effective_date_and_a_missing_one_is_refused():
    erp, w, ids = world()
    erp.set_fx_rate("EUR", "GBP", date(2026, 2, 1), "0.9000")
    erp.add_currency("CAD")

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        body = {"customer": "eid:ACC-1", "lines": [{"description": "x", "amount": "100.00", "taxable": False}]}
        jan = await created(call, "POST", f"{B}/invoices", {**body, "tranDate": JAN_20})
        feb = await created(call, "POST", f"{B}/invoices", {**body, "tranDate": FEB_03})
        assert (jan["exchangeRate"], jan["baseTotal"]) == ("0.85", "85.00")
        assert (feb["exchangeRate"], feb["baseTotal"]) == ("0.9000", "90.00")
        # Only EUR->GBP is stored: GBP->EUR is its inverse, 1 / 0.85 = 1.17647058823... to 10 places.
        r = await call("GET", f"{B}/exchangeRates", query={"from": "GBP", "to": "EUR", "date": JAN_20})
        assert r.json["items"] == [{"fromCurrency": "GBP", "toCurrency": "EUR", "date": JAN_20,
                                    "rate": "1.1764705882"}]
        await created(call, "PUT", f"{B}/customers/eid:CA-1", uk_customer(ids, currency="CAD"))
        r = await call("POST", f"{B}/invoices", json={**body, "customer": "eid:CA-1", "tranDate": JAN_20})
        assert (r.status, code(r), path(r)) == (400, "EXCHANGE_RATE_MISSING", "currency")

    w.run(script)
    assert len(erp.records("invoices")) == 2


def test_invoice_upsert_by_external_id_is_idempotent_until_money_is_applied():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        body = {"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()}
        first = await created(call, "PUT", f"{B}/invoices/eid:BILL-1", body)
        r = await call("PUT", f"{B}/invoices/eid:BILL-1", json=body)
        assert r.status == 200 and r.json["id"] == first["id"]
        changed = {**body, "lines": [{"description": "Consulting, January", "amount": "500.00"}]}
        r = await call("PUT", f"{B}/invoices/eid:BILL-1", json=changed)
        assert r.status == 200 and (r.json["total"], r.json["amountRemaining"]) == ("600.00", "600.00")
        erp.record_payment(first["id"], "100.00", on=date(2026, 1, 25))
        r = await call("PUT", f"{B}/invoices/eid:BILL-1", json=changed)  # a replay: still fine
        assert r.status == 200 and r.json["amountPaid"] == "100.00"
        r = await call("PUT", f"{B}/invoices/eid:BILL-1", json=body)
        assert (r.status, code(r)) == (400, "TRANSACTION_HAS_APPLICATIONS")
        erp.close_period(ids["uk"], "2026-01")
        r = await call("PUT", f"{B}/invoices/eid:BILL-1", json=changed)  # a replay after the close: still fine
        assert r.status == 200 and r.json["tranId"] == "INV-000001"
        r = await call("GET", f"{B}/invoices", query={"externalId": "BILL-1"})
        assert [i["tranId"] for i in r.json["items"]] == ["INV-000001"]

    w.run(script)
    kinds = [e["kind"] for e in erp.effects() if e["table"] == "invoices"]
    assert kinds == ["create", "update", "apply"]


def test_a_credit_memo_from_an_invoice_settles_part_of_it():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        inv = await created(call, "POST", f"{B}/invoices",
                            {"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()})
        memo = await created(call, "PUT", f"{B}/creditMemos/eid:CM-1", {
            "customer": "eid:ACC-1", "tranDate": JAN_20, "createdFrom": inv["id"],
            "lines": [{"description": "Goodwill", "amount": "100.00"}]})
        # 100.00 + 20% VAT = 120.00 credited; 1200.03 - 120.00 = 1080.03 still owed.
        assert (memo["total"], memo["amountApplied"], memo["status"], memo["tranId"]) == (
            "120.00", "120.00", "fully_applied", "CM-000001")
        r = await call("GET", f"{B}/invoices/{inv['id']}/status")
        assert (r.json["amountCredited"], r.json["amountRemaining"], r.json["status"]) == ("120.00", "1080.03", "open")
        assert r.json["links"] == [{"type": "creditMemo", "id": memo["id"], "tranId": "CM-000001",
                                    "tranDate": JAN_20, "amount": "120.00"}]

    w.run(script)


def test_payments_settle_an_invoice_and_its_status_reads_back():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        inv = await created(call, "PUT", f"{B}/invoices/eid:BILL-1",
                            {"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()})
        before_payment = inv["lastModifiedDate"]
        await w.sim.kernel.run_until(w.sim.now_us + HOUR)
        first = erp.record_payment("INV-000001", "1000.03")
        # 1000.03 EUR x 0.85 = 850.0255 -> 850.03 GBP.
        assert (first["tranId"], first["payment"], first["basePayment"]) == ("PYT-000001", "1000.03", "850.03")
        r = await call("GET", f"{B}/invoices/eid:BILL-1/status")
        assert (r.json["status"], r.json["amountPaid"], r.json["amountRemaining"]) == ("open", "1000.03", "200.00")
        erp.record_payment(inv["id"])  # the rest
        r = await call("GET", f"{B}/invoices/eid:BILL-1/status")
        assert (r.json["status"], r.json["amountPaid"], r.json["amountRemaining"]) == ("paid", "1200.03", "0.00")
        assert [(ln["tranId"], ln["amount"]) for ln in r.json["links"]] == [("PYT-000001", "1000.03"),
                                                                             ("PYT-000002", "200.00")]
        r = await call("GET", f"{B}/customerPayments", query={"invoice": "eid:BILL-1"})
        assert [p["payment"] for p in r.json["items"]] == ["1000.03", "200.00"]
        r = await call("GET", f"{B}/invoices", query={"status": "paid", "lastModifiedAfter": before_payment})
        assert [i["tranId"] for i in r.json["items"]] == ["INV-000001"]
        with pytest.raises(VendorError) as exc:
            erp.record_payment(inv["id"], "1.00")
        assert exc.value.code == "INVOICE_ALREADY_PAID"

    w.run(script)
    assert [e["kind"] for e in erp.effects() if e["table"] == "invoices"] == ["create", "apply", "apply"]


# ------------------------------------------------------------------ periods


def test_a_posting_dated_in_a_closed_period_is_refused_naming_the_period():
    erp, w, ids = world()
    erp.close_period(ids["uk"], "2026-01")

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        r = await call("PUT", f"{B}/invoices/eid:BILL-1",
                       json={"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()})
        assert (r.status, code(r), path(r)) == (400, "PERIOD_CLOSED", "tranDate")
        assert "Jan 2026" in detail(r) and "Acme Ltd" in detail(r)
        r = await call("POST", f"{B}/journalEntries", json={"subsidiary": ids["uk"], "tranDate": JAN_20, "lines": [
            {"account": 1, "debit": "10.00"}, {"account": 6, "credit": "10.00"}]})
        assert (r.status, code(r)) == (400, "PERIOD_CLOSED")
        feb = await created(call, "PUT", f"{B}/invoices/eid:BILL-1",
                            {"customer": "eid:ACC-1", "tranDate": FEB_03, "lines": invoice_lines()})
        assert feb["postingPeriodName"] == "Feb 2026"
        # The US books are not closed.
        await created(call, "POST", f"{B}/journalEntries", {"subsidiary": ids["us"], "tranDate": JAN_20, "lines": [
            {"account": 1, "debit": "10.00"}, {"account": 6, "credit": "10.00"}]})
        r = await call("GET", f"{B}/accountingPeriods", query={"subsidiary": ids["uk"]})
        assert [(p["periodName"], p["isClosed"]) for p in r.json["items"]] == [("Jan 2026", True), ("Feb 2026", False)]

    w.run(script)
    assert [i["tranDate"] for i in erp.records("invoices")] == [FEB_03]


def test_an_ar_locked_period_refuses_receivables_but_takes_journals_and_actuals():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        inv = await created(call, "POST", f"{B}/invoices",
                            {"customer": "eid:ACC-1", "tranDate": JAN_20, "lines": invoice_lines()})
        await created(call, "PUT", f"{B}/projects/eid:P-1", {"name": "Rollout", "customer": "eid:ACC-1"})
        erp.lock_ar_period(ids["uk"], date(2026, 1, 31))
        r = await call("POST", f"{B}/invoices", json={"customer": "eid:ACC-1", "tranDate": JAN_20,
                                                      "lines": invoice_lines()})
        assert (code(r), path(r)) == ("PERIOD_AR_LOCKED", "tranDate") and "Jan 2026" in detail(r)
        r = await call("POST", f"{B}/creditMemos", json={"customer": "eid:ACC-1", "tranDate": JAN_20,
                                                         "lines": invoice_lines()})
        assert code(r) == "PERIOD_AR_LOCKED"
        with pytest.raises(VendorError) as exc:
            erp.record_payment(inv["id"], on=date(2026, 1, 28))
        assert exc.value.code == "PERIOD_AR_LOCKED"
        await created(call, "POST", f"{B}/journalEntries", {"subsidiary": ids["uk"], "tranDate": JAN_20, "lines": [
            {"account": 2, "debit": "10.00"}, {"account": 6, "credit": "10.00"}]})
        await created(call, "POST", f"{B}/projectActuals", {"project": "eid:P-1", "type": "time", "tranDate": JAN_20,
                                                            "hours": "1.00", "costAmount": "50.00"})
        erp.open_period(ids["uk"], "2026-01")
        assert erp.record_payment(inv["id"], on=date(2026, 1, 28))["postingPeriodName"] == "Jan 2026"

    w.run(script)
    tables = ("invoices", "creditMemos", "customerPayments", "journalEntries")
    assert [len(erp.records(t)) for t in tables] == [1, 0, 1, 1]


def test_the_posting_period_follows_the_erps_own_time_zone():
    erp, w, ids = world()
    w.sim.calendar = BusinessCalendar(zones={"erp": "Australia/Sydney"})
    erp.close_period(ids["us"], "2026-01")
    # 31 Jan 20:00 UTC is 1 Feb 07:00 in Sydney (UTC+11 in summer).
    evening = w.sim.calendar.us_at(datetime(2026, 1, 31, 20, 0, tzinfo=UTC))

    async def script(call):
        await created(call, "POST", f"{B}/customers", {"companyName": "Initech", "subsidiary": ids["us"],
                                                       "externalId": "US-1"})
        await w.sim.kernel.run_until(evening)
        inv = await created(call, "POST", f"{B}/invoices",
                            {"customer": "eid:US-1", "lines": [{"description": "x", "amount": "10.00"}]})
        assert (inv["tranDate"], inv["postingPeriodName"]) == ("2026-02-01", "Feb 2026")

    w.run(script)


def test_clock_skew_moves_the_erps_business_date():
    erp, w, ids = world(clock_skew=2 * HOUR)
    # 31 Jan 23:00 UTC reads 1 Feb 01:00 on a clock two hours fast.
    late = w.sim.calendar.us_at(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))

    async def script(call):
        await created(call, "POST", f"{B}/customers", {"companyName": "Initech", "subsidiary": ids["us"],
                                                       "externalId": "US-1"})
        await w.sim.kernel.run_until(late)
        inv = await created(call, "POST", f"{B}/invoices",
                            {"customer": "eid:US-1", "lines": [{"description": "x", "amount": "10.00"}]})
        assert inv["postingPeriodName"] == "Feb 2026"

    w.run(script)


# ------------------------------------------------------------------ journals, projects and actuals


def test_a_journal_entry_must_balance_and_name_real_accounts():
    erp, w, ids = world()

    async def script(call):
        body = {"subsidiary": "eid:LE-UK", "tranDate": JAN_20, "memo": "accrual"}
        r = await call("POST", f"{B}/journalEntries", json={**body, "lines": [
            {"account": 3, "debit": "100.00"}, {"account": 6, "credit": "99.99"}]})
        assert (r.status, code(r), path(r)) == (400, "UNBALANCED_JOURNAL", "lines")
        assert "0.01" in detail(r)
        r = await call("POST", f"{B}/journalEntries", json={**body, "lines": [
            {"account": 3, "debit": "100.00"}, {"account": 999, "credit": "100.00"}]})
        assert (code(r), path(r)) == ("INVALID_REFERENCE", "lines[1].account")
        r = await call("POST", f"{B}/journalEntries", json={**body, "lines": [
            {"account": 3, "debit": "100.00", "credit": "100.00"}, {"account": 6, "credit": "100.00"}]})
        assert (code(r), path(r)) == ("INVALID_AMOUNT", "lines[0]")
        je = await created(call, "PUT", f"{B}/journalEntries/eid:ACR-1", {**body, "lines": [
            {"account": 3, "debit": "100.00", "department": ids["uk_dept"]}, {"account": 6, "credit": "100.00"}]})
        assert (je["tranId"], je["totalDebit"], je["totalCredit"], je["currency"]) == (
            "JE-000001", "100.00", "100.00", "GBP")
        assert je["lines"][0]["department"] == ids["uk_dept"]

    w.run(script)
    assert len(erp.records("journalEntries")) == 1


def test_projects_upsert_and_actuals_post_idempotently_by_project_and_period():
    erp, w, ids = world()

    async def script(call):
        customer = await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        project = await created(call, "PUT", f"{B}/projects/eid:P-1", {
            "name": "Rollout", "customer": "eid:ACC-1", "department": "eid:CC-UK", "startDate": "2026-01-01"})
        assert (project["customer"], project["subsidiary"], project["currency"]) == (customer["id"], ids["uk"], "EUR")
        assert project["projectNumber"] == "PRJ-00001" and project["status"] == "in_progress"
        time = {"project": "eid:P-1", "type": "time", "tranDate": JAN_20, "employee": "W000001",
                "hours": "7.50", "costAmount": "600.00", "revenueAmount": "1125.00"}
        te = await created(call, "PUT", f"{B}/projectActuals/eid:TE-1", time)
        # 600.00 EUR x 0.85 = 510.00 GBP; 1125.00 x 0.85 = 956.25.
        assert (te["baseCostAmount"], te["baseRevenueAmount"], te["department"]) == ("510.00", "956.25", ids["uk_dept"])
        assert te["postingPeriodName"] == "Jan 2026" and te["tranId"] == "PA-000001"
        r = await call("PUT", f"{B}/projectActuals/eid:TE-1", json=time)
        assert r.status == 200 and r.json["id"] == te["id"]
        await created(call, "POST", f"{B}/projectActuals", {
            "project": project["id"], "type": "expense", "tranDate": FEB_03, "amount": "45.10", "billable": True})
        r = await call("POST", f"{B}/projectActuals", json={**time, "amount": "1.00"})
        assert (code(r), path(r)) == ("INVALID_FIELD_VALUE", "amount")
        r = await call("GET", f"{B}/projectActuals", query={"project": "eid:P-1"})
        assert [(a["type"], a["postingPeriodName"]) for a in r.json["items"]] == [("time", "Jan 2026"),
                                                                                  ("expense", "Feb 2026")]
        r = await call("GET", f"{B}/projectActuals", query={"postingPeriod": te["postingPeriod"]})
        assert [a["tranId"] for a in r.json["items"]] == ["PA-000001"]
        await call("PUT", f"{B}/projects/eid:P-1", json={"status": "closed"})
        r = await call("POST", f"{B}/projectActuals", json={**time, "tranDate": FEB_03})
        assert (code(r), path(r)) == ("PROJECT_CLOSED", "project")

    w.run(script)
    assert len(erp.records("projectActuals")) == 2
    assert [e["kind"] for e in erp.effects() if e["table"] == "projectActuals"] == ["create", "create"]


# ------------------------------------------------------------------ duplicate customers


def test_a_hand_keyed_duplicate_is_found_by_name_and_merged_into_the_integrated_customer():
    erp, w, ids = world()
    hand = erp.enter_customer_by_hand("GLOBEX LTD.", ids["uk"], currency="EUR", tax_registration="GB123456789")

    async def script(call):
        kept = await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        await created(call, "POST", f"{B}/invoices", {"customer": hand["id"], "tranDate": JAN_20,
                                                      "lines": invoice_lines()})
        r = await call("GET", f"{B}/customers", query={"nameContains": "globex"})
        assert [c["id"] for c in r.json["items"]] == [hand["id"], kept["id"]]
        erp.merge_customers(hand["id"], kept["id"])
        r = await call("GET", f"{B}/customers/{hand['id']}")
        assert (r.status, code(r)) == (404, "RECORD_NOT_FOUND")
        assert f"merged into customer {kept['id']}" in detail(r)
        r = await call("GET", f"{B}/invoices", query={"customer": "eid:ACC-1"})
        assert r.json["totalResults"] == 1
        r = await call("GET", f"{B}/customers", query={"nameContains": "globex"})
        assert [c["id"] for c in r.json["items"]] == [kept["id"]]

    w.run(script)
    assert erp.effects("merge")[0]["detail"]["moved"]["invoices"] == 1


def test_a_hand_keyed_customer_can_be_linked_by_setting_its_external_id():
    erp, w, ids = world()
    hand = erp.enter_customer_by_hand("Globex Ltd.", ids["uk"], currency="EUR", tax_registration="GB123456789")
    assert (hand["externalId"], hand["entityId"]) == (None, "CUST-00001")

    async def script(call):
        r = await call("PUT", f"{B}/customers/{hand['id']}", json={"externalId": "ACC-1"})
        assert r.status == 200 and r.json["externalId"] == "ACC-1"
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json=uk_customer(ids))  # the core's upsert now updates
        assert r.status == 200 and (r.json["id"], r.json["companyName"]) == (hand["id"], "Globex Ltd")
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json={"externalId": "ACC-2"})
        assert (r.status, code(r)) == (400, "INVALID_FIELD_VALUE")
        r = await call("PUT", f"{B}/customers/999", json={"companyName": "Nobody"})
        assert (r.status, code(r)) == (404, "RECORD_NOT_FOUND")

    w.run(script)
    assert len(erp.records("customers")) == 1


def test_merging_away_the_customer_with_the_external_id_frees_it():
    erp, w, ids = world()

    async def script(call):
        integrated = await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        hand = erp.enter_customer_by_hand("Globex Limited", ids["uk"], currency="EUR", tax_registration="GB1")
        erp.merge_customers(integrated["id"], hand["id"])
        r = await call("GET", f"{B}/customers/eid:ACC-1")
        assert r.status == 404
        again = await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        assert again["id"] not in (integrated["id"], hand["id"])

    w.run(script)
    with pytest.raises(VendorError) as exc:
        erp.merge_customers(erp.records("customers")[0]["id"], erp.records("customers")[0]["id"])
    assert exc.value.code == "INVALID_FIELD_VALUE"


# ------------------------------------------------------------------ vendor faults


def test_over_the_concurrency_limit_a_request_fails_with_a_400_and_the_erps_code():
    erp, w, ids = world(concurrency_limit=1)
    answers = []

    async def script(call):
        async def one(ext):
            answers.append((ext, await call("PUT", f"{B}/customers/eid:{ext}", json=uk_customer(ids))))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "B")
        assert sorted(r.status for _, r in answers) == [201, 400]
        ext, refused = next((ext, r) for ext, r in answers if r.status == 400)
        assert code(refused) == "ACCT_CONCURRENCY_LIMIT_EXCEEDED"
        # Once the first is out of service, the retry goes through.
        retry = await call("PUT", f"{B}/customers/eid:{ext}", json=uk_customer(ids))
        assert retry.status == 201

    w.run(script)
    assert len(erp.records("customers")) == 2
    assert [e["kind"] for e in erp.effects() if e["table"] == "customers"] == ["create", "create"]


def test_a_record_changed_underneath_the_writer_is_refused_and_nothing_is_written():
    erp, w, ids = world(conflict=1)

    async def script(call):
        r = await call("PUT", f"{B}/customers/eid:ACC-1", json=uk_customer(ids))
        assert (r.status, code(r)) == (400, "RECORD_CHANGED_SINCE_LOADED")
        assert (await call("GET", f"{B}/subsidiaries")).status == 200  # reads are unaffected

    w.run(script)
    assert erp.records("customers") == []
    assert [e for e in erp.effects() if e["table"] == "customers"] == []


def test_server_errors_rate_limits_and_outages_take_the_erps_shape():
    erp, w, ids = world(error_5xx=1)

    async def script(call):
        r = await call("POST", f"{B}/customers", json=uk_customer(ids))
        assert (r.status, code(r)) == (500, "UNEXPECTED_ERROR")

    w.run(script)
    assert erp.records("customers") == []

    erp, w, ids = world(rate_limit=1)

    async def limited(call):
        assert (await call("GET", f"{B}/currencies")).status == 200
        r = await call("GET", f"{B}/currencies")
        assert (r.status, code(r), r.headers["retry-after"]) == (429, "ACCT_REQUEST_RATE_EXCEEDED", "1")

    w.run(limited)

    outage = ChaosProfile("down", links=(LinkRule(latency=Fixed(1000)),),
                          windows=(Window("outage", 0, HOUR, target="erp"),))
    erp, w, ids = world(chaos=outage)

    async def down(call):
        r = await call("GET", f"{B}/currencies")
        assert (r.status, code(r), r.headers["retry-after"]) == (503, "ACCOUNT_UNAVAILABLE", "300")
        await w.sim.kernel.run_until(HOUR)
        assert (await call("GET", f"{B}/currencies")).status == 200

    w.run(down)


def test_a_restart_keeps_records_counters_external_ids_and_periods():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        await created(call, "POST", f"{B}/invoices", {"customer": "eid:ACC-1", "tranDate": JAN_20,
                                                      "lines": invoice_lines()})
        erp.close_period(ids["uk"], "2026-01")
        await w.sim.kernel.run_until(w.sim.now_us + HOUR)
        w.sim.crash(erp)
        w.sim.restart(erp)
        r = await call("GET", f"{B}/customers/eid:ACC-1")
        assert r.status == 200 and r.json["companyName"] == "Globex Ltd"
        second = await created(call, "POST", f"{B}/invoices", {"customer": "eid:ACC-1", "tranDate": FEB_03,
                                                               "lines": invoice_lines()})
        assert second["tranId"] == "INV-000002"
        r = await call("POST", f"{B}/invoices", json={"customer": "eid:ACC-1", "tranDate": JAN_20,
                                                      "lines": invoice_lines()})
        assert code(r) == "PERIOD_CLOSED"
        r = await call("GET", f"{B}/exchangeRates", query={"from": "EUR", "to": "GBP", "date": JAN_20})
        assert r.json["items"][0]["rate"] == "0.85"

    w.run(script)
    assert [i["tranId"] for i in erp.records("invoices")] == ["INV-000001", "INV-000002"]


# ------------------------------------------------------------------ reads and seeding


def test_reference_data_lists_and_queries_page():
    erp, w, ids = world()
    erp.create_dimension("class", "Technology")
    erp.create_dimension("location", "London", subsidiary=ids["uk"])

    async def script(call):
        r = await call("GET", f"{B}/subsidiaries")
        assert [(s["name"], s["currency"], s["taxRegime"]["serviceRate"]) for s in r.json["items"]] == [
            ("Acme Inc.", "USD", "0.00"), ("Acme Ltd", "GBP", "0.20")]
        r = await call("GET", f"{B}/currencies")
        assert [c["symbol"] for c in r.json["items"]] == ["USD", "GBP", "EUR"]
        for table, names in (("departments", ["Strategy UK", "Shared services"]), ("classes", ["Technology"]),
                             ("locations", ["London"])):
            r = await call("GET", f"{B}/{table}")
            assert [d["name"] for d in r.json["items"]] == names
        r = await call("GET", f"{B}/accounts")
        assert "Accounts Receivable" in [a["acctName"] for a in r.json["items"]]
        r = await call("GET", f"{B}/accountingPeriods", query={"subsidiary": "eid:LE-UK", "date": FEB_03})
        assert [(p["periodName"], p["startDate"], p["endDate"], p["isClosed"], p["arLocked"])
                for p in r.json["items"]] == [("Feb 2026", "2026-02-01", "2026-02-28", False, False)]
        for n in range(3):
            await created(call, "POST", f"{B}/customers", {"companyName": f"C{n}", "subsidiary": ids["us"]})
        r = await call("GET", f"{B}/customers", query={"limit": 2, "offset": 1})
        assert ([c["companyName"] for c in r.json["items"]], r.json["totalResults"], r.json["hasMore"]) == (
            ["C1", "C2"], 3, False)
        r = await call("GET", f"{B}/customers", query={"balance": "0"})
        assert (r.status, code(r), path(r)) == (400, "INVALID_QUERY_PARAMETER", "balance")

    w.run(script)


def test_seeding_from_a_generated_firm():
    firm = generate_firm(FirmParams(consultants=200, entities=3), RandomStreams(5))
    twins = [c for c in firm.clients if FLAG_DUPLICATE_NAME in c.flags]
    originals = [c for c in firm.clients if c.id in {t.duplicate_of for t in twins}]
    missing_tax = [c for c in firm.clients if FLAG_MISSING_TAX_ID in c.flags]
    erp = Erp("erp")
    w = World(erp)
    ids = erp.load_firm(firm, clients=originals + missing_tax, client_external_ids=False)
    assert erp.load_firm(firm) == ids  # loading again adds nothing
    subs = erp.records("subsidiaries")
    assert [(s["externalId"], s["name"], s["currency"]) for s in subs] == [
        (e.id, e.name, e.functional_currency) for e in firm.entities]
    assert {c["symbol"] for c in erp.records("currencies")} == set(firm.params.currencies) | {
        e.functional_currency for e in firm.entities}
    depts = erp.records("departments")
    assert [(d["externalId"], d["subsidiary"]) for d in depts] == [
        (cc.id, erp.erp_id(cc.entity_id)) for cc in firm.cost_centres]
    customers = erp.records("customers")
    assert [c["companyName"] for c in customers] == [c.name for c in originals + missing_tax]
    assert all(c["externalId"] is None for c in customers)  # keyed in by hand, long ago
    assert erp.effects() == []  # the starting point, not effects

    async def script(call):
        # The CRM's twin, spelled differently, arrives through the API.
        twin = twins[0]
        twin_body = {"companyName": twin.name, "subsidiary": f"eid:{twin.bill_to_entity_id}",
                     "currency": twin.currency, "country": twin.country, "taxRegistration": twin.tax_id or "X1"}
        await created(call, "PUT", f"{B}/customers/eid:{twin.id}", twin_body)
        r = await call("GET", f"{B}/subsidiaries")
        assert r.json["totalResults"] == len(firm.entities)

    w.run(script)
    assert len(erp.records("customers")) == len(customers) + 1


def test_an_actual_moved_to_another_project_lists_under_it_in_creation_order():
    erp, w, ids = world()

    async def script(call):
        await created(call, "PUT", f"{B}/customers/eid:ACC-1", uk_customer(ids))
        for p in ("P-1", "P-2"):
            await created(call, "PUT", f"{B}/projects/eid:{p}", {
                "name": p, "customer": "eid:ACC-1", "department": "eid:CC-UK", "startDate": "2026-01-01"})
        time = {"type": "time", "tranDate": JAN_20, "employee": "W000001", "hours": "1.00", "costAmount": "80.00",
                "revenueAmount": "150.00"}
        for te, p in (("TE-1", "P-1"), ("TE-2", "P-1"), ("TE-3", "P-2")):
            await created(call, "PUT", f"{B}/projectActuals/eid:{te}", {**time, "project": f"eid:{p}"})
        moved = await call("PUT", f"{B}/projectActuals/eid:TE-1", json={**time, "project": "eid:P-2"})
        assert moved.status == 200, moved.json

        async def listed(p):
            r = await call("GET", f"{B}/projectActuals", query={"project": f"eid:{p}"})
            return [a["externalId"] for a in r.json["items"]]

        assert await listed("P-1") == ["TE-2"]
        assert await listed("P-2") == ["TE-1", "TE-3"]

    w.run(script)

"""Contract tests of the billing fake, through its HTTP-shaped API only.

Expected amounts are worked by hand in the comments beside them. The world
starts on Monday 2026-01-05 (the calendar's default epoch), so business dates
below count from there.
"""

import pytest
import trio

from fake_systems.billing import Billing
from simulator import DAY, HOUR, MILLISECOND, MINUTE, SECOND, Fixed, NetworkError
from simulator.faults import ChaosProfile, LinkRule, SystemFaults, Window
from tests.fake_systems.world import World

LINK = LinkRule(latency=Fixed(1 * MILLISECOND))


def make_world(faults=None, *, statuses=None, after_commit="0.5", windows=(), seed=1):
    chaos = ChaosProfile("t", links=(LINK,), windows=windows, systems=(("billing", faults),) if faults else ())
    fake = Billing("billing", error_5xx_after_commit=after_commit)
    w = World(fake, chaos=chaos, seed=seed)
    sink = w.add_sink("core", statuses)
    return w, fake, sink


def later(w, us):
    return w.sim.kernel.run_until(w.sim.now_us + us)


async def customer(call, **extra):
    r = await call("POST", "/v1/customers", json={"name": "Acme Ltd", "currency": "usd", **extra})
    assert r.status == 200, r.json
    return r.json["id"]


async def tm_schedule(call, cus, **extra):
    body = {"customer": cus, "contract_ref": "D1/L1", "model": "time_and_materials", "start_date": "2026-01-01",
            "rate_card": [{"code": "SENIOR", "unit_amount": "150.00", "description": "Senior consultant"}], **extra}
    r = await call("POST", "/v1/billing_schedules", json=body)
    assert r.status == 200, r.json
    return r.json["id"]


async def item(call, cus, **fields):
    if "price_code" not in fields and fields.get("source", {}).get("type") != "milestone":
        fields.setdefault("description", "Work")
    r = await call("POST", "/v1/invoice_items", json={"customer": cus, **fields})
    assert r.status == 200, r.json
    return r.json


# ---------------------------------------------------------------- amounts


def test_line_amounts_round_half_up_once_and_tax_rounds_on_the_subtotal():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call, tax_percent="8.875")
        bs = await tm_schedule(call, cus)
        a = await item(call, cus, schedule=bs, price_code="SENIOR", quantity="7.25", source={"type": "time_entry", "id": "TE1"})
        assert (a["description"], a["unit_amount"], a["amount"]) == ("Senior consultant", "150.00", "1087.50")  # 7.25 x 150
        b = await item(call, cus, unit_amount="0.03", quantity="1.5")
        assert b["amount"] == "0.05"  # 0.045 rounds half up (half-even would give 0.04)
        r = await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})
        inv = r.json
        # subtotal 1087.55; tax 1087.55 x 8.875% = 96.5200625 -> 96.52; total 1184.07
        assert (inv["subtotal"], inv["tax"], inv["total"], inv["amount_remaining"]) == ("1087.55", "96.52", "1184.07", "1184.07")

    w.run(script)


def test_tax_is_rounded_half_up_once_on_the_subtotal_not_per_line():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call, tax_percent="5")
        for _ in range(5):
            await item(call, cus, amount="0.10")
        r = await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})
        # subtotal 0.50; tax 0.025 -> 0.03 half up (half-even or down: 0.02; per line 5 x 0.01 = 0.05)
        assert (r.json["subtotal"], r.json["tax"], r.json["total"]) == ("0.50", "0.03", "0.53")
        neg = await item(call, cus, unit_amount="-0.03", quantity="1.5")
        assert neg["amount"] == "-0.05"  # -0.045 rounds away from zero, like the line it reverses

    w.run(script)


def test_amounts_follow_the_currency_minor_unit():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call, currency="JPY")
        assert (await item(call, cus, unit_amount="1000", quantity="1.5"))["amount"] == "1500"
        r = await call("POST", "/v1/invoice_items", json={"customer": cus, "description": "x", "amount": "10.5"})
        assert r.status == 400 and r.json["error"]["param"] == "amount"

    w.run(script)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("path, body, code, param", [
    ("/v1/customers", {"currency": "usd"}, "parameter_missing", "name"),
    ("/v1/customers", {"name": "A", "currency": "XYZ"}, "parameter_invalid", "currency"),
    ("/v1/customers", {"name": "A", "currency": "usd", "colour": "red"}, "parameter_unknown", "colour"),
    ("/v1/customers", {"name": "A", "currency": "usd", "tax_percent": "120"}, "parameter_invalid", "tax_percent"),
    ("/v1/invoice_items", {"customer": "cus_000001", "description": "x", "amount": "10.005"}, "parameter_invalid", "amount"),
    ("/v1/invoice_items", {"customer": "cus_000001", "description": "x", "amount": "1", "unit_amount": "1"},
     "parameter_invalid", "unit_amount"),
    ("/v1/invoice_items", {"customer": "cus_000001", "description": "x"}, "parameter_missing", "amount"),
    ("/v1/invoice_items", {"customer": "cus_999999", "amount": "1.00"}, "resource_missing", "customer"),
    ("/v1/invoice_items", {"customer": "cus_000001", "amount": "1.00", "source": {"type": "timesheet", "id": "T"}},
     "parameter_invalid", "source[type]"),
    ("/v1/billing_schedules", {"customer": "cus_000001", "contract_ref": "D", "model": "fixed_fee", "start_date": "2026-01-01",
                               "rate_card": []}, "parameter_invalid", "rate_card"),
    ("/v1/billing_schedules", {"customer": "cus_000001", "contract_ref": "D", "model": "retainer", "start_date": "2026-01-01"},
     "parameter_missing", "recurring"),
    ("/v1/billing_schedules", {"customer": "cus_000001", "contract_ref": "D", "model": "retainer", "start_date": "1/2/2026",
                               "recurring": {"amount": "1.00"}}, "parameter_invalid", "start_date"),
    ("/v1/payments", {"invoice": "in_000001"}, "resource_missing", "invoice"),
])
def test_writes_are_validated_with_the_vendors_error_shape(path, body, code, param):
    w, fake, _ = make_world()

    async def script(call):
        await customer(call)
        r = await call("POST", path, json=body)
        assert r.status == 400
        err = r.json["error"]
        assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", code, param)
        assert err["message"]

    w.run(script)
    assert fake.counts().get("invoice_items", 0) == 0 and len(fake.records("customers")) == 1


@pytest.mark.parametrize("body", [[1, 2], "name=Acme", None, 7])
def test_a_body_that_is_not_a_json_object_is_a_400_with_a_message(body):
    w, fake, _ = make_world()

    async def script(call):
        r = await call("POST", "/v1/customers", json=body)
        assert r.status == 400 and r.json["error"]["code"] == "body_invalid"
        assert "JSON object" in r.json["error"]["message"]

    w.run(script)
    assert fake.records("customers") == []


def test_unknown_urls_methods_and_ids():
    w, fake, _ = make_world()

    async def script(call):
        assert (await call("GET", "/v1/nothing")).json["error"]["code"] == "unrecognized_url"
        assert (await call("DELETE", "/v1/customers")).status == 405
        r = await call("GET", "/v1/invoices/in_999999")
        assert (r.status, r.json["error"]["code"]) == (404, "resource_missing")
        r = await call("GET", "/v1/invoices", query={"colour": "red"})
        assert (r.status, r.json["error"]["param"]) == (400, "colour")

    w.run(script)


# ---------------------------------------------------------------- invoices and payments


def test_invoice_lifecycle_draft_open_paid_and_void():
    w, fake, sink = make_world()
    fake.register_webhook("core:/hooks/billing")

    async def script(call):
        cus = await customer(call)
        first = await item(call, cus, amount="600.00")
        r = await call("POST", "/v1/invoices", json={"customer": cus})
        draft = r.json
        assert (draft["status"], draft["number"], draft["total"]) == ("draft", None, "600.00")
        await item(call, cus, amount="400.00", invoice=draft["id"])
        r = await call("POST", f"/v1/invoices/{draft['id']}/finalize")
        inv = r.json
        assert (inv["status"], inv["number"], inv["total"]) == ("open", "C00001-0001", "1000.00")
        assert inv["due_date"] == "2026-02-04"  # 2026-01-05 + 30 days
        assert (await call("GET", f"/v1/invoice_items/{first['id']}")).json["status"] == "invoiced"
        r = await call("POST", "/v1/invoice_items", json={"customer": cus, "description": "x", "amount": "1.00",
                                                          "invoice": inv["id"]})
        assert r.json["error"]["code"] == "invoice_not_editable"
        assert (await call("POST", "/v1/payments", json={"invoice": inv["id"], "amount": "250.00"})).status == 200
        r = await call("POST", "/v1/payments", json={"invoice": inv["id"], "amount": "750.01"})
        assert r.json["error"]["code"] == "amount_too_large"
        assert (await call("GET", f"/v1/invoices/{inv['id']}")).json["amount_remaining"] == "750.00"
        fake.record_payment_received(inv["id"])  # the clerk matches the rest from the bank statement
        r = await call("GET", f"/v1/invoices/{inv['id']}")
        assert (r.json["status"], r.json["amount_paid"], r.json["amount_remaining"]) == ("paid", "1000.00", "0.00")
        assert (await call("POST", f"/v1/invoices/{inv['id']}/void")).json["error"]["code"] == "invoice_not_voidable"
        # a second invoice, voided by the clerk: its items do not come back by themselves
        other = await item(call, cus, amount="50.00")
        r = await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})
        assert r.json["number"] == "C00001-0002"
        fake.void_invoice(r.json["id"])
        assert (await call("GET", f"/v1/invoices/{r.json['id']}")).json["status"] == "void"
        assert (await call("GET", f"/v1/invoice_items/{other['id']}")).json["status"] == "void"
        await later(w, HOUR)

    w.run(script)
    types = [d["json"]["type"] for d in sink.received]
    assert types.count("payment.succeeded") == 2 and types.count("invoice.paid") == 1
    assert "invoice.voided" in types and "invoice.finalized" in types


def test_auto_finalize_picks_the_pending_unheld_items_of_that_contract_only():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        bs1 = await tm_schedule(call, cus)
        bs2 = await tm_schedule(call, cus, contract_ref="D2/L1")
        a = await item(call, cus, schedule=bs1, amount="100.00", source={"type": "time_entry", "id": "TE1"})
        held = await item(call, cus, schedule=bs1, amount="200.00", source={"type": "time_entry", "id": "TE2"})
        await item(call, cus, schedule=bs2, amount="300.00")
        assert (await call("POST", "/v1/holds", json={"invoice_item": held["id"], "reason": "disputed"})).status == 200
        r = await call("POST", "/v1/invoices", json={"customer": cus, "schedule": bs1, "auto_finalize": True})
        assert r.json["status"] == "open" and r.json["contract_ref"] == "D1/L1"
        assert [ln["invoice_item"] for ln in r.json["lines"]] == [a["id"]]
        r = await call("POST", "/v1/invoices", json={"customer": cus, "schedule": bs1, "auto_finalize": True})
        assert r.json["error"]["code"] == "invoice_no_lines"
        r = await call("GET", "/v1/invoice_items", query={"customer": cus, "status": "pending"})
        assert [i["amount"] for i in r.json["data"]] == ["300.00"]

    w.run(script)
    assert len(fake.records("invoices")) == 1


def test_finalize_can_sweep_items_that_arrived_after_the_draft_and_refuses_a_negative_total():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        r = await call("POST", "/v1/invoices", json={"customer": cus, "pending_items": "exclude"})
        draft = r.json["id"]
        await item(call, cus, amount="-100.00")
        r = await call("POST", f"/v1/invoices/{draft}/finalize", json={"pending_items": "include"})
        assert r.json["error"]["code"] == "invoice_total_negative"
        got = (await call("GET", f"/v1/invoices/{draft}")).json
        assert (got["status"], got["lines"]) == ("draft", [])  # nothing changed
        await item(call, cus, amount="150.00")
        r = await call("POST", f"/v1/invoices/{draft}/finalize", json={"pending_items": "include"})
        assert (r.json["status"], r.json["total"], len(r.json["lines"])) == ("open", "50.00", 2)

    w.run(script)


def test_credit_notes_before_and_after_payment():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        await item(call, cus, amount="100.00")
        inv = (await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})).json["id"]
        r = await call("POST", "/v1/credit_notes", json={"invoice": inv, "amount": "30.00", "reason": "billing_error"})
        assert (r.json["type"], r.json["number"]) == ("pre_payment", "C00001-0001-CN01")
        assert (await call("GET", f"/v1/invoices/{inv}")).json["amount_remaining"] == "70.00"
        await call("POST", "/v1/payments", json={"invoice": inv, "amount": "70.00"})
        r = await call("POST", "/v1/credit_notes", json={"invoice": inv, "amount": "70.01"})
        assert r.json["error"]["code"] == "amount_too_large"  # only 70.00 was paid
        fake.issue_credit_note(inv, "20.00")
        assert (await call("GET", f"/v1/customers/{cus}")).json["balance"] == "-20.00"  # credit owed to the client

    w.run(script)


def test_lists_are_newest_first_paged_and_filtered():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        bs = await tm_schedule(call, cus)
        for n in range(1, 6):
            await item(call, cus, schedule=bs if n % 2 else None, amount=f"{n}.00", source={"type": "time_entry", "id": f"TE{n}"})
        r = await call("GET", "/v1/invoice_items", query={"customer": cus, "limit": "2"})
        assert ([i["amount"] for i in r.json["data"]], r.json["has_more"]) == (["5.00", "4.00"], True)
        r = await call("GET", "/v1/invoice_items", query={"customer": cus, "limit": "2", "starting_after": r.json["data"][-1]["id"]})
        assert [i["amount"] for i in r.json["data"]] == ["3.00", "2.00"]
        r = await call("GET", "/v1/invoice_items", query={"schedule": bs})
        assert [i["amount"] for i in r.json["data"]] == ["5.00", "3.00", "1.00"]
        r = await call("GET", "/v1/invoice_items", query={"source_id": "TE4"})
        assert [i["amount"] for i in r.json["data"]] == ["4.00"]
        await call("POST", "/v1/invoices", json={"customer": cus, "schedule": bs, "auto_finalize": True})
        await call("POST", "/v1/invoices", json={"customer": cus, "pending_items": "exclude"})
        r = await call("GET", "/v1/invoices", query={"contract_ref": "D1/L1", "status": "open"})
        assert [(i["total"], i["status"]) for i in r.json["data"]] == [("9.00", "open")]
        r = await call("GET", "/v1/invoices", query={"customer": cus})
        assert [i["status"] for i in r.json["data"]] == ["draft", "open"]
        assert (await call("GET", "/v1/invoices", query={"limit": "0"})).status == 400

    w.run(script)



def test_two_customers_records_stay_apart_in_lists_invoices_and_holds():
    # Interleaved records of two customers on two contracts: every read that
    # narrows by customer, schedule or contract must see exactly its own,
    # newest first, and an invoice or a hold must take only its customer's.
    w, fake, _ = make_world()

    async def script(call):
        acme, beta = await customer(call), await customer(call, name="Beta plc")
        bs = {acme: await tm_schedule(call, acme), beta: await tm_schedule(call, beta, contract_ref="D2/L1")}
        made = {acme: [], beta: []}
        for n in range(1, 9):
            cus = acme if n % 3 else beta
            made[cus].append(await item(call, cus, schedule=bs[cus], amount=f"{n}.00",
                                        source={"type": "time_entry", "id": "TE-shared" if n in (4, 6) else f"TE{n}"}))
        for cus in (acme, beta):
            seen, query = [], {"customer": cus, "limit": "2"}
            while True:
                r = await call("GET", "/v1/invoice_items", query=query)
                seen += [i["id"] for i in r.json["data"]]
                if not r.json["has_more"]:
                    break
                query = dict(query, starting_after=seen[-1])
            assert seen == [i["id"] for i in reversed(made[cus])]
            r = await call("GET", "/v1/invoice_items", query={"schedule": bs[cus]})
            assert [i["id"] for i in r.json["data"]] == [i["id"] for i in reversed(made[cus])]
        # TE-shared is on one item of each customer: 4.00 (Acme) and 6.00 (Beta)
        r = await call("POST", "/v1/holds", json={"customer": acme, "source": {"type": "time_entry", "id": "TE-shared"},
                                                  "reason": "disputed"})
        assert r.status == 200, r.json
        assert r.json["items"] == [i["id"] for i in made[acme] if i["amount"] == "4.00"]
        r = await call("POST", "/v1/invoices", json={"customer": beta, "schedule": bs[beta], "auto_finalize": True})
        assert [ln["invoice_item"] for ln in r.json["lines"]] == [i["id"] for i in made[beta]]
        assert r.json["total"] == "9.00"  # 3 + 6
        r = await call("GET", "/v1/invoices", query={"contract_ref": "D1/L1"})
        assert r.json["data"] == []
        r = await call("GET", "/v1/invoices", query={"contract_ref": "D2/L1", "customer": beta})
        assert [i["total"] for i in r.json["data"]] == ["9.00"]
        r = await call("GET", "/v1/invoice_items", query={"customer": acme, "status": "held"})
        assert [i["amount"] for i in r.json["data"]] == ["4.00"]

    w.run(script)


# ---------------------------------------------------------------- holds and milestones


def test_held_milestone_never_invoices_until_the_client_signs_off():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        r = await call("POST", "/v1/billing_schedules", json={
            "customer": cus, "contract_ref": "D1/L2", "model": "fixed_fee", "start_date": "2026-01-01",
            "milestones": [{"ref": "M1", "description": "Design sign-off", "amount": "4000.00"}]})
        bs = r.json["id"]
        m1 = {"type": "milestone", "id": "M1"}
        hold = (await call("POST", "/v1/holds", json={"customer": cus, "source": m1, "reason": "awaiting acceptance"})).json
        it = await item(call, cus, schedule=bs, source=m1)
        assert (it["amount"], it["description"], it["status"]) == ("4000.00", "Design sign-off", "held")
        r = await call("POST", "/v1/invoice_items", json={"customer": cus, "schedule": bs, "source": {"type": "milestone", "id": "M9"}})
        assert r.json["error"]["param"] == "source[id]"
        r = await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})
        assert r.json["error"]["code"] == "invoice_no_lines"
        assert fake.run_monthly_billing() == []
        r = await call("POST", f"/v1/holds/{hold['id']}/release")
        assert r.json["status"] == "released" and r.json["items"] == [it["id"]]
        assert (await call("POST", f"/v1/holds/{hold['id']}/release")).json["error"]["code"] == "hold_not_active"
        r = await call("POST", "/v1/invoices", json={"customer": cus, "auto_finalize": True})
        assert r.json["total"] == "4000.00"
        r = await call("POST", "/v1/holds", json={"invoice_item": it["id"]})
        assert r.json["error"]["code"] == "item_already_invoiced"
        r = await call("POST", f"/v1/billing_schedules/{bs}", json={"milestones": [
            {"ref": "M1", "description": "Design sign-off", "amount": "4500.00"}]})
        assert r.json["error"]["code"] == "milestone_already_billed"

    w.run(script)


def test_monthly_billing_run_charges_each_retainer_period_once_and_invoices_per_contract():
    w, fake, _ = make_world()

    async def script(call):
        cus = await customer(call)
        r = await call("POST", "/v1/billing_schedules", json={
            "customer": cus, "contract_ref": "D1/L3", "model": "retainer", "start_date": "2026-01-01",
            "recurring": {"amount": "5000.00", "interval": "month"}})
        ret = r.json["id"]
        tm = await tm_schedule(call, cus)
        await item(call, cus, schedule=tm, price_code="SENIOR", quantity="8", source={"type": "time_entry", "id": "TE1"})
        await item(call, cus, schedule=tm, price_code="SENIOR", quantity="2.5", source={"type": "time_entry", "id": "TE2"})
        hold = (await call("POST", "/v1/holds", json={"customer": cus, "source": {"type": "time_entry", "id": "TE3"}})).json
        await item(call, cus, schedule=tm, price_code="SENIOR", quantity="1", source={"type": "time_entry", "id": "TE3"})

        first = fake.run_monthly_billing()  # 2026-01-05: January's retainer, and the T&M time
        assert sorted((i["schedule"], i["total"], i["status"]) for i in first) == [
            (ret, "5000.00", "open"), (tm, "1575.00", "open")]  # 10.5 h x 150.00; TE3 held
        assert fake.run_monthly_billing() == []  # nothing new: no double charge

        await later(w, 56 * DAY)  # 2026-03-02: February and March are due
        fake.client_signs_off(hold["id"])
        second = fake.run_monthly_billing()
        assert sorted((i["schedule"], i["total"]) for i in second) == [(ret, "10000.00"), (tm, "150.00")]
        r = await call("GET", "/v1/invoice_items", query={"schedule": ret, "limit": "100"})
        assert sorted(i["source"]["id"] for i in r.json["data"]) == [
            f"{ret}:2026-01-01", f"{ret}:2026-02-01", f"{ret}:2026-03-01"]

    w.run(script)
    invoiced = [e["id"] for e in fake.effects("invoice_item.invoice")]
    assert len(invoiced) == len(set(invoiced)) == 6  # 3 retainer months + TE1, TE2, TE3, none twice


# ---------------------------------------------------------------- idempotency


CUSTOMER = {"name": "Acme Ltd", "currency": "usd", "external_ref": "CL1"}


def test_a_keyed_create_is_replayed_and_an_unkeyed_retry_duplicates():
    w, fake, _ = make_world()

    async def script(call):
        first = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k1"})
        again = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k1"})
        assert (again.status, again.json) == (first.status, first.json)
        assert again.header("idempotent-replayed") == "true" and first.header("idempotent-replayed") is None
        r = await call("POST", "/v1/customers", json={**CUSTOMER, "name": "Other"}, headers={"Idempotency-Key": "k1"})
        assert (r.status, r.json["error"]["type"]) == (400, "idempotency_error")
        await call("POST", "/v1/customers", json=CUSTOMER)
        await call("POST", "/v1/customers", json=CUSTOMER)
        r = await call("GET", "/v1/customers", query={"external_ref": "CL1"})
        assert len(r.json["data"]) == 3

    w.run(script)
    assert len(fake.effects("customer.create")) == 3


def test_a_validation_error_is_not_saved_under_the_key():
    w, fake, _ = make_world()

    async def script(call):
        r = await call("POST", "/v1/customers", json={"name": "Acme"}, headers={"Idempotency-Key": "k"})
        assert r.status == 400
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.status == 200 and r.header("idempotent-replayed") is None

    w.run(script)


def test_an_overlong_key_is_refused():
    w, fake, _ = make_world()

    async def script(call):
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k" * 256})
        assert (r.status, r.json["error"]["code"]) == (400, "idempotency_key_invalid")
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k" * 255})
        assert r.status == 200

    w.run(script)
    assert len(fake.records("customers")) == 1


def test_keys_expire_after_24_hours():
    w, fake, _ = make_world()

    async def script(call):
        await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        await later(w, 23 * HOUR)
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.header("idempotent-replayed") == "true"
        await later(w, 1 * HOUR)
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.status == 200 and r.header("idempotent-replayed") is None and r.json["id"] == "cus_000002"

    w.run(script)


def test_reusing_a_key_while_the_first_request_is_in_service_is_a_409():
    w, fake, _ = make_world()
    fake.service_time = Fixed(50 * MILLISECOND)
    statuses = []

    async def script(call):
        async def send():
            r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
            statuses.append((r.status, r.json.get("error", {}).get("code")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(send)
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.header("idempotent-replayed") == "true"

    w.run(script)
    assert sorted(statuses) == [(200, None), (409, "idempotency_key_in_use")]
    assert len(fake.records("customers")) == 1


@pytest.mark.parametrize("after_commit, customers", [("1", 1), ("0", 0)])
def test_a_500_during_execution_is_saved_and_replayed_even_after_the_fault_heals(after_commit, customers):
    w, fake, _ = make_world(SystemFaults(error_5xx="100%"), after_commit=after_commit)

    async def script(call):
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert (r.status, r.json["error"]["type"]) == (500, "api_error")
        w.sim.heal()
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.status == 500 and r.header("idempotent-replayed") == "true"
        assert len((await call("GET", "/v1/customers")).json["data"]) == customers  # look it up, as a client must
        assert (await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k2"})).status == 200

    w.run(script)
    assert len(fake.records("customers")) == customers + 1


def test_an_unkeyed_retry_after_a_committed_500_bills_twice():
    w, fake, _ = make_world(SystemFaults(error_5xx="100%"), after_commit="1")

    async def script(call):
        assert (await call("POST", "/v1/customers", json=CUSTOMER)).status == 500  # committed all the same
        body = {"customer": "cus_000001", "description": "x", "amount": "10.00", "source": {"type": "time_entry", "id": "TE1"}}
        assert (await call("POST", "/v1/invoice_items", json=body)).status == 500
        w.sim.heal()
        assert (await call("POST", "/v1/invoice_items", json=body)).status == 200

    w.run(script)
    assert [e["detail"]["source_id"] for e in fake.effects("invoice_item.create")] == ["TE1", "TE1"]


# ---------------------------------------------------------------- vendor faults


def test_rate_limit_is_a_429_with_retry_after_and_saves_nothing_under_the_key():
    w, fake, _ = make_world(SystemFaults(rate_limit=2, rate_limit_window=SECOND))

    async def script(call):
        await call("GET", "/v1/customers")
        await call("GET", "/v1/customers")
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert (r.status, r.json["error"]["type"], r.header("retry-after")) == (429, "rate_limit_error", "1")
        await later(w, 2 * SECOND)
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.status == 200 and r.header("idempotent-replayed") is None

    w.run(script)
    assert "fault.rate_limited" in w.trace_kinds()


def test_outage_and_lock_contention_turn_requests_away_before_execution():
    w, fake, _ = make_world(SystemFaults(conflict="100%"), windows=(Window("outage", 0, 1 * HOUR, target="billing"),))

    async def script(call):
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert (r.status, r.json["error"]["code"]) == (503, "service_unavailable") and r.header("retry-after")
        await later(w, 1 * HOUR)
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert (r.status, r.json["error"]["code"]) == (429, "lock_timeout")
        w.sim.heal()
        r = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert r.status == 200 and r.header("idempotent-replayed") is None

    w.run(script)
    assert len(fake.records("customers")) == 1


# ---------------------------------------------------------------- webhooks and events


def test_webhooks_are_retried_with_backoff_until_delivered():
    w, fake, sink = make_world(statuses=[500, 503])

    async def script(call):
        r = await call("POST", "/v1/webhook_endpoints", json={"url": "core:/hooks/billing", "enabled_events": ["customer.created"]})
        assert r.json["url"] == "core:/hooks/billing"
        bad = await call("POST", "/v1/webhook_endpoints", json={"url": "https://example.com"})
        assert bad.json["error"]["code"] == "url_invalid"
        await customer(call)
        await item(call, "cus_000001", amount="1.00")  # not subscribed
        await later(w, 1 * HOUR)

    w.run(script)
    attempts = [(d["path"], d["headers"]["x-billing-event-id"], d["headers"]["x-webhook-attempt"]) for d in sink.received]
    assert attempts == [("/hooks/billing", "evt_000001", n) for n in ("1", "2", "3")]
    event = sink.received[-1]["json"]
    assert (event["type"], event["object"], event["data"]["object"]["id"]) == ("customer.created", "event", "cus_000001")
    assert isinstance(event["created"], int)


def test_webhooks_may_come_twice_and_out_of_order_and_the_events_list_recovers_order():
    faults = SystemFaults(webhook_duplicate="100%", webhook_reorder="100%", webhook_delay=10 * SECOND)
    w, fake, sink = make_world(faults)
    fake.register_webhook("core:/hooks/billing")
    listed = []

    async def script(call):
        for _ in range(3):
            await customer(call)
        await later(w, 1 * HOUR)
        r = await call("GET", "/v1/events", query={"type": "customer.created"})
        listed.extend(e["id"] for e in r.json["data"])

    w.run(script)
    ids = [d["json"]["id"] for d in sink.received]
    assert sorted(ids) == ["evt_000001", "evt_000001", "evt_000002", "evt_000002", "evt_000003", "evt_000003"]
    assert listed == ["evt_000003", "evt_000002", "evt_000001"]  # newest first


def test_events_list_pages_newest_first_and_keeps_30_days():
    w, fake, _ = make_world()

    async def script(call):
        for _ in range(3):
            await customer(call)
        r = await call("GET", "/v1/events", query={"limit": "2"})
        assert ([e["id"] for e in r.json["data"]], r.json["has_more"]) == (["evt_000003", "evt_000002"], True)
        r = await call("GET", "/v1/events", query={"limit": "2", "starting_after": "evt_000002"})
        assert ([e["id"] for e in r.json["data"]], r.json["has_more"]) == (["evt_000001"], False)
        second = (await call("GET", "/v1/events/evt_000002")).json["created"]
        r = await call("GET", "/v1/events", query={"created_gte": str(second)})
        assert [e["id"] for e in r.json["data"]] == ["evt_000003", "evt_000002"]
        await later(w, 29 * DAY)
        assert len((await call("GET", "/v1/events")).json["data"]) == 3
        await later(w, 2 * DAY)
        await customer(call)
        assert [e["id"] for e in (await call("GET", "/v1/events")).json["data"]] == ["evt_000004"]
        assert (await call("GET", "/v1/events/evt_000001")).status == 404

    w.run(script)
    assert len(fake.emitted()) == 4  # ground truth keeps them all


def test_restart_keeps_records_and_keys_and_resumes_webhook_retries():
    w, fake, sink = make_world(statuses=[500, 500, 500])
    fake.register_webhook("core:/hooks/billing")

    async def script(call):
        first = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        await later(w, 10 * SECOND)  # the first delivery failed; a retry is due in a minute
        w.sim.crash("billing")
        with pytest.raises(NetworkError):
            await call("GET", "/v1/customers")
        await later(w, 2 * MINUTE)
        w.sim.restart("billing")
        again = await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k"})
        assert again.json == first.json and again.header("idempotent-replayed") == "true"
        await later(w, 3 * HOUR)

    w.run(script)
    assert [d["headers"]["x-webhook-attempt"] for d in sink.received] == ["1", "2", "3", "4"]
    assert len(fake.records("customers")) == 1 and fake.webhooks.pending() == []


def test_the_same_seed_gives_the_same_trace():
    def run_once():
        faults = SystemFaults(error_5xx="30%", webhook_duplicate="50%", webhook_reorder="50%", webhook_delay=5 * SECOND)
        w, fake, _ = make_world(faults, seed=7)
        fake.register_webhook("core:/hooks/billing")

        async def script(call):
            for n in range(10):
                await call("POST", "/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": f"k{n % 4}"})
            await later(w, HOUR)

        w.run(script)
        return w.sim.trace.fingerprint, len(fake.records("customers"))

    assert run_once() == run_once()

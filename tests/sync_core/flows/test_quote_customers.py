"""The bill-to customer of a won deal: adopted when finance keyed it in, held
back when the CRM holds the client twice, and following the CRM's merge --
never a second ERP customer for one business (`sync_core.flows.quote_customer`).

The matching rule is checked on its own first; then worlds running only
quote-to-project, judged by the vendors' ground truth.
"""

from __future__ import annotations

import pytest

from fake_systems.firm_generator import FirmParams
from fake_systems.firm_model import FLAG_DUPLICATE_NAME, FLAG_MISSING_TAX_ID
from harness.world import BusinessWorld
from sync_core import xrefs
from sync_core.core import ReferenceCore
from sync_core.flows.quote_customer import MERGES, Party, name_key, same_business, survivor_of
from sync_core.stores import MemoryStore

from .provisioned_deals import CORE_CONFIG, chaos_profile

# ------------------------------------------------------------------ the rule, on its own


@pytest.mark.parametrize("a,b", [
    ("Lynn, Mendoza and Lloyd", "LYNN MENDOZA & LLOYD (AP)"),
    ("Infraestructuras XY S.Coop.", "INFRAESTRUCTURAS XY SCOOP (AP)"),
    ("Ruiz-Reed", "Ruiz Reed"),
    ("Diaz LLC", "Diaz L.L.C."),
    ("Collins-Edwards", "Collins-Edwards."),
    ("Marks PLC", "marks  plc"),
    ("Weber GmbH", "Weber G.m.b.H."),
])
def test_names_a_person_takes_for_one_company_have_one_key(a, b):
    assert name_key(a) == name_key(b) != ""


@pytest.mark.parametrize("a,b", [("Ruiz-Reed", "Ruiz-Reed Holdings"), ("Diaz LLC", "Diaz Lopez LLC"),
                                 ("Acme", "Acme Two")])
def test_different_companies_keep_different_keys(a, b):
    assert name_key(a) != name_key(b)


def test_a_registration_decides_when_both_have_one_else_the_name():
    acme = Party(name_key("Acme Ltd"), "GB", "GB123")
    assert same_business(acme, Party(name_key("ACME LIMITED (AP)"), "GB", "gb-123"))
    assert not same_business(acme, Party(name_key("Acme Ltd"), "GB", "GB999"))  # same name, another company
    assert same_business(acme, Party(name_key("Acme Trading"), "GB", "GB123"))  # renamed, one registration
    assert same_business(acme, Party(name_key("Acme"), "GB", None))
    assert not same_business(acme, Party(name_key("Acme Ltd"), "IE", None))  # another country
    assert not same_business(Party("", "GB", None), Party("", "GB", None))  # no name is no match


def test_a_chain_of_merges_leads_to_the_live_account():
    store = MemoryStore()
    with store.transaction() as txn:
        txn.put(MERGES, "A3", {"survivor": "A2"})
        txn.put(MERGES, "A2", {"survivor": "A1"})
        txn.put(MERGES, "X", {"survivor": "Y"})
        txn.put(MERGES, "Y", {"survivor": "X"})  # a loop in bad data ends, it does not hang
    with store.transaction() as txn:
        assert [survivor_of(txn, a) for a in ("A3", "A2", "A1", "B")] == ["A1", "A1", "A1", "B"]
        assert survivor_of(txn, "X") in ("X", "Y")


# ------------------------------------------------------------------ worlds


def make_world(seed: int, chaos: str = "none") -> BusinessWorld:
    return BusinessWorld(seed=seed, chaos=chaos_profile(chaos, seed), core_factory=ReferenceCore,
                         header={"scenario": "customer-matching-test"},
                         firm_params=FirmParams(consultants=10, clients=6), core_config=CORE_CONFIG)


def as_finance_spells_it(name: str) -> str:
    return name.upper().replace(",", "").replace(".", "").replace(" AND ", " & ") + " (AP)"


def customers_for(world, *accounts: str) -> list[dict]:
    """Active ERP customers standing for, or looking like, the accounts' business."""
    crm = {a["Id"]: a for a in world.crm.records("Account")}
    parties = [Party.of_account(crm[a]) for a in accounts]
    return [c for c in world.erp.records("customers") if not c["isInactive"] and (
        c["externalId"] in accounts or any(same_business(p, Party.of_customer(c)) for p in parties))]


def exceptions_of(world, deal: str) -> list[dict]:
    return [e for e in world.store.dump().get("exceptions", {}).values() if e.get("aggregate") == f"deal:{deal}"]


def erp_project(world, deal: str) -> dict | None:
    return next((p for p in world.erp.records("projects") if p["externalId"] == deal), None)


def won_deals_of(world, account: str) -> list[str]:
    return sorted(o["Id"] for o in world.crm.records("Opportunity") if o["IsWon"] and o["AccountId"] == account)


@pytest.mark.parametrize("chaos", ["none", "default"])
def test_finance_keyed_customer_is_adopted_the_twin_waits_and_follows_the_crm_merge(chaos):
    seen: dict = {}

    async def script(d):
        twin = next(c for c in d.firm.clients if FLAG_DUPLICATE_NAME in c.flags)
        original = next(c for c in d.firm.clients if c.id == twin.duplicate_of)
        assert FLAG_MISSING_TAX_ID not in original.flags, "pick a seed whose twin's original the ERP accepts"
        survivor, loser = d.crm.crm_id(original.id), d.crm.crm_id(twin.id)
        keyed = d.erp.enter_customer_by_hand(as_finance_spells_it(original.name),
                                             d.erp.erp_id(original.bill_to_entity_id), currency=original.currency,
                                             country=original.country, tax_registration=original.tax_id)
        seen.update(survivor=survivor, loser=loser, keyed=keyed)
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        seen["loser_deals"] = won_deals_of(d.world, loser)
        assert seen["loser_deals"] and won_deals_of(d.world, survivor), "pick a seed where both accounts won deals"
        await d.wait_for(lambda: all(erp_project(d.world, o) for o in won_deals_of(d.world, survivor)), days=3)
        await d.advance(days=1)
        seen["before_merge"] = {
            "customers": customers_for(d.world, survivor, loser),
            "loser_held": {o: [e["code"] for e in exceptions_of(d.world, o)] for o in seen["loser_deals"]},
            "loser_projects": [p["id"] for p in d.psa.records("projects")
                               if p["external_reference"] in seen["loser_deals"]],
            "loser_erp": [o for o in seen["loser_deals"] if erp_project(d.world, o)],
        }
        d.crm.merge_accounts(survivor, loser)
        await d.wait_for(lambda: all(erp_project(d.world, o) for o in seen["loser_deals"]), days=3)
        await d.advance(days=1)

    world = make_world(2, chaos)
    outcome = world.run(script)
    assert outcome["quiet"]
    survivor, loser, keyed = seen["survivor"], seen["loser"], seen["keyed"]
    before = seen["before_merge"]
    # Before the merge: finance's record is the survivor's customer, as keyed, and nothing else stands beside it;
    # the twin's deals wait in the finance queue with nothing made for them downstream.
    assert [(c["id"], c["externalId"], c["companyName"], c["entityId"]) for c in before["customers"]] == [
        (keyed["id"], survivor, keyed["companyName"], keyed["entityId"])]
    assert before["loser_held"] == {o: ["DUPLICATE_ACCOUNT"] for o in seen["loser_deals"]}
    assert before["loser_projects"] == [] and before["loser_erp"] == []
    # After: one customer for the business, still finance's; every deal of both accounts booked to it.
    after = customers_for(world, survivor, loser)
    assert [(c["id"], c["externalId"], c["companyName"]) for c in after] == [
        (keyed["id"], survivor, keyed["companyName"])]
    for deal in won_deals_of(world, survivor):
        assert erp_project(world, deal)["customer"] == keyed["id"], deal
        assert exceptions_of(world, deal) == [], deal
    assert set(seen["loser_deals"]) <= set(won_deals_of(world, survivor))
    billing = [c for c in world.billing.records("customers") if c["external_ref"] in (survivor, loser)]
    assert [c["external_ref"] for c in billing] == [survivor]
    with world.store.transaction() as txn:
        for deal in seen["loser_deals"]:
            assert xrefs.get(txn, "deal.account", deal) == survivor
            assert txn.get("provisioning", deal)["snapshot"]["account"]["Id"] == survivor
    kinds = world.sim.trace.kind_counts
    assert kinds.get("core.customer.adopted", 0) >= 1 and kinds.get("core.account.merged", 0) == 1


def test_two_hand_keyed_candidates_are_never_guessed_between():
    seen: dict = {}

    async def script(d):
        client = next(c for c in d.firm.clients if not c.flags and any(
            o.client_id == c.id for o in d.firm.deals))
        acc = d.crm.crm_id(client.id)
        sub = d.erp.erp_id(client.bill_to_entity_id)
        first = d.erp.enter_customer_by_hand(as_finance_spells_it(client.name), sub, currency=client.currency,
                                             country=client.country, tax_registration=client.tax_id)
        second = d.erp.enter_customer_by_hand(client.name + " Ltd", sub, currency=client.currency,
                                              country=client.country, tax_registration=client.tax_id)
        seen.update(acc=acc, first=first, second=second)
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        deals = won_deals_of(d.world, acc)
        assert deals, "pick a seed where the client has a won deal"
        await d.advance(days=2)
        seen["held"] = sorted({e["code"] for o in deals for e in exceptions_of(d.world, o)})
        seen["erp_before"] = [o for o in deals if erp_project(d.world, o)]
        # Finance merges its two records in the ERP and sends the deal back.
        d.erp.merge_customers(second["id"], first["id"])
        for key, item in sorted(d.world.store.dump().get("exceptions", {}).items()):
            if item["code"] == "AMBIGUOUS_CUSTOMER_MATCH":
                assert d.world.retry_exception(key)
        await d.wait_for(lambda: all(erp_project(d.world, o) for o in deals), days=2)
        await d.advance(hours=6)
        seen["deals"] = deals

    world = make_world(3)
    outcome = world.run(script)
    assert outcome["quiet"]
    assert seen["held"] == ["AMBIGUOUS_CUSTOMER_MATCH"] and seen["erp_before"] == []
    first = seen["first"]
    assert [(c["id"], c["externalId"]) for c in customers_for(world, seen["acc"])] == [(first["id"], seen["acc"])]
    assert all(erp_project(world, o)["customer"] == first["id"] for o in seen["deals"])


def test_an_older_account_merged_into_its_twin_hands_it_its_customer_and_projects():
    """The CRM merge may keep the younger account: the merged-away account's
    customer is re-keyed to the survivor, its projects with it, and the
    survivor's waiting deal is set up on that customer."""
    seen: dict = {}

    async def script(d):
        twin = next(c for c in d.firm.clients if FLAG_DUPLICATE_NAME in c.flags)
        older, younger = d.crm.crm_id(twin.duplicate_of), d.crm.crm_id(twin.id)
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        seen.update(older=older, younger=younger, older_deals=won_deals_of(d.world, older),
                    younger_deals=won_deals_of(d.world, younger))
        assert seen["older_deals"] and seen["younger_deals"], "pick a seed where both accounts won deals"
        await d.wait_for(lambda: all(erp_project(d.world, o) for o in seen["older_deals"]), days=3)
        await d.advance(days=1)
        seen["customer"] = next(c for c in d.erp.records("customers") if c["externalId"] == older)
        d.crm.merge_accounts(younger, older)
        await d.wait_for(lambda: all(erp_project(d.world, o) for o in seen["younger_deals"]), days=3)
        await d.advance(days=1)

    world = make_world(4)
    outcome = world.run(script)
    assert outcome["quiet"]
    customer = seen["customer"]
    assert [(c["id"], c["externalId"]) for c in customers_for(world, seen["older"], seen["younger"])] == [
        (customer["id"], seen["younger"])]
    for deal in seen["older_deals"] + seen["younger_deals"]:
        assert erp_project(world, deal)["customer"] == customer["id"], deal
    assert world.sim.trace.kind_counts.get("core.account.merge_followed", 0) >= 1

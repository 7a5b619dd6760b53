"""Duplicate customers: the CRM and the ERP each know the client by another name.

Two kinds of duplicate meet at go-live. First, finance did not wait for the
integration: before it first runs, a clerk keys two of the firm's clients
into the ERP by hand, spelled the way the invoices are addressed ("ACME
CORP LTD" for "Acme Corp"), with the right subsidiary, currency, country and
tax registration -- but no external id. Second, sales made a client twice in
the CRM (the generator's duplicate-name client), and sales operations merges
the two accounts on 8 January; the deals of the merged-away account move to
the survivor.

The survivor rules, which the seeds ask to make explicit: the ERP is the
system of record for bill-to customers, so the record finance keyed in
survives -- its internal id and number stay, the CRM account's id becomes
its external id -- and no second customer is created beside it. In the
CRM the merge decides: the surviving account's customer stands for both, and
projects of the merged-away account's deals belong to it.

Beyond the general invariants this scenario checks that no duplicate
customer survives in the ERP for any of these businesses, that the
hand-keyed records are the survivors and carry the CRM's id, and that after
the CRM merge the merged-away account has no customer of its own that
projects are booked to.
"""

from __future__ import annotations

from datetime import date, time

from fake_systems.firm_model import FLAG_DUPLICATE_NAME
from harness.scenario_api import Scenario, check

from . import _truth as t
from ._firm import clean_clients


def _as_finance_spells_it(name: str) -> str:
    return name.upper().replace(",", "").replace(".", "").replace(" AND ", " & ") + " (AP)"


async def script(d):
    keyed = {}
    for client in clean_clients(d.firm)[:2]:
        row = d.erp.enter_customer_by_hand(_as_finance_spells_it(client.name), d.erp.erp_id(client.bill_to_entity_id),
                                           currency=client.currency, country=client.country,
                                           tax_registration=client.tax_id)
        keyed[d.crm.crm_id(client.id)] = row["id"]
    d.note(keyed_by_hand=keyed)
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    twin = next((c for c in d.firm.clients if FLAG_DUPLICATE_NAME in c.flags), None)
    await d.advance_to(date(2026, 1, 8), time(11))
    if twin is not None:
        survivor, loser = d.crm.crm_id(twin.duplicate_of), d.crm.crm_id(twin.id)
        d.crm.merge_accounts(survivor, loser)
        d.note(crm_merge={"survivor": survivor, "loser": loser, "at_us": d.sim.now_us})
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


_NOISE = {"ltd", "limited", "inc", "llc", "plc", "corp", "corporation", "co", "company", "gmbh", "ag", "sa", "sas",
          "bv", "nv", "pty", "pte", "the", "and", "ap", "group"}


def same_business_name(a: str, b: str) -> bool:
    """Names a person would take for the same company: case, punctuation,
    legal suffixes and "&"/"and" aside."""
    def key(name: str) -> tuple[str, ...]:
        words = "".join(ch if ch.isalnum() else " " for ch in name.casefold().replace("&", " and ")).split()
        return tuple(w for w in words if w not in _NOISE)
    return key(a) == key(b) and bool(key(a))


def _customers_of(world, account: dict, keyed_id: int | None) -> list[dict]:
    """Active ERP customers that stand for the business of CRM `account`:
    keyed by its id, the one finance keyed in, or the same tax registration
    or name."""
    tax_id = account.get("TaxRegistration")
    return [c for c in world.erp.records("customers") if not c["isInactive"] and (
        c.get("externalId") == account["Id"] or c["id"] == keyed_id
        or (tax_id and c.get("taxRegistration") == tax_id) or same_business_name(c["companyName"], account["Name"]))]


def no_duplicate_survives(world) -> dict:
    name = "duplicate customers: one active ERP customer per business"
    accounts = {a["Id"]: a for a in world.crm.records("Account")}
    keyed = t.notes(world).get("keyed_by_hand", {})
    merge = t.notes(world).get("crm_merge")
    violations = []
    for acc, keyed_id in sorted(keyed.items()):
        found = _customers_of(world, accounts[acc], keyed_id)
        if len(found) > 1:
            violations.append(f"account {acc} ({accounts[acc]['Name']}): ERP customers "
                              f"{[(c['id'], c['companyName'], c.get('externalId')) for c in found]}")
    if merge:
        found = {c["id"]: c for acc in (merge["survivor"], merge["loser"])
                 for c in _customers_of(world, accounts[acc], None)}
        if len(found) > 1:
            violations.append(f"accounts {merge['survivor']} and {merge['loser']} (merged in the CRM): ERP customers "
                              f"{[(c['id'], c['companyName'], c.get('externalId')) for c in found.values()]}")
    if not keyed:
        violations.append("the script keyed no customer in by hand")
    return check(name, violations)


def hand_keyed_survives(world) -> dict:
    name = "duplicate customers: the customer finance keyed in survives and carries the CRM account's id"
    keyed = t.notes(world).get("keyed_by_hand", {})
    table = world.erp.table("customers")
    projects = world.erp.records("projects")
    violations = []
    for acc, keyed_id in sorted(keyed.items()):
        row = table.get(str(keyed_id))
        if row is None:
            violations.append(f"account {acc}: the hand-keyed ERP customer {keyed_id} is gone "
                              f"(merged into {world.erp.store.extra['mergedCustomers'].get(str(keyed_id))})")
        elif row.get("externalId") != acc:
            violations.append(f"account {acc}: the hand-keyed ERP customer {keyed_id} has externalId "
                              f"{row.get('externalId')}")
        deals = [o["Id"] for o in t.won_deals(world).values() if o["AccountId"] == acc]
        for p in projects:
            if p.get("externalId") in deals and p["customer"] != keyed_id:
                violations.append(f"deal {p['externalId']} of account {acc}: ERP project {p['id']} is booked to "
                                  f"customer {p['customer']}, not the surviving {keyed_id}")
    return check(name, violations)


def crm_merge_followed(world) -> dict:
    name = "duplicate customers: after the CRM merge no project is booked to the merged-away account's customer"
    merge = t.notes(world).get("crm_merge")
    if merge is None:
        return check(name, ["the firm has no duplicate account to merge"])
    customers = {c["id"]: c for c in world.erp.records("customers")}
    loser = [c for c in customers.values() if c.get("externalId") == merge["loser"] and not c["isInactive"]]
    violations = [f"ERP customer {c['id']} ({c['companyName']}) still stands for merged-away account {merge['loser']}"
                  for c in loser]
    moved = {o["Id"] for o in t.won_deals(world).values() if o["AccountId"] == merge["survivor"]}
    for p in world.erp.records("projects"):
        owner = customers.get(p["customer"], {})
        if p.get("externalId") in moved and owner.get("externalId") == merge["loser"]:
            violations.append(f"deal {p['externalId']}: ERP project {p['id']} booked to the merged-away account's "
                              f"customer {owner['id']}")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [no_duplicate_survives(world), hand_keyed_survives(world), crm_merge_followed(world)]


SCENARIO = Scenario(
    name="duplicate-customers",
    summary="the CRM and ERP hold the same client under different names; one customer survives, by visible rules",
    script=script,
    firm={"consultants": 10, "clients": 6},
    default_chaos="default",
    expectations=expectations,
)

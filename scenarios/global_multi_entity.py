"""Global multi-entity: one SOW, several legal entities, currencies and clocks.

A firm with subsidiaries in the US, the UK, Australia and Singapore, each
keeping its books in its own currency. Its systems live in different time
zones (`zones`): the CRM in Los Angeles, the PSA in London, the ERP in
Sydney, revenue in New York, HR in Chicago, expenses in Singapore -- so "today"
and "month end" differ by system, and a date taken from the wrong clock is a
day (or a month) off.

On 2 January the firm's busiest client extends its statement of work to an
affiliate abroad: sales opens an account for the affiliate in the country
of another of the firm's subsidiaries and closes a fixed-fee rollout for it
in that subsidiary's currency, in the same contract family as the client's
engagement. Treasury moves the ERP's exchange rates on 15 and 22 January. People
work, file expenses, finish and sign off the rollout's first milestone;
billing runs at month end.

Beyond the general invariants this scenario checks that every deal's
project, billing schedules and revenue contract are in the deal's currency;
that the affiliate's part of the SOW is billed from the subsidiary in its
own country while the rest stays with the client's; that billing charges
the tax the ERP would -- the billing subsidiary's rate for a domestic
client, none across a border; and that every time posting is dated on its
work date (so it converts at that day's rate), whatever each system's clock
said.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from fake_systems.firm_generator import COUNTRIES, FX_PER_USD
from harness.scenario_api import Scenario, check

from . import _truth as t
from ._firm import busiest_deals, fixed_fee_line
from ._people import client_accepts, complete_milestone

CURRENCIES = ("USD", "GBP", "AUD", "SGD")
ZONES = {"crm": "America/Los_Angeles", "psa": "Europe/London", "erp": "Australia/Sydney", "billing": "UTC",
         "revenue": "America/New_York", "hris": "America/Chicago", "expenses": "Asia/Singapore"}
ROLLOUT = (("Regional design", "30000.00", date(2026, 1, 23)), ("Regional go-live", "45000.00", date(2026, 3, 27)))


def _tax_id(country: str) -> str | None:
    pattern = COUNTRIES[country][3]
    if pattern is None:
        return None
    digits = iter("31415926535897932384")
    return "".join(next(digits) if ch == "#" else "X" if ch == "?" else ch for ch in pattern)


def _move_rates(d, day: date, percent: int) -> None:
    """Treasury loads the day's rates: every pair moved by `percent` from the reference rates."""
    for a in CURRENCIES:
        for b in CURRENCIES:
            if a != b:
                rate = FX_PER_USD[b] / FX_PER_USD[a] * (100 + percent) / 100
                d.erp.set_fx_rate(a, b, day, rate.quantize(Decimal("0.000001")))


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.submit_expenses(0)
    await d.advance_to(date(2026, 1, 2), time(17))
    parent = (busiest_deals(d.firm) or list(d.firm.deals))[0]
    client = next(c for c in d.firm.clients if c.id == parent.client_id)
    abroad = next((e for e in d.firm.entities if e.country != client.country), d.firm.entities[0])
    account = d.crm.create_account(f"{client.name} ({abroad.country})", abroad.country, abroad.functional_currency,
                                   tax_registration=_tax_id(abroad.country))
    family = d.crm.records("Opportunity")
    family = next(o for o in family if o["Id"] == d.crm.crm_id(parent.id))["Contract_Family__x"]
    opp = d.crm.create_opportunity(account, f"{client.name} - {abroad.country} rollout", close_date=d.today,
                                   stage="Negotiation", CurrencyIsoCode=abroad.functional_currency,
                                   Contract_Family__x=family,
                                   lines=[fixed_fee_line("Regional rollout (fixed fee)", date(2026, 1, 5), ROLLOUT)])
    d.crm.close_won(opp)
    line = d.quote_lines(opp)[0]["Id"]
    d.note(sow={"parent": d.crm.crm_id(parent.id), "affiliate": opp, "account": account, "country": abroad.country,
                "currency": abroad.functional_currency, "line": line})
    await d.advance_to(date(2026, 1, 15), time(1))
    _move_rates(d, date(2026, 1, 15), 3)
    await d.advance_to(date(2026, 1, 21), time(12))
    await complete_milestone(d, line, ROLLOUT[0][0])
    await d.advance_to(date(2026, 1, 22), time(1))
    _move_rates(d, date(2026, 1, 22), -2)
    await d.advance_to(date(2026, 1, 22), time(15))
    await client_accepts(d, line, ROLLOUT[0][0])
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


def in_deal_currency(world) -> dict:
    name = "global: every deal's ERP project, billing schedules and revenue contract are in the deal's currency"
    violations, checked = [], 0
    projects = {p["externalId"]: p for p in world.erp.records("projects") if p.get("externalId")}
    for opp, o in sorted(t.won_deals(world).items()):
        cur = o["CurrencyIsoCode"]
        seen = {"ERP project": (projects.get(opp) or {}).get("currency"),
                "revenue contract": (t.revenue_contract(world, opp) or {}).get("currency_code")}
        for s in world.billing.records("billing_schedules"):
            if s["contract_ref"] == opp:
                seen[f"billing schedule {s['id']}"] = s["currency"]
        for what, have in seen.items():
            if have is not None:
                checked += 1
                if have.upper() != cur:
                    violations.append(f"deal {opp} sold in {cur}: {what} in {have.upper()} (corr deal:{opp})")
    if not checked:
        violations.append("no deal reached the ERP, billing or revenue: the story did not happen")
    return check(name, violations)


def affiliate_billed_abroad(world) -> dict:
    name = "global: the affiliate's part of the SOW is booked in the subsidiary of its own country, the rest at home"
    sow = t.notes(world).get("sow")
    if sow is None:
        return check(name, ["the script wrote no multi-country SOW"])
    subs = {s["id"]: s for s in world.erp.records("subsidiaries")}
    violations = []
    for opp in (sow["parent"], sow["affiliate"]):
        o = t.won_deals(world).get(opp)
        account = next((a for a in world.crm.records("Account") if o and a["Id"] == o["AccountId"]), None)
        projects = [p for p in world.erp.records("projects") if p.get("externalId") == opp]
        if account is None or len(projects) != 1:
            violations.append(f"deal {opp}: {len(projects)} ERP projects")
            continue
        sub = subs[projects[0]["subsidiary"]]
        at_home = [s for s in subs.values() if s["country"] == account["BillingCountry"]]
        if at_home and sub["country"] != account["BillingCountry"]:
            violations.append(f"deal {opp} for a client in {account['BillingCountry']}: booked in subsidiary "
                              f"{sub['id']} ({sub['country']}), though the firm has one there")
    return check(name, violations)


def tax_as_the_erp_would(world) -> dict:
    name = "global: billing charges the billing subsidiary's tax at home and none across a border"
    accounts = {a["Id"]: a for a in world.crm.records("Account")}
    customers = {c["externalId"]: c for c in world.erp.records("customers") if c.get("externalId")}
    subs = {s["id"]: s for s in world.erp.records("subsidiaries")}
    by_customer = {c["id"]: c for c in world.billing.records("customers")}
    violations, checked = [], 0
    for bc in by_customer.values():
        erp, account = customers.get(bc.get("external_ref")), accounts.get(bc.get("external_ref"))
        if erp is None or account is None:
            continue
        checked += 1
        sub = subs[erp["subsidiary"]]
        domestic = sub["country"] == account["BillingCountry"]
        want = t.dec(sub["taxRegime"]["serviceRate"]) * 100 if domestic else Decimal(0)
        if bc.get("tax_percent") is not None and t.dec(bc["tax_percent"]) != want:
            violations.append(f"billing customer {bc['id']} ({account['BillingCountry']}, billed from "
                              f"{sub['country']}): tax {bc['tax_percent']}%, the ERP's rule gives {want}%")
        for inv in world.billing.records("invoices"):
            if inv["customer"] == bc["id"] and inv["tax_percent"] is not None and t.dec(inv["tax_percent"]) != want:
                violations.append(f"invoice {inv['id']} to {account['Name']}: tax {inv['tax_percent']}%, "
                                  f"expected {want}%")
    if not checked:
        violations.append("no client was set up in both the ERP and billing: the story did not happen")
    return check(name, violations)


def dated_on_work_date(world) -> dict:
    name = "global: every time posting is dated on its work date, whatever the systems' clocks"
    entries = {e["id"]: e for e in world.psa.records("time_entries")}
    history = {h["id"]: h["versions"] for h in world.psa.records("time_entry_versions")}
    violations, checked = [], 0
    for entry_id, posts in sorted(t.erp_actuals_by_entry(world).items()):
        entry = entries.get(entry_id)
        if entry is None:
            continue
        dates = {v["version"]: v["date"] for v in history.get(entry_id, [])} | {entry["version"]: entry["date"]}
        for version, _, a in posts:
            checked += 1
            if dates.get(version) != a["tranDate"]:
                violations.append(f"{a['externalId']}: dated {a['tranDate']}, worked {dates.get(version)}")
    if not checked:
        violations.append("no time was posted to the ERP: the story did not happen")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [in_deal_currency(world), affiliate_billed_abroad(world), tax_as_the_erp_would(world),
            dated_on_work_date(world)]


SCENARIO = Scenario(
    name="global-multi-entity",
    summary="a multi-country SOW billed from several entities and currencies, systems in six time zones",
    script=script,
    firm={"consultants": 12, "clients": 6, "entities": 4, "currencies": CURRENCIES},
    default_chaos="default",
    expectations=expectations,
    zones=ZONES,
)

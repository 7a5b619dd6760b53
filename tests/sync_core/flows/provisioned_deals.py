"""What quote-to-project must leave in the vendors, read from their ground truth.

`provisioning_violations(world)` checks a finished world against the
integration contract (docs/integration-contract.md) for every won deal and
returns one line per violation (empty: all good). A deal whose client lacks
the tax registration its country requires must instead sit in the finance
exception queue with nothing created downstream of the ERP customer; so
must a deal of a client the CRM holds twice (the generator's duplicate-name
twin, a younger account for the business of a live one), as
``DUPLICATE_ACCOUNT`` (`sync_core.flows.quote_customer`, rule 2).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from fake_systems.firm_generator import FirmParams
from harness.world import SYSTEMS, BusinessWorld
from simulator import DAY, load_profile, swarm_profile
from simulator.faults import ChaosProfile
from sync_core.core import ReferenceCore

# A CRM poll every 30 s is ~90k polls a simulated month; tests read it every
# 5 minutes (well inside the feed's 72-hour retention).
CORE_CONFIG = {"flows": ["quote_to_project"], "poll_interval": {"crm": 300.0}}


def chaos_profile(chaos: str | ChaosProfile, seed: int) -> ChaosProfile:
    if isinstance(chaos, ChaosProfile):
        return chaos
    if chaos == "swarm":
        return swarm_profile(seed, 31 * DAY, SYSTEMS, core="core")
    return load_profile(chaos)


def make_world(seed: int, chaos: str | ChaosProfile = "none", *, consultants: int = 40,
               core_config: dict | None = None) -> BusinessWorld:
    return BusinessWorld(seed=seed, chaos=chaos_profile(chaos, seed), core_factory=ReferenceCore,
                         header={"scenario": "quote-to-project-test"}, firm_params=FirmParams(consultants=consultants),
                         core_config={**CORE_CONFIG, **(core_config or {})})


def baseline_lines(world: BusinessWorld, opp: str) -> list[dict]:
    v1 = next(v for v in world.crm.records("ContractVersion") if v["OpportunityId"] == opp and v["VersionNumber"] == 1)
    return v1["ChangedLines"]


def refused_accounts(world: BusinessWorld) -> set[str]:
    """CRM accounts the ERP must refuse: no registration where the rule needs one."""
    rules = {r["country"]: r for r in world.erp.records("taxRules")}
    return {a["Id"] for a in world.crm.records("Account")
            if not a["TaxRegistration"] and rules.get(a["BillingCountry"], {}).get("registrationRequired")}


def twin_accounts(world: BusinessWorld) -> set[str]:
    """CRM accounts the generator made as a second account for a client
    that is still live in the CRM (not merged): their deals must wait."""
    live = {a["Id"] for a in world.crm.records("Account") if not a["IsDeleted"]}
    out = set()
    for c in world.firm.clients:
        if c.duplicate_of is not None:
            twin, original = world.crm.crm_id(c.id), world.crm.crm_id(c.duplicate_of)
            if twin in live and original in live:
                out.add(twin)
    return out


def provisioning_violations(world: BusinessWorld) -> list[str]:
    crm, psa, erp, billing, revenue = world.crm, world.psa, world.erp, world.billing, world.revenue
    bad: list[str] = []
    won = [o for o in crm.records("Opportunity") if o["IsWon"]]
    refused = refused_accounts(world)
    twins = twin_accounts(world)
    dump = world.store.dump()
    exceptions = dump.get("exceptions", {})
    projects = psa.records("projects")
    tasks = psa.records("tasks")
    milestones = psa.records("milestones")
    schedules = billing.records("billing_schedules")
    rcs = revenue.records("rev_contracts")
    erp_customers = Counter(c["externalId"] for c in erp.records("customers"))
    erp_projects = {p["externalId"]: p for p in erp.records("projects")}
    billing_customers = Counter(c["external_ref"] for c in billing.records("customers"))
    if not won:
        bad.append("the firm has no won deal: the test proves nothing")

    for opp in won:
        deal, acc = opp["Id"], opp["AccountId"]
        mine = [p for p in projects if p["external_reference"] == deal]
        if acc in refused or acc in twins:
            held = [e for e in exceptions.values() if e.get("aggregate") == f"deal:{deal}"]
            code = "DUPLICATE_ACCOUNT" if acc in twins else "TAX_REGISTRATION_REQUIRED"
            if not any(e["domain"] == "finance" and e["code"] == code for e in held):
                why = "is a second account for a live client" if acc in twins else "lacks its tax registration"
                bad.append(f"{deal}: account {acc} {why} but no finance exception {code} holds the deal")
            if mine or any(s["contract_ref"] == deal for s in schedules) or deal in erp_projects \
                    or any(c["source_contract_id"] == deal for c in rcs):
                bad.append(f"{deal}: customer held back, yet something was created downstream")
            continue
        if len(mine) != 1:
            bad.append(f"{deal}: {len(mine)} PSA projects reference it, not 1")
            continue
        project = mine[0]
        if project["status"] != "active":
            bad.append(f"{deal}: PSA project {project['id']} is {project['status']}")
        if opp["Project_Ref__x"] != project["id"]:
            bad.append(f"{deal}: CRM Project_Ref__x is {opp['Project_Ref__x']!r}, not {project['id']}")
        if erp_customers[acc] != 1:
            bad.append(f"{deal}: {erp_customers[acc]} ERP customers have externalId {acc}")
        if deal not in erp_projects:
            bad.append(f"{deal}: no ERP project")
        if billing_customers[acc] != 1:
            bad.append(f"{deal}: {billing_customers[acc]} billing customers have external_ref {acc}")
        lines = baseline_lines(world, deal)
        total = sum(Decimal(ln["TotalPrice"]) for ln in lines)
        for ln in lines:
            lid = ln["LineId"]
            mine_tasks = [t for t in tasks if t["external_reference"] == lid]
            if len(mine_tasks) != 1 or mine_tasks[0]["project_id"] != project["id"]:
                bad.append(f"{deal}: line {lid} has tasks {[t['id'] for t in mine_tasks]}, not one in {project['id']}")
            for m in ln["Milestones"] or ():
                key = f"{lid}:{m['Name']}"
                found = [x for x in milestones if x["external_reference"] == key]
                if len(found) != 1 or Decimal(found[0]["amount"]) != Decimal(m["Amount"]):
                    bad.append(f"{deal}: milestone {key} is {[(x['id'], x['amount']) for x in found]}")
            sched = [s for s in schedules if s["contract_ref"] == deal and s["metadata"].get("line") == lid]
            if len(sched) != 1:
                bad.append(f"{deal}: line {lid} has {len(sched)} billing schedules")
                continue
            s = sched[0]
            if ln["BillingModel"] == "fixed_fee":
                ids = {x["external_reference"]: x["id"] for x in milestones}
                want = sorted((ids.get(f"{lid}:{m['Name']}"), m["Amount"]) for m in ln["Milestones"])
                if sorted((m["ref"], m["amount"]) for m in s["milestones"]) != want:
                    bad.append(f"{deal}: schedule {s['id']} milestones {s['milestones']} are not {want}")
            elif ln["BillingModel"] == "t_and_m":
                want = sorted((e["Role"], Decimal(e["Rate"])) for e in ln["RateCard"])
                if sorted((e["code"], Decimal(e["unit_amount"])) for e in s["rate_card"]) != want:
                    bad.append(f"{deal}: schedule {s['id']} rate card is not the quote's")
            elif Decimal(s["recurring"]["amount"]) != Decimal(ln["UnitPrice"]):
                bad.append(f"{deal}: schedule {s['id']} charges {s['recurring']} a month, not {ln['UnitPrice']}")
        mine_rc = [c for c in rcs if c["source_contract_id"] == deal and c["parent_rc_id"] is None]
        if len(mine_rc) != 1:
            bad.append(f"{deal}: {len(mine_rc)} revenue contracts")
        else:
            rc = mine_rc[0]
            allocated = sum(Decimal(p["allocated_amount"]) for p in rc["pobs"])
            if Decimal(rc["transaction_price"]) != total or allocated != total:
                bad.append(f"{deal}: revenue price {rc['transaction_price']} / allocated {allocated}, not {total}")

    wanted = {o["Id"] for o in won}
    for p in projects:
        ref = p["external_reference"] or ""
        if ref not in wanted and not (ref.startswith("dup-of:") and p["status"] == "draft"):
            bad.append(f"PSA project {p['id']} ({ref!r}, {p['status']}) is neither a won deal's nor a renamed copy")
    # exactly-once effects where the vendor can tell
    created = Counter(e["detail"]["external_ref"] for e in billing.effects("customer.create"))
    bad += [f"billing customer for {k} created {n} times" for k, n in sorted(created.items()) if n != 1]
    created = Counter((e["detail"]["contract_ref"], e["id"]) for e in billing.effects("billing_schedule.create"))
    per_deal = Counter(k for k, _ in created)
    for deal, n in sorted(per_deal.items()):
        if n != len(baseline_lines(world, deal)):
            bad.append(f"{deal}: {n} billing schedules created for {len(baseline_lines(world, deal))} lines")
    created = Counter(e["id"] for e in revenue.effects("rc.created"))
    if len(created) != len({c["source_contract_id"] for c in rcs}):
        bad.append("a revenue contract was created twice for one deal")
    for key, item in sorted(dump.get("dlq", {}).items()):
        bad.append(f"dead letter {key}: {item.get('op')} {item.get('reason')}")
    for key, item in sorted(exceptions.items()):
        if item.get("code") not in ("TAX_REGISTRATION_REQUIRED", "DUPLICATE_ACCOUNT"):
            bad.append(f"exception {key}: {item.get('op')} {item.get('code')} {item.get('message')}")
    return bad

"""What time-to-finance must leave in the books, read from the vendors' ground truth.

`time_violations(world)` and `expense_violations(world)` check a finished
world against the integration contract and return one line per violation
(empty: all good), with `stats` counting what was checked so a test can
insist it checked something. The expected bill rate comes from the firm
CRM's signed contract versions -- the rate card of the version in force on
the work date, for the role of the entry's assignment -- never from the
core's store, so the core cannot grade its own homework.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal

from fake_systems.firm_generator import FirmParams
from harness.world import SYSTEMS, BusinessWorld
from simulator import DAY, load_profile, swarm_profile
from simulator.faults import ChaosProfile
from sync_core.core import ReferenceCore

# Both feeds read every 5 minutes (well inside their retention): a poll every
# 30-60 s is most of a simulated month's cost and proves nothing more here.
CORE_CONFIG = {"flows": ["quote_to_project", "time_to_finance"],
               "poll_interval": {"crm": 300.0, "psa": 300.0, "expenses": 600.0, "t2f-waiting": 600.0}}
CENT = Decimal("0.01")


def chaos_profile(chaos: str | ChaosProfile, seed: int) -> ChaosProfile:
    if isinstance(chaos, ChaosProfile):
        return chaos
    if chaos == "swarm":
        return swarm_profile(seed, 31 * DAY, SYSTEMS, core="core")
    return load_profile(chaos)


def make_world(seed: int, chaos: str | ChaosProfile = "none", *, consultants: int = 15,
               core_config: dict | None = None) -> BusinessWorld:
    return BusinessWorld(seed=seed, chaos=chaos_profile(chaos, seed), core_factory=ReferenceCore,
                         header={"scenario": "time-to-finance-test"}, firm_params=FirmParams(consultants=consultants),
                         core_config={**CORE_CONFIG, **(core_config or {})})


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _d(text) -> Decimal:
    return Decimal(str(text))


def expected_rates(world: BusinessWorld):
    """entry -> (billable T&M?, contract rate or None), from the CRM's signed
    versions: the version in force on the work date (the highest number
    effective by then, else the baseline), and in it the line as last
    changed; the role is the one the PSA assignment is staffed in."""
    crm, psa = world.crm, world.psa
    versions = defaultdict(list)
    for v in crm.records("ContractVersion"):
        versions[v["OpportunityId"]].append(v)
    line_opp = {ln["Id"]: ln["OpportunityId"] for ln in crm.records("QuoteLine")}
    tasks = {t["id"]: t for t in psa.records("tasks")}
    assignments = {a["id"]: a for a in psa.records("assignments")}
    roles = {r["id"]: r for r in psa.records("roles")}

    def line_as_of(line_id: str, day: str) -> dict | None:
        signed = sorted(versions[line_opp[line_id]], key=lambda v: v["VersionNumber"])
        effective = [v["VersionNumber"] for v in signed if v["EffectiveDate"] and v["EffectiveDate"] <= day]
        in_force = max(effective, default=1)
        found = None
        for v in signed:
            if v["VersionNumber"] <= in_force:
                found = next((ln for ln in v["ChangedLines"] if ln["LineId"] == line_id), found)
        return found

    def of(entry: dict) -> tuple[bool, Decimal | None]:
        task = tasks.get(entry["task_id"])
        line_id = task and task["external_reference"]
        line = line_as_of(line_id, entry["date"]) if line_id in line_opp else None
        if line is None or line["BillingModel"] != "t_and_m" or not entry["billable"]:
            return False, None
        role = roles[assignments[entry["assignment_id"]]["role_id"]]["external_reference"]
        card = {e["Role"]: _d(e["Rate"]) for e in line["RateCard"]}
        return True, card[role]
    return of


def time_violations(world: BusinessWorld, stats: Counter | None = None) -> list[str]:
    stats = stats if stats is not None else Counter()
    bad: list[str] = []
    psa, erp, billing, revenue = world.psa, world.erp, world.billing, world.revenue
    rate_of = expected_rates(world)
    history = {h["id"]: h["versions"] for h in psa.records("time_entry_versions")}
    actuals = defaultdict(list)
    for a in erp.records("projectActuals"):
        actuals[a["externalId"]].append(a)
    creates = Counter(e["detail"]["externalId"] for e in erp.effects("create") if e["table"] == "projectActuals")
    updates = Counter(e["detail"].get("externalId") for e in erp.effects("update") if e["table"] == "projectActuals")
    items = defaultdict(list)
    for i in billing.records("invoice_items"):
        if i["source"]:
            items[(i["source"]["type"], i["source"]["id"])].append(i)
    notes = defaultdict(list)
    for n in billing.records("credit_notes"):
        notes[n["memo"]].append(n)
    invoices = {i["id"]: i for i in billing.records("invoices")}
    events = {e["event_ref"]: e for e in revenue.records("rev_events")}
    event_hours = defaultdict(Decimal)
    for ln in revenue.records("rev_lines"):
        if ln["event_ref"]:
            event_hours[ln["event_ref"]] += _d(ln["amount"])

    def one(eid: str) -> dict | None:
        rows = actuals.get(eid, [])
        if len(rows) != 1 or creates[eid] != 1:
            bad.append(f"ERP {eid}: {len(rows)} records, {creates[eid]} creates (want exactly one)")
        if updates[eid]:
            bad.append(f"ERP {eid}: updated {updates[eid]} times after posting")
        return rows[0] if rows else None

    for entry in psa.records("time_entries"):
        te = entry["id"]
        past = history.get(te, [])
        standing = entry["version"] if entry["status"] == "approved" else None
        billable_tm, rate = rate_of(entry)
        # versions approved once and no longer standing: nothing, or netted out
        for v in past:
            if v["status"] != "approved":
                continue
            n = v["version"]
            eid, rev = f"te:{te}:v{n}", f"te:{te}:v{n}:rev"
            if eid not in actuals:
                if rev in actuals:
                    bad.append(f"ERP {rev} reverses nothing")
                continue
            stats["reversed"] += 1
            orig, back = one(eid), one(rev)
            if orig and back:
                for f in ("hours", "costAmount", "revenueAmount"):
                    if _d(orig[f]) + _d(back[f]) != 0:
                        bad.append(f"ERP {te} v{n}: {f} {orig[f]} reversed by {back[f]}")
                if orig["tranDate"] != back["tranDate"]:
                    bad.append(f"ERP {rev} dated {back['tranDate']}, the original {orig['tranDate']}")
            src = f"{te}:v{n}"
            billed = items.get(("time_entry", src), [])
            if billed:
                net = sum(_d(i["amount"]) for i in billed) + sum(
                    _d(i["amount"]) for i in items.get(("adjustment", f"te:{src}:rev"), []))
                credited = notes.get(f"te:{src}:rev", [])
                if credited:
                    invoice = invoices[credited[0]["invoice"]]
                    tax = cents(_d(billed[0]["amount"]) * _d(invoice["tax_percent"]) / 100)
                    net -= sum(_d(c["amount"]) for c in credited) - tax
                if len(billed) != 1 or net != 0 or len(credited) > 1:
                    bad.append(f"billing {src}: {len(billed)} items, {len(credited)} credit notes, net {net} (want 0)")
            if (f"te:{src}" in events) != (f"te:{src}:rev" in events):
                bad.append(f"revenue te:{src}: posted {f'te:{src}' in events}, reversed {f'te:{src}:rev' in events}")
            elif f"te:{src}" in events and event_hours[f"te:{src}"] + event_hours[f"te:{src}:rev"] != 0:
                bad.append(f"revenue te:{src}: does not net to zero")
        # versions never standing are never in the books
        for n in range(1, entry["version"] + 1):
            if n != standing and not any(v["version"] == n and v["status"] == "approved" for v in past):
                leaked = [k for k in (f"te:{te}:v{n}", f"te:{te}:v{n}:rev") if k in actuals or k in events]
                leaked += [f"item {te}:v{n}"] if ("time_entry", f"{te}:v{n}") in items else []
                if leaked:
                    bad.append(f"{te} v{n} was never approved, yet posted: {leaked}")
        if standing is None:
            stats["not_standing"] += 1
            continue
        stats["standing"] += 1
        eid, src = f"te:{te}:v{standing}", f"{te}:v{standing}"
        actual = one(eid)
        if f"{eid}:rev" in actuals:
            bad.append(f"ERP {eid}: the standing version is reversed")
        if actual is None:
            continue
        hours = _d(entry["hours"])
        if _d(actual["hours"]) != hours:
            bad.append(f"ERP {eid}: {actual['hours']} hours, the PSA says {entry['hours']}")
        if actual["project"] is None or actual["type"] != "time" or actual["tranDate"] != entry["date"]:
            bad.append(f"ERP {eid}: project {actual['project']}, type {actual['type']}, dated {actual['tranDate']}")
        if entry["cost_currency"] == actual["currency"] and entry["cost_rate"] is not None:
            if _d(actual["costAmount"]) != cents(hours * _d(entry["cost_rate"])):
                bad.append(f"ERP {eid}: cost {actual['costAmount']}, want {hours} x {entry['cost_rate']}")
        billed = items.get(("time_entry", src), [])
        if not billable_tm:
            if _d(actual["revenueAmount"]) != 0 or billed or f"te:{src}" in events:
                bad.append(f"{eid} is not billable T&M, yet it carries revenue, an item or an event")
            continue
        stats["billable"] += 1
        want = cents(hours * rate)
        if _d(actual["revenueAmount"]) != want:
            bad.append(f"ERP {eid}: revenue {actual['revenueAmount']}, want {hours} x {rate} = {want}")
        if len(billed) != 1:
            bad.append(f"billing {src}: {len(billed)} items (want one)")
        elif _d(billed[0]["amount"]) != want or _d(billed[0]["unit_amount"]) != rate:
            bad.append(f"billing {src}: {billed[0]['amount']} at {billed[0]['unit_amount']}, want {want} at {rate}")
        if f"te:{src}" not in events:
            bad.append(f"revenue te:{src}: no event")
        elif event_hours[f"te:{src}"] != want:
            bad.append(f"revenue te:{src}: recognised {event_hours[f'te:{src}']}, want {want}")
    return bad


def provisioned_deals(world: BusinessWorld) -> set[str]:
    return {p["externalId"] for p in world.erp.records("projects")}


def expense_violations(world: BusinessWorld, stats: Counter | None = None) -> list[str]:
    stats = stats if stats is not None else Counter()
    bad: list[str] = []
    exp, erp, billing = world.expenses, world.erp, world.billing
    reports = {r["ReportId"]: r for r in exp.records("reports")}
    deals = provisioned_deals(world)
    actuals = Counter(a["externalId"] for a in erp.records("projectActuals"))
    by_eid = {a["externalId"]: a for a in erp.records("projectActuals")}
    items = Counter(i["source"]["id"] for i in billing.records("invoice_items")
                    if i["source"] and i["source"]["type"] == "expense")
    waiting = {x["details"].get("deal") for x in world.store.dump().get("exceptions", {}).values()
               if x.get("code") == "DEAL_NOT_PROVISIONED"}
    won = {o["Id"] for o in world.crm.records("Opportunity") if o["IsWon"]}
    for e in exp.records("entries"):
        eid = f"ex:{e['EntryId']}"
        approved = reports[e["ReportId"]]["Status"] in ("APPROVED", "REIMBURSED")
        project = approved and e["ProjectRef"] in deals
        billable = project and e["IsBillable"]
        if actuals[eid] != (1 if project else 0) or items[e["EntryId"]] != (1 if billable else 0):
            bad.append(f"expense {e['EntryId']} (approved {approved}, billable {e['IsBillable']}): {actuals[eid]} ERP "
                       f"actuals, {items[e['EntryId']]} items (want {int(project)} and {int(billable)})")
            continue
        if not project:
            if approved and e["ProjectRef"] in won:  # its deal never got provisioned: IT must hear of it
                stats["expenses_waiting"] += 1
                if e["ProjectRef"] not in waiting:
                    bad.append(f"expense {e['EntryId']} waits on deal {e['ProjectRef']}, and no exception says so")
            continue
        stats["expenses"] += 1
        stats["billable_expenses"] += billable
        a = by_eid[eid]
        if a["amount"] != e["Amount"] or a["currency"] != e["Currency"] or a["billable"] != e["IsBillable"]:
            bad.append(f"ERP {eid}: {a['amount']} {a['currency']} billable {a['billable']}, "
                       f"the line says {e['Amount']} {e['Currency']} billable {e['IsBillable']}")
        marks = (e["ExportStatus"], e["BillingStatus"])
        if marks != ("EXPORTED", "BILLED" if billable else "NOT_BILLABLE"):
            bad.append(f"expense {e['EntryId']}: marked {marks}")
    return bad

"""Ground truth for the scenarios' own expectations: what the fake systems
hold, found by the references of the integration contract
(docs/integration-contract.md), and what the script noted down.

Small readers, each answering one business question ("which PSA projects
stand for this deal?", "which ERP actuals post this time entry?"). They read
the fakes' records and effect logs, never the core's internals -- except
`queued_for_people`, which looks in the core's dead-letter and exception
queues the way a finance clerk would, for an item that names a record.
A reader returns every match, so a duplicate is visible to the caller.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal

__all__ = [
    "notes", "won_deals", "lines_of", "psa", "psa_projects_for", "psa_milestone_for", "effect_times",
    "erp_actuals_by_entry", "erp_closed_at", "billing_items", "invoice_of", "revenue_contract", "revenue_lines",
    "queued_for_people", "fmt_us", "dec", "duplicates", "hris_rate_on", "worker_mismatches", "unposted_time",
    "unbilled_time",
]

_TE = re.compile(r"te:(?P<id>[^:]+):v(?P<v>\d+)(?P<rev>:rev)?")
HOUR_US = 3_600_000_000


def dec(value) -> Decimal:
    return Decimal(0) if value in (None, "") else Decimal(str(value))


def fmt_us(world, t_us: int) -> str:
    """A virtual time as the business reads it (UTC, to the minute)."""
    return world.sim.calendar.datetime_at(t_us).strftime("%Y-%m-%d %H:%M UTC")


def notes(world) -> dict:
    """What the script remembered (`Driver.note`)."""
    return getattr(world, "notes", {})


# ------------------------------------------------------------------ CRM


def won_deals(world) -> dict[str, dict]:
    """Won opportunities by Opportunity Id."""
    return {o["Id"]: o for o in world.crm.records("Opportunity") if o.get("IsWon") and not o.get("IsDeleted")}


def lines_of(world, opp_id: str) -> list[dict]:
    return [ln for ln in world.crm.records("QuoteLine") if ln["OpportunityId"] == opp_id and not ln.get("IsDeleted")]


# ------------------------------------------------------------------ PSA


def psa(world, table: str, **match) -> list[dict]:
    """PSA records of `table` whose fields equal `match`."""
    return [r for r in world.psa.records(table) if all(r.get(k) == v for k, v in match.items())]


def psa_projects_for(world, opp_id: str) -> list[dict]:
    return psa(world, "projects", external_reference=opp_id)


def psa_milestone_for(world, line_id: str, name: str) -> list[dict]:
    return psa(world, "milestones", external_reference=f"{line_id}:{name}")


def effect_times(fake, kind: str) -> dict[str, list[int]]:
    """Record id -> virtual times of its effects of `kind`, in order."""
    out: dict[str, list[int]] = defaultdict(list)
    for e in fake.effects(kind):
        out[str(e["id"])].append(e["t"])
    return out


# ------------------------------------------------------------------ ERP


def erp_actuals_by_entry(world) -> dict[str, list[tuple[int, bool, dict]]]:
    """PSA time entry id -> [(version, is_reversal, ERP actual)] from the
    actuals' externalIds (``te:<id>:v<n>`` and ``te:<id>:v<n>:rev``)."""
    out: dict[str, list[tuple[int, bool, dict]]] = defaultdict(list)
    for a in world.erp.records("projectActuals"):
        m = _TE.fullmatch(a.get("externalId") or "")
        if m:
            out[m["id"]].append((int(m["v"]), bool(m["rev"]), a))
    return out


def erp_closed_at(world):
    """A function (period id, virtual time) -> whether that ERP period was
    closed then, from the period effects (close, lock_ar, open) in order."""
    history: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for e in world.erp.effects():
        if e["table"] == "accountingPeriods" and e["kind"].startswith("period."):
            history[e["id"]].append((e["t"], e["kind"] == "period.close"))

    def closed(period_id, t_us: int) -> bool:
        state = False
        for t, is_closed in history.get(str(period_id), []):
            if t <= t_us:
                state = is_closed
        return state

    return closed


# ------------------------------------------------------------------ billing


def billing_items(world, source_type: str | None = None, source_id: str | None = None) -> list[dict]:
    """Invoice items that still stand (not void), by their source."""
    out = []
    for item in world.billing.records("invoice_items"):
        src = item.get("source") or {}
        if item["status"] == "void":
            continue
        if source_type is not None and src.get("type") != source_type:
            continue
        if source_id is not None and src.get("id") != source_id:
            continue
        out.append(item)
    return out


def invoice_of(world, item: dict) -> dict | None:
    return world.billing.table("invoices").get(item.get("invoice") or "")


# ------------------------------------------------------------------ revenue


def revenue_contract(world, opp_id: str) -> dict | None:
    """The revenue contract booked for a deal (not the ones split off it)."""
    for c in world.revenue.records_where("rev_contracts", source_contract_id=opp_id):
        if c.get("parent_rc_id") is None:
            return c
    return None


def revenue_lines(world, rc_id: str, pob_ref: str | None = None) -> list[dict]:
    return [ln for ln in world.revenue.records_where("rev_lines", rc_id=rc_id, line_status="ACTIVE")
            if pob_ref is None or ln["pob_ref"] == pob_ref]


# ------------------------------------------------------------------ exactly once, vendor by vendor


def _twice(rows, key, what: str) -> list[str]:
    seen: dict = defaultdict(list)
    for r in rows:
        k = key(r)
        if k is not None:
            seen[k].append(r)
    return [f"{what} {k}: {len(v)} records ({', '.join(str(x.get('id', x.get('rc_id'))) for x in v)})"
            for k, v in sorted(seen.items(), key=lambda kv: str(kv[0])) if len(v) > 1]


def duplicates(world) -> dict[str, list[str]]:
    """Per vendor, every source the core wrote more than once: what a
    retried create leaves behind when the first attempt's answer was lost."""
    accounts = {a["Name"]: a["Id"] for a in world.crm.records("Account")}
    erp_customers = world.erp.records("customers")
    out = {
        "psa": _twice(world.psa.records("projects"), lambda r: r.get("external_reference"), "PSA project for deal")
        + _twice([r for r in world.psa.records("tasks") if r.get("parent_id") is None],
                 lambda r: r.get("external_reference"), "PSA line task for quote line")
        + _twice(world.psa.records("milestones"), lambda r: r.get("external_reference"), "PSA milestone")
        + _twice(world.psa.records("resources"), lambda r: r.get("external_reference"), "PSA resource for worker"),
        "erp": _twice(erp_customers, lambda r: r.get("externalId"), "ERP customer for account")
        + [f"ERP customer {c['id']} ({c['companyName']}) has no externalId but bears the name of CRM account "
           f"{accounts[c['companyName']]}: a create repeated without its external id"
           for c in erp_customers if not c.get("externalId") and c["companyName"] in accounts
           and any(x.get("externalId") == accounts[c["companyName"]] for x in erp_customers)]
        + _twice(world.erp.records("projects"), lambda r: r.get("externalId"), "ERP project for deal"),
        "billing": _twice(world.billing.records("customers"), lambda r: r.get("external_ref"), "billing customer")
        + _twice(world.billing.records("billing_schedules"),
                 lambda r: (r["contract_ref"], (r.get("metadata") or {}).get("line")), "billing schedule (deal, line)")
        + _twice(billing_items(world), lambda r: tuple(sorted((r.get("source") or {}).items())) or None,
                 "invoice item for source")
        + _twice([h for h in world.billing.records("holds")], lambda r: tuple(sorted((r.get("source") or {}).items()))
                 or None, "hold for source"),
        "revenue": _twice([c for c in world.revenue.records("rev_contracts") if c.get("parent_rc_id") is None],
                          lambda r: r["source_contract_id"], "revenue contract for deal")
        + _twice(world.revenue.records("rev_modifications"), lambda r: (r["rc_id"], r["source_version"]),
                 "revenue modification (contract, version)"),
        "crm": [f"opportunity {o['Id']}: Project_Ref__x {o['Project_Ref__x']} is not its PSA project"
                for o in world.crm.records("Opportunity") if o.get("Project_Ref__x")
                and o["Project_Ref__x"] not in {p["id"] for p in psa_projects_for(world, o["Id"])}],
    }
    return out


# ------------------------------------------------------------------ people's queues


def queued_for_people(world, *needles: str) -> list[str]:
    """Keys of the core's exception and dead-letter items that mention any
    of `needles` -- work routed to a person rather than done."""
    found = []
    dump = world.store.dump()  # the harness's read-only view; callers ask only about what is missing
    for table in ("exceptions", "dlq"):
        for key, item in sorted(dump.get(table, {}).items()):
            text = json.dumps(item, sort_keys=True)
            if any(n in text or n in key for n in needles):
                found.append(f"{table}:{key}")
    return found


# ------------------------------------------------------------------ people: HRIS and PSA


def hris_rate_on(worker: dict, day: str) -> dict | None:
    """The HRIS cost rate in force on `day`: the latest effective on or
    before it, the most recently entered winning on the same date."""
    found = None
    for row in sorted(worker["costRateHistory"], key=lambda r: (r["effectiveDate"], r["enteredAt"] or "")):
        if row["effectiveDate"] <= day:
            found = row
    return found


def worker_mismatches(world, employee_ids) -> list[str]:
    """Where the PSA's resource differs from the HRIS for these workers:
    the cost rate on each date the HRIS names, the leaving date."""
    resources = defaultdict(list)
    for r in world.psa.records("resources"):
        resources[r.get("external_reference")].append(r)
    out = []
    for emp in sorted(employee_ids):
        w = world.hris.table("workers")[emp]
        found = resources.get(emp, [])
        if len(found) != 1:
            out.append(f"worker {emp}: {len(found)} PSA resources with external_reference {emp}")
            continue
        r = found[0]
        have = {row["effective_from"]: row["rate"] for row in r["cost_rates"]}
        for day in sorted({row["effectiveDate"] for row in w["costRateHistory"]}):
            want = hris_rate_on(w, day)["amount"]
            psa_rate = None
            for d_, rate in sorted(have.items()):
                if d_ <= day:
                    psa_rate = rate
            if dec(psa_rate) != dec(want):
                out.append(f"worker {emp}: cost rate on {day} is {psa_rate} in the PSA, {want} in the HRIS")
        if w["terminationDate"] != r["terminated_on"]:
            out.append(f"worker {emp}: left {w['terminationDate']} per the HRIS, the PSA says {r['terminated_on']}")
    return out


# ------------------------------------------------------------------ month-end completeness


def unposted_time(world) -> list[str]:
    """Approved time entries whose current version has no ERP posting."""
    posts = erp_actuals_by_entry(world)
    return [f"time entry {e['id']} v{e['version']} ({e['hours']} h on {e['date']}) approved, not in the ERP "
            f"(corr te:{e['id']})" for e in world.psa.records("time_entries")
            if e["status"] == "approved"
            and not any(v == e["version"] and not rev for v, rev, _ in posts.get(e["id"], []))]


def unbilled_time(world, run_us: int, lag_us: int = HOUR_US) -> tuple[int, list[str]]:
    """Billable time approved at least `lag_us` before the billing run at
    `run_us` that is on no invoice: (how many were due, violations)."""
    approved = effect_times(world.psa, "time_entry.approved")
    items: dict[str, list[dict]] = defaultdict(list)
    for item in billing_items(world, "time_entry"):
        items[item["source"]["id"]].append(item)
    due, out = 0, []
    for entry in world.psa.records("time_entries"):
        last = (approved.get(entry["id"]) or [None])[-1]
        if entry["status"] != "approved" or not entry["billable"] or last is None or last > run_us - lag_us:
            continue
        due += 1
        key = f"{entry['id']}:v{entry['version']}"
        if not any(i["invoice"] for i in items.get(key, [])):
            out.append(f"time entry {key} ({entry['hours']} h on {entry['date']}) approved at {fmt_us(world, last)} "
                       f"is on no invoice of the billing run at {fmt_us(world, run_us)} (corr te:{entry['id']})")
    return due, out

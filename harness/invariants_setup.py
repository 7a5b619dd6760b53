"""Invariants of deal setup: every won deal provisioned once, everywhere.

A won deal (CRM Opportunity, IsWon) must become, exactly once each: an ERP
customer for its account and an ERP project, a PSA project (activated) with
one task per contract line and one milestone per fixed-fee milestone, a
billing customer and one billing schedule per line, and a revenue contract;
the CRM learns the PSA project id. The PSA family's creates are not
idempotent, so a retried create is a duplicate -- the classic bug these
checks exist to catch. A missing record is excused only by an exception (or
dead letter) naming the deal, its account or the line: a deal whose customer
the ERP refuses (no tax registration) rightly waits in an exception queue.
"""

from __future__ import annotations

from collections import defaultdict

from .invariants_truth import Findings, Gap, Truth

__all__ = ["analyse_erp_customers", "analyse_psa_projects", "analyse_deal_setup"]


def _deal(truth: Truth, opp: str) -> str:
    o = truth.won[opp]
    return f"deal {opp} ({o['Name']})"


def _accounts_with_won_deals(truth: Truth) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for opp, o in truth.won.items():
        out[o["AccountId"]].append(opp)
    return dict(sorted(out.items()))


def _created_by_api(effects: list[dict], table: str) -> dict[str, dict]:
    return {e["id"]: e for e in effects if e["table"] == table and e.get("request")}


def _creation(e: dict | None) -> str:
    if not e:
        return "created outside the API"
    req = e["request"]
    return f"created @{e['t']}us by {req['method']} {req['path']} (corr {req['correlation_id']}, cause {req['causation_id']})"


def analyse_erp_customers(truth: Truth) -> Findings:
    f = Findings("ERP: one customer per account with a won deal")
    accounts = _accounts_with_won_deals(truth)
    f.hard += truth.nothing_to_check("no account has a won deal", truth.expected_deals())
    for account, opps in accounts.items():
        f.checked += 1
        found = truth.erp_customers_by_eid.get(account, [])
        name = truth.accounts.get(account, {}).get("Name")
        corr = f"deal:{opps[0]}"
        if not found:
            f.gaps.append(Gap(f"account {account} ({name}) with won deals {', '.join(opps)} has no ERP customer "
                              f"(externalId {account})", (account, *opps), corr))
        elif len(found) > 1 or truth.erp_creates.get(("customers", account), 0) > 1:
            ids = ", ".join(str(c["id"]) for c in found)
            f.hard.append(truth.say(f"account {account} ({name}) has {max(len(found), truth.erp_creates[('customers', account)])} "
                                    f"ERP customers with externalId {account}: {ids}", corr))
    made = _created_by_api(truth.effects("erp", "create"), "customers")
    for c in truth.erp_customers:
        if str(c["id"]) in made and not c.get("externalId"):
            f.hard.append(truth.say(f"ERP customer {c['id']} ({c['companyName']}) was created by the integration with "
                                    "no externalId: it points back to no CRM account",
                                    made[str(c["id"])]["request"]["correlation_id"]))
    return f


def analyse_psa_projects(truth: Truth) -> Findings:
    f = Findings("PSA: one project per won deal")
    f.hard += truth.nothing_to_check("no won deals", truth.expected_deals())
    created = _created_by_api(truth.effects("psa", "project.created"), "projects")
    for opp in truth.won:
        f.checked += 1
        projects = truth.psa_projects_of.get(opp, [])
        corr = f"deal:{opp}"
        if not projects:
            f.gaps.append(Gap(f"{_deal(truth, opp)} has no PSA project (external_reference {opp})",
                              (opp, truth.won[opp]["AccountId"]), corr))
        elif len(projects) > 1:
            detail = "; ".join(f"{p['id']} {_creation(created.get(p['id']))}" for p in projects)
            f.hard.append(truth.say(f"{_deal(truth, opp)} has {len(projects)} PSA projects: {detail}", corr))
    booked = {r["project_id"] for table in ("time_entries", "assignments") for r in truth.rows("psa", table)}
    for p in truth.psa_projects.values():
        ref = p.get("external_reference")
        if _marked_copy(truth, p, ref, booked):
            continue
        if ref not in truth.won:
            what = "no won deal" if ref in truth.opportunities else "no CRM opportunity"
            corr = (created.get(p["id"]) or {}).get("request", {}).get("correlation_id")
            f.hard.append(truth.say(f"PSA project {p['id']} ({p['title']}) has external_reference {ref!r}, "
                                    f"which names {what}", corr))
    return f


def _marked_copy(truth: Truth, project: dict, ref: str | None, booked: set) -> bool:
    """A copy the network made of a create (a request delivered twice), marked
    as the contract says -- ``dup-of:<the kept project>``, which stands for a
    won deal -- and never used: still a draft, nobody staffed or booked on it.
    The PSA has no delete; this is as gone as a PSA project gets."""
    if not (ref or "").startswith("dup-of:"):
        return False
    kept = truth.psa_projects.get(ref[len("dup-of:"):])
    return (kept is not None and kept.get("external_reference") in truth.won and project.get("status") == "draft"
            and project["id"] not in booked)


def _one(f: Findings, truth: Truth, rows: list, what: str, keys: tuple[str, ...], corr: str, show) -> None:
    if not rows:
        f.gaps.append(Gap(f"{what}: missing", keys, corr))
    elif len(rows) > 1:
        f.hard.append(truth.say(f"{what}: {len(rows)} of them ({', '.join(show(r) for r in rows)})", corr))


def analyse_deal_setup(truth: Truth) -> Findings:
    f = Findings("every won deal set up in every system")
    f.hard += truth.nothing_to_check("no won deals", truth.expected_deals())
    tasks_by_ref: dict[str, list[dict]] = defaultdict(list)
    for t in truth.psa_tasks.values():
        if t.get("external_reference"):
            tasks_by_ref[t["external_reference"]].append(t)
    milestones_by_ref = truth.by_field(truth.psa_milestones.values(), "external_reference")
    for opp, o in truth.won.items():
        f.checked += 1
        corr, account, label = f"deal:{opp}", o["AccountId"], _deal(truth, opp)
        deal_keys = (opp, account)
        projects = truth.psa_projects_of.get(opp, [])
        pids = {p["id"] for p in projects}
        for p in projects:
            if p["status"] == "draft":
                f.gaps.append(Gap(f"{label}: PSA project {p['id']} was never activated", deal_keys + (p["id"],), corr))
        erp = truth.erp_projects_by_eid.get(opp, [])
        _one(f, truth, erp, f"{label}: ERP project (externalId {opp})", deal_keys, corr, lambda r: str(r["id"]))
        customers = truth.erp_customers_by_eid.get(account, [])
        if len(erp) == 1 and customers and erp[0]["customer"] not in {c["id"] for c in customers}:
            f.hard.append(truth.say(f"{label}: ERP project {erp[0]['id']} bills customer {erp[0]['customer']}, not the "
                                    f"account's ERP customer {customers[0]['id']}", corr))
        for line in sorted(truth.lines_of.get(opp, []), key=lambda ln: ln["Id"]):
            lid = line["Id"]
            if pids:
                tasks = [t for t in tasks_by_ref.get(lid, []) if t["project_id"] in pids]
                _one(f, truth, tasks, f"{label}: PSA task for line {lid}", deal_keys + (lid,), corr, lambda r: r["id"])
                for m in line.get("Milestones") or []:
                    ref = f"{lid}:{m['Name']}"
                    found = [x for x in milestones_by_ref.get(ref, []) if x["project_id"] in pids]
                    _one(f, truth, found, f"{label}: PSA milestone {ref}", deal_keys + (lid, ref), corr,
                         lambda r: r["id"])
            schedules = [s for s in truth.schedules_of.get(opp, []) if truth.schedule_line(s, opp) == lid]
            _one(f, truth, schedules, f"{label}: billing schedule for line {lid}", deal_keys + (lid,), corr,
                 lambda r: r["id"])
        strays = [s["id"] for s in truth.schedules_of.get(opp, []) if truth.schedule_line(s, opp) is None]
        if strays:
            f.hard.append(truth.say(f"{label}: billing schedules {', '.join(strays)} name no contract line "
                                    "(metadata line = QuoteLine Id)", corr))
        _one(f, truth, truth.billing_customers_by_ref.get(account, []), f"{label}: billing customer for account "
             f"{account}", deal_keys, corr, lambda r: r["id"])
        _one(f, truth, truth.rev_contracts_of.get(opp, []), f"{label}: revenue contract", deal_keys, corr,
             lambda r: r["rc_id"])
        ref = o.get("Project_Ref__x")
        if len(projects) == 1 and ref is None:
            f.gaps.append(Gap(f"{label}: the CRM was never told its PSA project (Project_Ref__x)", deal_keys, corr))
        elif ref is not None and ref not in pids:
            f.hard.append(truth.say(f"{label}: Project_Ref__x {ref!r} is not a PSA project of this deal "
                                    f"({', '.join(sorted(pids)) or 'none'})", corr))
    return f

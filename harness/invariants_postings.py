"""Invariants of the ERP's project actuals: approved time and expenses posted
exactly once, at the contract's price.

Per the contract a time posting is ``te:<PSA entry id>:v<version>`` and its
reversal ``te:<id>:v<version>:rev``; an expense posting is ``ex:<expense
entry id>``. For each PSA time entry:

  * its final version, if approved, is posted exactly once (one record, one
    create in the ERP's effect log -- an update of the same record is fine);
  * a version that was never approved (draft, submitted, rejected) is never
    posted;
  * every earlier version that was posted is reversed exactly once, so the
    net hours per entry are the final hours (zero if it is no longer
    approved) and, for billable T&M time, the net revenue amount is hours x
    the bill rate of the contract version in force on the work date, to the
    cent (the version is read from the CRM's ContractVersions: the
    highest-numbered one effective on or before that day).
"""

from __future__ import annotations

from .invariants_truth import ZERO, Entry, Findings, Gap, Truth, cents, dec

__all__ = ["analyse_time_postings", "analyse_time_amounts", "analyse_expense_postings"]


def _expected_time(truth: Truth) -> str | None:
    if truth.entries:
        return None
    if truth.gave_up():
        return f"the PSA's people gave up {truth.gave_up()} actions (log time on unprovisioned projects?)"
    return None


def _ids(rows: list[dict]) -> str:
    return ", ".join(f"{r['id']}" for r in rows)


def _entry_keys(truth: Truth, e: Entry) -> tuple[str, ...]:
    """What an exception must name to explain a missing posting of `e`: the
    entry, its PSA project, or the deal's outbox line (``deal:<Opportunity
    Id>``, where a parked item holds up everything behind it) -- and the
    deal or its account as such only while the deal has no ERP project to
    post to (its setup is what waits for a person). Once the project
    stands, an exception about something else of the account (a duplicate
    CRM account, another deal's tax registration) explains nothing about
    this entry."""
    keys = [e.id, e.record["project_id"]]
    if e.deal:
        keys.append(f"deal:{e.deal}")
        if not truth.erp_projects_by_eid.get(e.deal):
            keys += [e.deal, truth.opportunities[e.deal]["AccountId"]]
    return tuple(keys)


def analyse_time_postings(truth: Truth) -> Findings:
    f = Findings("ERP: approved time posted exactly once, earlier versions reversed")
    f.hard += truth.nothing_to_check("no PSA time entries", _expected_time(truth))
    actuals = truth.time_actuals
    for e in truth.entries.values():
        f.checked += 1
        posted = actuals.get(e.id, {})
        say = lambda what: truth.say(f"{e.label()}: {what}", e.corr)  # noqa: E731
        final = e.version if e.approved else None
        for v, slot in sorted(posted.items()):
            eid = f"te:{e.id}:v{v}"
            creates = truth.erp_creates.get(("projectActuals", eid), 0)
            if slot["post"] and v not in e.approved_versions:
                f.hard.append(say(f"version {v} was posted ({eid}) but never approved"))
            if len(slot["post"]) > 1 or creates > 1:
                f.hard.append(say(f"{eid} posted {max(len(slot['post']), creates)} times ({_ids(slot['post'])})"))
            if slot["rev"] and not slot["post"]:
                f.hard.append(say(f"{eid}:rev reverses a posting that does not exist"))
            if len(slot["rev"]) > 1 or truth.erp_creates.get(("projectActuals", eid + ":rev"), 0) > 1:
                f.hard.append(say(f"{eid}:rev posted {len(slot['rev'])} times ({_ids(slot['rev'])})"))
            if v == final and slot["rev"]:
                f.hard.append(say(f"the final approved version {v} was reversed ({eid}:rev)"))
            if v != final and slot["post"] and not slot["rev"]:
                # A missing reversal, like a missing posting, is excused by an
                # exception that names the entry (a closed period, say).
                why = "a later version replaced it" if e.approved else f"the entry is now {e.record['status']}"
                f.gaps.append(Gap(f"{e.label()}: version {v} is still posted ({eid}) though {why}; it needs {eid}:rev",
                                  _entry_keys(truth, e), e.corr))
            for rev in slot["rev"][:1]:
                for post in slot["post"][:1]:
                    if dec(rev.get("hours")) != -dec(post.get("hours")):
                        f.hard.append(say(f"{eid}:rev has {rev.get('hours')} h, not the negation of {post.get('hours')} h"))
        if final is not None and not posted.get(final, {}).get("post"):
            f.gaps.append(Gap(f"{e.label()}: approved but not posted to the ERP (te:{e.id}:v{final})",
                              _entry_keys(truth, e), e.corr))
            continue
        net = sum((dec(a.get("hours")) for slot in posted.values() for a in slot["post"] + slot["rev"]), ZERO)
        want = e.hours if e.approved else ZERO
        if posted and net != want:
            f.hard.append(say(f"ERP net hours {net} != {want} (PSA, final version)"))
    orphans = sorted(set(actuals) - set(truth.entries))
    for entry_id in orphans:
        refs = [a["externalId"] for slot in actuals[entry_id].values() for a in slot["post"] + slot["rev"]]
        f.hard.append(truth.say(f"ERP actuals {', '.join(refs)} name PSA time entry {entry_id}, which does not exist",
                                f"te:{entry_id}"))
    return f


def analyse_time_amounts(truth: Truth) -> Findings:
    f = Findings("ERP: time priced at the contract rate in force on the work date")
    erp_project = {opp: rows[0]["id"] for opp, rows in truth.erp_projects_by_eid.items() if len(rows) == 1}
    for e in truth.entries.values():
        posted = truth.time_actuals.get(e.id, {})
        final = posted.get(e.version, {}).get("post") if e.approved else None
        if not final:
            continue  # not posted: the exactly-once check reports it
        f.checked += 1
        say = lambda what: truth.say(f"{e.label()}: {what}", e.corr)  # noqa: E731
        actual = final[0]
        if e.deal in erp_project and actual["project"] != erp_project[e.deal]:
            f.hard.append(say(f"posted to ERP project {actual['project']}, not the deal's {erp_project[e.deal]}"))
        if dec(actual.get("hours")) != e.hours:
            f.hard.append(say(f"te:{e.id}:v{e.version} has {actual.get('hours')} h, the PSA {e.record['hours']} h"))
        if not e.billable_tm:
            continue
        want, why = truth.expected_amount(e)
        if want is None:
            f.hard.append(say(f"cannot be priced: {why}"))
            continue
        net = sum((dec(a.get("revenueAmount")) for slot in posted.values() for a in slot["post"] + slot["rev"]), ZERO)
        if net != want:
            rate, version, _ = truth.rate(e.deal, e.line, e.role, e.record["date"])
            f.hard.append(say(f"ERP revenue {net} {actual.get('currency')} != {e.record['hours']} h x {rate} "
                              f"(role {e.role}, line {e.line}, contract version {version} in force on "
                              f"{e.record['date']}) = {want}"))
    return f


def analyse_expense_postings(truth: Truth) -> Findings:
    f = Findings("ERP: approved expenses posted exactly once")
    erp_project = {opp: rows[0]["id"] for opp, rows in truth.erp_projects_by_eid.items() if len(rows) == 1}
    for entry_id, x in sorted(truth.expense_entries.items()):
        opp = x.get("ProjectRef")
        if opp not in truth.opportunities:
            continue  # not project work: nothing to post to a project
        f.checked += 1
        corr = f"ex:{entry_id}"
        label = f"expense {entry_id} ({x['Amount']} {x['Currency']}, report {x['ReportId']} {x['ReportStatus']}, deal {opp})"
        rows = truth.expense_actuals.get(entry_id, [])
        creates = truth.erp_creates.get(("projectActuals", corr), 0)
        if not truth.expense_approved(x):
            if rows and sum((dec(a.get("amount")) for a in rows), ZERO) != ZERO:
                f.hard.append(truth.say(f"{label}: posted to the ERP ({_ids(rows)}) though never approved", corr))
            continue
        if not rows:
            f.gaps.append(Gap(f"{label}: approved but not posted to the ERP ({corr})",
                              (entry_id, opp, x.get("ExternalId") or entry_id), corr))
            continue
        if len(rows) > 1 or creates > 1:
            f.hard.append(truth.say(f"{label}: posted {max(len(rows), creates)} times ({_ids(rows)})", corr))
        a = rows[0]
        if opp in erp_project and a["project"] != erp_project[opp]:
            f.hard.append(truth.say(f"{label}: posted to ERP project {a['project']}, not the deal's {erp_project[opp]}",
                                    corr))
        if a.get("currency") == x["Currency"] and dec(a.get("amount")) != cents(dec(x["Amount"]), x["Currency"]):
            f.hard.append(truth.say(f"{label}: ERP amount {a.get('amount')} != {x['Amount']}", corr))
        if bool(a.get("billable")) != bool(x["IsBillable"]):
            f.hard.append(truth.say(f"{label}: ERP billable {a.get('billable')} but the expense says {x['IsBillable']}",
                                    corr))
    return f

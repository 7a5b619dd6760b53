"""Invariants of contract versions and revenue.

The CRM is the system of record of a contract's versions (ContractVersion:
the baseline is 1, each signed amendment the next). After the run:

  * every system stands at the latest version: the revenue contract's
    ``source_version`` is the CRM's latest and its price (with any contracts
    split off it) the latest contract value; each billing schedule carries
    its line's latest terms (T&M rate card: code = the CRM RateCard Role;
    fixed-fee milestone amounts; recurring amount and end date), and a
    ``version`` in its metadata, if any, is one whose terms it carries;
  * versions were applied in order: no revenue contract and no billing
    schedule ever went from a later version back to an earlier one (read from
    the revenue engine's effect log and the billing events' snapshots), and
    no revenue contract skipped one -- the engine takes every version, each
    with its own treatment, so a jump from 1 to 3 means version 2's change
    never reached revenue (a billing schedule takes only the versions that
    change its line, so it may jump);
  * revenue schedules tie to the cent: allocations sum to the transaction
    price; a ratable obligation is scheduled in full, a point-in-time one in
    full once satisfied and not before, an input-method one never beyond its
    allocation;
  * nothing is recognised or posted into a closed period (the revenue
    engine's and the ERP's period closes, from their effect logs).
"""

from __future__ import annotations

from collections import defaultdict

from .invariants_truth import CRM_TO_BILLING_MODEL, ZERO, Findings, Gap, Truth, dec

__all__ = ["analyse_latest_version", "analyse_version_order", "analyse_revenue_schedules", "analyse_closed_periods"]


# ------------------------------------------------------------------ billing terms vs contract versions


def _line_terms(snap: dict) -> tuple:
    """A contract line's terms as a billing schedule carries them."""
    model = snap["BillingModel"]
    if model == "t_and_m":
        return ("rates", tuple(sorted((e["Role"], dec(e["Rate"])) for e in snap.get("RateCard") or [])))
    if model == "fixed_fee":
        return ("milestones", tuple(sorted(dec(m["Amount"]) for m in snap.get("Milestones") or [])))
    return ("recurring", dec(snap["UnitPrice"]), snap["ServiceEnd"])


def _schedule_terms(s: dict) -> tuple:
    if s["model"] == "time_and_materials":
        return ("rates", tuple(sorted((e["code"], dec(e["unit_amount"])) for e in s.get("rate_card") or [])))
    if s["model"] == "fixed_fee":
        return ("milestones", tuple(sorted(dec(m["amount"]) for m in s.get("milestones") or [])))
    return ("recurring", dec((s.get("recurring") or {}).get("amount")), s.get("end_date"))


def _meta_version(s: dict) -> int | None:
    v = (s.get("metadata") or {}).get("version")
    return int(v) if isinstance(v, (int, str)) and str(v).isdigit() else None


def _matching_versions(truth: Truth, opp: str, line: str, s: dict) -> list[int]:
    """The contract versions whose terms for `line` the schedule `s` carries."""
    terms = _schedule_terms(s)
    return [v["VersionNumber"] for v, lines in truth.terms.get(opp, []) if line in lines and _line_terms(lines[line]) == terms]


def schedule_version(truth: Truth, opp: str, line: str, s: dict) -> int | None:
    """The version a schedule snapshot stands at: the latest whose terms it
    carries (its metadata's version when the terms match several or none)."""
    found = _matching_versions(truth, opp, line, s)
    meta = _meta_version(s)
    if meta is not None and (meta in found or not found):
        return meta
    return max(found) if found else None


def analyse_latest_version(truth: Truth) -> Findings:
    f = Findings("every system at the latest contract version")
    f.hard += truth.nothing_to_check("no won deals", truth.expected_deals())
    for opp in truth.won:
        latest = truth.latest_version(opp)
        corr, keys = f"deal:{opp}", (opp, truth.won[opp]["AccountId"])
        if not latest:
            f.hard.append(truth.say(f"deal {opp} is won but has no ContractVersion in the CRM", corr))
            continue
        value = dec(truth.contract_versions[opp][-1]["ContractValue"])
        rcs = truth.rev_contracts_of.get(opp, [])
        if len(rcs) == 1:
            f.checked += 1
            rc = rcs[0]
            family = [rc] + [c for c in truth.rev_contracts if c.get("parent_rc_id") == rc["rc_id"]]
            price = sum((dec(c["transaction_price"]) for c in family), ZERO)
            if rc["source_version"] < latest:
                f.extra["revenue_behind"] = f.extra.get("revenue_behind", 0) + 1
                f.gaps.append(Gap(f"deal {opp}: revenue contract {rc['rc_id']} is at version {rc['source_version']}, "
                                  f"the CRM at {latest}", keys, corr))
            elif rc["source_version"] > latest:
                f.hard.append(truth.say(f"deal {opp}: revenue contract {rc['rc_id']} is at version "
                                        f"{rc['source_version']}, beyond the CRM's {latest}", corr))
            elif price != value:
                f.hard.append(truth.say(f"deal {opp}: revenue contract {rc['rc_id']} (with contracts split off it) "
                                        f"prices {price}, the CRM's version {latest} {value}", corr))
        latest_lines = truth.terms[opp][-1][1]
        for s in truth.schedules_of.get(opp, []):
            line = truth.schedule_line(s, opp)
            snap = latest_lines.get(line) if line else None
            if snap is None:
                continue  # not a line of this deal: the setup check reports it
            f.checked += 1
            label = f"deal {opp}: billing schedule {s['id']} for line {line}"
            if CRM_TO_BILLING_MODEL.get(snap["BillingModel"]) != s["model"]:
                f.hard.append(truth.say(f"{label} is {s['model']}, the line {snap['BillingModel']}", corr))
                continue
            meta = _meta_version(s)
            matches = _matching_versions(truth, opp, line, s)
            if meta is not None and meta > latest:
                f.hard.append(truth.say(f"{label} says version {meta}, beyond the CRM's {latest}", corr))
            elif meta is not None and matches and meta not in matches:
                f.hard.append(truth.say(f"{label} says version {meta} but carries the terms of version(s) "
                                        f"{', '.join(map(str, matches))}", corr))
            elif latest in matches:
                continue
            elif matches:
                f.extra["schedules_behind"] = f.extra.get("schedules_behind", 0) + 1
                f.gaps.append(Gap(f"{label} carries version {max(matches)}'s terms, the CRM is at {latest}",
                                  keys + (line,), corr))
            else:
                f.hard.append(truth.say(f"{label} carries terms of no contract version: {_schedule_terms(s)} vs "
                                        f"version {latest} {_line_terms(snap)}", corr))
    return f


def analyse_version_order(truth: Truth) -> Findings:
    f = Findings("contract versions applied in order, never backwards")
    seqs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e in truth.effects("revenue"):
        if e["table"] == "rev_contracts" and "version" in (e.get("detail") or {}):
            seqs[f"revenue contract {e['id']}"].append((e["t"], e["detail"]["version"]))
    by_id = {c["rc_id"]: c for c in truth.rev_contracts}
    corr_of = {f"revenue contract {k}": f"deal:{c['source_contract_id']}" for k, c in by_id.items()}
    for event in truth.emitted("billing"):
        if event["type"] not in ("billing_schedule.created", "billing_schedule.updated"):
            continue
        s = event["data"]["object"]
        opp = s.get("contract_ref")
        line = truth.schedule_line(s, opp) if opp in truth.opportunities else None
        if line is None:
            continue
        v = schedule_version(truth, opp, line, s)
        if v is not None:
            seqs[f"billing schedule {s['id']}"].append((event["created"], v))
            corr_of[f"billing schedule {s['id']}"] = f"deal:{opp}"
    for what, seq in sorted(seqs.items()):
        f.checked += 1
        highest = 0
        for t, v in seq:
            if v < highest:
                f.hard.append(truth.say(f"{what} went back from version {highest} to {v} at {t}us", corr_of.get(what)))
            elif highest and v > highest + 1 and what.startswith("revenue contract"):
                skipped = ", ".join(str(n) for n in range(highest + 1, v))
                f.hard.append(truth.say(f"{what} jumped from version {highest} to {v} at {t}us: version(s) {skipped} "
                                        "never reached it", corr_of.get(what)))
            highest = max(highest, v)
    return f


def analyse_revenue_schedules(truth: Truth) -> Findings:
    f = Findings("revenue schedules tie to the allocated price")
    live: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for ln in truth.rev_lines:
        if ln["line_status"] == "ACTIVE":
            live[(ln["rc_id"], ln["pob_ref"])].append(ln)
    provisioned = [opp for opp in truth.won if truth.psa_projects_of.get(opp)]
    if not truth.rev_contracts:
        f.hard += truth.nothing_to_check(
            "no revenue contracts", f"{len(provisioned)} won deals have PSA projects" if provisioned else None)
    mismatched = 0
    for c in truth.rev_contracts:
        f.checked += 1
        before = len(f.hard)
        corr = f"deal:{c['source_contract_id']}"
        label = f"revenue contract {c['rc_id']} (deal {c['source_contract_id']} v{c['source_version']})"
        allocated = sum((dec(p["allocated_amount"]) for p in c["pobs"]), ZERO)
        if allocated != dec(c["transaction_price"]):
            f.hard.append(truth.say(f"{label}: allocations sum to {allocated}, the price is {c['transaction_price']}", corr))
        for p in c["pobs"]:
            got = sum((dec(ln["amount"]) for ln in live[(c["rc_id"], p["pob_ref"])]), ZERO)
            alloc, method = dec(p["allocated_amount"]), p["rec_method"]
            want = {"ratable": alloc, "point_in_time": alloc if p.get("satisfied_on") else ZERO}.get(method)
            if want is not None and got != want:
                f.hard.append(truth.say(f"{label}: {method} obligation {p['pob_ref']} is scheduled {got}, "
                                        f"not {want} (allocated {alloc})", corr))
            if method == "input" and not ZERO <= got <= alloc:
                f.hard.append(truth.say(f"{label}: input obligation {p['pob_ref']} recognised {got} of {alloc}", corr))
        mismatched += len(f.hard) > before
    f.extra["mismatched_contracts"] = mismatched
    return f


def _erp_period_states(truth: Truth) -> dict[tuple[int, str], list[tuple[int, str]]]:
    out: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for e in truth.effects("erp"):
        if e["kind"].startswith("period."):
            d = e.get("detail") or {}
            out[(d.get("subsidiary"), d.get("periodName"))].append((e["t"], e["kind"][7:]))
    return out


def analyse_closed_periods(truth: Truth) -> Findings:
    f = Findings("nothing recognised or posted into a closed period")
    closed = {e["id"]: e["t"] for e in truth.effects("revenue", "period.closed")}
    lines = {ln["line_id"]: ln for ln in truth.rev_lines}
    contracts = {c["rc_id"]: c for c in truth.rev_contracts}
    for e in truth.effects("revenue", "rev_line.posted"):
        f.checked += 1
        period = (e.get("detail") or {}).get("period")
        if period in closed and closed[period] <= e["t"]:
            ln = lines.get(e["id"], {})
            c = contracts.get(ln.get("rc_id"), {})
            f.hard.append(truth.say(f"revenue line {e['id']} ({ln.get('amount')}, {ln.get('event_ref') or ln.get('basis')}) "
                                    f"recognised into {period}, closed at {closed[period]}us, at {e['t']}us",
                                    f"deal:{c.get('source_contract_id')}" if c else None))
    states = _erp_period_states(truth)
    tables = {"projectActuals": False, "journalEntries": False, "invoices": True, "creditMemos": True}
    records = {t: {str(r["id"]): r for r in truth.rows("erp", t)} for t in tables}
    for e in truth.effects("erp"):
        if e["table"] not in tables or e["kind"] not in ("create", "update"):
            continue
        f.checked += 1
        rec = records[e["table"]].get(e["id"])
        period = (e.get("detail") or {}).get("postingPeriodName")
        if rec is None or period is None:
            continue
        state = "open"
        for t, kind in states.get((rec["subsidiary"], period), []):
            if t <= e["t"]:
                state = kind
        if state == "close" or (state == "lock_ar" and tables[e["table"]]):
            corr = (e.get("request") or {}).get("correlation_id")
            f.hard.append(truth.say(f"ERP {e['table']} {rec.get('tranId')} ({rec.get('externalId')}) was "
                                    f"{e['kind']}d in {period}, {state}d for subsidiary {rec['subsidiary']}", corr))
    return f

"""Reconciliation and traceability: the books agree, and every posting says
where it came from.

Reconciliation, per deal (project) and month of work: the PSA's approved
hours equal the ERP's net posted hours; for billable T&M time, the amount
approved work is worth at the contract rate equals the ERP's net revenue,
the net billed, and the revenue recognised from ``te:`` events. Time whose
gap an exception explains is left out (it is accounted for elsewhere).

Traceability: every ERP project actual, billing invoice item and revenue
event carries the contract's reference and it resolves to a source record
(a PSA time entry and version, an expense entry, a PSA milestone, a billing
schedule for recurring charges). Coverage is reported as a percentage.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from .invariants_truth import ZERO, Findings, Gap, Truth, dec, parse_actual_ref, period_of, time_source

__all__ = ["analyse_reconciliation", "analyse_traceability", "traceability"]


def _explained_entries(truth: Truth) -> set[str]:
    out = set()
    for e in truth.entries.values():
        keys = (e.id, e.record["project_id"]) + ((e.deal, truth.opportunities[e.deal]["AccountId"]) if e.deal else ())
        if truth.explain(Gap("", keys, e.corr)) is not None:
            out.add(e.id)
    return out


def analyse_reconciliation(truth: Truth) -> Findings:
    f = Findings("reconciliation per project and period: PSA = ERP = billing = revenue")
    excused = _explained_entries(truth)
    rev_by_entry: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for ln in truth.rev_lines:
        ref = ln.get("event_ref") or ""
        if ln["line_status"] == "ACTIVE" and ref.startswith("te:"):
            rev_by_entry[ref.split(":")[1]] += dec(ln["amount"])
    # (deal, period) -> column -> total
    sums: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    unpriced: dict[tuple[str, str], int] = defaultdict(int)
    for e in truth.entries.values():
        if e.deal is None or e.id in excused:
            continue
        key = (e.deal, period_of(e.record["date"]))
        cols = sums[key]
        posted = truth.time_actuals.get(e.id, {})
        rows = [a for slot in posted.values() for a in slot["post"] + slot["rev"]]
        if e.approved:
            cols["psa_hours"] += e.hours
        cols["erp_hours"] += sum((dec(a.get("hours")) for a in rows), ZERO)
        if e.billable_tm:
            want, _ = truth.expected_amount(e)
            if want is None:
                unpriced[key] += 1
            else:
                cols["psa_amount"] += want
        if e.model == "t_and_m":
            cols["erp_revenue"] += sum((dec(a.get("revenueAmount")) for a in rows), ZERO)
            cols["billed"] += truth.net_time_billed(e.id)
            cols["recognised"] += rev_by_entry.get(e.id, ZERO)
    for (opp, period), cols in sorted(sums.items()):
        f.checked += 1
        diffs = []
        if cols["psa_hours"] != cols["erp_hours"]:
            diffs.append(f"hours PSA {cols['psa_hours']} vs ERP {cols['erp_hours']}")
        amounts = [("ERP revenue", cols["erp_revenue"]), ("billed", cols["billed"]), ("recognised", cols["recognised"])]
        off = [f"{name} {value}" for name, value in amounts if value != cols["psa_amount"]]
        if off:
            diffs.append(f"T&M amount PSA {cols['psa_amount']} vs " + ", ".join(off))
        if diffs:
            note = f" ({unpriced[(opp, period)]} entries could not be priced)" if unpriced[(opp, period)] else ""
            f.hard.append(truth.say(f"deal {opp} {period}: " + "; ".join(diffs) + note, f"deal:{opp}"))
    f.extra["excused_entries"] = len(excused)
    return f


def _resolve_time(truth: Truth, entry_id: str, version: int) -> str | None:
    e = truth.entries.get(entry_id)
    if e is None:
        return f"PSA time entry {entry_id} does not exist"
    if version > e.version:
        return f"PSA time entry {entry_id} has no version {version} (it is at {e.version})"
    return None


def _resolve_actual(truth: Truth, a: dict) -> str | None:
    ref = parse_actual_ref(a.get("externalId"))
    if ref is None:
        return f"externalId {a.get('externalId')!r} is neither te:<entry>:v<n>[:rev] nor ex:<expense>"
    if ref[0] == "te":
        return _resolve_time(truth, ref[1], ref[2])
    if ref[1] in truth.expense_entries or ref[1] in truth.psa_expenses:
        return None
    return f"expense entry {ref[1]} exists in neither the expense system nor the PSA"


def _resolve_item(truth: Truth, i: dict) -> str | None:
    src = i.get("source")
    if not src:
        return "no source"
    kind, ref = src["type"], src["id"]
    found = time_source(kind, ref)
    if found is not None:
        return _resolve_time(truth, *found)
    if kind in ("milestone", "adjustment") and ref in truth.psa_milestones:
        return None
    if kind in ("expense", "adjustment") and (ref in truth.expense_entries or ref in truth.psa_expenses):
        return None
    if kind == "recurring":
        schedule = ref.split(":", 1)[0]
        if any(s["id"] == schedule and s.get("contract_ref") in truth.opportunities for s in truth.schedules):
            return None
        return f"recurring charge of schedule {schedule}, which names no CRM contract"
    return f"source {kind}/{ref} names no source record"


def _resolve_event(truth: Truth, ev: dict) -> str | None:
    ref = ev["event_ref"]
    if ref.startswith("te:"):
        parts = ref.split(":")
        if len(parts) >= 3 and parts[2][:1] == "v" and parts[2][1:].isdigit():
            return _resolve_time(truth, parts[1], int(parts[2][1:]))
    if ref.startswith("ms:"):
        return None if ref[3:] in truth.psa_milestones else f"PSA milestone {ref[3:]} does not exist"
    return f"event_ref {ref!r} is neither te:<entry>:v<n> nor ms:<milestone>"


def traceability(truth: Truth) -> tuple[int, int, list[tuple[str, str, str | None]]]:
    """(postings, traceable, [(what, why not, corr)])."""
    def run() -> tuple[int, int, list]:
        total, bad = 0, []
        for a in truth.erp_actuals:
            total += 1
            why = _resolve_actual(truth, a)
            if why:
                bad.append((f"ERP actual {a['tranId']} ({a.get('type')}, project {a['project']})", why,
                            _corr(a.get("externalId"))))
        for i in truth.items:
            total += 1
            why = _resolve_item(truth, i)
            if why:
                bad.append((f"billing item {i['id']} ({i['amount']} {i['currency']}, {i['description']})", why,
                            _corr_item(i)))
        for ev in truth.rev_events:
            total += 1
            why = _resolve_event(truth, ev)
            if why:
                bad.append((f"revenue event {ev['event_ref']} ({ev['event_type']}, {ev['rc_id']})", why, None))
        return total, total - len(bad), bad
    return truth.memo("traceability", lambda _: run())


def _corr(ref: str | None) -> str | None:
    parsed = parse_actual_ref(ref)
    return f"{parsed[0]}:{parsed[1]}" if parsed else None


def _corr_item(i: dict) -> str | None:
    src = i.get("source") or {}
    found = time_source(src.get("type", ""), src.get("id", ""))
    if found is not None:
        return f"te:{found[0]}"
    if src.get("type") == "expense":
        return f"ex:{src['id']}"
    return None


def coverage(total: int, traceable: int) -> str:
    if total == 0:
        return "100.00"
    return str((Decimal(100) * traceable / total).quantize(Decimal("0.01")))


def analyse_traceability(truth: Truth) -> Findings:
    f = Findings("traceability: every posting resolves to its source")
    total, traceable, bad = traceability(truth)
    f.checked = total
    f.extra["coverage_percent"] = coverage(total, traceable)
    for what, why, corr in bad:
        f.hard.append(truth.say(f"{what}: {why}", corr))
    return f

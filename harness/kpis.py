"""The seeds' KPIs for a finished world, from ground truth and the trace.

Every value is an integer or a decimal string (no floats): durations in
hours with two places, shares in percent with two places, money per
currency (``unbilled_approved_time_value.USD``). A ratio or a duration
whose population is empty is left out, never reported as a flattering
100% or 0; the count beside it says why.

  project_setup_hours_*       closed won -> PSA project activated (PSA effect
                              log). A deal won during the run counts from its
                              close (CRM effect log); one won before go-live
                              from go-live, when the integration started.
  billing_lag_hours_*         approval (time, expense) or client acceptance
                              (milestone) -> its invoice item was created;
  invoice_lag_hours_*         ... -> the item went onto an invoice.
  unbilled_approved_time_*    billable T&M time approved, final version on no
                              live invoice item, valued at the contract rate.
  revenue_schedule_mismatches revenue contracts that do not tie, or lag the
                              CRM's version.
  failed_postings             dead letters and exceptions of operations on
                              the ERP, billing or revenue engine.
  exceptions_by_code.<code>   open exceptions (and dead letters, by reason).
  exception_age_hours_*       how long open exceptions and dead letters have
                              waited at the end of the run (their
                              ``opened_us`` / ``dead_us``: virtual or Unix us).
  traceability_coverage_percent  postings that resolve to a source record.
  automated_invoice_share_percent  finalised invoices, not credited or
                              voided, every line of which the integration
                              (or the recurring billing run) created.
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from .invariants_truth import HOUR_US, ZERO, Truth

__all__ = ["world_kpis", "truth_for"]

_TRUTHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def truth_for(world, *, fresh: bool = False) -> Truth:
    """One Truth per finished world, shared by the invariants and the KPIs
    (rebuilt when `fresh`, or when anything happened since)."""
    seq = world.sim.trace.seq
    cached = _TRUTHS.get(world)
    if not fresh and cached is not None and cached[0] == seq:
        return cached[1]
    truth = Truth(world)
    _TRUTHS[world] = (seq, truth)
    return truth


def _hours(us: int) -> Decimal:
    return (Decimal(us) / HOUR_US).quantize(Decimal("0.01"))


def _percent(part: int, whole: int) -> str:
    return str((Decimal(100) * part / whole).quantize(Decimal("0.01")))


def _spread(out: dict, name: str, samples: list[int]) -> None:
    """count, median and max of durations (us) as hours."""
    out[f"{name}_count"] = len(samples)
    if samples:
        ordered = sorted(samples)
        out[f"{name}_median"] = str(_hours(ordered[(len(ordered) - 1) // 2]))
        out[f"{name}_max"] = str(_hours(ordered[-1]))


def _project_setup(truth: Truth, out: dict) -> None:
    activated: dict[str, int] = {}
    for e in truth.effects("psa", "project.activated"):
        activated.setdefault(e["id"], e["t"])
    samples, waiting = [], 0
    for opp in truth.won:
        times = [activated[p["id"]] for p in truth.psa_projects_of.get(opp, []) if p["id"] in activated]
        if not times:
            waiting += 1
            continue
        samples.append(max(0, min(times) - truth.close_times.get(opp, 0)))
    _spread(out, "project_setup_hours", samples)
    out["projects_awaiting_setup"] = waiting


def _lags(truth: Truth, out: dict) -> None:
    created: dict[tuple[str, str], int] = {}
    invoiced: dict[str, int] = {}
    for e in truth.effects("billing"):
        d = e.get("detail") or {}
        if e["kind"] == "invoice_item.create" and d.get("source_type"):
            created.setdefault((d["source_type"], d["source_id"]), e["t"])
            invoiced.setdefault(e["id"], -1)
        elif e["kind"] == "invoice_item.invoice":
            invoiced[e["id"]] = e["t"]
    item_of = {}
    for i in truth.items:
        if i.get("source"):
            item_of.setdefault((i["source"]["type"], i["source"]["id"]), i["id"])
    starts: dict[tuple[str, str], int] = {}
    for e in truth.effects("psa", "time_entry.approved"):
        version = (e.get("detail") or {}).get("version")
        starts[("time_entry", f"{e['id']}:v{version}")] = e["t"]
    for e in truth.effects("psa", "milestone.accepted"):
        starts.setdefault(("milestone", e["id"]), e["t"])
    approved_reports = {e["id"]: e["t"] for e in truth.effects("expenses", "report.approved")}
    for entry_id, x in truth.expense_entries.items():
        if x["ReportId"] in approved_reports:
            starts[("expense", entry_id)] = approved_reports[x["ReportId"]]
    billing, invoicing = [], []
    for key, t0 in starts.items():
        if key in created:
            billing.append(max(0, created[key] - t0))
            t_inv = invoiced.get(item_of.get(key, ""), -1)
            if t_inv >= 0:
                invoicing.append(max(0, t_inv - t0))
    _spread(out, "billing_lag_hours", billing)
    _spread(out, "invoice_lag_hours", invoicing)


def _unbilled(truth: Truth, out: dict) -> None:
    value: dict[str, Decimal] = defaultdict(lambda: ZERO)
    count = 0
    for e in truth.entries.values():
        if e.billable_tm and not truth.live_items_by_source.get(("time_entry", f"{e.id}:v{e.version}")):
            count += 1
            amount, _ = truth.expected_amount(e)
            value[e.currency] += amount or ZERO
    out["unbilled_approved_time_entries"] = count
    for currency, amount in sorted(value.items()):
        out[f"unbilled_approved_time_value.{currency}"] = str(amount)


def _queues(truth: Truth, out: dict) -> None:
    dump = truth.world.store.dump() if getattr(truth.world, "store", None) is not None else {}
    out["dlq_depth"] = len(dump.get("dlq") or {})
    out["exceptions_open"] = len(dump.get("exceptions") or {})
    out["outbox_waiting"] = len(dump.get("msgs") or {})
    codes: Counter = Counter()
    ages, failed = [], 0
    now = truth.sim.now_us
    # A core stamps its queues with its own clock: virtual microseconds, or
    # (like the reference core, from env.now) microseconds since 1970.
    unix = -truth.sim.calendar.us_at(datetime(1970, 1, 1, tzinfo=UTC))
    for key, item, _ in truth.queue_items:
        codes[str(item.get("code") or item.get("reason") or "no_reason")[:60]] += 1
        op = str(item.get("op") or "")
        if op.split(".", 1)[0] in ("erp", "billing", "revenue"):
            failed += 1
        since = item.get("opened_us", item.get("dead_us"))
        if isinstance(since, int) and not isinstance(since, bool):
            ages.append(max(0, (now + unix if since > now else now) - since))
    out["failed_postings"] = failed
    for code, n in sorted(codes.items()):
        out[f"exceptions_by_code.{code}"] = n
    _spread(out, "exception_age_hours", ages)


def _invoices(truth: Truth, out: dict) -> None:
    by_api = {e["id"] for e in truth.effects("billing", "invoice_item.create") if e.get("request")}
    items = {i["id"]: i for i in truth.items}
    finalised = automated = 0
    for inv in truth.invoices:
        if inv["status"] not in ("open", "paid"):
            continue
        finalised += 1
        lines_ok = all(ln["invoice_item"] in by_api or (items.get(ln["invoice_item"], {}).get("source") or {}).get(
            "type") == "recurring" for ln in inv["lines"])
        if lines_ok and not inv["credit_notes"]:
            automated += 1
    out["invoices_finalised"] = finalised
    if finalised:
        out["automated_invoice_share_percent"] = _percent(automated, finalised)


def world_kpis(world) -> dict:
    from .invariants import analyses
    from .invariants_reconcile import traceability

    truth = truth_for(world)
    out: dict = {}
    _queues(truth, out)
    _project_setup(truth, out)
    _lags(truth, out)
    _unbilled(truth, out)
    found = {f.name: f for f in analyses(truth)}
    revenue = found["revenue schedules tie to the allocated price"]
    latest = found["every system at the latest contract version"]
    out["revenue_contracts"] = len(truth.rev_contracts)
    out["revenue_schedule_mismatches"] = revenue.extra.get("mismatched_contracts", 0) + latest.extra.get("revenue_behind", 0)
    if truth.rev_contracts:
        out["revenue_schedule_mismatch_percent"] = _percent(out["revenue_schedule_mismatches"], len(truth.rev_contracts))
    out["amendments_awaiting_propagation"] = latest.extra.get("revenue_behind", 0) + latest.extra.get("schedules_behind", 0)
    total, traceable, _ = traceability(truth)
    out["postings"] = total
    if total:
        out["traceability_coverage_percent"] = _percent(traceable, total)
    _invoices(truth, out)
    out["people_gave_up"] = truth.gave_up()
    return out

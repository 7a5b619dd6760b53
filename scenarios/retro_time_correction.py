"""Retro time correction: hours change after they were invoiced.

A small firm's January runs its course and is billed at month end. On 3
February, January still open, a client queries an invoice: a consultant's
hours on one day were wrong. The consultant corrects the approved entry (a
new version) and the manager approves the correction -- the seeds' "adjust":
the ERP reverses the January posting and reposts the new version, billing
credits what was invoiced and bills the corrected hours.

Finance closes January on 5 February. On the 6th a second invoiced January
entry is corrected the same way -- now into a closed period. The ERP refuses
anything dated in January, so the correction must go to finance (an
exception a person resolves) or be adjusted in the open period; it must
never land in January, and never be dropped. February's billing run follows.

Beyond the general invariants this scenario checks the reverse-and-repost
of the open-period correction in the ERP (original, reversal dated like it,
the new version; net hours as corrected) and in billing (the corrected
version billed, the original credited or netted), the closed-period
correction's routing, and that the invoices the client already holds were
not rewritten.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from fake_systems.vendor import VendorError
from harness.scenario_api import Scenario, check

from . import _truth as t


def _invoiced_entry(d, exclude: set[str]) -> dict | None:
    """An approved January entry already on an invoice (else any approved
    January entry), the lowest id first."""
    invoiced = {i["source"]["id"].split(":v")[0] for i in t.billing_items(d.world, "time_entry") if i["invoice"]}
    entries = [e for e in d.psa.records("time_entries") if e["status"] == "approved" and e["date"] < "2026-02"
               and e["id"] not in exclude and e["version"] == 1 and Decimal(e["hours"]) > 1]
    entries.sort(key=lambda e: (e["id"] not in invoiced, e["id"]))
    return entries[0] if entries else None


async def _correct(d, label: str, exclude: set[str]) -> None:
    entry = _invoiced_entry(d, exclude)
    if entry is None:
        d.sim.trace.record("scenario.step_skipped", {"step": label, "why": "no approved January time to correct"})
        return
    hours = Decimal(entry["hours"]) - 1
    invoices = {i["id"]: i["total"] for i in d.billing.records("invoices") if i["status"] in ("open", "paid")}
    try:
        d.correct_time(entry["id"], hours)
    except VendorError as exc:
        d.sim.trace.record("scenario.step_skipped", {"step": label, "what": entry["id"], "why": exc.message})
        return
    d.note(**{label: {"entry": entry["id"], "hours": str(hours), "was": entry["hours"], "at_us": d.sim.now_us,
                      "invoices": invoices}})
    exclude.add(entry["id"])


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    done: set[str] = set()
    await d.advance_to(date(2026, 2, 3), time(10))
    await _correct(d, "open_period", done)
    await d.advance_to(date(2026, 2, 5), time(17))
    await d.settle(days=1)
    d.close_period("2026-01")
    await d.advance_to(date(2026, 2, 6), time(10))
    await _correct(d, "closed_period", done)
    await d.settle(days=2)
    await d.advance_to(date(2026, 2, 27), time(18))
    d.run_billing()
    await d.advance(days=1)


def _postings(world, entry_id: str) -> list[tuple[int, bool, dict]]:
    return t.erp_actuals_by_entry(world).get(entry_id, [])


def open_period_reversed_and_reposted(world) -> dict:
    name = "retro correction, open period: the ERP reversed the posting in January and reposted the new version"
    noted = t.notes(world).get("open_period")
    if noted is None:
        return check(name, ["the script corrected no entry in the open period"])
    eid = noted["entry"]
    posts = _postings(world, eid)
    kinds = {(v, rev) for v, rev, _ in posts}
    violations = []
    for want in ((1, False), (1, True), (2, False)):
        if want not in kinds:
            violations.append(f"time entry {eid}: no ERP actual te:{eid}:v{want[0]}{':rev' if want[1] else ''} "
                              f"(corr te:{eid})")
    net = sum((t.dec(a["hours"]) for _, _, a in posts), Decimal(0))
    if net != Decimal(noted["hours"]):
        violations.append(f"time entry {eid}: ERP hours net to {net}, corrected to {noted['hours']}")
    originals = {a["tranDate"] for v, rev, a in posts if v == 1 and not rev}
    for v, rev, a in posts:
        if rev and a["tranDate"] not in originals:
            violations.append(f"time entry {eid}: reversal {a['externalId']} dated {a['tranDate']}, the original "
                              f"{sorted(originals)}")
    return check(name, violations)


def open_period_rebilled(world) -> dict:
    name = "retro correction, open period: billing credits the invoiced hours and bills the corrected ones"
    noted = t.notes(world).get("open_period")
    if noted is None:
        return check(name, ["the script corrected no entry in the open period"])
    eid = noted["entry"]
    violations = []
    v1 = t.billing_items(world, "time_entry", f"{eid}:v1")
    v2 = t.billing_items(world, "time_entry", f"{eid}:v2")
    if not v2:
        violations.append(f"time entry {eid}: the corrected version v2 was never billed (corr te:{eid})")
    if v1 and any(i["invoice"] for i in v1):
        invoice_ids = {i["invoice"] for i in v1}
        credited = [c for c in world.billing.records("credit_notes") if c["invoice"] in invoice_ids]
        netted = t.billing_items(world, "time_entry", f"{eid}:v1:rev")
        if not credited and not netted:
            violations.append(f"time entry {eid}: v1 was invoiced on {sorted(invoice_ids)} and neither credited nor "
                              "netted by a reversal item")
    return check(name, violations)


def closed_period_routed(world) -> dict:
    name = "retro correction, closed period: nothing lands in January; finance or the open period takes it"
    noted = t.notes(world).get("closed_period")
    if noted is None:
        return check(name, ["the script corrected no entry after January closed"])
    eid = noted["entry"]
    closed = t.erp_closed_at(world)
    created = t.effect_times(world.erp, "create")
    violations = []
    later = []
    for v, rev, a in _postings(world, eid):
        when = (created.get(str(a["id"])) or [0])[0]
        if when >= noted["at_us"]:
            later.append(a)
            if closed(a["postingPeriod"], when):
                violations.append(f"time entry {eid}: {a['externalId']} posted into closed {a['postingPeriodName']}")
    queued = t.queued_for_people(world, f"te:{eid}", eid)
    net = sum((t.dec(a["hours"]) for _, _, a in _postings(world, eid)), Decimal(0))
    if not queued and net != Decimal(noted["hours"]):
        violations.append(f"time entry {eid}, corrected to {noted['hours']} h after January closed: the ERP nets "
                          f"{net} h and no exception for finance names it (corr te:{eid})")
    return check(name, violations)


def issued_invoices_not_rewritten(world) -> dict:
    name = "retro correction: invoices the client already held were not voided or changed"
    violations = []
    invoices = world.billing.table("invoices")
    for label in ("open_period", "closed_period"):
        noted = t.notes(world).get(label)
        for inv_id, total in sorted((noted or {}).get("invoices", {}).items()):
            now = invoices.get(inv_id)
            if now is None or now["status"] == "void" or now["total"] != total:
                violations.append(f"invoice {inv_id} (total {total} when the correction was made) is now "
                                  f"{now and now['status']} {now and now['total']}")
    if not any(t.notes(world).get(k, {}).get("invoices") for k in ("open_period", "closed_period")):
        violations.append("no invoice had been issued before the corrections: the story did not happen")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [open_period_reversed_and_reposted(world), open_period_rebilled(world), closed_period_routed(world),
            issued_invoices_not_rewritten(world)]


SCENARIO = Scenario(
    name="retro-time-correction",
    summary="invoiced time corrected twice: reversed and reposted in an open period, routed to finance once closed",
    script=script,
    firm={"consultants": 10},
    default_chaos="default",
    expectations=expectations,
    horizon_days=45,
)

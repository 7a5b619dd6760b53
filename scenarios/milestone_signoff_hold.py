"""Milestone sign-off hold: billing waits for the client, who is late -- twice.

On the first business day of January sales closes a fixed-fee advisory
engagement paid by three milestones. The team finishes the first on 16
January, but the client's sponsor signs it off only on 9 February -- after
the January billing run -- and the sign-off is recorded twice, the second
time the next morning from a forwarded email. The second milestone is
finished on 21 January and accepted on the 23rd with two clicks a few
minutes apart. The third is finished on 20 February and never signed off
before the run ends. Billing runs at the end of January and of February.

The seeds' control: "evidence; billing held until client sign-off". Beyond
the general invariants this scenario checks that no milestone reached an
invoice before its first sign-off; that each signed-off milestone is
invoiced exactly once, at its price, despite the double sign-off; that the
unsigned one is not invoiced; that revenue has exactly one acceptance event
per signed-off milestone and none for the other; and that the PSA shows the
signed-off milestones as invoiced.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._firm import clean_clients, fixed_fee_line
from ._people import client_accepts, complete_milestone

MILESTONES = (("Current-state assessment", "40000.00", date(2026, 1, 16)),
              ("Target operating model", "55000.00", date(2026, 1, 23)),
              ("Roadmap", "30000.00", date(2026, 2, 20)))
# (when, what, milestone): the people's calendar of this story
STEPS = ((date(2026, 1, 16), time(12), "complete", "Current-state assessment"),
         (date(2026, 1, 21), time(12), "complete", "Target operating model"),
         (date(2026, 1, 23), time(15), "accept", "Target operating model"),
         (date(2026, 1, 23), time(15, 4), "accept", "Target operating model"),
         (date(2026, 1, 30), time(18), "bill", None),
         (date(2026, 2, 9), time(15), "accept", "Current-state assessment"),
         (date(2026, 2, 10), time(9, 30), "accept", "Current-state assessment"),
         (date(2026, 2, 20), time(12), "complete", "Roadmap"),
         (date(2026, 2, 27), time(18), "bill", None))


async def script(d):
    client = clean_clients(d.firm)[0]
    await d.advance_to(date(2026, 1, 2), time(10))
    opp = d.sell(client.id, f"{client.name} - operating model", [
        fixed_fee_line("Operating model advisory (fixed fee)", date(2026, 1, 5), MILESTONES)])
    line = d.quote_lines(opp)[0]["Id"]
    d.note(signoff={"opp": opp, "line": line, "accepted_us": {}, "runs_us": []})
    noted = d.world.notes["signoff"]
    for day, at, what, name in STEPS:
        await d.advance_to(day, at)
        if what == "complete":
            await complete_milestone(d, line, name)
        elif what == "accept":
            if await client_accepts(d, line, name):
                noted["accepted_us"].setdefault(name, d.sim.now_us)
        else:
            await d.settle(days=1)
            noted["runs_us"].append(d.sim.now_us)
            d.run_billing()
    await d.advance(days=2)


def _story(world):
    noted = t.notes(world).get("signoff")
    if noted is None:
        return None, {}
    ids = {}
    for name, _, _ in MILESTONES:
        found = t.psa_milestone_for(world, noted["line"], name)
        if found:
            ids[name] = found[0]["id"]
    return noted, ids


def nothing_invoiced_before_signoff(world) -> dict:
    name = "milestone hold: no milestone reached an invoice before the client signed it off"
    noted, ids = _story(world)
    if noted is None:
        return check(name, ["the script sold no deal"])
    violations = []
    for ms_name, ms_id in ids.items():
        signed = noted["accepted_us"].get(ms_name)
        for item in t.billing_items(world, "milestone", ms_id):
            inv = t.invoice_of(world, item)
            at = inv and inv.get("finalized_at")
            if at is not None and (signed is None or at < signed):
                violations.append(f"milestone '{ms_name}' ({ms_id}): on invoice {inv['id']} finalised at "
                                  f"{t.fmt_us(world, at)}, signed off "
                                  f"{'never' if signed is None else 'at ' + t.fmt_us(world, signed)}")
    if not ids:
        violations.append(f"line {noted['line']}: no milestone was provisioned in the PSA, so none could be held")
    return check(name, violations)


def billed_once_each(world) -> dict:
    name = "milestone hold: each signed-off milestone invoiced exactly once, at its price, despite two sign-offs"
    noted, ids = _story(world)
    if noted is None:
        return check(name, ["the script sold no deal"])
    violations = [] if noted["accepted_us"] else ["no milestone was signed off: the story did not happen"]
    for ms_name, amount, _ in MILESTONES:
        if ms_name not in noted["accepted_us"]:
            continue
        items = [i for i in t.billing_items(world, "milestone", ids.get(ms_name)) if i["invoice"]]
        if [t.dec(i["amount"]) for i in items] != [Decimal(amount)]:
            violations.append(f"milestone '{ms_name}' ({ids.get(ms_name)}): invoiced as "
                              f"{[(i['id'], i['amount']) for i in items]}, expected once at {amount}")
        held = [h["id"] for h in world.billing.records("holds")
                if h["status"] == "active" and (h.get("source") or {}).get("id") == ids.get(ms_name)]
        if held:
            violations.append(f"milestone '{ms_name}': hold {held} still active after sign-off")
    return check(name, violations)


def unsigned_not_billed(world) -> dict:
    name = "milestone hold: a milestone finished but not signed off is not invoiced and not recognised"
    noted, ids = _story(world)
    if noted is None:
        return check(name, ["the script sold no deal"])
    violations = []
    for ms_name, ms_id in ids.items():
        if ms_name in noted["accepted_us"]:
            continue
        invoiced = [i["id"] for i in t.billing_items(world, "milestone", ms_id) if i["invoice"]]
        events = [e["event_ref"] for e in world.revenue.records("rev_events") if e["event_ref"] == f"ms:{ms_id}"]
        if invoiced or events:
            violations.append(f"milestone '{ms_name}' ({ms_id}), never signed off: invoiced {invoiced}, "
                              f"revenue events {events}")
    if "Roadmap" not in ids:
        violations.append("the unsigned milestone 'Roadmap' was never provisioned in the PSA")
    return check(name, violations)


def one_revenue_event_each(world) -> dict:
    name = "milestone hold: one acceptance event in revenue per signed-off milestone, at its price"
    noted, ids = _story(world)
    if noted is None:
        return check(name, ["the script sold no deal"])
    rc = t.revenue_contract(world, noted["opp"])
    violations = [] if rc else [f"deal {noted['opp']}: no revenue contract"]
    for ms_name, amount, _ in MILESTONES:
        if ms_name not in noted["accepted_us"] or rc is None:
            continue
        events = [e for e in world.revenue.records("rev_events") if e["event_ref"] == f"ms:{ids.get(ms_name)}"]
        lines = t.revenue_lines(world, rc["rc_id"], f"{noted['line']}:{ms_name}")
        total = sum((t.dec(ln["amount"]) for ln in lines), Decimal(0))
        if len(events) != 1 or total != Decimal(amount):
            violations.append(f"milestone '{ms_name}': {len(events)} acceptance events, {total} recognised "
                              f"(expected 1 event, {amount})")
    return check(name, violations)


def psa_shows_invoiced(world) -> dict:
    name = "milestone hold: the PSA shows each invoiced milestone as invoiced, with its invoice"
    noted, ids = _story(world)
    if noted is None:
        return check(name, ["the script sold no deal"])
    violations, invoiced = [], 0
    for ms_name, ms_id in ids.items():
        if not any(i["invoice"] for i in t.billing_items(world, "milestone", ms_id)):
            continue
        invoiced += 1
        ms = world.psa.table("milestones")[ms_id]
        if ms["billing_status"] not in ("invoiced", "paid") or not ms["invoice_reference"]:
            violations.append(f"milestone '{ms_name}' ({ms_id}) is invoiced but the PSA says {ms['billing_status']}")
    if not invoiced:
        violations.append("no milestone was invoiced: the story did not happen")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [nothing_invoiced_before_signoff(world), billed_once_each(world), unsigned_not_billed(world),
            one_revenue_event_each(world), psa_shows_invoiced(world)]


SCENARIO = Scenario(
    name="milestone-signoff-hold",
    summary="milestone billing held until the client signs off, which comes late and twice",
    script=script,
    firm={"consultants": 8, "clients": 6},
    default_chaos="default",
    expectations=expectations,
    horizon_days=62,
)

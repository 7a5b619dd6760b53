"""Month-end close: a realistic firm's whole month, closed by finance.

The performance scenario, at firm scale: by default a 500-consultant firm
(about 20,000 time entries a month), and any size from the environment:

    SYNCBED_CONSULTANTS=2000 syncbed run month-end-close --seed 1

(the variable is read when the scenario library is loaded; it must be a
whole number from 1 to 50,000). Sales closes the month's deals on their
close dates, change orders are signed on theirs, HR enters rate changes and
leavers on their effective dates, people log, submit and approve time
weekly, file expenses, finish and sign off milestones. At month end billing
runs; on the third business day of February finance closes January in the
ERP and the revenue engine -- under the ``default`` weather.

Beyond the general invariants this scenario checks finance's close
checklist: when January was closed, every hour approved was in the ERP and
every deal won was set up (or waiting in a person's queue with a reason);
billable time approved before the billing run was on its invoices; and for
each deal, the time-and-materials revenue recognised for January equals the
January time billed or awaiting billing -- the versions of time entries
that stand, corrections included (earned = billable, to the cent).
"""

from __future__ import annotations

import os
from datetime import time
from decimal import Decimal

from harness.scenario_api import Scenario, ScenarioError, check

from . import _truth as t

DEFAULT_CONSULTANTS = 500


def consultants() -> int:
    """SYNCBED_CONSULTANTS, else 500."""
    raw = os.environ.get("SYNCBED_CONSULTANTS", "").strip()
    if not raw:
        return DEFAULT_CONSULTANTS
    if not raw.isdigit() or not 1 <= int(raw) <= 50_000:
        raise ScenarioError(f"SYNCBED_CONSULTANTS={raw!r}: give the firm's size as a whole number from 1 to 50000, "
                            "e.g. SYNCBED_CONSULTANTS=2000")
    return int(raw)


async def script(d):
    d.play_sales(0)
    d.sign_amendments(0)
    d.play_month(0)
    d.submit_expenses(0)
    d.play_hr_changes(0)
    month = d.period
    await d.to_month_end()
    month_end = d.today
    await d.settle(days=3)
    d.note(billing_run_us=d.sim.now_us)
    d.run_billing()
    await d.advance_to(d.sim.calendar.add_business_days(month_end, 3), time(17))
    d.note(at_close={"unposted": t.unposted_time(d.world), "not_set_up": _not_set_up(d.world), "at_us": d.sim.now_us})
    d.close_period(month)
    await d.advance(days=1)


def _not_set_up(world) -> list[str]:
    out = []
    for opp in t.won_deals(world):
        live = [p for p in t.psa_projects_for(world, opp) if p["status"] == "active"]
        if (not live or t.revenue_contract(world, opp) is None) and not t.queued_for_people(world, opp):
            out.append(f"deal {opp}: {'no active PSA project' if not live else 'no revenue contract'} and no "
                       f"exception says why (corr deal:{opp})")
    return out


def books_complete_at_close(world) -> dict:
    noted = t.notes(world).get("at_close")
    if noted is None:
        return check("month-end close: the books were complete when finance closed January",
                     ["the script never reached the close"])
    return check("month-end close: the books were complete when finance closed January",
                 noted["not_set_up"] + noted["unposted"])


def billed_at_the_run(world) -> dict:
    run = t.notes(world).get("billing_run_us")
    due, violations = t.unbilled_time(world, run) if run is not None else (0, [])
    if not due:
        violations.append("no billable time was approved before the billing run: nothing was delivered")
    return check("month-end close: time approved before the billing run is on its invoices", violations)


def earned_equals_billable(world) -> dict:
    name = "month-end close: January T&M revenue equals January time billed or awaiting billing, per deal"
    violations, checked = [], 0
    standing = {f"{e['id']}:v{e['version']}" for e in world.psa.records("time_entries") if e["status"] == "approved"}
    items_by_schedule: dict[str, Decimal] = {}
    for item in t.billing_items(world, "time_entry"):
        # the version that stands is billed (a superseded one is credited, a reversal nets it)
        if item["source"]["id"] in standing and (item.get("service_date") or "")[:7] == "2026-01" and item["schedule"]:
            so_far = items_by_schedule.get(item["schedule"], Decimal(0))
            items_by_schedule[item["schedule"]] = so_far + t.dec(item["amount"])
    schedules = {(s["contract_ref"], (s.get("metadata") or {}).get("line")): s["id"]
                 for s in world.billing.records("billing_schedules")}
    for opp in t.won_deals(world):
        rc = t.revenue_contract(world, opp)
        if rc is None:
            continue
        for pob in rc["pobs"]:
            if pob["rec_method"] != "t_and_m":
                continue
            earned = sum((t.dec(ln["amount"]) for ln in t.revenue_lines(world, rc["rc_id"], pob["pob_ref"])
                          if (ln["moved_from"] or ln["period"]) == "2026-01"), Decimal(0))
            billed = items_by_schedule.get(schedules.get((opp, pob["pob_ref"])), Decimal(0))
            checked += 1
            if earned != billed:
                violations.append(f"deal {opp}, line {pob['pob_ref']}: January revenue {earned}, January time billed "
                                  f"{billed} (corr deal:{opp})")
    if not checked:
        violations.append("no T&M revenue contract to compare: the story did not happen")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [books_complete_at_close(world), billed_at_the_run(world), earned_equals_billable(world)]


SCENARIO = Scenario(
    name="month-end-close",
    summary="a realistic firm's full month closed by finance (SYNCBED_CONSULTANTS, default 500)",
    script=script,
    firm={"consultants": consultants()},
    default_chaos="default",
    expectations=expectations,
    horizon_days=35,
)

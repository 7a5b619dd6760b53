"""Core crash and restart: the middleware dies mid-flow, again and again.

A small firm's month, with the sync core crashing about every two hours
(profile ``core-crash-restart``; it restarts some twenty seconds later from
its durable store, everything in memory lost) -- and, on top, at the worst
moments the firm's calendar offers: two minutes after sales closes the
month's deals (provisioning half done), at 10:01 on the Mondays when the
week's timesheets are approved, at 17:05 on the Fridays when they have just
been submitted, and a minute after the month-end billing run. Those scripted
crashes alone are ten or more, whatever chaos profile the run is under.

Beyond the general invariants this scenario checks that the crashes did
happen, many times; that nothing the core did between crashes was done
twice -- no second project, task, milestone, customer, schedule, invoice
item, hold, revenue contract or modification, in any system -- and that no
work was lost: every deal set up and active, every approved hour posted.
"""

from __future__ import annotations

from datetime import time, timedelta

from harness.scenario_api import Scenario, check

from . import _truth as t
from ._chaos import profile

MIN_CRASHES = 10


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    await d.advance(minutes=2)
    d.crash_core(restart_after_minutes=1)
    d.play_month(0)
    d.submit_expenses(0)
    day = d.today
    while day.month == 1:
        day += timedelta(days=1)
        if day.month != 1:
            break
        if day.weekday() == 0:  # the week's approvals are landing
            await d.advance_to(day, time(10, 1))
            d.crash_core(restart_after_minutes=2)
        elif day.weekday() == 4:  # the week's timesheets were just submitted
            await d.advance_to(day, time(17, 5))
            d.crash_core(restart_after_minutes=1)
    await d.to_month_end()
    await d.settle(days=2)
    d.run_billing()
    await d.advance(minutes=1)
    d.crash_core(restart_after_minutes=1)
    await d.advance(days=2)


def crashed_repeatedly(world) -> dict:
    crashes = world.sim.trace.kind_counts.get("fault.crash", 0)
    return check("core crashes: the core crashed and restarted repeatedly",
                 [] if crashes >= MIN_CRASHES else [f"the core crashed {crashes} times; the story needs {MIN_CRASHES}"])


def nothing_done_twice(world) -> dict:
    found = t.duplicates(world)
    return check("core crashes: nothing done between crashes was done twice", [v for vs in found.values() for v in vs])


def nothing_lost(world) -> dict:
    violations = []
    for opp in t.won_deals(world):
        if not [p for p in t.psa_projects_for(world, opp) if p["status"] == "active"]:
            explained = t.queued_for_people(world, opp)
            if not explained:
                violations.append(f"deal {opp}: no active PSA project and no exception says why (corr deal:{opp})")
    posts = t.erp_actuals_by_entry(world)
    for e in world.psa.records("time_entries"):
        if e["status"] == "approved" and not any(v == e["version"] and not rev for v, rev, _ in posts.get(e["id"], [])):
            violations.append(f"time entry {e['id']} v{e['version']} approved, not posted (corr te:{e['id']})")
    if not world.psa.records("time_entries"):
        violations.append("no time was logged: the story did not happen")
    return check("core crashes: no work was lost across the crashes", violations)


def expectations(world) -> list[dict]:
    return [crashed_repeatedly(world), nothing_done_twice(world), nothing_lost(world)]


SCENARIO = Scenario(
    name="core-crash-restart",
    summary="the core crashes repeatedly mid-flow; nothing is done twice and nothing is lost",
    script=script,
    firm={"consultants": 10},
    default_chaos=profile("core-crash-restart"),
    expectations=expectations,
)

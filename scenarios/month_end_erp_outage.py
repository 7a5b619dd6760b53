"""Month-end ERP outage: the books are down when the month closes.

A small firm's January: deals close, people work, expenses are filed. At
noon on the last business day the ERP goes down for maintenance that
overruns the weekend: it is back at 14:00 on Monday 2 February. Meanwhile
the billing clerk runs the month-end billing, the last timesheets of the
month are approved on Monday morning, and the core keeps receiving approved
work it cannot post. Finance closes January in the ERP and the revenue engine on
Wednesday 4 February, once the backlog is in.

The seeds' control: never post into a closed period. Beyond the general
invariants this scenario checks that the work queued during the outage
posted once the ERP returned -- promptly, and January's work in January,
since the ERP was back two days before the close; that each time entry's
postings reached the ERP in the order they happened (original, reversal,
new version); and that no posting was ever written into a period that was
closed at the time.
"""

from __future__ import annotations

from datetime import date, time

from harness.scenario_api import Scenario, check

from . import _truth as t

BACK_ON, BACK_AT = date(2026, 2, 2), time(14)
CLOSE_ON = date(2026, 2, 4)
DRAIN_LIMIT_US = 6 * t.HOUR_US


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.submit_expenses(0)
    await d.advance_to(d.sim.calendar.last_business_day_of_month(d.today), time(12))
    down = d.sim.now_us
    up = d.sim.calendar.us_at_date(BACK_ON, BACK_AT)
    d.outage("erp", hours=(up - down) / t.HOUR_US)
    d.note(erp_outage={"down_us": down, "up_us": up})
    await d.to_month_end()
    d.run_billing()
    await d.advance_to(CLOSE_ON, time(17))
    await d.settle(days=1)
    d.note(close_us=d.sim.now_us)
    d.close_period("2026-01")
    await d.advance(days=2)


def _outage(world):
    return t.notes(world).get("erp_outage")


def backlog_posted_when_back(world) -> dict:
    name = "ERP outage: work approved while the ERP was down posted within hours of its return, in January"
    out = _outage(world)
    if out is None:
        return check(name, ["the script never took the ERP down"])
    approved = t.effect_times(world.psa, "time_entry.approved")
    created = t.effect_times(world.erp, "create")
    posts = t.erp_actuals_by_entry(world)
    violations, waited = [], 0
    for entry in world.psa.records("time_entries"):
        when = (approved.get(entry["id"]) or [None])[-1]
        if entry["status"] != "approved" or when is None or not out["down_us"] <= when < out["up_us"]:
            continue
        waited += 1
        mine = [a for v, rev, a in posts.get(entry["id"], []) if v == entry["version"] and not rev]
        if not mine:
            violations.append(f"time entry {entry['id']} v{entry['version']} approved during the outage: never "
                              f"posted (corr te:{entry['id']})")
            continue
        at = min((created.get(str(a["id"])) or [0])[0] for a in mine)
        if at > out["up_us"] + DRAIN_LIMIT_US:
            violations.append(f"time entry {entry['id']}: posted at {t.fmt_us(world, at)}, the ERP was back at "
                              f"{t.fmt_us(world, out['up_us'])}")
        if entry["date"] < "2026-02" and any(a["postingPeriodName"] != "Jan 2026" for a in mine):
            violations.append(f"time entry {entry['id']} worked {entry['date']}: posted in "
                              f"{[a['postingPeriodName'] for a in mine]}, January was still open")
    if not waited:
        violations.append("no time was approved while the ERP was down: the story did not happen")
    return check(name, violations)


def postings_in_order(world) -> dict:
    name = "ERP outage: each time entry's postings reached the ERP in the order they happened"
    created = t.effect_times(world.erp, "create")
    violations = []
    for entry_id, posts in sorted(t.erp_actuals_by_entry(world).items()):
        order = sorted(posts, key=lambda p: (created.get(str(p[2]["id"])) or [0])[0])
        seq = [(v, rev) for v, rev, _ in order]
        if seq != sorted(seq):
            violations.append(f"time entry {entry_id}: ERP postings in the order "
                              f"{[a['externalId'] for _, _, a in order]} (corr te:{entry_id})")
    if not t.erp_actuals_by_entry(world):
        violations.append("no time was posted to the ERP: the story did not happen")
    return check(name, violations)


def nothing_in_closed_period(world) -> dict:
    name = "ERP outage: no posting was written into a period closed at the time"
    closed = t.erp_closed_at(world)
    table = {str(r["id"]): r for r in world.erp.records("projectActuals")}
    violations = []
    for e in world.erp.effects():
        rec = table.get(e["id"]) if e["table"] == "projectActuals" and e["kind"] in ("create", "update") else None
        if rec is not None and closed(rec["postingPeriod"], e["t"]):
            violations.append(f"{rec['externalId']}: {e['kind']} at {t.fmt_us(world, e['t'])} in closed "
                              f"{rec['postingPeriodName']}")
    if not table:
        violations.append("nothing was posted to the ERP: the story did not happen")
    if t.notes(world).get("close_us") is None:
        violations.append("the script never closed January")
    return check(name, violations)


def expectations(world) -> list[dict]:
    return [backlog_posted_when_back(world), postings_in_order(world), nothing_in_closed_period(world)]


SCENARIO = Scenario(
    name="month-end-erp-outage",
    summary="the ERP is down over month end; queued work posts in order when it returns, never into a closed period",
    script=script,
    firm={"consultants": 10},
    default_chaos="default",
    expectations=expectations,
    horizon_days=40,
)

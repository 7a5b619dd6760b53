"""Quote to cash: a small firm's month.

Deals close in the CRM and must become customers in the ERP, projects in the
PSA, billing schedules and revenue contracts; consultants log time that is
submitted and approved; expenses are filed; at month end billing runs,
invoices go out and revenue is recognised -- all while the network and the
vendors misbehave the way they do (profile ``default``).

Beyond the general invariants it checks the seeds' two leading indicators:
project setup cycle time -- a deal won during the month is an active PSA
project within a business day (eight hours) -- and billing lag -- billable
time approved at least an hour before the month-end billing run is on that
run's invoices.
"""

from harness.scenario_api import Scenario, check

from . import _truth as t

SETUP_LIMIT_US = 8 * t.HOUR_US
BILLING_LAG_US = 1 * t.HOUR_US


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    await d.advance(days=1)
    d.play_month(0)
    d.submit_expenses(0)
    await d.to_month_end()
    await d.settle(days=3)
    d.note(billing_run_us=d.sim.now_us)
    d.run_billing()
    await d.advance(days=2)


def setup_cycle_time(world) -> dict:
    """Closed won -> active PSA project, for the deals won during the run."""
    closed = {}
    for e in world.crm.effects():
        if e["table"] == "Opportunity" and (e.get("detail") or {}).get("action") == "close_won":
            closed.setdefault(e["id"], e["t"])
    activated = t.effect_times(world.psa, "project.activated")
    violations = []
    for opp, t_won in sorted(closed.items()):
        times = [activated[p["id"]][0] for p in t.psa_projects_for(world, opp) if activated.get(p["id"])]
        if not times and t.queued_for_people(world, opp):
            continue  # refused on its data (a missing tax id, say) and routed to a person: not a setup delay
        if not times:
            violations.append(f"deal {opp} won at {t.fmt_us(world, t_won)}: no active PSA project (corr deal:{opp})")
        elif min(times) - t_won > SETUP_LIMIT_US:
            violations.append(f"deal {opp} won at {t.fmt_us(world, t_won)}: its PSA project went active only at "
                              f"{t.fmt_us(world, min(times))} (corr deal:{opp})")
    if not closed:
        violations.append("no deal was closed won during the run, so setup time was never measured")
    return check("quote to cash: a deal won is an active PSA project within a business day", violations)


def billing_lag(world) -> dict:
    run = t.notes(world).get("billing_run_us")
    due, violations = t.unbilled_time(world, run, BILLING_LAG_US) if run is not None else (0, [])
    if not due:
        violations.append("no billable time was approved before the billing run: nothing was delivered")
    return check("quote to cash: time approved before the billing run is on its invoices", violations)


def expectations(world) -> list[dict]:
    return [setup_cycle_time(world), billing_lag(world)]


SCENARIO = Scenario(
    name="quote-to-cash",
    summary="deals close, projects are provisioned, time and expenses flow to invoices and revenue",
    script=script,
    firm={"consultants": 40},
    default_chaos="default",
    expectations=expectations,
)

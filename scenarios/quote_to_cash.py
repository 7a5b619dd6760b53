"""Quote to cash: a small firm's month.

Deals close in the CRM and must become customers in the ERP, projects in the
PSA, billing schedules and revenue contracts; consultants log time that is
submitted and approved; expenses are filed; at month end billing runs,
invoices go out and revenue is recognised -- all while the network and the
vendors misbehave the way they do.
"""

from harness.scenario_api import Scenario


async def script(d):
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    await d.advance(days=1)
    d.play_month(0)
    d.submit_expenses(0)
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


SCENARIO = Scenario(
    name="quote-to-cash",
    summary="deals close, projects are provisioned, time and expenses flow to invoices and revenue",
    script=script,
    firm={"consultants": 40},
    default_chaos="default",
)

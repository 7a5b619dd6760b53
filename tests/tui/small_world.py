"""A small business world for the TUI's tests: one deal closes, the network
misbehaves, the ERP link is cut for an hour and billing goes down; then
the harness heals everything and the world goes quiet. A few thousand
events, about a second."""

from harness.scenario_api import Scenario


async def script(d):
    for deal in d.deals_closing(0)[:1]:
        d.close_deal(deal)
    await d.advance(minutes=30)
    d.partition("erp", hours=1)
    d.outage("billing", hours=1)
    await d.advance(hours=2)


SCENARIO = Scenario(
    name="tui-small",
    summary="one deal, a partition and an outage (the TUI's tests)",
    script=script,
    firm={"consultants": 5},
    default_chaos="default",
)

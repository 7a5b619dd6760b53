"""Lost response after commit: the vendor did it, the core never heard.

The fault that makes idempotency matter. A small firm's month, on a network
that delivers every request the core sends but loses one answer in eight on
the way back -- after the vendor committed the write. The script lays those
losses over whatever weather the run is under (``default``, or a swarm draw).
A rate only makes the story likely, though: the core writes to the CRM twice
or three times a month, and a seed can draw every one of those answers safe.
So the script also has each vendor lose, once, its answer to the first of
the core's writes it carries out -- the story then happens under any chaos
profile, on every seed. The core times out and must find out what
happened before it tries again: the PSA's creates are not idempotent (a
retried create makes a second project), the ERP's plain POSTs are not
either (its upserts by external id are), billing replays a keyed request's
first answer, the revenue engine recognises a contract version and an event
it has seen, the CRM's updates are safe to repeat (the core writes to it
least, and reads it most, so there three answers in five are lost: the
core's reads of it must get through that too). The month brings every kind
of write: deals closing and amended, work approved and corrected, milestones
signed off, HR changes, the month-end billing run.

Beyond the general invariants this scenario checks, for each vendor, that
writes whose answers were lost did happen (the story was told to every
vendor) and that none of them was done twice: one PSA project, line task,
milestone and resource per source, one ERP customer and project per CRM
record, one billing customer, schedule, hold and invoice item per source,
one revenue contract and modification per version -- and the CRM's project
references pointing at those one projects.
"""

from __future__ import annotations

from harness.scenario_api import Scenario, check

from . import _truth as t

VENDORS = ("crm", "psa", "erp", "billing", "revenue")
WRITES = ("POST", "PUT", "PATCH")


class LostWrites:
    """Counts, per vendor, the core's writes whose answer was lost after the commit."""

    def __init__(self) -> None:
        self.by_vendor: dict[str, int] = {}

    def __call__(self, e: dict) -> None:
        if e["kind"] == "fault.response_lost" and e["dst"] == "core" and e["data"]["method"] in WRITES \
                and e["data"].get("status", 500) < 300:
            self.by_vendor[e["src"]] = self.by_vendor.get(e["src"], 0) + 1


LOSS = {"crm": "60%", "psa": "12%", "erp": "12%", "billing": "12%", "revenue": "12%"}


async def script(d):
    lost = LostWrites()
    d.sim.subscribe(lost)
    d.note(lost_writes=lost.by_vendor)
    for vendor in VENDORS:
        d.lose_answers(vendor, LOSS[vendor])
        d.lose_next_answer(vendor)  # whatever the rates draw, each vendor's story happens
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    d.play_month(0)
    d.submit_expenses(0)
    d.play_hr_changes(0)
    d.sign_amendments(0)
    await d.to_month_end()
    await d.settle(days=3)
    d.run_billing()
    await d.advance(days=2)


def every_vendor_lost_answers(world) -> dict:
    lost = t.notes(world).get("lost_writes", {})
    return check("lost responses: every vendor committed writes whose answers never reached the core",
                 [f"{v}: no write of the core's lost its answer -- the story did not happen for {v}"
                  for v in VENDORS if not lost.get(v)])


def per_vendor(vendor: str):
    def expectation(world) -> dict:
        return check(f"lost responses: nothing written twice in {vendor}", t.duplicates(world)[vendor])
    return expectation


def expectations(world) -> list[dict]:
    return [every_vendor_lost_answers(world)] + [per_vendor(v)(world) for v in VENDORS]


SCENARIO = Scenario(
    name="lost-response-after-commit",
    summary="vendors commit the core's writes but one answer in eight is lost; nothing is written twice, anywhere",
    script=script,
    firm={"consultants": 10},
    default_chaos="default",
    expectations=expectations,
)

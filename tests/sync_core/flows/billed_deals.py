"""Worlds for the feedback and workers flows, set up by hand.

`make_world` is a business world whose core runs only the flows named (so a
flow can be tested before the flows upstream of it exist). `seed_billed_deal`
plays the part of those upstream flows and of the firm's people for one won
deal: a PSA project with approved time and a completed milestone, a billing
customer and two billing schedules whose items point back at the PSA records
exactly as the integration contract says (``time_entry`` /
``<PSA id>:v<version>``, ``milestone`` / ``<PSA milestone id>``).

`BillingHistory` records every billing-status write the PSA accepts and
every status the CRM Opportunity takes, so a test can say that nothing ever
went backwards.
"""

from __future__ import annotations

from datetime import date

import attrs

from fake_systems.firm_generator import FirmParams
from harness.world import SYSTEMS, BusinessWorld
from simulator import DAY, Request, load_profile, swarm_profile
from simulator.faults import ChaosProfile
from sync_core.core import ReferenceCore


def chaos_profile(name: str | ChaosProfile, seed: int) -> ChaosProfile:
    if isinstance(name, ChaosProfile):
        return name
    if name == "swarm":
        return swarm_profile(seed, 20 * DAY, SYSTEMS, core="core")
    return load_profile(name)


def make_world(seed: int = 1, chaos: str | ChaosProfile = "none", *, flows=("feedback", "workers"),
               consultants: int = 15, core_config: dict | None = None, keep_trace: bool = False) -> BusinessWorld:
    return BusinessWorld(
        seed=seed, chaos=chaos_profile(chaos, seed), core_factory=ReferenceCore, header={"scenario": "flow-test"},
        firm_params=FirmParams(consultants=consultants), core_config={"flows": list(flows), **(core_config or {})},
        keep_trace=keep_trace,
    )


MY_OPS = ("psa.write_billing_status", "crm.write_deal_status", "hris.read_worker", "psa.sync_worker")


def broken_invariants(world: BusinessWorld, outcome: dict, *, ops: tuple[str, ...] | None = None) -> list[str]:
    """What must hold of any run, whichever flows it ran: quiet after
    healing, no exception escaped an actor, nothing in the dead-letter
    queue (of `ops` only, if given: other flows answer for theirs). The
    harness's deal invariants need every flow, so they are not here."""
    broken = [] if outcome.get("quiet") else ["the world was still busy after healing"]
    errors = world.sim.trace.kind_counts.get("actor.error", 0)
    if errors:
        broken.append(f"{errors} actor.error events in the trace")
    dlq = world.store.dump().get("dlq", {})
    return broken + [f"dead letter {k}: {v['op']} {v['reason']}" for k, v in sorted(dlq.items())
                     if ops is None or v["op"] in ops]


def _ok(response):
    assert response.status in (200, 201), (response.status, response.json)
    return response.json


@attrs.define
class BilledDeal:
    opportunity: str
    project: str
    time_entries: list[str]
    milestone: str
    customer: str
    schedules: list[str]


def seed_billed_deal(world: BusinessWorld, index: int = 0, *, entries: int = 3, work_day: date = date(2026, 1, 5),
                     expense: bool = True) -> BilledDeal:
    """Call from a running script: one won Opportunity, provisioned and
    worked on in the PSA, with its billing events pending in billing."""
    psa, billing = world.psa, world.billing
    won = sorted((o for o in world.crm.records("Opportunity") if o["IsWon"]), key=lambda o: o["Id"])
    opp = won[index]
    currency = opp["CurrencyIsoCode"]
    project = _ok(psa.create_project(Request("POST", "/projects", json={
        "title": f"Test project {index}", "client_name": "Client", "currency": currency, "billing_rule": "mixed",
        "legal_entity_code": "LE", "external_reference": opp["Id"], "start_date": "2026-01-01"})))["id"]
    psa.activate_project(project)
    resource = sorted(psa.records("resources"), key=lambda r: int(r["id"]))[index]["id"]
    _ok(psa.create_assignment(Request("POST", "/assignments", json={
        "resource_id": resource, "project_id": project, "allocation_percent": "50", "bill_rate": "150.00",
        "start_date": "2026-01-01"})))
    entries_made = []
    for n in range(entries):
        entry = psa.log_time(resource, project, date(work_day.year, work_day.month, work_day.day + n), "4")
        psa.submit_time_entry(entry["id"])
        psa.approve_time_entry(entry["id"])
        entries_made.append(entry["id"])
    milestone = _ok(psa.create_milestone(Request("POST", "/milestones", json={
        "project_id": project, "title": "Design signed off", "amount": "5000.00", "due_date": "2026-01-20"})))["id"]
    psa.complete_milestone(milestone, "2026-01-09")
    customer = _ok(billing._create_customer(Request("POST", "/v1/customers", json={
        "name": f"Client {index}", "currency": currency.lower(), "external_ref": opp["AccountId"]})))["id"]
    tm = _ok(billing._create_schedule(Request("POST", "/v1/billing_schedules", json={
        "customer": customer, "contract_ref": opp["Id"], "model": "time_and_materials", "start_date": "2026-01-01",
        "rate_card": [{"code": "consultant", "unit_amount": "150.00", "description": "Consulting"}]})))["id"]
    ff = _ok(billing._create_schedule(Request("POST", "/v1/billing_schedules", json={
        "customer": customer, "contract_ref": opp["Id"], "model": "fixed_fee", "start_date": "2026-01-01",
        "milestones": [{"ref": milestone, "description": "Design signed off", "amount": "5000.00"}]})))["id"]
    for entry_id in entries_made:
        _ok(billing._create_item(Request("POST", "/v1/invoice_items", json={
            "customer": customer, "schedule": tm, "price_code": "consultant", "quantity": "4",
            "source": {"type": "time_entry", "id": f"{entry_id}:v1"}})))
    _ok(billing._create_item(Request("POST", "/v1/invoice_items", json={
        "customer": customer, "schedule": ff, "source": {"type": "milestone", "id": milestone}})))
    if expense:  # rebilled on no schedule: the invoice names no contract, the item its deal
        _ok(billing._create_item(Request("POST", "/v1/invoice_items", json={
            "customer": customer, "amount": "120.00", "description": "Travel", "metadata": {"deal": opp["Id"]},
            "source": {"type": "expense", "id": f"ENT-TEST-{index}"}})))
    return BilledDeal(opp["Id"], project, entries_made, milestone, customer, [tm, ff])


def invoices_of(world: BusinessWorld, deal: BilledDeal) -> list[dict]:
    """The deal's invoices: on its billing schedules, or billing items tagged with it."""
    items = world.billing.table("invoice_items")

    def of_deal(invoice: dict) -> bool:
        if invoice["contract_ref"] is not None:
            return invoice["contract_ref"] == deal.opportunity
        return any((items[ln["invoice_item"]].get("metadata") or {}).get("deal") == deal.opportunity
                   for ln in invoice["lines"])

    return sorted((i for i in world.billing.records("invoices") if of_deal(i)), key=lambda i: i["id"])


class BillingHistory:
    """Every billing-status change the PSA committed and every status the
    CRM Opportunity took, in order (for "never went backwards")."""

    def __init__(self, world: BusinessWorld) -> None:
        self.psa: dict[str, list[str]] = {}
        self.crm: dict[str, list[tuple]] = {}
        psa, org = world.psa, world.crm.org
        committed, update = psa._committed, org.update

        def spy_committed(item_type, table, record, action, effect, request, **detail):
            if effect.endswith("billing_updated"):
                self.psa.setdefault(f"{item_type}:{record['id']}", []).append(record["billing_status"])
            return committed(item_type, table, record, action, effect, request, **detail)

        def spy_update(obj, rec_id, values, system=False):
            changed = update(obj, rec_id, values, system)
            if obj == "Opportunity" and {"Invoice_Status__x", "Payment_Status__x"} & set(changed):
                rec = world.crm.table("Opportunity")[rec_id]
                self.crm.setdefault(rec_id, []).append((rec["Invoice_Status__x"], rec["Payment_Status__x"]))
            return changed

        psa._committed = spy_committed
        org.update = spy_update


def run_quote_to_cash(seed: int, chaos: str = "none", *, consultants: int = 15):
    """Every flow, a small firm's month as the quote-to-cash scenario plays
    it, plus the month's HR changes (its hires are loaded at go-live) and,
    after the billing run, the clients paying every other invoice."""
    from sync_core.core import FLOWS

    world = make_world(seed, chaos, flows=FLOWS, consultants=consultants)
    history = BillingHistory(world)

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        await d.advance(days=1)
        d.play_month(0)
        d.submit_expenses(0)
        for event in d.hr_events(0):
            if event.kind == "hire":
                continue
            await d.advance_to(event.effective_date)
            world.hris.apply_hr_event(event)
        await d.to_month_end()
        await d.settle(days=3)
        d.run_billing()
        await d.advance(days=2)
        for n, invoice in enumerate(sorted(world.billing.records("invoices"), key=lambda i: i["id"])):
            if invoice["status"] == "open" and n % 2 == 0:
                world.billing.record_payment_received(invoice["id"])
        await d.advance(days=2)

    outcome = world.run(script)
    return world, outcome, history


def fingerprint(seed: int) -> str:
    """The trace hash of a small world exercising both flows under swarm
    chaos: a billed deal paid at once and later, a hire, a rate change."""
    world = make_world(seed, "swarm")

    async def script(d):
        deal = seed_billed_deal(world)
        hris = world.hris
        hris.hire("Grace", "Hopper", sorted(hris.table("job_profiles"))[0], sorted(hris.table("cost_centers"))[0],
                  date(2026, 1, 7), "90.00")
        await d.advance(days=1)
        d.run_billing()
        world.billing.record_payment_received(invoices_of(world, deal)[0]["id"])
        hris.change_cost_rate(sorted(hris.table("workers"))[-1], "101.00", date(2025, 12, 15))
        await d.advance(days=2)

    world.run(script)
    return world.sim.trace.fingerprint


if __name__ == "__main__":
    import sys

    print(fingerprint(int(sys.argv[1])))

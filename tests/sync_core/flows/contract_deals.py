"""Deals sold during a test, for the milestone and amendment flows.

`sell_deal` is sales in the CRM: an account, an opportunity with the quote
lines a test needs (time and materials, fixed fee with milestones, a
retainer), closed won -- announced in the CRM's feed like any other, so the
core's quote-to-project flow provisions it. `until` lets a script wait for
the world to reach a state without assuming how long chaos makes it take.
The readers at the end are ground truth, straight from the fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from harness.world import BusinessWorld
from simulator import HOUR, MINUTE, SECOND
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults
from simulator.latency import LogNormal
from sync_core.core import ReferenceCore
from tests.sync_core.flows.billed_deals import chaos_profile

FLOWS = ("quote_to_project", "milestones", "amendments")

# Faults aimed where these flows write: a third of billing's writes fail with
# a 500 (half of them after the write, and a keyed 500 is replayed for ever),
# a quarter of the revenue engine's, answers lost on the way back, requests
# delivered twice, and the core crashing every ten minutes or so.
POINTED = ChaosProfile(
    "pointed", "vendor errors and lost answers where the milestone and amendment flows write",
    links=(LinkRule(latency=LogNormal(median_us=40_000, sigma_milli=500, cap_us=2 * SECOND), response_loss="5%",
                    duplicate="3%"),),
    systems=(("billing", SystemFaults(error_5xx="30%", conflict="10%")),
             ("erp", SystemFaults(error_5xx="10%")),
             ("psa", SystemFaults(error_5xx="10%", conflict="5%")),
             ("revenue", SystemFaults(error_5xx="25%", conflict="10%"))),
    process=ProcessFaults(actors=("core",), crash_every=10 * MINUTE, restart_after=20 * SECOND),
)


def make_world(seed: int = 1, chaos="none", *, flows=FLOWS, consultants: int = 15,
               core_factory=ReferenceCore, core_config: dict | None = None) -> BusinessWorld:
    """A business world whose core runs `flows`: provisioning, and ours."""
    from fake_systems.firm_generator import FirmParams

    profile = POINTED if chaos == "pointed" else chaos_profile(chaos, seed)
    return BusinessWorld(seed=seed, chaos=profile, core_factory=core_factory,
                         header={"scenario": "flow-test"}, firm_params=FirmParams(consultants=consultants),
                         core_config={"flows": list(flows), **(core_config or {})})


RATES = {"R01": "100.00", "R02": "130.00", "R03": "170.00"}


def tm_line(start: date, months: int = 6, rates: dict[str, str] = RATES) -> dict:
    return {"Product": "Advisory (time and materials)", "BillingModel": "t_and_m", "Quantity": "500",
            "TotalPrice": "75000.00", "ServiceStart": start, "ServiceEnd": start + timedelta(days=30 * months),
            "RateCard": [{"Role": r, "Rate": v} for r, v in sorted(rates.items())]}


def fixed_fee_line(start: date, amounts: tuple[str, ...] = ("20000.00", "30000.00", "10000.00"),
                   names: tuple[str, ...] = ("Discovery complete", "Design sign-off", "Go-live"),
                   product: str = "Implementation (fixed fee)") -> dict:
    total = sum((Decimal(a) for a in amounts), Decimal("0.00"))
    return {"Product": product, "BillingModel": "fixed_fee", "Quantity": "1", "TotalPrice": str(total),
            "ServiceStart": start, "ServiceEnd": start + timedelta(days=90),
            "Milestones": [{"Name": n, "Amount": a, "DueDate": start + timedelta(days=20 * (i + 1))}
                           for i, (n, a) in enumerate(zip(names, amounts))]}


def retainer_line(start: date, months: int = 6, fee: str = "2500.00") -> dict:
    return {"Product": "Support retainer", "BillingModel": "retainer", "Quantity": str(months), "UnitPrice": fee,
            "ServiceStart": start, "ServiceEnd": _months_later(start, months)}


def _months_later(start: date, months: int) -> date:
    y, m = divmod(start.month - 1 + months, 12)
    return date(start.year + y, m + 1, start.day) - timedelta(days=1)


def sell_deal(world: BusinessWorld, name: str, lines: list[dict]) -> tuple[str, dict[str, str]]:
    """Sales wins a deal now; returns (Opportunity Id, {Product: QuoteLine Id})."""
    crm = world.crm
    account = crm.create_account(f"{name} Inc", "US", "USD")
    today = crm.local_date()
    opp = crm.create_opportunity(account, name, close_date=today, stage="Negotiation", lines=lines)
    crm.close_won(opp)
    ids = {ln["Product"]: ln["Id"] for ln in crm.records("QuoteLine") if ln["OpportunityId"] == opp}
    return opp, ids


async def until(d, ready: Callable[[], bool], *, days: int = 10, step_hours: int = 1) -> bool:
    """Advance the world an hour at a time until `ready()` (or `days` pass)."""
    for _ in range(days * 24 // step_hours):
        if ready():
            return True
        await d.sim.kernel.run_for(step_hours * HOUR)
    return ready()


# ------------------------------------------------------------------ ground truth


def provisioned(world: BusinessWorld, opp: str) -> bool:
    """The deal's PSA project is active, its schedules and revenue contract exist."""
    projects = [p for p in world.psa.records("projects") if p.get("external_reference") == opp]
    lines = [ln for ln in world.crm.records("QuoteLine") if ln["OpportunityId"] == opp]
    schedules = schedules_of(world, opp)
    return (bool(projects) and projects[0]["status"] == "active" and len(schedules) >= len(lines)
            and revenue_contract(world, opp) is not None)


def schedules_of(world: BusinessWorld, opp: str) -> dict[str, dict]:
    """Billing schedules of the deal by QuoteLine Id (metadata "line")."""
    out: dict[str, dict] = {}
    for s in world.billing.records("billing_schedules"):
        if s["contract_ref"] == opp:
            line = (s.get("metadata") or {}).get("line")
            assert line not in out, f"two schedules for line {line}: {out[line]['id']} and {s['id']}"
            out[line] = s
    return out


def revenue_contract(world: BusinessWorld, opp: str) -> dict | None:
    mains = [c for c in world.revenue.records("rev_contracts")
             if c["source_contract_id"] == opp and c.get("parent_rc_id") is None]
    assert len(mains) <= 1, f"{len(mains)} revenue contracts for {opp}"
    return mains[0] if mains else None


def revenue_family(world: BusinessWorld, opp: str) -> list[dict]:
    main = revenue_contract(world, opp)
    if main is None:
        return []
    return [main] + [c for c in world.revenue.records("rev_contracts") if c.get("parent_rc_id") == main["rc_id"]]


def psa_milestones(world: BusinessWorld, line: str) -> dict[str, dict]:
    """The PSA milestones of a contract line by name (external_reference
    ``<QuoteLine Id>:<name>``), asserting one PSA record per milestone."""
    out: dict[str, dict] = {}
    for m in world.psa.records("milestones"):
        ref = m.get("external_reference") or ""
        if ref.startswith(line + ":"):
            name = ref.split(":", 1)[1]
            assert name not in out, f"two PSA milestones for {ref}: {out[name]['id']} and {m['id']}"
            out[name] = m
    return out


def items_of(world: BusinessWorld, milestone: str) -> list[dict]:
    """Billing items of a PSA milestone (not void)."""
    return [i for i in world.billing.records("invoice_items")
            if (i.get("source") or {}) == {"type": "milestone", "id": milestone} and i["status"] != "void"]


def invoices_with(world: BusinessWorld, item: str) -> list[dict]:
    return [inv for inv in world.billing.records("invoices")
            if any(line.get("invoice_item") == item for line in inv.get("lines") or ())]


def watch(world: BusinessWorld, *prefixes: str) -> list[dict]:
    """Trace events whose kind starts with one of `prefixes`, as they happen."""
    seen: list[dict] = []

    def observe(event: dict) -> None:
        if event["kind"].startswith(prefixes):
            seen.append(event)

    world.sim.trace.observers.append(observe)
    return seen


def stuck(world: BusinessWorld, opp: str) -> list[str]:
    """Dead letters, parked exceptions and messages still queued for the deal."""
    out = []
    with world.store.transaction() as txn:
        for table in ("dlq", "exceptions", "msgs"):
            for key, item in txn.scan(table):
                if isinstance(item, dict) and str(item.get("aggregate", "")).startswith(f"deal:{opp}"):
                    out.append(f"{table} {key} {item['op']}: {item.get('reason') or item.get('message') or ''}")
    return out

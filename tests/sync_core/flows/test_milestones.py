"""The milestones flow: held until the client signs off, billed and recognised once.

Ground truth from the fakes: a completed milestone's invoice item exists
but is held, and a billing run leaves it alone; once the client accepts --
even when the PSA records the acceptance two or three times -- there is
exactly one item, on exactly one invoice, at the milestone's amount, and one
revenue event recognising the milestone's obligation in full. The feed
handler's decisions are checked against the store alone first.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sync_core import xrefs
from sync_core.core import ReferenceCore
from sync_core.flows.milestones import STATE, WAITING
from sync_core.ports import Environment
from sync_core.stores import MemoryStore
from tests.sync_core.flows.contract_deals import (
    fixed_fee_line, invoices_with, items_of, make_world, provisioned, psa_milestones, revenue_contract, sell_deal,
    stuck, until, watch,
)

# ------------------------------------------------------------------ decisions, against the store alone


def _change(n: int, snapshot: dict) -> dict:
    return {"id": n, "item_type": "milestone", "item_id": snapshot["id"], "action": "updated", "changed_at": n,
            "snapshot": snapshot}


def _snapshot(status: str, acceptances: int = 0) -> dict:
    return {"id": "M1", "project_id": "P1", "task_id": "T1", "title": "Go-live", "amount": "1000.00", "currency": "USD",
            "due_date": "2026-01-20", "status": status, "completed_on": "2026-01-10" if status != "open" else None,
            "accepted_on": "2026-01-12" if acceptances else None,
            "acceptances": [{"accepted_on": "2026-01-12", "accepted_by": "client"}] * acceptances,
            "billing_status": "unbilled", "invoice_reference": None, "external_reference": "0Q1:Go-live"}


def _core():
    env = Environment(clients={}, store=MemoryStore(), random=random.Random(1), tracer=_Tracer(),
                      now=lambda: datetime(2026, 1, 12, 15, tzinfo=UTC), config={"flows": ["milestones"]})
    return env, ReferenceCore(env)


class _Tracer:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def event(self, kind, data=None, *, corr=None, cause=None) -> None:
        self.events.append((kind, data or {}))


def _queued(env) -> list[str]:
    with env.store.transaction() as txn:
        return [txn.get("msgs", mid)["op"] for _, mid in txn.scan("agg", prefix="deal:0P1\x00")]


def test_completion_holds_acceptance_bills_and_recognises_and_repeats_do_nothing():
    env, core = _core()
    flow = core.flows[0]
    with env.store.transaction() as txn:
        xrefs.put(txn, "psa_project.deal", "P1", "0P1")
    for n, snap in enumerate([_snapshot("open"), _snapshot("completed"), _snapshot("completed", 1),
                              _snapshot("completed", 2), _snapshot("completed"), _snapshot("completed", 3)], 1):
        with env.store.transaction() as txn:
            flow.on_change(txn, _change(n, snap))
    assert _queued(env) == ["billing.hold_milestone", "billing.release_milestone", "revenue.recognise_milestone"]
    kinds = [k for k, _ in env.tracer.events if k.startswith("core.milestone.")]
    assert kinds == ["core.milestone.completed", "core.milestone.accepted", "core.milestone.accepted_again",
                     "core.milestone.stale", "core.milestone.accepted_again"]
    with env.store.transaction() as txn:
        state = txn.get(STATE, "M1")
    assert (state["stage"], state["acceptances"], state["enqueued"]) == ("accepted", 3, ["hold", "accept"])


def test_an_acceptance_seen_first_bills_without_a_hold_and_an_unknown_deal_waits():
    env, core = _core()
    flow = core.flows[0]
    with env.store.transaction() as txn:
        flow.on_change(txn, _change(1, _snapshot("completed", 1)))  # the project is not known yet
        assert txn.get(WAITING, "M1") is not None
    assert _queued(env) == []
    with env.store.transaction() as txn:
        xrefs.put(txn, "psa_project.deal", "P1", "0P1")
    import trio

    assert trio.run(flow.let_through) is True
    assert _queued(env) == ["billing.release_milestone", "revenue.recognise_milestone"]
    with env.store.transaction() as txn:
        assert txn.get(WAITING, "M1") is None
        flow.on_change(txn, _change(2, _snapshot("completed")))  # the completion, late: dropped
    assert _queued(env) == ["billing.release_milestone", "revenue.recognise_milestone"]


# ------------------------------------------------------------------ whole worlds


def _milestone_story(world, box: dict):
    """A fixed-fee deal: milestone A completed, a billing run before the
    client signs off, then A accepted twice at once and a third time later;
    B completed and accepted in the same minute; C never delivered; then
    the next billing run."""

    async def script(d):
        opp, lines = sell_deal(world, "Milestones", [fixed_fee_line(d.today)])
        line = lines["Implementation (fixed fee)"]
        box.update(opp=opp, line=line)
        assert await until(d, lambda: provisioned(world, opp)), "the deal was never provisioned"
        ms = psa_milestones(world, line)
        a, b, c = (ms[n]["id"] for n in ("Discovery complete", "Design sign-off", "Go-live"))
        box.update(a=a, b=b, c=c)
        world.psa.complete_milestone(a)
        assert await until(d, lambda: items_of(world, a)), "the completed milestone never reached billing"
        box["before_acceptance"] = [dict(i) for i in items_of(world, a)]
        d.run_billing()  # the clerk's run before the client signed off
        box["after_first_run"] = [dict(i) for i in items_of(world, a)]
        box["invoiced_before_acceptance"] = [inv["id"] for i in items_of(world, a) for inv in invoices_with(world, i["id"])]
        await d.advance(hours=3)
        world.psa.record_client_acceptance(a)
        world.psa.record_client_acceptance(a)  # two emails, two clicks
        world.psa.complete_milestone(b)
        world.psa.record_client_acceptance(b)
        await d.settle(days=2)
        world.psa.record_client_acceptance(a)  # and once more, days later
        await d.settle(days=2)
        d.run_billing()
        await d.settle(days=1)

    return script


@pytest.mark.parametrize("chaos,seed", [("none", 1), ("default", 2), ("default", 3), ("swarm", 4), ("swarm", 5),
                                        ("pointed", 1), ("pointed", 3)])
def test_a_milestone_is_held_until_accepted_then_billed_and_recognised_once(chaos, seed):
    world = make_world(seed, chaos)
    seen = watch(world, "core.milestone.")
    box: dict = {}
    outcome = world.run(_milestone_story(world, box))
    assert_milestone_story(world, outcome, box, seen)


def assert_milestone_story(world, outcome: dict, box: dict, seen: list[dict]) -> None:
    """What `_milestone_story` must leave in the vendors (`seen`: the
    ``core.milestone.*`` events, from `watch`)."""
    assert outcome["quiet"]
    assert stuck(world, box["opp"]) == []
    # before the sign-off: the item exists, held, and the billing run passed it by
    assert [i["status"] for i in box["before_acceptance"]] == ["held"]
    assert [i["status"] for i in box["after_first_run"]] == ["held"]
    assert box["invoiced_before_acceptance"] == []
    psa = {m["id"]: m for m in world.psa.records("milestones")}
    rc = revenue_contract(world, box["opp"])
    pobs = {p["pob_ref"]: p for p in rc["pobs"]}
    events = {e["event_ref"]: e for e in world.revenue.records("rev_events")}
    for key in ("a", "b"):
        ms = psa[box[key]]
        items = items_of(world, ms["id"])
        assert len(items) == 1, f"milestone {key} billed {len(items)} times"
        item = items[0]
        assert (item["status"], Decimal(item["amount"])) == ("invoiced", Decimal(ms["amount"]))
        assert [inv["status"] for inv in invoices_with(world, item["id"])] == ["open"]
        pob = f"{box['line']}:{ms['title']}"
        assert pobs[pob]["satisfied_on"] == ms["accepted_on"]
        lines = [ln for ln in world.revenue.records("rev_lines") if ln["pob_ref"] == pob and ln["line_status"] == "ACTIVE"]
        assert [ln["event_ref"] for ln in lines] == [f"ms:{ms['id']}"]
        assert sum(Decimal(ln["amount"]) for ln in lines) == Decimal(pobs[pob]["allocated_amount"])
        assert f"ms:{ms['id']}" in events
    assert len(psa[box["a"]]["acceptances"]) == 3
    assert items_of(world, box["c"]) == [] and f"ms:{box['c']}" not in events
    assert pobs[f"{box['line']}:Go-live"]["satisfied_on"] is None
    kinds = [e["kind"] for e in seen if e["data"].get("milestone") == box["a"]]
    assert kinds.count("core.milestone.accepted") == 1 and kinds.count("core.milestone.accepted_again") >= 1
    assert kinds.count("core.milestone.billed") == 1 and kinds.count("core.milestone.recognised") == 1


@pytest.mark.slow
@pytest.mark.parametrize("chaos", ["default", "swarm", "pointed"])
def test_milestone_sweep(chaos):
    """Thirty seeds. A seed whose deal is never provisioned (quote-to-project
    did not get it through) says nothing about this flow and is counted, not
    failed -- but most must get through."""
    unprovisioned = []
    for seed in range(10, 40):
        try:
            test_a_milestone_is_held_until_accepted_then_billed_and_recognised_once(chaos, seed)
        except BaseException as exc:  # the script's assertion comes wrapped in trio's exception groups
            inner = exc
            while isinstance(inner, BaseExceptionGroup):
                inner = inner.exceptions[0]
            if "never provisioned" not in str(inner):
                raise AssertionError(f"seed {seed} ({chaos}): {inner}") from exc
            unprovisioned.append(seed)
    assert len(unprovisioned) <= 5, f"deals never provisioned for seeds {unprovisioned}"


def test_both_stories_give_the_same_trace_in_any_process():
    """Byte-identical traces across processes and hash seeds: no set order,
    no wall clock, no unseeded randomness in the two flows' decisions."""
    import os
    import subprocess
    import sys

    code = (
        "from tests.sync_core.flows import test_amendments as A, test_milestones as M\n"
        "from tests.sync_core.flows.contract_deals import make_world\n"
        "for story, chaos, seed in (('amend', 'swarm', 3), ('ms', 'pointed', 1)):\n"
        "    w = make_world(seed, chaos); box = {}\n"
        "    w.run(A._amend_three_times(w, box) if story == 'amend' else M._milestone_story(w, box))\n"
        "    print(w.sim.trace.fingerprint)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    prints = set()
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=root)
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
        prints.add(out.stdout)
    assert len(prints) == 1, prints

"""The business world: every fake seeded, a month played out, and the whole
thing deterministic across processes."""

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.idle_world import month_of_work

ROOT = Path(__file__).resolve().parents[2]


def fingerprint_in_subprocess(seed: int, hash_seed: str) -> str:
    out = subprocess.run([sys.executable, "-m", "tests.harness.idle_world", str(seed)], cwd=ROOT,
                         env=dict(os.environ, PYTHONHASHSEED=hash_seed), capture_output=True, text=True,
                         check=True, timeout=300)
    return out.stdout.strip()


def test_at_go_live_the_won_deals_wait_in_the_crm_feed_for_the_core():
    from harness.world import BusinessWorld
    from simulator import load_profile
    from fake_systems.firm_generator import FirmParams
    from tests.harness.idle_world import IdleCore

    world = BusinessWorld(seed=5, chaos=load_profile("none"), core_factory=IdleCore, header={},
                          firm_params=FirmParams(consultants=25))
    won = [o["Id"] for o in world.crm.records("Opportunity") if o["IsWon"]]
    events, _ = world.crm.changes.read(None, limit=10_000)
    announced = {e["header"]["recordIds"][0] for e in events if e["header"]["entity"] == "Opportunity"}
    assert won and set(won) <= announced


def test_a_core_that_never_reads_loses_the_feed_and_people_cannot_work():
    world = month_of_work(5)
    # 72 hours after go-live the CRM's change events are gone...
    events, _ = world.crm.changes.read(None, limit=10_000)
    assert all(e["commitTimestamp"] > 0 for e in events)
    # ...nobody provisioned projects, so people could not log time, and the
    # PSA's people said so.
    assert world.psa.records("projects") == []
    assert world.sim.trace.kind_counts.get("psa.people.gave_up", 0) > 0
    assert world.expenses.records("reports")


def test_the_world_is_identical_across_processes_and_hash_seeds():
    prints = {fingerprint_in_subprocess(5, h) for h in ("0", "1", "99")}
    assert len(prints) == 1
    assert prints.pop() == month_of_work(5).sim.trace.fingerprint


def test_another_seed_gives_another_world():
    assert month_of_work(5).sim.trace.fingerprint != month_of_work(6).sim.trace.fingerprint


def test_an_operator_replays_a_dead_letter_and_retries_an_exception_through_the_world():
    import json

    import pytest

    from fake_systems.firm_generator import FirmParams
    from harness.world import BusinessWorld
    from simulator import load_profile
    from tests.tui.dlq_core import build

    world = BusinessWorld(seed=3, chaos=load_profile("none"), core_factory=build, header={},
                          firm_params=FirmParams(consultants=5), keep_trace=True)
    with pytest.raises(ValueError, match="not started"):
        world.replay_dead_letter("ob00000001")
    seen = {}

    def queues():
        with world.store.transaction() as txn:
            return [k for k, _ in txn.scan("dlq")], [k for k, _ in txn.scan("exceptions")]

    async def script(d):
        await d.advance(hours=1)
        seen["before"] = queues()
        seen["missing"] = world.replay_dead_letter("ob99999999"), world.retry_exception("finance:ob99999999")
        seen["acted"] = world.replay_dead_letter("ob00000001"), world.retry_exception("finance:ob00000002")

    outcome = world.run(script)
    assert seen["before"] == (["ob00000001"], ["finance:ob00000002"])
    assert seen["missing"] == (False, False)
    assert seen["acted"] == (True, True)
    assert outcome["quiet"] and queues() == ([], [])
    done = [e["corr"] for e in map(json.loads, world.sim.trace.lines[1:-1]) if e["kind"] == "core.op.done"]
    assert done == ["ping:1", "post:1"]

"""The core host's step boundaries and `CoreActor.kill`, on a toy core.

A kill is a crash at one instruction of the core: whatever that life does
after it -- a transaction, a request -- has no effect, even the code that
runs on to the next checkpoint before trio's cancellation reaches it.
"""

from __future__ import annotations

import pytest
import trio

from harness.core_host import CoreActor
from simulator import SECOND, Actor, Response, Simulation
from sync_core.ports import InboundResponse
from sync_core.stores import MemoryStore, SqliteStore


class Ledger(Actor):
    """A vendor that remembers every request it was sent."""

    def __init__(self) -> None:
        super().__init__("erp")
        self.seen: list[str] = []

    def handle(self, request):
        self.seen.append(request.path)
        return Response(200, {})


class StepCore:
    """Each life: commit its number, commit again at once (no await in
    between), call the vendor, commit that the call came back."""

    def __init__(self, env) -> None:
        self.env = env

    async def run(self) -> None:
        with self.env.store.transaction() as t:
            life = (t.get("lives", "n") or 0) + 1
            t.put("lives", "n", life)
        with self.env.store.transaction() as t:
            t.put("second", str(life), True)
        with self.env.store.transaction() as t:
            t.get("lives", "n")  # reads only: no boundary
        await self.env.clients["erp"].request("POST", f"/life/{life}")
        with self.env.store.transaction() as t:
            t.put("answered", str(life), True)
        await trio.sleep_forever()

    async def handle_inbound(self, request):
        return InboundResponse(404)

    def idle(self) -> bool:
        return True


def run(store, kill_at: int | None = None):
    sim = Simulation(1)
    ledger = sim.add(Ledger())
    core = sim.add(CoreActor(sim, StepCore, store, ["erp"]))
    steps: list[str] = []

    def on_step(kind: str) -> None:
        steps.append(kind)
        if len(steps) == kill_at:
            core.kill(f"after step {kill_at}", restart_after_us=5 * SECOND)

    core.on_step = on_step

    async def main():
        sim.start_all()
        await sim.kernel.run_until(60 * SECOND)

    sim.run(main)
    return steps, ledger.seen, store.dump(), sim.trace.kind_counts


@pytest.fixture(params=["memory", "sqlite"])
def store(request):
    s = MemoryStore() if request.param == "memory" else SqliteStore()
    yield s
    if request.param == "sqlite":
        s.close()


def test_the_boundaries_are_the_writing_commits_and_the_calls_that_finish(store):
    steps, seen, dump, kinds = run(store)
    assert steps == ["commit", "commit", "answer", "commit"]
    assert seen == ["/life/1"]
    assert dump == {"answered": {"1": True}, "lives": {"n": 1}, "second": {"1": True}}
    assert "fault.crash" not in kinds


def test_killed_after_a_commit_the_next_transaction_of_that_life_never_commits(store):
    steps, seen, dump, kinds = run(store, kill_at=1)
    # Life 1 committed its number and died: its second transaction (no await
    # before it, so trio had not cancelled it yet) was discarded, its call
    # never left. Life 2 did everything.
    assert dump == {"answered": {"2": True}, "lives": {"n": 2}, "second": {"2": True}}
    assert seen == ["/life/2"]
    assert kinds["fault.crash"] == 1 and kinds["actor.restart"] == 1


def test_killed_after_the_last_commit_before_a_call_the_request_never_leaves(store):
    steps, seen, dump, kinds = run(store, kill_at=2)
    assert seen == ["/life/2"]
    assert dump == {"answered": {"2": True}, "lives": {"n": 2}, "second": {"1": True, "2": True}}


def test_killed_when_the_answer_comes_the_vendor_acted_and_the_core_never_heard(store):
    steps, seen, dump, kinds = run(store, kill_at=3)
    assert seen == ["/life/1", "/life/2"]
    assert dump == {"answered": {"2": True}, "lives": {"n": 2}, "second": {"1": True, "2": True}}
    assert steps[:3] == ["commit", "commit", "answer"]


def test_a_kill_while_the_core_is_down_does_nothing(store):
    sim = Simulation(1)
    sim.add(Ledger())
    core = sim.add(CoreActor(sim, StepCore, store, ["erp"]))
    core.kill("before it started", restart_after_us=SECOND)
    assert core.state == "stopped" and "fault.crash" not in sim.trace.kind_counts

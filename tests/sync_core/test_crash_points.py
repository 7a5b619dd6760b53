"""Crash-safety: kill the core at every step boundary of a flow, restart it,
and nothing is lost and nothing is done twice (issue 4, acceptance 3).

**What a step boundary is.** The core's durable state changes only when one
of its store transactions commits, so a committed transaction that wrote
something is the natural boundary: everything between two commits is lost
by design in a crash, and a crash after a read-only transaction is a crash
before it. But the world outside changes too: a vendor acts on a request
whether or not the core lives to read the answer. So the second kind of
boundary is *a vendor call finishing* -- the answer (or the timeout) has
come back and the core has not yet acted on it: killed there, the vendor
did the work and the core never hears of it (the crash twin of a response
lost after commit). Together they enumerate every distinct thing a crash
can do to the core: after each commit the durable state is new, after each
answer the vendors' state is. (A call *starting* is no third kind: killed
just after sending, the core's state is the one after the last commit and
the vendor may still act, as after an answer.)

**How the test kills there.** `harness.core_host.CoreActor` calls its
``on_step`` hook at each boundary of a running core ("commit" after a
transaction that wrote, "answer" when a call finishes). A clean run records
the boundaries; then for each boundary k the same seed runs again with a
hook that counts to k and calls `CoreActor.kill` -- a crash at that very
instruction: the rest of that life's code may run to its next checkpoint,
but its transactions are discarded and its requests never leave. The hook
touches neither the trace nor any random stream, so up to boundary k the
crashed run *is* the clean run (checked below). The core restarts
`RESTART_AFTER_US` later from what it committed, the world heals and goes
quiet, and then:

  * every harness invariant (`harness.invariants.check_world`) the clean
    run held, the crashed run holds, with no violation the clean run lacks;
  * the flow's own book checks (tests/sync_core/flows) find nothing the
    clean run did not;
  * nothing sits in the dead-letter queue and no actor raised.

"Held by the clean run" rather than "all": the worlds run only the flows
under test, so an invariant about another flow may fail in both runs, and
a flow's book check may report a planted data problem in both. A crash
must not add anything to either.

The exhaustive enumeration is slow (each boundary is a whole world run);
the fast suite runs every `Case.fast_stride`-th boundary of each flow
(every one of the smallest).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import attrs
import pytest

from harness.invariants import check_world
from harness.world import BusinessWorld
from simulator import SECOND

from .flows import provisioned_deals, time_books
from .flows.billed_deals import make_world as flow_world

RESTART_AFTER_US = 10 * SECOND


# ------------------------------------------------------------------ boundaries and kills


class Steps:
    """The clean run's boundaries, in order: (kind, virtual time); `begin`
    marks where the flow under test starts (earlier ones are its setup)."""

    def __init__(self, world: BusinessWorld) -> None:
        self.world = world
        self.seen: list[tuple[str, int]] = []
        self.first = 0

    def __call__(self, kind: str) -> None:
        self.seen.append((kind, self.world.sim.now_us))

    def begin(self) -> None:
        self.first = len(self.seen)


class KillAt(Steps):
    """Counts boundaries like `Steps`; at the k-th (1-based) kills the core."""

    def __init__(self, world: BusinessWorld, k: int) -> None:
        super().__init__(world)
        self.k = k

    def __call__(self, kind: str) -> None:
        super().__call__(kind)
        if len(self.seen) == self.k:
            self.world.core.kill(f"after step {self.k} ({kind})", restart_after_us=RESTART_AFTER_US)


@attrs.frozen
class Case:
    """A small world running one flow, its script, and the flow's book check."""

    name: str
    build: Callable[[], BusinessWorld]
    script: Callable  # script(steps) -> async script(driver)
    books: Callable[[BusinessWorld], list[str]]
    work: Callable[[BusinessWorld], int]  # how much of the flow's work the clean run did
    fast_stride: int  # the fast suite kills at every fast_stride-th boundary


@attrs.frozen
class Run:
    world: BusinessWorld
    outcome: dict
    steps: Steps
    invariants: dict[str, set[str]]  # name -> violations (normalised)
    books: set[str]
    dead_letters: set[str]


_IDS = re.compile(r"\b(ob|ex)\d{8}\b")


def _normal(line: str) -> str:
    # Outbox and exception ids are the core's own counters: a crash may
    # enqueue in another order. Business keys (deals, entries) stay.
    return _IDS.sub(r"\1#", line)


def run_case(case: Case, kill_at: int | None = None, *, hook: bool = True) -> Run:
    world = case.build()
    steps = KillAt(world, kill_at) if kill_at is not None else Steps(world)
    if hook:
        world.core.on_step = steps
    outcome = world.run(case.script(steps))
    invariants = {i["name"]: {_normal(str(v)) for v in i["violations"]} for i in check_world(world, outcome)}
    dead = {_normal(f"{item.get('op')}: {item.get('reason')}") for item in world.store.dump().get("dlq", {}).values()}
    return Run(world, outcome, steps, invariants, {_normal(b) for b in case.books(world)}, dead)


def crash_damage(case: Case, clean: Run, k: int, run: Run | None = None) -> list[str]:
    """What killing the core at boundary k broke that the clean run held."""
    run = run or run_case(case, kill_at=k)
    kinds = run.world.sim.trace.kind_counts
    assert kinds.get("actor.restart", 0) >= 1, f"boundary {k}: the core was never killed and restarted"
    bad = [] if run.outcome["quiet"] else ["the world never went quiet after healing"]
    for name, violations in run.invariants.items():
        bad += [f"invariant {name!r}: {v}" for v in sorted(violations - clean.invariants.get(name, set()))]
    bad += [f"books: {b}" for b in sorted(run.books - clean.books)]
    bad += [f"dead letter {d}" for d in sorted(run.dead_letters - clean.dead_letters)]
    errors = kinds.get("actor.error", 0) - clean.world.sim.trace.kind_counts.get("actor.error", 0)
    if errors > 0:
        bad.append(f"{errors} more actor.error events than the clean run")
    return [f"killed after step {k} ({clean.steps.seen[k - 1][0]} at {clean.steps.seen[k - 1][1]}us): {b}" for b in bad]


# ------------------------------------------------------------------ the flows


def _q2p_world() -> BusinessWorld:
    return provisioned_deals.make_world(1, "none", consultants=5)


def _q2p_script(steps: Steps):
    async def script(d):
        # Go-live: the deals won before it are provisioned from the CRM's
        # feed; then sales closes one more.
        await d.advance(minutes=30)
        d.close_deal(d.deals_closing(0)[0])
        await d.advance(hours=1)
    return script


def _q2p_books(world: BusinessWorld) -> list[str]:
    return provisioned_deals.provisioning_violations(world)


def _t2f_world() -> BusinessWorld:
    return time_books.make_world(3, "none", consultants=5)


def _staffed_tm_assignment(psa) -> tuple[dict, dict]:
    active = {p["id"] for p in psa.records("projects") if p["status"] == "active"}
    tm_tasks = {t["project_id"]: t for t in reversed(psa.records("tasks")) if t["billable"]}
    assignment = next(a for a in sorted(psa.records("assignments"), key=lambda a: a["id"])
                      if a["project_id"] in active and a["project_id"] in tm_tasks
                      and a["start_date"] <= "2026-01-05" and a["end_date"] >= "2026-01-09")
    return assignment, tm_tasks[assignment["project_id"]]


def _t2f_script(steps: Steps):
    async def script(d):
        await d.advance(hours=1)  # go-live: the deals won before it are provisioned
        # The PMO staffs them (it would the next business morning).
        for project in d.firm.projects:
            psa_id = d.resolve_psa("project", project.id)
            if psa_id is not None and d.psa.table("projects")[psa_id]["status"] == "active":
                d.psa.staff_project(d.firm, project.id, psa_id)
        steps.begin()  # the time-to-finance steps start here
        psa = d.psa
        a, task = _staffed_tm_assignment(psa)
        entries = []
        for day, hours in (("2026-01-05", "6"), ("2026-01-06", "4"), ("2026-01-07", "5"), ("2026-01-08", "3")):
            e = psa.log_time(a["resource_id"], a["project_id"], day, hours, task_id=task["id"])
            psa.submit_time_entry(e["id"])
            entries.append(e["id"])
        for e in entries[:3]:
            psa.approve_time_entry(e)
        psa.reject_time_entry(entries[3], "wrong task; please rebook")
        await d.advance(hours=1)
        d.correct_time(entries[0], "7")  # approved, posted, then corrected: reversal and repost
        await d.advance(hours=1)
    return script


def _t2f_books(world: BusinessWorld) -> list[str]:
    return time_books.time_violations(world)


def _workers_world() -> BusinessWorld:
    return flow_world(2, "none", flows=("workers",), consultants=5)


def _workers_script(steps: Steps):
    async def script(d):
        await d.advance(minutes=30)  # go-live: the HRIS's people already in the PSA
        steps.begin()
        hris = d.world.hris
        centre, profile = sorted(hris.table("cost_centers"))[0], sorted(hris.table("job_profiles"))[0]
        hris.hire("Ada", "Lovelace", profile, centre, date(2026, 1, 12), "80.00")
        seeded = sorted(w for w in hris.table("workers") if w.startswith("W"))
        hris.change_cost_rate(seeded[0], "123.00", date(2026, 1, 7))
        hris.terminate(seeded[1], date(2026, 1, 16))
        await d.advance(hours=1)
    return script


def _workers_books(world: BusinessWorld) -> list[str]:
    from .flows.test_workers import psa_matches_hris

    return psa_matches_hris(world)


def _projects_provisioned(world: BusinessWorld) -> int:
    won = {o["Id"] for o in world.crm.records("Opportunity") if o["IsWon"]}
    return sum(p["external_reference"] in won for p in world.psa.records("projects"))


def _time_posted(world: BusinessWorld) -> int:
    return sum((a["externalId"] or "").startswith("te:") for a in world.erp.records("projectActuals"))


def _workers_synced(world: BusinessWorld) -> int:
    return world.sim.trace.kind_counts.get("core.workers.synced", 0)


CASES = [
    Case("quote-to-project", _q2p_world, _q2p_script, _q2p_books, _projects_provisioned, fast_stride=10),
    Case("time-to-finance", _t2f_world, _t2f_script, _t2f_books, _time_posted, fast_stride=5),
    Case("workers", _workers_world, _workers_script, _workers_books, _workers_synced, fast_stride=1),
]
_CLEAN: dict[str, Run] = {}


def clean_run(case: Case) -> Run:
    """The case run without a crash (once per process)."""
    if case.name not in _CLEAN:
        _CLEAN[case.name] = run_case(case)
    return _CLEAN[case.name]


def reproduce(name: str, k: int) -> list[str]:
    """One failing kill, for a debugger: ``python -c "from
    tests.sync_core.test_crash_points import reproduce; print(reproduce('workers', 17))"``."""
    case = next(c for c in CASES if c.name == name)
    return crash_damage(case, clean_run(case), k)


def _report(case: Case, damage: list[str]) -> str:
    ks = sorted({int(line.split()[3]) for line in damage})
    return (f"{case.name}: killing the core at boundaries {ks} lost or duplicated work; reproduce one with "
            f"tests.sync_core.test_crash_points.reproduce({case.name!r}, {ks[0]})\n" + "\n".join(damage[:30]))


def boundaries(case: Case) -> range:
    """The flow's boundaries, 1-based: from its `begin` to the run's end."""
    steps = clean_run(case).steps
    return range(steps.first + 1, len(steps.seen) + 1)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_clean_run_does_the_flows_work_and_the_step_hook_changes_nothing(case):
    clean = clean_run(case)
    assert clean.outcome["quiet"]
    assert case.work(clean.world) >= 2, f"{case.name}: the clean run did too little of the flow's work"
    kinds = {k for k, _ in clean.steps.seen[clean.steps.first:]}
    assert kinds == {"commit", "answer"}, f"{case.name}: the flow has no boundaries of both kinds: {kinds}"
    assert len(boundaries(case)) >= 20, f"{case.name}: too few boundaries to prove anything"
    # Counting boundaries is invisible to the world: the same trace without the hook.
    assert run_case(case, hook=False).world.sim.trace.fingerprint == clean.world.sim.trace.fingerprint


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_kill_after_a_commit_loses_that_lifes_later_work_and_the_restart_finishes_it(case):
    """The kill itself: the run up to boundary k is the clean run, the core
    is down from k on (nothing of that life is committed or sent after), and
    the restarted core finishes the work."""
    clean = clean_run(case)
    k = next(k for k in boundaries(case) if clean.steps.seen[k - 1][0] == "commit")
    run = run_case(case, kill_at=k)
    assert run.steps.seen[:k] == clean.steps.seen[:k]
    trace = run.world.sim.trace
    assert trace.kind_counts.get("fault.crash") == 1 and trace.kind_counts.get("actor.restart") == 1
    damage = crash_damage(case, clean, k, run)
    assert not damage, _report(case, damage)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_killing_the_core_at_every_few_boundaries_loses_and_duplicates_nothing(case):
    clean = clean_run(case)
    damage = [line for k in boundaries(case)[::case.fast_stride] for line in crash_damage(case, clean, k)]
    assert not damage, _report(case, damage)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_killing_the_core_at_every_boundary_loses_and_duplicates_nothing(case):
    clean = clean_run(case)
    damage = [line for k in boundaries(case) for line in crash_damage(case, clean, k)]
    assert not damage, _report(case, damage)

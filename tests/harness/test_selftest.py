"""The self-test: the buggy-core catalogue, how its bugs are put in, the
quick shrinker, `syncbed selftest` -- and that the invariants catch the bugs
while the reference core passes the same runs."""

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio

from harness import buggy_cores
from harness.buggy_cores import CATALOGUE, bug_named
from harness.buggy_cores._compose import StoreOverlay, WrappedClient, first_attempt
from harness.runner import load_core, run_world
from harness.scenario_api import builtin_scenarios
from harness.selftest import resolve_bugs
from harness.shrink import faults_of, shrink_quickly, without_faults
from simulator.faults import load_profile
from sync_core.core import ReferenceCore
from sync_core.dispatcher import OpContext
from sync_core.ports import Environment
from sync_core.stores import MemoryStore

ROOT = Path(__file__).resolve().parents[2]

# The scenarios of the library a catalogue bug must fail (issue 6: "for each
# scenario a test shows that one of the self-test buggy cores fails it").
LIBRARY = ("quote-to-cash", "change-order", "amendment-after-invoice", "month-end-erp-outage",
           "fixed-fee-plus-managed-services", "milestone-signoff-hold", "retro-time-correction",
           "global-multi-entity", "duplicate-customers", "webhook-storm", "rate-limit-month-end",
           "core-crash-restart", "hr-onboarding-cost-rates", "lost-response-after-commit")


def syncbed(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800)


def failing(report: dict) -> list[str]:
    return [i["name"] for i in report["invariants"] if not i["ok"]]


def passing(report: dict) -> list[str]:
    return [i["name"] for i in report["invariants"] if i["ok"]]


# ------------------------------------------------------------------ the catalogue


def test_the_catalogue_has_at_least_eight_distinct_bugs_each_documented():
    assert len(CATALOGUE) >= 8
    assert len({b.name for b in CATALOGUE}) == len(CATALOGUE)
    scenarios = builtin_scenarios()
    for bug in CATALOGUE:
        doc = bug.factory.__doc__ or ""
        assert "The real-world bug" in doc and "Exposed by" in doc and "Caught by" in doc, bug.name
        assert bug.summary and bug.invariant
        assert all(s in scenarios for s in bug.scenarios), bug.scenarios
        assert getattr(buggy_cores, bug.name) is bug.factory
        label, factory = load_core(bug.core)  # what --core resolves
        assert label == f"harness.buggy_cores:{bug.name}" and callable(factory)


def _env(store=None) -> Environment:
    import random
    from datetime import UTC, datetime

    class Quiet:
        async def request(self, *a, **kw):  # pragma: no cover - no run here
            raise AssertionError("not called")

    class Tracer:
        def event(self, *a, **kw):
            pass

    systems = ("crm", "psa", "erp", "billing", "revenue", "hris", "expenses")
    return Environment(clients={s: Quiet() for s in systems}, store=store or MemoryStore(),
                       random=random.Random(0), tracer=Tracer(), now=lambda: datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("bug", CATALOGUE, ids=lambda b: b.name)
def test_every_bug_builds_a_whole_core(bug):
    core = bug.factory(_env())
    assert isinstance(core, ReferenceCore)
    assert set(core.dispatcher.operations) == set(ReferenceCore(_env()).dispatcher.operations)


def test_a_bug_leaves_the_reference_core_untouched():
    """Composition, not a switch: building every buggy core changes nothing
    of a reference core built afterwards."""
    before = ReferenceCore(_env())
    for bug in CATALOGUE:
        bug.factory(_env())
    after = ReferenceCore(_env())
    assert {n: op.perform.__qualname__ for n, op in before.dispatcher.operations.items()} == \
           {n: op.perform.__qualname__ for n, op in after.dispatcher.operations.items()}
    assert {k: len(v) for k, v in before.feeds.handlers.items()} == {k: len(v) for k, v in after.feeds.handlers.items()}
    assert "enqueue" not in vars(after)


def test_sync_core_carries_no_bug_switch():
    for path in (ROOT / "sync_core").rglob("*.py"):
        text = path.read_text()
        assert "buggy" not in text and "selftest" not in text, path


def test_bad_bug_names_are_refused_with_the_known_names():
    from harness.runner import InputError

    with pytest.raises(InputError, match="--bug 'nope': no such bug in the catalogue; name one of .*float_money"):
        resolve_bugs(("nope",))
    assert [b.name for b in resolve_bugs(("float_money", "float_money"))] == ["float_money"]


def test_cli_refuses_bad_selftest_input_with_one_line_and_status_2():
    for args, fragment in ((("--bug", "nope"), "--bug 'nope'"), (("--seeds", "0"), "--seeds")):
        r = syncbed("selftest", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and fragment in r.stderr, r.stderr


# ------------------------------------------------------------------ composition parts


def test_wrapped_client_rewrites_what_goes_out_and_what_comes_back():
    seen = {}

    @attrs.frozen
    class Answer:
        status: int
        headers: dict
        json: object

    class Inner:
        async def request(self, method, path, *, json=None, headers=None, query=None, timeout=None):
            seen.update(method=method, headers=headers, json=json)
            return Answer(429, {"retry-after": "2", "x-other": "1"}, {"error": {}})

    def out(method, path, json, headers, query):
        return dict(json, changed=True), {k: v for k, v in headers.items() if k != "Idempotency-Key"}

    def back(method, path, response):
        from harness.buggy_cores._compose import Reply
        return Reply.of(response, headers={"x-other": "1"})

    client = WrappedClient(Inner(), out, back)
    reply = trio.run(lambda: client.request("POST", "/v1/x", json={"a": 1}, headers={"Idempotency-Key": "k", "x": "y"}))
    assert seen == {"method": "POST", "headers": {"x": "y"}, "json": {"a": 1, "changed": True}}
    assert reply.status == 429 and reply.headers == {"x-other": "1"}


def test_store_overlay_loses_its_tables_with_the_process_and_keeps_the_rest():
    durable = MemoryStore()
    life = StoreOverlay(durable, ("msgs",))
    with life.transaction() as txn:
        txn.put("msgs", "m1", {"op": "x"})
        txn.put("inbox", "e1", 1)
    with pytest.raises(RuntimeError), life.transaction() as txn:
        txn.put("msgs", "m2", {})
        txn.put("inbox", "e2", 2)
        raise RuntimeError("rolled back, both sides")
    with life.transaction() as txn:
        assert [k for k, _ in txn.scan("msgs")] == ["m1"] and txn.get("inbox", "e2") is None
    next_life = StoreOverlay(durable, ("msgs",))  # a crash: the factory builds a new one
    with next_life.transaction() as txn:
        assert txn.get("msgs", "m1") is None and txn.get("inbox", "e1") == 1


def test_first_attempt_forgets_earlier_attempts_only():
    ctx = OpContext(_env(), {"id": "ob1", "op": "psa.create_deal_project", "corr": "deal:1"}, 3)
    fresh = first_attempt(ctx)
    assert ctx.maybe_done_before and not fresh.maybe_done_before
    assert (fresh.message, fresh.corr, fresh.system) == (ctx.message, ctx.corr, ctx.system)


# ------------------------------------------------------------------ the quick shrinker


def test_quick_shrink_tries_no_faults_then_each_alone_then_one_removal_at_a_time():
    profile = load_profile("default")
    faults = faults_of(profile)
    assert len(faults) == profile.size() == 4 and without_faults(profile, faults).size() == 0
    assert without_faults(profile, faults).links[0].latency == profile.links[0].latency

    tried = []

    def needs(*wanted):
        def still_fails(p):
            tried.append(p.size())
            rule = p.links[0]
            return all(getattr(rule, k) for k in wanted)
        return still_fails

    small, removed, runs = shrink_quickly(profile, needs())
    assert (small.size(), runs, len(removed)) == (0, 1, 4)
    tried.clear()
    small, removed, runs = shrink_quickly(profile, needs("duplicate"))
    assert small.size() == 1 and small.links[0].duplicate and runs == len(tried) <= 5
    assert small.name == "shrunk:default" and "links[0].duplicate" not in removed
    small, removed, runs = shrink_quickly(profile, needs("duplicate", "reorder"))  # two needed: the slow path
    assert small.size() == 2 and small.links[0].duplicate and small.links[0].reorder
    assert sorted(removed) == ["links[0].request_loss", "links[0].response_loss"]


# ------------------------------------------------------------------ caught, and the reference core passes


def _caught_and_reference_passes(bug_name, scenario, seed, chaos=None):
    bug = bug_named(bug_name)
    buggy = run_world(scenario, seed, chaos, core=bug.core)
    reference = run_world(scenario, seed, chaos)
    assert bug.invariant in failing(buggy), failing(buggy)
    assert bug.invariant in passing(reference), [i for i in reference["invariants"] if i["name"] == bug.invariant]
    return buggy


def test_retry_after_ignored_is_caught_on_rate_limit_month_end():
    buggy = _caught_and_reference_passes("retry_after_ignored", "rate-limit-month-end", 0)
    violation = next(i for i in buggy["invariants"] if i["name"] == bug_named("retry_after_ignored").invariant)
    assert "before its Retry-After ran out" in violation["violations"][0]


def test_a_dropped_closed_period_posting_is_caught_as_silently_lost():
    # No network faults: the bug needs none, and the runs are quicker.
    buggy = _caught_and_reference_passes("closed_period_posting_dropped", "retro-time-correction", 0, "none")
    lost = next(i for i in buggy["invariants"] if i["name"] == "nothing silently lost")["violations"][0]
    assert lost.startswith("te:") and "no exception or dead letter says why" in lost


def test_ratable_revenue_booked_point_in_time_is_caught():
    _caught_and_reference_passes("recurring_revenue_booked_point_in_time", "fixed-fee-plus-managed-services", 0,
                                 "none")


# Scenario -> (bug, seed, invariant that fails with the bug and holds with the
# reference core), under the scenario's own chaos profile.
SCENARIO_BUGS = {
    "quote-to-cash": ("billing_without_idempotency_key", 0, "billing: every billable item on exactly one invoice item"),
    "change-order": ("amendments_applied_in_arrival_order", 0, "contract versions applied in order, never backwards"),
    "amendment-after-invoice": ("billing_without_idempotency_key", 0, "every won deal set up in every system"),
    "month-end-erp-outage": ("posting_dated_when_sent", 0,
                             "ERP outage: work approved while the ERP was down posted within hours of its return, "
                             "in January"),
    "fixed-fee-plus-managed-services": ("recurring_revenue_booked_point_in_time", 0,
                                        "fixed fee + managed services: one revenue contract, milestones point in "
                                        "time, the service ratable"),
    "milestone-signoff-hold": ("milestone_billed_before_signoff", 0,
                               "milestone hold: no milestone reached an invoice before the client signed it off"),
    "retro-time-correction": ("closed_period_posting_dropped", 0, "nothing silently lost"),
    "global-multi-entity": ("posting_dated_when_sent", 0,
                            "global: every time posting is dated on its work date, whatever the systems' clocks"),
    "duplicate-customers": ("customer_matched_by_external_id_only", 0,
                            "duplicate customers: one active ERP customer per business"),
    "webhook-storm": ("billing_without_idempotency_key", 0, "webhook storm: no duplicated event did anything twice"),
    "rate-limit-month-end": ("retry_after_ignored", 0,
                             "rate limits: no throttled request was sent again before its Retry-After"),
    "core-crash-restart": ("outbox_in_memory", 1, "core crashes: no work was lost across the crashes"),
    "hr-onboarding-cost-rates": ("retro_cost_rate_not_recosted", 1, "HR: the ERP's cost of each hour of a changed "
                                 "worker is at the HRIS rate in force on the work date"),
    "lost-response-after-commit": ("psa_create_retried_without_lookup", 1,
                                   "lost responses: nothing written twice in psa"),
}


def test_the_scenario_map_covers_the_library():
    assert sorted(SCENARIO_BUGS) == sorted(LIBRARY)
    assert set(LIBRARY) <= set(builtin_scenarios())
    assert all(bug_named(bug) is not None for bug, _, _ in SCENARIO_BUGS.values())


@pytest.mark.slow
@pytest.mark.parametrize("scenario", LIBRARY)
def test_every_library_scenario_fails_with_one_catalogue_bug(scenario):
    bug_name, seed, invariant = SCENARIO_BUGS[scenario]
    buggy = run_world(scenario, seed, None, core=bug_named(bug_name).core)
    reference = run_world(scenario, seed, None)
    assert invariant in failing(buggy), failing(buggy)
    assert invariant in passing(reference), failing(reference)


@pytest.mark.slow
def test_selftest_catches_a_bug_shrinks_it_and_its_reproduce_command_fails_again(tmp_path):
    r = syncbed("selftest", "--bug", "posting_dated_when_sent", "--seeds", "1", "--json", "--workers", "1",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    (bug,) = result["bugs"]
    assert bug["caught"] and bug["reproduced"] and bug["reference_passes"]
    assert bug["faults_after"] <= bug["faults_before"]
    words = bug["reproduce"].split()
    assert words[:2] == ["syncbed", "run"] and "--core" in words
    assert (tmp_path / words[words.index("--chaos") + 1]).is_file()
    again = syncbed(*words[1:], "--json", cwd=tmp_path)
    assert again.returncode == 1
    assert bug["caught_by"] in failing(json.loads(again.stdout))

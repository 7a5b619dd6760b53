"""The outbox and its dispatcher against a toy vendor in a simulated world:
exactly-once through lost responses and crashes, per-aggregate order,
Retry-After, throttles, business exceptions, dead letters and the circuit
breaker (across restarts too)."""

import json

from fake_systems.vendor import Route, VendorError, VendorSystem
from harness.core_host import CoreActor
from simulator import HOUR, MILLISECOND, MINUTE, SECOND, Fixed, Response, Simulation, Window
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults
from sync_core.dispatcher import Dispatcher, Operation, now_us
from sync_core.outbox import Outbox
from sync_core.ports import InboundResponse
from sync_core.retry import BusinessException, RetryLater, RetryPolicy
from sync_core.stores import MemoryStore


class Ledger(VendorSystem):
    """Keyed POSTs are idempotent; `closed` accounts refuse with 409."""

    service_time = None

    def __init__(self, name="ledger"):
        super().__init__(name)
        self.closed: set[str] = set()
        self.forced: list[Response] = []

    def routes(self):
        return [Route("POST", "/postings", self.post, writes=True)]

    def post(self, request):
        if self.forced:
            return self.forced.pop(0)
        body = request.json
        key = request.header("idempotency-key")
        seen = self.store.extra.setdefault("keys", {})
        if key in seen:
            return Response(201, seen[key])
        if body["account"] in self.closed:
            raise VendorError(409, "PERIOD_CLOSED", f"account {body['account']} is closed")
        pid = f"P{self.store.next_id('posting')}"
        row = self.table("postings")[pid] = {"id": pid, **body}
        self.record_effect("create", "postings", pid, request)
        seen[key] = row
        return Response(201, row)


async def post(ctx, payload):
    r = await ctx.call("POST", "/postings", json=payload, headers={"idempotency-key": payload["ref"]})
    if r.status == 201:
        return r.json
    if r.status in (429, 500, 503):
        ra = r.headers.get("retry-after")
        raise RetryLater(f"ledger answered {r.status}", after=float(ra) if ra else None, throttled=r.status == 429)
    if r.status == 409:
        raise BusinessException("finance", r.json["error"]["code"], r.json["error"]["message"])
    raise RuntimeError(f"unexpected {r.status}")


def posted(txn, message, result, now):
    txn.put("posted", message["payload"]["ref"], result["id"])


class ToyCore:
    def __init__(self, env, policy=RetryPolicy()):
        self.env = env
        self.dispatcher = Dispatcher(env, [Operation("ledger.post", post, posted, timeout=60)], limits={"ledger": 3}, policy=policy)

    async def run(self):
        await self.dispatcher.run()

    async def handle_inbound(self, request):
        return InboundResponse(404)

    def idle(self):
        return self.dispatcher.idle()


def world(chaos=None, seed=3, policy=RetryPolicy()):
    sim = Simulation(seed, chaos=chaos or ChaosProfile("t", links=(LinkRule(latency=Fixed(5 * MILLISECOND)),)), keep_trace=True)
    ledger = sim.add(Ledger())
    store = MemoryStore()
    core = sim.add(CoreActor(sim, lambda env: ToyCore(env, policy), store, ["ledger"]))
    return sim, ledger, core, store


def enqueue(sim, core, store, items):
    with store.transaction() as txn:
        for account, ref, amount in items:
            Outbox.enqueue(txn, "ledger.post", {"account": account, "ref": ref, "amount": amount},
                           aggregate=account, now_us=now_us(core.core.env), corr=ref)
    core.core.dispatcher.wake()


def kinds(sim, prefix):
    return [json.loads(l) for l in sim.trace.lines[1:-1] if f'"kind":"{prefix}' in l]


def test_exactly_once_through_lost_responses_duplicates_and_core_crashes():
    chaos = ChaosProfile(
        "rough",
        links=(LinkRule(latency=Fixed(20 * MILLISECOND), response_loss="20%", request_loss="10%", duplicate="10%"),),
        process=ProcessFaults(actors=("core",), crash_every=20 * SECOND, restart_after=3 * SECOND),
    )
    sim, ledger, core, store = world(chaos)
    items = [(f"acct{i % 5}", f"ref{i:03d}", f"{i}.00") for i in range(60)]

    async def main():
        sim.start_all()
        enqueue(sim, core, store, items)
        await sim.kernel.run_until_quiet(core.idle, limit_us=6 * HOUR)
        sim.heal()
        return await sim.kernel.run_until_quiet(core.idle, limit_us=sim.now_us + 6 * HOUR)

    assert sim.run(main) == "quiet"
    refs = sorted(r["ref"] for r in ledger.records("postings"))
    assert refs == sorted(ref for _, ref, _ in items)  # each exactly once
    assert sorted(store.dump()["posted"]) == refs
    assert sim.trace.kind_counts.get("fault.crash", 0) >= 3
    assert sim.trace.kind_counts.get("fault.response_lost", 0) >= 3


def test_each_aggregate_runs_in_enqueue_order_even_when_the_network_reorders():
    chaos = ChaosProfile("reorder", links=(LinkRule(latency=Fixed(5 * MILLISECOND), reorder="50%", reorder_delay="3s"),))
    sim, ledger, core, store = world(chaos)
    items = [(f"acct{i % 3}", f"ref{i:03d}", "1.00") for i in range(30)]

    async def main():
        sim.start_all()
        enqueue(sim, core, store, items)
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)

    sim.run(main)
    for account in ("acct0", "acct1", "acct2"):
        arrived = [r["ref"] for r in ledger.records("postings") if r["account"] == account]
        assert arrived == sorted(arrived)
    assert sim.trace.kind_counts.get("fault.reorder", 0) > 0


def test_retry_after_is_honoured():
    sim, ledger, core, store = world()
    ledger.forced = [Response(429, {"error": {"code": "RATE"}}, {"retry-after": "7"})]

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)

    sim.run(main)
    requests = [e["t"] for e in kinds(sim, "net.request") if e["dst"] == "ledger"]
    assert len(requests) == 2 and requests[1] - requests[0] >= 7 * SECOND
    (retry,) = kinds(sim, "core.op.retry")
    assert retry["data"]["retry_in_ms"] >= 7000


def test_a_business_refusal_parks_the_aggregate_until_a_person_resolves_it():
    sim, ledger, core, store = world()
    ledger.closed.add("a")

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00"), ("a", "r2", "2.00"), ("b", "r3", "3.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)
        parked = store.dump().get("exceptions", {})
        posted_then = sorted(r["ref"] for r in ledger.records("postings"))
        ledger.closed.clear()  # finance reopens the account
        with store.transaction() as txn:
            (key,) = parked
            domain, msg_id = key.split(":")
            Outbox.resolve_exception(txn, domain, msg_id, retry=True, now_us=now_us(core.core.env))
        core.core.dispatcher.wake()
        await sim.kernel.run_until_quiet(core.idle, limit_us=sim.now_us + HOUR)
        return parked, posted_then

    parked, posted_then = sim.run(main)
    (item,) = parked.values()
    assert (item["domain"], item["code"], item["payload"]["ref"]) == ("finance", "PERIOD_CLOSED", "r1")
    assert posted_then == ["r3"]  # r2 waited behind r1; b was not held up
    assert [r["ref"] for r in ledger.records("postings")] == ["r3", "r1", "r2"]


def test_hopeless_messages_go_to_the_dead_letter_queue_and_can_be_replayed():
    profile = ChaosProfile("down", links=(LinkRule(latency=Fixed(MILLISECOND)),),
                           systems=(("ledger", SystemFaults(error_5xx="100%")),))
    sim, ledger, core, store = world(profile, policy=RetryPolicy(base=0.1, cap=1.0, max_attempts=4))

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)
        dead = dict(store.dump().get("dlq", {}))
        sim.heal()
        with store.transaction() as txn:
            Outbox.replay_dead_letter(txn, next(iter(dead)), now_us(core.core.env))
        core.core.dispatcher.wake()
        await sim.kernel.run_until_quiet(core.idle, limit_us=sim.now_us + HOUR)
        return dead

    dead = sim.run(main)
    (item,) = dead.values()
    assert item["attempts"] == 4 and "gave up after 4 attempts" in item["reason"]
    assert [r["ref"] for r in ledger.records("postings")] == ["r1"]


def test_the_circuit_breaker_stops_calling_a_failing_vendor_for_a_while():
    profile = ChaosProfile("outage", links=(LinkRule(latency=Fixed(MILLISECOND)),),
                           windows=(Window("outage", 0, 10 * MINUTE, target="ledger"),))
    sim, ledger, core, store = world(profile, policy=RetryPolicy(base=0.01, cap=0.05, max_attempts=1000))

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [(f"a{i}", f"r{i}", "1.00") for i in range(3)])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)

    sim.run(main)
    opened = kinds(sim, "core.breaker.opened")
    assert len(opened) >= 2, "the breaker never opened (or never re-opened after a failed probe)"
    calls = [e["t"] for e in kinds(sim, "net.request") if e["dst"] == "ledger"]
    for event in opened:
        # The shortest cool-down is 30 s: no call goes out inside it.
        assert [t for t in calls if event["t"] < t < event["t"] + 30 * SECOND] == []
    assert len(calls) < 50  # without a breaker: a retry per Retry-After per message for 10 minutes
    assert sorted(r["ref"] for r in ledger.records("postings")) == ["r0", "r1", "r2"]
    assert kinds(sim, "core.breaker.closed")


def test_an_outage_longer_than_the_retry_budget_delays_messages_but_never_dead_letters_them():
    # Six attempts with a five-minute cap would be spent in half an hour; the
    # ledger is down for a weekend's worth of hours. Only failures while the
    # breaker lets traffic through are charged; its probes are not.
    profile = ChaosProfile("weekend", links=(LinkRule(latency=Fixed(MILLISECOND)),),
                           windows=(Window("outage", 0, 60 * HOUR, target="ledger"),))
    sim, ledger, core, store = world(profile, policy=RetryPolicy(max_attempts=6))

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00"), ("a", "r2", "2.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=4 * 24 * HOUR)

    sim.run(main)
    assert store.dump().get("dlq", {}) == {}
    assert [r["ref"] for r in ledger.records("postings")] == ["r1", "r2"]
    retries = kinds(sim, "core.op.retry")
    assert len(retries) > 6, "the outage should have outlasted the retry budget many times over"
    assert max(e["t"] for e in kinds(sim, "core.op.done")) >= 60 * HOUR


def test_throttles_wait_without_spending_the_retry_budget():
    # Three charged attempts would dead-letter the message on the third 429;
    # a 429 is the vendor saying "not now, come back in a second", not a
    # failure of this message.
    sim, ledger, core, store = world(policy=RetryPolicy(max_attempts=3))
    ledger.forced = [Response(429, {"error": {"code": "RATE"}}, {"retry-after": "1"}) for _ in range(4)]

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)

    sim.run(main)
    assert store.dump().get("dlq", {}) == {}
    assert [r["ref"] for r in ledger.records("postings")] == ["r1"]
    assert [e["data"]["throttled"] for e in kinds(sim, "core.op.retry")] == [True] * 4


def test_a_throttle_holds_back_the_vendor_but_does_not_trip_the_breaker():
    # Eight 429s in a row would open the breaker were they failures; the
    # ledger is up, so it stays closed. While one message waits out its
    # Retry-After, the others do not go to the ledger either: the limit is
    # the account's, they would only be refused in turn.
    sim, ledger, core, store = world()
    ledger.forced = [Response(429, {"error": {"code": "RATE"}}, {"retry-after": "2"}) for _ in range(8)]

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00"), ("b", "r2", "2.00"), ("c", "r3", "3.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=HOUR)

    sim.run(main)
    assert sorted(r["ref"] for r in ledger.records("postings")) == ["r1", "r2", "r3"]
    assert not kinds(sim, "core.breaker.opened")
    throttled = [e["t"] for e in kinds(sim, "net.response") if e["src"] == "ledger" and e["data"]["status"] == 429]
    assert len(throttled) == 8
    sent = [e["t"] for e in kinds(sim, "net.request") if e["dst"] == "ledger"]
    for t in throttled:
        assert [s for s in sent if t < s < t + 2 * SECOND] == []


def test_a_core_restarted_during_an_outage_still_knows_the_vendor_is_down():
    # The breaker is kept in the store. Were it forgotten, each restart would
    # find the ledger "fine" and charge the waiting messages until the
    # breaker opened again -- five failures a life, a minute apart -- and
    # six attempts would be spent by the second restart.
    profile = ChaosProfile("outage+crashes", links=(LinkRule(latency=Fixed(MILLISECOND)),),
                           windows=(Window("outage", 0, 6 * HOUR, target="ledger"),),
                           process=ProcessFaults(actors=("core",), crash_every=30 * MINUTE, restart_after=MINUTE))
    sim, ledger, core, store = world(profile, policy=RetryPolicy(max_attempts=6))

    async def main():
        sim.start_all()
        enqueue(sim, core, store, [("a", "r1", "1.00"), ("a", "r2", "2.00"), ("b", "r3", "3.00")])
        await sim.kernel.run_until_quiet(core.idle, limit_us=6 * HOUR)
        sim.heal()
        await sim.kernel.run_until_quiet(core.idle, limit_us=sim.now_us + HOUR)

    sim.run(main)
    assert store.dump().get("dlq", {}) == {}
    assert sorted(r["ref"] for r in ledger.records("postings")) == ["r1", "r2", "r3"]
    assert sim.trace.kind_counts.get("fault.crash", 0) >= 4

"""The machinery every fake shares: routing, vendor faults, service time,
webhooks and change feeds -- exercised through a toy vendor."""

import pytest

from fake_systems.feeds import PolledFeed, ReplayLog
from fake_systems.vendor import Route, VendorError, VendorSystem, require_fields
from fake_systems.webhooks import WebhookSender
from simulator import DAY, HOUR, MILLISECOND, MINUTE, SECOND, Fixed, NetworkError, Response, Window
from simulator.faults import ChaosProfile, LinkRule, SystemFaults
from tests.fake_systems.world import World

MS = MILLISECOND


class Toy(VendorSystem):
    family = "toy"
    service_time = None

    def __init__(self, name="toy", service_time=None, webhook_schedule=None):
        super().__init__(name)
        self.service_time = service_time
        self.hooks = WebhookSender(self, schedule_us=webhook_schedule or (MINUTE, 5 * MINUTE))
        self.log = ReplayLog(self, "changes")
        self.feed = PolledFeed(self, "polled", visibility_lag_us=10 * SECOND, duplicate_rate=0.0)

    def routes(self):
        return [
            Route("GET", "/widgets/{wid}", self.get_widget),
            Route("POST", "/widgets", self.create_widget, writes=True),
        ]

    def error(self, status, code, message, field=None, headers=None):
        return Response(status, {"fault": {"code": code, "text": message, "field": field}}, headers)

    def on_start(self):
        self.hooks.resume()

    def get_widget(self, request, wid):
        w = self.table("widgets").get(wid)
        if w is None:
            raise VendorError(404, "NO_SUCH_WIDGET", f"widget {wid} does not exist")
        return Response(200, w)

    def create_widget(self, request):
        body = require_fields(request.json, ("name",))
        wid = f"W{self.store.next_id('widget')}"
        row = self.table("widgets")[wid] = {"id": wid, "name": body["name"]}
        self.record_effect("create", "widgets", wid, request)
        event = {"id": f"evt{wid}", "type": "widget.created", "data": dict(row)}
        self.store.events.append(event)
        self.hooks.emit(event, corr=request.header("x-correlation-id"))
        self.log.append({"entity": "widget", "id": wid}, transaction_key=f"tx{wid}")
        self.feed.append({"entity": "widget", "id": wid})
        return Response(201, row)


def quick(**systems):
    return ChaosProfile(
        "t", links=(LinkRule(latency=Fixed(MS)),), systems=tuple((k, SystemFaults(**v)) for k, v in systems.items())
    )


def test_routing_answers_in_the_vendors_shape():
    w = World(Toy())

    async def script(call):
        created = await call("POST", "/widgets", json={"name": "gear"})
        got = await call("GET", f"/widgets/{created.json['id']}")
        missing = await call("GET", "/widgets/W99")
        no_route = await call("GET", "/gadgets")
        wrong_method = await call("DELETE", "/widgets/W1")
        bad_body = await call("POST", "/widgets", json=["not", "an", "object"])
        no_name = await call("POST", "/widgets", json={"colour": "red"})
        return created, got, missing, no_route, wrong_method, bad_body, no_name

    created, got, missing, no_route, wrong_method, bad_body, no_name = w.run(script)
    assert (created.status, got.status, got.json) == (201, 200, {"id": "W1", "name": "gear"})
    assert (missing.status, missing.json["fault"]["code"]) == (404, "NO_SUCH_WIDGET")
    assert no_route.status == 404 and wrong_method.status == 405
    assert bad_body.status == 400 and "JSON object" in bad_body.json["fault"]["text"]
    assert (no_name.status, no_name.json["fault"]["field"]) == (400, "name")


def test_records_where_gives_copies_of_the_matching_records_in_creation_order():
    toy = Toy()
    w = World(toy)

    async def script(call):
        for name in ("gear", "cog", "gear", "nut"):
            await call("POST", "/widgets", json={"name": name})

    w.run(script)
    gears = toy.records_where("widgets", name="gear")
    assert gears == [{"id": "W1", "name": "gear"}, {"id": "W3", "name": "gear"}]
    assert toy.records_where("widgets", name="gear", id="W3") == [{"id": "W3", "name": "gear"}]
    assert toy.records_where("widgets", name="bolt") == []
    gears[0]["name"] = "changed"  # a copy: the fake's record is untouched
    assert toy.records_where("widgets", id="W1") == [{"id": "W1", "name": "gear"}]


def test_effects_log_names_the_request_that_caused_them():
    toy = Toy()
    w = World(toy)

    async def script(call):
        await call("POST", "/widgets", json={"name": "a"}, headers={"X-Correlation-Id": "deal-9", "Idempotency-Key": "k1"})

    w.run(script)
    (effect,) = toy.effects()
    assert effect["kind"] == "create" and effect["id"] == "W1"
    assert effect["request"]["correlation_id"] == "deal-9"
    assert effect["request"]["idempotency_key"] == "k1"


def test_rate_limit_is_a_sliding_window_with_retry_after_and_heal_lifts_it():
    w = World(Toy(), chaos=quick(toy={"rate_limit": 2, "rate_limit_window": "10s"}))

    async def script(call):
        statuses = [(await call("GET", "/widgets/W1")).status for _ in range(3)]
        limited = await call("GET", "/widgets/W1")
        await w.sim.kernel.run_until(w.sim.now_us + 10 * SECOND)
        after_window = (await call("GET", "/widgets/W1")).status
        w.sim.heal()
        healed = [(await call("GET", "/widgets/W1")).status for _ in range(5)]
        return statuses, limited, after_window, healed

    statuses, limited, after_window, healed = w.run(script)
    assert statuses == [404, 404, 429]
    assert limited.status == 429 and 1 <= int(limited.header("retry-after")) <= 10
    assert after_window == 404
    assert healed == [404] * 5


def test_5xx_faults_hit_writes_only():
    w = World(Toy(), chaos=quick(toy={"error_5xx": "100%"}))

    async def script(call):
        write = await call("POST", "/widgets", json={"name": "x"})
        read = await call("GET", "/widgets/W1")
        return write.status, read.status

    assert w.run(script) == (500, 404)


def test_outage_windows_from_the_profile_and_injected():
    profile = ChaosProfile(
        "t", links=(LinkRule(latency=Fixed(MS)),), windows=(Window("outage", 1 * HOUR, 2 * HOUR, target="toy"),)
    )
    w = World(Toy(), chaos=profile)

    async def script(call):
        before = (await call("GET", "/widgets/W1")).status
        await w.sim.kernel.run_until(90 * MINUTE)
        during = await call("GET", "/widgets/W1")
        await w.sim.kernel.run_until(2 * HOUR)
        after = (await call("GET", "/widgets/W1")).status
        w.sim.inject(Window("outage", w.sim.now_us, w.sim.now_us + MINUTE, target="toy"))
        injected = (await call("GET", "/widgets/W1")).status
        return before, during, after, injected

    before, during, after, injected = w.run(script)
    assert (before, after) == (404, 404)
    assert during.status == 503 and during.json["fault"]["code"] == "SERVICE_UNAVAILABLE"
    assert injected == 503


def test_concurrency_limit_counts_requests_in_service():
    w = World(Toy(service_time=Fixed(500 * MS)), chaos=quick(toy={"concurrency_limit": 1}))
    import trio

    async def script(call):
        results = []

        async def one(name):
            results.append((name, (await call("POST", "/widgets", json={"name": name})).status))

        async with trio.open_nursery() as n:
            n.start_soon(one, "first")
            n.start_soon(one, "second")
        third = (await call("POST", "/widgets", json={"name": "third"})).status
        return sorted(results), third

    results, third = w.run(script)
    assert sorted(s for _, s in results) == [201, 429]
    assert third == 201


def test_a_crash_during_service_commits_the_write_and_loses_the_answer():
    toy = Toy(service_time=Fixed(2 * SECOND))
    w = World(toy)

    async def script(call):
        w.sim.kernel.call_at(w.sim.now_us + SECOND, w.sim.crash, toy)
        w.sim.kernel.call_at(w.sim.now_us + 3 * SECOND, w.sim.restart, toy)
        with pytest.raises(NetworkError):
            await call("POST", "/widgets", json={"name": "ghost"}, timeout_us=10 * SECOND)
        return (await call("GET", "/widgets/W1")).json

    assert w.run(script) == {"id": "W1", "name": "ghost"}
    assert len(toy.effects("create")) == 1


def test_webhooks_retry_on_failure_and_deliver_the_same_event():
    toy = Toy()
    w = World(toy)
    sink = w.add_sink("core", statuses=[500, 503])
    toy.hooks.subscribe("core", "/hooks/toy")

    async def script(call):
        await call("POST", "/widgets", json={"name": "a"}, headers={"X-Correlation-Id": "c-1"})
        await w.sim.kernel.run_until(w.sim.now_us + HOUR)

    w.run(script)
    times = [r["t"] for r in sink.received]
    assert [r["json"]["id"] for r in sink.received] == ["evtW1"] * 3
    assert [r["headers"]["x-webhook-attempt"] for r in sink.received] == ["1", "2", "3"]
    assert all(r["headers"]["x-correlation-id"] == "c-1" for r in sink.received)
    # Retries wait out the schedule (1 min, then 5 min) after each failure.
    assert times[1] - times[0] >= MINUTE and times[2] - times[1] >= 5 * MINUTE
    assert toy.hooks.pending() == []


def test_webhooks_give_up_after_the_schedule_and_say_so():
    toy = Toy(webhook_schedule=(MINUTE,))
    w = World(toy)
    sink = w.add_sink("core", statuses=[500] * 10)
    toy.hooks.subscribe("core", "/hooks/toy")

    async def script(call):
        await call("POST", "/widgets", json={"name": "a"})
        await w.sim.kernel.run_until(w.sim.now_us + DAY)

    w.run(script)
    assert len(sink.received) == 2
    assert toy.hooks.given_up() == [{"delivery": "toy-whd-1", "event": "evtW1", "attempts": 2}]
    assert "webhook.given_up" in w.trace_kinds()


def test_webhook_chaos_duplicates_every_event_under_full_rate():
    toy = Toy()
    w = World(toy, chaos=quick(toy={"webhook_duplicate": "100%"}))
    sink = w.add_sink("core")
    toy.hooks.subscribe("core", "/hooks/toy")

    async def script(call):
        for name in ("a", "b"):
            await call("POST", "/widgets", json={"name": name})
        await w.sim.kernel.run_until(w.sim.now_us + HOUR)

    w.run(script)
    assert sorted(r["json"]["id"] for r in sink.received) == ["evtW1", "evtW1", "evtW2", "evtW2"]


def test_pending_webhooks_survive_a_vendor_restart():
    toy = Toy()
    w = World(toy)
    sink = w.add_sink("core", statuses=[500])
    toy.hooks.subscribe("core", "/hooks/toy")

    async def script(call):
        await call("POST", "/widgets", json={"name": "a"})
        await w.sim.kernel.run_until(w.sim.now_us + 30 * SECOND)  # first attempt failed; retry due in 1 min
        w.sim.crash(toy)
        await w.sim.kernel.run_until(w.sim.now_us + 10 * MINUTE)  # the retry timer died with the crash
        missed = len(sink.received)
        w.sim.restart(toy)
        await w.sim.kernel.run_until(w.sim.now_us + 10 * MINUTE)
        return missed

    assert w.run(script) == 1
    assert len(sink.received) == 2 and toy.hooks.pending() == []


def test_replay_log_is_ordered_non_contiguous_and_expires():
    toy = Toy()
    w = World(toy)

    async def script(call):
        for name in "abcd":
            await call("POST", "/widgets", json={"name": name})
        first, cursor = toy.log.read(None, limit=2)
        rest, end = toy.log.read(cursor)
        caught_up, same = toy.log.read(end)
        with pytest.raises(VendorError) as never:
            toy.log.read("FFFFFFFFFFFF")
        await w.sim.kernel.run_until(w.sim.now_us + 73 * HOUR)
        await call("POST", "/widgets", json={"name": "e"})
        with pytest.raises(VendorError) as expired:
            toy.log.read(first[0]["replayId"])
        fresh, _ = toy.log.read(None)
        return first, rest, caught_up, same, end, never.value, expired.value, fresh

    first, rest, caught_up, same, end, never, expired, fresh = w.run(script)
    events = first + rest
    assert [e["id"] for e in events] == ["W1", "W2", "W3", "W4"]
    ids = [int(e["replayId"], 16) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert any(b - a > 1 for a, b in zip(ids, ids[1:]))  # non-contiguous
    assert caught_up == [] and same == end
    assert never.code == "INVALID_REPLAY_ID"
    assert expired.code == "REPLAY_ID_EXPIRED"
    assert [e["id"] for e in fresh] == ["W5"]


def test_polled_feed_has_visibility_lag_and_retention():
    toy = Toy()
    w = World(toy)

    async def script(call):
        start = w.sim.now_us
        await call("POST", "/widgets", json={"name": "a"})
        immediately, _ = toy.feed.read(start)
        await w.sim.kernel.run_until(w.sim.now_us + 10 * SECOND)
        later, _ = toy.feed.read(start)
        not_since, _ = toy.feed.read(w.sim.now_us)
        await w.sim.kernel.run_until(w.sim.now_us + 9 * DAY + SECOND)
        expired, _ = toy.feed.read(start)
        return immediately, later, not_since, expired

    immediately, later, not_since, expired = w.run(script)
    assert [e["id"] for e in later] == ["W1"]
    assert len(immediately) <= 1  # visible at once only if its lag drew zero
    assert not_since == [] and expired == []


def test_polled_feed_pages_and_duplicates():
    toy = Toy()
    toy.feed.duplicate_rate = 1.0
    w = World(toy)

    async def script(call):
        for name in "abcde":
            await call("POST", "/widgets", json={"name": name})
        await w.sim.kernel.run_until(w.sim.now_us + MINUTE)
        page1, more1 = toy.feed.read(0, limit=3, page=1)
        page2, more2 = toy.feed.read(0, limit=3, page=2)
        return page1, more1, page2, more2

    page1, more1, page2, more2 = w.run(script)
    assert (more1, more2) == (True, False)
    assert sorted(e["id"] for e in page1 + page2) == sorted(["W1", "W2", "W3", "W4", "W5"] * 2)

"""The network: latency per direction, every fault kind, timeouts, copies."""

from decimal import Decimal

import pytest
import trio

from simulator import (
    MILLISECOND,
    SECOND,
    Actor,
    ConnectionRefused,
    Fixed,
    Request,
    RequestTimeout,
    Response,
    Simulation,
    Window,
)
from simulator.faults import ChaosProfile, LinkRule

MS = MILLISECOND


class Recorder(Actor):
    """Counts what it commits and remembers what arrived when."""

    def init_durable(self):
        return {"commits": 0, "arrivals": []}

    def handle(self, request):
        self.durable["commits"] += 1
        self.durable["arrivals"].append((self.now_us, request.json))
        return Response(200, {"commit": self.durable["commits"]})


def world(*links, windows=(), keep_trace=True):
    profile = ChaosProfile("test", links=tuple(links), windows=tuple(windows))
    sim = Simulation(11, chaos=profile, keep_trace=keep_trace)
    server = sim.add(Recorder("server"))
    return sim, server


def events(sim, kind):
    import json

    return [json.loads(line) for line in sim.trace.lines[1:] if f'"kind":"{kind}"' in line]


def test_latency_is_drawn_per_direction_of_travel():
    sim, server = world(
        LinkRule(src="client", dst="server", latency=Fixed(1 * MS)),
        LinkRule(src="server", dst="client", latency=Fixed(5 * MS)),
    )

    async def main():
        sim.start_all()
        r = await sim.network.request("client", "server", Request("GET", "/x"))
        return r.status, sim.now_us

    assert sim.run(main) == (200, 6 * MS)
    assert server.durable["arrivals"] == [(1 * MS, None)]


def test_partition_window_acts_exactly_inside_the_window():
    # Messages are dropped if sent or arriving inside [10s, 20s).
    sim, server = world(
        LinkRule(latency=Fixed(1 * MS)),
        windows=[Window("partition", 10 * SECOND, 20 * SECOND, between=("server", "client"))],
    )
    sends = {
        "arrives just before": 10 * SECOND - 1 * MS - 1,
        "arrives at start": 10 * SECOND - 1 * MS,
        "sent at start": 10 * SECOND,
        "sent at last us": 20 * SECOND - 1,
        "sent at end": 20 * SECOND,
    }

    async def main():
        sim.start_all()
        for tag, t in sends.items():
            sim.kernel.call_at(t, sim.network.post, "client", "server", Request("POST", "/m", json=tag))
        await sim.kernel.run_until(30 * SECOND)

    sim.run(main)
    assert [body for _, body in server.durable["arrivals"]] == ["arrives just before", "sent at end"]
    assert len(events(sim, "fault.partition")) == 3


def test_partition_blocks_both_directions_so_a_committed_write_times_out():
    sim, server = world(
        LinkRule(latency=Fixed(10 * MS)),
        windows=[Window("partition", 15 * MS, SECOND, between=("client", "server"))],
    )

    async def main():
        sim.start_all()
        with pytest.raises(RequestTimeout):
            await sim.network.request("client", "server", Request("POST", "/w"), timeout_us=2 * SECOND)
        return sim.now_us

    assert sim.run(main) == 2 * SECOND
    assert server.durable["commits"] == 1  # the request got through before the cut


def test_response_lost_after_commit_leaves_the_effect_and_the_caller_times_out():
    sim, server = world(LinkRule(latency=Fixed(1 * MS), response_loss=1))

    async def main():
        sim.start_all()
        with pytest.raises(RequestTimeout) as info:
            await sim.network.request("client", "server", Request("POST", "/pay", json={"amount": "10.00"}), timeout_us=3 * SECOND)
        return info.value, sim.now_us

    err, t = sim.run(main)
    assert t == 3 * SECOND
    assert (err.src, err.dst) == ("client", "server")
    assert server.durable["commits"] == 1
    assert server.durable["arrivals"] == [(1 * MS, {"amount": "10.00"})]
    lost = events(sim, "fault.response_lost")
    assert len(lost) == 1 and lost[0]["data"]["status"] == 200
    assert len(events(sim, "net.timeout")) == 1


def test_request_lost_never_reaches_the_endpoint():
    sim, server = world(LinkRule(latency=Fixed(1 * MS), request_loss="100%"))

    async def main():
        sim.start_all()
        with pytest.raises(RequestTimeout):
            await sim.network.request("client", "server", Request("POST", "/pay"), timeout_us=SECOND)

    sim.run(main)
    assert server.durable["commits"] == 0
    assert len(events(sim, "fault.request_lost")) == 1


def test_duplicated_request_is_handled_twice_but_answered_once():
    sim, server = world(LinkRule(latency=Fixed(1 * MS), duplicate=1, duplicate_delay=50 * MS))

    async def main():
        sim.start_all()
        r = await sim.network.request("client", "server", Request("POST", "/pay"))
        await sim.kernel.run_until(SECOND)
        return r.json

    assert sim.run(main) == {"commit": 1}
    assert server.durable["commits"] == 2
    responses = events(sim, "net.response")
    assert [("dropped" in e["data"]) for e in responses] == [False, True]
    assert [e["data"].get("copy", 0) for e in events(sim, "net.request")] == [0, 1]


def test_hold_window_releases_held_messages_at_its_end_in_send_order():
    sim, server = world(
        LinkRule(latency=Fixed(1 * MS)),
        windows=[Window("hold", 10 * SECOND, 20 * SECOND, between=("client", "server"))],
    )

    async def main():
        sim.start_all()
        for i, t in enumerate([9 * SECOND, 12 * SECOND, 15 * SECOND, 19 * SECOND, 21 * SECOND]):
            sim.kernel.call_at(t, sim.network.post, "client", "server", Request("POST", "/m", json=i))
        await sim.kernel.run_until(30 * SECOND)

    sim.run(main)
    assert server.durable["arrivals"] == [
        (9 * SECOND + 1 * MS, 0),
        (20 * SECOND, 1),
        (20 * SECOND, 2),
        (20 * SECOND, 3),
        (21 * SECOND + 1 * MS, 4),
    ]


def test_reordering_lets_later_messages_overtake_but_loses_none():
    sim, server = world(LinkRule(latency=Fixed(1 * MS), reorder="50%", reorder_delay=2 * SECOND))

    async def main():
        sim.start_all()
        for i in range(40):
            sim.kernel.call_at(i * 10 * MS, sim.network.post, "client", "server", Request("POST", "/m", json=i))
        await sim.kernel.run_until(10 * SECOND)

    sim.run(main)
    arrived = [body for _, body in server.durable["arrivals"]]
    assert sorted(arrived) == list(range(40))
    assert arrived != list(range(40))
    for t, i in server.durable["arrivals"]:
        assert t >= i * 10 * MS + 1 * MS
    assert 5 <= len(events(sim, "fault.reorder")) <= 35


def test_a_request_to_a_stopped_endpoint_is_refused():
    sim, server = world(LinkRule(latency=Fixed(2 * MS)))

    async def main():
        with pytest.raises(ConnectionRefused, match="not running"):
            await sim.network.request("client", "server", Request("GET", "/x"))
        return sim.now_us

    assert sim.run(main) == 4 * MS
    assert server.durable["commits"] == 0


def test_a_caller_that_gives_up_abandons_the_exchange_cleanly():
    sim, server = world(LinkRule(latency=Fixed(5 * SECOND)))

    async def main():
        sim.start_all()
        with trio.move_on_after(1):
            await sim.network.request("client", "server", Request("POST", "/slow"))
        await sim.kernel.run_until(20 * SECOND)
        return sim.network.in_flight

    assert sim.run(main) == 0
    assert server.durable["commits"] == 1
    late = events(sim, "net.response")
    assert len(late) == 1 and late[0]["data"]["dropped"] == "caller no longer waiting"
    assert events(sim, "net.timeout") == []


def test_bodies_are_copied_so_no_object_is_shared():
    sim, server = world(LinkRule(latency=Fixed(1 * MS)))
    sent = {"lines": [{"amount": "1.00"}]}

    async def main():
        sim.start_all()
        await sim.network.request("client", "server", Request("POST", "/x", json=sent))
        sent["lines"].append({"amount": "2.00"})

    sim.run(main)
    received = server.durable["arrivals"][0][1]
    assert received == {"lines": [{"amount": "1.00"}]}
    assert received is not sent


def test_floats_and_non_json_values_are_refused_at_the_sender():
    sim, _ = world(LinkRule(latency=Fixed(1 * MS)))

    async def main():
        sim.start_all()
        with pytest.raises(ValueError, match="decimal strings"):
            await sim.network.request("client", "server", Request("POST", "/x", json={"amount": 10.5}))
        with pytest.raises(TypeError, match="not JSON data"):
            await sim.network.request("client", "server", Request("POST", "/x", json={"amount": Decimal("10.50")}))

    sim.run(main)


def test_correlation_and_causation_ids_come_from_headers():
    sim, _ = world(LinkRule(latency=Fixed(1 * MS)))

    async def main():
        sim.start_all()
        await sim.network.request(
            "client", "server", Request("POST", "/x", headers={"X-Correlation-Id": "deal-42", "X-Causation-Id": "evt-7"})
        )

    sim.run(main)
    (req,) = events(sim, "net.request")
    (resp,) = events(sim, "net.response")
    assert (req["src"], req["dst"], req["corr"], req["cause"]) == ("client", "server", "deal-42", "evt-7")
    assert (resp["src"], resp["dst"], resp["corr"]) == ("server", "client", "deal-42")
    assert req["data"]["headers"]["x-correlation-id"] == "deal-42"


def test_slow_window_delays_responses_from_its_target():
    sim, _ = world(
        LinkRule(latency=Fixed(1 * MS)),
        windows=[Window("slow", 0, 10 * SECOND, target="server", delay=45 * SECOND)],
    )

    async def main():
        sim.start_all()
        with pytest.raises(RequestTimeout):
            await sim.network.request("client", "server", Request("GET", "/x"), timeout_us=30 * SECOND)
        r = await sim.network.request("client", "server", Request("GET", "/x"), timeout_us=90 * SECOND)
        return r.status, sim.now_us

    status, t = sim.run(main)
    assert status == 200
    assert t == 30 * SECOND + 1 * MS + 1 * MS  # the second call starts after the window


def test_heal_ends_windows_and_rates_but_keeps_latency():
    sim, server = world(
        LinkRule(latency=Fixed(3 * MS), request_loss=1),
        windows=[Window("partition", 0, 3600 * SECOND, between=("client", "server"))],
    )

    async def main():
        sim.start_all()
        sim.heal()
        r = await sim.network.request("client", "server", Request("GET", "/x"))
        return r.status, sim.now_us

    assert sim.run(main) == (200, 6 * MS)

"""The topology folded from events: links, faults, nodes."""

from simulator import HOUR, MINUTE, SECOND
from tui.event_index import EventIndex
from tui.world_view import WorldView

SYSTEMS = ["billing", "crm", "erp", "expenses", "hris", "psa", "revenue"]
HEADER = {"chaos": {"name": "none"}}


def ev(t, what, src=None, dst=None, corr=None, **data):
    return {"t": t, "kind": what, "src": src, "dst": dst, "corr": corr, "cause": None, "seq": 0, "data": data}


def fold(events, at=None):
    index = EventIndex(None, HEADER)
    for e in events:
        index.append(e, 0)
    view = WorldView(HEADER, center="core", systems=SYSTEMS)
    for row in index.rows(0, len(index)):
        view.apply(row)
    return view.picture(at)


def test_an_exchange_is_in_flight_until_its_answer():
    start = [ev(0, "actor.start", "core"), ev(10, "net.request", "core", "erp", msg="m1", method="GET", path="/x")]
    pic = fold(start)
    assert pic.link("core", "erp").in_flight == 1
    pic = fold(start + [ev(20, "net.response", "erp", "core", msg="m1", status=200)])
    link = pic.link("core", "erp")
    assert (link.in_flight, link.exchanges, link.errors) == (0, 1, 0)
    assert pic.node("core").state == "running"


def test_errors_count_over_the_last_hour():
    events = []
    for k in range(4):
        t = k * SECOND
        events.append(ev(t, "net.request", "core", "psa", msg=f"m{k}", method="POST", path="/p"))
        events.append(ev(t + 1, "net.response", "psa", "core", msg=f"m{k}", status=503 if k == 0 else 201))
    link = fold(events).link("core", "psa")
    assert link.error_rate == 0.25
    # an hour later the old errors no longer count
    later = fold(events + [ev(2 * HOUR, "actor.start", "crm")]).link("core", "psa")
    assert later.recent_errors == 0 and later.errors == 1


def test_a_partition_and_an_outage_are_shown_while_their_windows_are_open():
    events = [
        ev(0, "chaos.inject", kind="partition", start="1m", end="1h1m", between=["core", "erp"]),
        ev(0, "chaos.inject", kind="outage", start="0s", end="2h", target="billing"),
        ev(MINUTE, "fault.partition", "core", "erp", msg="m9", method="GET", path="/x"),
    ]
    pic = fold(events)
    assert pic.link("core", "erp").partitioned_until == HOUR + MINUTE
    assert pic.node("billing").outage == 2 * HOUR
    assert {f.kind for f in pic.faults} == {"partition", "outage"}
    assert dict(pic.fault_counts) == {"partition": 1}
    # after the window ends -- or the harness heals everything -- they are gone
    assert fold(events, at=3 * HOUR).faults == ()
    healed = fold(events + [ev(30 * MINUTE, "chaos.heal", scope="network")])
    assert healed.faults == () and healed.healed_at == 30 * MINUTE


def test_a_crashed_core_is_down_until_it_restarts():
    events = [ev(0, "actor.start", "core"), ev(5, "fault.crash", actor="core", why="injected"),
              ev(5, "actor.crash", "core", generation=1, reason="chaos")]
    pic = fold(events)
    assert pic.node("core").state == "crashed"
    assert [f.kind for f in pic.faults] == ["crash"]
    pic = fold(events + [ev(MINUTE, "actor.restart", "core", generation=2)])
    assert pic.node("core").state == "running" and pic.faults == ()


def test_a_slow_window_raises_a_systems_latency():
    pic = fold([ev(0, "chaos.inject", kind="slow", start="0s", end="1h", target="erp", delay="45s")])
    assert pic.node("erp").slow == 45 * SECOND

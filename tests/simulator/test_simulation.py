"""The Simulation bundle: observers, canonical trace lines, injection, heal."""

import json

import trio

from simulator import (
    HOUR,
    MINUTE,
    SECOND,
    Actor,
    NetworkError,
    Request,
    Response,
    Simulation,
    Window,
    canonical_json,
    load_profile,
    swarm_profile,
)
from simulator.faults import ProcessFaults


class Echo(Actor):
    def handle(self, request):
        return Response(200, {"echo": request.json, "path": request.path}, {"X-Served-By": self.name})


def busy(sim, n=60):
    async def main():
        sim.start_all()
        for i in range(n):
            try:
                await sim.network.request(
                    "client", "echo", Request("POST", f"/m/{i}", {"q": "ü"}, {"X-Correlation-Id": f"c{i}"}, {"i": i, "s": "naïve"}),
                    timeout_us=5 * SECOND,
                )
            except NetworkError:
                pass
        await sim.kernel.run_until(sim.now_us + MINUTE)

    return main


def test_every_trace_line_is_canonical_json():
    # The network splices pre-encoded bodies into trace lines for speed; the
    # result must be exactly what encoding the whole event would give.
    sim = Simulation(9, chaos=load_profile("harsh"), keep_trace=True)
    sim.add(Echo("echo"))
    sim.run(busy(sim))
    kinds = set()
    for line in sim.trace.lines[:-1]:
        text = line.rstrip("\n")
        assert canonical_json(json.loads(text)) == text
        kinds.add(json.loads(text).get("kind"))
    assert {"net.request", "net.response", "fault.request_lost", "fault.response_lost"} <= kinds


def test_observers_see_every_event_as_recorded():
    sim = Simulation(4, chaos=load_profile("default"), keep_trace=True)
    sim.add(Echo("echo"))
    seen = []
    sim.subscribe(seen.append)
    sim.run(busy(sim, 10))
    recorded = [json.loads(line) for line in sim.trace.lines[1:-1]]
    assert seen == recorded
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))


def test_injected_partition_cuts_then_heals():
    sim = Simulation(2, keep_trace=True)
    sim.add(Echo("echo"))
    results = []

    async def main():
        sim.start_all()
        sim.inject(Window("partition", sim.now_us, sim.now_us + 2 * HOUR, between=("client", "echo")))
        for _ in range(2):
            try:
                await sim.network.request("client", "echo", Request("GET", "/x"), timeout_us=10 * SECOND)
                results.append("ok")
            except NetworkError as exc:
                results.append(type(exc).__name__)
        await sim.kernel.run_until(3 * HOUR)
        r = await sim.network.request("client", "echo", Request("GET", "/x"))
        results.append(r.status)

    sim.run(main)
    assert results == ["RequestTimeout", "RequestTimeout", 200]


def test_heal_restarts_crashed_actors_and_stops_further_crashes():
    profile = swarm_profile(1, HOUR, ["echo"])
    profile = type(profile)(
        "crashy", process=ProcessFaults(actors=("echo",), crash_every=10 * MINUTE, restart_after=HOUR)
    )
    sim = Simulation(3, chaos=profile, keep_trace=True)
    echo = sim.add(Echo("echo"))

    async def main():
        sim.start_all()
        await sim.kernel.run_until(6 * HOUR)
        crashes_before = sim.trace.kind_counts.get("fault.crash", 0)
        sim.heal()
        state_after_heal = echo.state
        await sim.kernel.run_until(30 * HOUR)
        return crashes_before, state_after_heal, sim.trace.kind_counts.get("fault.crash", 0)

    before, state, after = sim.run(main)
    assert before >= 2
    assert state == "running"
    assert after == before


def test_an_injected_link_rule_loses_answers_after_the_callee_acted_until_the_world_heals():
    from simulator.faults import LinkRule

    class Counter(Actor):
        def init_durable(self):
            return {"n": 0}

        def handle(self, request):
            self.durable["n"] += 1
            return Response(200, {"n": self.durable["n"]})

    sim = Simulation(4, keep_trace=True)
    counter = sim.add(Counter("ledger"))
    outcomes = []

    async def ask():
        try:
            await sim.network.request("client", "ledger", Request("POST", "/n"), timeout_us=10 * SECOND)
            return "answered"
        except NetworkError:
            return "lost"

    async def main():
        sim.start_all()
        sim.inject_link(LinkRule(src="client", dst="ledger", response_loss="100%"))
        outcomes.append([await ask() for _ in range(3)])
        sim.heal()
        outcomes.append([await ask() for _ in range(3)])

    sim.run(main)
    assert outcomes == [["lost"] * 3, ["answered"] * 3]
    assert counter.durable["n"] == 6  # the lost answers' requests were served all the same
    assert sim.trace.kind_counts["fault.response_lost"] == 3
    injected = [json.loads(line) for line in sim.trace.lines if '"kind":"chaos.inject"' in line]
    assert [e["data"]["link"]["response_loss"] for e in injected] == ["1"]


def test_an_injected_lost_answer_takes_the_next_successful_write_once_and_ends_with_healing():
    class Ledger(Actor):
        def init_durable(self):
            return {"n": 0}

        def handle(self, request):
            if request.path == "/refuse":
                return Response(409, {"error": "closed"})
            if request.method == "POST":
                self.durable["n"] += 1
            return Response(200, {"n": self.durable["n"]})

    sim = Simulation(4, keep_trace=True)
    ledger = sim.add(Ledger("ledger"))

    async def ask(method, path="/n"):
        try:
            await sim.network.request("client", "ledger", Request(method, path), timeout_us=10 * SECOND)
            return "answered"
        except NetworkError:
            return "lost"

    async def main():
        sim.start_all()
        sim.inject_lost_answer("ledger", "client", ("POST",))
        sim.inject_lost_answer("ledger", "client", ("POST",))
        # A read, and a write the ledger refused, are not what was asked
        # for: the first two committed writes lose their answers, once each.
        first = [await ask("GET"), await ask("POST", "/refuse"), await ask("POST"), await ask("POST"),
                 await ask("POST")]
        sim.inject_lost_answer("ledger", "client", ("POST",))
        sim.heal()
        return first, await ask("POST")

    first, after_heal = sim.run(main)
    assert first == ["answered", "answered", "lost", "lost", "answered"]
    assert after_heal == "answered"  # healing voids a loss not yet taken
    assert ledger.durable["n"] == 4  # the lost answers' writes were done all the same
    lost = [json.loads(line) for line in sim.trace.lines if '"kind":"fault.response_lost"' in line]
    assert [(e["src"], e["dst"], e["data"]["status"], e["data"]["injected"]) for e in lost] == \
        [("ledger", "client", 200, True)] * 2
    injected = [json.loads(line) for line in sim.trace.lines if '"kind":"chaos.inject"' in line]
    assert [e["data"]["lose_next_answer"]["methods"] for e in injected] == [["POST"]] * 3


def test_a_lost_answer_cannot_be_injected_once_the_world_is_healed():
    import pytest

    sim = Simulation(4)
    sim.heal()
    with pytest.raises(RuntimeError, match="healed"):
        sim.inject_lost_answer("ledger", "client", ("POST",))


def test_injected_vendor_faults_lay_over_the_profile_and_end_with_healing():
    import pytest

    from simulator.faults import SystemFaults

    profile = load_profile("default")
    sim = Simulation(5, chaos=profile, keep_trace=True)
    before = sim.chaos.system("erp")
    merged = sim.inject_system("erp", SystemFaults(rate_limit=4, concurrency_limit=1))
    assert (merged.rate_limit, merged.concurrency_limit, merged.error_5xx) == (4, 1, before.error_5xx)
    assert sim.chaos.system("erp") == merged and sim.chaos.system("psa") == profile.system("psa")
    # a second injection changes only what it names
    again = sim.inject_system("erp", SystemFaults(rate_limit=9))
    assert (again.rate_limit, again.concurrency_limit) == (9, 1)
    with pytest.raises(ValueError, match="clock skew"):
        sim.inject_system("erp", SystemFaults(clock_skew=5 * SECOND))
    assert [json.loads(l)["data"]["system"] for l in sim.trace.lines if '"kind":"chaos.inject"' in l] == ["erp", "erp"]
    sim.heal()
    with pytest.raises(RuntimeError, match="healed"):
        sim.inject_system("erp", SystemFaults(rate_limit=1))

"""The simulation thread under the UI's hand: pausing, stepping and seeking
never change what the world does; commands land between events."""

import threading
import time

import pytest

from harness.runner import run_world
from simulator import HOUR
from tui.host import Mode, WorldHost
from tui.steering import ChaosOrder
from tui.world_plan import plan_live

from .helpers import DLQ_CORE, SMALL_WORLD


class Driven:
    """A host and a way to wait for what it publishes."""

    def __init__(self, tmp_path, core=None, **kwargs):
        self.changed = threading.Event()
        self.host = WorldHost(plan_live(SMALL_WORLD, 3, None, core), spool=tmp_path / "spool.jsonl",
                              on_update=self.changed.set, **kwargs)

    def wait(self, condition, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not condition(self.host.status):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; status {self.host.status}")
            self.changed.wait(0.05)
            self.changed.clear()
        return self.host.status

    def parked(self, status):
        return status.parked is not None and status.mode == Mode.PAUSED


@pytest.fixture
def driven(tmp_path):
    d = Driven(tmp_path)
    yield d
    d.host.stop()


def test_a_live_run_steered_only_in_time_writes_the_same_trace_as_syncbed_run(driven):
    expected = run_world(SMALL_WORLD, 3, None)["trace_sha256"]
    host = driven.host
    host.start()
    first = driven.wait(driven.parked)
    for _ in range(3):  # exactly one event per step
        before = host.status.events
        host.step()
        assert driven.wait(lambda s: driven.parked(s) and s.events > before).events == before + 1
    host.next_business()
    s = driven.wait(lambda s: driven.parked(s) and s.events > first.events + 3)
    assert s.note.startswith("business event")
    target = s.t + HOUR
    host.seek(target)
    s = driven.wait(lambda s: driven.parked(s) and s.note.startswith("arrived"))
    assert s.t == target  # the clock stops at the target, even where nothing happens then
    with pytest.raises(ValueError, match="only goes forward"):
        host.seek(0)
    for _ in range(3):
        host.slower()
    assert host.status.speed == "10s/s"
    host.play()  # paced; the next event is minutes away, and the clock ticks on towards it
    arrived = s
    s = driven.wait(lambda s: s.mode == Mode.PLAYING and s.parked == "clock" and s.t > arrived.t)
    assert s.events == arrived.events
    host.pause()
    driven.wait(driven.parked)
    for _ in range(6):
        host.faster()
    assert host.status.speed == "max"
    host.play()
    s = driven.wait(lambda s: s.finished, timeout=60)
    assert s.fingerprint == expected
    assert s.note == "run finished: all invariants hold"
    assert host.samples[-1].final and all(i.ok for i in host.samples[-1].invariants)
    assert len(host.index) == host.built.sim.trace.seq


def test_chaos_lands_between_events_and_is_in_the_trace(driven):
    host = driven.host
    host.start()
    driven.wait(driven.parked)
    host.inject(ChaosOrder("partition", "erp", HOUR))
    host.inject(ChaosOrder("slow", "psa", HOUR, 45_000_000))
    host.inject(ChaosOrder("crash", "core", 60_000_000))
    s = driven.wait(lambda s: s.parked == "clock" and "crash core" in s.note)
    assert "partition core ⇄ erp for 1h" in s.note
    kinds = host.index.kind
    injected = [host.index.facts[i]["w"] for i in range(len(kinds)) if kinds[i] == "chaos.inject"]
    assert {"kind": "partition", "between": ["core", "erp"], "start": s.t, "end": s.t + HOUR} in [
        dict(w, start=_us(w["start"]), end=_us(w["end"])) for w in injected
    ]
    assert any(w["kind"] == "slow" and w["target"] == "psa" for w in injected)
    host.step(5)
    driven.wait(lambda s: driven.parked(s) and "fault.crash" in host.index.kind)


def _us(text):
    from simulator import parse_duration

    return parse_duration(text)


def test_a_dead_letter_replayed_after_the_end_is_settled_and_rechecked(tmp_path):
    d = Driven(tmp_path, core=DLQ_CORE, mode=Mode.PLAYING, speed=7)
    host = d.host
    try:
        host.start()
        d.wait(lambda s: s.finished)
        assert [q.key for q in host.samples[-1].queue("dlq")] == ["ob00000001"]
        assert [q.key for q in host.samples[-1].queue("exceptions")] == ["finance:ob00000002"]
        host.replay_dead_letter("ob00000001")
        d.wait(lambda s: s.note.startswith("settled"))
        assert host.samples[-1].queue("dlq") == []
        host.retry_exception("finance:ob00000002")
        d.wait(lambda s: s.note.startswith("settled") and not host.samples[-1].queue("exceptions"))
        done = [host.index.corr[i] for i, k in enumerate(host.index.kind) if k == "core.op.done"]
        assert done == ["ping:1", "post:1"]
    finally:
        host.stop()


def test_quitting_ends_the_thread_wherever_the_world_waits(tmp_path):
    for where in ("event", "clock"):
        d = Driven(tmp_path / where if (tmp_path / where).mkdir() is None else None)
        d.host.start()
        d.wait(lambda s: s.parked is not None)
        if where == "clock":
            d.host.inject(ChaosOrder("outage", "erp", HOUR))  # parks at the clock afterwards
            d.wait(lambda s: s.parked == "clock")
        d.host.stop(timeout=10)
        assert not d.host._thread.is_alive()
        assert d.host.status.ended

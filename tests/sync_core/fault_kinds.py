"""One fault kind at a time, as a chaos profile Hypothesis draws -- and the
trace evidence that it struck the flow under test.

The property tests in `test_fault_kinds` run one flow's small world under a
schedule of exactly one fault kind:

  ==============  ===========================================================
  response_lost   answers lost *after* the vendor committed: a hold on the
                  vendor->core link placed on one of the flow's own writes
                  and longer than the client's timeout (so that write's
                  answer comes too late, by construction), plus a drawn
                  response-loss rate on every link the flow writes over
  duplicate       every link the flow writes over (and, for a flow fed by
                  webhooks, its inbound link and the vendor's webhook
                  sender) delivers copies, at a drawn rate and delay
  reorder         the same links hold requests back, at a drawn rate, by up
                  to a drawn delay of a minute or two, so later ones overtake
                  them -- other calls, and the core's own retry of a call
                  held past the client's timeout
  rate_limit      one vendor the flow calls (drawn) answers 429 with
                  Retry-After past a drawn number of requests per drawn
                  window -- fewer than the flow itself sends it in one
  outage          one vendor the flow calls (drawn) is down for a window
                  that covers one of the flow's own calls (drawn), with a
                  drawn lead and length
  crash           the core crashes at one to three drawn instants of the
                  flow's own work (a call leaving, an answer arriving, a
                  drawn few ms later) for a drawn time, and maybe at random
                  on top (a drawn mean gap)
  ==============  ===========================================================

*Placing* a window on the flow's work needs to know when that work
happens: `Timeline` is read from a run of the same seed with no faults (the
weather alone, `BASE`). A window changes nothing before it opens -- no
random stream is shifted by a window -- so up to its start the faulted run
*is* that run, and a window opened on the k-th of the flow's calls there
meets that very call.

`Recorder` is a trace observer; `evidence(kind, ...)` reads it and names the
places the fault struck the flow's own operations (empty: it never did, and
the test says so instead of passing vacuously). `retry_after_broken` is the
429 kind's own property: no retry of a throttled call before the vendor's
Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st

from simulator import MINUTE, SECOND
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults, Window, ppm
from simulator.latency import LogNormal

__all__ = ["KINDS", "BY_CHANCE", "BASE", "Call", "Timeline", "Recorder", "Schedule", "profiles", "evidence",
           "retry_after_broken"]

KINDS = ("response_lost", "duplicate", "reorder", "rate_limit", "outage", "crash")
# Kinds no placement can aim at one call: whether a request is overtaken is
# up to the draw. An example of these where nothing was is rejected
# (`hypothesis.assume`) rather than failed; the rest are placed to strike.
BY_CHANCE = ("reorder",)
CORE = "core"
# The weather every schedule is laid over (and the no-fault run's): the
# built-in profiles' latency, no faults.
LATENCY = LogNormal(median_us=40_000, sigma_milli=500, cap_us=2 * SECOND)
BASE = ChaosProfile("base", "latency only", links=(LinkRule(latency=LATENCY),))
CLIENT_TIMEOUT_US = 30 * SECOND  # harness.core_host.NetworkClient's default
# The CRM family's limit is a 403 REQUEST_LIMIT_EXCEEDED with no Retry-After
# (fake_systems.crm): no "429 with Retry-After" to honour there.
NO_RETRY_AFTER = ("crm",)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


# ------------------------------------------------------------------ what the trace shows


@attrs.define
class Exchange:
    """One request over the network and what became of it."""

    msg: str
    src: str
    dst: str
    method: str
    path: str
    cause: str | None
    sent_us: int
    delivered_us: int | None = None  # first copy at the callee
    copies: int = 0  # deliveries beyond the first
    answered_us: int | None = None  # the answer reached a caller still waiting
    status: int | None = None
    late_status: int | None = None  # an answer that came after the caller gave up
    retry_after_s: float | None = None
    body: Any = None


class Recorder:
    """Trace observer: the exchanges, faults, crashes and outbox operations
    of one run, kept compact (`world.sim.trace.observers.append(rec)`)."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.op_of: dict[str, str] = {}  # outbox message -> operation
        self.done_us: dict[str, int] = {}  # outbox message -> when it completed
        self.faults: list[dict] = []
        self.crashes: list[int] = []
        self.restarts = 0

    def __call__(self, e: dict) -> None:
        kind = e["kind"]
        data = e["data"]
        if kind == "net.request":
            ex = self.exchanges.get(data["msg"])
            if ex is None:
                ex = self.exchanges[data["msg"]] = Exchange(
                    data["msg"], e["src"], e["dst"], data["method"], data["path"], e["cause"], data["sent"],
                    body=data.get("body"))
            if data.get("copy"):
                ex.copies += 1
            elif ex.delivered_us is None:
                ex.delivered_us = e["t"]
        elif kind == "net.response":
            ex = self.exchanges.get(data["msg"])
            if ex is None:
                return
            if "dropped" in data:
                ex.late_status = data["status"]
            else:
                ex.answered_us, ex.status = e["t"], data["status"]
                headers = data.get("headers") or {}
                wait = headers.get("retry-after", headers.get("x-ratelimit-reset"))
                if wait is not None:
                    ex.retry_after_s = float(wait)
        elif kind.startswith("core.op."):
            self.op_of[data["msg"]] = data["op"]
            if kind == "core.op.done":
                self.done_us[data["msg"]] = e["t"]
        elif kind.startswith("fault."):
            self.faults.append(e)
            if kind == "fault.crash" and data.get("actor") == CORE:
                self.crashes.append(e["t"])
        elif kind == "actor.restart" and e["src"] == CORE:
            self.restarts += 1

    # -------------------------------------------------------- views

    def calls(self, ops: frozenset[str]) -> list[Exchange]:
        """The core's requests made for the operations `ops`, in send order."""
        out = [x for x in self.exchanges.values()
               if x.src == CORE and x.cause is not None and self.op_of.get(x.cause) in ops]
        return sorted(out, key=lambda x: (x.sent_us, x.msg))

    def inbound(self, vendors: tuple[str, ...]) -> list[Exchange]:
        """What `vendors` pushed to the core (webhooks), in delivery order."""
        out = [x for x in self.exchanges.values() if x.dst == CORE and x.src in vendors and x.delivered_us is not None]
        return sorted(out, key=lambda x: (x.delivered_us, x.msg))


@attrs.frozen
class Call:
    """One of the flow's own calls in the no-fault run (times in us)."""

    vendor: str
    method: str
    path: str
    op: str
    sent_us: int
    delivered_us: int
    answered_us: int
    previous_delivery_us: int  # the last earlier request the vendor received (from anyone), or 0


@attrs.frozen
class Timeline:
    """Where the flow's work falls in the run with no faults, up to the
    script's end (after it the world is healed: no fault would fire)."""

    calls: tuple[Call, ...]
    vendors: tuple[str, ...]  # every vendor the flow calls
    write_vendors: tuple[str, ...]  # those it writes to
    inbound: tuple[str, ...]  # vendors whose webhooks feed the flow

    @classmethod
    def read(cls, rec: Recorder, ops: frozenset[str], script_ended_us: int, inbound: tuple[str, ...]) -> Timeline:
        deliveries: dict[str, list[int]] = {}
        for x in rec.exchanges.values():
            if x.delivered_us is not None:
                deliveries.setdefault(x.dst, []).append(x.delivered_us)
        for times in deliveries.values():
            times.sort()
        calls = []
        for x in rec.calls(ops):
            if x.delivered_us is None or x.answered_us is None or x.answered_us >= script_ended_us:
                continue
            earlier = [t for t in deliveries[x.dst] if t < x.delivered_us]
            calls.append(Call(x.dst, x.method, x.path, rec.op_of[x.cause], x.sent_us, x.delivered_us, x.answered_us,
                              earlier[-1] if earlier else 0))
        vendors = tuple(sorted({c.vendor for c in calls}))
        writes = tuple(sorted({c.vendor for c in calls if c.method in WRITES}))
        return cls(tuple(calls), vendors, writes, inbound)

    @property
    def writes(self) -> tuple[Call, ...]:
        return tuple(c for c in self.calls if c.method in WRITES)

    def bursts(self, window_us: int) -> dict[str, int]:
        """Vendor (one that sends Retry-After) -> the most of the flow's
        calls it received within one `window_us`, where that is 2 or more."""
        out = {}
        for vendor in self.vendors:
            if vendor in NO_RETRY_AFTER:
                continue
            times = [c.delivered_us for c in self.calls if c.vendor == vendor]
            most = max((sum(1 for u in times if t <= u < t + window_us) for t in times), default=0)
            if most >= 2:
                out[vendor] = most
        return out


# ------------------------------------------------------------------ schedules


@attrs.frozen(repr=False)
class Schedule:
    """A drawn seed and profile; its repr is a line of Python that rebuilds it."""

    seed: int
    profile: ChaosProfile

    def __repr__(self) -> str:
        return f"Schedule(seed={self.seed}, profile=ChaosProfile.from_dict({self.profile.to_dict()!r}))"


def _profile(kind: str, *, links=(), windows=(), systems=(), process=ProcessFaults()) -> ChaosProfile:
    return ChaosProfile(f"one-kind:{kind}", f"one fault kind ({kind}) over the base latency",
                        links=BASE.links + tuple(links), windows=tuple(windows), systems=tuple(systems),
                        process=process)


def _rate(lo_ppm: int, hi_ppm: int) -> st.SearchStrategy:
    return st.integers(lo_ppm, hi_ppm).map(ppm)


def _seconds(lo: int, hi: int) -> st.SearchStrategy:
    return st.integers(lo, hi).map(lambda s: s * SECOND)


def _flow_links(tl: Timeline, **faults) -> list[LinkRule]:
    """The fault on every link the flow writes over, and on the inbound
    links that feed it."""
    rules = [LinkRule(src=CORE, dst=v, **faults) for v in tl.write_vendors]
    return rules + [LinkRule(src=v, dst=CORE, **faults) for v in tl.inbound]


@st.composite
def _response_lost(draw, tl: Timeline) -> ChaosProfile:
    call = draw(st.sampled_from(tl.writes))
    hold = draw(_seconds(CLIENT_TIMEOUT_US // SECOND + 5, 600))
    rate = draw(_rate(0, 250_000))
    # The hold starts as that write's answer arrives: it waits past the
    # client's timeout, and arrives to a caller no longer listening.
    window = Window("hold", call.answered_us, call.answered_us + hold, between=(call.vendor, CORE))
    return _profile("response_lost", links=_flow_links(tl, response_loss=rate) if rate else (), windows=[window])


@st.composite
def _duplicate(draw, tl: Timeline) -> ChaosProfile:
    rate, delay = draw(_rate(500_000, 1_000_000)), draw(st.integers(0, 20_000) .map(lambda ms: ms * 1000))
    systems = [(v, SystemFaults(webhook_duplicate=rate)) for v in tl.inbound]
    return _profile("duplicate", links=_flow_links(tl, duplicate=rate, duplicate_delay=delay), systems=systems)


@st.composite
def _reorder(draw, tl: Timeline) -> ChaosProfile:
    # Up to a minute or so: past the client's timeout, so a request held
    # back is overtaken by its own retry (and what follows it) even in a
    # flow that keeps one call in flight per aggregate. No harder: with a
    # quarter of all answers late, an operation of a few calls spends its
    # twelve attempts (sync_core.retry) and is dead-lettered -- the retry
    # budget, not a defect.
    rate, delay = draw(_rate(200_000, 400_000)), draw(_seconds(40, 75))
    systems = [(v, SystemFaults(webhook_reorder=rate, webhook_delay=delay)) for v in tl.inbound]
    return _profile("reorder", links=_flow_links(tl, reorder=rate, reorder_delay=delay), systems=systems)


@st.composite
def _rate_limit(draw, tl: Timeline) -> ChaosProfile:
    window = draw(_seconds(5, 60))
    # A vendor the flow itself calls more often within one window than the
    # limit allows (in the no-fault run): the limit meets the flow's burst.
    bursts = tl.bursts(window) or tl.bursts(60 * SECOND)
    vendor = draw(st.sampled_from(sorted(bursts)))
    limit = draw(st.integers(1, min(3, bursts[vendor] - 1)))
    return _profile("rate_limit", systems=[(vendor, SystemFaults(rate_limit=limit, rate_limit_window=window))])


@st.composite
def _outage(draw, tl: Timeline) -> ChaosProfile:
    call = draw(st.sampled_from(tl.calls))
    # Opens between the vendor's previous request and this one (so the run
    # is the no-fault run until this call meets it), at most 30 min early.
    room = min(call.delivered_us - call.previous_delivery_us - 1, 30 * MINUTE)
    lead = room * draw(st.integers(0, 1000)) // 1000
    start = call.delivered_us - lead
    length = draw(_seconds(60, 4 * 3600))
    return _profile("outage", windows=[Window("outage", start, max(start + length, call.delivered_us + 1),
                                              target=call.vendor)])


@st.composite
def _crash(draw, tl: Timeline) -> ChaosProfile:
    instants = sorted({t for c in tl.calls for t in (c.sent_us, c.answered_us)})
    picked = draw(st.lists(st.sampled_from(instants), min_size=1, max_size=3, unique=True))
    windows, free_at = [], 0
    for t in sorted(picked):
        start = max(t + draw(st.integers(0, 50_000)), free_at)  # up to 50 ms after it; never while down
        end = start + draw(_seconds(1, 300))
        windows.append(Window("crash", start, end, target=CORE))
        free_at = end + 1
    process = ProcessFaults()
    if draw(st.booleans()):
        process = ProcessFaults(actors=(CORE,), crash_every=draw(st.integers(5, 180)) * MINUTE,
                                restart_after=draw(_seconds(1, 120)))
    return _profile("crash", windows=windows, process=process)


_STRATEGIES: dict[str, Callable[[Timeline], st.SearchStrategy]] = {
    "response_lost": _response_lost, "duplicate": _duplicate, "reorder": _reorder,
    "rate_limit": _rate_limit, "outage": _outage, "crash": _crash,
}


def profiles(kind: str, tl: Timeline) -> st.SearchStrategy[ChaosProfile]:
    """Profiles of fault kind `kind` placed on the flow's work in `tl`."""
    if kind not in _STRATEGIES:
        raise ValueError(f"fault kind {kind!r}: not one of {', '.join(KINDS)}")
    return _STRATEGIES[kind](tl)


# ------------------------------------------------------------------ did it strike?


def _where(x: Exchange, rec: Recorder) -> str:
    op = rec.op_of.get(x.cause or "", "webhook")
    return f"{x.method} {x.dst if x.src == CORE else CORE + ' from ' + x.src} {x.path} ({op}, {x.msg})"


def _overtaken(x: Exchange, others: list[Exchange]) -> bool:
    return x.delivered_us is not None and any(
        y.sent_us > x.sent_us and y.delivered_us is not None and y.delivered_us < x.delivered_us for y in others)


def _event_number(x: Exchange) -> int:
    body = x.body if isinstance(x.body, dict) else json.loads(x.body) if isinstance(x.body, str) else {}
    digits = "".join(ch for ch in str(body.get("id", "")) if ch.isdigit())
    return int(digits or 0)


def evidence(kind: str, rec: Recorder, ops: frozenset[str], tl: Timeline) -> list[str]:
    """Where fault `kind` struck the flow's own operations (or, for a flow
    fed by webhooks, its inbound deliveries); empty if it never did. `tl`:
    the flow's work in the no-fault run."""
    inbound = tl.inbound
    calls = rec.calls(ops)
    faulted: dict[str, set[str]] = {}
    for f in rec.faults:
        msg = f["data"].get("msg")
        if msg is not None:
            faulted.setdefault(f["kind"], set()).add(msg)
    hits: list[str] = []
    if kind == "response_lost":
        lost = faulted.get("fault.response_lost", set())
        for x in calls + rec.inbound(inbound):
            write = x.method in WRITES
            if write and x.msg in lost and x.late_status is None and x.answered_us is None:
                hits.append(f"the answer to {_where(x, rec)} was lost after the vendor acted")
            elif write and x.late_status is not None and x.late_status < 300:
                hits.append(f"{_where(x, rec)} committed ({x.late_status}); the answer came after the core gave up")
    elif kind == "duplicate":
        for x in calls + rec.inbound(inbound):
            if x.method in WRITES and x.copies:
                hits.append(f"{_where(x, rec)} was delivered {1 + x.copies} times")
        hits += [f"{f['src']} sent webhook event {f['data']['event']} twice" for f in rec.faults
                 if f["kind"] == "fault.webhook_duplicate" and f["src"] in inbound]
    elif kind == "reorder":
        reordered = faulted.get("fault.reorder", set())
        by_vendor: dict[str, list[Exchange]] = {}
        for x in rec.exchanges.values():
            if x.src == CORE:
                by_vendor.setdefault(x.dst, []).append(x)
        for x in calls:
            if x.msg in reordered and _overtaken(x, by_vendor[x.dst]):
                hits.append(f"{_where(x, rec)} was held back and overtaken by a later request")
        pushed = rec.inbound(inbound)
        for a, b in zip(pushed, pushed[1:]):
            if _event_number(b) and _event_number(a) > _event_number(b):
                hits.append(f"webhook {a.msg} (event {_event_number(a)}) reached the core before {b.msg} "
                            f"(event {_event_number(b)})")
    elif kind == "rate_limit":
        for x in calls:
            if x.status == 429 and x.retry_after_s is not None:
                hits.append(f"{_where(x, rec)} was answered 429, Retry-After {x.retry_after_s:g}s")
    elif kind == "outage":
        for x in calls:
            if x.status == 503:
                hits.append(f"{_where(x, rec)} was answered 503 (the vendor was down)")
    elif kind == "crash":
        # Amid the flow's work: once it had begun (its first call in the
        # no-fault run: a crash at that instant stops the call leaving) and
        # before its last operation completed.
        if rec.restarts and calls and tl.calls:
            begun = tl.calls[0].sent_us
            finished = max((rec.done_us[m] for m in {x.cause for x in calls} if m in rec.done_us), default=begun)
            hits += [f"the core crashed at {t}us, amid the flow's work ({begun}..{finished}us)"
                     for t in rec.crashes if begun <= t <= finished]
    else:
        raise ValueError(f"fault kind {kind!r}: not one of {', '.join(KINDS)}")
    return hits


def retry_after_broken(rec: Recorder, ops: frozenset[str]) -> list[str]:
    """Throttled calls tried again sooner than the vendor's Retry-After said:
    after each 429, the operation's next request to that vendor leaves no
    earlier than the answer's arrival plus Retry-After."""
    calls = rec.calls(ops)
    bad = []
    for x in calls:
        if x.status != 429 or x.retry_after_s is None:
            continue
        allowed = x.answered_us + int(x.retry_after_s * SECOND)
        after = [y for y in calls if y.cause == x.cause and y.dst == x.dst and y.sent_us >= x.answered_us
                 and y.msg != x.msg]
        if after and after[0].sent_us < allowed:
            bad.append(f"{_where(x, rec)}: 429 at {x.answered_us}us with Retry-After {x.retry_after_s:g}s, "
                       f"tried again at {after[0].sent_us}us ({_where(after[0], rec)})")
    return bad

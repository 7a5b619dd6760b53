"""The simulated network: named endpoints, HTTP-shaped exchanges, faults.

An *exchange* is one request and (unless it is a one-way post) its response.
Every message travels as a kernel event after a latency drawn for its
direction of travel; on the way the link's faults may lose it, duplicate it,
delay it past later messages, hold it, or drop it in a partition. The
response can be lost *after* the callee committed -- the fault that makes
idempotency matter. Every fault that fires is a trace event.

Each fault kind on each link draws from its own random stream, so switching
one fault off (as shrinking does) leaves every other draw where it was.

Trace events written here (src/dst are the message's, corr/cause come from
the ``x-correlation-id`` / ``x-causation-id`` headers):

  net.request    a request delivered to its callee
  net.response   a response delivered to its caller (``dropped`` says why
                 one was not used: the caller timed out, gave up, or already
                 had an answer from a duplicate)
  net.refused    a request reached an endpoint that is not running
  net.timeout    the caller's timeout expired first
  fault.*        request_lost, response_lost, duplicate, reorder, hold,
                 partition, slow
"""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from .clock import SECOND
from .faults import ChaosProfile, Window
from .messages import (
    ConnectionRefused,
    NetworkError,
    Request,
    RequestTimeout,
    Response,
    _trusted_request,
    _trusted_response,
    decode_body,
    encode_body,
)
from .trace import quote, quote_id

__all__ = ["Network", "DEFAULT_TIMEOUT_US"]

DEFAULT_TIMEOUT_US = 30 * SECOND

ReplyCallback = Callable[[Any], None]  # receives a Response or a NetworkError
_WAITING_TASK: ReplyCallback = lambda result: None  # marker: Exchange.task gets the reply


class _Link:
    """Resolved faults and random streams for messages from src to dst."""

    __slots__ = ("src", "dst", "faults", "callee", "lat", "req_loss", "resp_loss", "dup", "reorder", "slow", "partitions", "holds")

    def __init__(self, src: str, dst: str, chaos: ChaosProfile, streams, windows) -> None:
        self.src = src
        self.dst = dst
        name = f"net.{src}->{dst}."
        self.lat = streams.rng(name + "latency")
        self.req_loss = streams.rng(name + "request_loss")
        self.resp_loss = streams.rng(name + "response_loss")
        self.dup = streams.rng(name + "duplicate")
        self.reorder = streams.rng(name + "reorder")
        self.slow = streams.rng(name + "slow")
        self.refresh(chaos, windows)

    def refresh(self, chaos: ChaosProfile, windows) -> None:
        """Re-read the faults in force (after an injection or a heal); the
        random streams stay where they are. Exchanges in flight hold their
        links, so they see the change too."""
        src, dst = self.src, self.dst
        self.faults = chaos.link_faults(src, dst)
        self.callee = chaos.system(dst)
        self.partitions = [w for w in windows if w.kind == "partition" and _pair_matches(w.between, src, dst)]
        self.holds = [
            w
            for w in windows
            if w.kind == "hold"
            and fnmatch.fnmatchcase(src, w.between[0])
            and fnmatch.fnmatchcase(dst, w.between[1])
        ]


def _pair_matches(between: tuple[str, str], a: str, b: str) -> bool:
    x, y = between
    m = fnmatch.fnmatchcase
    return (m(a, x) and m(b, y)) or (m(a, y) and m(b, x))


class _Exchange:
    __slots__ = (
        "id", "src", "dst", "method", "path", "query", "headers", "body", "first_copy",
        "on_reply", "task", "network", "link", "back", "done", "corr", "cause", "sent", "head", "ids",
    )

    def __init__(self, mid, src, dst, request: Request, body: str, on_reply, sent: int) -> None:
        self.id = mid
        self.src = src
        self.dst = dst
        self.method = request.method
        self.path = request.path
        self.query = dict(request.query)
        self.headers = dict(request.headers)
        self.body = body
        # Decoded at send time so a body that is not JSON data fails in the
        # sender's code, not later inside a kernel event; the first delivery
        # uses this copy, a duplicate decodes its own.
        self.first_copy = decode_body(body)
        self.on_reply = on_reply
        self.task = None  # a trio task waiting in Network.request
        self.network = None
        self.link = None  # src->dst and dst->src, resolved once
        self.back = None
        self.done = False
        self.corr = self.headers.get("x-correlation-id")
        self.cause = self.headers.get("x-causation-id")
        self.sent = sent
        self.ids = None
        # The request's trace payload after "body", in canonical JSON.
        self.head = (
            f'"headers":{encode_body(self.headers) if self.headers else "{}"},"method":{quote(self.method)},'
            f'"msg":"{mid}","path":{quote(self.path)},"query":{encode_body(self.query) if self.query else "{}"},'
            f'"sent":{sent}}}'
        )

    def trace_ids(self) -> tuple[str, str, str, str, str]:
        """Pre-encoded trace line parts: (cause+corr, request dst+kind,
        request src, response dst+kind, response src)."""
        ids = self.ids
        if ids is None:
            src, dst = quote_id(self.src), quote_id(self.dst)
            ids = self.ids = (
                f'"cause":{quote_id(self.cause)},"corr":{quote_id(self.corr)}',
                f'"dst":{dst},"kind":"net.request"',
                f'"src":{src}',
                f'"dst":{src},"kind":"net.response"',
                f'"src":{dst}',
            )
        return ids

    def abandon(self, _raise_cancel) -> trio.lowlevel.Abort:
        # trio's abort callback when the waiting task is cancelled. Flags
        # only: trio may abort simultaneous waiters in id() order.
        if not self.done:
            self.done = True
            self.network.in_flight -= 1
        return trio.lowlevel.Abort.SUCCEEDED

    def reply_to_caller(self, kernel, result) -> None:
        if self.task is not None:
            kernel.wake(self.task, result)
        else:
            self.on_reply(result)


class Network:
    """Endpoints by name, and the links between them."""

    def __init__(self, kernel, streams, trace, chaos: ChaosProfile, default_timeout_us: int = DEFAULT_TIMEOUT_US) -> None:
        self._kernel = kernel
        self._streams = streams
        self._trace = trace
        self._chaos = chaos
        self.default_timeout_us = default_timeout_us
        self._endpoints: dict[str, Any] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._windows: list[Window] = [w for w in chaos.windows if w.kind in ("partition", "hold", "slow")]
        self._next_id = 0
        self.in_flight = 0
        self._timeouts: dict[int, deque] = {}
        self._timeout_armed: set[int] = set()
        # Answers to lose once each, in the order they were asked for:
        # (callee, caller, methods). See `lose_next_answer`.
        self._lose_next: list[tuple[str, str, tuple[str, ...]]] = []

    # ------------------------------------------------------------ set-up

    def attach(self, endpoint) -> None:
        """Register an endpoint (an Actor): anything with `name`, `running`
        and ``_accept(network, exchange, request)``."""
        if endpoint.name in self._endpoints:
            raise ValueError(f"an endpoint named {endpoint.name!r} is already attached")
        self._endpoints[endpoint.name] = endpoint

    def add_window(self, window: Window) -> None:
        """Inject a partition, hold or slow window while the world runs."""
        if window.kind not in ("partition", "hold", "slow"):
            raise ValueError(f"the network handles partition, hold and slow windows, not {window.kind!r}")
        self._windows.append(window)
        self._refresh_links()
        self._trace.record("chaos.inject", window.to_dict())

    def add_link_rule(self, rule) -> None:
        """Lay a link rule over the profile's while the world runs (later
        rules win, as in a profile) -- until the world heals."""
        self._chaos = attrs.evolve(self._chaos, links=(*self._chaos.links, rule))
        self._refresh_links()
        self._trace.record("chaos.inject", {"link": rule.to_dict()})

    def lose_next_answer(self, callee: str, caller: str, methods: tuple[str, ...]) -> None:
        """Lose, once, the next successful (2xx) answer `callee` gives
        `caller` to a request of one of `methods` -- after the callee acted
        on it. A rate only makes a lost answer likely; a script whose story
        needs one asks for it so (until the world heals). No random draw
        decides it, so every other fault's stream stays where it was."""
        self._lose_next.append((callee, caller, tuple(methods)))
        self._trace.record("chaos.inject", {"lose_next_answer": {"src": callee, "dst": caller,
                                                                 "methods": list(methods)}})

    def _take_lost_answer(self, ex: _Exchange, status: int) -> bool:
        """Whether an asked-for loss takes this answer (and is used up)."""
        if status >= 300:
            return False  # the callee did not act: losing this answer is not the fault asked for
        for i, (callee, caller, methods) in enumerate(self._lose_next):
            if callee == ex.dst and caller == ex.src and ex.method in methods:
                del self._lose_next[i]
                return True
        return False

    def set_system_faults(self, name: str, faults) -> None:
        """`name`'s vendor faults from now on (what a callee's slow answers read)."""
        systems = dict(self._chaos.systems)
        systems[name] = faults
        self._chaos = attrs.evolve(self._chaos, systems=tuple(sorted(systems.items())))
        self._refresh_links()

    def heal(self) -> None:
        """End every network fault from now on: windows close, rates drop to
        zero; latency stays. The harness calls this before its liveness
        phase."""
        self._windows = []
        self._lose_next = []
        self._chaos = ChaosProfile(
            self._chaos.name,
            links=tuple(
                type(rule)(src=rule.src, dst=rule.dst, latency=rule.latency) for rule in self._chaos.links
            ),
        )
        self._refresh_links()
        self._trace.record("chaos.heal", {"scope": "network"})

    def _refresh_links(self) -> None:
        for key in sorted(self._links):
            self._links[key].refresh(self._chaos, self._windows)

    def _link(self, src: str, dst: str) -> _Link:
        try:
            return self._links[src, dst]
        except KeyError:
            link = self._links[src, dst] = _Link(src, dst, self._chaos, self._streams, self._windows)
            return link

    # ------------------------------------------------------------ sending

    def send_request(
        self,
        src: str,
        dst: str,
        request: Request,
        on_reply: ReplyCallback | None,
        timeout_us: int | None = None,
    ) -> str:
        """Start an exchange; `on_reply` later gets exactly one Response or
        NetworkError (None makes it a one-way post). Returns the message id."""
        return self._start(src, dst, request, on_reply, timeout_us).id

    def _start(self, src, dst, request, on_reply, timeout_us) -> _Exchange:
        self._next_id += 1
        now = self._kernel.now_us
        ex = _Exchange(f"m{self._next_id}", src, dst, request, encode_body(request.json), on_reply, now)
        ex.network = self
        ex.link = self._link(src, dst)
        ex.back = self._link(dst, src)
        if on_reply is not None:
            self.in_flight += 1
            self._arm_timeout(ex, self.default_timeout_us if timeout_us is None else timeout_us, now)
        self._transmit_request(ex, ex.link, now)
        return ex

    # Timeouts are nearly always beaten by the response, so they are not
    # kernel timers each (a heap of one per exchange in flight, most of them
    # dead). Exchanges with the same timeout expire in the order they were
    # sent, so each timeout length keeps a FIFO of (deadline, exchange) and
    # one kernel timer for its head; answered exchanges are dropped from the
    # front whenever the timer fires.

    def _arm_timeout(self, ex: _Exchange, timeout_us: int, now: int) -> None:
        queue = self._timeouts.get(timeout_us)
        if queue is None:
            queue = self._timeouts[timeout_us] = deque()
        queue.append((now + timeout_us, ex))
        if timeout_us not in self._timeout_armed:
            self._timeout_armed.add(timeout_us)
            self._kernel.call_at(now + timeout_us, self._expire_timeouts, timeout_us)

    def _expire_timeouts(self, timeout_us: int) -> None:
        queue = self._timeouts[timeout_us]
        now = self._kernel.now_us
        while queue:
            deadline, ex = queue[0]
            if ex.done:
                queue.popleft()
            elif deadline <= now:
                queue.popleft()
                self._on_timeout(ex)
            else:
                break
        if queue:
            self._kernel.call_at(queue[0][0], self._expire_timeouts, timeout_us)
        else:
            self._timeout_armed.discard(timeout_us)

    def post(self, src: str, dst: str, request: Request) -> str:
        """A one-way message (no response travels back)."""
        return self.send_request(src, dst, request, None)

    async def request(self, src: str, dst: str, request: Request, *, timeout_us: int | None = None) -> Response:
        """Send from a trio task and wait; raises RequestTimeout or
        ConnectionRefused. Cancellation (``trio.move_on_after``) is safe: the
        exchange is abandoned and a late response is recorded and dropped."""
        ex = self._start(src, dst, request, _WAITING_TASK, timeout_us)
        ex.task = trio.lowlevel.current_task()
        result = await trio.lowlevel.wait_task_rescheduled(ex.abandon)
        if isinstance(result, NetworkError):
            raise result
        return result

    def _transmit_request(self, ex: _Exchange, link: _Link, now: int) -> None:
        f = link.faults
        trace = self._trace
        if link.partitions and self._partitioned(link, now):
            trace.record("fault.partition", self._note(ex), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
            return
        if f.request_loss and link.req_loss.random() < f.request_loss:
            trace.record("fault.request_lost", self._note(ex), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
            return
        arrive = now + f.latency.sample(link.lat)
        if f.reorder and link.reorder.random() < f.reorder:
            extra = link.reorder.randint(1, f.reorder_delay)
            arrive += extra
            trace.record("fault.reorder", dict(self._note(ex), extra_us=extra), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
        if link.holds:
            arrive = self._held(ex, link, arrive)
        kernel = self._kernel
        kernel.call_at(arrive, self._deliver_request, ex, 0)
        if f.duplicate and link.dup.random() < f.duplicate:
            extra = link.dup.randint(0, f.duplicate_delay)
            trace.record("fault.duplicate", dict(self._note(ex), extra_us=extra), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
            kernel.call_at(arrive + extra, self._deliver_request, ex, 1)

    @staticmethod
    def _note(ex: _Exchange) -> dict:
        return {"msg": ex.id, "method": ex.method, "path": ex.path}

    def _partitioned(self, link: _Link, t: int) -> bool:
        for w in link.partitions:
            if w.start <= t < w.end:
                return True
        return False

    def _held(self, ex: _Exchange, link: _Link, arrive: int) -> int:
        for w in link.holds:
            if w.start <= arrive < w.end:
                self._trace.record(
                    "fault.hold", dict(self._note(ex), until=w.end), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause
                )
                return w.end
        return arrive

    # ----------------------------------------------------------- delivery

    def _deliver_request(self, ex: _Exchange, copy: int) -> None:
        now = self._kernel.now_us
        link = ex.link
        trace = self._trace
        if link.partitions and self._partitioned(link, now):
            trace.record("fault.partition", self._note(ex), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
            return
        endpoint = self._endpoints.get(ex.dst)
        if endpoint is None or not endpoint.running:
            trace.record("net.refused", self._note(ex), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
            if ex.on_reply is not None:
                back = ex.back
                self._kernel.call_later(back.faults.latency.sample(back.lat), self._deliver_refusal, ex)
            return
        if copy:
            body = decode_body(ex.body)
            data = f'{{"body":{ex.body},"copy":{copy},{ex.head}'
        else:
            body = ex.first_copy
            data = f'{{"body":{ex.body},{ex.head}'
        ids = ex.trace_ids()
        trace.record_spliced("net.request", ids[0], data, ids[1], ids[2])
        endpoint._accept(self, ex, _trusted_request(ex.method, ex.path, dict(ex.query), dict(ex.headers), body))

    def reply(self, ex: _Exchange, response: Response, body: str | None = None) -> None:
        """The callee's answer to `ex` (called by the endpoint); `body`, the
        answer's JSON already encoded, if the endpoint snapshotted it."""
        if ex.on_reply is None:
            return  # a one-way post: nothing travels back
        link = ex.link
        f = link.faults
        now = self._kernel.now_us
        trace = self._trace
        if f.response_loss and link.resp_loss.random() < f.response_loss:
            trace.record(
                "fault.response_lost",
                dict(self._note(ex), status=response.status),
                src=ex.dst,
                dst=ex.src,
                corr=ex.corr,
                cause=ex.cause,
            )
            return
        if self._lose_next and self._take_lost_answer(ex, response.status):
            trace.record(
                "fault.response_lost",
                dict(self._note(ex), status=response.status, injected=True),
                src=ex.dst,
                dst=ex.src,
                corr=ex.corr,
                cause=ex.cause,
            )
            return
        back = ex.back
        if back.partitions and self._partitioned(back, now):
            trace.record("fault.partition", self._note(ex), src=ex.dst, dst=ex.src, corr=ex.corr, cause=ex.cause)
            return
        arrive = now + back.faults.latency.sample(back.lat)
        for w in self._windows:
            if w.kind == "slow" and w.start <= now < w.end and fnmatch.fnmatchcase(ex.dst, w.target):
                arrive += w.delay
                trace.record("fault.slow", dict(self._note(ex), extra_us=w.delay), src=ex.dst, dst=ex.src, corr=ex.corr)
                break
        slow = link.callee.slow
        if slow and link.slow.random() < float(slow):
            extra = link.callee.slow_delay
            arrive += extra
            trace.record("fault.slow", dict(self._note(ex), extra_us=extra), src=ex.dst, dst=ex.src, corr=ex.corr)
        if back.holds:
            arrive = self._held(ex, back, arrive)
        self._kernel.call_at(
            arrive, self._deliver_response, ex, response.status, dict(response.headers),
            encode_body(response.json) if body is None else body,
        )

    def _deliver_response(self, ex: _Exchange, status: int, headers: dict, body: str) -> None:
        back = ex.back
        trace = self._trace
        if back.partitions and self._partitioned(back, self._kernel.now_us):
            trace.record("fault.partition", self._note(ex), src=ex.dst, dst=ex.src, corr=ex.corr, cause=ex.cause)
            return
        tail = f'"headers":{encode_body(headers) if headers else "{}"},"msg":"{ex.id}","sent":{ex.sent},"status":{status}}}'
        if ex.done:
            data = f'{{"body":{body},"dropped":"caller no longer waiting",{tail}'
            ids = ex.trace_ids()
            trace.record_spliced("net.response", ids[0], data, ids[3], ids[4])
            return
        ex.done = True
        self.in_flight -= 1
        ids = ex.trace_ids()
        trace.record_spliced("net.response", ids[0], f'{{"body":{body},{tail}', ids[3], ids[4])
        ex.reply_to_caller(self._kernel, _trusted_response(status, decode_body(body), headers))

    def _deliver_refusal(self, ex: _Exchange) -> None:
        if ex.done:
            return
        ex.done = True
        self.in_flight -= 1
        ex.reply_to_caller(
            self._kernel,
            ConnectionRefused(f"{ex.dst} refused {ex.method} {ex.path}: not running", src=ex.src, dst=ex.dst, msg_id=ex.id),
        )

    def _on_timeout(self, ex: _Exchange) -> None:
        if ex.done:
            return
        ex.done = True
        self.in_flight -= 1
        self._trace.record("net.timeout", self._note(ex), src=ex.src, dst=ex.dst, corr=ex.corr, cause=ex.cause)
        ex.reply_to_caller(
            self._kernel,
            RequestTimeout(f"no response from {ex.dst} to {ex.method} {ex.path}", src=ex.src, dst=ex.dst, msg_id=ex.id),
        )

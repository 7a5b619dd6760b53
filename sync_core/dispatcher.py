"""The dispatcher: performs outbox messages against the vendors, reliably.

For each vendor system it keeps at most `limits[system]` operations in
flight (vendors cap concurrency per account, and a core that ignores that
only earns more 429s), a circuit breaker that stops calling a vendor that
keeps failing and probes it again after a cool-down, and the retry policy:
backoff with seeded jitter, Retry-After honoured, business refusals to the
exception queues, the hopeless to the dead-letter queue.

An attempt is counted in the store *before* the call goes out, so after a
crash the operation knows a previous attempt may have reached the vendor
(``ctx.attempt > 1``) and must check before repeating a non-idempotent
call. Retries are budgeted by *charged* attempts: every failed attempt but
the probes of an open breaker, which only find out whether the vendor is
back, and throttles (a 429 and its kin), where the vendor is up and has
told us when to come back. While a vendor is down or busy its messages
wait; they do not burn out. A throttle with Retry-After also holds back
every other message to that vendor until then: the limit is the account's,
so they would only be refused in turn and spend the allowance.

The breakers are kept in the store: a core restarted in the middle of an
outage still knows the vendor is down and probes it, rather than charging
every waiting message again as if the vendor were fine.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import trio

from .outbox import Outbox, system_of
from .ports import Environment, HttpResponse, Transaction, TransportError
from .retry import BusinessException, RetryLater, RetryPolicy

__all__ = ["Operation", "OpContext", "Dispatcher", "CircuitBreaker", "now_us", "BREAKERS"]

BREAKERS = "breakers"  # store table: system -> CircuitBreaker.durable()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us(env: Environment) -> int:
    """Business time as integer microseconds since 1970 (exact)."""
    return (env.now() - _EPOCH) // timedelta(microseconds=1)


@attrs.frozen
class Operation:
    """A named call to one vendor. `perform` does the HTTP work and returns
    a JSON-able result; `on_success` records it (and enqueues what follows)
    in the same transaction that completes the message."""

    name: str
    perform: Callable[[OpContext, dict], Awaitable[Any]]
    on_success: Callable[[Transaction, dict, Any, int], None] | None = None
    timeout: float = 120.0

    @property
    def system(self) -> str:
        return system_of(self.name)


class OpContext:
    """What an operation sees: its vendor's client, the message, the attempt."""

    def __init__(self, env: Environment, message: dict, attempt: int) -> None:
        self.env = env
        self.message = message
        self.attempt = attempt
        self.system = system_of(message["op"])
        self.client = env.clients[self.system]
        self.corr = message.get("corr")

    @property
    def maybe_done_before(self) -> bool:
        """A previous attempt may have reached the vendor (a timeout, a crash)."""
        return self.attempt > 1

    async def call(self, method: str, path: str, *, json: Any = None, headers: dict | None = None, query: dict | None = None) -> HttpResponse:
        h = {"x-causation-id": self.message["id"]}
        if self.corr:
            h["x-correlation-id"] = self.corr
        h.update(headers or {})
        try:
            return await self.client.request(method, path, json=json, headers=h, query=query)
        except TransportError as exc:
            raise RetryLater(f"no answer from {self.system}: {exc}", ambiguous=True) from None


@attrs.define
class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open for a cool-down
    -> half-open: one probe; success closes, failure reopens for longer."""

    threshold: int = 5
    cooldown_us: int = 30_000_000
    max_cooldown_us: int = 300_000_000
    failures: int = 0
    open_until: int | None = None
    current_cooldown: int = 0
    probing: bool = False

    def allowed_at(self, now: int) -> int | None:
        """None if a call may go now, else when to look again."""
        if self.open_until is None:
            return None
        if now < self.open_until:
            return self.open_until
        return None if not self.probing else math.inf  # half-open: one probe at a time

    def on_start(self, now: int) -> None:
        if self.open_until is not None and now >= self.open_until:
            self.probing = True

    def on_success(self) -> bool:
        was_open = self.open_until is not None
        self.failures = 0
        self.open_until = None
        self.current_cooldown = 0
        self.probing = False
        return was_open

    def durable(self) -> dict:
        # Not `probing`: a probe in flight dies with the process, and the
        # next life sends its own.
        return {"failures": self.failures, "open_until": self.open_until, "current_cooldown": self.current_cooldown}

    @classmethod
    def restore(cls, state: dict | None) -> CircuitBreaker:
        return cls() if state is None else cls(failures=state["failures"], open_until=state["open_until"],
                                               current_cooldown=state["current_cooldown"])

    def on_failure(self, now: int) -> bool:
        """Returns True when this failure opened the breaker."""
        self.failures += 1
        if self.probing or (self.open_until is None and self.failures >= self.threshold):
            self.current_cooldown = min(self.max_cooldown_us, max(self.cooldown_us, self.current_cooldown * 2))
            self.open_until = now + self.current_cooldown
            self.probing = False
            return True
        return False


class Dispatcher:
    def __init__(
        self,
        env: Environment,
        operations: list[Operation],
        *,
        limits: dict[str, int] | None = None,
        default_limit: int = 4,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.env = env
        self.operations: dict[str, Operation] = {}
        for op in operations:
            if op.name in self.operations:
                raise ValueError(f"two operations are named {op.name!r}; each flow's operations need their own names")
            self.operations[op.name] = op
        self.systems = sorted({op.system for op in operations})
        self.limits = {s: (limits or {}).get(s, default_limit) for s in self.systems}
        self.policy = policy
        with env.store.transaction() as txn:
            self.breakers = {s: CircuitBreaker.restore(txn.get(BREAKERS, s)) for s in self.systems}
        # Until when a vendor's Retry-After holds back all its messages (a few
        # seconds at a time: not worth keeping across a restart).
        self._held_until = {s: 0 for s in self.systems}
        self._in_flight = {s: 0 for s in self.systems}
        self._running: set[str] = set()
        self._wake = trio.Event()

    # ------------------------------------------------------------ control

    def wake(self) -> None:
        """Something was enqueued or finished: look at the outbox again."""
        self._wake.set()

    def idle(self) -> bool:
        """Nothing in flight and nothing ready (messages parked behind a
        dead letter or an exception wait for a person, not for us)."""
        if self._running:
            return False
        with self.env.store.transaction() as txn:
            return next(txn.scan("ready", limit=1), None) is None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                next_due = self._dispatch(nursery)
                wait = math.inf if next_due is None else max(0, next_due - now_us(self.env)) / 1_000_000
                with trio.move_on_after(wait):
                    await self._wake.wait()

    def _dispatch(self, nursery: trio.Nursery) -> int | None:
        """Start every ready, due message the limits allow; return when the
        earliest waiting one falls due (None: only a wake will help)."""
        now = now_us(self.env)
        next_due: int | None = None
        with self.env.store.transaction() as txn:
            for system in self.systems:
                free = self.limits[system] - self._in_flight[system]
                if free <= 0:
                    continue
                if self._held_until[system] > now:
                    held = self._held_until[system]
                    next_due = held if next_due is None else min(next_due, held)
                    continue
                breaker = self.breakers[system]
                allowed_at = breaker.allowed_at(now)
                if allowed_at is not None:
                    if allowed_at != math.inf:
                        next_due = allowed_at if next_due is None else min(next_due, allowed_at)
                    continue
                for message in Outbox.ready(txn, system, limit=free + self._in_flight[system]):
                    if message["id"] in self._running:
                        continue
                    if message["due_us"] > now:
                        next_due = message["due_us"] if next_due is None else min(next_due, message["due_us"])
                        break
                    breaker.on_start(now)
                    self._running.add(message["id"])
                    self._in_flight[system] += 1
                    nursery.start_soon(self._execute, message, breaker.probing)
                    free -= 1
                    if free == 0 or breaker.probing:
                        break
        return next_due

    # ------------------------------------------------------------ one message

    async def _execute(self, message: dict, probe: bool = False) -> None:
        op = self.operations[message["op"]]
        system = op.system
        env = self.env
        tracer = env.tracer
        try:
            with env.store.transaction() as txn:
                current = Outbox.get(txn, message["id"])
                current["attempts"] += 1
                txn.put("msgs", current["id"], current)
            message = current
            ctx = OpContext(env, message, message["attempts"])
            try:
                with trio.fail_after(op.timeout):
                    outcome: tuple = ("done", await op.perform(ctx, message["payload"]))
            except RetryLater as exc:
                outcome = ("retry", exc)
            except BusinessException as exc:
                outcome = ("exception", exc)
            except trio.TooSlowError:
                outcome = ("retry", RetryLater(f"{op.name} took longer than {op.timeout}s", ambiguous=True))
            except Exception as exc:  # a bug in the operation: park it, do not loop
                outcome = ("dead", f"{type(exc).__name__}: {exc}")
            self._record(op, message, outcome, probe)
        finally:
            self._running.discard(message["id"])
            self._in_flight[system] -= 1
            self.wake()

    def _record(self, op: Operation, message: dict, outcome: tuple, probe: bool = False) -> None:
        env = self.env
        tracer = env.tracer
        kind, value = outcome
        now = now_us(env)
        breaker = self.breakers[op.system]
        breaker_was = breaker.durable()
        opened = closed = False
        corr = message.get("corr")
        data = {"msg": message["id"], "op": op.name, "aggregate": message["aggregate"], "attempt": message["attempts"]}
        with env.store.transaction() as txn:
            if kind == "done":
                Outbox.complete(txn, message, now)
                if op.on_success is not None:
                    op.on_success(txn, message, value, now)
                closed = breaker.on_success()
            elif kind == "retry" and value.throttled:
                # Back-pressure, not failure: nothing was done, so nothing is
                # charged -- a month-end burst against a limit shared with
                # the pollers and every other flow would otherwise burn out
                # whichever message keeps losing the race for the window.
                # The vendor answered, so it is up: that also settles a
                # half-open breaker's probe.
                delay = self.policy.delay(message["attempts"], env.random, value.after)
                Outbox.reschedule(txn, message, now + int(delay * 1_000_000), value.reason)
                if value.after is not None:
                    held = now + int(value.after * 1_000_000)
                    self._held_until[op.system] = max(self._held_until[op.system], held)
                data.update(reason=value.reason, retry_in_ms=int(delay * 1000), throttled=True)
                closed = breaker.on_success()
            elif kind == "retry":
                # A failed probe of an open breaker says the vendor is still
                # down, not that this message is hopeless: it is not charged,
                # so a weekend's outage cannot exhaust the retries of the
                # message that happens to be first in line.
                message = dict(message, charged=message.get("charged", 0) + (0 if probe else 1))
                if self.policy.exhausted(message["charged"]):
                    Outbox.dead_letter(txn, message, f"gave up after {message['attempts']} attempts: {value.reason}", now)
                    kind = "dead"
                else:
                    delay = self.policy.delay(message["attempts"], env.random, value.after)
                    Outbox.reschedule(txn, message, now + int(delay * 1_000_000), value.reason)
                    data.update(reason=value.reason, retry_in_ms=int(delay * 1000), ambiguous=value.ambiguous)
                opened = breaker.on_failure(now) and kind == "retry"
            elif kind == "exception":
                Outbox.to_exception_queue(txn, message, value.domain, value.code, value.message, value.details, now)
                data.update(domain=value.domain, code=value.code, reason=value.message)
                # The vendor answered (and refused): it is up, so a half-open
                # breaker must not wait for a probe result that will never come.
                breaker.on_success()
            else:
                Outbox.dead_letter(txn, message, value, now)
                data.update(reason=value)
                breaker.on_failure(now)
            if breaker.durable() != breaker_was:
                txn.put(BREAKERS, op.system, breaker.durable())
        if closed:
            tracer.event("core.breaker.closed", {"system": op.system}, corr=corr)
        if opened:
            tracer.event("core.breaker.opened", {"system": op.system, "until_us": breaker.open_until}, corr=corr)
        if kind == "dead":
            data.setdefault("reason", str(value) if not isinstance(value, RetryLater) else value.reason)
        event = {"done": "core.op.done", "retry": "core.op.retry", "exception": "core.exception.opened",
                 "dead": "core.op.dead"}[kind]
        tracer.event(event, data, corr=corr, cause=message["id"])

"""Pollers: the core's loops that read vendors' change feeds.

A poller calls `poll_once` every `interval` seconds while there is work;
`poll_once` reads one
batch of changes, hands each to the flows inside the inbox transaction
(`sync_core.inbox`), advances its committed cursor, and says whether it
found anything. A poller that found nothing on its last poll is *caught up*
-- one of the things the harness waits for before it checks the books. A
batch that finds something is followed at once by another, so a backlog
drains without waiting out the interval.

An idle feed is polled less and less often: each empty poll doubles the
wait, up to `idle_max` seconds, and the first poll that finds something
brings it back to `interval`. This is what production pollers do to stay
inside a vendor's API allowance (Salesforce counts every call against a
daily limit) -- a quiet night costs a few dozen calls, not thousands -- and
it bounds the reaction time to a change after a lull by `idle_max`.

Errors are the vendor's weather, not the poller's end: a transport error or
a 5xx is logged and tried again next interval (with backoff); the cursor
only moves forward in the same transaction that handled the changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from .dispatcher import now_us
from .ports import Environment, TransportError
from .retry import BusinessException, RetryLater

__all__ = ["Poller", "IDLE_MAX_S"]

IDLE_MAX_S = 600.0  # an idle feed is still read every ten minutes


class Poller:
    def __init__(
        self,
        env: Environment,
        name: str,
        poll_once: Callable[[], Awaitable[bool]],
        *,
        interval: float = 60.0,
        idle_max: float | None = None,
        max_backoff: float = 900.0,
    ) -> None:
        self.env = env
        self.name = name
        self.poll_once = poll_once
        self.interval = interval
        self.idle_max = max(interval, IDLE_MAX_S if idle_max is None else idle_max)
        self.max_backoff = max_backoff
        self.caught_up = False
        self.failures = 0
        self.empty_polls = 0

    async def run(self) -> None:
        while True:
            try:
                found = await self.poll_once()
            except BusinessException as exc:
                # A feed that refuses us (a 4xx) must not kill the core: a
                # person has to look, and the poller keeps trying slowly.
                self.failures += 1
                self.caught_up = False
                with self.env.store.transaction() as txn:
                    from .outbox import next_counter

                    item = f"ex{next_counter(txn, 'exceptions'):08d}"
                    txn.put("exceptions", f"{exc.domain}:{item}", {
                        "id": item, "domain": exc.domain, "code": exc.code, "message": exc.message,
                        "details": {"poller": self.name, **exc.details}, "op": None, "aggregate": None,
                        "opened_us": now_us(self.env),
                    })
                self.env.tracer.event("core.poll.refused", {"poller": self.name, "code": exc.code})
                await trio.sleep(self.max_backoff)
                continue
            except (TransportError, RetryLater) as exc:
                self.failures += 1
                self.caught_up = False
                wait = min(self.max_backoff, self.interval * (2 ** min(self.failures, 6)))
                wait = self.env.random.uniform(self.interval, max(self.interval, wait))
                self.env.tracer.event("core.poll.failed", {"poller": self.name, "error": str(exc), "retry_in_s": int(wait)})
                await trio.sleep(wait)
                continue
            self.failures = 0
            self.caught_up = not found
            if found:
                self.empty_polls = 0
                await trio.sleep(0)
            else:
                await trio.sleep(self.idle_wait())
                self.empty_polls += 1

    def idle_wait(self) -> float:
        """Seconds to wait after an empty poll: `interval`, doubling with
        each further empty poll, at most `idle_max`."""
        return min(self.idle_max, self.interval * 2 ** min(self.empty_polls, 16))

"""Change feeds, in the two shapes integrations actually meet.

`ReplayLog` is CDC-style (the CRM family): changes in commit order, each with
an opaque, non-contiguous replay id and the key of the transaction that made
it; a subscriber resumes after the last id it saw. Changes are kept for a
retention period (72 hours by default) and resuming from an id that has
expired is an error -- the subscriber must re-sync.

`PolledFeed` is the "changed since" shape (the PSA family): the subscriber
asks for changes since a timestamp. There is no ordering guarantee, a change
can become visible some seconds after the time it carries (so a naive
high-water mark misses it), duplicates happen, and each change is kept for a
retention that varies (7 to 9 days).

Both live in the vendor's durable store and read their retention override
from the chaos profile (``feed_retention``).
"""

from __future__ import annotations

import bisect
import heapq
from typing import TYPE_CHECKING

from simulator import DAY, HOUR, SECOND

from .vendor import VendorError

if TYPE_CHECKING:
    from .vendor import VendorSystem

__all__ = ["ReplayLog", "PolledFeed"]


class ReplayLog:
    def __init__(self, vendor: VendorSystem, name: str, retention_us: int = 72 * HOUR) -> None:
        self.vendor = vendor
        self.name = name
        self.default_retention_us = retention_us

    @property
    def _state(self) -> dict:
        extra = self.vendor.durable.extra
        key = f"replay:{self.name}"
        if key not in extra:
            extra[key] = {"events": [], "position": 0}
        return extra[key]

    @property
    def retention_us(self) -> int:
        override = self.vendor.faults.feed_retention if self.vendor.faults_active else None
        return override if override is not None else self.default_retention_us

    def append(self, change: dict, transaction_key: str) -> dict:
        """Add one change (commit order is call order); returns the event."""
        state = self._state
        # Non-contiguous: subscribers must not compute the next id.
        state["position"] += self.vendor.sim.streams.rng(f"{self.vendor.name}.replay").randint(1, 97)
        event = {
            "replayId": f"{state['position']:012X}",
            "transactionKey": transaction_key,
            "commitTimestamp": self.vendor.now_us,
            **change,
        }
        state["events"].append(event)
        return dict(event)

    def _expire(self) -> None:
        state = self._state
        cutoff = self.vendor.now_us - self.retention_us
        events = state["events"]
        n = 0
        while n < len(events) and events[n]["commitTimestamp"] < cutoff:
            n += 1
        if n:
            self.vendor.record("feed.expired", {"feed": self.name, "events": n})
            del events[:n]

    def read(self, after: str | None, limit: int = 200) -> tuple[list[dict], str | None]:
        """Events after replay id `after` (None: the oldest retained), at
        most `limit`; and the last replay id returned (or `after`)."""
        self._expire()
        state = self._state
        events = state["events"]
        last = f"{state['position']:012X}" if state["position"] else None
        start = 0
        if after is not None:
            # Fixed-width hex: string order is issue order.
            i = bisect.bisect_left(events, after, key=lambda e: e["replayId"])
            if i < len(events) and events[i]["replayId"] == after:
                start = i + 1
            elif last is None or after > last:
                raise VendorError(400, "INVALID_REPLAY_ID", f"replay id {after} was never issued")
            elif after == last:
                start = len(events)  # caught up
            elif not events or after < events[0]["replayId"]:
                raise VendorError(
                    400, "REPLAY_ID_EXPIRED",
                    f"replay id {after} is older than the {self.retention_us // HOUR}-hour retention; "
                    "re-sync, then subscribe from the oldest retained event",
                )
            else:
                raise VendorError(400, "INVALID_REPLAY_ID", f"replay id {after} was never issued")
        page = [dict(e) for e in events[start : start + limit]]
        return page, (page[-1]["replayId"] if page else after)


class PolledFeed:
    def __init__(
        self,
        vendor: VendorSystem,
        name: str,
        *,
        retention_min_us: int = 7 * DAY,
        retention_max_us: int = 9 * DAY,
        visibility_lag_us: int = 20 * SECOND,
        duplicate_rate: float = 0.01,
    ) -> None:
        self.vendor = vendor
        self.name = name
        self.retention_min_us = retention_min_us
        self.retention_max_us = retention_max_us
        self.visibility_lag_us = visibility_lag_us
        self.duplicate_rate = duplicate_rate

    @property
    def _state(self) -> dict:
        extra = self.vendor.durable.extra
        key = f"polled:{self.name}"
        if key not in extra:
            # events: in append order, which is changed_at order (the
            # vendor's clock only moves forward), so `since` is a bisection.
            # expiries: a heap of (_expires_at, id); an expired change is
            # marked gone at once and dropped from the list in bulk, so a
            # read never rescans the whole retention for the few that went.
            extra[key] = {"events": [], "next": 0, "expiries": [], "gone": 0}
        return extra[key]

    def append(self, change: dict) -> dict:
        vendor = self.vendor
        state = self._state
        rng = vendor.sim.streams.rng(f"{vendor.name}.feed")
        state["next"] += 1
        override = vendor.faults.feed_retention if vendor.faults_active else None
        keep = override if override is not None else rng.randint(self.retention_min_us, self.retention_max_us)
        event = {
            "id": state["next"],
            "changed_at": vendor.now_us,
            "_visible_at": vendor.now_us + rng.randint(0, self.visibility_lag_us),
            "_expires_at": vendor.now_us + keep,
            **change,
        }
        state["events"].append(event)
        heapq.heappush(state["expiries"], (event["_expires_at"], event["id"], event))
        return {k: v for k, v in event.items() if not k.startswith("_")}

    def _expire(self, now: int) -> None:
        state = self._state
        heap, n = state["expiries"], 0
        while heap and heap[0][0] <= now:
            heapq.heappop(heap)[2]["_gone"] = True
            n += 1
        if not n:
            return
        state["gone"] += n
        if state["gone"] * 2 > len(state["events"]):
            state["events"] = [e for e in state["events"] if not e.get("_gone")]
            state["gone"] = 0
        self.vendor.record("feed.expired", {"feed": self.name, "events": n})

    def read(self, since_us: int, limit: int = 200, page: int = 1) -> tuple[list[dict], bool]:
        """Changes with ``changed_at >= since_us`` that are visible now and
        not expired, one page at a time, each page in no particular order;
        returns (changes, more_pages)."""
        vendor = self.vendor
        now = vendor.now_us
        self._expire(now)
        events = self._state["events"]
        skip, chunk, more = (page - 1) * limit, [], False
        for i in range(bisect.bisect_left(events, since_us, key=lambda e: e["changed_at"]), len(events)):
            e = events[i]
            if e["_visible_at"] > now or e.get("_gone"):
                continue
            if skip:
                skip -= 1
            elif len(chunk) < limit:
                chunk.append(e)
            else:
                more = True  # one past the page is enough to know
                break
        rng = vendor.sim.streams.rng(f"{vendor.name}.feed.read")
        out = [{k: v for k, v in e.items() if not k.startswith("_")} for e in chunk]
        dups = [dict(e) for e in out if rng.random() < self.duplicate_rate]
        out.extend(dups)
        rng.shuffle(out)
        return out, more

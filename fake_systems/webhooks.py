"""Outbound webhooks, delivered the way vendors deliver them: at least once.

Subscriptions and pending deliveries live in the vendor's durable store, so
a vendor that restarts resumes its retries. A delivery is an HTTP POST to a
subscriber (an endpoint name and a path); anything but a 2xx -- or no answer
within the timeout -- is retried on the vendor's backoff schedule until the
schedule runs out, when the delivery is given up and recorded (the vendor's
events list is then the only way to recover it).

Under chaos (``webhook_duplicate``, ``webhook_delay``, ``webhook_reorder`` in
the vendor's ``[systems.NAME]`` table) an event may be delivered twice, late,
or after events emitted later -- which real vendors do on a good day.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from simulator import HOUR, MINUTE, SECOND, Request, Response

if TYPE_CHECKING:
    from .vendor import VendorSystem

__all__ = ["WebhookSender", "STRIPE_LIKE_SCHEDULE"]

# Roughly what payment platforms document: retries spread over three days.
STRIPE_LIKE_SCHEDULE = (1 * MINUTE, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR, 10 * HOUR, 12 * HOUR, 12 * HOUR)
REORDER_SPREAD_US = 30 * SECOND


class WebhookSender:
    def __init__(
        self,
        vendor: VendorSystem,
        *,
        schedule_us: tuple[int, ...] = STRIPE_LIKE_SCHEDULE,
        timeout_us: int = 10 * SECOND,
        id_header: str = "x-webhook-id",
    ) -> None:
        self.vendor = vendor
        self.schedule_us = schedule_us
        self.timeout_us = timeout_us
        self.id_header = id_header

    @property
    def _state(self) -> dict:
        extra = self.vendor.durable.extra
        if "webhooks" not in extra:
            extra["webhooks"] = {"subscriptions": {}, "pending": {}, "next": 0, "delivered": 0, "given_up": []}
        return extra["webhooks"]

    # ------------------------------------------------------------ API

    def subscribe(self, endpoint: str, path: str, events: list[str] | None = None) -> dict:
        """Deliver `events` (None: every type) to `endpoint` at `path`."""
        state = self._state
        sid = f"{self.vendor.name}-wh-{len(state['subscriptions']) + 1}"
        sub = {"id": sid, "endpoint": endpoint, "path": path, "events": sorted(events) if events else None}
        state["subscriptions"][sid] = sub
        return dict(sub)

    def subscriptions(self) -> list[dict]:
        return [dict(s) for s in self._state["subscriptions"].values()]

    def emit(self, event: dict, corr: str | None = None) -> None:
        """Queue `event` (a dict with "id" and "type") for every matching
        subscriber. The caller has already put it in its events list."""
        vendor = self.vendor
        state = self._state
        faults = vendor.faults
        active = vendor.faults_active
        for sid in sorted(state["subscriptions"]):
            sub = state["subscriptions"][sid]
            if sub["events"] is not None and event["type"] not in sub["events"]:
                continue
            copies = 2 if active and vendor.draw("webhook_duplicate", float(faults.webhook_duplicate)) else 1
            for copy in range(copies):
                delay = 0
                if active and faults.webhook_delay:
                    delay = vendor.sim.streams.rng(f"{vendor.name}.webhook.delay").randint(0, faults.webhook_delay)
                if active and vendor.draw("webhook_reorder", float(faults.webhook_reorder)):
                    delay += vendor.sim.streams.rng(f"{vendor.name}.webhook.reorder").randint(
                        1, max(faults.webhook_delay, REORDER_SPREAD_US)
                    )
                state["next"] += 1
                did = f"{vendor.name}-whd-{state['next']}"
                state["pending"][did] = {
                    "id": did, "sub": sid, "event": event, "attempt": 0, "corr": corr, "due": vendor.now_us + delay,
                }
                if copy:
                    vendor.record("fault.webhook_duplicate", {"event": event["id"]}, corr=corr)
                if delay:
                    vendor.record("fault.webhook_delay", {"event": event["id"], "extra_us": delay}, corr=corr)
                vendor.call_later(delay, self._attempt, did)

    def resume(self) -> None:
        """After a restart: re-arm every pending delivery (timers died)."""
        now = self.vendor.now_us
        for did in sorted(self._state["pending"], key=lambda d: (self._state["pending"][d]["due"], d)):
            self.vendor.call_later(max(0, self._state["pending"][did]["due"] - now), self._attempt, did)

    def pending(self) -> list[dict]:
        return [dict(p) for p in self._state["pending"].values()]

    def given_up(self) -> list[dict]:
        return list(self._state["given_up"])

    # ------------------------------------------------------------ delivery

    def _attempt(self, did: str) -> None:
        state = self._state
        delivery = state["pending"].get(did)
        if delivery is None:
            return
        sub = state["subscriptions"][delivery["sub"]]
        delivery["attempt"] += 1
        event = delivery["event"]
        headers = {self.id_header: event["id"], "x-webhook-attempt": str(delivery["attempt"])}
        if delivery["corr"]:
            headers["x-correlation-id"] = delivery["corr"]
        self.vendor.send(
            sub["endpoint"],
            Request("POST", sub["path"], headers=headers, json=event),
            partial(self._answered, did),
            self.timeout_us,
        )

    def _answered(self, did: str, result) -> None:
        state = self._state
        delivery = state["pending"].get(did)
        if delivery is None:
            return
        if isinstance(result, Response) and result.ok:
            del state["pending"][did]
            state["delivered"] += 1
            return
        attempt = delivery["attempt"]
        if attempt > len(self.schedule_us):
            del state["pending"][did]
            state["given_up"].append({"delivery": did, "event": delivery["event"]["id"], "attempts": attempt})
            self.vendor.record("webhook.given_up", {"event": delivery["event"]["id"], "attempts": attempt}, corr=delivery["corr"])
            return
        wait = self.schedule_us[attempt - 1]
        delivery["due"] = self.vendor.now_us + wait
        self.vendor.call_later(wait, self._attempt, did)

"""What every fake vendor system shares: routes, records, faults, inspection.

A fake is a synchronous actor (it answers at delivery time, no task switch)
that reads like the vendor it stands for: its routes in one table
(`routes`), its records in one store (`VendorStore`, durable: it survives the
fake's restart), its error bodies in its own vendor's shape (`error`). This
module holds the machinery they all need and none should write twice:

  * routing with path parameters, and vendor-shaped 404/405/400 answers;
  * vendor faults from the chaos profile's ``[systems.NAME]`` table: outage
    windows, rate limits over a sliding window, a concurrency cap over
    requests in service, 5xx before commit, record-changed conflicts; each
    fake chooses the *shape* (429 + Retry-After, 403 REQUEST_LIMIT_EXCEEDED,
    400 concurrency error...) by overriding one method;
  * service time: a response leaves after a drawn delay, so a crash in
    between commits the write and loses the answer;
  * the inspection API the harness reads ground truth through -- records,
    every side effect with the request that caused it, every event emitted
    -- never through the network.

Faults stop once the world is healed (`Simulation.heal`).
"""

from __future__ import annotations

import copy
import re
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from simulator import Actor, Request, Response
from simulator.actors import Delayed
from simulator.latency import LatencyModel, LogNormal

__all__ = [
    "Route",
    "copy_data",
    "VendorError",
    "VendorStore",
    "VendorSystem",
    "require",
    "require_fields",
]


class VendorError(Exception):
    """Raised by a route handler to answer with the vendor's error shape."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def require(condition: bool, code: str, message: str, field: str | None = None, status: int = 400) -> None:
    """Validation in one line: raise a VendorError unless `condition`."""
    if not condition:
        raise VendorError(status, code, message, field)


def require_fields(body: Any, fields: tuple[str, ...], code: str = "REQUIRED_FIELD_MISSING") -> dict:
    """The body must be a JSON object holding every one of `fields`."""
    if not isinstance(body, dict):
        raise VendorError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
    for f in fields:
        if body.get(f) in (None, ""):
            raise VendorError(400, code, f"required field {f} is missing", f)
    return body


_SHARED = frozenset({str, int, bool, type(None), float})


def copy_data(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times
    faster than `copy.deepcopy`, which pays for a memo and a dispatch per
    node. Anything else inside is handed to `copy.deepcopy`.

    A fake needs a copy only for what it *keeps* (a feed snapshot, a stored
    event, an inspection result). An answer needs none: the network encodes
    a response body the moment the handler returns it, before any record
    can change."""
    t = type(value)
    if t is dict:
        return {k: v if type(v) in _SHARED else copy_data(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _SHARED else copy_data(v) for v in value]
    if t in _SHARED:
        return value
    return copy.deepcopy(value)


@attrs.frozen
class Route:
    """One endpoint: ``"/customers/{id}"`` calls ``handler(request, id=...)``."""

    method: str
    pattern: str
    handler: Callable[..., Response]
    writes: bool = False  # conflicts and 5xx-before-commit apply to writes
    regex: re.Pattern = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        rx = "^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(self.pattern)) + "$"
        object.__setattr__(self, "regex", re.compile(rx))


class VendorStore:
    """A vendor's durable state: tables of records, id counters, the side
    effect log and the events it emitted. Plain JSON data throughout."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict]] = {}
        self.counters: dict[str, int] = {}
        self.effects: list[dict] = []
        self.events: list[dict] = []
        self.extra: dict[str, Any] = {}  # vendor-specific durable state

    def table(self, name: str) -> dict[str, dict]:
        try:
            return self.tables[name]
        except KeyError:
            t = self.tables[name] = {}
            return t

    def next_id(self, kind: str) -> int:
        n = self.counters.get(kind, 0) + 1
        self.counters[kind] = n
        return n


class VendorSystem(Actor):
    """Base of the fakes. Subclasses define `routes` and `error`, and may
    override the fault shapes (`rate_limited`, `over_concurrency`,
    `unavailable`, `server_error`, `conflict`)."""

    #: vendor family, for reports ("Salesforce-like", ...)
    family = "generic"
    #: time a request spends in service (None: answer at once)
    service_time: LatencyModel | None = LogNormal(median_us=30_000, sigma_milli=400, cap_us=2_000_000)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._routes = self.routes()
        self._outages: list = []

    # -------------------------------------------------------- for subclasses

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> Response:
        """The vendor's error body; every fake overrides this."""
        return Response(status, {"error": {"code": code, "message": message, "field": field}}, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "RATE_LIMITED", "too many requests", headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(429, "CONCURRENCY_LIMIT_EXCEEDED", "too many requests in progress; retry later")

    def unavailable(self) -> Response:
        return self.error(503, "SERVICE_UNAVAILABLE", "the service is down for maintenance", headers={"retry-after": "60"})

    def server_error(self) -> Response:
        return self.error(500, "INTERNAL_ERROR", "an unexpected error occurred; retry the request")

    def conflict(self) -> Response:
        return self.error(409, "RECORD_CHANGED", "the record was changed by another user; reload and retry")

    # -------------------------------------------------------- state

    def init_durable(self) -> VendorStore:
        return VendorStore()

    def init_volatile(self) -> dict:
        return {"window": deque(), "in_service": 0}

    @property
    def store(self) -> VendorStore:
        return self.durable

    def table(self, name: str) -> dict[str, dict]:
        return self.durable.table(name)

    def record_effect(self, kind: str, table: str, record_id: str, request: Request | None, **detail: Any) -> None:
        """Log a side effect with the request that caused it (ground truth
        for the harness: exactly-once is judged on this log)."""
        effect = {"t": self.now_us, "kind": kind, "table": table, "id": record_id}
        if request is not None:
            effect["request"] = {
                "method": request.method,
                "path": request.path,
                "correlation_id": request.header("x-correlation-id"),
                "causation_id": request.header("x-causation-id"),
                "idempotency_key": request.header("idempotency-key"),
            }
        if detail:
            effect["detail"] = detail
        self.durable.effects.append(effect)
        self.record("vendor.effect", {"kind": kind, "table": table, "id": record_id},
                    corr=request.header("x-correlation-id") if request is not None else None)

    # -------------------------------------------------------- faults

    @property
    def faults(self):
        return self.sim.chaos.system(self.name)

    @property
    def faults_active(self) -> bool:
        return not self.sim.healed

    def draw(self, kind: str, rate: float) -> bool:
        """A seeded yes/no for fault `kind` (its own stream per fake)."""
        return rate > 0 and self.sim.streams.rng(f"{self.name}.fault.{kind}").random() < rate

    def inject(self, window) -> None:
        if window.kind != "outage":
            super().inject(window)
        self._outages.append(window)

    def in_outage(self) -> bool:
        now = self.now_us
        for w in self._outages:
            if w.start <= now < w.end:
                return True
        for w in self.sim.chaos.windows:
            if w.kind == "outage" and w.target == self.name and w.start <= now < w.end:
                return True
        return False

    def _over_rate_limit(self) -> int | None:
        """Seconds to wait, if this request is over the sliding window."""
        f = self.faults
        if f.rate_limit is None:
            return None
        window: deque = self.volatile["window"]
        now = self.now_us
        while window and window[0] <= now - f.rate_limit_window:
            window.popleft()
        if len(window) >= f.rate_limit:
            wait_us = window[0] + f.rate_limit_window - now
            return max(1, -(-wait_us // 1_000_000))
        window.append(now)
        return None

    def _fault_response(self, route: Route) -> Response | None:
        if self.in_outage():
            self.record("fault.outage", {"path": route.pattern})
            return self.unavailable()
        if not self.faults_active:
            return None
        f = self.faults
        retry = self._over_rate_limit()
        if retry is not None:
            self.record("fault.rate_limited", {"path": route.pattern, "retry_after": retry})
            return self.rate_limited(retry)
        if f.concurrency_limit is not None and self.volatile["in_service"] >= f.concurrency_limit:
            self.record("fault.concurrency_limited", {"path": route.pattern})
            return self.over_concurrency()
        if route.writes and self.draw("error_5xx", float(f.error_5xx)):
            self.record("fault.error_5xx", {"path": route.pattern})
            return self.server_error()
        if route.writes and self.draw("conflict", float(f.conflict)):
            self.record("fault.conflict", {"path": route.pattern})
            return self.conflict()
        return None

    # -------------------------------------------------------- serving

    def match(self, request: Request) -> tuple[Route | None, dict, bool]:
        """(route, params, path_known)."""
        path_known = False
        for route in self._routes:
            m = route.regex.match(request.path)
            if m is None:
                continue
            path_known = True
            if route.method == request.method:
                return route, m.groupdict(), True
        return None, {}, path_known

    def handle(self, request: Request):
        route, params, path_known = self.match(request)
        if route is None:
            if path_known:
                return self.error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.path}")
            return self.error(404, "NOT_FOUND", f"no such resource: {request.path}")
        response = self._fault_response(route)
        if response is None:
            try:
                response = route.handler(request, **params)
            except VendorError as e:
                response = self.error(e.status, e.code, e.message, e.field, e.headers)
        return self._in_service(response)

    def _in_service(self, response: Response):
        if self.service_time is None:
            return response
        delay = self.service_time.sample(self.sim.streams.rng(f"{self.name}.service"))
        if delay <= 0:
            return response
        self.volatile["in_service"] += 1
        self.call_later(delay, self._leave_service)
        return Delayed(response, delay)

    def _leave_service(self) -> None:
        self.volatile["in_service"] -= 1

    # -------------------------------------------------------- inspection

    def records(self, table: str) -> list[dict]:
        """Every record of `table`, in creation order (deep copies)."""
        return copy_data(list(self.durable.table(table).values()))

    def records_where(self, table: str, **equal: Any) -> list[dict]:
        """The records of `table` whose fields equal `equal`, in creation
        order (deep copies of those only: a check that asks once per
        contract must not copy the whole table each time)."""
        return copy_data([r for r in self.durable.table(table).values()
                          if all(r.get(k) == v for k, v in equal.items())])

    def effects(self, kind: str | None = None) -> list[dict]:
        return copy_data([e for e in self.durable.effects if kind is None or e["kind"] == kind])

    def emitted(self) -> list[dict]:
        return copy_data(self.durable.events)

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in sorted(self.durable.tables.items())}

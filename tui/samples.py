"""World samples: invariants, KPIs and queues at one moment of a run.

The trace says what happened; whether the business is in order is a
question for the world itself -- the fake systems' records and the core's
store. The simulation thread takes a sample at moments when no transaction
is open and no event is half-done (see `host.WorldHost`), copies what the
panels need into plain data, and the UI only ever reads those copies.

Before the run has healed and gone quiet, an invariant is a statement about
*now*: "no unhandled exceptions" can already fail for good, while
"every won deal set up" fails until the core catches up. The final sample
(after healing and quiescence) is the run's verdict, the same one
`syncbed run` prints.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

__all__ = ["WorldSample", "InvariantResult", "QueueItem", "sample_world", "kpi_number"]

END_ONLY = ("liveness",)  # names of invariants that mean nothing before the end


@attrs.frozen
class InvariantResult:
    name: str
    ok: bool | None  # None: not decided yet (checked at the end)
    violations: tuple[str, ...] = ()


@attrs.frozen
class QueueItem:
    queue: str  # outbox | dlq | exceptions
    key: str  # the item's id (an outbox message id, or "domain:id")
    op: str
    aggregate: str
    corr: str | None
    attempts: int
    reason: str
    since_us: int | None  # enqueued / dead / opened, business time (core clock)


@attrs.frozen
class WorldSample:
    t: int
    final: bool
    invariants: tuple[InvariantResult, ...]
    kpis: tuple[tuple[str, Any], ...]
    queues: tuple[QueueItem, ...]
    error: str | None = None

    def queue(self, name: str) -> list[QueueItem]:
        return [q for q in self.queues if q.queue == name]

    @property
    def failed(self) -> list[InvariantResult]:
        return [i for i in self.invariants if i.ok is False]


def kpi_number(value: Any) -> float | None:
    """A KPI as a number for a sparkline (KPIs are ints or decimal strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Decimal(value))
        except InvalidOperation:
            return None
    return None


def _queues(dump: dict) -> tuple[QueueItem, ...]:
    items = []
    for key, m in sorted(dump.get("msgs", {}).items()):
        items.append(QueueItem("outbox", key, str(m.get("op")), str(m.get("aggregate")), m.get("corr"),
                               int(m.get("attempts") or 0), str(m.get("last_error") or ""), m.get("enqueued_us")))
    for key, m in sorted(dump.get("dlq", {}).items()):
        items.append(QueueItem("dlq", key, str(m.get("op")), str(m.get("aggregate")), m.get("corr"),
                               int(m.get("attempts") or 0), str(m.get("reason") or ""), m.get("dead_us")))
    for key, m in sorted(dump.get("exceptions", {}).items()):
        reason = " ".join(str(x) for x in (m.get("code"), m.get("message") or m.get("reason")) if x)
        items.append(QueueItem("exceptions", key, str(m.get("op")), str(m.get("aggregate")), m.get("corr"),
                               int(m.get("attempts") or 0), reason, m.get("opened_us")))
    return tuple(items)


def _results(raw: list[dict], final: bool) -> tuple[InvariantResult, ...]:
    out = []
    for inv in raw:
        name = str(inv.get("name"))
        ok = bool(inv.get("ok"))
        if not final and name.startswith(END_ONLY):
            out.append(InvariantResult(name, None))
        else:
            out.append(InvariantResult(name, ok, tuple(str(v) for v in inv.get("violations", []))))
    return tuple(out)


def sample_world(built, outcome: dict | None) -> WorldSample:
    """Sample a world between events; `outcome` is the run's (None: the
    script is still running)."""
    plan, sim, world = built.plan, built.sim, built.world
    final = outcome is not None and "quiet" in outcome
    try:
        if plan.business:
            from harness.invariants import check_world

            raw = check_world(world, outcome if final else {"quiet": None})
            if final and plan.target.expectations is not None:
                raw = raw + list(plan.target.expectations(world))
            kpis = tuple(sorted(world.kpis().items()))
            queues = _queues(world.store.dump())
        else:
            raw = plan.target.check(world) if final else []
            kpis = tuple(sorted(plan.target.counts(world).items()))
            queues = ()
    except Exception as exc:  # an invariant written for the end, asked too early
        return WorldSample(sim.now_us, final, (), (), (), f"{type(exc).__name__}: {exc}")
    return WorldSample(sim.now_us, final, _results(raw, final), kpis, queues)

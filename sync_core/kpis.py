"""The seeds' KPIs as the core itself can measure them, traced as ``core.kpi``.

The harness computes the same KPIs from the fakes' ground truth to judge a
run (`harness.kpis`); these are the numbers production middleware would put
on a dashboard, from its own store and what the reconciliation job read.
Each emission traces one ``core.kpi`` event per KPI, ``{"kpi": name,
"value": ..., <detail>}``: integers and decimal strings only (the trace is
canonical JSON without floats) -- hours with two places, shares in percent
with two places, money per currency. A spread over an empty population
reports its count alone, never a flattering zero.

  project_setup_hours      closed-won seen (the provisioning record's
                           ``planned_us``) -> the PSA project activated (the
                           activation step done); one event per deal when it
                           happens, then count / median / p90 / max and the
                           deals still awaiting setup at each emission
  billing_lag_hours        approval seen (the posting decision, which queues
                           the billing step) -> its invoice item created
                           (the billing step done); the items billed since
                           the last emission
  unbilled_approved_time   approved T&M value not (yet) on an invoice item,
                           per currency, from the reconciliation's figures
  revenue_schedule_mismatches  months whose recognised T&M revenue differs
                           from the approved value (reconciliation)
  dlq_depth                dead letters, by system, and the oldest's age
  exception_age_hours      open exceptions per domain: count, oldest, median
  traceability_coverage_percent  postings on the core's projects whose source
                           reference resolves to a record the core holds

Two durations are measured when they end, inside the transaction that
completes the operation -- `instrument` wraps the operations'
``on_success`` -- so a crash can neither lose nor double a sample. KPIs are
emitted after every reconciliation run and, with ``config["kpis"]
["every_s"]``, on that interval too.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .dispatcher import Operation
from .flows.quote_deal import DEALS as PROVISIONING
from .outbox import system_of
from .ports import Transaction
from .reconciliation import DEALS as TRACED
from .reconciliation import RESULTS
from .retry import DOMAINS

if TYPE_CHECKING:
    from .core import ReferenceCore

__all__ = ["CoreKpis", "SAMPLES", "SETUP", "hours", "spread"]

SAMPLES = "kpi_samples"  # "billing_lag\x00<at_us:020d>\x00<msg id>" -> lag in us, until the next emission
SETUP = "kpi_setup"  # deal -> {"won_seen_us", "activated_us"}
ACTIVATE = "psa.activate_deal_project"
BILL = "billing.bill_time_entry"
HOUR_US = 3_600_000_000
_SEP = "\x00"


def hours(us: int) -> str:
    return format((Decimal(us) / HOUR_US).quantize(Decimal("0.01")), "f")


def spread(samples: list[int]) -> dict:
    """count, and of durations (us) in hours: median (the lower, as the
    harness reports it), p90 (nearest rank) and max."""
    out: dict[str, Any] = {"count": len(samples)}
    if samples:
        ordered = sorted(samples)
        out.update(median=hours(ordered[(len(ordered) - 1) // 2]),
                   p90=hours(ordered[math.ceil(0.9 * len(ordered)) - 1]), max=hours(ordered[-1]))
    return out


def _observed(inner: Callable | None, observe: Callable[[Transaction, dict, Any, int], None]) -> Callable:
    def on_success(txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        if inner is not None:
            inner(txn, message, result, now_us)
        if not (isinstance(result, dict) and result.get("skipped")):  # a step with nothing to do measures nothing
            observe(txn, message, result, now_us)
    return on_success


class CoreKpis:
    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        raw = core.config.get("kpis") or {}
        every = raw.get("every_s") if isinstance(raw, dict) else raw
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every <= 0):
            raise ValueError(f"config kpis.every_s must be a whole number of seconds above zero, not {every!r}")
        self.every_s = every

    def instrument(self, operations: list[Operation]) -> list[Operation]:
        """The operations, with the two whose completion ends a measured
        duration observed."""
        observers = {ACTIVATE: self._activated, BILL: self._billed}
        return [attrs.evolve(op, on_success=_observed(op.on_success, observers[op.name])) if op.name in observers
                else op for op in operations]

    def _activated(self, txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        deal = message["payload"]["deal"]
        if txn.get(SETUP, deal) is not None:
            return  # activated once; a replayed step measures nothing new
        won = (txn.get(PROVISIONING, deal) or {}).get("planned_us", message["enqueued_us"])
        txn.put(SETUP, deal, {"won_seen_us": won, "activated_us": now_us})
        self.core.trace("core.kpi", {"kpi": "project_setup_hours", "deal": deal, "value": hours(max(0, now_us - won))},
                        corr=f"deal:{deal}", cause=message["id"])

    def _billed(self, txn: Transaction, message: dict, result: Any, now_us: int) -> None:
        # The billing step was queued by the decision that saw the approval
        # (with the entry's other postings, in one transaction), so its
        # enqueue time is when the approval was seen.
        txn.put(SAMPLES, f"billing_lag{_SEP}{now_us:020d}{_SEP}{message['id']}", max(0, now_us - message["enqueued_us"]))

    async def run(self) -> None:
        if self.every_s is None:
            return
        while True:
            await trio.sleep(self.every_s)
            self.emit()

    # ------------------------------------------------------------ emitting

    def emit(self, *, cause: str | None = None) -> list[dict]:
        """Measure and trace every KPI now; returns the events' payloads."""
        now = self.core.now_us()
        with self.core.env.store.transaction() as txn:
            events = [self._setup(txn), self._billing_lag(txn), *self._reconciled(txn), self._dlq(txn, now),
                      self._exceptions(txn, now), self._traceability(txn)]
        events = [{k: v for k, v in data.items() if v is not None} for data in events]
        for data in events:
            self.core.trace("core.kpi", data, cause=cause)
        return events

    def _setup(self, txn: Transaction) -> dict:
        done = {deal: row for deal, row in txn.scan(SETUP)}
        awaiting = sum(1 for deal, rec in txn.scan(PROVISIONING) if rec.get("state") != "not_won" and deal not in done)
        stats = spread([max(0, r["activated_us"] - r["won_seen_us"]) for _, r in sorted(done.items())])
        return {"kpi": "project_setup_hours", "value": stats.get("median"), **stats, "awaiting": awaiting}

    def _billing_lag(self, txn: Transaction) -> dict:
        rows = list(txn.scan(SAMPLES, prefix=f"billing_lag{_SEP}"))
        for key, _ in rows:
            txn.delete(SAMPLES, key)  # each item counts in one emission's window
        stats = spread([lag for _, lag in rows])
        return {"kpi": "billing_lag_hours", "value": stats.get("median"), **stats}

    def _reconciled(self, txn: Transaction) -> list[dict]:
        unbilled: dict[str, Decimal] = defaultdict(Decimal)
        months = unbilled_months = mismatched = 0
        deals: set[str] = set()
        for _, row in txn.scan(RESULTS):
            fig = row.get("figures")
            if fig is None:
                continue
            months += 1
            gap = Decimal(fig["psa"]["amount"]) - Decimal(fig["billing"]["net"])
            if gap > 0:
                unbilled[fig["currency"] or "?"] += gap
                unbilled_months += 1
            if row["status"] == "different" and Decimal(fig["revenue"]["recognised"]) != Decimal(fig["psa"]["amount"]):
                mismatched += 1
                deals.add(row["deal"])
        return [
            {"kpi": "unbilled_approved_time", "value": {c: format(v, "f") for c, v in sorted(unbilled.items())},
             "months": unbilled_months},
            {"kpi": "revenue_schedule_mismatches", "value": mismatched, "deals": len(deals), "months_checked": months},
        ]

    def _dlq(self, txn: Transaction, now: int) -> dict:
        by_system: Counter = Counter()
        oldest = None
        for _, item in txn.scan("dlq"):
            by_system[system_of(str(item.get("op") or "?"))] += 1
            if isinstance(item.get("dead_us"), int):
                oldest = item["dead_us"] if oldest is None else min(oldest, item["dead_us"])
        out = {"kpi": "dlq_depth", "value": sum(by_system.values()), "by_system": dict(sorted(by_system.items()))}
        if oldest is not None:
            out["oldest_hours"] = hours(max(0, now - oldest))
        return out

    def _exceptions(self, txn: Transaction, now: int) -> dict:
        domains = {}
        for domain in DOMAINS:
            ages, unaged = [], 0
            for _, item in txn.scan("exceptions", prefix=f"{domain}:"):
                opened = item.get("opened_us")
                if isinstance(opened, int) and not isinstance(opened, bool):
                    ages.append(max(0, now - opened))
                else:
                    unaged += 1  # opened without a time (a poller's refusal): counted, not aged
            stats = spread(ages)
            domains[domain] = {"open": len(ages) + unaged, "unaged": unaged,
                               **({"oldest": stats["max"], "median": stats["median"]} if ages else {})}
        oldest = max((d["oldest"] for d in domains.values() if "oldest" in d), key=Decimal, default=None)
        return {"kpi": "exception_age_hours", "value": oldest, "domains": domains}

    def _traceability(self, txn: Transaction) -> dict:
        postings = traceable = deals = 0
        untraceable: list[str] = []
        for _, row in txn.scan(TRACED):
            deals += 1
            postings += row["postings"]
            traceable += row["traceable"]
            untraceable.extend(row["untraceable"][: max(0, 10 - len(untraceable))])
        out = {"kpi": "traceability_coverage_percent", "postings": postings, "traceable": traceable, "deals": deals,
               "untraceable": untraceable}
        out["value"] = format((Decimal(100) * traceable / postings).quantize(Decimal("0.01")), "f") if postings else None
        return out

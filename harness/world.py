"""A business world: the firm, its seven systems, and a sync core, on one seed.

`BusinessWorld` builds, for (scenario, seed, chaos profile, core factory):

  * the firm, drawn by the seed (`fake_systems.firm_generator`);
  * the seven fake systems, each seeded with what it held before the
    integration went live: the CRM its accounts and deals (won ones too,
    their change events still in its feed), the PSA, HRIS and ERP their
    people, entities and dimensions. The world starts at go-live: projects,
    customers, schedules and revenue contracts for the deals won earlier are
    the core's to provision, like those won during the run;
  * the core, hosted as the actor "core" with its own durable store and its
    webhook subscriptions registered;
  * the `Driver` the scenario script uses to act as the firm's people.

Then it runs the script, heals every fault, waits for quiescence and hands
itself to the invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from fake_systems.billing import Billing
from fake_systems.crm import Crm
from fake_systems.erp import Erp
from fake_systems.expenses import Expenses
from fake_systems.firm_generator import FirmParams, generate_firm
from fake_systems.hris import Hris
from fake_systems.psa import Psa
from fake_systems.revenue_engine import RevenueEngine
from simulator import HOUR, MINUTE, BusinessCalendar, ChaosProfile, Simulation
from sync_core.dispatcher import now_us
from sync_core.outbox import Outbox
from sync_core.ports import Environment
from sync_core.stores import MemoryStore, SqliteStore

from .core_host import CORE, CoreActor

__all__ = ["BusinessWorld", "SYSTEMS", "STORES", "Quiescence"]

SYSTEMS = ["billing", "crm", "erp", "expenses", "hris", "psa", "revenue"]
# The core's durable store: in-memory (simulation speed) or SQLite (the real one).
STORES = ("memory", "sqlite")
# Quiet must last this long. A core reads most changes by polling, and an idle
# poller waits up to ten minutes (sync_core.pollers.IDLE_MAX_S) between reads,
# and a polled feed shows a change some seconds late: a window shorter than
# that could end before the core has even looked.
SETTLE_US = 15 * MINUTE


class Quiescence:
    """The world is quiet when the core says it is idle (nothing queued,
    every poller caught up), nothing is in flight on the network, and that
    stays true -- with no vendor effect happening -- for a settle window."""

    def __init__(self, world: BusinessWorld) -> None:
        self.world = world

    def _effects(self) -> int:
        counts = self.world.sim.trace.kind_counts
        return counts.get("vendor.effect", 0) + counts.get("core.op.done", 0)

    def now(self) -> bool:
        w = self.world
        return w.core.idle() and w.sim.network.in_flight == 0

    async def wait(self, limit_us: int) -> bool:
        kernel = self.world.sim.kernel
        while kernel.now_us < limit_us:
            await kernel.run_until_quiet(self.now, limit_us=limit_us)
            if kernel.now_us >= limit_us:
                break
            mark = self._effects()
            await kernel.run_until(min(limit_us, kernel.now_us + SETTLE_US))
            # The window's end may fall while a routine poll is in flight:
            # judge the window once that has landed, not at an instant.
            await kernel.run_until_quiet(self.now, limit_us=limit_us)
            if self.now() and self._effects() == mark:
                return True
        return False


class BusinessWorld:
    def __init__(
        self,
        *,
        seed: int,
        chaos: ChaosProfile,
        core_factory: Callable[[Environment], Any],
        header: dict,
        firm_params: FirmParams,
        zones: dict[str, str] | None = None,
        store: str = "memory",
        core_config: dict | None = None,
        trace_sink=None,
        keep_trace: bool = False,
    ) -> None:
        if store not in STORES:
            raise ValueError(f"store {store!r}: not a store; give one of {', '.join(STORES)}")
        start = firm_params.start
        calendar = BusinessCalendar(
            datetime.combine(start, time(0), tzinfo=UTC),
            zones=zones or {},
            skews_us={name: sf.clock_skew for name, sf in chaos.systems if sf.clock_skew},
        )
        self.sim = sim = Simulation(
            seed, chaos=chaos, header=header, calendar=calendar, trace_sink=trace_sink, keep_trace=keep_trace
        )
        self.firm = generate_firm(firm_params, sim.streams)
        self.crm = sim.add(Crm("crm"))
        self.psa = sim.add(Psa("psa"))
        self.erp = sim.add(Erp("erp"))
        self.billing = sim.add(Billing("billing"))
        self.revenue = sim.add(RevenueEngine("revenue", first_open_period=f"{start:%Y-%m}"))
        self.hris = sim.add(Hris("hris"))
        self.expenses = sim.add(Expenses("expenses"))
        self.fakes = {name: sim.actors[name] for name in SYSTEMS}
        self.crm.load_firm(self.firm, emit_events=True)
        self.psa.load_firm(self.firm, projects=False)
        self.erp.load_firm(self.firm)
        self.hris.load_firm(self.firm)
        # The store is the core's private business: either gives the same run
        # (tests/harness/test_store_equivalence.py).
        self.store = MemoryStore() if store == "memory" else SqliteStore()
        self.core = sim.add(CoreActor(sim, core_factory, self.store, SYSTEMS, core_config))
        self.billing.register_webhook(f"{CORE}:/webhooks/billing")
        self.quiescence = Quiescence(self)
        self.liveness_limit_us = 14 * 24 * HOUR

    def replay_dead_letter(self, msg_id: str) -> bool:
        """An operator replays a dead letter through the core's outbox
        (a core with its own ``replay_dead_letter`` does it itself); False
        if it is not in the dead-letter queue."""
        core = self.core.core
        if core is None:
            raise ValueError("the core has not started yet")
        if callable(getattr(core, "replay_dead_letter", None)):
            return bool(core.replay_dead_letter(msg_id))
        with self.store.transaction() as txn:
            done = Outbox.replay_dead_letter(txn, msg_id, now_us(core.dispatcher.env))
        core.dispatcher.wake()
        return done

    def retry_exception(self, key: str) -> bool:
        """An operator sends an exception-queue item (``domain:msg_id``) back
        to be tried again, as above; False if it is not in the queue."""
        core = self.core.core
        if core is None:
            raise ValueError("the core has not started yet")
        if callable(getattr(core, "retry_exception", None)):
            return bool(core.retry_exception(key))
        domain, _, msg_id = key.partition(":")
        with self.store.transaction() as txn:
            done = Outbox.resolve_exception(txn, domain, msg_id, retry=True, now_us=now_us(core.dispatcher.env))
        core.dispatcher.wake()
        return done

    def kpis(self) -> dict:
        from .kpis import world_kpis

        return world_kpis(self)

    def run(self, script) -> dict:
        """Run `script(driver)`; then heal, reach quiescence, and report
        what happened (for the invariants)."""
        from .driver import Driver

        sim = self.sim
        driver = Driver(self)
        outcome: dict[str, Any] = {}

        async def main():
            sim.start_all()
            driver.start_pmo()
            await script(driver)
            outcome["script_ended_us"] = sim.now_us
            sim.heal()
            outcome["quiet"] = await self.quiescence.wait(sim.now_us + self.liveness_limit_us)
            outcome["quiet_at_us"] = sim.now_us

        sim.run(main)
        return outcome

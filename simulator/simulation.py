"""One world's kernel, random streams, trace, network, calendar and actors.

`Simulation` is what the harness builds a world on. It knows no business:
actors are names, faults are data. Typical use::

    sim = Simulation(seed=7, chaos=load_profile("default"), header={...})
    ledger = sim.add(Ledger("ledger"))

    async def main():
        sim.start_all()
        await sim.kernel.run_until(2 * HOUR)
        ...

    sim.run(main)
    print(sim.trace.fingerprint)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from . import __version__
from .actors import Actor
from .calendar import BusinessCalendar
from .faults import ChaosProfile, SystemFaults, Window, builtin_profiles
from .kernel import Kernel, Timer
from .network import Network
from .random_streams import RandomStreams
from .trace import TraceRecorder

__all__ = ["Simulation"]


class Simulation:
    def __init__(
        self,
        seed: int,
        *,
        chaos: ChaosProfile | None = None,
        header: dict | None = None,
        calendar: BusinessCalendar | None = None,
        trace_sink=None,
        keep_trace: bool = False,
    ) -> None:
        self.seed = seed
        self.chaos = chaos if chaos is not None else builtin_profiles()["none"]
        self.kernel = Kernel(seed)
        self.streams = RandomStreams(seed)
        self.calendar = calendar if calendar is not None else BusinessCalendar(
            skews_us={name: sf.clock_skew for name, sf in self.chaos.systems if sf.clock_skew}
        )
        base = {"scenario": None, "core": None, "config": {}}
        base.update(header or {})
        base.update(
            seed=seed,
            chaos=self.chaos.to_dict(),
            syncbed=__version__,
            epoch=self.calendar.epoch.isoformat(),
        )
        self.trace = TraceRecorder(self._now, base, sink=trace_sink, keep=keep_trace)
        self.network = Network(self.kernel, self.streams, self.trace, self.chaos)
        self.actors: dict[str, Actor] = {}
        self.healed = False
        self._fault_timers: list[Timer] = []

    def _now(self) -> int:
        return self.kernel.now_us

    @property
    def now_us(self) -> int:
        return self.kernel.now_us

    # ------------------------------------------------------------ actors

    def add(self, actor: Actor) -> Actor:
        if actor.name in self.actors:
            raise ValueError(f"an actor named {actor.name!r} already exists in this world")
        actor.sim = self
        self.actors[actor.name] = actor
        self.network.attach(actor)
        return actor

    def _actor(self, actor: Actor | str) -> Actor:
        return self.actors[actor] if isinstance(actor, str) else actor

    def start(self, actor: Actor | str) -> None:
        a = self._actor(actor)
        a._start()
        self.trace.record("actor.start", {"generation": a.generation}, src=a.name)

    def start_all(self) -> None:
        for name in sorted(self.actors):
            if not self.actors[name].running:
                self.start(name)

    def crash(self, actor: Actor | str, reason: str = "injected") -> None:
        """Kill the actor: tasks cancelled, timers void, volatile state lost."""
        a = self._actor(actor)
        a._halt("crashed")
        self.trace.record("actor.crash", {"generation": a.generation, "reason": reason}, src=a.name)

    def stop(self, actor: Actor | str) -> None:
        a = self._actor(actor)
        a._halt("stopped")
        self.trace.record("actor.stop", {"generation": a.generation}, src=a.name)

    def restart(self, actor: Actor | str) -> None:
        a = self._actor(actor)
        if a.running:
            return
        a._start()
        self.trace.record("actor.restart", {"generation": a.generation}, src=a.name)

    # ------------------------------------------------------------ faults

    def _schedule_process_faults(self) -> None:
        kernel = self.kernel
        for w in self.chaos.windows_of("crash"):
            self._fault_timers.append(kernel.call_at(max(w.start, kernel.now_us), self._crash_fault, w.target, "window"))
            self._fault_timers.append(kernel.call_at(max(w.end, kernel.now_us), self._restart_fault, w.target))
        process = self.chaos.process
        if process.crash_every is not None:
            for name in process.actors:
                rng = self.streams.rng(f"process.{name}")
                self._schedule_random_crash(name, rng)

    def _schedule_random_crash(self, name: str, rng: random.Random) -> None:
        process = self.chaos.process
        gap = max(1, int(rng.expovariate(1 / process.crash_every)))

        def crash_then_restart() -> None:
            self._crash_fault(name, "random")
            self._fault_timers.append(self.kernel.call_later(process.restart_after, restart_then_next))

        def restart_then_next() -> None:
            self._restart_fault(name)
            self._schedule_random_crash(name, rng)

        self._fault_timers.append(self.kernel.call_later(gap, crash_then_restart))

    def _crash_fault(self, name: str, why: str) -> None:
        a = self.actors.get(name)
        if a is not None and a.running:
            self.trace.record("fault.crash", {"actor": name, "why": why})
            self.crash(a, reason=f"chaos ({why})")

    def _restart_fault(self, name: str) -> None:
        a = self.actors.get(name)
        if a is not None and not a.running and a.state == "crashed":
            self.restart(a)

    def inject(self, window: Window) -> None:
        """Add a fault window while the world runs (scenario API)."""
        if window.kind in ("partition", "hold", "slow"):
            self.network.add_window(window)
        elif window.kind == "crash":
            self._fault_timers.append(self.kernel.call_at(max(window.start, self.now_us), self._crash_fault, window.target, "injected"))
            self._fault_timers.append(self.kernel.call_at(max(window.end, self.now_us), self._restart_fault, window.target))
        else:
            target = self.actors.get(window.target)
            if target is None:
                raise ValueError(f"cannot inject a {window.kind} window: no actor named {window.target!r}")
            self.trace.record("chaos.inject", window.to_dict())
            target.inject(window)

    def inject_link(self, rule) -> None:
        """Add a `LinkRule` while the world runs (scenario API): it holds,
        over the profile's rules, until the world heals."""
        if self.healed:
            raise RuntimeError("the world is healed: faults can no longer be injected")
        self.network.add_link_rule(rule)

    def inject_lost_answer(self, callee: str, caller: str, methods: tuple[str, ...]) -> None:
        """Lose, once, the next successful answer `callee` gives `caller` to
        a request of one of `methods` (scenario API): a fault the script
        makes sure of rather than leaves to a rate. Void once the world heals."""
        if self.healed:
            raise RuntimeError("the world is healed: faults can no longer be injected")
        self.network.lose_next_answer(callee, caller, methods)

    def inject_system(self, name: str, faults: SystemFaults) -> SystemFaults:
        """Lay vendor faults over `name`'s while the world runs (scenario
        API): each field of `faults` that is not the default replaces the
        profile's; they hold until the world heals. Returns what is in force."""
        if self.healed:
            raise RuntimeError("the world is healed: faults can no longer be injected")
        default = SystemFaults()
        changes = {k: getattr(faults, k) for k in SystemFaults.KEYS if getattr(faults, k) != getattr(default, k)}
        if "clock_skew" in changes:
            raise ValueError("clock skew is fixed when the world starts (it shapes the calendar); set it in the profile")
        merged = attrs.evolve(self.chaos.system(name), **changes)
        systems = dict(self.chaos.systems)
        systems[name] = merged
        self.chaos = attrs.evolve(self.chaos, systems=tuple(sorted(systems.items())))
        self.network.set_system_faults(name, merged)
        self.trace.record("chaos.inject", {"system": name, "faults": faults.to_dict()})
        return merged

    def heal(self) -> None:
        """Stop every fault from now on (the harness's liveness phase):
        network faults end, crash timers are void, crashed actors restart.
        Fake systems read `healed` for their own faults."""
        self.healed = True
        for timer in self._fault_timers:
            timer.cancel()
        self._fault_timers.clear()
        self.network.heal()
        for name in sorted(self.actors):
            if self.actors[name].state == "crashed":
                self.restart(name)

    # ------------------------------------------------------------ running

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        """Run `main` on virtual time and close the trace; returns main's result."""

        async def wrapped():
            self._schedule_process_faults()
            return await main()

        try:
            return self.kernel.run(wrapped)
        finally:
            self.trace.close()

    def subscribe(self, observer: Callable[[dict], None]) -> None:
        """Call `observer(event)` for every trace event from now on."""
        self.trace.observers.append(observer)

"""Which world to run, resolved and checked before the UI starts.

The UI runs exactly the world `syncbed run` would -- same scenario, seed,
chaos profile, core and trace header -- so a live session that nobody
steers writes the same trace, fingerprint for fingerprint (a test holds
this). Bad input raises the harness's `InputError`, which the CLI turns into
one line and exit status 2.
"""

from __future__ import annotations

from typing import Any

import attrs

from harness import demo_world
from harness.runner import DEFAULT_CHAOS, InputError, load_core, resolve_chaos, resolve_scenario
from harness.scenario_api import Scenario
from simulator import ChaosProfile, ProfileError, Simulation

__all__ = ["WorldPlan", "plan_live", "plan_rerun", "BuiltWorld"]


@attrs.frozen
class WorldPlan:
    scenario: str
    seed: int
    chaos_spec: str
    profile: ChaosProfile
    core: str | None  # --core as given (None: the reference core)
    store: str
    target: Any  # a Scenario, or a kernel-demo style module
    factory: Any  # the core factory (business worlds)
    header: dict

    @property
    def business(self) -> bool:
        return isinstance(self.target, Scenario)

    @property
    def center(self) -> str:
        return "core" if self.business else self.target.CORE

    @property
    def systems(self) -> list[str]:
        if self.business:
            from harness.world import SYSTEMS

            return list(SYSTEMS)
        return list(self.target.SYSTEMS)

    def build(self, sink) -> BuiltWorld:
        """Construct the world (not started); trace lines go to `sink`."""
        if self.business:
            from harness.runner import FirmParams  # fake_systems' FirmParams, as the harness hands it on
            from harness.world import BusinessWorld

            s = self.target
            world = BusinessWorld(
                seed=self.seed, chaos=self.profile, core_factory=self.factory, header=self.header,
                firm_params=FirmParams(**s.firm), zones=s.zones, store=self.store,
                core_config=s.core_config, trace_sink=sink,
            )
            return BuiltWorld(self, world.sim, world)
        sim = Simulation(self.seed, chaos=self.profile, header=self.header, trace_sink=sink)
        return BuiltWorld(self, sim, self.target.build(sim))


@attrs.define
class BuiltWorld:
    plan: WorldPlan
    sim: Simulation
    world: Any  # BusinessWorld, or the demo's world dict


def plan_live(scenario: str, seed: int, chaos: str | None, core: str | None) -> WorldPlan:
    """Mirror `harness.runner.run_world`'s resolution of its inputs."""
    target = resolve_scenario(scenario)
    business = isinstance(target, Scenario)
    if chaos is None:
        chaos = target.default_chaos if business else DEFAULT_CHAOS
    if business:
        core_label, factory = load_core(core)
    else:
        if core is not None:
            raise InputError(f"--core {core}: the {scenario} world has its own built-in client; cores plug into the business scenarios")
        core_label, factory = f"builtin:{target.CORE}", None
    profile = resolve_chaos(chaos, seed, target)
    header = {"scenario": scenario, "core": core_label, "config": {"chaos_spec": chaos, "store": "memory"}}
    return WorldPlan(scenario, seed, chaos, profile, core, "memory", target, factory, header)


def plan_rerun(header: dict, source: str) -> WorldPlan:
    """The world a trace header describes (as `syncbed replay` reads it)."""
    scenario = header.get("scenario")
    if not isinstance(scenario, str):
        raise InputError(f"{source}: the header names no scenario, so the run cannot be repeated")
    target = resolve_scenario(scenario)
    try:
        profile = ChaosProfile.from_dict(header.get("chaos"), source=f"{source} header.chaos")
    except ProfileError as exc:
        raise InputError(str(exc)) from None
    seed = header.get("seed")
    if not isinstance(seed, int):
        raise InputError(f"{source}: the header has no whole-number seed")
    config = header.get("config") or {}
    chaos_spec = config.get("chaos_spec", profile.name)
    core = header.get("core")
    core = None if core is None or core.startswith("builtin:") else core
    store = config.get("store", "memory")
    business = isinstance(target, Scenario)
    if business:
        core_label, factory = load_core(core)
    else:
        core_label, factory = f"builtin:{target.CORE}", None
    rebuilt = {"scenario": scenario, "core": core_label, "config": {"chaos_spec": chaos_spec, "store": store}}
    return WorldPlan(scenario, seed, chaos_spec, profile, core, store, target, factory, rebuilt)


def layout_of(header: dict) -> tuple[str, list[str]]:
    """(center, systems) for a trace header, without running anything."""
    try:
        target = resolve_scenario(header.get("scenario") or "")
    except InputError:
        target = None
    if isinstance(target, Scenario) or (isinstance(header.get("core"), str) and not header["core"].startswith("builtin:")):
        from harness.world import SYSTEMS

        return "core", list(SYSTEMS)
    if target is not None and hasattr(target, "CORE"):
        return target.CORE, list(target.SYSTEMS)
    core = header.get("core") or ""
    if core.startswith("builtin:"):
        center = core.split(":", 1)[1]
        return center, list(demo_world.SYSTEMS) if center == demo_world.CORE else []
    return "core", []

"""Run one world from (scenario, seed, chaos profile, core) and report on it.

Two kinds of world share the report's shape: the business scenarios (the
firm, seven fake systems and a sync core -- `harness.world`) and the
kernel's own demo world (`harness.demo_world`), which needs no core.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import time
from pathlib import Path
from typing import Any

from fake_systems.firm_generator import FirmParams
from simulator import DAY, HOUR, ChaosProfile, Simulation, load_profile, swarm_profile
from simulator.faults import ProfileError

from . import demo_world
from .scenario_api import Scenario, ScenarioError, find_scenario

DEFAULT_SCENARIO = "quote-to-cash"
DEFAULT_CHAOS = "default"
REFERENCE_CORE = "sync_core.core:ReferenceCore"


class InputError(Exception):
    """Bad user input: the message names the input, the problem and the fix."""


class CoreFactoryError(Exception):
    """The core's factory raised when the world started (or restarted) it."""


# ------------------------------------------------------------------ inputs


def resolve_scenario(name: str) -> Scenario | Any:
    if name == demo_world.SCENARIO:
        return demo_world
    try:
        return find_scenario(name)
    except ScenarioError as exc:
        raise InputError(str(exc)) from None


def load_core(spec: str | None):
    """``module:factory`` (or ``path/file.py:factory``) -> (label, factory)."""
    spec = spec or REFERENCE_CORE
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"--core {spec!r}: write MODULE:FACTORY, e.g. --core mypackage.core:make_core")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InputError(f"--core {spec}: no file {module_name}")
            mod_spec = importlib.util.spec_from_file_location(f"syncbed_core_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except ModuleNotFoundError as exc:
        raise InputError(
            f"--core {spec}: no module named {exc.name!r}; check the spelling and that it is importable "
            "(installed, or on PYTHONPATH)"
        ) from None
    except Exception as exc:
        raise InputError(f"--core {spec}: importing {module_name} raised {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise InputError(f"--core {spec}: {module_name} has no {attr!r}; name a factory defined in it")
    if not callable(factory):
        raise InputError(f"--core {spec}: {attr} is {type(factory).__name__} {factory!r:.40}, not a callable; "
                         "name a factory(env) -> core")

    def guarded(env):
        try:
            return factory(env)
        except Exception as exc:
            raise CoreFactoryError(f"--core {spec}: the factory raised {type(exc).__name__}: {exc}") from exc

    return spec, guarded


def resolve_chaos(spec: str, seed: int, target) -> ChaosProfile:
    if spec == "swarm":
        if isinstance(target, Scenario):
            from .world import SYSTEMS

            return swarm_profile(seed, horizon_us=target.horizon_days * DAY, systems=SYSTEMS, core="core")
        return swarm_profile(seed, horizon_us=12 * HOUR, systems=target.SYSTEMS, core=target.CORE)
    try:
        return load_profile(spec)
    except ProfileError as exc:
        raise InputError(str(exc)) from None


def reproduce_command(scenario: str, seed: int, chaos: str, core: str | None = None, store: str = "memory") -> str:
    words = ["syncbed", "run", shlex.quote(scenario), "--seed", str(seed), "--chaos", shlex.quote(chaos)]
    if core:
        words += ["--core", shlex.quote(core)]
    if store != "memory":
        words += ["--store", store]
    return " ".join(words)


def _factory_error(exc: BaseException) -> CoreFactoryError | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, CoreFactoryError):
            return seen
        if isinstance(seen, BaseExceptionGroup):
            for inner in seen.exceptions:
                found = _factory_error(inner)
                if found is not None:
                    return found
        seen = seen.__cause__ or seen.__context__
    return None


# ------------------------------------------------------------------ running


def run_world(
    scenario: str,
    seed: int,
    chaos: str | None = None,
    trace_path: str | None = None,
    *,
    profile: ChaosProfile | None = None,
    keep_trace: bool = False,
    core: str | None = None,
    store: str = "memory",
) -> dict:
    """Run the world and return its report (a JSON-ready dict).

    `profile` overrides `chaos` (replay passes the profile a trace
    recorded); `keep_trace` puts the trace lines in the report.
    """
    from .world import STORES

    if store not in STORES:
        raise InputError(f"--store {store}: no such store; give --store memory (in-process, the default) "
                         "or --store sqlite (the real one)")
    target = resolve_scenario(scenario)
    if chaos is None:
        chaos = target.default_chaos if isinstance(target, Scenario) else DEFAULT_CHAOS
    if target is demo_world or not isinstance(target, Scenario):
        if core is not None:
            raise InputError(f"--core {core}: the {scenario} world has its own built-in client; cores plug into the business scenarios")
        core_label = f"builtin:{target.CORE}"
    else:
        core_label, factory = load_core(core)
    if profile is None:
        profile = resolve_chaos(chaos, seed, target)
    header = {"scenario": scenario, "core": core_label, "config": {"chaos_spec": chaos, "store": store}}
    sink = None
    if trace_path is not None:
        try:
            sink = Path(trace_path).open("w", encoding="ascii", newline="\n")
        except OSError as exc:
            raise InputError(f"--trace {trace_path}: cannot write there ({exc.strerror}); give a writable file path") from None
    started = time.perf_counter()  # wall time for the report only, never the simulation
    try:
        if isinstance(target, Scenario):
            sim, invariants, counts, kpis = _run_business(target, seed, profile, factory, header, sink, keep_trace, store)
        else:
            sim, invariants, counts, kpis = _run_demo(target, seed, profile, header, sink, keep_trace)
    except BaseException as exc:
        found = _factory_error(exc)
        if found is not None:
            raise InputError(str(found)) from None
        raise
    finally:
        if sink is not None:
            sink.close()
    wall = time.perf_counter() - started
    faults = {k: v for k, v in sorted(sim.trace.kind_counts.items()) if k.startswith("fault.")}
    report = {
        "scenario": scenario,
        "seed": seed,
        "chaos": profile.name,
        "chaos_spec": chaos,
        "chaos_profile": profile.to_dict(),
        "core": core_label,
        "trace_sha256": sim.trace.fingerprint,
        "trace_file": trace_path,
        "virtual_seconds": sim.now_us // 1_000_000,
        "wall_seconds": round(wall, 3),
        "events": sim.trace.seq,
        "faults": faults,
        "counts": counts,
        "invariants": invariants,
        "kpis": kpis,
        "ok": all(i["ok"] for i in invariants),
        "reproduce": reproduce_command(scenario, seed, chaos, core, store),
    }
    if keep_trace:
        report["trace_lines"] = sim.trace.lines
    return report


def _run_demo(module, seed, profile, header, sink, keep_trace):
    sim = Simulation(seed, chaos=profile, header=header, trace_sink=sink, keep_trace=keep_trace)
    world = module.build(sim)
    sim.run(lambda: module.script(sim, world))
    return sim, module.check(world), module.counts(world), {}


def _run_business(scenario: Scenario, seed, profile, factory, header, sink, keep_trace, store):
    from .invariants import check_world
    from .world import BusinessWorld

    world = BusinessWorld(
        seed=seed,
        chaos=profile,
        core_factory=factory,
        header=header,
        firm_params=FirmParams(**scenario.firm),
        zones=scenario.zones,
        store=store,
        core_config=scenario.core_config,
        trace_sink=sink,
        keep_trace=keep_trace,
    )
    outcome = world.run(scenario.script)
    invariants = check_world(world, outcome)
    if scenario.expectations is not None:
        invariants += scenario.expectations(world)
    counts = {name: fake.counts() for name, fake in sorted(world.fakes.items())}
    return world.sim, invariants, counts, world.kpis()


def format_report(report: dict) -> str:
    lines = [
        f"syncbed run: {report['scenario']}  seed {report['seed']}  chaos {report['chaos']}  core {report['core']}",
        f"  virtual time  {report['virtual_seconds']} s   wall {report['wall_seconds']} s   events {report['events']}",
        f"  trace         sha256 {report['trace_sha256']}" + (f"  ({report['trace_file']})" if report["trace_file"] else ""),
    ]
    lines.append("  chaos profile " + f"\n{'':16}".join(ChaosProfile.from_dict(report["chaos_profile"]).describe()))
    if report["faults"]:
        lines.append("  faults fired  " + ", ".join(f"{k[6:]} {v}" for k, v in report["faults"].items()))
    else:
        lines.append("  faults fired  none")
    for system, c in sorted(report["counts"].items()):
        lines.append(f"  {system:<13} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if report["kpis"]:
        lines.append("  kpis          " + ", ".join(f"{k} {v}" for k, v in sorted(report["kpis"].items())))
    lines.append("  invariants")
    for inv in report["invariants"]:
        lines.append(f"    {'ok  ' if inv['ok'] else 'FAIL'}  {inv['name']}")
        for v in inv["violations"][:10]:
            lines.append(f"          {v}")
        if len(inv["violations"]) > 10:
            lines.append(f"          ... and {len(inv['violations']) - 10} more")
    verdict = "all invariants hold" if report["ok"] else "INVARIANT VIOLATED"
    lines.append(f"  result        {verdict}")
    lines.append(f"  reproduce     {report['reproduce']}")
    return "\n".join(lines)


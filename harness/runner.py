"""Run one world from (scenario, seed, chaos) and report on it.

Until the scenario library and the full harness land, the only scenario is
the kernel's demo world; the report already has the shape the harness
issue asks for, so tools built on ``syncbed run --json`` keep working.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from simulator import HOUR, ChaosProfile, Simulation, load_profile, swarm_profile
from simulator.faults import ProfileError

from . import demo_world

DEFAULT_SCENARIO = demo_world.SCENARIO
DEFAULT_CHAOS = "default"
SCENARIOS = {demo_world.SCENARIO: demo_world}


class InputError(Exception):
    """Bad user input: the message names the input, the problem and the fix."""


def resolve_scenario(name: str):
    """A built-in scenario by name, or a scenario file by path."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name.endswith(".py"):
        return _load_scenario_file(name)
    raise InputError(
        f"scenario {name!r}: no such scenario; available: {', '.join(sorted(SCENARIOS))} "
        "(or give the path of a scenario .py file)"
    )


def _load_scenario_file(path: str):
    import importlib.util

    file = Path(path)
    if not file.is_file():
        raise InputError(f"scenario file {path}: no such file; check the path")
    spec = importlib.util.spec_from_file_location(f"syncbed_scenario_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"scenario file {path}: importing it raised {type(exc).__name__}: {exc}") from None
    missing = [name for name in ("SCENARIO", "SYSTEMS", "CORE", "build", "script", "check", "counts") if not hasattr(module, name)]
    if missing:
        raise InputError(f"scenario file {path}: missing {', '.join(missing)}; see the scenario guide in the README")
    return module


def resolve_chaos(spec: str, seed: int, module) -> ChaosProfile:
    if spec == "swarm":
        return swarm_profile(seed, horizon_us=12 * HOUR, systems=module.SYSTEMS, core=module.CORE)
    try:
        return load_profile(spec)
    except ProfileError as exc:
        raise InputError(str(exc)) from None


def reproduce_command(scenario: str, seed: int, chaos: str, core: str | None = None) -> str:
    words = ["syncbed", "run", shlex.quote(scenario), "--seed", str(seed), "--chaos", shlex.quote(chaos)]
    if core:
        words += ["--core", shlex.quote(core)]
    return " ".join(words)


def run_world(
    scenario: str,
    seed: int,
    chaos: str = DEFAULT_CHAOS,
    trace_path: str | None = None,
    *,
    profile: ChaosProfile | None = None,
    keep_trace: bool = False,
    core: str | None = None,
) -> dict:
    """Run the world and return its report (a JSON-ready dict).

    `profile` overrides `chaos` (replay passes the profile a trace recorded);
    `keep_trace` puts the trace lines in the report under "trace_lines".
    """
    module = resolve_scenario(scenario)
    if core is not None:
        raise InputError(f"--core {core}: the {scenario} world has its own built-in client; cores plug into the business scenarios")
    if profile is None:
        profile = resolve_chaos(chaos, seed, module)
    header = {"scenario": scenario, "core": f"builtin:{module.CORE}", "config": {"chaos_spec": chaos}}
    sink = None
    if trace_path is not None:
        try:
            sink = Path(trace_path).open("w", encoding="ascii", newline="\n")
        except OSError as exc:
            raise InputError(f"--trace {trace_path}: cannot write there ({exc.strerror}); give a writable file path") from None
    started = time.perf_counter()  # wall time for the report only, never the simulation
    try:
        sim = Simulation(seed, chaos=profile, header=header, trace_sink=sink, keep_trace=keep_trace)
        world = module.build(sim)
        sim.run(lambda: module.script(sim, world))
    finally:
        if sink is not None:
            sink.close()
    wall = time.perf_counter() - started
    invariants = module.check(world)
    faults = {k: v for k, v in sorted(sim.trace.kind_counts.items()) if k.startswith("fault.")}
    report = {
        "scenario": scenario,
        "seed": seed,
        "chaos": profile.name,
        "chaos_spec": chaos,
        "chaos_profile": profile.to_dict(),
        "core": header["core"],
        "trace_sha256": sim.trace.fingerprint,
        "trace_file": trace_path,
        "virtual_seconds": sim.now_us // 1_000_000,
        "wall_seconds": round(wall, 3),
        "events": sim.trace.seq,
        "faults": faults,
        "counts": module.counts(world),
        "invariants": invariants,
        "kpis": {},
        "ok": all(i["ok"] for i in invariants),
        "reproduce": reproduce_command(scenario, seed, chaos),
    }
    if keep_trace:
        report["trace_lines"] = sim.trace.lines
    return report


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
    lines.append("  invariants")
    for inv in report["invariants"]:
        lines.append(f"    {'ok  ' if inv['ok'] else 'FAIL'}  {inv['name']}")
        for v in inv["violations"]:
            lines.append(f"          {v}")
    verdict = "all invariants hold" if report["ok"] else "INVARIANT VIOLATED"
    lines.append(f"  result        {verdict}")
    lines.append(f"  reproduce     {report['reproduce']}")
    return "\n".join(lines)

"""One scenario and seed, either store: the same run (issue 4, acceptance 4).

The store is the core's private business, and an SQLite call takes no
virtual time, so the in-memory and the SQLite store must give not just the
same business outcome -- every record of all seven systems, every effect
they logged, every row the core committed -- but the very same events.

The trace *fingerprints* differ, for one legitimate reason: the header
records the store (``config.store``), so that `syncbed replay` runs a trace
on the store it was recorded with, and the fingerprint covers the header.
So the tests compare the events, line by line, and the header minus that
one key.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fake_systems.firm_generator import FirmParams
from harness.cli import main
from harness.scenario_api import find_scenario
from harness.world import BusinessWorld
from simulator.faults import ChaosProfile, load_profile
from sync_core.core import ReferenceCore

ROOT = Path(__file__).resolve().parents[2]


def crashy_default() -> ChaosProfile:
    """The default weather, and the core crashing every couple of hours --
    where the stores' rollbacks and restarts are exercised."""
    return ChaosProfile.from_dict({**load_profile("default").to_dict(), "name": "default+crashes",
                                   "process": {"actors": ["core"], "crash_every": "2h", "restart_after": "30s"}})


async def half_month(d):
    """Deals close, people work and file expenses, a billing run."""
    for deal in d.deals_closing(0):
        d.close_deal(deal)
    await d.advance(days=1)
    d.play_month(0)
    d.submit_expenses(0)
    await d.advance(days=12)
    d.run_billing()
    await d.advance(days=3)


def run(store: str, *, chaos: ChaosProfile, script, firm: FirmParams, core_config: dict | None = None,
        zones: dict | None = None) -> tuple[BusinessWorld, dict]:
    world = BusinessWorld(seed=1, chaos=chaos, core_factory=ReferenceCore,
                          header={"scenario": "store-equivalence", "config": {"store": store}},
                          firm_params=firm, zones=zones, store=store, core_config=core_config, keep_trace=True)
    return world, world.run(script)


def outcome(world: BusinessWorld) -> dict:
    """The business outcome: what every system holds and did, and what the
    core committed."""
    return {
        "systems": {name: {"tables": fake.durable.tables, "effects": fake.durable.effects}
                    for name, fake in sorted(world.fakes.items())},
        "core": world.store.dump(),
    }


def header_without_store(world: BusinessWorld) -> dict:
    header = json.loads(world.sim.trace.lines[0])
    assert header["config"].pop("store") in ("memory", "sqlite")
    return header


def events(world: BusinessWorld) -> list[str]:
    """The trace between its header and its end line (whose fingerprint
    covers the header)."""
    lines = world.sim.trace.lines
    assert json.loads(lines[-1]).get("end") is True
    return lines[1:-1]


def assert_same_run(memory: BusinessWorld, sqlite: BusinessWorld) -> None:
    assert type(sqlite.store).__name__ == "SqliteStore" and type(memory.store).__name__ == "MemoryStore"
    assert header_without_store(memory) == header_without_store(sqlite)
    events_m, events_s = events(memory), events(sqlite)
    first = next((i for i, (a, b) in enumerate(zip(events_m, events_s)) if a != b), None)
    assert first is None and len(events_m) == len(events_s), (
        f"the runs part at event {first}:\n  memory {events_m[first][:300]}\n  sqlite {events_s[first][:300]}"
        if first is not None else f"{len(events_m)} events on memory, {len(events_s)} on SQLite")
    assert outcome(memory) == outcome(sqlite)


def test_half_a_month_with_crashes_is_the_same_run_on_either_store():
    firm = FirmParams(consultants=10)
    config = {"poll_interval": {"crm": 300.0, "psa": 300.0, "expenses": 600.0}}
    memory, out_m = run("memory", chaos=crashy_default(), script=half_month, firm=firm, core_config=config)
    sqlite, out_s = run("sqlite", chaos=crashy_default(), script=half_month, firm=firm, core_config=config)
    assert out_m == out_s and out_m["quiet"]
    kinds = memory.sim.trace.kind_counts
    assert kinds.get("fault.crash", 0) > 50 and kinds.get("core.op.done", 0) > 200, "a run that proves something"
    assert_same_run(memory, sqlite)


@pytest.mark.slow
def test_quote_to_cash_seed_1_is_the_same_run_on_either_store():
    scenario = find_scenario("quote-to-cash")
    worlds = [run(store, chaos=load_profile(scenario.default_chaos), script=scenario.script,
                  firm=FirmParams(**scenario.firm), core_config=scenario.core_config, zones=scenario.zones)[0]
              for store in ("memory", "sqlite")]
    assert_same_run(*worlds)


# ------------------------------------------------------------------ the command line


def test_syncbed_run_takes_the_store_and_says_so_in_the_trace(tmp_path, capsys):
    trace = tmp_path / "run.jsonl"
    assert main(["run", "kernel-demo", "--store", "sqlite", "--trace", str(trace), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reproduce"].endswith("--store sqlite")
    assert json.loads(trace.read_text().splitlines()[0])["config"]["store"] == "sqlite"


def test_syncbed_run_with_an_unknown_store_names_the_choices_and_exits_2():
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "kernel-demo", "--store", "postgres"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "--store postgres" in done.stderr and "memory" in done.stderr and "sqlite" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_world_refuses_an_unknown_store():
    with pytest.raises(ValueError, match="'postgres': not a store; give one of memory, sqlite"):
        BusinessWorld(seed=1, chaos=load_profile("none"), core_factory=ReferenceCore, header={},
                      firm_params=FirmParams(consultants=5), store="postgres")

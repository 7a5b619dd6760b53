"""The business world: every fake seeded, a month played out, and the whole
thing deterministic across processes."""

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.idle_world import month_of_work

ROOT = Path(__file__).resolve().parents[2]


def fingerprint_in_subprocess(seed: int, hash_seed: str) -> str:
    out = subprocess.run([sys.executable, "-m", "tests.harness.idle_world", str(seed)], cwd=ROOT,
                         env=dict(os.environ, PYTHONHASHSEED=hash_seed), capture_output=True, text=True,
                         check=True, timeout=300)
    return out.stdout.strip()


def test_a_month_of_people_work_lands_in_the_systems():
    world = month_of_work(5)
    psa = world.psa
    approved = [t for t in psa.table("time_entries").values() if t["status"] == "approved"]
    assert len(approved) > 500  # ~25 consultants x ~40 entries, most approved
    assert world.expenses.records("reports")
    assert world.sim.trace.kind_counts["vendor.effect"] > 1000


def test_the_world_is_identical_across_processes_and_hash_seeds():
    prints = {fingerprint_in_subprocess(5, h) for h in ("0", "1", "99")}
    assert len(prints) == 1
    assert prints.pop() == month_of_work(5).sim.trace.fingerprint


def test_another_seed_gives_another_world():
    assert month_of_work(5).sim.trace.fingerprint != month_of_work(6).sim.trace.fingerprint

"""Chaos sweeps: shards, failures with traces and shrunk profiles, JUnit,
the run database, and a sweep killed part-way."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.runner import InputError
from harness.sweep import parse_seed_range, parse_shard, shard_seeds

ROOT = Path(__file__).resolve().parents[2]
KEYLESS = str(ROOT / "tests" / "harness" / "keyless_scenario.py")


def syncbed(*args, cwd, env=None):
    full_env = dict(os.environ, SYNCBED_HOME=str(Path(cwd) / ".syncbed"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)


def test_shards_cover_the_range_exactly_once():
    seeds = parse_seed_range("3..52")
    assert list(seeds) == list(range(3, 53))
    for n in (1, 2, 3, 7):
        parts = [shard_seeds(seeds, (k, n)) for k in range(1, n + 1)]
        flat = [s for p in parts for s in p]
        assert sorted(flat) == list(seeds) and len(flat) == len(set(flat))


@pytest.mark.parametrize("text", ["5", "a..b", "9..2", "1...3"])
def test_bad_seed_ranges_are_refused(text):
    with pytest.raises(InputError, match="--seeds"):
        parse_seed_range(text)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "x/y", "1/"])
def test_bad_shards_are_refused(text):
    with pytest.raises(InputError, match="--shard"):
        parse_shard(text)


def test_cli_shards_together_run_every_seed_once(tmp_path):
    seen = []
    for shard in ("1/2", "2/2"):
        r = syncbed("chaos", "kernel-demo", "--seeds", "0..9", "--shard", shard, "--json", "--workers", "2", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        seen += json.loads(r.stdout)["seeds"]
    assert sorted(seen) == list(range(10))


def test_a_failing_sweep_writes_traces_shrinks_and_reports_in_junit(tmp_path):
    junit = tmp_path / "chaos.xml"
    r = syncbed("chaos", KEYLESS, "--seeds", "0..3", "--chaos", "harsh", "--junit", str(junit), "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    result = json.loads(r.stdout)
    assert result["failed"], "the keyless ledger should duplicate transfers under harsh chaos"
    failure = result["failed"][0]
    assert failure["invariants"][0]["name"] == "exactly-once-transfers"
    assert (tmp_path / failure["trace"]).is_file()  # relative to the sweep's directory
    assert failure["shrunk_size"] <= failure["original_size"]
    # The shrunk profile alone still reproduces the same failure.
    words = failure["reproduce_shrunk"].split()
    rerun = syncbed(*words[1:], "--json", cwd=tmp_path)
    assert rerun.returncode == 1
    rep = json.loads(rerun.stdout)
    assert not {i["name"]: i for i in rep["invariants"]}["exactly-once-transfers"]["ok"]
    # JUnit: valid XML, one case per seed, failures carry the reproduce command.
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert len(cases) == 4 and int(suite.get("failures")) == len(result["failed"])
    failed_cases = [c for c in cases if c.find("failure") is not None]
    assert all("reproduce: syncbed run" in c.find("failure").text for c in failed_cases)


def test_a_killed_sweep_keeps_what_it_recorded_and_the_next_starts_with_failures(tmp_path):
    killed = syncbed("chaos", KEYLESS, "--seeds", "0..40", "--chaos", "harsh", "--workers", "1", "--no-shrink",
                     cwd=tmp_path, env={"SYNCBED_TEST_KILL_AT": "4"})
    assert killed.returncode == -9
    from harness.rundb import RunDatabase

    db = RunDatabase(tmp_path / ".syncbed")
    recorded = db.runs()
    assert 1 <= len(recorded) <= 4 and {r["seed"] for r in recorded} <= {0, 1, 2, 3}
    failing = db.failing_seeds(KEYLESS, "harsh", "reference")
    assert failing, "harsh chaos should have broken the keyless ledger on an early seed"
    db.close()
    nxt = syncbed("chaos", KEYLESS, "--seeds", "10..11", "--chaos", "harsh", "--json", "--no-shrink", cwd=tmp_path)
    result = json.loads(nxt.stdout)
    assert result["remembered_failures_rerun"] == failing
    assert result["seeds"][: len(failing)] == failing or set(failing) <= set(result["seeds"])


def test_check_determinism_finds_no_divergence(tmp_path):
    r = syncbed("chaos", "kernel-demo", "--seeds", "0..5", "--check-determinism", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["determinism"]
    assert d == {"checked": True, "runs_compared": 6, "divergent": []}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["chaos", "kernel-demo", "--seeds", "9..1"], "--seeds"),
        (["chaos", "kernel-demo", "--seeds", "0..3", "--shard", "3/2"], "--shard"),
        (["chaos", "missing.py", "--seeds", "0..3"], "no such file"),
        (["chaos", "kernel-demo", "--seeds", "0..3", "--chaos", "bad.toml"], "no such file"),
        (["chaos", "kernel-demo", "--seeds", "0..3", "--budget", "-1"], "--budget"),
        (["run", "kernel-demo", "--core", "mycore:make"], "--core"),
    ],
)
def test_bad_sweep_input_gets_one_message_and_exit_2(tmp_path, args, fragment):
    r = syncbed(*args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1

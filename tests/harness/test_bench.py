"""The benchmarks measure what they claim to; their speed is never asserted here."""

import json
import os
import subprocess
import sys

from harness.bench import LATENCY_US, simpy_round_trips, syncbed_round_trips


def test_both_sides_of_the_kernel_benchmark_simulate_the_same_round_trips():
    # The ratio is only meaningful if SimPy's model does the same work on the
    # same virtual timeline: every request reaches the server, and each round
    # trip costs one latency out and one back.
    n = 300
    _, ours_count, ours_us = syncbed_round_trips(n)
    _, theirs_count, theirs_us = simpy_round_trips(n)
    assert ours_count == theirs_count == n
    assert ours_us == theirs_us == 2 * LATENCY_US * n


def test_the_month_end_benchmark_runs_the_scenario_users_run(tmp_path):
    # The bench's child must measure `syncbed run month-end-close`, not a
    # lighter stand-in: the same firm size and seed give the same fingerprint.
    env = dict(os.environ, SYNCBED_CONSULTANTS="3")
    child = subprocess.run(
        [sys.executable, "-c", "from harness.bench import month_end_child; month_end_child(1)"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "month-end-close", "--seed", "1", "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    report = json.loads(run.stdout)
    assert figures["trace_sha256"] == report["trace_sha256"]
    assert figures["events"] == report["events"]
    assert figures["consultants"] == 3 and figures["ok"] is report["ok"] is True
    assert figures["time_entries"] == report["counts"]["psa"]["time_entries"] > 0
    assert figures["erp_postings"] == report["counts"]["erp"]["projectActuals"] > 0

"""The syncbed command: reports, exit statuses, and one clear message for
every kind of bad input (never a traceback)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, demo_world
from harness.runner import run_world
from simulator import Request, Response, Simulation, load_profile

ROOT = Path(__file__).resolve().parents[2]


def syncbed(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_clear_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_version_and_help():
    v = syncbed("--version")
    assert v.returncode == 0 and v.stdout.startswith("syncbed ")
    h = syncbed("--help")
    assert h.returncode == 0
    for command in ("run", "replay", "profile", "bench"):
        assert command in h.stdout


def test_the_default_scenario_is_quote_to_cash():
    args = cli.build_parser().parse_args(["run"])
    assert args.scenario == "quote-to-cash"


def test_run_json_report_has_the_promised_fields():
    r = syncbed("run", "kernel-demo", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for key in (
        "scenario", "seed", "chaos", "core", "trace_sha256", "virtual_seconds", "wall_seconds",
        "events", "faults", "counts", "invariants", "kpis", "reproduce",
    ):
        assert key in report
    assert report["seed"] == 3 and report["chaos"] == "default"
    assert all(set(i) >= {"name", "ok", "violations"} for i in report["invariants"])
    assert report["reproduce"] == "syncbed run kernel-demo --seed 3 --chaos default"


def test_text_report_is_readable():
    r = syncbed("run", "kernel-demo", "--seed", "2", "--chaos", "harsh")
    assert r.returncode == 0, r.stderr
    assert "all invariants hold" in r.stdout and "reproduce" in r.stdout and "faults fired" in r.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "--seed", "abc"], ["--seed", "'abc' is not a whole number"]),
        (["run", "--seed", "-4"], ["--seed", "negative"]),
        (["run", "no-such-scenario"], ["no-such-scenario", "available"]),
        (["run", "--chaos", "hurricane"], ["hurricane", "not a built-in profile"]),
        (["run", "--chaos", "missing.toml"], ["missing.toml", "no such file"]),
        (["run", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["frobnicate"], ["invalid choice", "frobnicate"]),
        (["replay", "nowhere.jsonl"], ["nowhere.jsonl", "no such file"]),
        (["profile", "storm"], ["storm", "not a built-in profile"]),
        (["bench", "--round-trips", "0"], ["--round-trips", "at least 1"]),
        (["bench", "month-end", "--consultants", "500,lots"], ["--consultants", "whole numbers"]),
        (["bench", "month-end", "--consultants", "0"], ["--consultants", "from 1 to 50000"]),
        (["bench", "nothing"], ["invalid choice: 'nothing'"]),
    ],
)
def test_bad_arguments_get_one_message_and_exit_2(args, fragments):
    assert_one_clear_error(syncbed(*args), *fragments)


def test_bad_profile_file_names_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[links]]\nrequest_loss = 1.5\n')
    assert_one_clear_error(syncbed("run", "--chaos", str(bad)), "links[0].request_loss", "outside 0..1")
    worse = tmp_path / "worse.toml"
    worse.write_text("name = [unclosed\n")
    assert_one_clear_error(syncbed("run", "--chaos", str(worse)), "worse.toml", "not valid TOML")


def test_a_profile_file_is_used_and_its_faults_fire(tmp_path):
    f = tmp_path / "lossy.json"
    f.write_text(json.dumps({"name": "lossy", "links": [{"response_loss": "20%", "latency": {"model": "fixed", "delay": "5ms"}}]}))
    r = syncbed("run", "kernel-demo", "--seed", "1", "--chaos", str(f), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["chaos"] == "lossy"
    assert report["faults"]["fault.response_lost"] > 10


def test_recorded_trace_replays_identically(tmp_path):
    trace = tmp_path / "run.jsonl"
    r = syncbed("run", "kernel-demo", "--seed", "4", "--chaos", "swarm", "--trace", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    recorded = json.loads(r.stdout)["trace_sha256"]
    rep = syncbed("replay", str(trace), "--json")
    assert rep.returncode == 0, rep.stderr
    result = json.loads(rep.stdout)
    assert result["identical"] and result["recorded_sha256"] == recorded


@pytest.mark.parametrize(
    "mangle, fragment",
    [
        (lambda text: text[: len(text) // 2], "truncated"),
        (lambda text: "".join(text.splitlines(keepends=True)[:-1]), "end record is missing"),
        (lambda text: "not json at all\n", "line 1"),
        (lambda text: "", "is empty"),
        (lambda text: text.replace('"version":1', '"version":99', 1), "version 99 is not supported"),
    ],
)
def test_bad_trace_files_get_one_message_and_exit_2(tmp_path, mangle, fragment):
    trace = tmp_path / "run.jsonl"
    assert syncbed("run", "kernel-demo", "--seed", "1", "--trace", str(trace)).returncode == 0
    trace.write_text(mangle(trace.read_text()))
    assert_one_clear_error(syncbed("replay", str(trace)), str(trace), fragment)


def test_a_diverging_replay_names_the_first_divergent_event(tmp_path):
    # Change the recorded seed's world underneath the trace: replay must
    # say where the two runs part ways and exit 1.
    trace = tmp_path / "run.jsonl"
    assert syncbed("run", "kernel-demo", "--seed", "1", "--trace", str(trace)).returncode == 0
    lines = trace.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["seed"] = 2
    # Re-sign the edited file so only the content differs, not its integrity.
    import hashlib

    from simulator.trace import canonical_json

    body = [canonical_json(header) + "\n"] + lines[1:-1]
    sha = hashlib.sha256("".join(body).encode()).hexdigest()
    body.append(canonical_json({"end": True, "events": len(lines) - 2, "sha256": sha}) + "\n")
    trace.write_text("".join(body))
    rep = syncbed("replay", str(trace), "--json")
    assert rep.returncode == 1
    result = json.loads(rep.stdout)
    assert not result["identical"] and result["first_divergence"]["line"] >= 1


def test_profile_command_prints_a_swarm_draw_per_seed():
    a = syncbed("profile", "swarm", "--seed", "5")
    b = syncbed("profile", "swarm", "--seed", "6")
    assert a.returncode == b.returncode == 0
    assert json.loads(a.stdout)["name"] == "swarm:5"
    assert a.stdout != b.stdout


def test_the_demo_invariants_catch_a_client_without_idempotency_keys(monkeypatch):
    # The checker must be able to fail: strip the idempotency key and lose
    # responses after commit, and exactly-once must be violated.
    original = demo_world.Ledger._post_transfer

    def keyless(self, request):
        headers = {k: v for k, v in request.headers.items() if k != "idempotency-key"}
        return original(self, Request(request.method, request.path, request.query, headers, request.json))

    monkeypatch.setattr(demo_world.Ledger, "_post_transfer", keyless)
    report = run_world("kernel-demo", 1, "harsh")
    by_name = {i["name"]: i for i in report["invariants"]}
    assert not by_name["exactly-once-transfers"]["ok"]
    assert "applied 2 times" in by_name["exactly-once-transfers"]["violations"][0]
    assert by_name["nothing-lost"]["ok"]


@pytest.mark.parametrize(
    "core, fragments",
    [
        ("nosuch.module:make", ("--core nosuch.module:make", "no module named 'nosuch'")),
        ("missing_core.py:make", ("--core missing_core.py:make", "no file missing_core.py")),
        ("broken_core.py:absent", ("broken_core.py has no 'absent'", "name a factory")),
        ("broken_core.py:RATE", ("RATE is int ", "not a callable", "name a factory(env) -> core")),
        ("broken_core.py:make", ("the factory raised RuntimeError: no API credentials configured",)),
        ("justaname", ("write MODULE:FACTORY",)),
    ],
)
def test_a_bad_core_gets_one_message_and_exit_2(tmp_path, core, fragments):
    # A missing module, a missing or non-callable name and a factory that
    # raises are the user's mistakes: one line naming --core, never a
    # traceback, never exit 3 (which would blame syncbed).
    (tmp_path / "broken_core.py").write_text(
        "RATE = 3\n\ndef make(env):\n    raise RuntimeError('no API credentials configured')\n")
    assert_one_clear_error(syncbed("run", "quote-to-cash", "--core", core, cwd=tmp_path), *fragments)

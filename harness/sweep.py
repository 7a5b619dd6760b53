"""Chaos sweeps: one scenario over many seeds, in parallel processes.

Seeds run in a pool of worker processes (one per core by default). Each
result is written to the run database the moment it arrives. Seeds that
failed last time run first. A failing seed gets its trace written to disk
and its fault schedule shrunk to the faults that matter, with a command that
reproduces it. ``--check-determinism`` runs every seed a second time in a
second pool started under a different PYTHONHASHSEED and compares the
fingerprints.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import attrs

from simulator.faults import ChaosProfile

from .rundb import RunDatabase
from .runner import InputError, reproduce_command, resolve_chaos, resolve_scenario, run_world
from .shrink import shrink_profile

__all__ = ["SweepConfig", "run_sweep", "parse_seed_range", "parse_shard", "shard_seeds"]


def parse_seed_range(text: str) -> range:
    """``"0..49"`` -> seeds 0 to 49 inclusive."""
    a, sep, b = text.partition("..")
    if not sep or not a.strip().isdigit() or not b.strip().isdigit():
        raise InputError(f"--seeds {text!r}: write a range like 0..49 (both ends included)")
    lo, hi = int(a), int(b)
    if hi < lo:
        raise InputError(f"--seeds {text!r}: the range ends before it starts; write the smaller seed first")
    return range(lo, hi + 1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): the second of four interleaved shards."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise InputError(f"--shard {text!r}: write K/N with 1 <= K <= N, e.g. --shard 1/2")
    return int(k), int(n)


def shard_seeds(seeds: range, shard: tuple[int, int] | None) -> list[int]:
    if shard is None:
        return list(seeds)
    k, n = shard
    return [s for i, s in enumerate(seeds) if i % n == k - 1]


@attrs.frozen
class SweepConfig:
    scenario: str
    seeds: range
    chaos: str = "swarm"
    core: str | None = None
    workers: int = 0  # 0: one per core
    budget_s: float | None = None
    shard: tuple[int, int] | None = None
    check_determinism: bool = False
    shrink: bool = True
    trace_dir: Path = Path(".syncbed/traces")


def _one(scenario: str, seed: int, chaos: str, core: str | None, profile: dict | None, trace: str | None) -> dict:
    """Runs in a worker process."""
    p = ChaosProfile.from_dict(profile) if profile is not None else None
    report = run_world(scenario, seed, chaos, trace, profile=p, core=core)
    report.pop("trace_lines", None)
    return report


def _pool(workers: int, hash_seed: str) -> ProcessPoolExecutor:
    # Workers inherit the environment at spawn; PYTHONHASHSEED set here
    # makes a second pool hash differently from the first.
    old = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = hash_seed
    try:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    finally:
        if old is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = old


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.tty = sys.stderr.isatty()

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self.tty:
            width = 30
            filled = width * self.done // max(1, self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} seeds, {self.failed} failing")
            sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def run_sweep(cfg: SweepConfig, db: RunDatabase | None = None) -> dict:
    module = resolve_scenario(cfg.scenario)
    resolve_chaos(cfg.chaos, 0, module)  # fail fast on a bad profile
    core_label = cfg.core or "reference"
    db = db or RunDatabase()
    planned = shard_seeds(cfg.seeds, cfg.shard)
    remembered = [s for s in db.failing_seeds(cfg.scenario, cfg.chaos, core_label) if s not in planned]
    order = remembered + planned
    workers = cfg.workers or os.cpu_count() or 1
    started = time.perf_counter()
    progress = _Progress(len(order))
    reports: dict[int, dict] = {}
    second: dict[int, str] = {}
    stopped_by_budget = False

    def over_budget() -> bool:
        return cfg.budget_s is not None and time.perf_counter() - started > cfg.budget_s

    pools = [_pool(workers, "0")]
    if cfg.check_determinism:
        pools.append(_pool(workers, "4242"))
    try:
        pending = {}
        queue = list(order)
        while queue or pending:
            while queue and len(pending) < 2 * workers * len(pools) and not over_budget():
                seed = queue.pop(0)
                for which, pool in enumerate(pools):
                    fut = pool.submit(_one, cfg.scenario, seed, cfg.chaos, cfg.core, None, None)
                    pending[fut] = (seed, which)
            if queue and over_budget():
                stopped_by_budget = True
                queue.clear()
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                seed, which = pending.pop(fut)
                report = fut.result()
                if which == 1:
                    second[seed] = report["trace_sha256"]
                    continue
                reports[seed] = report
                db.record(dict(report, chaos_spec=cfg.chaos), core_label)
                progress.step(report["ok"])
    finally:
        progress.close()
        for pool in pools:
            pool.shutdown(cancel_futures=True)

    failures = []
    for seed in sorted(s for s, r in reports.items() if not r["ok"]):
        failures.append(_explain_failure(cfg, reports[seed], core_label, over_budget))
    divergent = sorted(s for s, fp in second.items() if s in reports and reports[s]["trace_sha256"] != fp)
    wall = time.perf_counter() - started
    return {
        "scenario": cfg.scenario,
        "chaos": cfg.chaos,
        "core": core_label,
        "seeds": sorted(reports),
        "remembered_failures_rerun": remembered,
        "passed": sum(1 for r in reports.values() if r["ok"]),
        "failed": failures,
        "determinism": {"checked": cfg.check_determinism, "runs_compared": len(second), "divergent": divergent},
        "stopped_by_budget": stopped_by_budget,
        "workers": workers,
        "wall_seconds": round(wall, 2),
        "seeds_per_minute": round(len(reports) / wall * 60, 1) if wall else None,
        "reports": {s: _brief(r) for s, r in sorted(reports.items())},
    }


def _brief(report: dict) -> dict:
    return {
        "ok": report["ok"],
        "trace_sha256": report["trace_sha256"],
        "failed_invariants": [i["name"] for i in report["invariants"] if not i["ok"]],
        "reproduce": report["reproduce"],
    }


def _file_stem(scenario: str) -> str:
    """A scenario given as a path names its files by the file's stem: the
    path itself would put them beside the scenario, outside the trace
    directory."""
    return Path(scenario).stem if scenario.endswith(".py") else scenario


def _explain_failure(cfg: SweepConfig, report: dict, core_label: str, over_budget) -> dict:
    """Write the failing seed's trace, shrink its faults, say how to reproduce."""
    seed = report["seed"]
    cfg.trace_dir.mkdir(parents=True, exist_ok=True)
    trace = cfg.trace_dir / f"{_file_stem(cfg.scenario)}-{seed}.jsonl"
    run_world(cfg.scenario, seed, cfg.chaos, str(trace), core=cfg.core)
    failed = [i for i in report["invariants"] if not i["ok"]]
    target = failed[0]["name"]
    item = {
        "seed": seed,
        "invariants": [{"name": i["name"], "violations": i["violations"][:5]} for i in failed],
        "trace": str(trace),
        "reproduce": report["reproduce"],
    }
    if cfg.shrink and not over_budget():
        original = ChaosProfile.from_dict(report["chaos_profile"])

        def still_fails(profile: ChaosProfile) -> bool:
            r = run_world(cfg.scenario, seed, cfg.chaos, None, profile=profile, core=cfg.core)
            return any(i["name"] == target and not i["ok"] for i in r["invariants"])

        small, removed, runs = shrink_profile(original, still_fails)
        path = cfg.trace_dir / f"{_file_stem(cfg.scenario)}-{seed}.shrunk.json"
        path.write_text(small.to_json())
        item.update(
            shrunk_profile=str(path),
            original_size=original.size(),
            shrunk_size=small.size(),
            shrink_runs=runs,
            removed=removed,
            reproduce_shrunk=reproduce_command(cfg.scenario, seed, str(path), cfg.core),
        )
    return item


def format_sweep(result: dict) -> str:
    lines = [
        f"syncbed chaos: {result['scenario']}  chaos {result['chaos']}  core {result['core']}",
        f"  seeds {len(result['seeds'])}  passed {result['passed']}  failed {len(result['failed'])}"
        f"  ({result['wall_seconds']} s, {result['seeds_per_minute']} seeds/min, {result['workers']} workers)",
    ]
    if result["remembered_failures_rerun"]:
        lines.append(f"  re-ran remembered failures first: {result['remembered_failures_rerun']}")
    if result["stopped_by_budget"]:
        lines.append("  stopped early: the time budget ran out")
    if result["determinism"]["checked"]:
        d = result["determinism"]
        lines.append(f"  determinism: {d['runs_compared']} seeds re-run under another hash seed, divergent: {d['divergent'] or 'none'}")
    for f in result["failed"]:
        lines.append(f"  FAIL seed {f['seed']}: " + ", ".join(i["name"] for i in f["invariants"]))
        for inv in f["invariants"]:
            for v in inv["violations"][:3]:
                lines.append(f"       {v}")
        lines.append(f"       trace      {f['trace']}")
        lines.append(f"       reproduce  {f['reproduce']}")
        if "shrunk_profile" in f:
            lines.append(
                f"       shrunk     {f['original_size']} -> {f['shrunk_size']} faults in {f['shrink_runs']} runs: "
                f"{f['reproduce_shrunk']}"
            )
    return "\n".join(lines)


def junit_xml(result: dict) -> str:
    """One test case per scenario and seed; failures carry the invariant,
    its messages and the reproduce command."""
    from xml.sax.saxutils import escape, quoteattr

    failures = {f["seed"]: f for f in result["failed"]}
    cases = []
    for seed in result["seeds"]:
        name = quoteattr(f"{result['scenario']}[seed={seed}]")
        cls = quoteattr(f"syncbed.chaos.{result['scenario']}")
        if seed in failures:
            f = failures[seed]
            message = quoteattr(", ".join(i["name"] for i in f["invariants"]))
            body = "\n".join(
                [f"{i['name']}: {v}" for i in f["invariants"] for v in i["violations"]]
                + [f"reproduce: {f['reproduce']}"]
                + ([f"reproduce (shrunk): {f['reproduce_shrunk']}"] if "reproduce_shrunk" in f else [])
            )
            cases.append(f'  <testcase classname={cls} name={name}><failure message={message}>{escape(body)}</failure></testcase>')
        else:
            cases.append(f"  <testcase classname={cls} name={name}/>")
    head = (
        f'<testsuite name={quoteattr("syncbed chaos " + result["scenario"])} tests="{len(result["seeds"])}" '
        f'failures="{len(failures)}" time="{result["wall_seconds"]}">'
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "\n" + "\n".join(cases) + "\n</testsuite>\n"


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, sort_keys=True, indent=2) + "\n")

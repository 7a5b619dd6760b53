"""``syncbed selftest``: the harness tested against cores known to be wrong.

A testbed whose invariants pass everything proves nothing. The catalogue
(`harness.buggy_cores`) holds reference cores with one realistic bug each;
for every one the self-test

  1. runs it on the scenarios meant to expose it, seeds 0..N-1 in turn,
     each with the scenario's own chaos profile, until an invariant fails
     -- the one the bug is meant to trip if it did, else the first in report
     order;
  2. shrinks that run's fault schedule to the faults the failure needs
     (`harness.shrink.shrink_quickly`: none at all, each fault alone, then
     one removal at a time) and writes the small profile to a file;
  3. runs the reproduce command -- scenario, seed, profile file, buggy
     core -- and checks the same invariant fails again (every shrinking
     candidate is run that way, so the last one that failed usually is
     that run);
  4. runs the same command with the reference core, which must pass that
     invariant: else the failure was not the bug's (the reference fails it
     too) and the hunt goes on with the next seed.

A bug no seed in the budget catches *escapes*: either the bug is not
realistic for these scenarios, or an invariant is missing. The exit status
is 0 only if every bug was caught, reproduced and passed by the reference.

Bugs are hunted in parallel worker processes, one bug per task; wall time
is measured for the report only.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import attrs

from simulator.faults import ChaosProfile

from .buggy_cores import CATALOGUE, Bug, bug_named
from .runner import InputError, reproduce_command, run_world
from .shrink import describe_fault, faults_of, shrink_quickly

__all__ = ["SelftestConfig", "run_selftest", "hunt", "format_selftest", "DEFAULT_SEEDS", "resolve_bugs"]

DEFAULT_SEEDS = 4  # seeds 0..3 per scenario: every catalogue bug is caught well inside it
SELFTEST_DIR = Path(".syncbed/selftest")


@attrs.frozen
class SelftestConfig:
    seeds: int = DEFAULT_SEEDS
    bugs: tuple[str, ...] = ()  # names; none: the whole catalogue
    workers: int = 0  # 0: one per core, at most one per bug
    out_dir: Path = SELFTEST_DIR


def resolve_bugs(names: tuple[str, ...]) -> list[Bug]:
    if not names:
        return list(CATALOGUE)
    found = []
    for name in names:
        bug = bug_named(name)
        if bug is None:
            known = ", ".join(b.name for b in CATALOGUE)
            raise InputError(f"--bug {name!r}: no such bug in the catalogue; name one of {known}")
        if bug not in found:
            found.append(bug)
    return found


def _failing(report: dict) -> list[str]:
    return [i["name"] for i in report["invariants"] if not i["ok"]]


def _fails(report: dict, invariant: str) -> bool:
    return invariant in _failing(report)


def _passes(report: dict, invariant: str) -> bool:
    return any(i["name"] == invariant and i["ok"] for i in report["invariants"])


def hunt(name: str, seeds: int, out_dir: str) -> dict:
    """Catch one bug (the module doc's steps 1-4). Runs in a worker process."""
    bug = bug_named(name)
    started = time.perf_counter()
    out = Path(out_dir)
    tried: list[dict] = []
    result = {"bug": bug.name, "summary": bug.summary, "core": bug.core, "expected": bug.invariant,
              "scenarios": list(bug.scenarios), "caught": False, "tried": tried}
    for scenario in bug.scenarios:
        for seed in range(seeds):
            report = run_world(scenario, seed, None, core=bug.core)
            failing = _failing(report)
            attempt = {"scenario": scenario, "seed": seed, "failing": failing}
            tried.append(attempt)
            if not failing:
                continue
            caught_by = bug.invariant if bug.invariant in failing else failing[0]
            detected = time.perf_counter() - started
            original = ChaosProfile.from_dict(report["chaos_profile"])
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{bug.name}.json"
            last_failing: dict = {}

            def still_fails(profile: ChaosProfile) -> bool:
                # Each candidate runs as its reproduce command would: from
                # the profile file, named as the shrunk profile will be.
                text = attrs.evolve(profile, name=f"shrunk:{original.name}",
                                    description=f"shrunk from {original.name} ({original.size()} faults)").to_json()
                path.write_text(text)
                candidate = run_world(scenario, seed, str(path), core=bug.core)
                if _fails(candidate, caught_by):
                    last_failing.update(text=text, report=candidate)
                    return True
                return False

            small, removed, runs = shrink_quickly(original, still_fails)
            path.write_text(small.to_json())
            if last_failing.get("text") == small.to_json():
                again = last_failing["report"]  # the reproduce command, run as the last step of shrinking
            else:
                again = run_world(scenario, seed, str(path), core=bug.core)
            control = run_world(scenario, seed, str(path))
            attempt.update(caught_by=caught_by, reproduced=_fails(again, caught_by),
                           reference_passes=_passes(control, caught_by))
            if not attempt["reference_passes"]:
                continue  # the reference core fails it too: not this bug's doing
            violation = next(i["violations"] for i in again["invariants"] if i["name"] == caught_by)
            result.update(
                caught=attempt["reproduced"], scenario=scenario, seed=seed, caught_by=caught_by,
                as_expected=caught_by == bug.invariant, violation=violation[0] if violation else "",
                seeds_tried=len(tried), seconds_to_catch=round(detected, 1),
                faults_before=original.size(), faults_after=small.size(), removed=removed,
                kept=[describe_fault(small, f) for f in faults_of(small)], shrink_runs=runs, profile=str(path),
                reproduce=reproduce_command(scenario, seed, str(path), bug.core),
                reproduced=attempt["reproduced"], reference_passes=True,
            )
            result["seconds"] = round(time.perf_counter() - started, 1)
            return result
    result.update(seeds_tried=len(tried), seconds=round(time.perf_counter() - started, 1))
    return result


def run_selftest(cfg: SelftestConfig, progress=None) -> dict:
    bugs = resolve_bugs(cfg.bugs)
    workers = min(len(bugs), cfg.workers or os.cpu_count() or 1)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending = {pool.submit(hunt, bug.name, cfg.seeds, str(cfg.out_dir)): bug.name for bug in bugs}
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                name = pending.pop(fut)
                results[name] = fut.result()
                if progress is not None:
                    progress(results[name])
    finally:
        pool.shutdown(cancel_futures=True)
    ordered = [results[b.name] for b in bugs]
    escaped = [r["bug"] for r in ordered if not r["caught"]]
    return {
        "seeds": cfg.seeds,
        "workers": workers,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "caught": len(ordered) - len(escaped),
        "escaped": escaped,
        "bugs": ordered,
    }


def format_bug(r: dict) -> str:
    if not r["caught"]:
        where = ", ".join(f"{a['scenario']} seed {a['seed']}" + (f" (fails {a['failing'][0]!r} for the reference "
                                                                    "core too)" if a.get("caught_by") else "")
                          for a in r["tried"])
        return "\n".join([
            f"ESCAPED  {r['bug']}: {r['summary']}",
            f"         expected   {r['expected']}",
            f"         tried      {where} ({r['seeds_tried']} seeds, {r['seconds']} s): no invariant caught it",
        ])
    note = "" if r["as_expected"] else f"  (expected: {r['expected']})"
    return "\n".join([
        f"caught   {r['bug']}: {r['summary']}",
        f"         scenario   {r['scenario']} seed {r['seed']}: {r['seeds_tried']} seed(s) tried, caught after "
        f"{r['seconds_to_catch']} s ({r['seconds']} s with shrinking and checks)",
        f"         caught by  {r['caught_by']}{note}",
        f"         violation  {r['violation'][:160]}" + ("..." if len(r["violation"]) > 160 else ""),
        f"         shrunk     {r['faults_before']} -> {r['faults_after']} faults in {r['shrink_runs']} runs; "
        + (f"kept: {', '.join(r['kept'])}" if r["kept"] else "it needs no fault at all"),
        f"         reproduce  {r['reproduce']}",
        f"                    ({'fails again' if r['reproduced'] else 'DID NOT FAIL AGAIN'}; "
        f"the reference core passes the same run)",
    ])


def format_selftest(result: dict) -> str:
    lines = [f"syncbed selftest: {len(result['bugs'])} buggy cores, seeds 0..{result['seeds'] - 1} per scenario, "
             f"{result['workers']} workers"]
    lines += [format_bug(r) for r in result["bugs"]]
    lines.append("")
    lines.append(f"  {'bug':<40} {'scenario':<32} {'seed':>4} {'seeds':>5} {'secs':>6} {'faults':>8}  caught by")
    for r in result["bugs"]:
        if r["caught"]:
            lines.append(f"  {r['bug']:<40} {r['scenario']:<32} {r['seed']:>4} {r['seeds_tried']:>5} "
                         f"{r['seconds_to_catch']:>6} {str(r['faults_before']) + ' -> ' + str(r['faults_after']):>8}  "
                         f"{r['caught_by']}")
        else:
            lines.append(f"  {r['bug']:<40} {'ESCAPED':<32} {'':>4} {r['seeds_tried']:>5} {r['seconds']:>6}")
    verdict = "every bug caught" if not result["escaped"] else f"ESCAPED: {', '.join(result['escaped'])}"
    lines.append(f"  {result['caught']} of {len(result['bugs'])} caught in {result['wall_seconds']} s: {verdict}")
    return "\n".join(lines)


def progress_printer(stream=None):
    """One line on stderr per bug as it is settled (a terminal only)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(r: dict) -> None:
        what = f"caught by {r['caught_by']!r}" if r["caught"] else "ESCAPED"
        stream.write(f"  {r['bug']}: {what} ({r['seconds']} s)\n")
        stream.flush()

    return show

"""``syncbed bench``: speed, measured in one command, never in tests.

Three benchmarks (``syncbed bench [kernel|month-end|sweep|all]``):

month-end: the ``month-end-close`` scenario (a generated firm's whole month
with the reference core, default chaos) at 500 and 5,000 consultants, each in
a fresh child process so its peak memory is its own: wall seconds, virtual
days, events, approved time entries posted, peak RSS, virtual/wall ratio.

sweep: ``quote-to-cash`` seeds per minute under ``--chaos swarm``, with one
worker and with one worker per core (the chaos sweep's own machinery).

kernel: request/response round trips with a latency each way, between a trio
client task and a synchronous actor endpoint, against the same model written
idiomatically in SimPy (a Store per direction plus timeouts). syncbed's side
does everything a real run does per message -- bodies copied through JSON,
two trace events encoded and hashed, a timeout armed and cancelled -- SimPy's
side does none of it, so the ratio is the price of real trio code and a full
trace over a bare discrete-event loop.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulator import Actor, Fixed, Request, Response, Simulation
from simulator.faults import ChaosProfile, LinkRule

LATENCY_US = 1_000


class _Counter(Actor):
    def init_durable(self) -> dict:
        return {"n": 0}

    def handle(self, request: Request) -> Response:
        self.durable["n"] += 1
        return Response(200, {"n": self.durable["n"]})


def syncbed_round_trips(n: int) -> tuple[float, int, int]:
    """Wall seconds for `n` round trips, the server's final count and the
    virtual microseconds they took (the same model as SimPy's side)."""
    profile = ChaosProfile("bench", links=(LinkRule(latency=Fixed(LATENCY_US)),))
    sim = Simulation(1, chaos=profile, header={"scenario": "bench-kernel"})
    server = sim.add(_Counter("server"))
    request = Request("POST", "/count", json={"op": "increment"})

    async def main() -> None:
        sim.start_all()
        send = sim.network.request
        for _ in range(n):
            await send("client", "server", request)

    started = time.perf_counter()
    sim.run(main)
    return time.perf_counter() - started, server.durable["n"], sim.now_us


def simpy_round_trips(n: int) -> tuple[float, int, int]:
    import simpy

    env = simpy.Environment()
    requests = simpy.Store(env)
    responses = simpy.Store(env)
    state = {"n": 0}
    latency = LATENCY_US / 1_000_000

    def server():
        while True:
            yield requests.get()
            state["n"] += 1
            yield env.timeout(latency)  # the response travels back
            yield responses.put({"n": state["n"]})

    def client():
        for _ in range(n):
            yield env.timeout(latency)  # the request travels out
            yield requests.put({"op": "increment"})
            yield responses.get()

    env.process(server())
    started = time.perf_counter()
    env.run(until=env.process(client()))
    return time.perf_counter() - started, state["n"], round(env.now * 1_000_000)


def bench_kernel(round_trips: int = 50_000, repeats: int = 3) -> dict:
    """Best of `repeats` for each side (the least disturbed run)."""
    try:
        import simpy  # noqa: F401
    except ImportError:
        raise RuntimeError("the kernel benchmark compares against SimPy: pip install 'syncbed[bench]'") from None
    ours = min(syncbed_round_trips(round_trips)[0] for _ in range(repeats))
    theirs = min(simpy_round_trips(round_trips)[0] for _ in range(repeats))
    ours_rate = round_trips / ours
    theirs_rate = round_trips / theirs
    return {
        "benchmark": "kernel",
        "round_trips": round_trips,
        "repeats": repeats,
        "syncbed_round_trips_per_second": round(ours_rate),
        "simpy_round_trips_per_second": round(theirs_rate),
        "ratio": round(ours_rate / theirs_rate, 3),
        "syncbed_us_per_round_trip": round(ours / round_trips * 1e6, 2),
        "simpy_us_per_round_trip": round(theirs / round_trips * 1e6, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def format_kernel(result: dict) -> str:
    return "\n".join(
        [
            f"kernel round trips ({result['round_trips']} each, best of {result['repeats']}, Python {result['python']})",
            f"  syncbed  {result['syncbed_round_trips_per_second']:>9,} /s   {result['syncbed_us_per_round_trip']:>6} us each",
            f"  simpy    {result['simpy_round_trips_per_second']:>9,} /s   {result['simpy_us_per_round_trip']:>6} us each",
            f"  ratio    {result['ratio']}  (syncbed / simpy; goal >= 1.0)",
        ]
    )


# ------------------------------------------------------------------ month-end close at firm scale

MONTH_END_SIZES = (500, 5_000)


def month_end_child(seed: int = 1) -> None:
    """Runs in the child: one month-end-close world, its figures as JSON on stdout."""
    import resource

    from .runner import run_world

    report = run_world("month-end-close", seed, None)
    counts = report["counts"]
    out = {
        "consultants": int(os.environ["SYNCBED_CONSULTANTS"]),
        "seed": seed,
        "ok": report["ok"],
        "wall_seconds": report["wall_seconds"],
        "virtual_days": round(report["virtual_seconds"] / 86_400, 2),
        "events": report["events"],
        # the month's volume: what the firm's people logged, and what the
        # core posted to the ERP for it (approved versions, reversals, expenses)
        "time_entries": counts.get("psa", {}).get("time_entries", 0),
        "erp_postings": counts.get("erp", {}).get("projectActuals", 0),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "trace_sha256": report["trace_sha256"],
    }
    out["virtual_to_wall"] = round(report["virtual_seconds"] / report["wall_seconds"]) if report["wall_seconds"] else None
    print(json.dumps(out, sort_keys=True))


def bench_month_end(consultants: int, seed: int = 1) -> dict:
    env = dict(os.environ, SYNCBED_CONSULTANTS=str(consultants))
    code = f"from harness.bench import month_end_child; month_end_child({seed})"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"month-end-close at {consultants} consultants failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    return result


# ------------------------------------------------------------------ seeds per minute

def bench_sweep(seeds: int, workers: int) -> dict:
    from .rundb import RunDatabase
    from .sweep import SweepConfig, run_sweep

    with tempfile.TemporaryDirectory(prefix="syncbed-bench-") as home:
        cfg = SweepConfig("quote-to-cash", range(seeds), chaos="swarm", workers=workers, shrink=False,
                          trace_dir=Path(home) / "traces")
        result = run_sweep(cfg, RunDatabase(Path(home)))
    return {
        "workers": workers,
        "seeds": seeds,
        "passed": result["passed"],
        "failed": len(result["failed"]),
        "wall_seconds": result["wall_seconds"],
        "seeds_per_minute": result["seeds_per_minute"],
    }


# ------------------------------------------------------------------ all of it

def bench_all(which: str, *, round_trips: int, sizes: tuple[int, ...], sweep_seeds: int) -> dict:
    out: dict = {"machine": {"python": platform.python_version(), "machine": platform.machine(),
                             "cores": os.cpu_count()}}
    if which in ("all", "kernel"):
        out["kernel"] = bench_kernel(round_trips)
    if which in ("all", "month-end"):
        out["month_end"] = [bench_month_end(n) for n in sizes]
        if len(out["month_end"]) >= 2 and out["month_end"][0]["wall_seconds"]:
            first, last = out["month_end"][0], out["month_end"][-1]
            out["month_end_growth"] = {
                "consultants": f"{first['consultants']} -> {last['consultants']}",
                "wall_ratio": round(last["wall_seconds"] / first["wall_seconds"], 2),
                "size_ratio": round(last["consultants"] / first["consultants"], 2),
            }
    if which in ("all", "sweep"):
        cores = os.cpu_count() or 1
        out["sweep"] = [bench_sweep(sweep_seeds, 1)] + ([bench_sweep(sweep_seeds * cores, cores)] if cores > 1 else [])
    return out


def format_all(result: dict) -> str:
    m = result["machine"]
    lines = [f"syncbed bench  (Python {m['python']}, {m['machine']}, {m['cores']} cores)"]
    if "kernel" in result:
        lines.append(format_kernel(result["kernel"]))
    if "month_end" in result:
        lines.append("month-end-close (seed 1, default chaos, reference core; goals: 500 in 5 s, 5,000 in 60 s and "
                     "<= 11x, < 1 GiB)")
        lines.append(f"  {'consultants':>11} {'wall s':>8} {'virt days':>9} {'events':>9} {'entries':>8} "
                     f"{'postings':>8} {'peak MiB':>9} {'virt/wall':>9}  ok")
        for r in result["month_end"]:
            lines.append(f"  {r['consultants']:>11,} {r['wall_seconds']:>8} {r['virtual_days']:>9} {r['events']:>9,} "
                         f"{r['time_entries']:>8,} {r['erp_postings']:>8,} {r['peak_rss_mib']:>9} "
                         f"{r['virtual_to_wall'] or 0:>9,}  {'yes' if r['ok'] else 'NO'}")
        growth = result.get("month_end_growth")
        if growth:
            lines.append(f"  growth {growth['consultants']}: wall x{growth['wall_ratio']} for size x{growth['size_ratio']}")
    if "sweep" in result:
        lines.append("quote-to-cash --chaos swarm sweep (goal: >= 600 seeds/min on both cores)")
        for r in result["sweep"]:
            lines.append(f"  {r['workers']} worker(s): {r['seeds']} seeds in {r['wall_seconds']} s = "
                         f"{r['seeds_per_minute']} seeds/min ({r['failed']} failing)")
    return "\n".join(lines)

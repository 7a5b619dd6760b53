"""The ``syncbed`` command.

Exit status: 0 every invariant holds, 1 an invariant was violated (or a
replay diverged), 2 bad input (one message naming the input, what is wrong
and the fix -- never a traceback), 3 an internal error (a bug in syncbed).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from simulator import __version__, swarm_profile
from simulator.faults import ProfileError, load_profile
from simulator.trace import TraceError, read_trace

from .runner import DEFAULT_SCENARIO, InputError, format_report, resolve_scenario, run_world

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2."""

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message}; see '{self.prog} --help'")


def _whole(text: str, minimum: int, hint: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {hint}") from None
    if value < minimum:
        if minimum == 0:
            raise argparse.ArgumentTypeError(f"{text} is negative; {hint}")
        raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
    return value


def _seed(text: str) -> int:
    return _whole(text, 0, "give e.g. --seed 3 (seeds are whole numbers from 0)")


def _count(text: str) -> int:
    return _whole(text, 1, "give a whole number from 1")


def _sizes(text: str) -> tuple[int, ...]:
    sizes = []
    for part in text.split(","):
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give firm sizes as whole numbers, e.g. 500,5000") from None
        if not 1 <= n <= 50_000:
            raise argparse.ArgumentTypeError(f"{n} consultants: give a firm size from 1 to 50000")
        sizes.append(n)
    return tuple(sizes)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="syncbed",
        description=(
            "Deterministic simulator and testbed for the middleware that syncs CRM, PSA, ERP, "
            "billing and revenue systems. Same scenario, seed, chaos profile and core: the same trace."
        ),
    )
    parser.add_argument("--version", action="version", version=f"syncbed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run one scenario at one seed and report on it")
    run.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"scenario name (default {DEFAULT_SCENARIO})")
    run.add_argument("--seed", type=_seed, default=0, help="master seed (default 0)")
    run.add_argument(
        "--chaos",
        default=None,
        metavar="PROFILE|FILE|swarm",
        help="built-in profile name, a .toml/.json profile file, or 'swarm' (default: the scenario's own)",
    )
    run.add_argument("--trace", metavar="FILE", help="write the trace (JSON Lines) to FILE")
    run.add_argument("--core", metavar="MODULE:FACTORY", help="the sync core to run (default: the reference core)")
    run.add_argument("--store", default="memory", metavar="memory|sqlite",
                     help="the core's durable store: in-memory (default) or SQLite; either gives the same run")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")

    chaos = sub.add_parser("chaos", help="sweep one scenario over many seeds in parallel")
    chaos.add_argument("scenario", help="scenario name or .py file")
    chaos.add_argument("--seeds", required=True, metavar="A..B", help="seed range, both ends included (e.g. 0..999)")
    chaos.add_argument("--chaos", default="swarm", metavar="PROFILE|FILE|swarm", help="default swarm")
    chaos.add_argument("--workers", type=_count, default=0, help="worker processes (default: one per core)")
    chaos.add_argument("--budget", type=_positive_seconds, metavar="SECONDS", help="stop starting new seeds after this long")
    chaos.add_argument("--shard", metavar="K/N", help="run only the K-th of N interleaved shards of the range")
    chaos.add_argument("--core", metavar="MODULE:FACTORY")
    chaos.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per seed)")
    chaos.add_argument("--json", action="store_true")
    chaos.add_argument("--no-shrink", action="store_true", help="do not shrink failing seeds' fault schedules")
    chaos.add_argument("--check-determinism", action="store_true", help="run each seed twice (different hash seed) and compare")

    replay = sub.add_parser("replay", help="re-run a recorded trace and check the same fingerprint comes out")
    replay.add_argument("trace", metavar="TRACE", help="a trace file written by 'syncbed run --trace'")
    replay.add_argument("--json", action="store_true")

    scen = sub.add_parser("scenarios", help="list the built-in scenarios")
    scen.add_argument("--json", action="store_true", help="names, summaries, default chaos profiles and stories")

    profile = sub.add_parser("profile", help="validate and print a chaos profile (or a seed's swarm draw)")
    profile.add_argument("spec", metavar="PROFILE|FILE|swarm")
    profile.add_argument("--seed", type=_seed, default=0, help="the seed a swarm draw is made for")
    profile.add_argument("--scenario", default="quote-to-cash", help="whose systems a swarm draw covers")

    selftest = sub.add_parser("selftest", help="check the invariants catch every bug of the buggy-core catalogue")
    selftest.add_argument("--seeds", type=_count, default=None, metavar="N",
                          help="seeds 0..N-1 per scenario before a bug counts as escaped (default 4)")
    selftest.add_argument("--bug", action="append", default=[], metavar="NAME",
                          help="only this catalogue bug (repeatable; default all)")
    selftest.add_argument("--workers", type=_count, default=0, help="worker processes (default: one per core)")
    selftest.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmarks (never part of the tests)")
    bench.add_argument("which", nargs="?", default="all", choices=["all", "kernel", "month-end", "sweep"],
                       help="which benchmark (default all: kernel, month-end, sweep)")
    bench.add_argument("--round-trips", type=_count, default=50_000, help="kernel round trips per side (default 50000)")
    bench.add_argument("--consultants", type=_sizes, default=(500, 5_000), metavar="N[,N...]",
                       help="firm sizes for month-end-close (default 500,5000)")
    bench.add_argument("--sweep-seeds", type=_count, default=20, metavar="N",
                       help="quote-to-cash swarm seeds per worker for the sweep (default 20)")
    bench.add_argument("--json", action="store_true")

    tui = sub.add_parser("tui", help="watch, steer and replay a world in a terminal UI")
    tui.add_argument("scenario", nargs="?", default=None, help="scenario name or .py file (default quote-to-cash)")
    tui.add_argument("--seed", type=_seed, default=0, help="master seed (default 0)")
    tui.add_argument("--chaos", default=None, metavar="PROFILE|FILE|swarm", help="default: the scenario's own")
    tui.add_argument("--core", metavar="MODULE:FACTORY", help="the sync core to run (default: the reference core)")
    tui.add_argument("--trace", metavar="FILE", help="replay a trace written by 'syncbed run --trace' instead")
    return parser


def _cmd_run(args) -> int:
    report = run_world(args.scenario, args.seed, args.chaos, args.trace, core=args.core, store=args.store)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(format_report(report))
    return EXIT_OK if report["ok"] else EXIT_VIOLATION


def _cmd_replay(args) -> int:
    from simulator.faults import ChaosProfile

    try:
        recorded = read_trace(args.trace)
    except TraceError as exc:
        raise InputError(str(exc)) from None
    header = recorded.header
    scenario = header.get("scenario")
    try:
        resolve_scenario(scenario)
        profile = ChaosProfile.from_dict(header.get("chaos"), source=f"{args.trace} header.chaos")
        seed = header["seed"]
    except (InputError, ProfileError, KeyError) as exc:
        raise InputError(f"trace file {args.trace}: its header cannot be replayed ({exc})") from None
    config = header.get("config") or {}
    chaos_spec = config.get("chaos_spec", profile.name)
    core = header.get("core")
    core = None if core is None or core.startswith("builtin:") else core
    report = run_world(scenario, seed, chaos_spec, profile=profile, keep_trace=True, core=core,
                       store=config.get("store", "memory"))
    lines = report.pop("trace_lines")
    same = report["trace_sha256"] == recorded.fingerprint
    result = {
        "trace": args.trace,
        "recorded_sha256": recorded.fingerprint,
        "replayed_sha256": report["trace_sha256"],
        "identical": same,
        "first_divergence": None,
    }
    if not same:
        recorded_lines = [json.dumps(header, sort_keys=True, separators=(",", ":"))] + [
            json.dumps(e, sort_keys=True, separators=(",", ":")) for e in recorded.events
        ]
        for i, (a, b) in enumerate(zip(recorded_lines, (l.rstrip("\n") for l in lines))):
            if a != b:
                result["first_divergence"] = {"line": i + 1, "recorded": a, "replayed": b}
                break
        else:
            result["first_divergence"] = {"line": min(len(recorded_lines), len(lines)) + 1, "recorded": "(length differs)", "replayed": ""}
    if args.json:
        print(json.dumps(result, sort_keys=True))
    elif same:
        print(f"replay {args.trace}: identical ({len(recorded)} events, sha256 {recorded.fingerprint})")
    else:
        d = result["first_divergence"]
        print(f"replay {args.trace}: DIVERGED at line {d['line']}\n  recorded {d['recorded']}\n  replayed {d['replayed']}")
    return EXIT_OK if same else EXIT_VIOLATION


def _cmd_profile(args) -> int:
    if args.spec == "swarm":
        from .runner import resolve_chaos

        profile = resolve_chaos("swarm", args.seed, resolve_scenario(args.scenario))
    else:
        try:
            profile = load_profile(args.spec)
        except ProfileError as exc:
            raise InputError(str(exc)) from None
    print(profile.to_json(), end="")
    return EXIT_OK


def _cmd_bench(args) -> int:
    from .bench import bench_all, format_all

    try:
        result = bench_all(args.which, round_trips=args.round_trips, sizes=args.consultants,
                           sweep_seeds=args.sweep_seeds)
    except RuntimeError as exc:
        raise InputError(str(exc)) from None
    print(json.dumps(result, sort_keys=True) if args.json else format_all(result))
    return EXIT_OK


def _cmd_chaos(args) -> int:
    from pathlib import Path

    from .sweep import SweepConfig, format_sweep, junit_xml, parse_seed_range, parse_shard, run_sweep, write_json

    cfg = SweepConfig(
        scenario=args.scenario,
        seeds=parse_seed_range(args.seeds),
        chaos=args.chaos,
        core=args.core,
        workers=args.workers,
        budget_s=args.budget,
        shard=parse_shard(args.shard) if args.shard else None,
        check_determinism=args.check_determinism,
        shrink=not args.no_shrink,
    )
    if args.junit:
        junit = Path(args.junit)
        if not junit.parent.is_dir():
            raise InputError(f"--junit {args.junit}: the folder {junit.parent} does not exist")
    result = run_sweep(cfg)
    if args.junit:
        Path(args.junit).write_text(junit_xml(result))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_sweep(result))
    bad = result["failed"] or result["determinism"]["divergent"]
    return EXIT_VIOLATION if bad else EXIT_OK


def _cmd_selftest(args) -> int:
    from .selftest import DEFAULT_SEEDS, SelftestConfig, format_selftest, progress_printer, resolve_bugs, run_selftest

    resolve_bugs(tuple(args.bug))  # fail fast on a bad name
    cfg = SelftestConfig(seeds=args.seeds or DEFAULT_SEEDS, bugs=tuple(args.bug), workers=args.workers)
    result = run_selftest(cfg, progress=None if args.json else progress_printer())
    print(json.dumps(result, sort_keys=True) if args.json else format_selftest(result))
    return EXIT_OK if not result["escaped"] else EXIT_VIOLATION


def _cmd_scenarios(args) -> int:
    from . import demo_world
    from .scenario_api import builtin_scenarios

    found = builtin_scenarios()
    rows = [
        {"name": s.name, "summary": s.summary, "default_chaos": s.default_chaos, "firm": s.firm, "story": s.story}
        for s in found.values()
    ]
    rows.append({
        "name": demo_world.SCENARIO,
        "summary": "the kernel's own demo: a toy ledger and client, no business systems",
        "default_chaos": "default",
        "firm": {},
        "story": (demo_world.__doc__ or "").strip(),
    })
    rows.sort(key=lambda r: r["name"])
    if args.json:
        print(json.dumps(rows, sort_keys=True))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['summary']}  (chaos: {r['default_chaos']})")
    return EXIT_OK


def _cmd_tui(args) -> int:
    import importlib

    # The UI sits above the harness (ARCHITECTURE.md): loaded by name, and
    # only for this command, so Textual is never imported otherwise.
    build_app = importlib.import_module("tui.launch").build_app
    app = build_app(args.scenario, seed=args.seed, chaos=args.chaos, core=args.core, trace=args.trace)
    app.run()
    return app.return_code or EXIT_OK


COMMANDS = {"run": _cmd_run, "scenarios": _cmd_scenarios, "chaos": _cmd_chaos, "replay": _cmd_replay, "profile": _cmd_profile, "bench": _cmd_bench, "tui": _cmd_tui, "selftest": _cmd_selftest}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"syncbed: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("syncbed: interrupted", file=sys.stderr)
        return 130
    except Exception:
        print("syncbed: internal error (a bug in syncbed; please report it with the command you ran):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

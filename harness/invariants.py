"""The invariants every business world must hold after healing.

Each check reads ground truth -- the fake systems' records and effect logs,
the core's store, the trace -- and returns ``{"name", "ok", "violations"}``,
each violation naming the business keys and the correlation id to follow in
the trace. How a core's records point back to their sources is fixed by the
integration contract (docs/integration-contract.md).
"""

from __future__ import annotations

from typing import Any

from .scenario_api import check

__all__ = ["check_world"]


def liveness(world, outcome: dict) -> dict:
    if outcome.get("quiet"):
        return check("liveness: quiet after healing", [])
    return check(
        "liveness: quiet after healing",
        [f"the world was still busy {world.liveness_limit_us // 86_400_000_000} days after every fault was healed "
         f"(core idle: {world.core.idle()}, messages in flight: {world.sim.network.in_flight})"],
    )


def no_crashed_code(world, outcome: dict) -> dict:
    """An exception escaping a fake or the core is a bug, never weather."""
    errors = world.sim.trace.kind_counts.get("actor.error", 0)
    return check("no unhandled exceptions", [f"{errors} actor.error events in the trace"] if errors else [])


def nothing_silently_lost(world, outcome: dict) -> dict:
    """Every operation the core gave up on is visible: in its dead-letter
    queue or an exception queue, with a reason."""
    dump = world.store.dump()
    violations = []
    for table in ("dlq", "exceptions"):
        for key, item in sorted(dump.get(table, {}).items()):
            if not item.get("reason") and not item.get("code"):
                violations.append(f"{table} item {key} ({item.get('op')}) has no reason")
    return check("nothing silently lost", violations)


CHECKS = [liveness, no_crashed_code, nothing_silently_lost]


def check_world(world, outcome: dict) -> list[dict[str, Any]]:
    return [c(world, outcome) for c in CHECKS]

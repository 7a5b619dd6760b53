"""The seeds' KPIs for a finished world, from ground truth and the trace."""

from __future__ import annotations

__all__ = ["world_kpis"]


def world_kpis(world) -> dict:
    dump = world.store.dump()
    exceptions = dump.get("exceptions", {})
    return {
        "dlq_depth": len(dump.get("dlq", {})),
        "exceptions_open": len(exceptions),
        "outbox_waiting": len(dump.get("msgs", {})),
    }

"""People's steps a scenario takes by hand in the PSA, waiting -- as people
do -- until the integration has set up what they need.

A step that cannot happen (the project never got provisioned, the PSA
refuses) is not an error of the scenario: it is traced as
``scenario.step_skipped`` and the step returns False, so the expectations
report what did not happen instead of the run crashing.
"""

from __future__ import annotations

from fake_systems.vendor import VendorError

from . import _truth as t

__all__ = ["milestone_id", "complete_milestone", "client_accepts"]


async def milestone_id(d, line_id: str, name: str, *, days: float = 3) -> str | None:
    """The PSA milestone the core provisioned for `line_id`'s `name`,
    waited for up to `days`."""
    found: list = []

    def provisioned() -> bool:
        found[:] = [m for m in t.psa_milestone_for(d.world, line_id, name)
                    if d.psa.table("projects").get(m["project_id"], {}).get("status") == "active"]
        return bool(found)

    if await d.wait_for(provisioned, days=days):
        return found[0]["id"]
    _skipped(d, "milestone", f"{line_id}:{name}", "not provisioned in the PSA (or its project not active)")
    return None


async def complete_milestone(d, line_id: str, name: str) -> str | None:
    """The team marks the milestone complete today; returns its PSA id."""
    ms = await milestone_id(d, line_id, name)
    if ms is not None:
        try:
            d.psa.complete_milestone(ms, d.today)
        except VendorError as exc:
            _skipped(d, "complete_milestone", ms, exc.message)
            return None
    return ms


async def client_accepts(d, line_id: str, name: str) -> str | None:
    """The client's sign-off arrives and is recorded today; returns the PSA id."""
    ms = await milestone_id(d, line_id, name, days=0)
    if ms is not None:
        try:
            d.psa.record_client_acceptance(ms, d.today, accepted_by="client sponsor")
        except VendorError as exc:
            _skipped(d, "record_client_acceptance", ms, exc.message)
            return None
    return ms


def _skipped(d, step: str, what: str, why: str) -> None:
    d.sim.trace.record("scenario.step_skipped", {"step": step, "what": what, "why": why})

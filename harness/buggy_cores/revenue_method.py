"""Ratable obligations booked as point in time."""

from __future__ import annotations

import copy

from sync_core.core import ReferenceCore
from sync_core.ports import Environment

from ._compose import wrap_clients

__all__ = ["recurring_revenue_booked_point_in_time"]


def _point_in_time(pobs):
    for pob in pobs or ():
        if isinstance(pob, dict) and pob.get("rec_method") == "ratable":
            pob["rec_method"] = "point_in_time"


def recurring_revenue_booked_point_in_time(env: Environment) -> ReferenceCore:
    """Every obligation that is not time and materials goes to the revenue
    engine as point in time.

    The real-world bug: the mapping from billing model to recognition method
    is a yes/no ("T&M? right-to-invoice, else on acceptance") where a
    three-way choice was needed, so a managed service or retainer -- to be
    recognised ratably over its service period -- waits for an acceptance
    that never comes, and a year of service revenue is never recognised.

    Exposed by: ``fixed-fee-plus-managed-services`` (a fixed-fee
    implementation with twelve months of managed service).
    Caught by: "fixed fee + managed services: one revenue contract,
    milestones point in time, the service ratable".
    """
    def book_point_in_time(method, path, json, headers, query):
        if method == "POST" and path.startswith("/rc/contracts") and isinstance(json, dict):
            json = copy.deepcopy(json)
            _point_in_time(json.get("pobs"))
            _point_in_time(json.get("added_pobs"))
        return json, headers

    return ReferenceCore(wrap_clients(env, ("revenue",), outgoing=book_point_in_time))

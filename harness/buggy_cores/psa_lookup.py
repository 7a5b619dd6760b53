"""PSA creates retried without a look-up."""

from __future__ import annotations

import attrs

from sync_core.core import ReferenceCore
from sync_core.flows import quote_psa
from sync_core.flows.quote_deal import deal_op
from sync_core.ports import Environment

from ._compose import first_attempt, replace_operation

__all__ = ["psa_create_retried_without_lookup"]

ACTIVATE, VERIFY = "psa.activate_deal_project", "psa.verify_deal_setup"


async def _as_if_first(original, ctx, payload):
    return await original(first_attempt(ctx), payload)


async def _activate_unchecked(ctx, deal, record):
    return await quote_psa.activate_project(ctx, deal, {**record, "psa_checked": True})


async def _nothing_to_verify(ctx, deal, record):
    return {"renamed": []}


def psa_create_retried_without_lookup(env: Environment) -> ReferenceCore:
    """PSA creates are treated as idempotent: a retry goes straight back to
    ``POST``, and nothing ever looks for copies.

    The real-world bug: the retry policy wraps the PSA client generically
    ("on timeout, send it again"), as if the PSA family's creates were
    idempotent -- they are not. A create whose answer was lost after the
    PSA committed it is sent again without first looking the record up by
    its external reference, and since "creates cannot duplicate", no check
    for copies runs before the project is activated either: the deal has
    two live projects (and tasks, milestones), and people book time on both.

    Exposed by: ``lost-response-after-commit`` (one PSA answer in eight lost
    after the PSA committed the write; a request the network delivers twice
    makes the same copy).
    Caught by: the scenario's "lost responses: nothing written twice in
    psa" (and "PSA: one project per won deal" or "every won deal set up in
    every system", for whichever record was copied).
    """
    core = ReferenceCore(env)
    for name in sorted(core.dispatcher.operations):
        if name.startswith("psa."):
            replace_operation(core, name, _as_if_first)
    ops = core.dispatcher.operations
    for name, perform in ((ACTIVATE, _activate_unchecked), (VERIFY, _nothing_to_verify)):
        ops[name] = attrs.evolve(ops[name], perform=deal_op(name, perform).perform)
    return core

"""Billing writes that are safe to repeat (milestone items, holds, schedules).

The billing family's ``Idempotency-Key`` replays the first answer given for
a key -- a 500 included, for as long as the key lives. So every create here
is:

  1. look the object up by what identifies it in business terms (an item
     by its source, a hold by its source, a schedule by contract and line);
     found -> done, whatever happened to an earlier attempt;
  2. absent -> POST under a key derived from that identity, so a request the
     network delivers twice, or late, is replayed instead of creating twice;
  3. a 500 -> look again; still absent -> the key is poisoned (its 500 would
     be replayed forever): the next attempt uses the next key suffix. The
     suffix is kept in the store, so a crash does not bring the poisoned key
     back.

Lists are newest first, paged with ``starting_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..dispatcher import OpContext
from ..replies import check
from ..retry import RetryLater

__all__ = ["idempotency_key", "burn_key", "find_one", "create_once", "MAX_PAGES"]

KEYS = "billing_keys"  # key base -> how many keys were poisoned by a replayed 500
MAX_PAGES = 50  # 5,000 records of one customer: beyond that, ask a person


def idempotency_key(ctx: OpContext, base: str) -> str:
    with ctx.env.store.transaction() as txn:
        burnt = txn.get(KEYS, base) or 0
    return base if burnt == 0 else f"{base}~{burnt}"


def burn_key(ctx: OpContext, base: str) -> None:
    with ctx.env.store.transaction() as txn:
        txn.put(KEYS, base, (txn.get(KEYS, base) or 0) + 1)


async def find_one(ctx: OpContext, path: str, query: dict, match: Callable[[dict], bool], *,
                   doing: str) -> dict | None:
    """The first record of list `path` (filtered by `query`) that `match`es."""
    after = None
    for _ in range(MAX_PAGES):
        q = {**query, "limit": "100"}
        if after is not None:
            q["starting_after"] = after
        response = check("billing", await ctx.call("GET", path, query=q), ok=(200,), doing=doing)
        rows = response.json["data"]
        for row in rows:
            if match(row):
                return row
        if not response.json.get("has_more") or not rows:
            return None
        after = rows[-1]["id"]
    raise RetryLater(f"billing {doing}: more than {MAX_PAGES} pages to search")


async def create_once(ctx: OpContext, path: str, body: dict, *, key_base: str,
                      find: Callable[[], Awaitable[dict | None]], doing: str,
                      ok_refusal: Callable[[Any], bool] | None = None) -> dict:
    """Create the object `find` looks for, exactly once (module doc).
    `ok_refusal(response)`: a 400 that means "already there" (look it up)."""
    found = await find()
    if found is not None:
        return found
    key = idempotency_key(ctx, key_base)
    response = await ctx.call("POST", path, json=body, headers={"Idempotency-Key": key})
    if response.status == 200:
        return response.json
    if response.status >= 500 or (ok_refusal is not None and ok_refusal(response)):
        found = await find()
        if found is not None:
            return found
        if response.status >= 500:
            if response.headers.get("idempotent-replayed") == "true" or response.headers.get("idempotency-key"):
                burn_key(ctx, key_base)
            raise RetryLater(f"billing {doing}: {response.status}, and nothing was made; trying again")
    check("billing", response, ok=(200,), doing=doing)
    raise AssertionError("check() raises on any status outside ok")

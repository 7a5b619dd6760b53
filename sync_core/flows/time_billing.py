"""Creating a billing record exactly once, with the vendor's idempotency keys.

The billing family stores the first answer to a keyed request once it starts
executing and replays it for that key for a day -- a 500 included. So a
create that met a 500 can never succeed under its key again, and whether the
500 struck before or after the write is unknown. The rule here:

  1. when an earlier attempt may have reached the vendor (a timeout, a crash,
     a 500), look the record up by its source first; found means done;
  2. otherwise POST under the current key;
  3. a 5xx whose answer the vendor *saved* under the key (it echoes the key,
     or says it replayed one) burns that key: the next attempt looks up,
     and if still absent creates under the key's next generation
     (``<key>~1``, ``~2``...), kept durably in table ``t2f_keys``.

A key is changed only when its answer is saved: any copy of the old request
still on its way (the network duplicates and delays requests) then meets
that saved answer and cannot create a second record. A 503 or 429 is
refused before execution, saves nothing, and keeps the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..dispatcher import OpContext
from .time_replies import check
from ..retry import RetryLater

__all__ = ["create_once", "find_item", "find_credit_note"]

KEYS = "t2f_keys"


def _key(base: str, generation: int) -> str:
    return base if generation == 0 else f"{base}~{generation}"


async def create_once(
    ctx: OpContext, *, key: str, path: str, body: dict, find: Callable[[], Awaitable[dict | None]], doing: str
) -> dict:
    """The record `body` creates at `path`, created at most once; `find`
    looks it up (None: not there)."""
    store = ctx.env.store
    with store.transaction() as txn:
        generation = txn.get(KEYS, key) or 0
    if ctx.maybe_done_before or generation:
        found = await find()
        if found is not None:
            return found
    current = _key(key, generation)
    response = await ctx.call("POST", path, json=body, headers={"Idempotency-Key": current})
    saved = response.headers.get("idempotency-key") == current or response.headers.get("idempotent-replayed") == "true"
    if response.status >= 500 and saved:
        with store.transaction() as txn:
            if (txn.get(KEYS, key) or 0) == generation:
                txn.put(KEYS, key, generation + 1)
        ctx.env.tracer.event("core.t2f.key_spent", {"key": current, "status": response.status, "doing": doing},
                             corr=ctx.corr, cause=ctx.message["id"])
        raise RetryLater(f"billing {doing}: {response.status} saved under key {current}; "
                         "will look it up and use a new key", ambiguous=True)
    check("billing", response, ok=(200,), doing=doing)
    return response.json


async def _list(ctx: OpContext, path: str, query: dict, doing: str) -> list[dict]:
    """Every row of a billing list (newest first), following `has_more`."""
    rows: list[dict] = []
    after = None
    while True:
        q = dict(query, limit="100")
        if after is not None:
            q["starting_after"] = after
        response = check("billing", await ctx.call("GET", path, query=q), ok=(200,), doing=doing)
        page = response.json["data"]
        rows.extend(page)
        if not response.json.get("has_more") or not page:
            return rows
        after = page[-1]["id"]


async def find_item(ctx: OpContext, customer: str, source_type: str, source_id: str) -> dict | None:
    """The invoice item billing `source_type`/`source_id`; the oldest if the
    vendor holds several (a duplicate someone else made is traced)."""
    rows = await _list(ctx, "/v1/invoice_items",
                       {"customer": customer, "source_type": source_type, "source_id": source_id},
                       f"looking up the item for {source_type} {source_id}")
    if len(rows) > 1:
        ctx.env.tracer.event("core.t2f.duplicate_item", {"source": f"{source_type}:{source_id}",
                                                         "items": sorted(r["id"] for r in rows)}, corr=ctx.corr)
    return min(rows, key=lambda r: r["id"]) if rows else None


async def find_credit_note(ctx: OpContext, invoice: str, memo: str) -> dict | None:
    rows = await _list(ctx, "/v1/credit_notes", {"invoice": invoice}, f"looking up credit notes of {invoice}")
    found = [r for r in rows if r.get("memo") == memo]
    return min(found, key=lambda r: r["id"]) if found else None


def item_payload(result: Any) -> dict:
    """What the flow keeps of a created item."""
    return {k: result.get(k) for k in ("id", "amount", "status", "schedule", "invoice")}

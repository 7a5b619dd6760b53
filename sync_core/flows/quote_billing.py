"""Setting a won deal up in billing: the customer and one schedule per line.

Billing creates are made safe to repeat with the vendor's Idempotency-Key:
the first request with a key that starts executing has its answer saved and
replayed for every later request with that key. Two consequences shape
`keyed_create`:

  * a 500 is saved too, and replayed for as long as the key lives (24 hours
    or more): retrying with the same key can never succeed. After a 500 the
    object is looked up (the 500 may have struck after the write); if it is
    not there, the key is spent -- its suffix in the store moves on
    (``<base>``, ``<base>.r1``, ``<base>.r2``...) and the next attempt tries
    afresh under the new key;
  * a key reused with different parameters is refused (``idempotency_key_
    reused``): the same look-up, then a new key.

Keys are derived from what is being created, so every attempt, every crash
and every copy of the request agrees on them: the customer
``q2p:cus:<Account Id>``, a schedule ``q2p:bs:<Opportunity Id>:<QuoteLine
Id>:v<contract version>``. An attempt that may have reached billing before
(`maybe_done_before`) looks the object up first: by ``external_ref`` for a
customer, by ``contract_ref`` and the ``line`` metadata for a schedule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from .. import xrefs
from ..codec import from_json
from ..dispatcher import OpContext
from ..model_contracts import Contract
from ..ports import Transaction
from ..replies import check, error_code
from ..retry import RetryLater
from .quote_contract import milestone_key, schedule_terms
from .quote_deal import call, read, require_xref

__all__ = ["keyed_create", "upsert_customer", "record_customer", "create_schedules", "record_schedules", "KEYS"]

KEYS = "billing_keys"  # key base -> how many keys of that base were spent


async def _list(ctx: OpContext, path: str, **filters: str) -> list[dict]:
    """Every record of a list (the vendor pages newest first), oldest first."""
    rows: list[dict] = []
    after = None
    while True:
        query = {**filters, "limit": "100"}
        if after is not None:
            query["starting_after"] = after
        body = check("billing", await call(ctx, "GET", path, query=query), ok=(200,), doing=f"listing {path}").json
        rows += body["data"]
        if not body.get("has_more") or not body["data"]:
            return list(reversed(rows))
        after = body["data"][-1]["id"]


async def keyed_create(ctx: OpContext, path: str, body: dict, key_base: str,
                       find: Callable[[], Awaitable[dict | None]], doing: str) -> dict:
    spent = read(ctx.env, lambda txn: txn.get(KEYS, key_base)) or 0
    if ctx.maybe_done_before:
        found = await find()
        if found is not None:
            return found
    key = key_base if spent == 0 else f"{key_base}.r{spent}"
    response = await call(ctx, "POST", path, json=body, headers={"Idempotency-Key": key}, idempotent=True)
    if response.status == 200:
        return response.json
    code = error_code("billing", response.json)
    if response.status == 500 or code == "idempotency_key_reused":
        found = await find()
        if found is not None:
            return found
        with ctx.env.store.transaction() as txn:
            if (txn.get(KEYS, key_base) or 0) == spent:
                txn.put(KEYS, key_base, spent + 1)
        ctx.env.tracer.event("core.billing.key_spent", {"key": key, "status": response.status, "code": code},
                             corr=ctx.corr, cause=ctx.message["id"])
        raise RetryLater(f"billing {doing}: {response.status} {code or ''} under key {key}, which billing will "
                         "replay as it is; the next attempt uses a new key")
    check("billing", response, ok=(200,), doing=doing)
    raise AssertionError("check() raises for every status it was not told is ok")  # pragma: no cover


# ------------------------------------------------------------------ the customer (one per CRM Account)


def _tax_percent(entity: dict) -> str:
    return format((Decimal(entity["tax_rate"]) * 100).quantize(Decimal("0.01")), "f")


async def upsert_customer(ctx: OpContext, deal: str, record: dict) -> dict:
    account = record["snapshot"]["account"]
    acc = account["Id"]
    known = read(ctx.env, lambda txn: xrefs.get(txn, "account.billing_customer", acc))
    if known is not None:
        return {"account": acc, "id": known}

    async def find() -> dict | None:
        rows = await _list(ctx, "/v1/customers", external_ref=acc)
        return rows[0] if rows else None

    # Look first whatever the attempt: another deal of this account may have
    # made the customer, and its key may have expired since.
    found = await find()
    if found is None:
        body = {"name": account["Name"], "currency": account["CurrencyIsoCode"].lower(), "external_ref": acc,
                "tax_percent": _tax_percent(record["entity"]), "metadata": {"crm_account": acc}}
        if account.get("TaxRegistration"):
            body["tax_id"] = account["TaxRegistration"]
        found = await keyed_create(ctx, "/v1/customers", body, f"q2p:cus:{acc}", find, f"creating customer {acc}")
    return {"account": acc, "id": found["id"]}


def record_customer(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    xrefs.put(txn, "account.billing_customer", result["account"], result["id"])


# ------------------------------------------------------------------ schedules (one per contract line)


async def create_schedules(ctx: OpContext, deal: str, record: dict) -> dict:
    acc = record["snapshot"]["account"]["Id"]
    customer = require_xref(ctx.env, "account.billing_customer", acc, "creating billing schedules")
    contract = from_json(Contract, read(ctx.env, lambda txn: xrefs.contract_json(txn, deal)))
    version = contract.version(1)
    made: dict[str, str] = {}
    for line in version.lines:
        lid = line.line_id
        known = read(ctx.env, lambda txn: xrefs.get(txn, "line.billing_schedule", lid))
        if known is None:
            refs = {milestone_key(lid, m.name): require_xref(ctx.env, "milestone.psa_milestone",
                                                             milestone_key(lid, m.name), "creating billing schedules")
                    for m in line.milestones}

            async def find(lid: str = lid) -> dict | None:
                rows = await _list(ctx, "/v1/billing_schedules", contract_ref=deal)
                return next((r for r in rows if (r.get("metadata") or {}).get("line") == lid), None)

            body = {"customer": customer, "contract_ref": deal, "currency": contract.currency.lower(),
                    "start_date": line.service_start.isoformat(), "end_date": line.service_end.isoformat(),
                    "metadata": {"deal": deal, "line": lid, "contract_version": str(version.version)},
                    **schedule_terms(line, refs)}
            schedule = await keyed_create(ctx, "/v1/billing_schedules", body, f"q2p:bs:{deal}:{lid}:v{version.version}",
                                          find, f"creating the schedule of line {lid}")
            known = schedule["id"]
            with ctx.env.store.transaction() as txn:
                xrefs.put(txn, "line.billing_schedule", lid, known)
        made[lid] = known
    return {"schedules": made}


def record_schedules(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    for lid, schedule in sorted(result["schedules"].items()):
        xrefs.put(txn, "line.billing_schedule", lid, schedule)

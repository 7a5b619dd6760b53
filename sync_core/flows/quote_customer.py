"""The bill-to customer of a won deal's account: found, adopted or created in
the ERP -- never a second customer beside one that already stands for the
same business.

The survivor rules (the seeds ask for them to be explicit):

  1. **The ERP is the system of record for bill-to customers.** A customer
     finance keyed in by hand for the account's business (no externalId,
     same subsidiary and currency) survives: the core *adopts* it -- its
     internal id, its number and the name finance spelled stay, the CRM
     Account Id becomes its externalId -- and creates nothing beside it. An
     adopted customer is never rewritten from the CRM afterwards
     (table ``adopted_customers``).
  2. **The CRM is the system of record for accounts.** Two live accounts for
     one business are the CRM's own duplicate. Until sales operations merges
     them, the one created first stands for the business downstream; a deal
     of a younger look-alike waits in the finance queue
     (``DUPLICATE_ACCOUNT``): a second customer would be a duplicate, and
     booking the deal to the other account's customer would be a guess.
  3. **In a merge the CRM decides.** The merged-away account's waiting deals
     are set up under the survivor (their provisioning record, the
     ``deal.account`` cross-reference and the canonical contract follow it),
     and its ERP projects move to the survivor's customer
     (`follow_account_merge`): re-keyed when the survivor has none of its
     own, else moved and the merged-away account's customer made inactive.
  4. **Nothing is guessed.** Several ERP customers that could be the
     account's (``AMBIGUOUS_CUSTOMER_MATCH``), or one that already stands for
     another account (``CUSTOMER_OF_OTHER_ACCOUNT``), send the deal to the
     finance queue with the candidates named.

*Same business* (`same_business`): the same country, and -- when both carry
a tax registration -- the same registration (letters and digits, case
aside); otherwise the same name key (`name_key`): case, punctuation, a
qualifier in parentheses ("(AP)"), "&"/"and", "the" and legal forms
("Ltd", "L.L.C.", "GmbH", "S.A."...) aside, so "LYNN MENDOZA & LLOYD (AP)",
"Lynn, Mendoza and Lloyd" and "Lynn Mendoza & Lloyd Ltd" are one name.

Only the first deal of an account does the matching (the ERP has no
customer with its externalId yet): it reads the deal's current account (a
merge may have moved it), the account's live look-alikes in the CRM and the
candidate customers in the ERP. Every later deal finds the customer by
externalId, as before.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .. import xrefs
from ..codec import from_json, to_json
from ..dispatcher import OpContext, Operation
from ..model import Audit
from ..model_contracts import Contract
from ..outbox import Outbox
from ..ports import Transaction
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .lookups import read as read_from
from .quote_contract import customer_of
from .quote_deal import DEALS, call, read, update_record

__all__ = [
    "Party", "name_key", "registration_key", "same_business", "survivor_of",
    "upsert_customer", "record_customer", "on_account_merged", "merge_operation",
    "ADOPTED", "MERGES", "FOLLOW_MERGE",
]

CRM = "/services/v1"
ERP = "/erp/v1"
ADOPTED = "adopted_customers"  # Account Id -> {"id": ERP customer id, "name": as finance keyed it}
MERGES = "account_merges"  # merged-away Account Id -> {"survivor": Account Id, "at_us", "source"}
FOLLOW_MERGE = "erp.follow_account_merge"
PAGE = 1000  # ERP customers / CRM accounts read per request

# Words that say what kind of company a name is, not which one.
_NOT_THE_NAME = frozenset({
    "the", "and", "ltd", "limited", "inc", "incorporated", "llc", "llp", "lp", "plc", "corp", "corporation", "co",
    "company", "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "pty", "pte", "oy", "ab", "as",
    "group", "grp",
})
_QUALIFIER = re.compile(r"\([^)]*\)")
_WORD_BREAK = re.compile(r"[\s,;&/]+")


def name_key(name: str | None) -> str:
    """A company name as a person compares two of them (module docstring).
    Dots and dashes inside a word go ("S.Coop." = "SCOOP", "L.L.C." =
    "LLC") and the words are joined, so "Ruiz-Reed" = "Ruiz Reed"."""
    if not name:
        return ""
    words = (re.sub(r"[\W_]", "", w) for w in _WORD_BREAK.split(_QUALIFIER.sub(" ", name.casefold())))
    return "".join(w for w in words if w and w not in _NOT_THE_NAME)


def registration_key(registration: str | None) -> str | None:
    if not registration:
        return None
    key = re.sub(r"[\W_]", "", registration).upper()
    return key or None


@attrs.frozen
class Party:
    """What identifies a business, from a CRM account or an ERP customer."""

    name: str  # a `name_key`
    country: str | None
    registration: str | None = attrs.field(converter=registration_key)

    @classmethod
    def of_account(cls, account: dict) -> Party:
        return cls(name_key(account.get("Name")), account.get("BillingCountry"), account.get("TaxRegistration"))

    @classmethod
    def of_customer(cls, customer: dict) -> Party:
        return cls(name_key(customer.get("companyName")), customer.get("country"), customer.get("taxRegistration"))


def same_business(a: Party, b: Party) -> bool:
    if a.country != b.country:
        return False
    if a.registration and b.registration:
        return a.registration == b.registration
    return bool(a.name) and a.name == b.name


def survivor_of(txn: Transaction, account: str) -> str:
    """The live account `account` was merged into (itself if it was not)."""
    seen = {account}
    while (merged := txn.get(MERGES, account)) is not None and merged["survivor"] not in seen:
        account = merged["survivor"]
        seen.add(account)
    return account


# ------------------------------------------------------------------ the step: erp.upsert_customer


def _body(account: dict, entity: dict) -> dict:
    body = {"companyName": account["Name"], "subsidiary": entity["id"], "currency": account["CurrencyIsoCode"],
            "country": account["BillingCountry"]}
    if account.get("TaxRegistration"):
        body["taxRegistration"] = account["TaxRegistration"]
    return body


def _described(customers: list[dict]) -> list[dict]:
    return [{k: c.get(k) for k in ("id", "entityId", "companyName", "externalId", "taxRegistration")}
            for c in customers]


async def _erp_customer(ctx: OpContext, acc: str) -> dict | None:
    response = await call(ctx, "GET", f"{ERP}/customers/eid:{acc}")
    if response.status == 404:
        return None
    return check("erp", response, ok=(200,), doing=f"looking up the customer of account {acc}").json


async def _crm_get(ctx: OpContext, path: str) -> dict:
    return (await read_from(ctx, "crm", f"{CRM}/objects/{path}")).json


async def _crm_accounts_in(ctx: OpContext, country: str) -> list[dict]:
    """Live CRM accounts billed in `country`, in creation order (the CRM's
    order without ORDER BY; merged-away accounts are never returned)."""
    rows: list[dict] = []
    quoted = country.replace("\\", "\\\\").replace("'", "\\'")
    while True:
        query = {"q": f"Account WHERE BillingCountry = '{quoted}'", "pageSize": str(PAGE), "offset": str(len(rows))}
        body = (await read_from(ctx, "crm", f"{CRM}/query", query)).json
        rows += body["records"]
        if body.get("done", True) or not body["records"]:
            return rows


async def _erp_candidates(ctx: OpContext, account: dict, entity: dict) -> list[dict]:
    """Active ERP customers of the subsidiary and currency the account is
    billed in that are the account's business."""
    me = Party.of_account(account)
    found, offset = [], 0
    while True:
        query = {"subsidiary": str(entity["id"]), "currency": account["CurrencyIsoCode"], "limit": str(PAGE),
                 "offset": str(offset)}
        body = check("erp", await call(ctx, "GET", f"{ERP}/customers", query=query), ok=(200,),
                     doing="looking for the account's business among the ERP's customers").json
        found += [c for c in body["items"] if not c.get("isInactive") and same_business(me, Party.of_customer(c))]
        offset += len(body["items"])
        if not body.get("hasMore") or not body["items"]:
            return sorted(found, key=lambda c: int(c["id"]))


def _park(ctx: OpContext, accounts: list[str], code: str, message: str, details: dict) -> BusinessException:
    """The finance exception for `code` -- unless one of `accounts` was merged
    meanwhile (the feed told the store after our reads), in which case the
    next attempt follows the merge. Called after the last await, so no
    merge can slip in between this look and the exception being recorded."""
    moved = read(ctx.env, lambda txn: [a for a in accounts if survivor_of(txn, a) != a])
    if moved:
        raise RetryLater(f"accounts {', '.join(moved)} were merged while the customer was being matched")
    return BusinessException("finance", code, message, details)


async def _current_account(ctx: OpContext, deal: str, account: dict) -> dict:
    """The deal's account now: a merge moves a deal to the survivor (the
    store knows once the feed said so; the opportunity says so at once)."""
    survivor = read(ctx.env, lambda txn: survivor_of(txn, account["Id"]))
    if survivor == account["Id"]:
        survivor = (await _crm_get(ctx, f"Opportunity/{deal}"))["AccountId"]
    if survivor == account["Id"]:
        return account
    moved = await _crm_get(ctx, f"Account/{survivor}")
    if (moved.get("BillingCountry"), moved.get("CurrencyIsoCode")) != (account.get("BillingCountry"),
                                                                       account.get("CurrencyIsoCode")):
        raise BusinessException("finance", "MERGED_ACCOUNT_ELSEWHERE", f"deal {deal} moved from account "
                                f"{account['Id']} to {survivor}, which is billed in another country or currency "
                                f"({moved.get('BillingCountry')}/{moved.get('CurrencyIsoCode')}); its legal entity "
                                "must be chosen again: provision it by hand", {"deal": deal, "account": survivor})
    ctx.env.tracer.event("core.deal.account_moved", {"deal": deal, "from": account["Id"], "to": survivor},
                         corr=ctx.corr, cause=ctx.message["id"])
    return {k: moved.get(k) for k in account}


async def _match(ctx: OpContext, deal: str, account: dict, entity: dict) -> dict:
    """Rules 1, 2 and 4 for an account with no ERP customer yet."""
    acc, me = account["Id"], Party.of_account(account)
    if account.get("BillingCountry"):
        live = await _crm_accounts_in(ctx, account["BillingCountry"])
        ids = [a["Id"] for a in live]
        if acc not in ids:
            raise RetryLater(f"account {acc} is not live in the CRM any more (merged?); following it next time")
        older = [a for a in live[:ids.index(acc)] if same_business(me, Party.of_account(a))]
        if older:
            raise _park(ctx, [acc] + [a["Id"] for a in older], "DUPLICATE_ACCOUNT",
                        f"account {acc} ({account['Name']}) of deal {deal} is the business of older account(s) "
                        f"{', '.join(a['Id'] + ' (' + str(a['Name']) + ')' for a in older)}: the CRM holds the client "
                        "twice. Merge the accounts in the CRM (the deal then follows the survivor) or correct the "
                        "data that makes them alike; then retry", {"deal": deal, "account": acc,
                                                                   "lookalikes": [a["Id"] for a in older]})
    candidates = await _erp_candidates(ctx, account, entity)
    unclaimed = [c for c in candidates if not c.get("externalId")]
    claimed = [c for c in candidates if c.get("externalId") and c["externalId"] != acc]
    if claimed:
        merging = read(ctx.env, lambda txn: [c["id"] for c in claimed if survivor_of(txn, c["externalId"]) == acc])
        if merging:  # a merged-away account's customer, which follow_account_merge is re-keying to us
            raise RetryLater(f"customer(s) {merging} of accounts merged into {acc} are being taken over")
        raise _park(ctx, [acc] + [c["externalId"] for c in claimed], "CUSTOMER_OF_OTHER_ACCOUNT",
                    f"the ERP customer(s) {_described(claimed)} look like the business of account {acc} "
                    f"({account['Name']}) but stand for other accounts; merge the accounts in the CRM or the "
                    "customers in the ERP, or correct the data that makes them alike; then retry",
                    {"deal": deal, "account": acc, "candidates": _described(candidates)})
    if len(unclaimed) > 1:
        raise _park(ctx, [acc], "AMBIGUOUS_CUSTOMER_MATCH",
                    f"the ERP holds {len(unclaimed)} customers that could be account {acc} ({account['Name']}): "
                    f"{_described(unclaimed)}; merge them in the ERP (or give the right one externalId {acc}), "
                    "then retry", {"deal": deal, "account": acc, "candidates": _described(unclaimed)})
    if unclaimed:
        return await _adopt(ctx, deal, account, unclaimed[0])
    response = await call(ctx, "PUT", f"{ERP}/customers/eid:{acc}", json=_body(account, entity))
    customer = check("erp", response, ok=(200, 201), doing=f"creating customer {acc} for deal {deal}").json
    return {"id": str(customer["id"]), "created": response.status == 201}


async def _adopt(ctx: OpContext, deal: str, account: dict, customer: dict) -> dict:
    """Rule 1: the hand-keyed customer takes the account's id. The intent is
    stored before the write, so a concurrent deal of the account that sees
    the externalId already knows not to rewrite finance's record."""
    acc, cid = account["Id"], str(customer["id"])
    with ctx.env.store.transaction() as txn:
        txn.put(ADOPTED, acc, {"id": cid, "name": customer.get("companyName"), "number": customer.get("entityId")})
    response = await call(ctx, "PUT", f"{ERP}/customers/{cid}", json={"externalId": acc})
    if response.status == 400 and error_code("erp", response.json) == "DUPLICATE_EXTERNAL_ID":
        raise RetryLater(f"externalId {acc} was given to another customer meanwhile; looking again")
    check("erp", response, ok=(200,), doing=f"adopting customer {cid} for account {acc}")
    ctx.env.tracer.event("core.customer.adopted", {"account": acc, "customer": cid, "number": customer.get("entityId"),
                                                   "name": customer.get("companyName"), "deal": deal},
                         corr=ctx.corr, cause=ctx.message["id"])
    return {"id": cid, "adopted": True}


async def upsert_customer(ctx: OpContext, deal: str, record: dict) -> dict:
    account, entity = record["snapshot"]["account"], record["entity"]
    if read(ctx.env, lambda txn: survivor_of(txn, account["Id"]) != account["Id"]):
        account = await _current_account(ctx, deal, account)  # merged away since the deal was read
    acc = account["Id"]
    known = read(ctx.env, lambda txn: xrefs.get(txn, "account.erp_customer", acc))
    if known is None:
        found = await _erp_customer(ctx, acc)
        if found is None:
            # The account's first deal downstream: make sure of the account
            # first (a merge the feed has not told us of yet moves the deal).
            current = await _current_account(ctx, deal, account)
            if current["Id"] != acc:
                account, acc = current, current["Id"]
                found = await _erp_customer(ctx, acc)
        if found is None:
            return _result(ctx, deal, record, account, await _match(ctx, deal, account, entity))
        known = str(found["id"])
    adopted = read(ctx.env, lambda txn: txn.get(ADOPTED, acc))
    if adopted is not None and adopted["id"] == known:
        return _result(ctx, deal, record, account, {"id": known})  # finance's record: never rewritten
    # The core's own customer: an upsert by externalId, as every deal of the account does.
    response = await call(ctx, "PUT", f"{ERP}/customers/eid:{acc}", json=_body(account, entity))
    customer = check("erp", response, ok=(200, 201), doing=f"upserting customer {acc} for deal {deal}").json
    return _result(ctx, deal, record, account, {"id": str(customer["id"])})


def _result(ctx: OpContext, deal: str, record: dict, account: dict, result: dict) -> dict:
    out = {"account": account["Id"], **result}
    if account["Id"] != record["snapshot"]["account"]["Id"]:
        audit = Audit.at(ctx.env.now(), correlation_id=f"deal:{deal}", source_event=record["source_event"],
                         causation_id=ctx.message["id"])
        out["moved"] = {"from": record["snapshot"]["account"]["Id"], "account": account, "audit": to_json(audit)}
    return out


def record_customer(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    acc = result["account"]
    xrefs.put(txn, "account.erp_customer", acc, result["id"])
    moved = result.get("moved")
    if moved is None:
        return
    # Rule 3: the deal belongs to the survivor from here on, for every later step and flow.
    record = txn.get(DEALS, deal)
    gid = txn.get("customer_gids", acc) or record["customer_gid"]
    txn.put("customer_gids", acc, gid)
    update_record(txn, deal, snapshot={**record["snapshot"], "account": moved["account"]}, customer_gid=gid,
                  moved_from_account=moved["from"])
    xrefs.put(txn, "deal.account", deal, acc)
    if txn.get("customers", acc) is None:
        audit = from_json(Audit, moved["audit"])
        txn.put("customers", acc, to_json(customer_of(moved["account"], gid=gid, entity=record["entity"], audit=audit)))
    data = xrefs.contract_json(txn, deal)
    if data is not None:
        xrefs.put_contract_json(txn, deal, to_json(attrs.evolve(from_json(Contract, data), customer_gid=gid)))


# ------------------------------------------------------------------ a CRM merge


def on_account_merged(core: Any, txn: Transaction, change: dict) -> None:
    """The CRM published a merged-away account (a DELETE carrying
    MasterRecordId). Its deals and the survivor's waiting in an exception
    queue for their customer are tried again -- the merged-away account's
    follow the survivor now -- and its ERP customer, if it has one, follows
    too (`follow_account_merge`, on an aggregate of its own)."""
    survivor = (change.get("fields") or {}).get("MasterRecordId")
    if not survivor:
        return
    cause = f"crm:{change['replayId']}"
    for loser in (change.get("header") or {}).get("recordIds") or ():
        if loser == survivor or txn.get(MERGES, loser) is not None:
            continue  # a replay of the event
        txn.put(MERGES, loser, {"survivor": survivor, "at_us": core.now_us(), "source": cause})
        core.trace("core.account.merged", {"loser": loser, "survivor": survivor}, corr=f"account:{survivor}",
                   cause=cause)
        # Waiting on either side: the merged-away account's deals follow the
        # survivor; the survivor's own may have waited for this very merge
        # (a younger look-alike of the account now gone).
        waiting = sorted(deal for deal, r in txn.scan(DEALS)
                         if ((r.get("snapshot") or {}).get("account") or {}).get("Id") in (loser, survivor))
        for key, item in list(txn.scan("exceptions")):
            if item.get("op") == "erp.upsert_customer" and item.get("aggregate") in {f"deal:{d}" for d in waiting}:
                Outbox.resolve_exception(txn, item["domain"], item["id"], retry=True, now_us=core.now_us())
                core.dispatcher.wake()
                core.trace("core.exception.retried", {"exception": key, "code": item.get("code"),
                                                      "why": f"account {loser} was merged into {survivor}"},
                           corr=item["aggregate"], cause=cause)
        core.enqueue(txn, FOLLOW_MERGE, {"loser": loser, "survivor": survivor}, aggregate=f"account-merge:{loser}",
                     corr=f"account:{survivor}", cause=cause)


async def _projects_of(ctx: OpContext, customer_id: str) -> list[dict]:
    rows, offset = [], 0
    while True:
        query = {"customer": customer_id, "limit": str(PAGE), "offset": str(offset)}
        body = check("erp", await call(ctx, "GET", f"{ERP}/projects", query=query), ok=(200,),
                     doing=f"listing the projects of customer {customer_id}").json
        rows += body["items"]
        offset += len(body["items"])
        if not body.get("hasMore") or not body["items"]:
            return rows


async def follow_account_merge(ctx: OpContext, payload: dict) -> dict:
    """Rule 3 in the ERP, for an account merged away after its customer
    existed. Safe to repeat: each write is an update to a stated value."""
    loser, survivor = payload["loser"], payload["survivor"]
    lost = await _erp_customer(ctx, loser)
    if lost is None:
        return {"loser": loser, "survivor": survivor, "customer": None}
    lost_id = str(lost["id"])
    kept = await _erp_customer(ctx, survivor)
    if kept is None:  # the survivor had none of its own: the merged-away account's stands for both
        check("erp", await call(ctx, "PUT", f"{ERP}/customers/{lost_id}", json={"externalId": survivor}), ok=(200,),
              doing=f"re-keying customer {lost_id} to surviving account {survivor}")
        return {"loser": loser, "survivor": survivor, "customer": lost_id, "rekeyed": True}
    kept_id = str(kept["id"])
    if read(ctx.env, lambda txn: (txn.get(ADOPTED, loser) or {}).get("id")) == lost_id:
        raise BusinessException("finance", "ERP_CUSTOMERS_TO_MERGE", f"accounts {loser} and {survivor} were merged in "
                                f"the CRM; ERP customer {lost_id} (keyed in by finance, standing for {loser}) and "
                                f"{kept_id} (for {survivor}) are one business. Merge {kept_id} into {lost_id} in the "
                                "ERP and give it externalId " + survivor + ", then resolve", payload)
    if (lost["subsidiary"], lost["currency"]) != (kept["subsidiary"], kept["currency"]):
        raise BusinessException("finance", "ERP_CUSTOMERS_TO_MERGE", f"accounts {loser} and {survivor} were merged in "
                                f"the CRM but their ERP customers {lost_id} and {kept_id} are in different "
                                "subsidiaries or currencies; move the projects by hand, then resolve", payload)
    moved = []
    for project in await _projects_of(ctx, lost_id):
        check("erp", await call(ctx, "PUT", f"{ERP}/projects/{project['id']}", json={"customer": int(kept_id)}),
              ok=(200,), doing=f"moving project {project['id']} to customer {kept_id}")
        moved.append(str(project["id"]))
    check("erp", await call(ctx, "PUT", f"{ERP}/customers/{lost_id}", json={"isInactive": True}), ok=(200,),
          doing=f"retiring customer {lost_id} of merged-away account {loser}")
    return {"loser": loser, "survivor": survivor, "customer": kept_id, "retired": lost_id, "projects": moved}


def merge_operation(core: Any) -> Operation:
    def done(txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        if result.get("customer") is not None:
            xrefs.put(txn, "account.erp_customer", result["survivor"], result["customer"])
        core.trace("core.account.merge_followed", result, corr=message["corr"], cause=message["id"])

    return Operation(FOLLOW_MERGE, follow_account_merge, done, 600.0)

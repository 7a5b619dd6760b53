"""What the flow remembers between feed changes, and when a deal is ready.

Per time entry (table ``t2f_entries``) the flow keeps the newest snapshot it
has seen -- by the PSA's ``lock_version``, which every write bumps, because
the PSA's feed promises no order and repeats itself -- and which version's
postings it has *decided* (queued in the outbox, not reversed since):

    entry id -> {"entry", "project", "deal", "lock", "version", "status",
                 "snap": {date, hours, task_id, ...}, "decided": version | None,
                 "billed": whether the decided version's postings include
                           billing and revenue (then so does its reversal)}

Deciding is a pure comparison of the two: the version that should stand in
the books is the current one if it is approved, else none. Any decided
version that is not the one that should stand is reversed; the one that
should stand and is not decided is posted. Both go to the deal's outbox line
in that order, so a reversal always runs after the posting it undoes and
before the posting that replaces it.

A deal is *ready* when the provisioning the postings rely on has happened
(the cross-references quote-to-project writes once the records exist). Work
on a deal that is not ready waits in ``t2f_waiting`` and a poller releases
it; enqueueing it earlier could put a posting ahead of the provisioning it
needs in the deal's line, and the head of a line waits for no one behind it.
"""

from __future__ import annotations

from .. import xrefs
from ..codec import from_json
from ..model_contracts import Contract
from ..ports import Transaction

__all__ = ["ENTRIES", "PRICED", "WAITING", "WAIT_GROUPS", "CACHE", "BY_RESOURCE", "contract_of", "missing_for", "wait",
           "unwait", "waiting_in",
           "tm_lines", "account_of"]

ENTRIES = "t2f_entries"  # PSA time entry id -> state
PRICED = "t2f_priced"  # "<entry>:v<version>" -> the priced version and what was posted of it
WAITING = "t2f_waiting"  # "<deal or psa_project:id>\x00<te|ex>:<id>" -> {"since_us", "missing"}
# "<deal or psa_project:id>" -> {"since_us": its first item's, "n": items}: the
# poller looks at groups, and reads a group's items only once it may be ready
WAIT_GROUPS = "t2f_waiting_groups"
CACHE = "t2f_cache"  # "role:<id>", "assignment:<id>", "task:<id>", "fx:<from>:<to>:<date>", "reported:<group>"
# "<PSA resource id>\x00<entry id>" -> {"version", "date", "deal"}: the version
# last posted for the person's entry, so a restated cost rate finds what to
# re-cost without reading every entry (stale rows are skipped by the re-cost)
BY_RESOURCE = "t2f_by_resource"
_SEP = "\x00"


def contract_of(txn: Transaction, deal: str) -> Contract | None:
    data = xrefs.contract_json(txn, deal)
    return None if data is None else from_json(Contract, data)


def tm_lines(contract: Contract | dict) -> list[str]:
    """The time-and-materials lines of the latest version, sorted (from the
    record or, cheaper, from its JSON: the readiness check runs often)."""
    if isinstance(contract, dict):
        latest = max(contract["versions"], key=lambda v: v["version"])
        return sorted(ln["line_id"] for ln in latest["lines"] if ln["billing_model"] == "t_and_m")
    return sorted(ln.line_id for ln in contract.latest.lines if ln.billing_model == "t_and_m")


def account_of(txn: Transaction, deal: str) -> str | None:
    return xrefs.get(txn, "deal.account", deal)


def missing_for(txn: Transaction, deal: str | None, *, expense: bool = False, billable: bool = True) -> str | None:
    """What the deal still lacks before its time (or an expense, `billable`
    or not) can post; None when it is ready."""
    if deal is None:
        return "the PSA project is not linked to a deal (psa_project.deal)"
    contract = xrefs.contract_json(txn, deal)
    if contract is None:
        return f"deal {deal} has no canonical contract yet"
    if xrefs.get(txn, "deal.erp_project", deal) is None:
        return f"deal {deal} has no ERP project yet"
    billed = tm_lines(contract)
    if expense and not billable:
        return None  # an ERP actual is all it makes
    if expense or billed:
        account = account_of(txn, deal)
        if account is None:
            return f"deal {deal} has no account (deal.account)"
        if xrefs.get(txn, "account.billing_customer", account) is None:
            return f"account {account} has no billing customer yet"
    # Time bills on its line's schedule and is recognised; an expense is
    # rebilled on the deal's first T&M schedule, when it has one.
    if billed and not expense and xrefs.get(txn, "deal.revenue_contract", deal) is None:
        return f"deal {deal} has no revenue contract yet"
    for line in billed[:1] if expense else billed:
        if xrefs.get(txn, "line.billing_schedule", line) is None:
            return f"line {line} of deal {deal} has no billing schedule yet"
    return None


def waiting_key(group: str, item: str) -> str:
    return f"{group}{_SEP}{item}"


def wait(txn: Transaction, group: str, item: str, missing: str, now_us: int) -> None:
    key = waiting_key(group, item)
    current = txn.get(WAITING, key)
    if current is None:
        txn.put(WAITING, key, {"since_us": now_us, "missing": missing})
        g = txn.get(WAIT_GROUPS, group) or {"since_us": now_us, "n": 0}
        txn.put(WAIT_GROUPS, group, dict(g, n=g["n"] + 1))
    elif current["missing"] != missing:
        txn.put(WAITING, key, dict(current, missing=missing))


def unwait(txn: Transaction, group: str, item: str) -> None:
    key = waiting_key(group, item)
    if txn.get(WAITING, key) is not None:
        txn.delete(WAITING, key)
        g = txn.get(WAIT_GROUPS, group)
        if g is None or g["n"] <= 1:
            txn.delete(WAIT_GROUPS, group)
        else:
            txn.put(WAIT_GROUPS, group, dict(g, n=g["n"] - 1))


def waiting_in(txn: Transaction, group: str) -> list[tuple[str, dict]]:
    """(item, info) of what waits in `group`."""
    prefix = f"{group}{_SEP}"
    return [(key[len(prefix):], info) for key, info in txn.scan(WAITING, prefix=prefix)]


def split_waiting_key(key: str) -> tuple[str, str]:
    group, _, item = key.partition(_SEP)
    return group, item

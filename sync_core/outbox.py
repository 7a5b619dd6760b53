"""The transactional outbox, the dead-letter queue and the exception queues.

A flow never calls a vendor directly. It decides, and in the same store
transaction that records its decision it enqueues an outbox message naming
an operation (``"erp.upsert_customer"``: system, dot, action) and its
payload. The dispatcher performs messages later; so a crash between
deciding and sending loses nothing (the message is committed), and a message
is deleted in the same transaction that records its result.

Messages carry an *aggregate* key (a deal, a project, a contract). Messages
of one aggregate run one at a time, in enqueue order -- "create the project"
before "post time to the project" -- so only the head of each aggregate is
*ready*; the rest wait in line. A head that fails for good (dead-lettered,
or parked as a business exception) keeps its aggregate blocked until a
person replays or resolves it: running the rest would break the order.

Store tables:
  msgs        "<id>"                          -> message
  ready       "<system>\\x00<due:020d>:<id>"  -> id   (heads, by due time)
  agg         "<aggregate>\\x00<seq:012d>"    -> id   (every message, in line)
  dlq         "<id>"                          -> message + reason
  exceptions  "<domain>:<id>"                 -> item (reason code, ...)
  counters    "<name>"                        -> int
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .ports import Transaction
from .retry import DOMAINS

__all__ = ["Outbox", "next_counter", "system_of"]

_SEP = "\x00"


def next_counter(txn: Transaction, name: str) -> int:
    n = (txn.get("counters", name) or 0) + 1
    txn.put("counters", name, n)
    return n


def system_of(op: str) -> str:
    return op.split(".", 1)[0]


def _ready_key(message: dict) -> str:
    return f"{system_of(message['op'])}{_SEP}{message['due_us']:020d}:{message['id']}"


class Outbox:
    """Operations on the outbox tables, inside the caller's transaction."""

    @staticmethod
    def enqueue(
        txn: Transaction,
        op: str,
        payload: dict,
        *,
        aggregate: str,
        now_us: int,
        corr: str | None = None,
        cause: str | None = None,
        delay_us: int = 0,
    ) -> str:
        msg_id = f"ob{next_counter(txn, 'outbox'):08d}"
        agg_key = f"{aggregate}{_SEP}{next_counter(txn, 'agg_seq'):012d}"
        message = {
            "id": msg_id,
            "op": op,
            "payload": payload,
            "aggregate": aggregate,
            "agg_key": agg_key,
            "attempts": 0,
            "enqueued_us": now_us,
            "due_us": now_us + delay_us,
            "corr": corr,
            "cause": cause,
            "last_error": None,
        }
        first_in_line = next(txn.scan("agg", prefix=aggregate + _SEP, limit=1), None) is None
        txn.put("msgs", msg_id, message)
        txn.put("agg", agg_key, msg_id)
        if first_in_line:
            txn.put("ready", _ready_key(message), msg_id)
        return msg_id

    @staticmethod
    def ready(txn: Transaction, system: str, limit: int) -> Iterator[dict]:
        """Ready heads of `system`, earliest due first (due or not)."""
        for _, msg_id in txn.scan("ready", prefix=system + _SEP, limit=limit):
            yield txn.get("msgs", msg_id)

    @staticmethod
    def get(txn: Transaction, msg_id: str) -> dict | None:
        return txn.get("msgs", msg_id)

    @staticmethod
    def _promote_next(txn: Transaction, aggregate: str, now_us: int) -> None:
        nxt = next(txn.scan("agg", prefix=aggregate + _SEP, limit=1), None)
        if nxt is not None:
            message = txn.get("msgs", nxt[1])
            if message["due_us"] < now_us:
                message["due_us"] = now_us
                txn.put("msgs", message["id"], message)
            txn.put("ready", _ready_key(message), message["id"])

    @classmethod
    def complete(cls, txn: Transaction, message: dict, now_us: int) -> None:
        """Done: out of the outbox; the next in its aggregate becomes ready."""
        txn.delete("ready", _ready_key(message))
        txn.delete("msgs", message["id"])
        txn.delete("agg", message["agg_key"])
        cls._promote_next(txn, message["aggregate"], now_us)

    @staticmethod
    def reschedule(txn: Transaction, message: dict, due_us: int, error: str) -> dict:
        """Try again at `due_us` (attempts are counted when one starts)."""
        txn.delete("ready", _ready_key(message))
        updated = dict(message, due_us=due_us, last_error=error)
        txn.put("msgs", message["id"], updated)
        txn.put("ready", _ready_key(updated), message["id"])
        return updated

    @staticmethod
    def dead_letter(txn: Transaction, message: dict, reason: str, now_us: int) -> None:
        txn.delete("ready", _ready_key(message))
        txn.delete("msgs", message["id"])
        txn.put("dlq", message["id"], dict(message, reason=reason, dead_us=now_us))

    @staticmethod
    def to_exception_queue(
        txn: Transaction, message: dict, domain: str, code: str, text: str, details: dict, now_us: int
    ) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"unknown exception domain {domain!r}")
        txn.delete("ready", _ready_key(message))
        txn.delete("msgs", message["id"])
        txn.put(
            "exceptions",
            f"{domain}:{message['id']}",
            dict(message, domain=domain, code=code, message=text, details=details, opened_us=now_us),
        )

    @staticmethod
    def replay_dead_letter(txn: Transaction, msg_id: str, now_us: int) -> bool:
        """Put a dead letter back at the head of its aggregate, attempts reset."""
        item = txn.get("dlq", msg_id)
        if item is None:
            return False
        txn.delete("dlq", msg_id)
        message = {k: v for k, v in item.items() if k not in ("reason", "dead_us")}
        message.update(attempts=0, due_us=now_us)
        txn.put("msgs", msg_id, message)
        txn.put("ready", _ready_key(message), msg_id)
        return True

    @classmethod
    def resolve_exception(cls, txn: Transaction, domain: str, msg_id: str, *, retry: bool, now_us: int) -> bool:
        """A person fixed the cause (`retry`: run the operation again) or
        decided it must not happen (the aggregate moves on without it)."""
        item = txn.get("exceptions", f"{domain}:{msg_id}")
        if item is None:
            return False
        txn.delete("exceptions", f"{domain}:{msg_id}")
        message = {k: v for k, v in item.items() if k not in ("domain", "code", "message", "details", "opened_us")}
        if retry:
            message.update(attempts=0, due_us=now_us)
            txn.put("msgs", msg_id, message)
            txn.put("ready", _ready_key(message), msg_id)
        else:
            txn.delete("agg", message["agg_key"])
            cls._promote_next(txn, message["aggregate"], now_us)
        return True

    @staticmethod
    def head_of_line(txn: Transaction, aggregate: str) -> tuple[str, str] | None:
        """What heads `aggregate`'s line: None when the line is empty, else
        (state, message id), state "queued" (waiting, due, retrying or in
        flight: work the core will still do), "dead" (a dead letter holds
        the rest back) or "exception" (a business exception does)."""
        head = next(txn.scan("agg", prefix=aggregate + _SEP, limit=1), None)
        if head is None:
            return None
        msg_id = head[1]
        if txn.get("msgs", msg_id) is not None:
            return "queued", msg_id
        return ("dead" if txn.get("dlq", msg_id) is not None else "exception"), msg_id

    @staticmethod
    def counts(txn: Transaction) -> dict[str, Any]:
        def n(table: str, prefix: str = "") -> int:
            return sum(1 for _ in txn.scan(table, prefix=prefix))

        return {
            "outbox": n("msgs"),
            "ready": n("ready"),
            "dlq": n("dlq"),
            "exceptions": {d: n("exceptions", d + ":") for d in DOMAINS},
        }

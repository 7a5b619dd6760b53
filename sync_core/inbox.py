"""The inbox: every inbound event handled once, however often it arrives.

Webhooks come at least once, feeds repeat themselves, and a crash can make
the core read the same page twice. The inbox records each event's id in the
same transaction that acts on it (and enqueues the outbox messages that
follow), so a duplicate finds its id already there and is dropped, and a
crash before the commit leaves neither the id nor the effects.

Table ``inbox``: "<source>:<event id>" -> the virtual time it was handled.
"""

from __future__ import annotations

from .ports import Transaction

__all__ = ["Inbox"]


class Inbox:
    @staticmethod
    def first_time(txn: Transaction, source: str, event_id: str, now_us: int) -> bool:
        """True (and remembered) the first time an event is seen."""
        key = f"{source}:{event_id}"
        if txn.get("inbox", key) is not None:
            return False
        txn.put("inbox", key, now_us)
        return True

    @staticmethod
    def seen(txn: Transaction, source: str, event_id: str) -> bool:
        return txn.get("inbox", f"{source}:{event_id}") is not None

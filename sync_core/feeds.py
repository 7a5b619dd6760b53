"""Reading the vendors' change feeds, once, for every flow.

One reader per feed keeps that feed's cursor in the store; flows register
handlers for the kinds of change they care about (``"Opportunity"`` in the
CRM, ``"time_entry"`` in the PSA...). A batch is handled in ONE transaction:
the inbox marks each change seen, the handlers decide and enqueue their
outbox messages, and the cursor moves -- all or nothing. A crash in the
middle re-reads the batch, and the inbox drops what was already handled.

Each feed is read the way its family demands:

  * CRM (CDC): resume after the last replay id. If the vendor says the id
    has expired (the core was away longer than the 72-hour retention), the
    gap is recorded as an IT exception and reading restarts from the oldest
    retained event -- what was lost in between needs a re-sync by a person.
  * PSA ("changed since"): no order, duplicates, and changes that become
    visible after their timestamp. The watermark is the PSA's own time of
    the last complete read (``as_of``); the next read starts an overlap
    window before it, which covers the visibility lag, and the inbox drops
    the repeats. (A watermark at the newest change seen would re-read the
    last burst -- a team's timesheets, all stamped 17:00 -- on every poll
    until something newer happened.)
  * HRIS: events after the last event id.
  * Expenses: approved lines not yet exported, deduplicated by line.

Handlers are plain functions ``handler(txn, change)``: synchronous, because
a transaction never awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .inbox import Inbox
from .ports import Transaction
from .replies import check, error_code

if TYPE_CHECKING:
    from .core import ReferenceCore

__all__ = ["FeedReaders", "Handler"]

Handler = Callable[[Transaction, dict], None]

PSA_OVERLAP_US = 5 * 60 * 1_000_000  # re-read 5 minutes back: visibility lag is shorter
PAGE = 200


class FeedReaders:
    """The core's feed readers and the flows' handlers for them."""

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        self.handlers: dict[tuple[str, str], list[Handler]] = {}

    def on(self, system: str, kind: str, handler: Handler) -> None:
        self.handlers.setdefault((system, kind), []).append(handler)

    def pollers(self) -> list:
        core = self.core
        interval = core.config.get("poll_interval", {})
        readers = {
            "crm": (self.poll_crm, interval.get("crm", 30.0)),
            "psa": (self.poll_psa, interval.get("psa", 60.0)),
            "hris": (self.poll_hris, interval.get("hris", 300.0)),
            "expenses": (self.poll_expenses, interval.get("expenses", 300.0)),
        }
        wanted = sorted({system for system, _ in self.handlers})
        return [core.poller(f"{s}-feed", readers[s][0], readers[s][1]) for s in wanted if s in readers]

    def dispatch(self, txn: Transaction, system: str, kind: str, change: dict) -> None:
        """Hand `change` to every handler of (system, kind), in `txn`. Flows
        also tell each other of their own decisions this way, as system
        ``"core"`` (``"core", "worker.cost_rates_changed"``)."""
        for handler in self.handlers.get((system, kind), ()):
            handler(txn, change)

    # ------------------------------------------------------------ CRM (CDC)

    async def poll_crm(self) -> bool:
        core = self.core
        with core.env.store.transaction() as txn:
            cursor = txn.get("cursors", "crm")
        query: dict[str, Any] = {"limit": str(PAGE)}
        if cursor is not None:
            query["after"] = cursor
        response = await core.env.clients["crm"].request("GET", "/services/v1/changes", query=query)
        if response.status == 400 and error_code("crm", response.json) == "REPLAY_ID_EXPIRED":
            with core.env.store.transaction() as txn:
                txn.delete("cursors", "crm")
                core.open_exception(txn, "it", "FEED_GAP", f"CRM change feed expired after {cursor}; "
                                    "changes in the gap need a re-sync", {"after": cursor})
            return True
        check("crm", response, ok=(200,), doing="reading changes")
        events = response.json["events"]
        now = core.now_us()
        with core.env.store.transaction() as txn:
            for event in events:
                if Inbox.first_time(txn, "crm", event["replayId"], now):
                    self.dispatch(txn, "crm", event["header"]["entity"], event)
            if response.json.get("lastReplayId") is not None:
                txn.put("cursors", "crm", response.json["lastReplayId"])
        return bool(events)

    # ------------------------------------------------------------ PSA (changed since)

    async def poll_psa(self) -> bool:
        core = self.core
        with core.env.store.transaction() as txn:
            watermark = txn.get("cursors", "psa") or 0
        since = max(0, watermark - PSA_OVERLAP_US)
        found_new = False
        page = 1
        newest = watermark
        as_of = None
        while True:
            response = await core.env.clients["psa"].request(
                "GET", "/changes", query={"since": str(since), "page": str(page), "per_page": str(PAGE)}
            )
            check("psa", response, ok=(200,), doing="reading changes")
            changes = sorted(response.json["changes"], key=lambda c: (c["changed_at"], c["id"]))
            if page == 1 and isinstance(response.json.get("as_of"), int):
                as_of = response.json["as_of"]  # later pages may see more; the first bounds what all saw
            now = core.now_us()
            with core.env.store.transaction() as txn:
                for change in changes:
                    newest = max(newest, change["changed_at"])
                    if Inbox.first_time(txn, "psa", str(change["id"]), now):
                        found_new = True
                        self.dispatch(txn, "psa", change["item_type"], change)
                if not response.json.get("more"):
                    txn.put("cursors", "psa", max(newest, as_of or 0))
            if not response.json.get("more"):
                return found_new
            page += 1

    # ------------------------------------------------------------ HRIS (events after)

    async def poll_hris(self) -> bool:
        core = self.core
        with core.env.store.transaction() as txn:
            cursor = txn.get("cursors", "hris")
        query = {"after": cursor} if cursor else {}
        response = await core.env.clients["hris"].request("GET", "/hr/v2/events", query=query)
        check("hris", response, ok=(200,), doing="reading events")
        events = response.json["data"]
        now = core.now_us()
        with core.env.store.transaction() as txn:
            for event in events:
                if Inbox.first_time(txn, "hris", event["id"], now):
                    self.dispatch(txn, "hris", event.get("type", "worker"), event)
            if events:
                txn.put("cursors", "hris", events[-1]["id"])
        return bool(events)

    # ------------------------------------------------------------ Expenses (approved since)

    async def poll_expenses(self) -> bool:
        """Approved lines not yet exported: once the ERP has a line, the
        expense flow marks it EXPORTED and it drops out of the read. (The
        family's approval dates can be backdated, so a cursor on them could
        skip a late approval; the export flag is what integrations key on.)"""
        core = self.core
        found_new = False
        offset = 0
        while True:
            query = {"offset": str(offset), "limit": "100", "exportStatus": "NOT_EXPORTED"}
            response = await core.env.clients["expenses"].request("GET", "/api/v3/entries", query=query)
            check("expenses", response, ok=(200,), doing="reading approved lines")
            body = response.json
            now = core.now_us()
            with core.env.store.transaction() as txn:
                for line in body["Items"]:
                    if line.get("ReportStatus") not in ("APPROVED", "REIMBURSED"):
                        continue
                    if Inbox.first_time(txn, "expenses", f"{line['EntryId']}:approved", now):
                        found_new = True
                        self.dispatch(txn, "expenses", "entry", line)
            if body.get("NextOffset") is None:
                return found_new
            offset = body["NextOffset"]


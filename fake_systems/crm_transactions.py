"""Units of work in the CRM, and the change events they publish.

Every write -- one API call, one sub-request of a partial composite, a whole
all-or-none composite, one thing a person does in the UI -- runs in a
`Transaction`. Records are replaced, never mutated in place, so undoing a
write is putting the previous dict back. Change events and side effects are
held until the transaction commits: a rolled-back write leaves no trace in
the change stream nor in the effect log (exactly what a subscriber of a real
CDC stream sees). On commit, the changes of one record are coalesced into a
single event (a create then an update is one CREATE), events go out in the
order records were first touched, and all carry the transaction's key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator import HOUR, Request

from .crm_schema import OBJECTS, wire_name
from .feeds import ReplayLog

if TYPE_CHECKING:
    from .vendor import VendorSystem

__all__ = ["Transaction", "ChangeStream"]


class Transaction:
    def __init__(self, origin: str, request: Request | None, action: str | None, quiet: bool = False) -> None:
        self.origin = origin  # "ui", "api" or "api:<client>": the event header's origin
        self.request = request  # the request being served (per sub-request in a composite)
        self.action = action  # the people action, for the effect log
        self.quiet = quiet  # a data load: no events, no effects
        self.undo: list[tuple[str, str, dict | None]] = []
        self.changes: list[tuple[str, str, str, tuple[str, ...]]] = []
        self.effects: list[tuple[str, str, str, Request | None, str | None, tuple[str, ...]]] = []

    def write(self, tables: dict, obj: str, rec_id: str, record: dict, change: str, fields: tuple[str, ...]) -> None:
        """Store `record` (a new dict) and note the change and the effect."""
        table = tables.setdefault(obj, {})
        self.undo.append((obj, rec_id, table.get(rec_id)))
        table[rec_id] = record
        self.changes.append((obj, rec_id, change, fields))
        self.effects.append((change.lower(), obj, rec_id, self.request, self.action, fields))

    def savepoint(self) -> tuple[int, int, int]:
        return len(self.undo), len(self.changes), len(self.effects)

    def rollback(self, tables: dict, to: tuple[int, int, int] = (0, 0, 0)) -> None:
        undo_at, changes_at, effects_at = to
        while len(self.undo) > undo_at:
            obj, rec_id, previous = self.undo.pop()
            if previous is None:
                del tables[obj][rec_id]
            else:
                tables[obj][rec_id] = previous
        del self.changes[changes_at:]
        del self.effects[effects_at:]

    def coalesced(self) -> list[tuple[str, str, str, list[str]]]:
        """One (object, id, change type, fields) per record, in first-touch order."""
        merged: dict[tuple[str, str], list] = {}
        for obj, rec_id, change, fields in self.changes:
            entry = merged.get((obj, rec_id))
            if entry is None:
                merged[(obj, rec_id)] = [obj, rec_id, change, list(fields)]
                continue
            if change == "DELETE" or entry[2] != "CREATE":
                entry[2] = change
            entry[3].extend(f for f in fields if f not in entry[3])
        return [(o, i, c, f) for o, i, c, f in merged.values()]


class ChangeStream:
    """The CDC channel: change events of the objects that have them enabled."""

    def __init__(self, vendor: VendorSystem, retention_us: int = 72 * HOUR) -> None:
        self.vendor = vendor
        self.log = ReplayLog(vendor, "changes", retention_us)

    def publish(self, tx: Transaction, key: str, stamp: str, schema: str) -> list[dict]:
        tables = self.vendor.durable.tables
        out = []
        for obj, rec_id, change, fields in tx.coalesced():
            if not OBJECTS[obj].cdc:
                continue
            record = tables[obj][rec_id]
            if change == "CREATE":
                fields = [f.name for f in OBJECTS[obj].fields if record.get(f.name) is not None]
            values = {wire_name(obj, f, schema): record.get(f) for f in fields if f != "Id"}
            header = {
                "entity": obj,
                "changeType": change,
                "recordIds": [rec_id],
                "changedFields": sorted(values),
                "commitStamp": stamp,
                "transactionKey": key,
                "sequenceInTransaction": len(out) + 1,
                "origin": tx.origin,
                "schema": schema,
            }
            event = self.log.append({"header": header, "fields": dict(sorted(values.items()))}, key)
            self.vendor.durable.events.append(event)
            out.append(event)
        return out

    def read(self, after: str | None, limit: int) -> tuple[list[dict], str | None]:
        return self.log.read(after, limit)

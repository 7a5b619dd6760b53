"""Durable stores: in-memory (for simulation speed) and SQLite (the real one).

Both give the same semantics, and one shared test suite holds them to it:
key-value tables of JSON values, synchronous transactions that commit on a
normal exit and roll back on an exception (a crash of the core cancels its
tasks, which unwinds every open transaction -- so uncommitted work is lost
and committed work is kept, exactly as with a database).

Values are stored as canonical JSON text, so a value read back is always a
fresh copy: the core can never mutate committed state by accident. A scan
yields its rows as they were when its iteration began (SQLite reads them
all then), so writes made while walking it do not change what it yields.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_left, insort
from collections.abc import Iterator
from contextlib import contextmanager
from json.scanner import c_make_scanner
from typing import Any

from sortedcontainers import SortedDict

from .codec import canonical_text

__all__ = ["MemoryStore", "SqliteStore", "StoreError"]


class StoreError(Exception):
    pass


# The C scanner, built once: json.loads wraps it in Python layers that
# showed in profiles (a store read is a few of the core's steps on every
# message). Text is written by `codec.canonical_text`: json.dumps(value,
# sort_keys=True, separators=(",", ":")), exactly.
_scan = c_make_scanner(json.JSONDecoder())


def _dump(value: Any) -> str:
    try:
        return canonical_text(value)
    except TypeError as exc:
        raise StoreError(f"store values must be JSON data: {exc}") from None


def _load(text: str) -> Any:
    return _scan(text, 0)[0]


_DELETED = object()


class _MemoryTxn:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        # table -> key -> text (or _DELETED): per table, so a scan looks only
        # at its own table's writes, not at every write of a long transaction.
        self._writes: dict[str, dict[str, Any]] = {}
        # table -> its written keys in order, built by the first scan of a
        # table with writes and kept up by later writes: a transaction that
        # enqueues many messages scans the outbox after each, and sorting
        # every write again made that quadratic in the transaction's size.
        self._order: dict[str, list[str]] = {}

    def get(self, table: str, key: str) -> Any | None:
        written = self._writes.get(table)
        w = None if written is None else written.get(key)
        if w is _DELETED:
            return None
        if w is not None:
            return _load(w)
        rows = self._store._tables.get(table)
        text = None if rows is None else rows.get(key)
        return None if text is None else _load(text)

    def put(self, table: str, key: str, value: Any) -> None:
        self._write(table, key, _dump(value))

    def delete(self, table: str, key: str) -> None:
        self._write(table, key, _DELETED)

    def _write(self, table: str, key: str, text: Any) -> None:
        written = self._writes.get(table)
        if written is None:
            written = self._writes[table] = {}
        if key not in written:
            order = self._order.get(table)
            if order is not None:
                insort(order, key)
        written[key] = text

    def scan(self, table: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, Any]]:
        # As with SQLite, the rows are read when iteration starts: writes the
        # caller makes while iterating do not change what the scan yields.
        for key, text in self._rows(table, prefix, limit):
            yield key, _load(text)

    def _rows(self, table: str, prefix: str, limit: int | None) -> list[tuple[str, str]]:
        """Committed rows under `prefix` merged with this transaction's
        writes (a write replaces, a delete hides), in key order, at most
        `limit` of them (as SQLite's LIMIT: 0 is none)."""
        rows: list[tuple[str, str]] = []
        if limit is not None and limit <= 0:
            return rows
        for key, text in self._merged(table, prefix):
            if text is not _DELETED:
                rows.append((key, text))
                if len(rows) == limit:
                    break
        return rows

    def _merged(self, table: str, prefix: str) -> Iterator[tuple[str, Any]]:
        # Two sequences in key order, committed keys and written ones; a key
        # in both yields this transaction's version.
        written = self._written(table, prefix)
        committed = self._store._tables.get(table)
        if not committed:
            yield from written
            return
        i = 0
        for key in committed.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            while i < len(written) and written[i][0] < key:
                yield written[i]
                i += 1
            if i < len(written) and written[i][0] == key:
                yield written[i]
                i += 1
            else:
                yield key, committed[key]
        yield from written[i:]

    def _written(self, table: str, prefix: str) -> list[tuple[str, Any]]:
        """This transaction's writes to `table` under `prefix`, in key order."""
        mine = self._writes.get(table)
        if not mine:
            return []
        order = self._order.get(table)
        if order is None:
            order = self._order[table] = sorted(mine)
        out = []
        for i in range(bisect_left(order, prefix), len(order)):
            key = order[i]
            if not key.startswith(prefix):
                break
            out.append((key, mine[key]))
        return out

    def _commit(self) -> None:
        tables = self._store._tables
        for table, written in self._writes.items():
            t = tables.get(table)
            if t is None:
                t = tables[table] = SortedDict()
            for key, text in written.items():
                if text is _DELETED:
                    t.pop(key, None)
                else:
                    t[key] = text


class MemoryStore:
    """Committed state in sorted dicts; a transaction is a write overlay
    applied at commit. Transactions must not nest or interleave (the core's
    transactions never await, so under trio they cannot)."""

    def __init__(self) -> None:
        self._tables: dict[str, SortedDict] = {}
        self._open = False

    @contextmanager
    def transaction(self):
        if self._open:
            raise StoreError("a transaction is already open; transactions do not nest")
        self._open = True
        txn = _MemoryTxn(self)
        try:
            yield txn
            txn._commit()
        finally:
            self._open = False

    def dump(self) -> dict[str, dict[str, Any]]:
        """Every committed row (for tests and the harness). A table whose
        rows were all deleted is no table, as in SQLite."""
        return {t: {k: _load(v) for k, v in rows.items()} for t, rows in sorted(self._tables.items()) if rows}


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string that starts with
    `prefix`; None if there is none (an empty prefix, or all U+10FFFF)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    nxt = ord(stem[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not text: skip them
        nxt = 0xE000
    return stem[:-1] + chr(nxt)


class _SqliteTxn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, table: str, key: str) -> Any | None:
        row = self._conn.execute("SELECT value FROM kv WHERE tbl = ? AND key = ?", (table, key)).fetchone()
        return None if row is None else _load(row[0])

    def put(self, table: str, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO kv (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT(tbl, key) DO UPDATE SET value = excluded.value",
            (table, key, _dump(value)),
        )

    def delete(self, table: str, key: str) -> None:
        self._conn.execute("DELETE FROM kv WHERE tbl = ? AND key = ?", (table, key))

    def scan(self, table: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, Any]]:
        # A range scan on the primary key: prefix <= key < the first string
        # after every string that starts with prefix. (Keys compare as UTF-8
        # bytes, which is code-point order, Python's.)
        end = _prefix_end(prefix)
        sql = "SELECT key, value FROM kv WHERE tbl = ? AND key >= ?" + ("" if end is None else " AND key < ?")
        args: list[Any] = [table, prefix] if end is None else [table, prefix, end]
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._conn.execute(sql, args).fetchall()
        for key, value in rows:
            yield key, _load(value)


class SqliteStore:
    """The real store: one SQLite database, one key-value table."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL" if path != ":memory:" else "PRAGMA journal_mode = MEMORY")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
            "PRIMARY KEY (tbl, key)) WITHOUT ROWID"
        )
        self._open = False

    @contextmanager
    def transaction(self):
        if self._open:
            raise StoreError("a transaction is already open; transactions do not nest")
        self._open = True
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTxn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._open = False

    def dump(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for tbl, key, value in self._conn.execute("SELECT tbl, key, value FROM kv ORDER BY tbl, key"):
            out.setdefault(tbl, {})[key] = json.loads(value)
        return out

    def close(self) -> None:
        self._conn.close()

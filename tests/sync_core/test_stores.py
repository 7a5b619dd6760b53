"""One suite, both stores: the in-memory store must behave like SQLite."""

import pytest

from sync_core.stores import MemoryStore, SqliteStore, StoreError


@pytest.fixture(params=["memory", "sqlite", "sqlite-file"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        s = SqliteStore()
        yield s
        s.close()
    else:
        s = SqliteStore(str(tmp_path / "core.db"))
        yield s
        s.close()


def test_committed_writes_are_visible_to_later_transactions(store):
    with store.transaction() as t:
        t.put("deals", "d1", {"amount": "10.00", "lines": [1, 2]})
    with store.transaction() as t:
        assert t.get("deals", "d1") == {"amount": "10.00", "lines": [1, 2]}
        assert t.get("deals", "d2") is None
        assert t.get("other", "d1") is None


def test_an_exception_rolls_the_whole_transaction_back(store):
    with store.transaction() as t:
        t.put("deals", "d1", {"v": 1})
    with pytest.raises(RuntimeError):
        with store.transaction() as t:
            t.put("deals", "d1", {"v": 2})
            t.put("deals", "d2", {"v": 2})
            t.delete("deals", "d1")
            raise RuntimeError("crash between deciding and committing")
    with store.transaction() as t:
        assert t.get("deals", "d1") == {"v": 1}
        assert t.get("deals", "d2") is None


def test_reads_see_the_transactions_own_writes_and_deletes(store):
    with store.transaction() as t:
        t.put("x", "a", 1)
        t.put("x", "b", 2)
    with store.transaction() as t:
        t.put("x", "c", 3)
        t.delete("x", "a")
        assert t.get("x", "a") is None
        assert t.get("x", "c") == 3
        assert list(t.scan("x")) == [("b", 2), ("c", 3)]


def test_scan_is_in_key_order_with_prefix_and_limit(store):
    keys = ["p2:b", "p1:z", "p1:a", "p10:a", "q:1", "p1:m"]
    with store.transaction() as t:
        for i, k in enumerate(keys):
            t.put("rows", k, i)
    with store.transaction() as t:
        assert [k for k, _ in t.scan("rows", prefix="p1:")] == ["p1:a", "p1:m", "p1:z"]
        assert [k for k, _ in t.scan("rows", prefix="p1")] == ["p10:a", "p1:a", "p1:m", "p1:z"]  # "0" < ":"
        assert [k for k, _ in t.scan("rows", limit=2)] == ["p10:a", "p1:a"]
        assert [k for k, _ in t.scan("rows")] == sorted(keys)


def test_values_read_back_are_copies(store):
    with store.transaction() as t:
        t.put("x", "a", {"list": [1]})
    with store.transaction() as t:
        v = t.get("x", "a")
        v["list"].append(2)
    with store.transaction() as t:
        assert t.get("x", "a") == {"list": [1]}


def test_transactions_do_not_nest(store):
    with store.transaction():
        with pytest.raises(StoreError, match="do not nest"):
            with store.transaction():
                pass


def test_values_must_be_json_data(store):
    from decimal import Decimal

    with pytest.raises(StoreError, match="JSON data"):
        with store.transaction() as t:
            t.put("x", "a", {"amount": Decimal("1.00")})


def test_dump_shows_committed_state_only(store):
    with store.transaction() as t:
        t.put("b", "k", 1)
        t.put("a", "k", 2)
    with pytest.raises(ValueError):
        with store.transaction() as t:
            t.put("c", "k", 3)
            raise ValueError
    assert store.dump() == {"a": {"k": 2}, "b": {"k": 1}}


def test_a_table_whose_rows_are_all_deleted_is_gone_from_the_dump(store):
    with store.transaction() as t:
        t.put("ready", "k", 1)
        t.put("kept", "k", 1)
    with store.transaction() as t:
        t.delete("ready", "k")
    assert store.dump() == {"kept": {"k": 1}}
    with store.transaction() as t:
        assert list(t.scan("ready")) == []


# ------------------------------------------------------------------ crashes and restarts


class Crash(BaseException):
    """A process death as the core meets it: not an Exception, so no
    handler of the core's catches it on the way out."""


def test_a_crash_inside_a_transaction_loses_its_writes_and_keeps_what_was_committed(store):
    import trio

    with store.transaction() as t:
        t.put("deals", "d1", {"v": 1})

    async def core():
        # What a crash of the core does to an open transaction: the task's
        # scope is cancelled and trio.Cancelled unwinds through the block.
        with trio.CancelScope() as scope:
            with store.transaction() as t:
                t.put("deals", "d1", {"v": 2})
                t.put("deals", "d2", {"v": 2})
                scope.cancel()
                await trio.lowlevel.checkpoint()  # (a core never awaits in a transaction; a test may)
        assert scope.cancelled_caught

    trio.run(core)
    with pytest.raises(Crash):
        with store.transaction() as t:
            t.delete("deals", "d1")
            raise Crash
    assert store.dump() == {"deals": {"d1": {"v": 1}}}
    with store.transaction() as t:  # and the store is usable again at once
        t.put("deals", "d3", {"v": 3})
    assert sorted(store.dump()["deals"]) == ["d1", "d3"]


_DIES_MID_TRANSACTION = """
import os, sys
from sync_core.stores import SqliteStore
store = SqliteStore(sys.argv[1])
with store.transaction() as t:
    t.put("xref", "deal:1", "P1")
    t.put("xref", "deal:2", "P2")
cm = store.transaction()
t = cm.__enter__()
t.put("xref", "deal:3", "P3")
t.delete("xref", "deal:1")
os._exit(0)  # the process dies here: no rollback, no close, no cleanup
"""


def test_the_sqlite_store_keeps_only_what_was_committed_when_its_process_dies(tmp_path):
    # The memory store lives in the harness and meets a crash as the
    # unwinding above; the real store must survive a real process death.
    import subprocess
    import sys
    from pathlib import Path

    path = str(tmp_path / "core.db")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", _DIES_MID_TRANSACTION, path], cwd=root, check=True, timeout=60)
    store = SqliteStore(path)
    try:
        assert store.dump() == {"xref": {"deal:1": "P1", "deal:2": "P2"}}
        with store.transaction() as t:  # not locked by the dead process
            t.put("xref", "deal:3", "P3")
        assert sorted(store.dump()["xref"]) == ["deal:1", "deal:2", "deal:3"]
    finally:
        store.close()


# ------------------------------------------------------------------ scans over uncommitted writes


def _seed_rows(store):
    with store.transaction() as t:
        for k in ("a:1", "a:3", "a:5", "a:7", "b:1"):
            t.put("rows", k, k)


def test_a_scan_merges_the_transactions_writes_and_deletes_in_key_order(store):
    _seed_rows(store)
    with store.transaction() as t:
        t.put("rows", "a:0", "new")  # before every committed key
        t.put("rows", "a:4", "new")  # between two
        t.put("rows", "a:5", "changed")  # over a committed one
        t.delete("rows", "a:3")
        t.delete("rows", "a:9")  # deleting what never was
        t.put("rows", "a:8", "new")
        t.delete("rows", "a:8")  # written then deleted
        t.put("rows", "a:9", "new")  # after every committed key in the prefix
        t.put("other", "a:2", "elsewhere")  # another table
        assert list(t.scan("rows", prefix="a:")) == [
            ("a:0", "new"), ("a:1", "a:1"), ("a:4", "new"), ("a:5", "changed"), ("a:7", "a:7"), ("a:9", "new")]
        assert [k for k, _ in t.scan("rows")] == ["a:0", "a:1", "a:4", "a:5", "a:7", "a:9", "b:1"]


def test_a_scans_limit_counts_only_the_rows_it_yields(store):
    _seed_rows(store)
    with store.transaction() as t:
        t.delete("rows", "a:1")
        t.delete("rows", "a:3")
        t.put("rows", "a:4", "new")
        assert list(t.scan("rows", prefix="a:", limit=2)) == [("a:4", "new"), ("a:5", "a:5")]
        assert list(t.scan("rows", prefix="a:", limit=1)) == [("a:4", "new")]
        assert list(t.scan("rows", prefix="a:", limit=0)) == []
        assert list(t.scan("rows", prefix="a:", limit=99)) == [("a:4", "new"), ("a:5", "a:5"), ("a:7", "a:7")]
        t.delete("rows", "b:1")
        assert list(t.scan("rows", prefix="b")) == []


def test_a_scan_yields_the_rows_as_they_were_when_it_began(store):
    # The core may write while it walks a scan (it usually copies the rows
    # first); either store must then yield the same thing.
    _seed_rows(store)
    with store.transaction() as t:
        seen = []
        for key, value in t.scan("rows", prefix="a:"):
            seen.append((key, value))
            if key == "a:1":
                t.delete("rows", "a:3")
                t.put("rows", "a:5", "changed")
                t.put("rows", "a:6", "new")
        assert seen == [("a:1", "a:1"), ("a:3", "a:3"), ("a:5", "a:5"), ("a:7", "a:7")]
        assert list(t.scan("rows", prefix="a:")) == [("a:1", "a:1"), ("a:5", "changed"), ("a:6", "new"), ("a:7", "a:7")]


@pytest.mark.parametrize("prefix", ["", "a", "a\x00", "a\U0010ffff", "\ud7ff", "\U0010ffff"])
def test_a_prefix_scan_is_exact_at_the_edges_of_unicode(store, prefix):
    keys = ["a", "a\x00", "a\x00b", "a\x01", "ab", "a\uffff", "a\U0010ffff", "a\U0010ffff\U0010ffffz", "b",
            "\ud7ff", "\ud7ffx", "\ue000", "\U0010ffff", "\U0010ffffa"]
    with store.transaction() as t:
        for k in keys:
            t.put("rows", k, 1)
    with store.transaction() as t:
        assert [k for k, _ in t.scan("rows", prefix=prefix)] == sorted(k for k in keys if k.startswith(prefix))


def test_null_is_a_value_like_any_other(store):
    with store.transaction() as t:
        t.put("x", "a", None)
        t.put("x", "b", 0)
        assert list(t.scan("x")) == [("a", None), ("b", 0)]
    with store.transaction() as t:
        assert list(t.scan("x")) == [("a", None), ("b", 0)]
    assert store.dump() == {"x": {"a": None, "b": 0}}


# ------------------------------------------------------------------ one transaction at a time


def test_a_refused_nested_transaction_leaves_the_outer_one_whole(store):
    with store.transaction() as outer:
        outer.put("x", "a", 1)
        with pytest.raises(StoreError, match="do not nest"):
            with store.transaction() as inner:
                inner.put("x", "b", 2)  # never reached
        outer.put("x", "c", 3)
        assert [k for k, _ in outer.scan("x")] == ["a", "c"]
    assert store.dump() == {"x": {"a": 1, "c": 3}}
    with store.transaction() as t:  # refusing did not leave the store locked
        t.put("x", "d", 4)
    assert sorted(store.dump()["x"]) == ["a", "c", "d"]


def test_a_failed_transaction_does_not_leave_the_store_locked(store):
    for exc in (ValueError, Crash):
        with pytest.raises(exc):
            with store.transaction() as t:
                t.put("x", "a", 1)
                raise exc
        with store.transaction() as t:
            assert t.get("x", "a") is None


# ------------------------------------------------------------------ copies


def test_a_value_is_copied_when_put_and_whenever_read(store):
    value = {"lines": [1]}
    with store.transaction() as t:
        t.put("x", "a", value)
        value["lines"].append(2)  # after the put: not what was stored
        inside = t.get("x", "a")
        assert inside == {"lines": [1]}
        inside["lines"].append(3)
        assert t.get("x", "a") == {"lines": [1]}
        scanned = dict(t.scan("x"))["a"]
        scanned["lines"].append(4)
    with store.transaction() as t:
        assert t.get("x", "a") == {"lines": [1]}
        assert [v for _, v in t.scan("x")] == [{"lines": [1]}]
        got = t.get("x", "a")
        assert got is not t.get("x", "a")
    dumped = store.dump()
    dumped["x"]["a"]["lines"].append(5)
    assert store.dump() == {"x": {"a": {"lines": [1]}}}


def test_scans_between_writes_of_one_transaction_follow_every_write(store):
    # The pattern of a flow that enqueues many messages in one transaction:
    # write, scan, write again. Each scan must see every write before it,
    # including keys first written after an earlier scan of the table.
    _seed_rows(store)
    expected = {"a:1": "a:1", "a:3": "a:3", "a:5": "a:5", "a:7": "a:7", "b:1": "b:1"}
    with store.transaction() as t:
        for i in range(40):
            key = f"a:{(i * 7) % 31:02d}"
            if i % 5 == 4:
                t.delete("rows", key)
                expected.pop(key, None)
            else:
                t.put("rows", key, f"v{i}")
                expected[key] = f"v{i}"
            want = sorted((k, v) for k, v in expected.items() if k.startswith("a:"))
            assert list(t.scan("rows", prefix="a:")) == want
            assert list(t.scan("rows", prefix="a:", limit=3)) == want[:3]
        assert [k for k, _ in t.scan("rows")] == sorted(expected)
    with store.transaction() as t:
        assert dict(t.scan("rows")) == expected

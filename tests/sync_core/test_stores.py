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

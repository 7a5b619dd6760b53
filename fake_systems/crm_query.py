"""The CRM's tiny query language (its own, in the spirit of the family's).

    Opportunity WHERE StageName = 'Closed Won' AND LastModifiedStamp >= '2026-01-05T08:00:00.000Z'
        ORDER BY LastModifiedStamp DESC LIMIT 50

One object; conditions joined by AND; operators ``= != < <= > >=``;
values are 'quoted strings' (backslash escapes a quote), numbers, ``true``,
``false`` and ``null`` (only with ``=`` and ``!=``). Money and quantities
compare as decimals, dates and stamps as their ISO text. Field names follow
the API version (``TotalContractValue`` on v2). Merged-away records are
never returned. Without ORDER BY, records come in creation order.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import attrs

from .crm_schema import OBJECTS, internal_name, spec_of
from .vendor import VendorError

__all__ = ["Query", "parse_query", "run_query"]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|=|<|>)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_OPS = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_NUMERIC = ("money", "quantity", "int")
_LISTS = ("milestones", "ratecard", "lines")


@attrs.frozen
class Query:
    obj: str
    conditions: tuple[tuple[str, str, Any], ...] = ()  # (stored field, op, value)
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None


def _malformed(message: str) -> VendorError:
    return VendorError(400, "MALFORMED_QUERY", message)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _malformed(f"unexpected text at character {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _value(kind: str, token: str, field_kind: str, name: str) -> Any:
    if field_kind == "bool" and not (kind == "word" and token.lower() in ("true", "false", "null")):
        raise _malformed(f"{name} is a true/false field; compare it with true or false, not {token!r}")
    if kind == "str":
        text = re.sub(r"\\(.)", r"\1", token[1:-1])
        if field_kind in _NUMERIC:
            raise _malformed(f"{name} is a number; compare it with a number, not {token}")
        return text
    if kind == "num":
        if field_kind not in _NUMERIC:
            raise _malformed(f"{name} is not a number; quote the value: '{token}'")
        return Decimal(token)
    low = token.lower()
    if low == "null":
        return None
    if low in ("true", "false"):
        if field_kind != "bool":
            raise _malformed(f"{name} is not a true/false field")
        return low == "true"
    raise _malformed(f"{token!r} is not a value; quote text like 'Closed Won'")


def parse_query(text: Any, version: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise _malformed("give a query in q, like: Opportunity WHERE StageName = 'Closed Won'")
    toks = _tokens(text)
    i = 0

    def take(kind: str | None = None, word: str | None = None) -> str:
        nonlocal i
        if i >= len(toks):
            raise _malformed(f"the query ends early; expected {word or kind}")
        k, v = toks[i]
        if (kind and k != kind) or (word and v.upper() != word):
            raise _malformed(f"expected {word or kind} but found {v!r}")
        i += 1
        return v

    def peek(word: str) -> bool:
        return i < len(toks) and toks[i][0] == "word" and toks[i][1].upper() == word

    obj = take("word")
    spec = spec_of(obj)

    def field(name: str):
        stored = internal_name(obj, name, version)
        f = spec.field(stored) if stored else None
        if f is None:
            raise VendorError(400, "INVALID_FIELD", f"no such field {name!r} on {obj} in {version}", name)
        if f.kind in _LISTS:
            raise _malformed(f"{name} holds a list; queries filter and sort on single values only")
        return f

    conditions = []
    if peek("WHERE"):
        take(word="WHERE")
        while True:
            f = field(take("word"))
            op = take("op")
            kind, token = toks[i] if i < len(toks) else ("end", "")
            i += 1
            value = _value(kind, token, f.kind, f.name)
            if value is None and op not in ("=", "!="):
                raise _malformed(f"null can only be compared with = or !=, not {op}")
            if isinstance(value, bool) and op not in ("=", "!="):
                raise _malformed(f"true/false can only be compared with = or !=, not {op}")
            conditions.append((f.name, op, value))
            if not peek("AND"):
                break
            take(word="AND")
    order_by, descending, limit = None, False, None
    if peek("ORDER"):
        take(word="ORDER")
        take(word="BY")
        order_by = field(take("word")).name
        if peek("ASC") or peek("DESC"):
            descending = take("word").upper() == "DESC"
    if peek("LIMIT"):
        take(word="LIMIT")
        n = take("num")
        if not n.isdigit() or int(n) < 1:
            raise _malformed(f"LIMIT must be a whole number of at least 1, not {n}")
        limit = int(n)
    if i != len(toks):
        raise _malformed(f"unexpected {toks[i][1]!r}; a query is: Object [WHERE ...] [ORDER BY Field [DESC]] [LIMIT n]")
    return Query(obj, tuple(conditions), order_by, descending, limit)


def _comparable(kind: str, value: Any) -> Any:
    if value is None:
        return None
    return Decimal(str(value)) if kind in _NUMERIC else value


def run_query(q: Query, records: list[dict]) -> list[dict]:
    """The matching records of `records` (all of q.obj, in creation order)."""
    spec = OBJECTS[q.obj]
    kinds = {f.name: f.kind for f in spec.fields}
    out = []
    for rec in records:
        if rec.get("IsDeleted"):
            continue
        for name, op, value in q.conditions:
            have = _comparable(kinds[name], rec.get(name))
            if value is None or have is None:
                ok = op in ("=", "!=") and _OPS[op](have, value)  # null never orders
            else:
                ok = _OPS[op](have, value)
            if not ok:
                break
        else:
            out.append(rec)
    if q.order_by is not None:
        key = q.order_by
        kind = kinds[key]
        present = [r for r in out if r.get(key) is not None]
        missing = [r for r in out if r.get(key) is None]
        present.sort(key=lambda r: _comparable(kind, r[key]), reverse=q.descending)
        out = missing + present if not q.descending else present + missing
    return out[: q.limit] if q.limit is not None else out

"""Every event of a run, kept small; payloads stay in the trace file.

A month of a busy world is hundreds of thousands of events and gigabytes of
JSON (response bodies are whole feed pages), so the UI never holds the
events themselves. It keeps, per event, the columns it filters and folds on
-- virtual time, kind, the two actors, the correlation id -- plus a few
*facts* picked out of the payload (a message id, a status, a window), and
the byte offset of the event's line in a trace file. Opening an event's
payload reads that one line back.

One thread appends (the simulation thread in a live run, the loader in a
replay); others read rows below a length they were told about. Appends to
lists and arrays are atomic under the GIL, so a reader never sees a
half-written row below that length.
"""

from __future__ import annotations

import json
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

__all__ = ["EventIndex", "Row", "facts_of", "is_business", "summary", "BUSINESS_KINDS"]

# Kinds a person would call "something happened in the business" -- the
# stops of "run to the next business event".
BUSINESS_KINDS = ("vendor.effect", "vendor.ui", "billing.run_skipped")
# The core's housekeeping: its polling, breakers, retries, and the daily
# reconciliation and KPI readings it traces about itself.
_NOT_BUSINESS_CORE = ("core.poll", "core.breaker", "core.op.retry", "core.kpi", "core.reconciliation")

_ID_KEYS = (
    "id", "Id", "number", "deal", "deal_id", "project", "project_id", "invoice", "invoice_id",
    "externalId", "external_reference", "aggregate", "event_ref", "reference",
)
_MAX_KEYS = 8
_TEXT = 120  # longest reason kept in a fact


def is_business(kind: str) -> bool:
    if kind in BUSINESS_KINDS:
        return True
    return kind.startswith("core.") and not kind.startswith(_NOT_BUSINESS_CORE)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _TEXT:
        return value[: _TEXT - 1] + "…"
    return value


def _id_keys(data: dict, kind: str) -> tuple[str, ...]:
    """Business ids an event names at its top level or in its body's top
    level: how a deal, project or invoice is found among the flows. The
    core's outbox message id ("msg" of a core event) is one too: it is how a
    dead letter leads to its flow."""
    found: list[str] = []
    if not kind.startswith(("net.", "fault.")) and isinstance(data.get("msg"), str):
        found.append(data["msg"])
    for source in (data, data.get("body")):
        if not isinstance(source, dict):
            continue
        for key in _ID_KEYS:
            value = source.get(key)
            if isinstance(value, str) and 3 <= len(value) <= 80 and value not in found:
                found.append(value)
                if len(found) >= _MAX_KEYS:
                    return tuple(found)
    return tuple(found)


def facts_of(kind: str, data: dict) -> dict | None:
    """The few payload fields the UI folds on (never a body)."""
    if not data:
        return None
    get = data.get
    if kind == "net.request":
        f = {"m": get("msg"), "meth": get("method"), "path": get("path")}
        if get("copy"):
            f["copy"] = get("copy")
    elif kind == "net.response":
        f = {"m": get("msg"), "st": get("status")}
        if get("dropped"):
            f["drop"] = get("dropped")
    elif kind.startswith("fault.") or kind in ("net.timeout", "net.refused"):
        f = {k: v for k, v in (
            ("m", get("msg")), ("meth", get("method")), ("path", get("path")), ("st", get("status")),
            ("extra", get("extra_us")), ("actor", get("actor")), ("why", get("why")),
            ("retry_after", get("retry_after")), ("until", get("until")),
        ) if v is not None}
    elif kind == "chaos.inject":
        f = {"w": dict(data)}
    elif kind.startswith("core.op.") or kind == "core.exception.opened":
        f = {k: _short(v) for k, v in data.items() if isinstance(v, (str, int, bool)) and k != "msg"}
        if "msg" in data:
            f["msg"] = data["msg"]
    else:
        f = {k: _short(v) for k, v in list(data.items())[:6] if isinstance(v, (str, int, bool)) or v is None}
    if kind != "chaos.inject":
        keys = _id_keys(data, kind)
        if keys:
            f["keys"] = keys
    return f or None


class Row(tuple):
    """(i, t, kind, src, dst, corr, facts) -- one event's columns."""

    __slots__ = ()

    i = property(lambda self: self[0])
    t = property(lambda self: self[1])
    kind = property(lambda self: self[2])
    src = property(lambda self: self[3])
    dst = property(lambda self: self[4])
    corr = property(lambda self: self[5])
    facts = property(lambda self: self[6])

    @property
    def seq(self) -> int:
        return self[0] + 1


class EventIndex:
    """The columns of a run's events, in trace order (index i is seq i+1)."""

    def __init__(self, path: str | Path | None, header: dict) -> None:
        self.path = None if path is None else Path(path)
        self.header = header
        self.t = array("q")
        self.off = array("q")
        self.kind: list[str] = []
        self.src: list[str | None] = []
        self.dst: list[str | None] = []
        self.corr: list[str | None] = []
        self.facts: list[dict | None] = []
        # request method and path by message id until its first response,
        # so a response can say what it answers without keeping requests.
        self._asked: dict[str, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.kind)

    def append(self, event: dict, offset: int) -> None:
        kind = sys.intern(event["kind"])
        facts = facts_of(kind, event.get("data") or {})
        if facts is not None and "m" in facts:
            if kind == "net.request" and not facts.get("copy"):
                self._asked[facts["m"]] = (facts.get("meth"), facts.get("path"))
            elif kind in ("net.response", "net.timeout"):
                asked = self._asked.pop(facts["m"], None)
                if asked is not None and kind == "net.response":
                    facts["meth"], facts["path"] = asked
        src, dst, corr = event.get("src"), event.get("dst"), event.get("corr")
        # Order matters for lock-free readers: `kind` grows last, and
        # len() is read from it.
        self.t.append(event["t"])
        self.off.append(offset)
        self.src.append(sys.intern(src) if src else None)
        self.dst.append(sys.intern(dst) if dst else None)
        self.corr.append(sys.intern(corr) if corr else None)
        self.facts.append(facts)
        self.kind.append(kind)

    def row(self, i: int) -> Row:
        return Row((i, self.t[i], self.kind[i], self.src[i], self.dst[i], self.corr[i], self.facts[i]))

    def rows(self, start: int, stop: int):
        for i in range(start, stop):
            yield Row((i, self.t[i], self.kind[i], self.src[i], self.dst[i], self.corr[i], self.facts[i]))

    def first_at_or_after(self, t_us: int, upto: int | None = None) -> int:
        return bisect_left(self.t, t_us, 0, len(self) if upto is None else upto)

    def count_until(self, t_us: int, upto: int | None = None) -> int:
        """How many events happened at or before `t_us`."""
        return bisect_right(self.t, t_us, 0, len(self) if upto is None else upto)

    def payload(self, i: int) -> dict:
        """The whole event, read back from the trace file."""
        if self.path is None:
            raise LookupError("this run keeps no trace file, so payloads cannot be shown")
        with self.path.open("rb") as f:
            f.seek(self.off[i])
            line = f.readline()
        return json.loads(line)


def summary(row: Row) -> str:
    """One line saying what an event was, for the log and the diagrams."""
    kind, f = row.kind, row.facts or {}
    if kind == "net.request":
        text = f"{f.get('meth')} {f.get('path')}"
        return text + ("  (duplicate copy)" if f.get("copy") else "")
    if kind == "net.response":
        what = f" {f['meth']} {f['path']}" if f.get("meth") else ""
        late = f"  ({f['drop']})" if f.get("drop") else ""
        return f"{f.get('st')}{what}{late}"
    if kind in ("net.timeout", "net.refused") or kind.startswith("fault."):
        parts = [p for p in (f.get("meth"), f.get("path")) if p]
        if "st" in f:
            parts.append(f"status {f['st']}")
        if "extra" in f:
            parts.append(f"+{f['extra'] // 1000}ms")
        if "retry_after" in f:
            parts.append(f"retry after {f['retry_after']}s")
        if "actor" in f:
            parts.append(f"{f['actor']} ({f.get('why', '')})")
        return " ".join(str(p) for p in parts)
    if kind == "chaos.inject":
        w = f.get("w", {})
        who = "⇄".join(w["between"]) if "between" in w else w.get("target", "")
        extra = f" +{w['delay']}" if "delay" in w else ""
        return f"{w.get('kind')} {who} {w.get('start')}..{w.get('end')}{extra}"
    if kind == "vendor.effect":
        return f"{f.get('kind')} {f.get('table')} {f.get('id')}"
    if kind.startswith("core.op."):
        text = f"{f.get('op')} #{f.get('attempt')}"
        if "retry_in_ms" in f:
            text += f" retry in {f['retry_in_ms'] / 1000:g}s"
        if "reason" in f:
            text += f" — {f['reason']}"
        return text
    return "  ".join(f"{k}={v}" for k, v in f.items() if k != "keys")

"""Flows: a deal's (or a time entry's) journey across the systems.

The core stamps every request it makes for a deal with
``x-correlation-id: deal:<Opportunity Id>`` (time entries ``te:<id>``) and
the network puts that id on the trace events of the exchange; the core's
own decisions carry it too. A flow is the events of one correlation id,
plus the uncorrelated events of the records it names (a CRM deal closing
before the core has heard of it, a PSA project being created).

People look flows up by what they know: a deal, project or invoice id, or
the correlation id itself. Every id an event names at its top level, or
at the top level of a body, is a key to its flow.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import attrs

from .event_index import EventIndex, Row, summary

__all__ = ["FlowIndex", "FlowSummary", "Step", "journey", "PARTICIPANT_ORDER"]

PARTICIPANT_ORDER = ["crm", "core", "psa", "erp", "billing", "revenue", "hris", "expenses"]
_MAX_LOOSE = 200  # uncorrelated events kept per record id
_CORR_IN_TEXT = re.compile(r"\b[a-z][a-z0-9_-]*:[A-Za-z0-9][\w.:-]*")


@attrs.frozen
class FlowSummary:
    corr: str
    events: int
    first_t: int
    last_t: int
    systems: tuple[str, ...]
    faults: int
    keys: tuple[str, ...]


@attrs.frozen
class Step:
    """One row of a sequence diagram."""

    i: int  # event index (seq - 1)
    t: int
    kind: str
    src: str | None  # where the arrow starts, or the lifeline of a note
    dst: str | None  # where the arrow ends (None: a note)
    label: str
    tone: str  # request | ok | warn | error | fault | note | core | effect
    lost: bool = False  # the arrow ends half-way: the message never arrived


class _Flow:
    __slots__ = ("events", "keys", "faults", "systems")

    def __init__(self) -> None:
        self.events: list[int] = []
        self.keys: set[str] = set()
        self.faults = 0
        self.systems: set[str] = set()


class FlowIndex:
    """Correlation id -> events, and every id -> the flows that name it."""

    def __init__(self) -> None:
        self.flows: dict[str, _Flow] = {}
        self.by_key: dict[str, set[str]] = {}
        self.loose: dict[str, list[int]] = {}
        self.seen = 0

    def add(self, row: Row) -> None:
        i, corr, facts = row[0], row[5], row[6]
        self.seen = i + 1
        keys = facts.get("keys", ()) if facts else ()
        if corr is None:
            for key in keys:
                bucket = self.loose.setdefault(key, [])
                if len(bucket) < _MAX_LOOSE:
                    bucket.append(i)
            return
        flow = self.flows.get(corr)
        if flow is None:
            flow = self.flows[corr] = _Flow()
            tail = corr.split(":", 1)[-1]
            for key in {corr, tail}:
                flow.keys.add(key)
                self.by_key.setdefault(key, set()).add(corr)
        flow.events.append(i)
        for who in (row[3], row[4]):
            if who:
                flow.systems.add(who)
        if row[2].startswith("fault.") or row[2] in ("net.timeout", "net.refused", "core.op.dead", "core.op.retry"):
            flow.faults += 1
        for key in keys:
            if key not in flow.keys and len(flow.keys) < 64:
                flow.keys.add(key)
                self.by_key.setdefault(key, set()).add(corr)

    def update(self, index: EventIndex, upto: int) -> None:
        for row in index.rows(self.seen, upto):
            self.add(row)

    # ------------------------------------------------------------ look-ups

    def known(self, corr: str) -> bool:
        """A flow, or at least records a correlation id names (a deal the
        core never touched still closed in the CRM)."""
        return corr in self.flows or corr.split(":", 1)[-1] in self.loose

    def summary(self, corr: str, index: EventIndex, upto: int) -> FlowSummary | None:
        flow = self.flows.get(corr)
        if flow is None:
            ids = self.event_ids(corr, upto)
            if not ids:
                return None
            systems = {index.src[i] for i in ids if index.src[i]}
            return FlowSummary(corr, len(ids), index.t[ids[0]], index.t[ids[-1]],
                               tuple(p for p in PARTICIPANT_ORDER if p in systems), 0, (corr.split(":", 1)[-1],))
        n = bisect_left(flow.events, upto)
        if n == 0:
            return None
        return FlowSummary(
            corr, n, index.t[flow.events[0]], index.t[flow.events[n - 1]],
            tuple(p for p in PARTICIPANT_ORDER if p in flow.systems) + tuple(sorted(flow.systems - set(PARTICIPANT_ORDER))),
            flow.faults, tuple(sorted(flow.keys)),
        )

    def search(self, text: str, index: EventIndex, upto: int, limit: int = 500) -> list[FlowSummary]:
        """Flows whose correlation id or any key contains `text`, busiest
        first among equals, in order of first appearance."""
        needle = text.strip().lower()
        if not needle:
            corrs = list(self.flows)
        else:
            corrs = [c for c, f in self.flows.items() if needle in c.lower() or any(needle in k.lower() for k in f.keys)]
        out = []
        for corr in corrs:
            s = self.summary(corr, index, upto)
            if s is not None:
                out.append(s)
        out.sort(key=lambda s: (s.first_t, s.corr))
        return out[:limit]

    def corr_in_text(self, text: str) -> str | None:
        """The first flow a sentence (an invariant's violation) names."""
        tokens = [m.group(0).rstrip(".,;:)]") for m in _CORR_IN_TEXT.finditer(text)]
        for token in tokens:
            if token in self.flows:
                return token
        for token in tokens:
            if self.known(token):
                return token
        for word in re.findall(r"[\w:.-]+", text):
            corrs = self.by_key.get(word.rstrip(".,;:"))
            if corrs:
                return sorted(corrs)[0]
        return None

    def event_ids(self, corr: str, upto: int) -> list[int]:
        flow = self.flows.get(corr)
        if flow is None:
            return sorted(i for i in self.loose.get(corr.split(":", 1)[-1], ()) if i < upto)
        ids = set(flow.events[: bisect_left(flow.events, upto)])
        for key in flow.keys:
            for i in self.loose.get(key, ()):
                if i < upto:
                    ids.add(i)
        return sorted(ids)


def journey(index: EventIndex, ids: list[int]) -> tuple[list[str], list[Step]]:
    """Participants (in the usual left-to-right order) and the diagram's rows."""
    steps: list[Step] = []
    present: set[str] = set()
    for i in ids:
        row = index.row(i)
        step = _step(row)
        if step is None:
            continue
        steps.append(step)
        for who in (step.src, step.dst):
            if who:
                present.add(who)
    order = [p for p in PARTICIPANT_ORDER if p in present] + sorted(present - set(PARTICIPANT_ORDER))
    return order, steps


def _step(row: Row) -> Step | None:
    i, t, kind, src, dst, _, f = row
    f = f or {}
    label = summary(row)
    if kind == "net.request":
        dup = bool(f.get("copy"))
        return Step(i, t, kind, src, dst, ("dup " if dup else "") + label, "fault" if dup else "request")
    if kind == "net.response":
        st = f.get("st") or 0
        tone = "ok" if st < 400 else ("error" if st >= 500 or st == 429 else "warn")
        if f.get("drop"):
            tone = "warn"
        return Step(i, t, kind, src, dst, label, tone)
    if kind in ("fault.request_lost", "fault.response_lost", "fault.partition"):
        what = {"fault.request_lost": "lost", "fault.response_lost": "response lost", "fault.partition": "partitioned"}[kind]
        return Step(i, t, kind, src, dst, f"✕ {what} {f.get('meth', '')} {f.get('path', '')}".rstrip(), "fault", lost=True)
    if kind == "net.refused":
        return Step(i, t, kind, src, dst, f"✕ refused {label}", "fault", lost=True)
    if kind == "fault.duplicate":
        return Step(i, t, kind, src, None, f"2× duplicated {label}", "fault")
    if kind == "net.timeout":
        return Step(i, t, kind, src, None, f"⊘ timeout {label}", "error")
    if kind.startswith("fault."):
        return Step(i, t, kind, src or dst, None, f"! {kind[6:]} {label}".rstrip(), "fault")
    if kind == "core.op.retry":
        return Step(i, t, kind, src, None, f"↻ retry {label}", "warn")
    if kind == "core.op.dead":
        return Step(i, t, kind, src, None, f"✗ dead-lettered {label}", "error")
    if kind == "core.op.done":
        return Step(i, t, kind, src, None, f"✓ {label}", "core")
    if kind == "core.exception.opened":
        return Step(i, t, kind, src, None, f"⚠ exception {label}", "error")
    if kind == "vendor.effect":
        return Step(i, t, kind, src, None, f"◆ {label}", "effect")
    if src is None:
        return None
    return Step(i, t, kind, src, None, f"{kind} {label}".strip(), "core" if kind.startswith("core.") else "note")

"""Evidence for the invariants: what a violation says, and what excuses a gap.

A violation names the business keys and the correlation id (per the
integration contract, ``deal:<Opportunity Id>``, ``te:<time entry id>``;
expenses here use ``ex:<expense entry id>``) and ends with the last events
of that correlation's chain: from the trace when the run kept it
(``keep_trace``), else from the fakes' effect logs.

A gap -- something that should exist downstream and does not -- is excused
only when the core's dead-letter queue or an exception queue mentions one
of its keys (the record, or the deal, account or line it belongs to). That
is the one use the invariants make of the core's store.

`Evidence` is a mixin of `invariants_truth.Truth`: it needs the world
(``self.world``, ``self.sim``) and the in-place effect reader
(``self.effects``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from functools import cached_property
from typing import Any

import attrs

__all__ = ["Evidence", "Findings", "Gap", "result", "SYSTEMS"]

SYSTEMS = ("crm", "psa", "erp", "billing", "revenue", "hris", "expenses")
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")
_REF = re.compile(r"(?:deal|te|ex|ms):[A-Za-z0-9_.:-]+")


def result(name: str, violations: list[str], *, checked: int, excused: int = 0, **extra: Any) -> dict:
    """An invariant's result: the report's shape ({"name", "ok", "violations"})
    plus how much it verified, so a pass is never silent about being vacuous."""
    return {"name": name, "ok": not violations, "violations": list(violations), "checked": checked,
            "excused": excused, **extra}


@attrs.frozen
class Gap:
    """Something that should exist downstream and does not. It is excused
    only when the core's exception queue or dead-letter queue mentions one
    of `keys` (the record, or the deal/account it belongs to)."""

    what: str
    keys: tuple[str, ...]
    corr: str | None


@attrs.define
class Findings:
    """What one invariant found: `hard` violations (never excused: a
    duplicate, a wrong amount, an orphan), `gaps` (missing records, excused
    by an exception that mentions them) and how many things it verified."""

    name: str
    checked: int = 0
    hard: list[str] = attrs.Factory(list)
    gaps: list[Gap] = attrs.Factory(list)
    extra: dict = attrs.Factory(dict)

    def to_result(self, truth: Evidence) -> dict:
        unexplained, excused = truth.split_gaps(self.gaps)
        return result(self.name, self.hard + unexplained, checked=self.checked, excused=excused, **self.extra)


class Evidence:
    """Violation messages with their event chains; gaps and their excuses."""


    @cached_property
    def queue_items(self) -> list[tuple[str, dict, frozenset[str]]]:
        """(key, item, tokens) of every dead letter and open exception."""
        store = getattr(self.world, "store", None)
        dump = store.dump() if store is not None else {}
        out = []
        for table in ("dlq", "exceptions"):
            for key, item in sorted((dump.get(table) or {}).items()):
                text = json.dumps(item, sort_keys=True, default=str)
                out.append((f"{table}:{key}", item, frozenset(_TOKEN.findall(text)) | frozenset(_REF.findall(text))))
        return out

    def explain(self, gap: Gap) -> str | None:
        """The queue item that explains `gap`, if any mentions one of its keys."""
        wanted = [k for k in (gap.corr, *gap.keys) if k]
        for key, _, tokens in self.queue_items:
            if any(k in tokens for k in wanted):
                return key
        return None

    def split_gaps(self, gaps: list[Gap]) -> tuple[list[str], int]:
        """(violation messages of unexplained gaps, how many were explained)."""
        messages, excused = [], 0
        for gap in gaps:
            if self.explain(gap) is not None:
                excused += 1
            else:
                messages.append(self.say(gap.what + "; no exception or dead letter explains it", gap.corr))
        return messages, excused

    # ------------------------------------------------------------ evidence

    @cached_property
    def _trace_by_corr(self) -> dict[str, list[dict]] | None:
        lines = getattr(self.sim.trace, "lines", None)
        if not lines:
            return None
        out: dict[str, list[dict]] = defaultdict(list)
        for line in lines[1:]:
            event = json.loads(line)
            if event.get("corr"):
                out[event["corr"]].append(event)
        return out

    @cached_property
    def _effects_by_corr(self) -> dict[str, list[tuple[str, dict]]]:
        out: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for name in SYSTEMS:
            if getattr(self.world, name, None) is None:
                continue
            for e in self.effects(name):
                corr = (e.get("request") or {}).get("correlation_id")
                if corr:
                    out[corr].append((name, e))
        return {k: sorted(v, key=lambda x: x[1]["t"]) for k, v in out.items()}

    def chain(self, corr: str | None, limit: int = 6) -> str:
        """The last events of `corr`'s chain: from the trace when it was
        kept, else from the fakes' effect logs."""
        if not corr:
            return "no correlation id"
        by_trace = self._trace_by_corr
        if by_trace is not None:
            events = by_trace.get(corr, [])
            if not events:
                return "no trace events carry it"
            shown = [_describe(e) for e in events[-limit:]]
            more = f"{len(events) - limit} earlier, " if len(events) > limit else ""
            return f"trace: {more}" + "; ".join(shown)
        effects = self._effects_by_corr.get(corr, [])
        if not effects:
            return "no vendor effect carries it (run with keep_trace for the full chain)"
        shown = [f"{system} {e['kind']} {e['table']}/{e['id']} @{e['t']}us" for system, e in effects[-limit:]]
        more = f"{len(effects) - limit} earlier, " if len(effects) > limit else ""
        return f"effects: {more}" + "; ".join(shown)

    def say(self, what: str, corr: str | None) -> str:
        return f"{what} [corr {corr or '-'}; {self.chain(corr)}]"


def _describe(e: dict) -> str:
    kind, data = e["kind"], e.get("data") or {}
    head = f"#{e['seq']} {kind}"
    if kind == "net.request":
        return f"{head} {e.get('src')}->{e.get('dst')} {data.get('method')} {data.get('path')}"
    if kind == "net.response":
        return f"{head} {data.get('status')}"
    if kind == "vendor.effect":
        return f"{head} {e.get('src')} {data.get('kind')} {data.get('table')}/{data.get('id')}"
    return head

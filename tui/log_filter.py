"""The event log's filter: a line of words, compiled once, run over the
index's columns (a month of a busy world is hundreds of thousands of rows,
so a test is a plain function of kind, source, destination and correlation
id, never a look at the payload)::

    system:erp            events to or from the ERP   (sys: works too;
                          src: and dst: for one direction)
    kind:fault            kinds starting with "fault" (kind:net.response, ...)
    corr:deal:0P1         correlation ids containing "deal:0P1"
    is:business  is:fault is:core
    anything else         appears in the kind, an actor or the correlation id
    -word                 leave out what a word matches (-kind:net)

Every word must match (or, with ``-``, must not).
"""

from __future__ import annotations

from .event_index import EventIndex, is_business

__all__ = ["LogFilter"]


class LogFilter:
    """A compiled filter line (see the module docstring)."""

    def __init__(self, text: str = "") -> None:
        self.text = text.strip()
        self.tests = []
        for word in self.text.split():
            negate = word.startswith("-") and len(word) > 1
            if negate:
                word = word[1:]
            self.tests.append((negate, self._test(word.lower())))

    @staticmethod
    def _test(word: str):
        key, sep, value = word.partition(":")
        if sep and key in ("system", "sys", "src", "dst"):
            if key == "src":
                return lambda k, s, d, c: s is not None and s.lower().startswith(value)
            if key == "dst":
                return lambda k, s, d, c: d is not None and d.lower().startswith(value)
            return lambda k, s, d, c: (s is not None and s.lower().startswith(value)) or (d is not None and d.lower().startswith(value))
        if sep and key == "kind":
            return lambda k, s, d, c: k.startswith(value)
        if sep and key == "corr":
            return lambda k, s, d, c: c is not None and value in c.lower()
        if sep and key == "is":
            if value.startswith("bus"):
                return lambda k, s, d, c: is_business(k)
            if value.startswith("fault"):
                return lambda k, s, d, c: k.startswith("fault.") or k in ("net.timeout", "net.refused", "core.op.dead")
            return lambda k, s, d, c: k.startswith(value + ".")
        # Any other word, colons and all ("deal:0p1", "timeout"), is looked for whole.
        return lambda k, s, d, c: word in k or (s is not None and word in s) or (d is not None and word in d) or (
            c is not None and word in c.lower())

    def __bool__(self) -> bool:
        return bool(self.tests)

    def rows(self, index: EventIndex, start: int, stop: int) -> list[int]:
        if not self.tests:
            return list(range(start, stop))
        kinds, srcs, dsts, corrs = index.kind, index.src, index.dst, index.corr
        tests = self.tests
        out = []
        for i in range(start, stop):
            k, s, d, c = kinds[i], srcs[i], dsts[i], corrs[i]
            if all(test(k, s, d, c) != negate for negate, test in tests):
                out.append(i)
        return out

"""The trace: every event of a run, canonically encoded, fingerprinted.

A trace file is JSON Lines:

  line 1      header  {"format": "syncbed-trace", "version": 1, "syncbed": ...,
                       "scenario", "seed", "chaos", "core", "config"}
  lines 2..n  events  {"t": virtual us, "seq": 1, 2, ..., "kind", "src", "dst",
                       "corr", "cause", "data"}
  last line   end     {"end": true, "events": n, "sha256": fingerprint}

Each line is encoded with sorted keys, no spaces and ASCII only, and numbers
are integers (money travels as decimal strings), so the bytes depend on
nothing but the events. The fingerprint is the SHA-256 of the header and
event lines; the end line repeats it, which lets the reader tell a complete
file from one cut off at a line boundary and from one edited by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FORMAT",
    "VERSION",
    "TraceRecorder",
    "TraceError",
    "Trace",
    "TraceReader",
    "iter_trace",
    "read_trace",
    "canonical_json",
]

FORMAT = "syncbed-trace"
VERSION = 1
EVENT_KEYS = ("cause", "corr", "data", "dst", "kind", "seq", "src", "t")


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        # A set's order depends on hashing; refusing it keeps hash-seed
        # dependence out of the trace.
        raise TypeError("a set cannot go into a trace (its order is not stable); sort it into a list")
    raise TypeError(f"{type(obj).__name__} is not JSON data; traces carry dicts, lists, str, int, bool, None and Decimal")


_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_default)
_encode = _encoder.encode
quote = encode_basestring_ascii  # a str as a canonical JSON string (C-accelerated)


_quoted: dict[str, str] = {}


def quote_id(value: str | None) -> str:
    """A name or id as canonical JSON (null for None), cached."""
    return _q(value)


def _q(value: str | None) -> str:
    # Names, kinds and ids repeat endlessly; quote each once.
    if value is None:
        return "null"
    try:
        return _quoted[value]
    except KeyError:
        if len(_quoted) > 100_000:
            _quoted.clear()
        q = _quoted[value] = quote(value)
        return q


def check_json_data(obj: Any, where: str = "trace data") -> None:
    """Refuse what would make a line non-canonical: floats (their text is
    not portable money) and non-string keys (sorted as numbers, written as
    strings, so the order would not survive a round trip)."""
    t = type(obj)
    if t is dict:
        for k, v in obj.items():
            if type(k) is not str:
                raise TypeError(f"{where}: key {k!r} is not a string; trace keys must be strings")
            check_json_data(v, where)
    elif t is list or t is tuple:
        for v in obj:
            check_json_data(v, where)
    elif t is float:
        raise TypeError(f"{where}: float {obj!r}; numbers in a trace are integers, money is a decimal string")


def canonical_json(obj: Any) -> str:
    """The one encoding used for traces and fingerprints."""
    return _encode(obj)


class TraceRecorder:
    """Encodes events as they happen, hashes them, and feeds observers.

    `sink` (a text file) receives the lines; `keep` holds them in memory too
    (tests, the TUI's replay). With neither, only the fingerprint is kept,
    which is what seed sweeps want.
    """

    def __init__(self, clock_us: Callable[[], int], header: dict, sink=None, keep: bool = False) -> None:
        self._now = clock_us
        self._sha = hashlib.sha256()
        self._sink = sink
        self.lines: list[str] | None = [] if keep else None
        self.seq = 0
        self.observers: list[Callable[[dict], None]] = []
        self.kind_counts: dict[str, int] = {}
        self.closed = False
        self.header = dict(header, format=FORMAT, version=VERSION)
        check_json_data(self.header, "trace header")
        self._write(_encode(self.header))

    def _write(self, line: str) -> None:
        line += "\n"
        self._sha.update(line.encode("ascii"))
        if self._sink is not None:
            self._sink.write(line)
        if self.lines is not None:
            self.lines.append(line)

    def record(
        self,
        kind: str,
        data: dict | None = None,
        *,
        src: str | None = None,
        dst: str | None = None,
        corr: str | None = None,
        cause: str | None = None,
    ) -> int:
        """Append one event at the current virtual time; returns its seq."""
        if not data:
            return self.record_encoded(kind, "{}", src, dst, corr, cause)
        check_json_data(data, f"trace event {kind}")
        return self.record_encoded(kind, _encode(data), src, dst, corr, cause)

    def record_encoded(
        self,
        kind: str,
        data_json: str,
        src: str | None = None,
        dst: str | None = None,
        corr: str | None = None,
        cause: str | None = None,
    ) -> int:
        """`record`, with the payload already in canonical JSON."""
        return self.record_spliced(
            kind,
            f'"cause":{_q(cause)},"corr":{_q(corr)}',
            data_json,
            f'"dst":{_q(dst)},"kind":{_q(kind)}',
            f'"src":{_q(src)}',
        )

    def record_spliced(self, kind: str, before: str, data_json: str, middle: str, after: str) -> int:
        """The hot path: the line from pre-encoded parts, in sorted-key order
        -- `before` is cause and corr, `middle` dst and kind, `after` src.

        The network encodes a message body once, when it is sent, and the
        id parts once per exchange, and splices them in here. The result is
        exactly what encoding the whole event would give (a test checks that
        every line of a run re-encodes to itself).
        """
        self.seq = seq = self.seq + 1
        line = f'{{{before},"data":{data_json},{middle},"seq":{seq},{after},"t":{self._now()}}}'
        self._write(line)
        counts = self.kind_counts
        counts[kind] = counts.get(kind, 0) + 1
        if self.observers:
            event = json.loads(line)
            for observe in self.observers:
                observe(event)
        return seq

    @property
    def fingerprint(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> str:
        """Write the end line; returns the fingerprint."""
        if not self.closed:
            fp = self.fingerprint
            end = _encode({"end": True, "events": self.seq, "sha256": fp}) + "\n"
            if self._sink is not None:
                self._sink.write(end)
            if self.lines is not None:
                self.lines.append(end)
            self.closed = True
        return self.fingerprint


class TraceError(Exception):
    """A trace file that cannot be used; the message names file, line and fix."""


class Trace:
    """A trace read back from a file: its header, events and fingerprint."""

    def __init__(self, header: dict, events: list[dict], fingerprint: str) -> None:
        self.header = header
        self.events = events
        self.fingerprint = fingerprint

    def __iter__(self) -> Iterator[dict]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


def _no_floats(text: str) -> Any:
    raise ValueError(f"a float ({text}) is not allowed in a trace; numbers are integers and money is a decimal string")


_FIX = "re-record it with 'syncbed run ... --trace FILE'"
_EVENT_KEYS = frozenset(EVENT_KEYS)


class TraceReader:
    """A trace file read one line at a time and checked as it goes.

    Iterating yields the header, then each event in order, holding only the
    line in hand: a trace of gigabytes costs the memory of its longest line
    (`read_trace`, which keeps every event, is built on this). A bad line
    raises `TraceError` -- naming the file, the line and the fix -- when it
    is reached: not ASCII, not JSON, a float, a foreign header or format
    version, wrong event keys, a kind that is not a string, a sequence
    number out of order, time going backwards. The end record and the
    fingerprint are checked after the last event has been yielded, so what
    a consumer builds from the events is to be trusted only once iteration
    has ended without an error.

    While iterating, `line` is the number of the line last yielded and
    `offset` the byte offset where it starts (how an index finds an event's
    payload again); `fingerprint` is set once the end record is verified.
    `file`, if given, is an open binary file read in place of opening
    `path` (which still names it in messages); it is left open.
    """

    def __init__(self, path: str | Path, file: BinaryIO | None = None) -> None:
        self.path = Path(path)
        self.header: dict | None = None
        self.line = 0
        self.offset = 0
        self.fingerprint: str | None = None
        self._lines = self._read(file)

    def __iter__(self) -> TraceReader:
        return self

    def __next__(self) -> dict:
        return next(self._lines)

    def close(self) -> None:
        """Stop early: close the file now rather than when collected."""
        self._lines.close()

    def _open(self) -> BinaryIO:
        path = self.path
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise TraceError(f"trace file {path}: no such file; check the path") from None
        except IsADirectoryError:
            raise TraceError(f"trace file {path}: is a directory, not a trace file") from None
        except OSError as exc:
            raise TraceError(f"trace file {path}: cannot be read ({exc.strerror})") from None

    def _read(self, file: BinaryIO | None) -> Iterator[dict]:
        path = self.path
        with nullcontext(file) if file is not None else self._open() as f:
            sha = hashlib.sha256()
            n = 0  # the line number
            offset = 0  # where line n starts
            events = 0
            last_t = 0
            end: dict | None = None
            for raw in f:
                n += 1
                if end is not None:
                    raise TraceError(
                        f"trace file {path}, line {n - 1}: end record before the last line; the file was spliced"
                    )
                if not raw.endswith(b"\n"):
                    raise TraceError(f"trace file {path}: truncated: line {n} ends without a newline; {_FIX}")
                try:
                    text = raw.decode("ascii")
                except UnicodeDecodeError as exc:
                    raise TraceError(
                        f"trace file {path}: byte {offset + exc.start} is not ASCII, so this is not a syncbed "
                        "trace (traces are ASCII JSON Lines)"
                    ) from None
                try:
                    obj = json.loads(text, parse_float=_no_floats, parse_constant=_no_floats)
                except ValueError as exc:
                    raise TraceError(f"trace file {path}, line {n}: not valid trace JSON ({exc}); {_FIX}") from None
                if not isinstance(obj, dict):
                    raise TraceError(f"trace file {path}, line {n}: expected a JSON object, found {type(obj).__name__}")
                if n == 1:
                    _check_header(path, obj)
                    self.header = obj
                elif obj.get("end") is True:
                    # Checked once it is known to be the last line: a spliced
                    # file is named as such, not as a fingerprint mismatch.
                    end = obj
                    offset += len(raw)
                    continue
                else:
                    _check_event(path, n, obj, events + 1, last_t)
                    events += 1
                    last_t = obj["t"]
                sha.update(raw)
                self.line = n
                self.offset = offset
                yield obj
                offset += len(raw)
        if n == 0:
            raise TraceError(f"trace file {path}: is empty; {_FIX}")
        if end is None:
            raise TraceError(f"trace file {path}: truncated after line {n}: the end record is missing; {_FIX}")
        fp = sha.hexdigest()
        if end.get("events") != events or end.get("sha256") != fp:
            raise TraceError(
                f"trace file {path}: the end record says {end.get('events')} events with fingerprint "
                f"{end.get('sha256')}, but the file holds {events} events with fingerprint {fp}; "
                "it was edited or corrupted"
            )
        self.fingerprint = fp


def _check_header(path: Path, header: dict) -> None:
    if header.get("format") != FORMAT:
        raise TraceError(
            f"trace file {path}, line 1: not a syncbed trace header (format is {header.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if header.get("version") != VERSION:
        raise TraceError(
            f"trace file {path}, line 1: trace format version {header.get('version')!r} is not supported "
            f"(this syncbed reads version {VERSION}); replay it with the syncbed version named in its header "
            f"({header.get('syncbed')!r})"
        )


def _check_event(path: Path, n: int, obj: dict, seq: int, last_t: int) -> None:
    if obj.keys() != _EVENT_KEYS:
        raise TraceError(
            f"trace file {path}, line {n}: an event needs exactly the keys {', '.join(EVENT_KEYS)}; "
            f"found {', '.join(sorted(obj))}"
        )
    if obj["seq"] != seq:
        raise TraceError(
            f"trace file {path}, line {n}: event sequence number {obj['seq']!r} where {seq} "
            "was expected; lines are missing or out of order"
        )
    t = obj["t"]
    if not isinstance(t, int) or t < last_t:
        raise TraceError(f"trace file {path}, line {n}: virtual time {t!r} goes backwards (previous {last_t})")
    if not isinstance(obj["kind"], str):
        raise TraceError(f"trace file {path}, line {n}: the event kind must be a string, found {obj['kind']!r}")


def iter_trace(path: str | Path, file: BinaryIO | None = None) -> TraceReader:
    """Stream a trace file: its header, then its events, each checked as it
    is read, the end record and fingerprint after the last (`TraceReader`)."""
    return TraceReader(path, file)


def read_trace(path: str | Path) -> Trace:
    """Read and verify a trace file, or raise `TraceError` saying what is wrong."""
    reader = iter_trace(path)
    header = next(reader)
    events = list(reader)
    assert reader.fingerprint is not None  # the reader raises rather than end unverified
    return Trace(header, events, reader.fingerprint)

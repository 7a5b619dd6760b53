"""Open a recorded trace for replay: check it whole, index it, keep no payloads.

`simulator.read_trace` parses a trace into memory, which is right for the
harness and wrong for a month of a busy world (gigabytes of JSON). This
reads the file once, line by line, with the same checks -- header, format
version, event keys, sequence, monotone time, the end record and the
SHA-256 fingerprint -- and keeps only the `EventIndex` columns and each
line's offset. A bad file fails here, before the UI starts, with the
reader's own kind of message (`TraceError`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from simulator import TraceError
from simulator.trace import EVENT_KEYS, FORMAT, VERSION

from .event_index import EventIndex

__all__ = ["open_trace", "TraceFile"]

_FIX = "re-record it with 'syncbed run ... --trace FILE'"
_KEYS = set(EVENT_KEYS)


def _no_floats(text: str):
    raise ValueError(f"a float ({text}) is not allowed in a trace; numbers are integers and money is a decimal string")


class TraceFile:
    def __init__(self, path: Path, header: dict, index: EventIndex, fingerprint: str) -> None:
        self.path = path
        self.header = header
        self.index = index
        self.fingerprint = fingerprint


def open_trace(path: str | Path, progress: Callable[[float], None] | None = None) -> TraceFile:
    """Check and index a trace file; raises `TraceError` saying what is wrong."""
    path = Path(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise TraceError(f"trace file {path}: no such file; check the path") from None
    except IsADirectoryError:
        raise TraceError(f"trace file {path}: is a directory, not a trace file") from None
    except OSError as exc:
        raise TraceError(f"trace file {path}: cannot be read ({exc.strerror})") from None
    with f:
        size = path.stat().st_size
        if size == 0:
            raise TraceError(f"trace file {path}: is empty; {_FIX}")
        sha = hashlib.sha256()
        offset = 0
        n = 0
        index: EventIndex | None = None
        last_t = 0
        ended = False
        next_report = size // 50
        for raw in f:
            n += 1
            if ended:
                raise TraceError(f"trace file {path}, line {n - 1}: end record before the last line; the file was spliced")
            if not raw.endswith(b"\n"):
                raise TraceError(f"trace file {path}: truncated: line {n} ends without a newline; {_FIX}")
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError as exc:
                raise TraceError(
                    f"trace file {path}: byte {offset + exc.start} is not ASCII, so this is not a syncbed trace "
                    "(traces are ASCII JSON Lines)"
                ) from None
            try:
                obj = json.loads(line, parse_float=_no_floats, parse_constant=_no_floats)
            except ValueError as exc:
                raise TraceError(f"trace file {path}, line {n}: not valid trace JSON ({exc}); {_FIX}") from None
            if not isinstance(obj, dict):
                raise TraceError(f"trace file {path}, line {n}: expected a JSON object, found {type(obj).__name__}")
            if index is None:
                _check_header(path, obj)
                index = EventIndex(path, obj)
                sha.update(raw)
            elif obj.get("end") is True:
                fp = sha.hexdigest()
                if obj.get("events") != len(index) or obj.get("sha256") != fp:
                    raise TraceError(
                        f"trace file {path}: the end record says {obj.get('events')} events with fingerprint "
                        f"{obj.get('sha256')}, but the file holds {len(index)} events with fingerprint {fp}; "
                        "it was edited or corrupted"
                    )
                ended = True
            else:
                if set(obj) != _KEYS:
                    raise TraceError(
                        f"trace file {path}, line {n}: an event needs exactly the keys {', '.join(EVENT_KEYS)}; "
                        f"found {', '.join(sorted(obj))}"
                    )
                if obj["seq"] != len(index) + 1:
                    raise TraceError(
                        f"trace file {path}, line {n}: event sequence number {obj['seq']!r} where {len(index) + 1} "
                        "was expected; lines are missing or out of order"
                    )
                t = obj["t"]
                if not isinstance(t, int) or t < last_t:
                    raise TraceError(f"trace file {path}, line {n}: virtual time {t!r} goes backwards (previous {last_t})")
                if not isinstance(obj["kind"], str):
                    raise TraceError(f"trace file {path}, line {n}: the event kind must be a string")
                last_t = t
                sha.update(raw)
                index.append(obj, offset)
            offset += len(raw)
            if progress is not None and offset >= next_report:
                progress(offset / size)
                next_report = offset + size // 50
    if not ended:
        raise TraceError(f"trace file {path}: truncated after line {n}: the end record is missing; {_FIX}")
    return TraceFile(path, index.header, index, sha.hexdigest())


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

"""Open a recorded trace for replay: check it whole, index it, keep no payloads.

`simulator.read_trace` parses a trace into memory, which is right for the
harness and wrong for a month of a busy world (gigabytes of JSON). This
streams the file once through the simulator's own reader (`iter_trace`,
which makes every check and raises its `TraceError`s) and keeps only the
`EventIndex` columns and each line's offset. A bad file fails here, before
the UI starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simulator import iter_trace

from .event_index import EventIndex

__all__ = ["open_trace", "TraceFile"]


class TraceFile:
    def __init__(self, path: Path, header: dict, index: EventIndex, fingerprint: str) -> None:
        self.path = path
        self.header = header
        self.index = index
        self.fingerprint = fingerprint


def open_trace(path: str | Path, progress: Callable[[float], None] | None = None) -> TraceFile:
    """Check and index a trace file; raises `TraceError` saying what is wrong.

    `progress`, if given, is told the share of the file read so far, about
    fifty times over a file.
    """
    path = Path(path)
    reader = iter_trace(path)
    index = EventIndex(path, next(reader))  # the header; a missing or empty file raises here
    if progress is None:
        for event in reader:
            index.append(event, reader.offset)
    else:
        size = path.stat().st_size
        step = size // 50
        next_report = step
        for event in reader:
            index.append(event, reader.offset)
            if reader.offset >= next_report:
                progress(reader.offset / size)
                next_report = reader.offset + step
    assert reader.fingerprint is not None  # the reader raises rather than end unverified
    return TraceFile(path, index.header, index, reader.fingerprint)

"""Opening a recorded trace: the same checks as the simulator's reader,
without holding payloads in memory."""

import json

import pytest

from harness.runner import run_world
from simulator import TraceError, read_trace
from tui.trace_file import open_trace

from .helpers import SMALL_WORLD


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "small.jsonl"
    run_world(SMALL_WORLD, 3, None, str(path))
    return path


def test_the_index_holds_every_event_and_the_same_fingerprint(recorded):
    mine = open_trace(recorded)
    theirs = read_trace(recorded)
    assert mine.fingerprint == theirs.fingerprint
    assert len(mine.index) == len(theirs)
    assert mine.index.kind == [e["kind"] for e in theirs]
    assert list(mine.index.t) == [e["t"] for e in theirs]
    assert [mine.index.corr[i] for i in range(len(theirs))] == [e["corr"] for e in theirs]
    # a payload is read back from the file, whole
    assert mine.index.payload(10) == theirs.events[10]
    assert mine.index.payload(len(theirs) - 1) == theirs.events[-1]


def _rewrite(path, out, edit):
    lines = path.read_text().splitlines(keepends=True)
    out.write_text("".join(edit(lines)))
    return out


@pytest.mark.parametrize(
    "name, edit, expected",
    [
        ("empty", lambda lines: [], "is empty"),
        ("not-json", lambda lines: ["hello\n"] + lines[1:], "line 1: not valid trace JSON"),
        ("not-a-trace", lambda lines: ['{"format": "csv"}\n'] + lines[1:], "not a syncbed trace header"),
        ("cut", lambda lines: lines[:40], "the end record is missing"),
        ("half-line", lambda lines: lines[:40] + [lines[40][:10]], "ends without a newline"),
        ("edited", lambda lines: lines[:5] + [lines[5].replace('"t":', '"t": ')] + lines[6:], "edited or corrupted"),
        ("reordered", lambda lines: lines[:5] + [lines[6], lines[5]] + lines[7:], "sequence number"),
    ],
)
def test_a_bad_file_is_refused_with_one_clear_message(recorded, tmp_path, name, edit, expected):
    bad = _rewrite(recorded, tmp_path / f"{name}.jsonl", edit)
    with pytest.raises(TraceError, match=expected) as caught:
        open_trace(bad)
    assert str(bad) in str(caught.value)


def test_a_missing_file_or_a_directory(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        open_trace(tmp_path / "nope.jsonl")
    with pytest.raises(TraceError, match="is a directory"):
        open_trace(tmp_path)


def test_a_header_from_another_format_version(recorded, tmp_path):
    def edit(lines):
        header = json.loads(lines[0])
        header["version"] = 99
        return [json.dumps(header) + "\n"] + lines[1:]

    with pytest.raises(TraceError, match="version 99 is not supported"):
        open_trace(_rewrite(recorded, tmp_path / "v99.jsonl", edit))

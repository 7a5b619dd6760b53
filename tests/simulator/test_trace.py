"""The trace: recording, canonical encoding, fingerprint, and a strict reader."""

import hashlib
import io
import json
from decimal import Decimal

import pytest

from simulator.trace import TraceError, TraceRecorder, canonical_json, iter_trace, read_trace

HEADER = {
    "syncbed": "0.1.0",
    "scenario": "month-end",
    "seed": 42,
    "chaos": "default",
    "core": "sync_core:make_core",
    "config": {"workers": 2, "label": "caf\u00e9"},
}


def encode(obj) -> str:
    """The canonical encoding as the format describes it, done independently."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def event(seq, t, kind="tick", data=None, src=None, dst=None, corr=None, cause=None) -> dict:
    return {"t": t, "seq": seq, "kind": kind, "src": src, "dst": dst, "corr": corr, "cause": cause, "data": data or {}}


def full_header(**changes) -> dict:
    header = dict(HEADER, format="syncbed-trace", version=1)
    header.update(changes)
    return header


def build_lines(header: dict, events: list[dict]) -> list[str]:
    """Header, events and a correct end record, built without the recorder."""
    body = [encode(header)] + [encode(e) for e in events]
    sha = hashlib.sha256("".join(line + "\n" for line in body).encode("ascii")).hexdigest()
    return body + [encode({"end": True, "events": len(events), "sha256": sha})]


def write_lines(path, lines: list[str]) -> None:
    path.write_bytes("".join(line + "\n" for line in lines).encode("ascii"))


def valid_lines() -> list[str]:
    return build_lines(
        full_header(),
        [
            event(1, 0, "start", src="harness"),
            event(2, 1_500, "send", {"amount": "12.50"}, src="core", dst="erp", corr="c1"),
            event(3, 1_500, "recv", {"ok": True}, src="erp", dst="core", corr="c1", cause="2"),
        ],
    )


def trace_error(path) -> str:
    with pytest.raises(TraceError) as info:
        read_trace(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def record_sample(rec: TraceRecorder, clock: Clock) -> None:
    clock.now = 0
    rec.record("start", src="harness")
    clock.now = 250_000
    rec.record(
        "send",
        {"amount": Decimal("1234.50"), "customer": "M\u00fcller GmbH", "lines": [3, 1, 2], "meta": {"z": 1, "a": None}},
        src="core",
        dst="erp",
        corr="q-1",
    )
    clock.now = 250_000  # same instant: allowed
    rec.record("recv", {"status": 201}, src="erp", dst="core", corr="q-1", cause="2")
    clock.now = 3_600_000_000
    rec.record("note", {})


EXPECTED_EVENTS = [
    event(1, 0, "start", src="harness"),
    event(
        2,
        250_000,
        "send",
        {"amount": "1234.50", "customer": "M\u00fcller GmbH", "lines": [3, 1, 2], "meta": {"a": None, "z": 1}},
        src="core",
        dst="erp",
        corr="q-1",
    ),
    event(3, 250_000, "recv", {"status": 201}, src="erp", dst="core", corr="q-1", cause="2"),
    event(4, 3_600_000_000, "note"),
]


# ------------------------------------------------------------------ round trip


def test_round_trip_through_a_real_file(tmp_path):
    path = tmp_path / "run.trace"
    clock = Clock()
    with open(path, "w", encoding="ascii", newline="") as fh:
        rec = TraceRecorder(clock, HEADER, sink=fh)
        record_sample(rec, clock)
        fp = rec.close()

    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 1 + 4 + 1
    expected_fp = hashlib.sha256(b"".join(line + b"\n" for line in lines[:-1])).hexdigest()
    assert fp == expected_fp
    assert rec.fingerprint == expected_fp
    assert json.loads(lines[-1]) == {"end": True, "events": 4, "sha256": expected_fp}

    trace = read_trace(path)
    assert trace.fingerprint == expected_fp
    assert trace.header == full_header()
    assert trace.events == EXPECTED_EVENTS
    assert len(trace) == 4
    assert list(trace) == EXPECTED_EVENTS


def test_lines_are_the_canonical_encoding_of_the_events(tmp_path):
    clock = Clock()
    rec = TraceRecorder(clock, HEADER, keep=True)
    record_sample(rec, clock)
    rec.close()
    expected = [encode(full_header())] + [encode(e) for e in EXPECTED_EVENTS]
    assert [line.rstrip("\n") for line in rec.lines[:-1]] == expected
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in rec.lines)
    # every line re-encodes to itself
    for line in rec.lines:
        assert canonical_json(json.loads(line)) + "\n" == line


def test_an_event_line_written_out_by_hand():
    clock = Clock()
    clock.now = 5
    rec = TraceRecorder(clock, {}, keep=True)
    rec.record("ping", {"b": 2, "a": "x"}, src="core")
    assert rec.lines[1] == '{"cause":null,"corr":null,"data":{"a":"x","b":2},"dst":null,"kind":"ping","seq":1,"src":"core","t":5}\n'
    assert rec.lines[0] == '{"format":"syncbed-trace","version":1}\n'


def test_fingerprint_does_not_depend_on_where_lines_go(tmp_path):
    prints = []
    for sink, keep in ((None, False), (None, True), (open(tmp_path / "t", "w", newline=""), False)):
        clock = Clock()
        rec = TraceRecorder(clock, HEADER, sink=sink, keep=keep)
        record_sample(rec, clock)
        prints.append(rec.close())
        if sink is not None:
            sink.close()
    assert len(set(prints)) == 1


def test_fingerprint_changes_with_any_event_detail():
    def fp(**change) -> str:
        clock = Clock()
        rec = TraceRecorder(clock, HEADER)
        clock.now = change.get("t", 10)
        rec.record(change.get("kind", "k"), change.get("data", {"n": 1}), src=change.get("src", "a"))
        return rec.close()

    base = fp()
    assert fp() == base
    for change in ({"t": 11}, {"kind": "j"}, {"data": {"n": 2}}, {"src": "b"}):
        assert fp(**change) != base, change


def test_header_keys_format_and_version_are_set_by_the_recorder():
    rec = TraceRecorder(Clock(), dict(HEADER, format="other", version=99), keep=True)
    header = json.loads(rec.lines[0])
    assert (header["format"], header["version"]) == ("syncbed-trace", 1)


def test_seq_counts_and_observers_see_each_event():
    clock = Clock()
    rec = TraceRecorder(clock, HEADER)
    seen = []
    rec.observers.append(seen.append)
    clock.now = 7
    assert rec.record("a", {"price": Decimal("9.99")}) == 1
    assert rec.record("b") == 2
    assert rec.record("a") == 3
    assert rec.kind_counts == {"a": 2, "b": 1}
    assert seen == [event(1, 7, "a", {"price": "9.99"}), event(2, 7, "b"), event(3, 7, "a")]


def test_close_is_idempotent(tmp_path):
    path = tmp_path / "t.trace"
    with open(path, "w", newline="") as fh:
        rec = TraceRecorder(Clock(), HEADER, sink=fh, keep=True)
        rec.record("x")
        first = rec.close()
        assert rec.close() == first
    assert path.read_text().count('"end":true') == 1
    assert sum(1 for line in rec.lines if '"end":true' in line) == 1
    assert read_trace(path).fingerprint == first


def test_empty_trace_round_trips(tmp_path):
    path = tmp_path / "empty-run.trace"
    with open(path, "w", newline="") as fh:
        rec = TraceRecorder(Clock(), HEADER, sink=fh)
        fp = rec.close()
    trace = read_trace(path)
    assert len(trace) == 0 and trace.events == []
    assert fp == hashlib.sha256((encode(full_header()) + "\n").encode()).hexdigest() == trace.fingerprint


def test_reader_accepts_a_trace_built_without_the_recorder(tmp_path):
    path = tmp_path / "hand.trace"
    lines = valid_lines()
    write_lines(path, lines)
    trace = read_trace(path)
    assert [e["seq"] for e in trace] == [1, 2, 3]
    assert trace.fingerprint == json.loads(lines[-1])["sha256"]


# ------------------------------------------------------------------ canonical encoding


def test_canonical_json_sorts_keys_at_every_depth_without_spaces():
    obj = {"b": [{"y": 1, "x": 2}], "a": {"d": None, "c": True}}
    assert canonical_json(obj) == '{"a":{"c":true,"d":null},"b":[{"x":2,"y":1}]}'


def test_canonical_json_escapes_non_ascii():
    assert canonical_json("caf\u00e9") == '"caf\\u00e9"'
    assert canonical_json({"\u20ac": "\u20ac"}) == '{"\\u20ac":"\\u20ac"}'
    # outside the BMP: a UTF-16 surrogate pair, as JSON requires
    assert canonical_json("\U0001f600") == '"\\ud83d\\ude00"'
    assert canonical_json("tab\tquote\"") == '"tab\\tquote\\""'
    assert canonical_json({"x": "\u00fc\u00f1\u00ee"}).isascii()


def test_canonical_json_writes_decimals_as_strings():
    assert canonical_json(Decimal("12.50")) == '"12.50"'
    assert canonical_json({"amount": Decimal("-0.01"), "n": 3}) == '{"amount":"-0.01","n":3}'


@pytest.mark.parametrize("bad", [{1, 2}, frozenset({"a"}), {"tags": {"x"}}, [{"nested": {3}}]])
def test_canonical_json_refuses_sets(bad):
    with pytest.raises(TypeError, match="set"):
        canonical_json(bad)


def test_canonical_json_refuses_other_objects():
    with pytest.raises(TypeError, match="object"):
        canonical_json({"x": object()})


def test_recorder_refuses_a_set_in_the_payload():
    rec = TraceRecorder(Clock(), HEADER)
    with pytest.raises(TypeError, match="sort it into a list"):
        rec.record("k", {"ids": {3, 1, 2}})


def test_recorder_refuses_a_float_that_the_reader_would_reject():
    rec = TraceRecorder(Clock(), HEADER)
    with pytest.raises(TypeError):
        rec.record("k", {"ratio": 0.5})


def test_payload_with_int_keys_is_sorted_or_refused():
    rec = TraceRecorder(Clock(), HEADER, keep=True)
    try:
        rec.record("k", {10: "a", 9: "b"})
    except TypeError:
        return  # refusing non-str keys is an acceptable fix too
    line = rec.lines[1]
    assert canonical_json(json.loads(line)) + "\n" == line


# ------------------------------------------------------------------ reader errors


def test_missing_file(tmp_path):
    message = trace_error(tmp_path / "nope.trace")
    assert "no such file" in message


def test_directory(tmp_path):
    message = trace_error(tmp_path)
    assert "directory" in message


def test_empty_file(tmp_path):
    path = tmp_path / "e.trace"
    path.write_bytes(b"")
    assert "empty" in trace_error(path)


def test_non_ascii_bytes(tmp_path):
    path = tmp_path / "u.trace"
    lines = valid_lines()
    raw = "".join(line + "\n" for line in lines).encode("ascii")
    bad = raw.replace(b'"start"', '"st\u00e4rt"'.encode("utf-8"))
    assert bad != raw
    path.write_bytes(bad)
    message = trace_error(path)
    assert "not ASCII" in message
    first_bad = bad.index("\u00e4".encode("utf-8"))
    assert f"byte {first_bad} " in message


def test_last_line_without_newline_is_truncated(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    path.write_bytes("\n".join(lines).encode("ascii"))  # no final newline
    message = trace_error(path)
    assert "truncated" in message and f"line {len(lines)}" in message


def test_cut_in_the_middle_of_a_line(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    raw = "".join(line + "\n" for line in lines).encode("ascii")
    cut = raw[: len(raw) - len(lines[-1]) - 1 - 10]  # ten bytes into the last event line
    path.write_bytes(cut)
    message = trace_error(path)
    assert "truncated" in message and f"line {len(lines) - 1}" in message


def test_missing_end_record(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    write_lines(path, lines[:-1])
    message = trace_error(path)
    assert "end record is missing" in message


def test_header_only_without_end_record(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, valid_lines()[:1])
    assert "end record is missing" in trace_error(path)


@pytest.mark.parametrize("bad", ["{not json", "", '{"t":1', "[1, 2]", '"text"'])
def test_malformed_line(tmp_path, bad):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    lines[2] = bad
    write_lines(path, lines)
    message = trace_error(path)
    assert "line 3" in message


def test_malformed_header(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    lines[0] = "header?"
    write_lines(path, lines)
    assert "line 1" in trace_error(path)


@pytest.mark.parametrize(
    ("where", "replace", "with_"),
    [
        (3, '"amount":"12.50"', '"amount":12.5'),
        (3, '"amount":"12.50"', '"amount":1e3'),
        (3, '"amount":"12.50"', '"amount":NaN'),
        (4, '"t":1500', '"t":1500.0'),
        (1, '"seed":42', '"seed":42.0'),
        (1, '"workers":2', '"workers":Infinity'),
    ],
)
def test_a_float_anywhere_is_refused(tmp_path, where, replace, with_):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    assert replace in lines[where - 1]
    lines[where - 1] = lines[where - 1].replace(replace, with_)
    write_lines(path, lines)
    message = trace_error(path)
    assert f"line {where}" in message
    assert "float" in message


def test_unknown_format(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(format="other-trace"), [event(1, 0)]))
    message = trace_error(path)
    assert "line 1" in message and "'other-trace'" in message and "syncbed-trace" in message


def test_header_without_format(tmp_path):
    path = tmp_path / "t.trace"
    header = full_header()
    del header["format"]
    write_lines(path, build_lines(header, []))
    assert "line 1" in trace_error(path)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_version_mentions_the_supported_one(tmp_path, version):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(version=version), [event(1, 0)]))
    message = trace_error(path)
    assert "line 1" in message
    assert f"version {version!r}" in message
    assert "version 1" in message
    assert "0.1.0" in message  # points at the syncbed version named in the header


def test_missing_event_key(tmp_path):
    path = tmp_path / "t.trace"
    e = event(2, 5, "x")
    del e["cause"]
    write_lines(path, build_lines(full_header(), [event(1, 0), e]))
    message = trace_error(path)
    assert "line 3" in message and "cause" in message


def test_extra_event_key(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [dict(event(1, 0), extra=1)]))
    message = trace_error(path)
    assert "line 2" in message and "extra" in message


def test_seq_gap(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [event(1, 0), event(2, 0), event(4, 0)]))
    message = trace_error(path)
    assert "line 4" in message and "sequence" in message


def test_seq_not_starting_at_one(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [event(0, 0)]))
    assert "line 2" in trace_error(path)


def test_time_going_backwards(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [event(1, 10), event(2, 20), event(3, 19)]))
    message = trace_error(path)
    assert "line 4" in message and "backwards" in message and "19" in message


@pytest.mark.parametrize("t", [-1, "5", None])
def test_time_that_is_not_a_forward_integer(tmp_path, t):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [event(1, t)]))
    assert "line 2" in trace_error(path)


def test_edited_content_fails_the_fingerprint(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    assert '"12.50"' in lines[2]
    lines[2] = lines[2].replace('"12.50"', '"99.50"')  # still a valid event
    write_lines(path, lines)
    message = trace_error(path)
    assert "fingerprint" in message and "edited" in message


def test_edited_header_fails_the_fingerprint(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    lines[0] = lines[0].replace('"seed":42', '"seed":43')
    write_lines(path, lines)
    assert "fingerprint" in trace_error(path)


def test_dropped_event_with_renumbering_fails_the_end_record(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    write_lines(path, lines[:-2] + lines[-1:])  # the last event removed, end record kept
    message = trace_error(path)
    assert "3 events" in message and "2 events" in message


def test_end_record_not_last(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    spliced = lines[:2] + [lines[-1]] + lines[2:]
    write_lines(path, spliced)
    message = trace_error(path)
    assert "line 3" in message and "end record" in message


@pytest.mark.parametrize("kind", [7, None, ["tick"], {"k": 1}])
def test_an_event_kind_that_is_not_a_string(tmp_path, kind):
    path = tmp_path / "t.trace"
    write_lines(path, build_lines(full_header(), [event(1, 0), event(2, 5, kind)]))
    message = trace_error(path)
    assert "line 3" in message and "kind must be a string" in message


# ------------------------------------------------------------------ streaming


class ReadWatch(io.FileIO):
    """A file that remembers how far into it anything has read."""

    furthest = 0

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.furthest = max(self.furthest, self.tell())
        return n

    def readall(self):
        data = super().readall()
        self.furthest = max(self.furthest, self.tell())
        return data


def write_big_trace(path, events: int = 2_000) -> int:
    lines = build_lines(full_header(), [event(i, i * 10, "pad", {"i": i, "pad": "x" * 500}) for i in range(1, events + 1)])
    write_lines(path, lines)
    return path.stat().st_size


def test_the_reader_yields_the_first_event_before_reading_the_rest_of_the_file(tmp_path):
    path = tmp_path / "big.trace"
    size = write_big_trace(path)
    assert size > 1_000_000
    with io.BufferedReader(ReadWatch(path), buffer_size=8192) as f:
        raw = f.raw
        reader = iter_trace(path, f)
        assert next(reader) == full_header()
        first = next(reader)
        assert (first["seq"], first["data"]["i"]) == (1, 1)
        assert raw.furthest <= 2 * 8192  # a buffer or two, not the file
        assert reader.fingerprint is None  # nothing is vouched for yet
        rest = list(reader)
        assert raw.furthest == size
    assert len(rest) == 1_999
    assert reader.fingerprint == read_trace(path).fingerprint


def test_a_consumer_sees_events_before_a_bad_end_is_found(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    lines[-1] = lines[-1].replace('"events":3', '"events":4')
    write_lines(path, lines)
    seen = []
    with pytest.raises(TraceError, match="edited or corrupted"):
        for obj in iter_trace(path):
            seen.append(obj)
    assert [e.get("seq") for e in seen] == [None, 1, 2, 3]


def test_the_reader_says_where_each_line_starts(tmp_path):
    path = tmp_path / "t.trace"
    lines = valid_lines()
    write_lines(path, lines)
    raw = path.read_bytes()
    reader = iter_trace(path)
    starts = [(reader.line, reader.offset) for _ in reader]
    assert [n for n, _ in starts] == [1, 2, 3, 4]
    for n, offset in starts:
        assert raw[offset:].startswith(lines[n - 1].encode("ascii") + b"\n")
    trace = read_trace(path)
    assert reader.fingerprint == trace.fingerprint
    assert reader.header == trace.header


def test_a_reader_can_be_stopped_early_and_leaves_a_file_handed_in_open(tmp_path):
    path = tmp_path / "t.trace"
    write_lines(path, valid_lines())
    with io.BufferedReader(ReadWatch(path)) as f:
        reader = iter_trace(path, f)
        next(reader)
        reader.close()
        assert not f.closed
        with pytest.raises(StopIteration):
            next(reader)
        assert reader.fingerprint is None

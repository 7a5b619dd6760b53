"""The canonical model as JSON data, and back.

`to_json(record)` gives the plain data the core keeps in its `Store` and
sends across the seam; `from_json(cls, data)` rebuilds the record and runs
its validators. Both are generic over attrs records, driven by each field's
resolved annotation, so a new record needs no codec code:

  ==================  ===========================================
  annotation          JSON
  ==================  ===========================================
  str, int, bool      as is (an int field refuses true/false)
  Decimal             a string in plain notation: "1250.00", "-0.5"
  date                an ISO string: "2024-03-01"
  tuple[X, ...]       a list of X
  X | None            X or null
  an attrs record     an object, one key per field, by field name
  ==================  ===========================================

So ``from_json(type(r), to_json(r)) == r``, and ``json.dumps(to_json(r),
sort_keys=True)`` is one canonical text per record. Decimals keep the digits
they were written with: 10.0 and 10.00 are equal numbers, different text.
Decoding is strict -- an unknown key, a missing one, a number where a decimal
string belongs -- because a store value or a payload that does not fit the
model is a bug to surface, not to paper over. Every refusal is a `CodecError`
naming the path from the top record: ``Contract.versions[1].lines[0].rate``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any, TypeVar

import attrs

__all__ = ["to_json", "from_json", "canonical_text", "CodecError"]

T = TypeVar("T")
# (data, path) -> value
_Decoder = Callable[[Any, str], Any]

_DECIMAL_TEXT = re.compile(r"-?\d+(\.\d+)?")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class CodecError(ValueError):
    """JSON data that does not make the record asked for; `path` says where."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


# -- encoding -----------------------------------------------------------------

# Field names per record class, looked up once (attrs.asdict is general and
# several times slower).
_NAMES: dict[type, tuple[str, ...]] = {}


def to_json(record: Any) -> dict:
    """`record` as JSON data: dicts, lists, str, int, bool and None only."""
    if not attrs.has(type(record)):
        raise TypeError(f"to_json takes a model record (an attrs instance), not {type(record).__name__} {record!r}")
    return _encode(record)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"to_json cannot encode the non-finite Decimal {value}")
        return format(value, "f")  # never exponent notation: Decimal("1E+3") -> "1000"
    if isinstance(value, datetime):
        raise TypeError(f"to_json cannot encode the datetime {value!r}; the model keeps times as ISO strings")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    cls = type(value)
    names = _NAMES.get(cls)
    if names is None:
        if not attrs.has(cls):
            raise TypeError(
                f"to_json cannot encode {cls.__name__} {value!r}; records hold only str, int, bool, "
                f"Decimal, date, None, tuples and records"
            )
        names = _NAMES[cls] = tuple(a.name for a in attrs.fields(cls) if a.init)
    return {name: _encode(getattr(value, name)) for name in names}


# -- decoding -----------------------------------------------------------------

_RECORD_DECODERS: dict[type, _Decoder] = {}


# Decoded records by their canonical text. Records are frozen all the way
# down (tuples, Decimals, frozen records), so equal text may share one
# object; a contract is decoded on every time entry against it, and building
# it field by field cost a millisecond each time. First in, first out, so
# what stays cached depends only on the calls, never on memory.
_DECODED: dict[tuple[type, str], Any] = {}
_DECODED_MAX = 4096


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# The C encoder, built once: json.dumps and its Python layers cost more than
# the encoding on the small values the core stores and decodes per message.
_c_encode = c_make_encoder(None, _not_json, encode_basestring_ascii, None, ":", ",", True, False, True)


def canonical_text(data: Any) -> str:
    """``json.dumps(data, sort_keys=True, separators=(",", ":"))``, faster;
    a TypeError names anything that is not JSON data."""
    return "".join(_c_encode(data, 0))


def from_json(cls: type[T], data: Any) -> T:
    """The `cls` record that `data` (as made by `to_json`) describes."""
    if not (isinstance(cls, type) and attrs.has(cls)):
        raise TypeError(f"from_json needs a model record class such as CustomerAccount, not {cls!r}")
    try:
        key = (cls, canonical_text(data))
    except (TypeError, ValueError):  # not JSON data at all: let the decoder name what is wrong
        return _record_decoder(cls)(data, cls.__name__)
    record = _DECODED.get(key)
    if record is None:
        record = _record_decoder(cls)(data, cls.__name__)
        if len(_DECODED) >= _DECODED_MAX:
            del _DECODED[next(iter(_DECODED))]
        _DECODED[key] = record
    return record


def _kind(data: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}
    return "null" if data is None else f"{names.get(type(data), type(data).__name__)} {data!r}"


def _record_decoder(cls: type) -> _Decoder:
    decoder = _RECORD_DECODERS.get(cls)
    if decoder is not None:
        return decoder
    plan: list[tuple[str, str, _Decoder, bool]] = []  # (name, init alias, decoder, required)

    def decode(data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            raise CodecError(path, f"expected an object for a {cls.__name__}, got {_kind(data)}")
        known = [name for name, _, _, _ in plan]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise CodecError(
                path, f"unknown key(s) {', '.join(unknown)} for a {cls.__name__}; its fields are {', '.join(sorted(known))}"
            )
        missing = [name for name, _, _, required in plan if required and name not in data]
        if missing:
            raise CodecError(path, f"a {cls.__name__} needs {', '.join(missing)}")
        kwargs = {alias: dec(data[name], f"{path}.{name}") for name, alias, dec, _ in plan if name in data}
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:  # the record's own validators refused it
            raise CodecError(path, str(exc)) from None

    # Registered before the plan is built, so a record that nests itself terminates.
    _RECORD_DECODERS[cls] = decode
    try:
        hints = typing.get_type_hints(cls)
        for a in attrs.fields(cls):
            if a.init:
                decoder = _decoder_for(hints[a.name], f"{cls.__name__}.{a.name}")
                plan.append((a.name, a.alias, decoder, a.default is attrs.NOTHING))
    except BaseException:
        del _RECORD_DECODERS[cls]
        raise
    return decode


def _decoder_for(hint: Any, where: str) -> _Decoder:
    """How to decode one annotation; an annotation the codec cannot round-trip
    fails here, when the class is first used, not on some later record."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1 or len(args) != 2:
            raise TypeError(f"{where}: the codec handles X | None, not {hint}; use one record type per field")
        inner = _decoder_for(options[0], where)
        return lambda data, path: None if data is None else inner(data, path)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{where}: the codec handles tuple[X, ...], not {hint}")
        item = _decoder_for(args[0], where)

        def decode_tuple(data: Any, path: str) -> tuple:
            if not isinstance(data, list):
                raise CodecError(path, f"expected a list, got {_kind(data)}")
            return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(data))
        return decode_tuple
    if isinstance(hint, type) and attrs.has(hint):
        return _record_decoder(hint)
    scalar = _SCALARS.get(hint)
    if scalar is None:
        raise TypeError(f"{where}: the codec cannot encode {hint!r}; use str, int, bool, Decimal, date, tuples or records")
    return scalar


def _expect(ok: Callable[[Any], bool], wanted: str, convert: Callable[[Any], Any] = lambda v: v) -> _Decoder:
    def decode(data: Any, path: str) -> Any:
        if not ok(data):
            raise CodecError(path, f"expected {wanted}, got {_kind(data)}")
        return convert(data)
    return decode


def _is_date_text(data: Any) -> bool:
    if not isinstance(data, str) or not _DATE_TEXT.fullmatch(data):
        return False
    try:
        date.fromisoformat(data)
    except ValueError:  # 2024-02-30
        return False
    return True


_SCALARS: dict[Any, _Decoder] = {
    str: _expect(lambda v: isinstance(v, str), "a string"),
    bool: _expect(lambda v: type(v) is bool, "true or false"),
    int: _expect(lambda v: type(v) is int, "an integer"),
    Decimal: _expect(
        lambda v: isinstance(v, str) and _DECIMAL_TEXT.fullmatch(v) is not None,
        "a decimal string like '1250.00' (money is never a JSON number)",
        Decimal,
    ),
    date: _expect(_is_date_text, "an ISO date string like '2024-03-01'", date.fromisoformat),
}

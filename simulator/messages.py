"""HTTP-shaped messages: what crosses the seam between the core and the world.

Only JSON data crosses (dicts, lists, str, int, bool, None; money as decimal
strings). The network copies every body by encoding and decoding it, so no
Python object is ever shared between a fake system and the core -- the same
discipline a real HTTP hop imposes. Header names are lower-case.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring_ascii
from json.scanner import c_make_scanner
from typing import Any

__all__ = [
    "Request",
    "Response",
    "NetworkError",
    "RequestTimeout",
    "ConnectionRefused",
    "encode_body",
    "decode_body",
]


def _lower(headers: Any) -> dict:
    if not headers:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


class Request:
    """An HTTP-shaped request. Treat it as immutable.

    Written by hand rather than with attrs: the network builds two messages
    per exchange, and a plain slotted class is the cheapest way to do it.
    """

    __slots__ = ("method", "path", "query", "headers", "json")

    def __init__(self, method: str, path: str, query: Any = None, headers: Any = None, json: Any = None) -> None:
        self.method = method
        self.path = path
        self.query = dict(query) if query else {}
        self.headers = _lower(headers)
        self.json = json

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Request:
            return NotImplemented
        return (self.method, self.path, self.query, self.headers, self.json) == (
            other.method, other.path, other.query, other.headers, other.json
        )

    __hash__ = None  # mutable containers inside

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.path!r}, query={self.query!r}, headers={self.headers!r}, json={self.json!r})"


class Response:
    """An HTTP-shaped response. Treat it as immutable."""

    __slots__ = ("status", "json", "headers")

    def __init__(self, status: int, json: Any = None, headers: Any = None) -> None:
        self.status = status
        self.json = json
        self.headers = _lower(headers)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Response:
            return NotImplemented
        return (self.status, self.json, self.headers) == (other.status, other.json, other.headers)

    __hash__ = None

    def __repr__(self) -> str:
        return f"Response({self.status!r}, json={self.json!r}, headers={self.headers!r})"


def _trusted_request(method: str, path: str, query: dict, headers: dict, json: Any) -> Request:
    # The network's own copies: fields already normalised, skip __init__.
    r = Request.__new__(Request)
    r.method, r.path, r.query, r.headers, r.json = method, path, query, headers, json
    return r


def _trusted_response(status: int, json: Any, headers: dict) -> Response:
    r = Response.__new__(Response)
    r.status, r.json, r.headers = status, json, headers
    return r


class NetworkError(Exception):
    """The exchange failed in the network; the callee may or may not have
    acted on the request (a timeout is ambiguous, as in production)."""

    def __init__(self, message: str, *, src: str, dst: str, msg_id: str) -> None:
        super().__init__(message)
        self.src = src
        self.dst = dst
        self.msg_id = msg_id


class RequestTimeout(NetworkError):
    """No response within the caller's timeout."""


class ConnectionRefused(NetworkError):
    """The callee was not running when the request arrived."""


def _refuse_float(text: str) -> Any:
    raise ValueError(
        f"a float ({text}) crossed the network; send money and quantities as decimal strings (\"12.50\")"
    )


# The C encoder and scanner, built once. json.dumps and json.loads rebuild
# or wrap them on every call (a few microseconds each), and the network
# encodes and decodes two bodies per exchange.
def _not_json(obj: Any) -> Any:
    raise TypeError(f"a {type(obj).__name__} is not JSON data")


_c_encode = c_make_encoder(None, _not_json, encode_basestring_ascii, None, ":", ",", True, False, True)
_c_scan = c_make_scanner(json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float))


def encode_body(body: Any) -> str:
    """Canonical JSON text of a body (sorted keys, compact, ASCII); a
    TypeError names anything that is not JSON data."""
    try:
        return "".join(_c_encode(body, 0))
    except TypeError as exc:
        raise TypeError(f"message body is not JSON data ({exc}); send Decimal as str, dates as ISO strings") from None


def decode_body(text: str) -> Any:
    """A fresh object tree from `encode_body` output. Floats are refused
    here: the C scanner calls the hook only for a float, so float-free bodies
    pay nothing for the check."""
    obj, end = _c_scan(text, 0)
    if end != len(text):
        raise ValueError(f"trailing data after a JSON body at character {end}")
    return obj

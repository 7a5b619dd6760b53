"""HTTP-shaped messages: what crosses the seam between the core and the world.

Only JSON data crosses (dicts, lists, str, int, bool, None; money as decimal
strings). The network copies every body by encoding and decoding it, so no
Python object is ever shared between a fake system and the core -- the same
discipline a real HTTP hop imposes. Header names are lower-case.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

__all__ = [
    "Request",
    "Response",
    "NetworkError",
    "RequestTimeout",
    "ConnectionRefused",
    "encode_body",
    "decode_body",
]


def _lower_headers(headers: Any) -> dict:
    return {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}


@attrs.frozen(slots=True)
class Request:
    method: str
    path: str
    query: dict = attrs.field(factory=dict)
    headers: dict = attrs.field(factory=dict, converter=_lower_headers)
    json: Any = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@attrs.frozen(slots=True)
class Response:
    status: int
    json: Any = None
    headers: dict = attrs.field(factory=dict, converter=_lower_headers)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


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


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=True)
_decoder = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)


def encode_body(body: Any) -> str:
    """Canonical JSON text of a body; TypeError names anything not JSON."""
    try:
        return _encoder.encode(body)
    except TypeError as exc:
        raise TypeError(f"message body is not JSON data: {exc}; convert Decimal to str, dates to ISO strings") from None


# Decoding is where floats are refused: the C scanner calls the hook only for
# a float, so float-free bodies pay nothing for the check.
decode_body = _decoder.decode

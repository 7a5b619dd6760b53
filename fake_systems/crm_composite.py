"""Composite requests: several API calls in one POST, the family's way.

    {"allOrNone": true,
     "requests": [
        {"ref": "acc", "method": "POST", "path": "/services/v1/objects/Account", "body": {...}},
        {"ref": "opp", "method": "POST", "path": "/services/v1/objects/Opportunity",
         "body": {"AccountId": "@{acc.id}", ...}},
        {"method": "GET", "path": "/services/v1/objects/Opportunity/@{opp.id}"}]}

At most 25 sub-requests (more is a 400 for the whole request, nothing
runs). ``@{ref.field}`` in a path or body takes a field of the result of an
earlier successful sub-request. The composite counts as one request against
the API allowance; the sub-requests carry the outer request's headers
(correlation id, client name) plus their own. The CRM routes each one and
decides what all-or-none means (`Crm._composite`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from simulator import Request

from .vendor import VendorError

__all__ = ["MAX_COMPOSITE", "parse_composite", "sub_request"]

MAX_COMPOSITE = 25
_REF = re.compile(r"@\{(\w+)\.(\w+)\}")
_METHODS = ("GET", "POST", "PATCH")


def _bad(message: str) -> VendorError:
    return VendorError(400, "MALFORMED_BODY", message)


def parse_composite(body: Any) -> tuple[list[dict], bool]:
    """The sub-requests and the allOrNone flag of a composite body, checked whole."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list) or not body["requests"]:
        raise _bad('a composite body is {"allOrNone": true|false, "requests": [{"method", "path", "body"?, '
                   '"headers"?, "ref"?}, ...]} with at least one request')
    subs = body["requests"]
    if len(subs) > MAX_COMPOSITE:
        raise VendorError(400, "LIMIT_EXCEEDED", f"a composite request takes at most {MAX_COMPOSITE} "
                          f"sub-requests, got {len(subs)}; split it")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise _bad(f"allOrNone must be true or false, not {all_or_none!r}")
    refs: list[str] = []
    for n, sub in enumerate(subs):
        if not isinstance(sub, dict) or sub.get("method") not in _METHODS:
            raise _bad(f"requests[{n}] needs a method of {', '.join(_METHODS)}")
        if not isinstance(sub.get("path"), str) or not sub["path"].startswith("/services/"):
            raise _bad(f"requests[{n}].path must be an API path like /services/v1/objects/Account")
        if not isinstance(sub.get("headers", {}), dict):
            raise _bad(f"requests[{n}].headers must be an object of header names and values")
        ref = sub.get("ref")
        if ref is not None:
            if not isinstance(ref, str) or not re.fullmatch(r"\w+", ref, re.ASCII) or ref in refs:
                raise _bad(f"requests[{n}].ref must be a unique name of letters, digits and _")
            refs.append(ref)
    return subs, all_or_none


def _resolve(value: Any, bodies: dict[str, Any]) -> Any:
    if isinstance(value, str):
        def field_of(m: re.Match) -> str:
            body = bodies.get(m.group(1))
            if not isinstance(body, dict) or m.group(2) not in body:
                raise VendorError(400, "INVALID_REFERENCE", f"{m.group(0)} names no field of the result of an "
                                  "earlier successful sub-request")
            return str(body[m.group(2)])
        return _REF.sub(field_of, value)
    if isinstance(value, list):
        return [_resolve(v, bodies) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, bodies) for k, v in value.items()}
    return value


def sub_request(outer: Request, sub: dict, bodies: dict[str, Any]) -> Request:
    """The Request a sub-request stands for, references resolved."""
    parts = urlsplit(_resolve(sub["path"], bodies))
    headers = {**outer.headers, **{str(k).lower(): str(v) for k, v in sub.get("headers", {}).items()}}
    return Request(sub["method"], parts.path, dict(parse_qsl(parts.query)), headers, _resolve(sub.get("body"), bodies))

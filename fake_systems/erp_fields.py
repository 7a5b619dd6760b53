"""How the ERP reads a request body: one parser per kind of field.

Pure functions over JSON data; the ERP's own state (references, periods,
rates) lives in `erp` and `erp_books`. Every parser names the field it read
in the VendorError it raises, so a caller learns exactly which input is wrong
and what to send instead.

Money and quantities arrive as decimal strings ("1234.50"). A JSON number is
refused even when it is an integer: a float could never cross the seam, and
accepting ``100`` invites a caller to send ``100.1`` one day.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from .money import minor_units
from .vendor import VendorError

__all__ = [
    "only", "writable", "text", "flag", "whole", "day", "decimal_text", "amount", "fmt",
    "currency_code", "country_code",
]

_DECIMAL = re.compile(r"-?\d{1,15}(\.\d{1,10})?")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _bad(field: str, message: str, code: str = "INVALID_FIELD_VALUE") -> VendorError:
    return VendorError(400, code, message, field)


def only(body: Any, allowed: tuple[str, ...], noun: str, where: str = "") -> dict:
    """`body` must be a JSON object whose keys are all in `allowed`."""
    if not isinstance(body, dict):
        raise VendorError(400, "MALFORMED_REQUEST", f"{where or 'the request body'} must be a JSON object ({noun})",
                          where or None)
    for key in sorted(body, key=str):
        if key not in allowed:
            raise _bad(f"{where}.{key}" if where else str(key),
                       f"{noun} has no writable field {key!r}; writable fields are {', '.join(allowed)}",
                       "UNKNOWN_FIELD")
    return body


def writable(body: Any, existing: dict | None, allowed: tuple[str, ...], noun: str,
             line_fields: tuple[str, ...] = ()) -> dict:
    """The body of a create, or of an update laid over what `existing` holds
    (fields the update leaves out keep their values; `lines`, when given,
    replace all lines)."""
    only(body, allowed, noun)
    if existing is None:
        return dict(body)
    merged: dict = {}
    for f in allowed:
        if f == "lines" and "lines" in existing:
            merged["lines"] = [{k: ln[k] for k in line_fields if ln.get(k) is not None} for ln in existing["lines"]]
        elif f in existing and existing[f] is not None and f != "externalId":
            merged[f] = existing[f]
    merged.update(body)
    return merged


def text(body: dict, field: str, *, required: bool = False, max_len: int = 200, where: str = "") -> str | None:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise _bad(where + field, f"required field {where + field} is missing", "REQUIRED_FIELD_MISSING")
        return None
    if not isinstance(value, str):
        raise _bad(where + field, f"{where + field} must be a string, not {type(value).__name__} {value!r}")
    if len(value) > max_len:
        raise _bad(where + field, f"{where + field} is {len(value)} characters; the limit is {max_len}")
    return value


def flag(body: dict, field: str, default: bool, where: str = "") -> bool:
    value = body.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(where + field, f"{where + field} must be true or false, not {value!r}")
    return value


def whole(body: dict, field: str, default: int, lo: int, hi: int) -> int:
    value = body.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(field, f"{field} must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def day(value: Any, field: str) -> date | None:
    """An ISO date "YYYY-MM-DD", or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _bad(field, f"{field} must be a date written YYYY-MM-DD, not {value!r}")


def decimal_text(value: Any, field: str, places: int) -> Decimal | None:
    """A decimal string with at most `places` decimals, or None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        hint = f'"{value}"' if isinstance(value, int) and not isinstance(value, bool) else '"12.50"'
        raise _bad(field, f"{field} must be a decimal string like {hint}, not {type(value).__name__} {value!r}")
    number = Decimal(value)
    if -number.as_tuple().exponent > places:
        raise _bad(field, f"{field} {value} has more than {places} decimal places", "INVALID_AMOUNT")
    return number


def amount(value: Any, currency: str, field: str) -> Decimal | None:
    """Money in `currency`: no finer than its minor unit, padded to it."""
    number = decimal_text(value, field, minor_units(currency))
    if number is None:
        return None
    number = number.quantize(Decimal(1).scaleb(-minor_units(currency)))
    return number.copy_abs() if number.is_zero() else number  # one spelling of zero


def fmt(number: Decimal, currency: str) -> str:
    """Money on the wire: a plain decimal string with the currency's decimals."""
    number = number.quantize(Decimal(1).scaleb(-minor_units(currency)))
    return format(number.copy_abs() if number.is_zero() else number, "f")


def currency_code(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise _bad(field, f"{field} must be an ISO 4217 code like \"EUR\", not {value!r}")
    return value


def country_code(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise _bad(field, f"{field} must be an ISO 3166 two-letter country code like \"DE\", not {value!r}")
    return value

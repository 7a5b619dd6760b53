"""Billing's wire values: reading what clients send, writing what it answers.

Everything a billing request carries is read here, field by field, with the
vendor's own error (``param``, ``code``, ``message``) when a value is wrong:
unknown parameters are refused (a typo must not pass silently), money is a
decimal *string* whose digits fit the currency's minor unit, dates are ISO
``YYYY-MM-DD``. Nested parameters are named the way form-encoded payment APIs
name them: ``source[type]``, ``rate_card[2][unit_amount]``.

The arithmetic of an invoice lives here too, as plain functions, so every
place a cent can appear is named:

* a line is ``quantity x unit_amount``, computed exactly and rounded ONCE to
  the currency's minor unit, half up (halves away from zero, so a negative
  adjustment line rounds like the line it reverses);
* tax is ``subtotal x tax_percent / 100``, rounded once on the invoice
  subtotal (not per line), half up;
* total = subtotal + tax, exactly. Nothing else rounds.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .money import MINOR_UNITS, Money, prorate, round_money
from .vendor import VendorError

__all__ = [
    "Params", "add_months", "fmt_money", "invoice_totals", "line_amount", "recurring_periods", "sequence_of",
]

_DECIMAL = re.compile(r"-?\d{1,15}(\.\d{1,12})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
METADATA_KEYS = 50


def _invalid(param: str, message: str) -> VendorError:
    return VendorError(400, "parameter_invalid", message, param)


class Params:
    """One request's (or one nested object's) parameters, read one at a time.

    `allowed` lists every parameter the endpoint takes; anything else is a
    400 ``parameter_unknown``. `prefix` names a nested object in errors.
    """

    def __init__(self, body: Any, allowed: tuple[str, ...], *, prefix: str = "", optional: bool = False) -> None:
        if body is None and optional:
            body = {}
        if not isinstance(body, dict):
            where = f"{prefix} must be" if prefix else "The request body must be"
            raise VendorError(
                400, "body_invalid" if not prefix else "parameter_invalid",
                f"{where} a JSON object (like {{\"customer\": \"cus_000001\"}}), not {_kind(body)}",
                prefix or None,
            )
        unknown = sorted(k for k in body if k not in allowed)
        if unknown:
            raise VendorError(
                400, "parameter_unknown",
                f"Received unknown parameter: {self._name(prefix, unknown[0])}. "
                f"This endpoint takes: {', '.join(allowed)}",
                self._name(prefix, unknown[0]),
            )
        self.body = body
        self.prefix = prefix

    @staticmethod
    def _name(prefix: str, key: str) -> str:
        return f"{prefix}[{key}]" if prefix else key

    def name(self, key: str) -> str:
        return self._name(self.prefix, key)

    def has(self, key: str) -> bool:
        return self.body.get(key) is not None

    def _get(self, key: str, required: bool) -> Any:
        value = self.body.get(key)
        if value is None and required:
            raise VendorError(400, "parameter_missing", f"Missing required param: {self.name(key)}.", self.name(key))
        return value

    def text(self, key: str, *, required: bool = False, max_len: int = 500) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise _invalid(self.name(key), f"{self.name(key)} must be a non-empty string of at most {max_len} characters")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, default: str | None = None, required: bool = False) -> str | None:
        value = self._get(key, required and default is None)
        if value is None:
            return default
        if value not in choices:
            raise _invalid(self.name(key), f"Invalid {self.name(key)}: must be one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, *, default: bool = False) -> bool:
        value = self.body.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _invalid(self.name(key), f"{self.name(key)} must be true or false")
        return value

    def integer(self, key: str, *, low: int, high: int, default: int | None = None) -> int | None:
        value = self.body.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _invalid(self.name(key), f"{self.name(key)} must be a whole number from {low} to {high}")
        return value

    def decimal(self, key: str, *, required: bool = False, places: int = 6, positive: bool = False,
                non_negative: bool = False) -> Decimal | None:
        """A decimal given as a string like "7.25" (or an int); never a float."""
        value = self._get(key, required)
        if value is None:
            return None
        return parse_decimal(value, self.name(key), places=places, positive=positive, non_negative=non_negative)

    def money(self, key: str, currency: str, *, required: bool = False, positive: bool = False,
              non_negative: bool = False) -> Decimal | None:
        """An amount in `currency`, exact to its minor unit ("1234.50")."""
        return self.decimal(key, required=required, places=MINOR_UNITS[currency.upper()],
                            positive=positive, non_negative=non_negative)

    def currency(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or value.upper() not in MINOR_UNITS:
            raise _invalid(self.name(key), f"Invalid currency: {value!r}. Give an ISO 4217 code we support, like \"usd\"")
        return value.lower()

    def date(self, key: str, *, required: bool = False) -> date | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise _invalid(self.name(key), f"{self.name(key)} must be a date written YYYY-MM-DD, like \"2026-01-31\"")

    def nested(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> Params | None:
        value = self._get(key, required)
        return None if value is None else Params(value, allowed, prefix=self.name(key))

    def items(self, key: str, allowed: tuple[str, ...], *, max_items: int = 250) -> list[Params] | None:
        """A list of nested objects (``rate_card[0]``, ``rate_card[1]``...)."""
        value = self.body.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > max_items:
            raise _invalid(self.name(key), f"{self.name(key)} must be a list of at most {max_items} objects")
        return [Params(v, allowed, prefix=f"{self.name(key)}[{i}]") for i, v in enumerate(value)]

    def metadata(self) -> dict:
        """Free-form string pairs the client keeps on a record."""
        value = self.body.get("metadata")
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > METADATA_KEYS or not all(
            isinstance(v, str) and len(k) <= 40 and len(v) <= 500 for k, v in value.items()
        ):
            raise _invalid(self.name("metadata"), f"metadata must be an object of at most {METADATA_KEYS} string values")
        return {k: value[k] for k in sorted(value)}


def _kind(value: Any) -> str:
    return "null" if value is None else {list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__)


def parse_decimal(value: Any, param: str, *, places: int = 6, positive: bool = False, non_negative: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not _DECIMAL.fullmatch(value)):
        raise _invalid(param, f"{param} must be a decimal string like \"1234.50\"; got {value!r}")
    number = Decimal(value)
    if -number.as_tuple().exponent > places:
        raise _invalid(param, f"{param} {value} has more than {places} decimal places; round it first")
    if positive and number <= 0:
        raise _invalid(param, f"{param} must be greater than zero; got {value}")
    if non_negative and number < 0:
        raise _invalid(param, f"{param} must not be negative; got {value}")
    return number.copy_abs() if number.is_zero() else number


def sequence_of(record_id: str) -> int:
    """The counter behind an id ("in_000123" -> 123): creation order."""
    return int(record_id.rsplit("_", 1)[1])


# ---------------------------------------------------------------- amounts


def fmt_money(amount: Decimal, currency: str) -> str:
    """An amount on the wire: exactly the currency's minor digits ("1087.50")."""
    return str(round_money(Money(amount, currency.upper())).amount)


def line_amount(quantity: Decimal, unit_amount: Decimal, currency: str) -> Decimal:
    """quantity x unit_amount, exact, rounded once to the minor unit, half up."""
    return round_money(Money(unit_amount, currency.upper()) * quantity).amount


def invoice_totals(amounts: list[Decimal], tax_percent: Decimal, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, tax, total) of lines already rounded to the cent."""
    subtotal = Money(Decimal(0), currency.upper())
    for amount in amounts:
        subtotal = subtotal + Money(amount, currency.upper())
    tax = prorate(subtotal, tax_percent, 100)  # one rounding, half up
    return subtotal.amount, tax.amount, (subtotal + tax).amount


# ---------------------------------------------------------------- recurring


MONTHS_PER_INTERVAL = {"month": 1, "quarter": 3, "year": 12}


def add_months(d: date, months: int) -> date:
    """`d` plus whole months, the day clamped to the target month's end."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def recurring_periods(start: date, end: date | None, interval: str, through: date) -> list[tuple[date, date]]:
    """Service periods (first day, last day) of a recurring charge that have
    begun by `through`: anchored on `start` (each counted from it, so a
    31st never drifts), the last one cut at `end`."""
    step = MONTHS_PER_INTERVAL[interval]
    out = []
    i = 0
    while True:
        first = add_months(start, i * step)
        if first > through or (end is not None and first > end):
            return out
        last = add_months(start, (i + 1) * step) - timedelta(days=1)
        out.append((first, last if end is None else min(last, end)))
        i += 1

"""Amounts of money: a Decimal and a currency, and the few things finance does with them.

Modelled on beancount's ``core/amount.py``: `Money` is dumb immutable data;
rounding, splitting and conversion are module functions, so every place a cent
can appear or vanish is a named, explicit call.

Invariants the rest of syncbed relies on:

* an amount is a `Decimal`, never a float -- a float anywhere raises TypeError
  (binary floats cannot hold 0.10, so totals would stop tying to the cent);
* ``+``, ``-`` and ``*`` are exact: they run in a context that traps
  `decimal.Inexact`, so an operation that would silently round raises instead.
  The only places a value is rounded are `round_money`, `prorate`, `allocate`
  and `FxRates.convert`, each with a stated rounding rule;
* money in two currencies never adds, subtracts or orders (`CurrencyMismatch`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import (
    ROUND_05UP, ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_EVEN,
    ROUND_HALF_UP, ROUND_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow,
)
from fractions import Fraction
from types import MappingProxyType

import attrs

__all__ = [
    "MINOR_UNITS", "CurrencyMismatch", "UnknownCurrency", "FxRateMissing",
    "Money", "M", "as_decimal", "minor_units", "round_money", "sum_money", "sum_amounts", "prorate", "allocate", "FxRates",
]

# ISO 4217 minor units for the currencies the firm generator uses. Most are 2;
# the exceptions are the reason the table exists.
# Read-only so a test cannot widen it for the rest of the run.
MINOR_UNITS: Mapping[str, int] = MappingProxyType({
    **dict.fromkeys(
        "USD EUR GBP CAD AUD NZD CHF SEK NOK DKK PLN CZK HUF INR SGD HKD CNY MXN BRL ZAR AED ILS".split(), 2
    ),
    "JPY": 0, "KRW": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
})

# Exact arithmetic: 60 digits is far more than any amount needs, and trapping
# Inexact turns a would-be silent rounding into an error.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
# Rounding happens only through quantize, which is allowed to be inexact.
_ROUNDING = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow])
_ROUNDINGS = frozenset(
    {ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_HALF_DOWN, ROUND_UP, ROUND_DOWN, ROUND_CEILING, ROUND_FLOOR, ROUND_05UP}
)
_CURRENCY = re.compile(r"[A-Z]{3}")
_MONEY_TEXT = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s+([A-Z]{3})\s*")


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined; convert one first (`FxRates.convert`)."""

    def __init__(self, operation: str, left: str, right: str) -> None:
        super().__init__(
            f"cannot {operation} {left} and {right}: money in different currencies never combines; "
            f"convert one side first with FxRates.convert"
        )
        self.left, self.right = left, right


class UnknownCurrency(ValueError):
    """A currency code not in `MINOR_UNITS`, so nobody knows where its cents are."""


class FxRateMissing(LookupError):
    """No rate for a currency pair effective on or before a date."""

    def __init__(self, frm: str, to: str, on: date, detail: str) -> None:
        super().__init__(f"no FX rate {frm}->{to} effective on or before {on.isoformat()}: {detail}")
        self.frm, self.to, self.on = frm, to, on


def as_decimal(value: object, what: str) -> Decimal:
    """Decimal or int -> finite Decimal, naming ``what`` in the error; floats above all are refused.

    Public because every record that carries a quantity (hours, rates, costs)
    needs the same boundary check as money does."""
    if isinstance(value, float):
        raise TypeError(
            f"{what} is the float {value!r}; money is Decimal only -- write Decimal({str(value)!r})"
        )
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{what} must be a Decimal or int, not {type(value).__name__} {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, not {number}")
    # -0.00 and 0.00 are the same money; keep one spelling so str() stays tidy.
    return number.copy_abs() if number.is_zero() else number


def _amount(value: object) -> Decimal:
    return as_decimal(value, "a Money amount")


def _currency(instance: object, attribute: object, value: object) -> None:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValueError(f"currency {value!r} is not an ISO 4217 code; write three capital letters like 'USD'")


@attrs.frozen
class Money:
    """An exact amount in one currency. Not rounded unless you call `round_money`."""

    amount: Decimal = attrs.field(converter=_amount)
    currency: str = attrs.field(validator=_currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def _same_currency(self, other: Money, operation: str) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(operation, str(self), str(other))

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(_EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(_EXACT.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(_EXACT.minus(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, Money):
            raise TypeError(f"cannot multiply {self} by {factor}: money times money has no meaning")
        return Money(_EXACT.multiply(self.amount, as_decimal(factor, "a Money multiplier")), self.currency)

    __rmul__ = __mul__

    def _compare(self, other: object, operation: str) -> tuple[Decimal, Decimal]:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare {self} with {type(other).__name__} {other!r}; compare Money with Money")
        self._same_currency(other, operation)
        return self.amount, other.amount

    def __lt__(self, other: object) -> bool:
        a, b = self._compare(other, "compare")
        return a < b

    def __le__(self, other: object) -> bool:
        a, b = self._compare(other, "compare")
        return a <= b

    def __gt__(self, other: object) -> bool:
        a, b = self._compare(other, "compare")
        return a > b

    def __ge__(self, other: object) -> bool:
        a, b = self._compare(other, "compare")
        return a >= b


def M(text: str) -> Money:
    """Parse ``"10.00 USD"`` (tests and fixtures; like beancount's ``A``). Keeps the digits as written."""
    match = _MONEY_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not money; write an amount and an ISO code, like '10.00 USD' or '-500 JPY'")
    return Money(Decimal(match.group(1)), match.group(2))


def minor_units(currency: str) -> int:
    """Digits after the decimal point for a currency (USD 2, JPY 0, KWD 3)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(
            f"currency {currency!r} has no minor-units entry; add it to fake_systems.money.MINOR_UNITS"
        ) from None


def _check_rounding(rounding: str) -> None:
    if rounding not in _ROUNDINGS:
        raise ValueError(f"rounding {rounding!r} is not a decimal rounding mode; pass one like decimal.ROUND_HALF_UP")


def round_money(m: Money, rounding: str = ROUND_HALF_UP) -> Money:
    """Round to the currency's minor unit. ROUND_HALF_UP rounds halves away from zero, so a
    credit note rounds exactly like the invoice it reverses."""
    _check_rounding(rounding)
    exponent = Decimal(1).scaleb(-minor_units(m.currency))
    return Money(m.amount.quantize(exponent, rounding=rounding, context=_ROUNDING), m.currency)


def sum_money(amounts: Iterable[Money], currency: str) -> Money:
    """Exact total; the currency is named so an empty iterable still has one.
    (The running total is a Decimal, not a Money per step: the same exact
    sum, without building and validating an object per amount.)"""
    total = Decimal(0)
    for m in amounts:
        if m.currency != currency:
            raise CurrencyMismatch("add", str(Money(total, currency)), str(m))
        total = _EXACT.add(total, m.amount)
    return Money(total, currency)


def sum_amounts(amounts: Iterable[Decimal | str], currency: str) -> Money:
    """Exact total of bare amounts (Decimals or decimal strings, as records
    store them) in one currency."""
    total = Decimal(0)
    for a in amounts:
        total = _EXACT.add(total, as_decimal(Decimal(a), "an amount"))
    return Money(total, currency)


def _to_minor(m: Money, what: str) -> int:
    units = m.amount.scaleb(minor_units(m.currency))
    if units != units.to_integral_value():
        raise ValueError(f"{what} {m} is finer than the {m.currency} minor unit; round it first with round_money")
    return int(units)


def _from_minor(units: int, currency: str) -> Money:
    return Money(Decimal(units).scaleb(-minor_units(currency)), currency)


def _round_fraction(value: Fraction, rounding: str) -> int:
    """Round an exact rational to an integer under a decimal rounding mode, exactly.

    Every mode depends only on the sign, the integer below, and whether the
    remainder is zero, under, at or over one half. So a stand-in decimal with the
    same floor and remainder class (x, x.25, x.5, x.75) rounds identically; no
    digits of the true value need computing.
    """
    floor = value.numerator // value.denominator
    rest = value - floor
    stand_in = (
        Decimal(floor) if rest == 0
        else Decimal(floor) + Decimal("0.5") if rest == Fraction(1, 2)
        else Decimal(floor) + (Decimal("0.25") if rest < Fraction(1, 2) else Decimal("0.75"))
    )
    return int(stand_in.quantize(Decimal(1), rounding=rounding, context=_ROUNDING))


def _ratio_term(value: object, what: str) -> Fraction:
    if isinstance(value, Fraction):
        return value
    return Fraction(as_decimal(value, what))


def prorate(m: Money, part: Decimal | int | Fraction, whole: Decimal | int | Fraction,
            rounding: str = ROUND_HALF_UP) -> Money:
    """``m * part / whole`` rounded once to the minor unit, computed as an exact fraction
    (``100.00 * 1/3`` must not depend on how many digits 1/3 was carried to)."""
    _check_rounding(rounding)
    whole_f = _ratio_term(whole, "prorate's whole")
    if whole_f == 0:
        raise ValueError(f"cannot prorate {m} over a whole of zero; the whole must be non-zero")
    exact = Fraction(m.amount) * _ratio_term(part, "prorate's part") / whole_f
    return _from_minor(_round_fraction(exact * 10 ** minor_units(m.currency), rounding), m.currency)


def allocate(total: Money, weights: Sequence[Decimal | int | Fraction]) -> list[Money]:
    """Split ``total`` in proportion to ``weights``, in whole minor units, summing exactly to it.

    Largest remainder (Hamilton's method): every part first gets the floor of
    its exact share, then the minor units left over go one each to the parts
    with the largest fractional remainders; equal remainders go to the lower
    index first, so the result is deterministic and order is the tie-break the
    caller controls. Hence each part is within one minor unit of its exact share,
    and a zero weight gets exactly zero (its remainder is zero, and fewer units
    are left over than there are non-zero remainders).

    A negative total (a credit note) is split as its absolute value and negated,
    so ``allocate(-t, w) == [-p for p in allocate(t, w)]``. Weights may be
    Decimal, int or Fraction (for exact ratios); at least one must be positive
    and none negative. ``total`` must already be in whole minor units.
    """
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or not weights:
        raise ValueError(f"allocate needs a non-empty sequence of weights, got {weights!r}")
    exact_weights = [_ratio_term(w, f"weight #{i}") for i, w in enumerate(weights)]
    negative = [i for i, w in enumerate(exact_weights) if w < 0]
    if negative:
        raise ValueError(f"weights must not be negative; weight #{negative[0]} is {weights[negative[0]]}")
    weight_sum = sum(exact_weights)
    if weight_sum == 0:
        raise ValueError(f"weights {list(weights)} are all zero; at least one must be positive to receive {total}")
    units = _to_minor(total, "allocate's total")
    magnitude = abs(units)
    shares = [magnitude * w / weight_sum for w in exact_weights]
    parts = [s.numerator // s.denominator for s in shares]
    leftover = magnitude - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    sign = -1 if units < 0 else 1
    result = [_from_minor(sign * p, total.currency) for p in parts]
    assert sum(sign * p for p in parts) == units, "allocate lost a minor unit"
    return result


def _rate(value: object, frm: str, to: str) -> Decimal:
    rate = as_decimal(value, f"the {frm}->{to} rate")
    if rate <= 0:
        raise ValueError(f"the {frm}->{to} rate must be positive, got {rate}")
    return rate


def _plain_date(on: object, what: str) -> date:
    # datetime is a date subclass but does not compare with dates; refuse it early.
    if isinstance(on, datetime) or not isinstance(on, date):
        raise TypeError(f"{what} must be a datetime.date, not {type(on).__name__} {on!r}")
    return on


@attrs.frozen
class FxRates:
    """Effective-dated exchange rates: ``rates[(frm, to)]`` is a date-sorted tuple of
    ``(effective, rate)`` where ``1 frm = rate to`` from ``effective`` until the next entry.

    Build with `FxRates.of` or `FxRates.with_rate`; both return new objects.
    """

    rates: Mapping[tuple[str, str], tuple[tuple[date, Decimal], ...]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, quotes: Iterable[tuple[str, str, date, Decimal | int]]) -> FxRates:
        """From ``(frm, to, effective, rate)`` quotes, in any order."""
        table = cls()
        for frm, to, effective, rate in quotes:
            table = table.with_rate(frm, to, effective, rate)
        return table

    def with_rate(self, frm: str, to: str, effective: date, rate: Decimal | int) -> FxRates:
        for code in (frm, to):
            _currency(None, None, code)
        if frm == to:
            raise ValueError(f"a {frm}->{to} rate is always 1; store rates between different currencies")
        effective = _plain_date(effective, "the rate's effective date")
        history = self.rates.get((frm, to), ())
        if any(d == effective for d, _ in history):
            raise ValueError(
                f"{frm}->{to} already has a rate effective {effective.isoformat()}; "
                f"one rate per pair per day, so the lookup is never ambiguous"
            )
        entry = (effective, _rate(rate, frm, to))
        return FxRates({**self.rates, (frm, to): tuple(sorted((*history, entry)))})

    def rate(self, frm: str, to: str, on: date) -> Decimal:
        """The latest rate effective on or before ``on``.

        If only the inverse pair is stored, its rate is inverted as ``1/rate``
        quantized to 10 decimal places (ROUND_HALF_UP), which is as precise as
        published cross rates and keeps the result a short, reproducible Decimal.
        A stored direct pair always wins, even when only the inverse has a rate
        that early: mixing directions by date would make the answer depend on
        which side happened to be quoted first.
        """
        on = _plain_date(on, "the conversion date")
        if frm == to:
            return Decimal(1)
        if (frm, to) in self.rates:
            return self._latest(frm, to, on)
        if (to, frm) in self.rates:
            inverse = Fraction(self._latest(to, frm, on))
            return Decimal(_round_fraction(10**10 / inverse, ROUND_HALF_UP)).scaleb(-10)
        raise FxRateMissing(frm, to, on, f"neither {frm}->{to} nor {to}->{frm} is stored; add one with with_rate")

    def _latest(self, frm: str, to: str, on: date) -> Decimal:
        history = self.rates[(frm, to)]
        i = bisect.bisect_right(history, on, key=lambda entry: entry[0])
        if i == 0:
            raise FxRateMissing(frm, to, on, f"the earliest stored {frm}->{to} rate is effective {history[0][0].isoformat()}")
        return history[i - 1][1]

    def convert(self, m: Money, to: str, on: date, rounding: str = ROUND_HALF_UP) -> Money:
        """``m`` in ``to`` at the rate effective ``on``, rounded to ``to``'s minor unit."""
        return round_money(Money(_EXACT.multiply(m.amount, self.rate(m.currency, to, on)), to), rounding)

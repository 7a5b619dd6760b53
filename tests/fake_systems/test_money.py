"""Money: exact amounts, explicit rounding, largest-remainder splits, dated FX.

Expected values are worked by hand in the comments next to them.
"""

from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, Inexact
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_systems.money import (
    MINOR_UNITS, CurrencyMismatch, FxRateMissing, FxRates, M, Money, UnknownCurrency,
    allocate, as_decimal, minor_units, prorate, round_money, sum_money,
)

D = Decimal


# -- construction and parsing ----------------------------------------------

def test_parser_keeps_digits_as_written_and_str_round_trips():
    m = M("10.50 USD")
    assert m == Money(D("10.50"), "USD")
    assert str(m) == "10.50 USD"
    assert M(str(M("-500 JPY"))) == Money(D(-500), "JPY")


@pytest.mark.parametrize("text", ["10.00", "USD 10.00", "10,00 USD", "1e3 USD", "10.00 usd", "", "10.00 USDX"])
def test_parser_rejects_malformed_text_with_an_example(text):
    with pytest.raises(ValueError, match="10.00 USD"):
        M(text)


def test_float_amount_is_a_type_error_that_shows_the_decimal_to_write():
    with pytest.raises(TypeError, match=r"Decimal\('0.1'\)"):
        Money(0.1, "USD")


@pytest.mark.parametrize("bad", ["10.00", True, None])
def test_non_numeric_amounts_are_type_errors(bad):
    with pytest.raises(TypeError, match="Decimal or int"):
        Money(bad, "USD")


def test_int_amount_becomes_decimal():
    m = Money(5, "USD")
    assert isinstance(m.amount, Decimal) and m.amount == 5


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity")])
def test_non_finite_amounts_are_rejected(bad):
    with pytest.raises(ValueError, match="finite"):
        Money(bad, "USD")


@pytest.mark.parametrize("code", ["usd", "US", "USDX", 840])
def test_currency_must_be_three_capital_letters(code):
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(D(1), code)


def test_as_decimal_names_the_input_in_its_error():
    with pytest.raises(TypeError, match="hours is the float 7.5"):
        as_decimal(7.5, "hours")


# -- arithmetic --------------------------------------------------------------

def test_add_and_subtract_in_one_currency_are_exact():
    assert M("10.10 USD") + M("0.05 USD") == M("10.15 USD")
    assert M("10.10 USD") - M("10.15 USD") == M("-0.05 USD")
    assert -M("3.00 EUR") == M("-3.00 EUR")


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a < b, lambda a, b: a >= b])
def test_mixing_currencies_raises_currency_mismatch(op):
    with pytest.raises(CurrencyMismatch, match="10.00 USD and 10.00 EUR"):
        op(M("10.00 USD"), M("10.00 EUR"))


def test_equal_numbers_in_different_currencies_are_not_equal():
    assert M("10.00 USD") != M("10.00 EUR")
    assert M("10.00 USD") == M("10.0 USD")  # same money, different spelling


def test_multiplication_is_unrounded():
    # 10.00 * 0.333 = 3.33000 exactly; 7.25 h * 133.33 = 966.6425, cents not yet decided.
    assert (M("10.00 USD") * D("0.333")).amount == D("3.33000")
    assert (D("7.25") * M("133.33 USD")).amount == D("966.6425")
    assert M("2.50 USD") * 3 == M("7.50 USD")


def test_multiplying_by_a_float_or_by_money_is_refused():
    with pytest.raises(TypeError, match="float"):
        M("10.00 USD") * 1.5
    with pytest.raises(TypeError, match="money times money"):
        M("10.00 USD") * M("2 USD")


def test_negative_zero_is_spelled_as_zero():
    assert str(M("0.00 USD") * -1) == "0.00 USD"


def test_arithmetic_that_would_round_silently_raises_instead():
    # 1E+40 + 1E-30 needs 71 significant digits; the exact context holds 60.
    with pytest.raises(Inexact):
        Money(D("1E+40"), "USD") + Money(D("1E-30"), "USD")


def test_comparisons_within_a_currency():
    assert M("1.00 USD") < M("1.01 USD") <= M("1.01 USD")
    assert M("-1 JPY") < Money.zero("JPY")
    with pytest.raises(TypeError, match="compare Money with Money"):
        M("1.00 USD") < 2


def test_sum_money_totals_and_names_the_currency_of_an_empty_sum():
    assert sum_money([M("0.10 USD"), M("0.20 USD"), M("-0.05 USD")], "USD") == M("0.25 USD")
    assert sum_money([], "KWD") == Money.zero("KWD")
    with pytest.raises(CurrencyMismatch):
        sum_money([M("1.00 USD"), M("1.00 GBP")], "USD")


# -- rounding ----------------------------------------------------------------

def test_minor_units_table():
    assert (minor_units("USD"), minor_units("JPY"), minor_units("KRW"), minor_units("BHD"), minor_units("KWD")) == (
        2, 0, 0, 3, 3,
    )


def test_round_money_half_up_is_symmetric_for_credit_notes():
    assert round_money(M("2.345 USD")) == M("2.35 USD")
    assert round_money(M("-2.345 USD")) == M("-2.35 USD")
    assert round_money(M("2.344 USD")) == M("2.34 USD")


def test_round_money_takes_an_explicit_rounding_mode():
    assert round_money(M("2.345 USD"), ROUND_HALF_EVEN) == M("2.34 USD")  # 4 is even
    assert round_money(M("2.349 USD"), ROUND_DOWN) == M("2.34 USD")
    with pytest.raises(ValueError, match="ROUND_HALF_UP"):
        round_money(M("2.345 USD"), "nearest")


def test_jpy_rounds_to_whole_yen():
    # 1234.5 yen, half up -> 1235; yen have no minor unit, so no decimal point.
    rounded = round_money(M("1234.5 JPY"))
    assert rounded == M("1235 JPY")
    assert str(rounded) == "1235 JPY"
    # 10.01 USD at 150.25 JPY = 1504.0025 JPY -> 1504
    assert str(round_money(Money(D("10.01") * D("150.25"), "JPY"))) == "1504 JPY"
    assert round_money(M("-0.5 JPY")) == M("-1 JPY")


def test_three_decimal_currencies_keep_fils():
    assert str(round_money(M("1.2345 KWD"))) == "1.235 KWD"
    assert str(round_money(M("7 BHD"))) == "7.000 BHD"


def test_unknown_currency_cannot_be_rounded_and_says_where_to_add_it():
    assert "XTS" not in MINOR_UNITS
    with pytest.raises(UnknownCurrency, match="MINOR_UNITS"):
        round_money(M("1.00 XTS"))


def test_prorate_rounds_the_exact_fraction_once():
    assert prorate(M("100.00 USD"), 1, 3) == M("33.33 USD")  # 33.333...
    assert prorate(M("200.00 USD"), 1, 3) == M("66.67 USD")  # 66.666...
    assert prorate(M("0.05 USD"), 1, 2) == M("0.03 USD")  # 0.025 exactly, half up
    assert prorate(M("0.05 USD"), 1, 2, ROUND_HALF_EVEN) == M("0.02 USD")
    assert prorate(M("-0.05 USD"), 1, 2) == M("-0.03 USD")
    assert prorate(M("1000 JPY"), Fraction(2, 3), 1) == M("667 JPY")  # 666.67
    with pytest.raises(ValueError, match="whole of zero"):
        prorate(M("1.00 USD"), 1, 0)


@given(
    units=st.integers(-10**9, 10**9),
    places=st.integers(0, 4),
    mode=st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, "ROUND_UP", "ROUND_FLOOR", "ROUND_CEILING",
                          "ROUND_HALF_DOWN", "ROUND_05UP"]),
)
def test_prorate_agrees_with_decimal_quantize_when_the_value_is_a_finite_decimal(units, places, mode):
    # m * 1 / 10**places is an exact decimal, so Decimal.quantize is the oracle.
    m = Money(D(units).scaleb(-2), "USD")
    exact = m.amount.scaleb(-places)
    assert prorate(m, 1, 10**places, mode).amount == exact.quantize(D("0.01"), rounding=mode)


# -- allocate ------------------------------------------------------------------

def test_allocate_three_equal_ways_gives_the_spare_cent_to_the_first():
    # 10000 cents / 3 = 3333 r 1; all remainders equal (1/3), lower index wins.
    assert allocate(M("100.00 USD"), [D(1), D(1), D(1)]) == [M("33.34 USD"), M("33.33 USD"), M("33.33 USD")]


def test_allocate_gives_the_spare_cent_to_the_largest_remainder_not_the_first():
    # 10000 * 1/3 = 3333.33.., 10000 * 2/3 = 6666.66..; floors leave 1 cent, remainder .67 > .33.
    assert allocate(M("100.00 USD"), [D(1), D(2)]) == [M("33.33 USD"), M("66.67 USD")]


def test_allocate_splits_a_credit_note_symmetrically():
    assert allocate(M("-100.00 USD"), [D(1), D(1), D(1)]) == [M("-33.34 USD"), M("-33.33 USD"), M("-33.33 USD")]


def test_allocate_zero_weights_get_exactly_zero():
    assert allocate(M("10.00 USD"), [D(0), D(1), D(0), D(1)]) == [M("0 USD"), M("5.00 USD"), M("0 USD"), M("5.00 USD")]
    # one cent, two equal claimants: tie goes to the lower index; the zero weight never gets it.
    assert allocate(M("0.01 USD"), [0, 1, 1]) == [M("0.00 USD"), M("0.01 USD"), M("0.00 USD")]


def test_allocate_in_yen_works_in_whole_yen():
    assert allocate(M("1000 JPY"), [1, 1, 1]) == [M("334 JPY"), M("333 JPY"), M("333 JPY")]


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        ([D(0), D(0)], ValueError, "all zero"),
        ([D(1), D(-1)], ValueError, "weight #1 is -1"),
        ([], ValueError, "non-empty"),
        ([0.5, 0.5], TypeError, "float"),
    ],
)
def test_allocate_rejects_bad_weights_clearly(weights, error, message):
    with pytest.raises(error, match=message):
        allocate(M("10.00 USD"), weights)


def test_allocate_needs_a_total_in_whole_minor_units():
    with pytest.raises(ValueError, match="round it first"):
        allocate(M("10.005 USD"), [1, 1])


_weights = st.lists(
    st.one_of(st.integers(0, 1000).map(Decimal), st.decimals(0, 10**6, places=3, allow_nan=False)),
    min_size=1, max_size=12,
).filter(lambda ws: any(w > 0 for w in ws))


@given(cents=st.integers(-10**12, 10**12), weights=_weights, currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_allocate_always_sums_exactly_and_each_part_is_within_one_minor_unit(cents, weights, currency):
    total = Money(D(cents).scaleb(-minor_units(currency)), currency)
    parts = allocate(total, weights)
    assert sum_money(parts, currency) == total
    unit = Fraction(1, 10 ** minor_units(currency))
    for part, weight in zip(parts, weights):
        exact_share = Fraction(total.amount) * Fraction(weight) / Fraction(sum(weights))
        assert abs(Fraction(part.amount) - exact_share) < unit
        if weight == 0:
            assert part.amount == 0
    assert allocate(-total, weights) == [-p for p in parts]


# -- FX ------------------------------------------------------------------------

EUR_USD = FxRates.of([
    ("EUR", "USD", date(2024, 2, 1), D("1.08")),  # given out of order on purpose
    ("EUR", "USD", date(2024, 1, 1), D("1.10")),
])


def test_fx_rate_is_the_latest_effective_on_or_before_the_date():
    assert EUR_USD.rate("EUR", "USD", date(2024, 1, 31)) == D("1.10")
    assert EUR_USD.rate("EUR", "USD", date(2024, 2, 1)) == D("1.08")  # effective that very day
    assert EUR_USD.rate("EUR", "USD", date(2025, 6, 30)) == D("1.08")


def test_fx_rate_before_the_first_quote_is_missing_and_names_pair_and_date():
    with pytest.raises(FxRateMissing, match=r"EUR->USD effective on or before 2023-12-31.*2024-01-01") as info:
        EUR_USD.rate("EUR", "USD", date(2023, 12, 31))
    assert (info.value.frm, info.value.to, info.value.on) == ("EUR", "USD", date(2023, 12, 31))


def test_fx_inverse_pair_is_one_over_the_rate_to_ten_places():
    # 1 / 1.10 = 0.90909090909..., ten places with the 11th digit 9 -> 0.9090909091
    assert EUR_USD.rate("USD", "EUR", date(2024, 1, 15)) == D("0.9090909091")
    # 1 / 1.08 = 0.9259259259|259..., the 11th digit is 2 -> rounds down to 0.9259259259
    assert EUR_USD.rate("USD", "EUR", date(2024, 2, 1)) == D("0.9259259259")


def test_fx_direct_pair_wins_over_an_older_inverse():
    rates = EUR_USD.with_rate("USD", "EUR", date(2024, 3, 1), D("0.92"))
    assert rates.rate("USD", "EUR", date(2024, 3, 1)) == D("0.92")
    with pytest.raises(FxRateMissing, match="earliest stored USD->EUR rate is effective 2024-03-01"):
        rates.rate("USD", "EUR", date(2024, 2, 15))


def test_fx_unknown_pair_is_missing():
    with pytest.raises(FxRateMissing, match="neither GBP->JPY nor JPY->GBP"):
        EUR_USD.rate("GBP", "JPY", date(2024, 1, 1))


def test_fx_convert_rounds_to_the_target_currency():
    assert EUR_USD.convert(M("100.00 EUR"), "USD", date(2024, 2, 10)) == M("108.00 USD")  # 100 * 1.08
    assert EUR_USD.convert(M("100.00 EUR"), "USD", date(2024, 1, 10)) == M("110.00 USD")  # 100 * 1.10
    # 100.00 USD * 0.9090909091 = 90.90909091 -> 90.91
    assert EUR_USD.convert(M("100.00 USD"), "EUR", date(2024, 1, 10)) == M("90.91 EUR")
    yen = FxRates.of([("USD", "JPY", date(2024, 1, 1), D("150.25"))])
    assert yen.convert(M("10.01 USD"), "JPY", date(2024, 1, 2)) == M("1504 JPY")  # 1504.0025
    assert yen.convert(M("10.01 USD"), "USD", date(2024, 1, 2)) == M("10.01 USD")


def test_fx_rates_are_validated_on_the_way_in():
    with pytest.raises(TypeError, match="float"):
        FxRates().with_rate("EUR", "USD", date(2024, 1, 1), 1.1)
    with pytest.raises(ValueError, match="positive"):
        FxRates().with_rate("EUR", "USD", date(2024, 1, 1), D("-1.1"))
    with pytest.raises(ValueError, match="one rate per pair per day"):
        EUR_USD.with_rate("EUR", "USD", date(2024, 1, 1), D("1.2"))
    with pytest.raises(ValueError, match="always 1"):
        FxRates().with_rate("EUR", "EUR", date(2024, 1, 1), D(1))
    with pytest.raises(TypeError, match="datetime.date"):
        EUR_USD.rate("EUR", "USD", datetime(2024, 1, 1, 12))


def test_fx_with_rate_leaves_the_original_untouched():
    EUR_USD.with_rate("EUR", "USD", date(2024, 3, 1), D("1.20"))
    assert EUR_USD.rate("EUR", "USD", date(2024, 3, 15)) == D("1.08")

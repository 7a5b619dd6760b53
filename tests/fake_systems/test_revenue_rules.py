"""Revenue rules: allocation, the four methods, the three modification treatments,
period close. Every expected figure is worked by hand in the comment beside it."""

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_systems.money import CurrencyMismatch, M, Money, sum_money
from fake_systems.revenue_rules import (
    INPUT, POINT_IN_TIME, RATABLE, T_AND_M, ApprovedTime, ContractModification, ContractState,
    NoOpenPeriod, PerformanceObligation, PeriodCalendar, ProgressReport, ScheduleLine,
    allocate_transaction_price, apply_period_close, cumulative_catch_up, input_method_schedule,
    next_period, period_end, period_of, point_in_time_schedule, prospective, ratable_schedule,
    receiving_period, separate_contract, time_and_materials_schedule, totals_by_obligation, unrecognised,
)

D = Decimal


def line(obligation_id, period, text, moved_from=None):
    return ScheduleLine(obligation_id, period, M(text), moved_from)


# -- periods -------------------------------------------------------------------

def test_periods_are_calendar_months():
    assert period_of(date(2024, 2, 29)) == "2024-02"
    assert next_period("2024-12") == "2025-01"
    assert period_end("2024-02") == date(2024, 2, 29)  # leap year
    assert period_end("2023-02") == date(2023, 2, 28)
    for bad in ("2024-13", "2024-1", "24-01", "2024/01"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            next_period(bad)


# -- records ---------------------------------------------------------------------

def test_obligation_records_refuse_bad_input_at_the_boundary():
    with pytest.raises(ValueError, match="needs start and end"):
        PerformanceObligation("support", M("1.00 USD"), RATABLE)
    with pytest.raises(ValueError, match="before it starts"):
        PerformanceObligation("support", M("1.00 USD"), RATABLE, date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(ValueError, match="must not be negative"):
        PerformanceObligation("impl", M("-1.00 USD"), POINT_IN_TIME)
    with pytest.raises(ValueError, match="method"):
        PerformanceObligation("impl", M("1.00 USD"), "when_paid")
    with pytest.raises(TypeError, match="must be Money"):
        PerformanceObligation("impl", D(1), POINT_IN_TIME)
    with pytest.raises(TypeError, match="float"):
        ApprovedTime(date(2024, 1, 2), 7.5, M("150.00 USD"))


# -- allocation ------------------------------------------------------------------

def _point(i, ssp):
    return PerformanceObligation(i, M(ssp), POINT_IN_TIME)


def test_allocation_of_100_over_three_equal_ssps_gives_the_spare_cent_to_the_first():
    # 100.00 / 3 = 33.333..; floors 33.33 x 3 = 99.99; the spare cent ties, lowest index wins.
    obligations = [_point("a", "500.00 USD"), _point("b", "500.00 USD"), _point("c", "500.00 USD")]
    assert allocate_transaction_price(M("100.00 USD"), obligations) == {
        "a": M("33.34 USD"), "b": M("33.33 USD"), "c": M("33.33 USD"),
    }


def test_allocation_is_by_relative_ssp_with_largest_remainder():
    # SSP 1,000 : 2,000; 1,000.00 * 1/3 = 333.333.., * 2/3 = 666.666..; the spare cent has remainder .67.
    obligations = [_point("design", "1000.00 USD"), _point("build", "2000.00 USD")]
    assert allocate_transaction_price(M("1000.00 USD"), obligations) == {
        "design": M("333.33 USD"), "build": M("666.67 USD"),
    }


def test_allocation_rejects_contracts_it_cannot_split():
    with pytest.raises(ValueError, match="zero standalone selling price"):
        allocate_transaction_price(M("10.00 USD"), [_point("a", "0 USD"), _point("b", "0 USD")])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        allocate_transaction_price(M("10.00 USD"), [_point("a", "1 USD"), _point("a", "2 USD")])
    with pytest.raises(CurrencyMismatch):
        allocate_transaction_price(M("10.00 USD"), [_point("a", "1 USD"), _point("b", "2 EUR")])


# -- ratable -------------------------------------------------------------------------

def test_ratable_by_day_across_a_month_boundary():
    # Jan 20..31 = 12 days, Feb 1..19 = 19 days, 31 in all.
    # 12,000.00 * 12/31 = 4,645.161.. and * 19/31 = 7,354.838..; floors 4,645.16 + 7,354.83 = 11,999.99;
    # the spare cent goes to February (remainder .838 beats .161), so not simply to the first month.
    schedule = ratable_schedule("support", M("12000.00 USD"), date(2024, 1, 20), date(2024, 2, 19))
    assert schedule == [line("support", "2024-01", "4645.16 USD"), line("support", "2024-02", "7354.84 USD")]


def test_ratable_single_day_and_bad_range():
    assert ratable_schedule("x", M("5.00 USD"), date(2024, 3, 31), date(2024, 3, 31)) == [line("x", "2024-03", "5.00 USD")]
    with pytest.raises(ValueError, match="before it starts"):
        ratable_schedule("x", M("5.00 USD"), date(2024, 3, 2), date(2024, 3, 1))


@given(
    start=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    days=st.integers(1, 1200),
    cents=st.integers(0, 10**11),
)
def test_ratable_schedules_always_sum_to_the_price_and_track_days(start, days, cents):
    end = start + timedelta(days=days - 1)
    price = Money(D(cents).scaleb(-2), "USD")
    schedule = ratable_schedule("o", price, start, end)
    assert sum_money((l.amount for l in schedule), "USD") == price
    periods = [l.period for l in schedule]
    assert periods == sorted(set(periods)) and periods[0] == period_of(start) and periods[-1] == period_of(end)
    for l in schedule:  # within one cent of the by-day share
        first = max(start, date.fromisoformat(l.period + "-01"))
        in_month = (min(end, period_end(l.period)) - first).days + 1
        assert abs(Fraction(l.amount.amount) - Fraction(price.amount) * in_month / days) < Fraction(1, 100)


# -- point in time, input, T&M -----------------------------------------------------

def test_point_in_time_milestone_lands_wholly_in_the_acceptance_period():
    assert point_in_time_schedule("go-live", M("25000.00 USD"), date(2024, 3, 31)) == [
        line("go-live", "2024-03", "25000.00 USD"),
    ]


def test_input_method_over_several_periods_caps_at_one_hundred_percent():
    reports = [
        ProgressReport("2024-01", D(100), D(300)),  # 1/3 of 10,000.00 = 3,333.333.. -> 3,333.33 to date
        ProgressReport("2024-02", D(200), D(300)),  # 2/3 -> 6,666.666.. -> 6,666.67; less 3,333.33 = 3,333.34
        ProgressReport("2024-03", D(320), D(300)),  # overrun, capped at 100% -> 10,000.00; less 6,666.67
    ]
    assert input_method_schedule("impl", M("10000.00 USD"), reports) == [
        line("impl", "2024-01", "3333.33 USD"),
        line("impl", "2024-02", "3333.34 USD"),
        line("impl", "2024-03", "3333.33 USD"),
    ]


def test_input_method_re_estimate_reverses_revenue_in_the_period_it_is_known():
    reports = [
        ProgressReport("2024-01", D(150), D(300)),  # 50% of 9,000.00 = 4,500.00
        ProgressReport("2024-02", D(160), D(400)),  # re-estimated: 40% = 3,600.00; 3,600 - 4,500 = -900.00
    ]
    assert input_method_schedule("impl", M("9000.00 USD"), reports) == [
        line("impl", "2024-01", "4500.00 USD"),
        line("impl", "2024-02", "-900.00 USD"),
    ]


def test_input_method_reports_must_move_forward_and_be_sane():
    with pytest.raises(ValueError, match="strictly increasing"):
        input_method_schedule("i", M("1.00 USD"), [ProgressReport("2024-02", 1, 2), ProgressReport("2024-02", 2, 2)])
    with pytest.raises(ValueError, match="estimate > 0"):
        ProgressReport("2024-02", 1, 0)


def test_time_and_materials_is_approved_hours_times_rate_per_work_period():
    rate = M("150.00 USD")
    entries = [
        ApprovedTime(date(2024, 1, 31), D(8), rate),  # 8 x 150.00 = 1,200.00 in January
        ApprovedTime(date(2024, 2, 1), D("7.5"), rate),  # 1,125.00
        ApprovedTime(date(2024, 2, 2), D("7.25"), M("133.33 USD")),  # 966.6425 -> 966.64 on its own line
        ApprovedTime(date(2024, 2, 5), D(-1), rate),  # recalled hour: -150.00
    ]
    # February: 1,125.00 + 966.64 - 150.00 = 1,941.64
    assert time_and_materials_schedule("tm", entries) == [
        line("tm", "2024-01", "1200.00 USD"),
        line("tm", "2024-02", "1941.64 USD"),
    ]
    assert time_and_materials_schedule("tm", []) == []


# -- contract modifications --------------------------------------------------------

IMPLEMENTATION = PerformanceObligation("impl", M("4000.00 USD"), POINT_IN_TIME)
SUPPORT = PerformanceObligation("support", M("8000.00 USD"), RATABLE, date(2024, 1, 1), date(2024, 12, 31))
TRAINING = PerformanceObligation("training", M("2000.00 USD"), POINT_IN_TIME)


def _contract_in_april():
    # 10,800.00 over SSP 4,000 : 8,000 -> 3,600.00 and 7,200.00. Implementation accepted (all 3,600.00
    # recognised), support recognised for Jan-Mar (1,800.00, a quarter of 7,200.00).
    start = ContractState.at_inception([IMPLEMENTATION, SUPPORT], M("10800.00 USD"))
    assert dict(start.allocation) == {"impl": M("3600.00 USD"), "support": M("7200.00 USD")}
    return ContractState(start.obligations, start.allocation, {"impl": M("3600.00 USD"), "support": M("1800.00 USD")})


def test_separate_contract_leaves_the_existing_contract_untouched():
    existing = _contract_in_april()
    change = ContractModification(date(2024, 4, 1), M("2000.00 USD"), (TRAINING,))
    result = separate_contract(existing, change)
    assert result.contract == existing
    assert result.adjustments == () and result.rescheduled == ()
    assert dict(result.new_contract.allocation) == {"training": M("2000.00 USD")}
    assert dict(result.new_contract.recognised) == {"training": M("0 USD")}
    with pytest.raises(ValueError, match="needs added obligations"):
        separate_contract(existing, ContractModification(date(2024, 4, 1), M("10.00 USD")))


def test_prospective_spreads_remaining_plus_added_consideration_over_remaining_obligations():
    # Add training (SSP 2,000) for 1,500.00 on 1 April.
    # Pool = unrecognised (0 + 5,400.00) + 1,500.00 = 6,900.00.
    # Weights: implementation is satisfied -> 0; support 8,000 x 5,400/7,200 = 6,000; training 2,000.
    # Support 6,900 x 6,000/8,000 = 5,175.00; training 6,900 x 2,000/8,000 = 1,725.00.
    result = prospective(_contract_in_april(), ContractModification(date(2024, 4, 1), M("1500.00 USD"), (TRAINING,)))
    assert dict(result.contract.allocation) == {
        "impl": M("3600.00 USD"),
        "support": M("6975.00 USD"),  # 1,800.00 recognised + 5,175.00
        "training": M("1725.00 USD"),
    }
    assert sum_money(result.contract.allocation.values(), "USD") == M("12300.00 USD")  # 10,800 + 1,500
    assert result.adjustments == ()  # nothing already recognised changes
    # Support's 5,175.00 re-spread over 1 Apr..31 Dec = 275 days, 18.8181.. per day:
    # 30-day months 564.5454.. (remainder .545), 31-day months 583.3636.. (remainder .364);
    # floors 4 x 564.54 + 5 x 583.36 = 5,174.96, so the four 30-day months take the four spare cents.
    thirty, thirty_one = "564.55 USD", "583.36 USD"
    assert list(result.rescheduled) == [
        line("support", f"2024-{m:02d}", thirty if m in (4, 6, 9, 11) else thirty_one) for m in range(4, 13)
    ]


def test_prospective_refuses_what_it_cannot_carry():
    existing = _contract_in_april()
    with pytest.raises(ValueError, match="exceeds the unrecognised consideration"):
        prospective(existing, ContractModification(date(2024, 4, 1), M("-6000.00 USD")))
    done = ContractState(existing.obligations, existing.allocation, existing.allocation)
    with pytest.raises(ValueError, match="no obligation remains unsatisfied"):
        prospective(done, ContractModification(date(2024, 4, 1), M("100.00 USD")))
    with pytest.raises(ValueError, match="reuse existing ids"):
        prospective(existing, ContractModification(date(2024, 4, 1), M("1.00 USD"), (IMPLEMENTATION,)))
    with pytest.raises(ValueError, match="contract currency USD"):
        prospective(existing, ContractModification(date(2024, 4, 1), M("1.00 EUR"), (TRAINING,)))


def test_cumulative_catch_up_re_measures_progress_against_the_new_price():
    # Implementation 100,000.00, 400 of 1,000 estimated hours done -> 40,000.00 recognised.
    # Change order +20,000.00 on 15 May widens scope; estimate becomes 1,100 hours -> progress 4/11.
    # 120,000.00 x 4/11 = 43,636.3636.. -> 43,636.36; catch-up 43,636.36 - 40,000.00 = 3,636.36 in May.
    impl = PerformanceObligation("impl", M("100000.00 USD"), INPUT)
    contract = ContractState([impl], {"impl": M("100000.00 USD")}, {"impl": M("40000.00 USD")})
    change = ContractModification(date(2024, 5, 15), M("20000.00 USD"), progress={"impl": Fraction(400, 1100)})
    result = cumulative_catch_up(contract, change)
    assert dict(result.contract.allocation) == {"impl": M("120000.00 USD")}
    assert result.adjustments == (line("impl", "2024-05", "3636.36 USD"),)
    assert dict(result.contract.recognised) == {"impl": M("43636.36 USD")}
    assert result.rescheduled == ()  # input method: future revenue follows future progress


def test_cumulative_catch_up_on_a_price_cut_keeps_implied_progress_and_reverses_revenue():
    # Price 10,800.00 -> 9,600.00: re-allocated 9,600 x 4/12 = 3,200.00 and x 8/12 = 6,400.00.
    # Implementation progress 3,600/3,600 = 1 -> 3,200.00, adjustment -400.00.
    # Support progress 1,800/7,200 = 1/4 -> 1,600.00, adjustment -200.00; 4,800.00 left for Apr-Dec.
    result = cumulative_catch_up(_contract_in_april(), ContractModification(date(2024, 4, 1), M("-1200.00 USD")))
    assert dict(result.contract.allocation) == {"impl": M("3200.00 USD"), "support": M("6400.00 USD")}
    assert result.adjustments == (line("impl", "2024-04", "-400.00 USD"), line("support", "2024-04", "-200.00 USD"))
    assert sum_money((l.amount for l in result.rescheduled), "USD") == M("4800.00 USD")
    assert [l.period for l in result.rescheduled] == [f"2024-{m:02d}" for m in range(4, 13)]
    assert unrecognised(result.contract) == {"impl": M("0.00 USD"), "support": M("4800.00 USD")}


def test_cumulative_catch_up_rejects_what_is_not_a_catch_up():
    existing = _contract_in_april()
    with pytest.raises(ValueError, match="new distinct goods"):
        cumulative_catch_up(existing, ContractModification(date(2024, 4, 1), M("1.00 USD"), (TRAINING,)))
    with pytest.raises(ValueError, match=r"not in the contract"):
        cumulative_catch_up(existing, ContractModification(date(2024, 4, 1), M("1.00 USD"), progress={"x": D("0.5")}))
    with pytest.raises(ValueError, match="between 0 and 1"):
        ContractModification(date(2024, 4, 1), M("1.00 USD"), progress={"impl": D("1.5")})


def test_contract_state_keeps_recognised_within_allocated():
    with pytest.raises(ValueError, match="must lie between 0 and allocated"):
        ContractState([IMPLEMENTATION], {"impl": M("10.00 USD")}, {"impl": M("10.01 USD")})
    with pytest.raises(ValueError, match="exactly the obligation ids"):
        ContractState([IMPLEMENTATION], {"impl": M("10.00 USD")}, {})


# -- period close ------------------------------------------------------------------

def test_period_close_moves_amounts_into_the_current_open_period():
    calendar = PeriodCalendar({"2024-01", "2024-02"})
    lines = [line("a", "2024-01", "100.00 USD"), line("a", "2024-03", "50.00 USD"), line("b", "2024-02", "20.00 USD")]
    assert apply_period_close(lines, calendar) == [
        line("a", "2024-03", "100.00 USD", moved_from="2024-01"),
        line("a", "2024-03", "50.00 USD"),
        line("b", "2024-03", "20.00 USD", moved_from="2024-02"),
    ]


def test_period_close_uses_the_earliest_open_period_on_or_after_the_line():
    calendar = PeriodCalendar({"2024-01", "2024-03"})  # February was reopened
    assert receiving_period(calendar, "2024-01") == "2024-02"
    assert receiving_period(calendar, "2024-03") == "2024-04"
    assert receiving_period(calendar, "2024-02") == "2024-02"


def test_period_close_with_nowhere_to_go_raises_and_says_which_period_to_open():
    calendar = PeriodCalendar({"2024-11", "2024-12"}, open_through="2024-12")
    with pytest.raises(NoOpenPeriod, match="open 2025-01"):
        apply_period_close([line("a", "2024-11", "1.00 USD")], calendar)
    # a line already in a later, not-yet-opened period is future revenue and stays put
    assert apply_period_close([line("a", "2025-02", "1.00 USD")], calendar) == [line("a", "2025-02", "1.00 USD")]


def test_a_catch_up_dated_in_a_closed_period_lands_in_the_open_one():
    result = cumulative_catch_up(_contract_in_april(), ContractModification(date(2024, 3, 20), M("-1200.00 USD")))
    moved = apply_period_close(result.adjustments, PeriodCalendar({"2024-01", "2024-02", "2024-03"}))
    assert [(l.period, l.moved_from) for l in moved] == [("2024-04", "2024-03"), ("2024-04", "2024-03")]
    assert totals_by_obligation(moved) == totals_by_obligation(result.adjustments)


@given(
    closed=st.sets(st.integers(0, 23).map(lambda n: f"{2024 + n // 12}-{n % 12 + 1:02d}")),
    cents=st.lists(st.tuples(st.integers(0, 23), st.integers(-10**6, 10**6)), max_size=20),
)
def test_period_close_never_recognises_into_a_closed_period_and_keeps_every_total(closed, cents):
    lines = [ScheduleLine("o", f"{2024 + n // 12}-{n % 12 + 1:02d}", Money(D(c).scaleb(-2), "USD")) for n, c in cents]
    moved = apply_period_close(lines, PeriodCalendar(closed))
    assert not any(l.period in closed for l in moved)
    assert all(m.period >= l.period and m.amount == l.amount for l, m in zip(lines, moved))
    assert len(moved) == len(lines)

"""Business dates from virtual time: instants, business days, zones, skew."""

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from simulator.calendar import DEFAULT_EPOCH, BusinessCalendar, load_zone

S = 1_000_000
MIN = 60 * S
H = 60 * MIN
DAY = 24 * H

# Fixed offsets written by hand for the dates used below (no DST ambiguity):
# New York is UTC-5 in winter and UTC-4 in summer; London UTC+0 / UTC+1.
NY_WINTER = timezone(timedelta(hours=-5))
NY_SUMMER = timezone(timedelta(hours=-4))
LONDON_WINTER = timezone(timedelta(0))
LONDON_SUMMER = timezone(timedelta(hours=1))

ZONES = {"crm": "America/New_York", "erp": "Europe/London"}


def us_between(a: datetime, b: datetime) -> int:
    """Microseconds from a to b, by timedelta arithmetic (not the calendar's)."""
    return (b - a) // timedelta(microseconds=1)


# ------------------------------------------------------------------ instants


def test_default_epoch_is_a_monday_morning_in_utc():
    assert DEFAULT_EPOCH == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert DEFAULT_EPOCH.weekday() == 0


def test_datetime_at_counts_microseconds_from_the_epoch():
    cal = BusinessCalendar()
    assert cal.datetime_at(0) == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert cal.datetime_at(90 * MIN + 7) == datetime(2026, 1, 5, 9, 30, 0, 7, tzinfo=UTC)
    assert cal.datetime_at(16 * H) == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    assert cal.datetime_at(-8 * H - 1) == datetime(2026, 1, 4, 23, 59, 59, 999_999, tzinfo=UTC)
    assert cal.date_at(16 * H - 1) == date(2026, 1, 5)
    assert cal.date_at(16 * H) == date(2026, 1, 6)


@pytest.mark.parametrize("t", [0, 1, -1, 999_999, 123_456_789_012, -40 * DAY - 3, 400 * DAY + 17])
def test_datetime_at_and_us_at_round_trip(t):
    cal = BusinessCalendar(zones=ZONES)
    assert cal.us_at(cal.datetime_at(t)) == t
    assert cal.us_at(cal.datetime_at(t, "crm")) == t
    assert cal.us_at(cal.datetime_at(t, "erp")) == t


def test_us_at_accepts_any_aware_datetime():
    cal = BusinessCalendar()
    # 03:00 in New York in January is 08:00 UTC: the epoch itself
    assert cal.us_at(datetime(2026, 1, 5, 3, 0, tzinfo=load_zone("America/New_York"))) == 0
    assert cal.us_at(datetime(2026, 1, 5, 3, 0, tzinfo=NY_WINTER)) == 0
    assert cal.us_at(datetime(2026, 1, 6, 8, 0, 0, 5, tzinfo=UTC)) == DAY + 5
    assert cal.us_at(datetime(2026, 1, 5, 7, 59, 59, tzinfo=UTC)) == -S


def test_us_at_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="no time zone"):
        BusinessCalendar().us_at(datetime(2026, 1, 5, 8, 0))


def test_epoch_must_be_aware_and_is_normalised_to_utc():
    with pytest.raises(ValueError, match="aware"):
        BusinessCalendar(datetime(2026, 1, 5))
    cal = BusinessCalendar(datetime(2026, 3, 2, 9, 0, tzinfo=LONDON_SUMMER))
    assert cal.datetime_at(0) == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert cal.datetime_at(0).utcoffset() == timedelta(0)


def test_us_at_date_is_local_time_in_the_systems_zone():
    cal = BusinessCalendar(zones=ZONES)
    # 09:00 in New York on 2026-01-06 is 14:00 UTC, 30 hours after the epoch
    assert cal.us_at_date(date(2026, 1, 6), time(9, 0), system="crm") == 30 * H
    assert cal.us_at_date(date(2026, 1, 6), time(9, 0)) == 25 * H
    assert cal.us_at_date(date(2026, 1, 5)) == -8 * H


# ------------------------------------------------------------------ business days

FRI = date(2026, 1, 9)
SAT = date(2026, 1, 10)
SUN = date(2026, 1, 11)
MON = date(2026, 1, 12)
MLK = date(2026, 1, 19)  # a Monday holiday


def test_the_dates_used_here_fall_on_the_days_they_are_named_for():
    assert [d.weekday() for d in (FRI, SAT, SUN, MON, MLK)] == [4, 5, 6, 0, 0]


def test_business_days_skip_weekends_and_holidays():
    cal = BusinessCalendar(holidays=[MLK])
    assert cal.is_business_day(FRI) and cal.is_business_day(MON)
    assert not cal.is_business_day(SAT) and not cal.is_business_day(SUN)
    assert not cal.is_business_day(MLK)
    assert BusinessCalendar().is_business_day(MLK)
    expected = [FRI] + [date(2026, 1, d) for d in (12, 13, 14, 15, 16, 20)]
    assert cal.business_days(FRI, date(2026, 1, 20)) == expected
    assert cal.business_days(SAT, SUN) == []
    assert cal.business_days(MON, MON) == [MON]
    assert cal.business_days(MON, FRI) == []


def test_add_business_days_forwards_over_a_weekend():
    cal = BusinessCalendar()
    assert cal.add_business_days(FRI, 1) == MON
    assert cal.add_business_days(FRI, 5) == date(2026, 1, 16)
    assert cal.add_business_days(SAT, 1) == MON
    assert cal.add_business_days(date(2026, 1, 7), 2) == FRI
    assert cal.add_business_days(date(2026, 1, 7), 3) == MON
    assert cal.add_business_days(FRI, 0) == FRI


def test_add_business_days_backwards_over_a_weekend():
    cal = BusinessCalendar()
    assert cal.add_business_days(MON, -1) == FRI
    assert cal.add_business_days(SUN, -1) == FRI
    assert cal.add_business_days(MON, -6) == date(2026, 1, 2)


def test_add_business_days_skips_holidays_both_ways():
    cal = BusinessCalendar(holidays=[MLK])
    assert cal.add_business_days(date(2026, 1, 16), 1) == date(2026, 1, 20)
    assert cal.add_business_days(date(2026, 1, 20), -1) == date(2026, 1, 16)


def test_add_business_days_agrees_with_counting_business_days():
    cal = BusinessCalendar(holidays=[MLK, date(2026, 2, 16)])
    start = date(2026, 1, 1)
    for n in range(1, 40):
        d = cal.add_business_days(start, n)
        assert cal.is_business_day(d)
        # exactly n business days in (start, d]
        assert len(cal.business_days(start + timedelta(days=1), d)) == n


def test_next_business_day():
    cal = BusinessCalendar(holidays=[MLK])
    assert cal.next_business_day(SAT) == MON
    assert cal.next_business_day(FRI) == FRI
    assert cal.next_business_day(date(2026, 1, 17)) == date(2026, 1, 20)


# ------------------------------------------------------------------ month ends


@pytest.mark.parametrize(
    ("d", "end"),
    [
        (date(2026, 1, 5), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2028, 2, 10), date(2028, 2, 29)),
        (date(2100, 2, 10), date(2100, 2, 28)),
        (date(2026, 4, 30), date(2026, 4, 30)),
        (date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_month_end(d, end):
    assert BusinessCalendar.month_end(d) == end


def test_last_business_day_of_a_month_ending_on_a_saturday():
    # 2026-01-31: 26 days after Monday the 5th, 26 = 3*7 + 5, so a Saturday
    assert date(2026, 1, 31).weekday() == 5
    cal = BusinessCalendar()
    assert cal.last_business_day_of_month(date(2026, 1, 12)) == date(2026, 1, 30)


def test_last_business_day_of_a_month_ending_on_a_sunday_with_a_friday_holiday():
    # 2026-05-31 is a Sunday
    assert date(2026, 5, 31).weekday() == 6
    assert BusinessCalendar().last_business_day_of_month(date(2026, 5, 1)) == date(2026, 5, 29)
    cal = BusinessCalendar(holidays=[date(2026, 5, 29)])
    assert cal.last_business_day_of_month(date(2026, 5, 1)) == date(2026, 5, 28)


def test_last_business_day_of_a_month_ending_on_a_weekday():
    # 2026-03-31 is a Tuesday
    assert date(2026, 3, 31).weekday() == 1
    assert BusinessCalendar().last_business_day_of_month(date(2026, 3, 3)) == date(2026, 3, 31)


# ------------------------------------------------------------------ zones and skew


def test_an_instant_that_is_still_the_31st_in_new_york_but_the_1st_in_london():
    cal = BusinessCalendar(zones=ZONES)
    instant = datetime(2026, 2, 1, 4, 0, tzinfo=UTC)  # 23:00 on the 31st in New York
    t = cal.us_at(instant)
    assert t == (26 * 24 + 20) * H  # Jan 5 08:00 -> Feb 1 04:00
    assert cal.date_at(t, "crm") == date(2026, 1, 31)
    assert cal.date_at(t, "erp") == date(2026, 2, 1)
    assert cal.period_at(t, "crm") == "2026-01"
    assert cal.period_at(t, "erp") == "2026-02"
    assert cal.period_at(t) == "2026-02"
    assert cal.period_at(t, "billing") == "2026-02"  # no zone given: UTC
    assert cal.datetime_at(t, "crm") == datetime(2026, 1, 31, 23, 0, tzinfo=NY_WINTER)
    assert cal.datetime_at(t, "erp").utcoffset() == timedelta(0)


def test_london_summer_time_moves_its_month_end():
    cal = BusinessCalendar(zones=ZONES)
    t = us_between(DEFAULT_EPOCH, datetime(2026, 6, 30, 23, 30, tzinfo=UTC))
    assert cal.period_at(t) == "2026-06"
    assert cal.period_at(t, "erp") == "2026-07"  # 00:30 BST on the 1st
    assert cal.datetime_at(t, "erp") == datetime(2026, 7, 1, 0, 30, tzinfo=LONDON_SUMMER)
    assert cal.datetime_at(t, "crm") == datetime(2026, 6, 30, 19, 30, tzinfo=NY_SUMMER)


def test_clock_skew_per_system():
    cal = BusinessCalendar(zones=ZONES, skews_us={"erp": 5 * MIN, "psa": -2 * H})
    assert cal.datetime_at(0, "erp") == datetime(2026, 1, 5, 8, 5, tzinfo=UTC)
    assert cal.datetime_at(0, "psa") == datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert cal.datetime_at(0, "crm") == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert cal.datetime_at(0) == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_clock_skew_can_put_a_system_in_the_next_period():
    cal = BusinessCalendar(skews_us={"fast": 5 * MIN, "slow": -5 * MIN})
    t = us_between(DEFAULT_EPOCH, datetime(2026, 1, 31, 23, 58, tzinfo=UTC))
    assert cal.period_at(t) == "2026-01"
    assert cal.period_at(t, "fast") == "2026-02"
    assert cal.period_at(t, "slow") == "2026-01"
    t2 = us_between(DEFAULT_EPOCH, datetime(2026, 2, 1, 0, 2, tzinfo=UTC))
    assert cal.period_at(t2) == "2026-02"
    assert cal.period_at(t2, "slow") == "2026-01"


# ------------------------------------------------------------------ next month start


def test_next_month_start_in_utc():
    cal = BusinessCalendar()
    expected = us_between(DEFAULT_EPOCH, datetime(2026, 2, 1, tzinfo=UTC))
    assert expected == (26 * 24 + 16) * H
    assert cal.next_month_start_us(0) == expected
    assert cal.next_month_start_us(expected - 1) == expected
    # at the first instant of February, the next start is March's
    assert cal.next_month_start_us(expected) == us_between(DEFAULT_EPOCH, datetime(2026, 3, 1, tzinfo=UTC))


def test_next_month_start_rolls_over_the_year():
    cal = BusinessCalendar()
    t = us_between(DEFAULT_EPOCH, datetime(2026, 12, 15, 12, 0, tzinfo=UTC))
    assert cal.next_month_start_us(t) == us_between(DEFAULT_EPOCH, datetime(2027, 1, 1, tzinfo=UTC))


def test_next_month_start_is_local_midnight_for_a_zoned_system():
    cal = BusinessCalendar(zones=ZONES)
    t = 10 * DAY
    # midnight of Feb 1 in New York is 05:00 UTC; in London, 00:00 UTC
    assert cal.next_month_start_us(t, "crm") == (26 * 24 + 21) * H
    assert cal.next_month_start_us(t, "erp") == (26 * 24 + 16) * H
    start = cal.next_month_start_us(t, "crm")
    assert cal.datetime_at(start, "crm") == datetime(2026, 2, 1, 0, 0, tzinfo=NY_WINTER)
    assert cal.period_at(start - 1, "crm") == "2026-01"
    assert cal.period_at(start, "crm") == "2026-02"


def test_next_month_start_in_summer_time():
    cal = BusinessCalendar(zones=ZONES)
    t = us_between(DEFAULT_EPOCH, datetime(2026, 6, 10, tzinfo=UTC))
    # July 1 00:00 BST is June 30 23:00 UTC; 00:00 EDT is 04:00 UTC
    assert cal.next_month_start_us(t, "erp") == us_between(DEFAULT_EPOCH, datetime(2026, 6, 30, 23, 0, tzinfo=UTC))
    assert cal.next_month_start_us(t, "crm") == us_between(DEFAULT_EPOCH, datetime(2026, 7, 1, 4, 0, tzinfo=UTC))


def test_next_month_start_for_a_skewed_zoned_system_is_when_its_clock_reads_midnight():
    cal = BusinessCalendar(zones=ZONES, skews_us={"crm": 10 * MIN})
    start = cal.next_month_start_us(10 * DAY, "crm")
    assert start == (26 * 24 + 21) * H - 10 * MIN
    assert cal.datetime_at(start, "crm") == datetime(2026, 2, 1, 0, 0, tzinfo=NY_WINTER)
    assert cal.period_at(start - 1, "crm") == "2026-01"


def test_next_month_start_when_skew_already_crossed_into_the_month():
    # the real instant is 23:55 UTC on Jan 31, but the skewed clock reads Feb 1
    cal = BusinessCalendar(skews_us={"erp": 10 * MIN})
    t = us_between(DEFAULT_EPOCH, datetime(2026, 1, 31, 23, 55, tzinfo=UTC))
    assert cal.period_at(t, "erp") == "2026-02"
    assert cal.next_month_start_us(t, "erp") == us_between(DEFAULT_EPOCH, datetime(2026, 3, 1, tzinfo=UTC)) - 10 * MIN


# ------------------------------------------------------------------ zones


def test_load_zone_reads_the_pinned_tz_database():
    assert load_zone("UTC") is UTC
    london = load_zone("Europe/London")
    assert datetime(2026, 7, 1, 12, tzinfo=london).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 1, 1, 12, tzinfo=london).utcoffset() == timedelta(0)
    assert datetime(2026, 1, 1, 12, tzinfo=load_zone("Asia/Kolkata")).utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Europe/Lndon", "europe/london", "Europe", "tzdata.zi"])
def test_load_zone_rejects_names_not_in_the_database(name):
    with pytest.raises(ValueError) as info:
        load_zone(name)
    message = str(info.value)
    assert repr(name) in message
    assert "America/New_York" in message


@pytest.mark.parametrize("name", ["", "../etc/passwd", "/etc/localtime", "Europe//London", "Europe/./London"])
def test_load_zone_rejects_names_that_are_not_iana_shaped(name):
    with pytest.raises(ValueError) as info:
        load_zone(name)
    message = str(info.value)
    assert repr(name) in message
    assert "IANA" in message


def test_calendar_with_a_bad_zone_name():
    with pytest.raises(ValueError, match="Nowhere/City"):
        BusinessCalendar(zones={"erp": "Nowhere/City"})


def test_load_zone_rejects_a_path_below_a_zone_file():
    with pytest.raises(ValueError, match="not in the tz database"):
        load_zone("Europe/London/Extra")

"""Virtual time as people read and write it."""

import pytest

from simulator import DAY, HOUR, MINUTE
from tui.virtual_time import RunClock, SeekError

CLOCK = RunClock({"epoch": "2026-01-01T00:00:00+00:00"})


def test_formats():
    t = 7 * DAY + 9 * HOUR + 30 * MINUTE + 12_345_000
    assert CLOCK.clock(t) == "Thu 08 Jan 2026 09:30:12"
    assert CLOCK.stamp(t) == "01-08 09:30:12.345"
    assert CLOCK.short(t) == "09:30:12.345"
    assert CLOCK.day(t) == 8
    assert CLOCK.span(2 * HOUR + 5 * MINUTE) == "2h05m"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-15", 14 * DAY),
        ("2026-01-15 14:00", 14 * DAY + 14 * HOUR),
        ("2026-01-15T14:00:30", 14 * DAY + 14 * HOUR + 30_000_000),
        ("+2h30m", HOUR + 2 * HOUR + 30 * MINUTE),
        ("-30m", HOUR - 30 * MINUTE),
        ("-3d", 0),
        ("day 12", 11 * DAY),
        ("Day 2 09:15", DAY + 9 * HOUR + 15 * MINUTE),
    ],
)
def test_moments(text, expected):
    assert CLOCK.parse(text, HOUR) == expected


@pytest.mark.parametrize("text", ["", "tomorrow", "2026-13-01", "+3 weeks", "day 0"])
def test_a_moment_that_is_not_one_says_what_is_accepted(text):
    with pytest.raises(SeekError, match="2026|day|duration|month|count"):
        CLOCK.parse(text, 0)

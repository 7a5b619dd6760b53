"""Business dates from virtual time.

Virtual time is microseconds since the world's epoch (an aware UTC
datetime). Each system may keep its own time zone -- a UK ERP closes its
books on London's month end, not UTC's -- and, under chaos, its own clock
skew. Time zones are read from the pinned `tzdata` package rather than the
machine's zoneinfo, so a business date never depends on the host.
"""

from __future__ import annotations

import calendar as _cal
import importlib.resources
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["BusinessCalendar", "load_zone", "DEFAULT_EPOCH"]

DEFAULT_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday morning


@lru_cache(maxsize=None)
def load_zone(name: str) -> tzinfo:
    """An IANA zone from the pinned tzdata package (never the host's copy)."""
    if name == "UTC":
        return UTC
    parts = name.split("/")
    if not all(p and p not in (".", "..") for p in parts):
        raise ValueError(f"time zone {name!r} is not an IANA name like 'Europe/London'")
    res = importlib.resources.files("tzdata").joinpath("zoneinfo", *parts)
    try:
        with res.open("rb") as fh:
            return ZoneInfo.from_file(fh, key=name)
    except (OSError, ValueError):
        raise ValueError(f"time zone {name!r} is not in the tz database; use an IANA name like 'America/New_York'") from None


def _period(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


class BusinessCalendar:
    """Maps virtual time to dates: business days, month ends, per-system zones."""

    def __init__(
        self,
        epoch: datetime = DEFAULT_EPOCH,
        *,
        zones: dict[str, str] | None = None,
        holidays: Iterable[date] = (),
        skews_us: dict[str, int] | None = None,
    ) -> None:
        if epoch.tzinfo is None:
            raise ValueError("the calendar's epoch must be an aware datetime (give tzinfo=UTC)")
        self.epoch = epoch.astimezone(UTC)
        self._zones = {name: load_zone(z) for name, z in sorted((zones or {}).items())}
        self.holidays = frozenset(holidays)
        self.skews_us = dict(skews_us or {})

    # ------------------------------------------------------------- instants

    def zone(self, system: str | None) -> tzinfo:
        return self._zones.get(system, UTC) if system else UTC

    def datetime_at(self, t_us: int, system: str | None = None) -> datetime:
        """The wall time `system` reads at virtual time `t_us` (skew included)."""
        if system:
            t_us += self.skews_us.get(system, 0)
        return (self.epoch + timedelta(microseconds=t_us)).astimezone(self.zone(system))

    def date_at(self, t_us: int, system: str | None = None) -> date:
        return self.datetime_at(t_us, system).date()

    def period_at(self, t_us: int, system: str | None = None) -> str:
        """The accounting period ("YYYY-MM") `system` is in at `t_us`."""
        return _period(self.date_at(t_us, system))

    def us_at(self, moment: datetime) -> int:
        """Virtual time of an aware datetime (may be negative before the epoch)."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} has no time zone; give an aware datetime")
        delta = moment - self.epoch
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def us_at_date(self, d: date, at: time = time(0), system: str | None = None) -> int:
        """Virtual time of local time `at` on date `d` in `system`'s zone."""
        return self.us_at(datetime.combine(d, at, tzinfo=self.zone(system)))

    # ------------------------------------------------------------- days

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self.holidays

    def add_business_days(self, d: date, n: int) -> date:
        """`n` business days after (or, negative, before) `d`."""
        step = 1 if n >= 0 else -1
        left = abs(n)
        while left:
            d += timedelta(days=step)
            if self.is_business_day(d):
                left -= 1
        return d

    def next_business_day(self, d: date) -> date:
        """`d` itself if it is a business day, else the next one."""
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d

    def business_days(self, start: date, end: date) -> list[date]:
        """Business days from `start` to `end`, both included."""
        out = []
        d = start
        while d <= end:
            if self.is_business_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    @staticmethod
    def month_end(d: date) -> date:
        return date(d.year, d.month, _cal.monthrange(d.year, d.month)[1])

    def last_business_day_of_month(self, d: date) -> date:
        end = self.month_end(d)
        while not self.is_business_day(end):
            end -= timedelta(days=1)
        return end

    def next_month_start_us(self, t_us: int, system: str | None = None) -> int:
        """Virtual time of the first instant of the month after the one
        `system` is in at `t_us`: when its books roll to a new period."""
        d = self.date_at(t_us, system)
        first = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return self.us_at_date(first, system=system) - (self.skews_us.get(system, 0) if system else 0)

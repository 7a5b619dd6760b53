"""Virtual time as a person reads it: the business date and time of a run.

A trace's header carries the world's epoch; virtual time is microseconds
since then. The UI shows UTC business dates (each system's own time zone is
its business, not the operator's) and accepts the ways people name a moment
when they want to go there: a date, a date and time, an offset from now, or
a day of the run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from simulator import BusinessCalendar, parse_duration
from simulator.calendar import DEFAULT_EPOCH

__all__ = ["RunClock", "SeekError"]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DAY = re.compile(r"^day\s+(\d+)(?:\s+(\d{1,2}):(\d{2}))?$")


class SeekError(ValueError):
    """A moment the UI cannot make sense of; the message says what it takes."""


class RunClock:
    """Formats and parses virtual time for one run."""

    def __init__(self, header: dict) -> None:
        epoch = header.get("epoch")
        try:
            start = datetime.fromisoformat(epoch) if isinstance(epoch, str) else DEFAULT_EPOCH
        except ValueError:
            start = DEFAULT_EPOCH
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.calendar = BusinessCalendar(start)

    def at(self, t_us: int) -> datetime:
        return self.calendar.datetime_at(t_us)

    def clock(self, t_us: int) -> str:
        """``Thu 08 Jan 2026 09:30:12`` -- the clock bar."""
        return self.at(t_us).strftime("%a %d %b %Y %H:%M:%S")

    def stamp(self, t_us: int) -> str:
        """``01-08 09:30:12.345`` -- a log line or a diagram row."""
        moment = self.at(t_us)
        return moment.strftime("%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d}"

    def short(self, t_us: int) -> str:
        """``09:30:12.345`` -- where the date is on screen already."""
        moment = self.at(t_us)
        return moment.strftime("%H:%M:%S") + f".{moment.microsecond // 1000:03d}"

    def day(self, t_us: int) -> int:
        """Day of the run, counting from 1."""
        return t_us // 86_400_000_000 + 1

    def parse(self, text: str, now_us: int) -> int:
        """A moment -> virtual microseconds.

        Accepts ``2026-01-15``, ``2026-01-15 14:00``, ``+3d``, ``+2h30m``,
        ``-6h`` (replays only go back), and ``day 12`` / ``day 12 09:00``.
        """
        s = text.strip()
        if not s:
            raise SeekError("give a moment: 2026-01-15 14:00, +2h30m, -1d or day 12")
        if s[0] in "+-":
            try:
                delta = parse_duration(s[1:])
            except ValueError as exc:
                raise SeekError(str(exc)) from None
            return max(0, now_us + (delta if s[0] == "+" else -delta))
        m = _DATE.match(s)
        if m:
            y, mo, d, hh, mm, ss = m.groups()
            try:
                moment = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=UTC)
            except ValueError as exc:
                raise SeekError(f"{s!r}: {exc}") from None
            return max(0, self.calendar.us_at(moment))
        m = _DAY.match(s.lower())
        if m:
            n, hh, mm = m.groups()
            if int(n) < 1:
                raise SeekError("days of the run count from 1")
            return (int(n) - 1) * 86_400_000_000 + int(hh or 0) * 3_600_000_000 + int(mm or 0) * 60_000_000
        raise SeekError(f"{s!r} is not a moment; write 2026-01-15 14:00, +2h30m, -1d or day 12")

    def span(self, us: int) -> str:
        """A duration for people: 3d 04:10, 2h05m, 40s."""
        td = timedelta(microseconds=us)
        if td.days:
            return f"{td.days}d {td.seconds // 3600:02d}:{td.seconds % 3600 // 60:02d}"
        if td.seconds >= 3600:
            return f"{td.seconds // 3600}h{td.seconds % 3600 // 60:02d}m"
        if td.seconds >= 60:
            return f"{td.seconds // 60}m{td.seconds % 60:02d}s"
        return f"{td.seconds}.{td.microseconds // 100_000}s"

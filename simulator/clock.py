"""Virtual time: integer microseconds, and the trio clock that follows them.

The kernel keeps time as an integer count of microseconds since the world's
epoch; the trace records exactly that integer. trio wants float seconds, so
`VirtualClock` reports ``now_us / 1e6`` and, when trio asks how long to sleep
until its next deadline, hands control to the kernel instead of sleeping
(see `Kernel._on_idle`). That single hook is what makes `trio.sleep`,
`trio.move_on_after` and every deadline in the core run on virtual time.
"""

from __future__ import annotations

import math
import re

import trio

__all__ = [
    "MICROSECOND",
    "MILLISECOND",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "VirtualClock",
    "parse_duration",
    "format_duration",
    "seconds_to_us",
]

MICROSECOND = 1
MILLISECOND = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {"us": MICROSECOND, "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}
_DURATION = re.compile(r"(\d+)(us|ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """``"2h30m"`` -> microseconds. Raises ValueError saying what is accepted."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; write it as a string like '250ms', '90s', '2h30m' or '3d'")
    s = text.strip()
    pos = 0
    total = 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit (us, ms, s, m, h, d), "
            f"for example '250ms', '90s', '2h30m' or '3d'"
        )
    return total


def format_duration(us: int) -> str:
    """Microseconds -> exact ``parse_duration`` text, largest unit first
    (90 s is "1m30s")."""
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us"):
        size = _UNITS[unit]
        if us >= size:
            n, us = divmod(us, size)
            parts.append(f"{n}{unit}")
    return sign + "".join(parts)


def seconds_to_us(seconds: float) -> int:
    """The first whole microsecond at or after a float time in seconds.

    trio deadlines are floats; rounding up (and correcting for the float
    product's own rounding) guarantees that ``us / 1e6 >= seconds``, so a
    deadline is really expired once the clock is moved to it.
    """
    us = math.ceil(seconds * 1_000_000)
    while us / 1_000_000 < seconds:
        us += 1
    while (us - 1) / 1_000_000 >= seconds:
        us -= 1
    return us


class VirtualClock(trio.abc.Clock):
    """trio's clock for one world; time moves only when the kernel moves it."""

    __slots__ = ("_kernel",)

    def __init__(self, kernel) -> None:
        self._kernel = kernel

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._kernel.now_us / 1_000_000

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # trio calls this exactly when no task is runnable: the moment a
        # discrete-event kernel would pop its next event.
        return self._kernel._on_idle(deadline)

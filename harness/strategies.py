"""Hypothesis strategies for fault schedules, for users' own property tests.

    from hypothesis import given
    from harness.strategies import chaos_profiles

    @given(profile=chaos_profiles(systems=["erp", "billing"]))
    def test_my_core_keeps_the_books(profile, syncbed):
        syncbed.check("quote-to-cash", seed=1, profile=profile)

Shrinking works as usual: Hypothesis simplifies a failing profile towards
fewer windows and lower rates.
"""

from __future__ import annotations

from hypothesis import strategies as st

from simulator import HOUR, MINUTE, SECOND
from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults, Window, ppm
from simulator.latency import LogNormal

__all__ = ["chaos_profiles", "rates"]

SYSTEMS = ["billing", "crm", "erp", "expenses", "hris", "psa", "revenue"]


def rates(max_ppm: int = 50_000) -> st.SearchStrategy:
    return st.integers(0, max_ppm).map(ppm)


@st.composite
def _window(draw, systems: list[str], horizon_us: int) -> Window:
    kind = draw(st.sampled_from(["partition", "outage", "hold", "slow"]))
    length = draw(st.integers(1, 180)) * MINUTE
    start = draw(st.integers(0, max(0, horizon_us - length) // MINUTE)) * MINUTE
    system = draw(st.sampled_from(systems))
    if kind == "partition":
        return Window(kind, start, start + length, between=("core", system))
    if kind == "hold":
        return Window(kind, start, start + length, between=(system, "core"))
    if kind == "slow":
        return Window(kind, start, start + length, target=system, delay=draw(st.integers(1, 120)) * SECOND)
    return Window(kind, start, start + length, target=system)


@st.composite
def chaos_profiles(draw, systems: list[str] | None = None, horizon_us: int = 31 * 24 * HOUR) -> ChaosProfile:
    """Profiles over `systems`: link rates, a few windows, vendor faults and
    maybe core crashes."""
    systems = sorted(systems or SYSTEMS)
    link = LinkRule(
        latency=LogNormal(draw(st.integers(5, 200)) * 1000, draw(st.integers(0, 1500)), 30 * SECOND),
        request_loss=draw(rates()),
        response_loss=draw(rates()),
        duplicate=draw(rates()),
        reorder=draw(rates()),
    )
    windows = tuple(draw(st.lists(_window(systems, horizon_us), max_size=4)))
    vendor = []
    for name in systems:
        faults = SystemFaults(
            error_5xx=draw(rates()),
            rate_limit=draw(st.none() | st.integers(2, 50)),
            webhook_duplicate=draw(rates(200_000)),
            webhook_reorder=draw(rates(200_000)),
            conflict=draw(rates()),
        )
        if faults != SystemFaults():
            vendor.append((name, faults))
    process = ProcessFaults()
    if draw(st.booleans()):
        process = ProcessFaults(actors=("core",), crash_every=draw(st.integers(1, 48)) * HOUR,
                                restart_after=draw(st.integers(1, 600)) * SECOND)
    return ChaosProfile("hypothesis", "drawn by Hypothesis", links=(link,), windows=windows,
                        systems=tuple(vendor), process=process)

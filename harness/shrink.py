"""Shrinking a failing run's fault schedule to the few faults that matter.

Greedy delta debugging (Zeller and Hildebrandt, 2002) over the chaos
profile: try the profile with one fault taken away -- a window, a rate, a
vendor fault, the random crashes -- and keep the removal whenever the run
still fails the *same* invariant; repeat until no single removal keeps it
failing. Because every fault kind on every link draws from its own random
stream, taking one fault away leaves the others' draws where they were, so
the failure usually survives the removals that do not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults

__all__ = ["shrink_profile", "smaller_profiles"]


def smaller_profiles(profile: ChaosProfile) -> Iterator[tuple[str, ChaosProfile]]:
    """Each profile with exactly one fault removed, and what was removed."""
    for i, w in enumerate(profile.windows):
        rest = profile.windows[:i] + profile.windows[i + 1 :]
        yield f"window {w.kind} {w.to_dict()}", attrs.evolve(profile, windows=rest)
    if profile.process.crash_every is not None:
        yield "random crashes", attrs.evolve(profile, process=ProcessFaults())
    for i, (name, sf) in enumerate(profile.systems):
        for key in sf.to_dict():
            if key in SystemFaults.SHAPING:
                continue
            smaller = attrs.evolve(sf, **{key: getattr(SystemFaults(), key)})
            systems = profile.systems[:i] + ((name, smaller),) + profile.systems[i + 1 :]
            yield f"{name}.{key}", attrs.evolve(profile, systems=systems)
    for i, rule in enumerate(profile.links):
        for key in LinkRule.RATES:
            if getattr(rule, key):
                links = profile.links[:i] + (attrs.evolve(rule, **{key: None}),) + profile.links[i + 1 :]
                yield f"links[{i}].{key}", attrs.evolve(profile, links=links)


def shrink_profile(
    profile: ChaosProfile,
    still_fails: Callable[[ChaosProfile], bool],
    *,
    max_runs: int = 200,
) -> tuple[ChaosProfile, list[str], int]:
    """The smallest profile found that `still_fails`, the removals made, and
    how many runs it took."""
    current = profile
    removed: list[str] = []
    runs = 0
    progress = True
    while progress and runs < max_runs:
        progress = False
        for what, candidate in smaller_profiles(current):
            if runs >= max_runs:
                break
            runs += 1
            if still_fails(candidate):
                current = candidate
                removed.append(what)
                progress = True
                break
    name = current.name if current.name.startswith("shrunk:") else f"shrunk:{current.name}"
    return attrs.evolve(current, name=name, description=f"shrunk from {profile.name} ({profile.size()} faults)"), removed, runs

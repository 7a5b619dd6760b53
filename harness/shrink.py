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

from collections.abc import Callable, Iterable, Iterator

import attrs

from simulator.faults import ChaosProfile, LinkRule, ProcessFaults, SystemFaults

__all__ = ["shrink_profile", "smaller_profiles", "faults_of", "describe_fault", "without_faults", "shrink_quickly"]


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


# ------------------------------------------------------------------ the quick path


def faults_of(profile: ChaosProfile) -> list[tuple]:
    """Each fault of `profile` (what `ChaosProfile.size` counts), named:
    ``("window", i)``, ``("process",)``, ``("system", name, key)``,
    ``("link", i, key)``."""
    found: list[tuple] = [("window", i) for i in range(len(profile.windows))]
    if profile.process.crash_every is not None:
        found.append(("process",))
    for name, sf in profile.systems:
        found += [("system", name, key) for key in sf.to_dict() if key not in SystemFaults.SHAPING]
    for i, rule in enumerate(profile.links):
        found += [("link", i, key) for key in LinkRule.RATES if getattr(rule, key)]
    return found


def describe_fault(profile: ChaosProfile, fault: tuple) -> str:
    """A fault as the shrinker's removals name it."""
    if fault[0] == "window":
        w = profile.windows[fault[1]]
        return f"window {w.kind} {w.to_dict()}"
    if fault[0] == "process":
        return "random crashes"
    if fault[0] == "system":
        return f"{fault[1]}.{fault[2]}"
    return f"links[{fault[1]}].{fault[2]}"


def without_faults(profile: ChaosProfile, faults: Iterable[tuple]) -> ChaosProfile:
    """`profile` with `faults` (as `faults_of` names them) taken away; link
    latency stays, and so do the settings that only shape a fault still
    there (a system or link rule left with nothing to do is dropped)."""
    gone = set(faults)
    windows = tuple(w for i, w in enumerate(profile.windows) if ("window", i) not in gone)
    process = ProcessFaults() if ("process",) in gone else profile.process
    systems = []
    for name, sf in profile.systems:
        left = attrs.evolve(sf, **{k: getattr(SystemFaults(), k) for k in sf.to_dict() if ("system", name, k) in gone})
        if any(k not in SystemFaults.SHAPING for k in left.to_dict()):  # else nothing is left for it to shape
            systems.append((name, left))
    links = []
    for i, rule in enumerate(profile.links):
        left = attrs.evolve(rule, **{k: None for k in LinkRule.RATES if ("link", i, k) in gone})
        if left.latency is not None or any(getattr(left, k) for k in LinkRule.RATES):
            links.append(left)
    return attrs.evolve(profile, windows=windows, process=process, systems=tuple(systems), links=tuple(links))


def shrink_quickly(
    profile: ChaosProfile,
    still_fails: Callable[[ChaosProfile], bool],
    *,
    max_runs: int = 200,
) -> tuple[ChaosProfile, list[str], int]:
    """`shrink_profile`, trying the likeliest small answers first: no fault
    at all, then each fault on its own (a bug usually needs one kind of
    weather, and a run costs seconds). Only if none of those fails the same
    way is the profile shrunk one removal at a time. Returns what
    `shrink_profile` returns."""
    faults = faults_of(profile)
    runs = 0

    def done(small: ChaosProfile, kept: list[tuple]) -> tuple[ChaosProfile, list[str], int]:
        removed = [describe_fault(profile, f) for f in faults if f not in kept]
        named = attrs.evolve(small, name=f"shrunk:{profile.name}",
                             description=f"shrunk from {profile.name} ({profile.size()} faults)")
        return named, removed, runs

    if not faults:
        return done(profile, [])
    candidates = [[]] + ([[f] for f in faults] if len(faults) > 1 else [])
    for kept in candidates:
        if runs >= max_runs:
            break
        runs += 1
        small = without_faults(profile, [f for f in faults if f not in kept])
        if still_fails(small):
            return done(small, kept)
    if len(faults) == 1:  # it fails with its one fault and not without: nothing to take away
        return done(profile, faults)
    small, removed, more = shrink_profile(profile, still_fails, max_runs=max(0, max_runs - runs))
    return small, removed, runs + more

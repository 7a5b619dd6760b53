"""What a scenario is, and how the harness finds one.

A scenario is a module (a built-in in `scenarios/`, or any ``.py`` file)
defining ``SCENARIO = Scenario(...)``::

    from harness.scenario_api import Scenario

    async def script(d):                     # d: harness.driver.Driver
        for deal in d.deals_closing(0):
            d.close_deal(deal)
        d.play_month(0)
        await d.to_month_end()

    def expectations(world):                 # optional, beyond the invariants
        return [check("every deal provisioned", ...)]

    SCENARIO = Scenario(
        name="my-scenario",
        summary="one line for `syncbed scenarios`",
        script=script,
        firm={"consultants": 40},
        default_chaos="default",
        expectations=expectations,
    )

The module docstring tells the scenario's story.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Scenario", "check", "find_scenario", "builtin_scenarios", "ScenarioError"]


class ScenarioError(Exception):
    """A scenario that cannot be loaded; the message names it and the fix."""


def check(name: str, violations: list[str]) -> dict:
    """An expectation's result in the report's invariant shape."""
    return {"name": name, "ok": not violations, "violations": list(violations)}


@attrs.frozen
class Scenario:
    name: str
    summary: str
    script: Callable[[Any], Awaitable[None]]
    firm: dict = attrs.field(factory=dict)  # FirmParams keyword arguments
    default_chaos: str = "default"
    expectations: Callable[[Any], list[dict]] | None = None
    horizon_days: int = 31  # where a swarm draw may place its fault windows
    zones: dict = attrs.field(factory=dict)  # system -> IANA time zone
    core_config: dict = attrs.field(factory=dict)
    story: str = ""


def builtin_scenarios() -> dict[str, Scenario]:
    """Every scenario in the `scenarios` package, by name."""
    import scenarios

    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(scenarios.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"scenarios.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = attrs.evolve(scenario, story=scenario.story or (module.__doc__ or "").strip())
    return found


def load_scenario_file(path: str) -> Scenario | Any:
    """A scenario file by path: a module defining SCENARIO (or, for the
    kernel's own demo protocol, build/script/check)."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError(f"scenario file {path}: no such file; check the path")
    spec = importlib.util.spec_from_file_location(f"syncbed_scenario_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ScenarioError(f"scenario file {path}: importing it raised {type(exc).__name__}: {exc}") from None
    scenario = getattr(module, "SCENARIO", None)
    if isinstance(scenario, Scenario):
        return attrs.evolve(scenario, story=scenario.story or (module.__doc__ or "").strip())
    if all(hasattr(module, n) for n in ("SCENARIO", "SYSTEMS", "CORE", "build", "script", "check", "counts")):
        return module  # a kernel-demo style world
    raise ScenarioError(
        f"scenario file {path}: defines no SCENARIO = Scenario(...); see 'Writing a scenario' in the README"
    )


def find_scenario(name: str) -> Scenario | Any:
    if name.endswith(".py"):
        return load_scenario_file(name)
    found = builtin_scenarios()
    if name in found:
        return found[name]
    raise ScenarioError(
        f"scenario {name!r}: no such scenario; available: {', '.join(sorted(found) + ['kernel-demo'])} "
        "(or give the path of a scenario .py file)"
    )

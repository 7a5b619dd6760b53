"""syncbed's pytest plugin: run scenarios against your core from pytest.

Installed with syncbed (entry point ``pytest11``). It adds

  * options ``--syncbed-seeds A..B`` (default 0..4), ``--syncbed-chaos``
    (default swarm) and ``--syncbed-core MODULE:FACTORY``;
  * a ``syncbed_seed`` fixture, parametrised over the seed range, so one
    test runs once per seed;
  * a ``syncbed`` fixture whose ``run(...)`` returns the report and whose
    ``check(...)`` fails the test with every violation and the command that
    reproduces it::

        def test_my_core(syncbed, syncbed_seed):
            syncbed.check("quote-to-cash", seed=syncbed_seed)

Fault schedules for Hypothesis: `harness.strategies.chaos_profiles`.
"""

from __future__ import annotations

import pytest

__all__ = ["SyncbedRunner"]


def pytest_addoption(parser) -> None:
    group = parser.getgroup("syncbed")
    group.addoption("--syncbed-seeds", default="0..4", metavar="A..B", help="seed range for syncbed_seed (both ends included)")
    group.addoption("--syncbed-chaos", default="swarm", metavar="PROFILE", help="chaos profile for syncbed runs")
    group.addoption("--syncbed-core", default=None, metavar="MODULE:FACTORY", help="the core under test")


def pytest_generate_tests(metafunc) -> None:
    if "syncbed_seed" in metafunc.fixturenames:
        from .sweep import parse_seed_range

        seeds = parse_seed_range(metafunc.config.getoption("--syncbed-seeds"))
        metafunc.parametrize("syncbed_seed", list(seeds), ids=[f"seed={s}" for s in seeds])


class SyncbedRunner:
    def __init__(self, chaos: str, core: str | None) -> None:
        self.chaos = chaos
        self.core = core

    def run(self, scenario: str, *, seed: int = 0, chaos: str | None = None, core: str | None = None, profile=None) -> dict:
        from .runner import run_world

        return run_world(scenario, seed, chaos or self.chaos, core=core or self.core, profile=profile)

    def check(self, scenario: str, **kw) -> dict:
        report = self.run(scenario, **kw)
        failed = [i for i in report["invariants"] if not i["ok"]]
        if failed:
            lines = [f"{scenario} seed {report['seed']}: {len(failed)} invariant(s) violated"]
            for inv in failed:
                lines.append(f"  {inv['name']}")
                lines.extend(f"    {v}" for v in inv["violations"][:10])
            lines.append(f"  reproduce: {report['reproduce']}")
            pytest.fail("\n".join(lines), pytrace=False)
        return report


@pytest.fixture(scope="session")
def syncbed(request) -> SyncbedRunner:
    # Session-wide: it holds only the options, so Hypothesis may reuse it
    # across generated examples.
    config = request.config
    return SyncbedRunner(config.getoption("--syncbed-chaos"), config.getoption("--syncbed-core"))

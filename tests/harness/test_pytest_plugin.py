"""The pytest plugin, as a user's CI would use it.

Each inner session runs in a subprocess: pytester's in-process runs unload
and re-import modules between sessions, and a package attribute left behind
(``harness.demo_world``) can then mix two copies of the simulator's classes
in one world.
"""

from pathlib import Path

pytest_plugins = ["pytester"]

KEYLESS = str(Path(__file__).resolve().parent / "keyless_scenario.py")


def test_syncbed_seed_parametrises_and_check_passes(pytester):
    pytester.makepyfile(
        """
        def test_demo(syncbed, syncbed_seed):
            report = syncbed.check("kernel-demo", seed=syncbed_seed)
            assert report["seed"] == syncbed_seed
        """
    )
    result = pytester.runpytest_subprocess("--syncbed-seeds", "0..2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_violation_fails_the_test_with_the_reproduce_command(pytester):
    pytester.makepyfile(
        f"""
        def test_keyless(syncbed):
            syncbed.check({KEYLESS!r}, seed=0, chaos="harsh")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*exactly-once-transfers*", "*reproduce: syncbed run*--chaos harsh*"])


def test_the_fault_schedule_strategy_draws_valid_profiles(pytester):
    pytester.makepyfile(
        """
        from hypothesis import given, settings
        from harness.strategies import chaos_profiles
        from simulator.faults import ChaosProfile

        @settings(max_examples=5, deadline=None)
        @given(profile=chaos_profiles(systems=["ledger"]))
        def test_profiles(profile, syncbed):
            assert ChaosProfile.from_dict(profile.to_dict()) == profile
            report = syncbed.run("kernel-demo", seed=1, profile=profile)
            assert report["chaos"] == "hypothesis"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

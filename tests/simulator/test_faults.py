"""Chaos profiles: loading, built-ins, swarm draws, merging and validation."""

import json
from decimal import Decimal

import pytest

from simulator.faults import (
    ChaosProfile,
    LinkFaults,
    LinkRule,
    ProcessFaults,
    ProfileError,
    SystemFaults,
    Window,
    builtin_profiles,
    load_profile,
    swarm_profile,
)
from simulator.latency import Fixed, LogNormal, Uniform

# Units written out by hand, so the expectations below do not lean on the
# constants of the module under test.
S = 1_000_000
MIN = 60 * S
H = 60 * MIN

MONTH_END_TOML = """\
name = "month-end"
description = "slow ERP, lossy network"

[[links]]
src = "*"
dst = "erp"
latency = {model = "lognormal", median = "120ms", sigma = 0.6, cap = "10s"}
request_loss = 0.01
response_loss = "1%"
duplicate = 0.005
duplicate_delay = "2s"
reorder = 0.02
reorder_delay = "3s"

[[windows]]
kind = "partition"
between = ["core", "erp"]
start = "2h"
end = "4h"

[[windows]]
kind = "slow"
target = "erp"
start = "1h30m"
end = "2h"
delay = "45s"

[systems.erp]
error_5xx = 0.01
rate_limit = 20
rate_limit_window = "1s"
clock_skew = "-250ms"

[systems.crm]
webhook_duplicate = "10%"

[process]
actors = ["core"]
crash_every = "6h"
restart_after = "30s"
"""

# The same profile as JSON data.
MONTH_END_DATA = {
    "name": "month-end",
    "description": "slow ERP, lossy network",
    "links": [
        {
            "src": "*",
            "dst": "erp",
            "latency": {"model": "lognormal", "median": "120ms", "sigma": 0.6, "cap": "10s"},
            "request_loss": 0.01,
            "response_loss": "1%",
            "duplicate": 0.005,
            "duplicate_delay": "2s",
            "reorder": 0.02,
            "reorder_delay": "3s",
        }
    ],
    "windows": [
        {"kind": "partition", "between": ["core", "erp"], "start": "2h", "end": "4h"},
        {"kind": "slow", "target": "erp", "start": "1h30m", "end": "2h", "delay": "45s"},
    ],
    "systems": {
        "erp": {"error_5xx": 0.01, "rate_limit": 20, "rate_limit_window": "1s", "clock_skew": "-250ms"},
        "crm": {"webhook_duplicate": "10%"},
    },
    "process": {"actors": ["core"], "crash_every": "6h", "restart_after": "30s"},
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def json_profile_error(tmp_path, data) -> str:
    """Load `data` as a JSON profile file; return the ProfileError message."""
    path = write(tmp_path, "profile.json", json.dumps(data))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message, message
    return message


# ------------------------------------------------------------------ loading


def test_toml_profile_loads_every_section(tmp_path):
    path = write(tmp_path, "month-end.toml", MONTH_END_TOML)
    p = load_profile(str(path))

    assert p.name == "month-end"
    assert p.description == "slow ERP, lossy network"

    (rule,) = p.links
    assert (rule.src, rule.dst) == ("*", "erp")
    assert rule.latency == LogNormal(median_us=120 * 1000, sigma_milli=600, cap_us=10 * S)
    # rates are exact decimals (no floats reach the trace)
    assert rule.request_loss == Decimal("0.01")
    assert rule.response_loss == Decimal("0.01")
    assert rule.duplicate == Decimal("0.005")
    assert rule.reorder == Decimal("0.02")
    assert rule.duplicate_delay == 2 * S
    assert rule.reorder_delay == 3 * S

    partition, slow = p.windows
    assert partition == Window("partition", 2 * H, 4 * H, between=("core", "erp"))
    assert slow == Window("slow", 90 * MIN, 2 * H, target="erp", delay=45 * S)

    erp = p.system("erp")
    assert (erp.error_5xx, erp.rate_limit, erp.rate_limit_window, erp.clock_skew) == (Decimal("0.01"), 20, S, -250_000)
    assert erp == SystemFaults(error_5xx=Decimal("0.01"), rate_limit=20, rate_limit_window=S, clock_skew=-250_000)
    assert p.system("crm") == SystemFaults(webhook_duplicate=Decimal("0.1"))
    assert p.system("billing") == SystemFaults()
    assert p.system("crm").rate("webhook_duplicate") == pytest.approx(0.10)
    # systems are kept sorted by name, whatever order the file uses
    assert [name for name, _ in p.systems] == ["crm", "erp"]

    assert p.process == ProcessFaults(actors=("core",), crash_every=6 * H, restart_after=30 * S)


def test_json_profile_equals_the_same_profile_in_toml(tmp_path):
    toml = load_profile(str(write(tmp_path, "p.toml", MONTH_END_TOML)))
    js = load_profile(str(write(tmp_path, "p.json", json.dumps(MONTH_END_DATA))))
    assert js == toml


def test_minimal_profile_gets_defaults(tmp_path):
    p = load_profile(str(write(tmp_path, "tiny.toml", 'name = "tiny"\n')))
    assert p == ChaosProfile("tiny")
    assert p.links == () and p.windows == () and p.systems == ()
    assert p.process == ProcessFaults(actors=(), crash_every=None, restart_after=30 * S)
    assert p.size() == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.02, "0.02"),
        ("2%", "0.02"),
        ("0.02", "0.02"),
        (" 2% ", "0.02"),
        ("12.5%", "0.125"),
        (0.000001, "0.000001"),
        (0, "0"),
        (1, "1"),
        ("100%", "1"),
    ],
)
def test_rate_forms(value, expected):
    p = ChaosProfile.from_dict({"name": "r", "links": [{"request_loss": value}]})
    assert p.links[0].request_loss == Decimal(expected)
    assert p.link_faults("a", "b").request_loss == float(expected)
    assert p.links[0].to_dict()["request_loss"] == expected


def test_rates_as_toml_ints_and_percent_strings(tmp_path):
    text = 'name = "r"\n[[links]]\nrequest_loss = 0\nresponse_loss = 1\nduplicate = "2%"\n'
    p = load_profile(str(write(tmp_path, "r.toml", text)))
    rule = p.links[0]
    assert (rule.request_loss, rule.response_loss, rule.duplicate) == (Decimal(0), Decimal(1), Decimal("0.02"))


# ------------------------------------------------------------------ built-ins


def test_builtin_names():
    builtins = builtin_profiles()
    assert set(builtins) == {"none", "calm", "default", "harsh"}
    for name, profile in builtins.items():
        assert profile.name == name
        assert profile.description
        assert load_profile(name) == profile


def test_builtin_none_is_fault_free():
    p = load_profile("none")
    assert p.size() == 0
    lf = p.link_faults("core", "erp")
    assert lf.latency == Fixed(0)
    assert (lf.request_loss, lf.response_loss, lf.duplicate, lf.reorder) == (0, 0, 0, 0)


def test_builtin_calm_has_latency_but_no_faults():
    p = load_profile("calm")
    assert p.size() == 0
    assert isinstance(p.link_faults("core", "erp").latency, LogNormal)


def test_builtin_default_and_harsh_are_lossy_and_harsh_is_worse():
    default = load_profile("default").link_faults("core", "erp")
    harsh = load_profile("harsh").link_faults("core", "erp")
    for key in ("request_loss", "response_loss", "duplicate", "reorder"):
        assert 0 < getattr(default, key) < getattr(harsh, key), key


@pytest.mark.parametrize("name", ["none", "calm", "default", "harsh"])
def test_builtins_round_trip(name):
    p = load_profile(name)
    assert ChaosProfile.from_dict(p.to_dict()) == p
    assert ChaosProfile.from_dict(json.loads(p.to_json())) == p


# ------------------------------------------------------------------ swarm

SYSTEMS = ["psa", "erp", "crm", "billing"]


def test_swarm_profile_is_deterministic_for_a_seed():
    a = swarm_profile(7, 12 * H, SYSTEMS)
    b = swarm_profile(7, 12 * H, list(SYSTEMS))
    assert a == b
    assert a.to_json() == b.to_json()
    assert a.name == "swarm:7"


def test_swarm_profile_does_not_depend_on_the_order_of_systems():
    assert swarm_profile(11, 12 * H, SYSTEMS) == swarm_profile(11, 12 * H, sorted(SYSTEMS, reverse=True))


def test_swarm_profile_differs_across_seeds():
    drawn = {swarm_profile(seed, 12 * H, SYSTEMS).to_json().replace(f"swarm:{seed}", "") for seed in range(30)}
    # Without the name, 30 seeds still give 30 different profiles.
    assert len(drawn) == 30


@pytest.mark.parametrize("horizon", [10 * MIN, 12 * H, 30 * 24 * H])
def test_swarm_profile_is_always_valid(horizon):
    for seed in range(150):
        p = swarm_profile(seed, horizon, SYSTEMS)
        assert ChaosProfile.from_dict(p.to_dict()) == p, seed
        assert ChaosProfile.from_dict(json.loads(p.to_json())) == p, seed
        for w in p.windows:
            assert 0 <= w.start < w.end, (seed, w)
            names = w.between if w.between else (w.target,)
            assert all(n in SYSTEMS or n == "core" for n in names), (seed, w)
        for name, _ in p.systems:
            assert name in SYSTEMS
        lf = p.link_faults("core", "erp")
        for key in ("request_loss", "response_loss", "duplicate", "reorder"):
            assert 0 <= getattr(lf, key) <= 1


def test_swarm_turns_fault_kinds_on_and_off_by_seed():
    profiles = [swarm_profile(seed, 12 * H, SYSTEMS) for seed in range(200)]
    for key in ("request_loss", "response_loss", "duplicate", "reorder"):
        on = sum(1 for p in profiles if getattr(p.links[0], key) is not None)
        assert 0 < on < len(profiles), key
    for kind in ("partition", "outage", "hold"):
        on = sum(1 for p in profiles if p.windows_of(kind))
        assert 0 < on < len(profiles), kind
    crashing = sum(1 for p in profiles if p.process.crash_every is not None)
    assert 0 < crashing < len(profiles)
    assert all(p.process.actors == ("core",) for p in profiles if p.process.crash_every is not None)


def test_swarm_without_systems_has_no_system_faults_or_windows():
    for seed in range(20):
        p = swarm_profile(seed, 12 * H, [])
        assert p.windows == () and p.systems == ()
        assert ChaosProfile.from_dict(p.to_dict()) == p


# ------------------------------------------------------------------ round trip


def rich_profile() -> ChaosProfile:
    return ChaosProfile(
        name="rich",
        description="one of everything",
        links=(
            LinkRule(latency=LogNormal(80_000, 750, 5 * S), request_loss=Decimal("0.01"), response_loss=Decimal("0.000001")),
            LinkRule(src="core", dst="erp*", latency=Uniform(1_000, 9_000), duplicate=Decimal("0.999999"), duplicate_delay=1500 * 1000),
            LinkRule(src="crm", dst="core", latency=Fixed(250), reorder=Decimal(1), reorder_delay=7 * S),
            LinkRule(src="psa", dst="*", request_loss=Decimal(0)),
        ),
        windows=(
            Window("partition", 0, 1, between=("core", "erp")),
            Window("hold", 5 * MIN, 2 * H + 1, between=("crm", "core")),
            Window("outage", 3 * H, 4 * H, target="erp"),
            Window("slow", 1 * H, 25 * H, target="billing", delay=45 * S),
            Window("crash", 6 * H, 6 * H + 30 * S, target="core"),
        ),
        systems=(
            ("billing", SystemFaults(slow=Decimal("0.05"), slow_delay=90 * S, feed_retention=3 * 24 * H)),
            (
                "crm",
                SystemFaults(
                    webhook_duplicate=Decimal("0.1"),
                    webhook_reorder=Decimal("0.2"),
                    webhook_delay=60 * S,
                    schema_drift_at=7 * H,
                    clock_skew=-(1 * S + 500_000),
                ),
            ),
            (
                "erp",
                SystemFaults(
                    error_5xx=Decimal("0.01"),
                    rate_limit=20,
                    rate_limit_window=10 * S,
                    concurrency_limit=3,
                    conflict=Decimal("0.000003"),
                    clock_skew=5 * MIN,
                ),
            ),
        ),
        process=ProcessFaults(actors=("core", "erp"), crash_every=6 * H, restart_after=1),
    )


def test_rich_profile_round_trips_through_dict_and_json():
    p = rich_profile()
    assert ChaosProfile.from_dict(p.to_dict()) == p
    assert ChaosProfile.from_dict(json.loads(p.to_json())) == p


def test_rich_profile_round_trips_through_a_json_file(tmp_path):
    p = rich_profile()
    path = write(tmp_path, "rich.json", p.to_json())
    assert load_profile(str(path)) == p


def test_to_dict_writes_rates_and_durations_as_text():
    d = rich_profile().to_dict()
    assert d["links"][0]["request_loss"] == "0.01"
    assert d["links"][0]["response_loss"] == "0.000001"
    assert d["links"][1]["duplicate_delay"] == "1s500ms"
    assert d["links"][2]["reorder"] == "1"
    assert d["systems"]["crm"]["clock_skew"] == "-1s500ms"
    assert d["systems"]["erp"]["clock_skew"] == "5m"
    assert (d["systems"]["erp"]["rate_limit"], d["systems"]["erp"]["concurrency_limit"]) == (20, 3)
    # default settings are left out of a system's table
    assert "slow" not in d["systems"]["erp"]
    assert d["windows"][2] == {"kind": "outage", "start": "3h", "end": "4h", "target": "erp"}


def test_to_json_is_canonical_text():
    text = rich_profile().to_json()
    assert text.endswith("\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    # rates are exact decimal strings, never floats in exponent form like 1e-06
    assert "e-" not in text.lower()
    assert '"response_loss": "0.000001"' in text


# ------------------------------------------------------------------ merging


def merging_profile() -> ChaosProfile:
    return ChaosProfile.from_dict(
        {
            "name": "merge",
            "links": [
                {"latency": {"model": "fixed", "delay": "1ms"}, "request_loss": 0.01, "duplicate": 0.02},
                {"src": "core", "dst": "erp*", "request_loss": 0.05, "reorder": "10%", "reorder_delay": "9s"},
                {"dst": "erp-uk", "request_loss": 0, "latency": {"model": "fixed", "delay": "5ms"}},
            ],
        }
    )


def test_link_faults_later_rules_win_key_by_key():
    p = merging_profile()
    assert p.link_faults("core", "erp-us") == LinkFaults(
        latency=Fixed(1_000), request_loss=0.05, duplicate=0.02, reorder=0.10, reorder_delay=9 * S
    )
    # the third rule turns loss off (0 is a setting, not "unset") and overrides latency
    assert p.link_faults("core", "erp-uk") == LinkFaults(
        latency=Fixed(5_000), request_loss=0.0, duplicate=0.02, reorder=0.10, reorder_delay=9 * S
    )


def test_link_faults_globs_match_per_direction():
    p = merging_profile()
    # erp -> core matches only the catch-all rule
    assert p.link_faults("erp-us", "core") == LinkFaults(latency=Fixed(1_000), request_loss=0.01, duplicate=0.02)
    # crm -> erp-uk: catch-all and the erp-uk rule, not the core-only rule
    assert p.link_faults("crm", "erp-uk") == LinkFaults(latency=Fixed(5_000), request_loss=0.0, duplicate=0.02)
    # "erp*" needs the prefix, and matching is case-sensitive
    assert p.link_faults("core", "ERP-us").reorder == 0.0
    assert p.link_faults("core", "my-erp").reorder == 0.0


def test_link_faults_with_no_matching_rule_are_the_defaults():
    p = ChaosProfile.from_dict({"name": "x", "links": [{"src": "a", "dst": "b", "request_loss": 1}]})
    lf = p.link_faults("b", "a")
    assert lf == LinkFaults()
    assert lf.latency == Fixed(0)
    assert (lf.duplicate_delay, lf.reorder_delay) == (1 * S, 2 * S)
    assert p.link_faults("a", "b").request_loss == 1.0


def test_link_rule_glob_character_class():
    rule = LinkRule(src="core", dst="erp-[ab]")
    assert rule.matches("core", "erp-a") and rule.matches("core", "erp-b")
    assert not rule.matches("core", "erp-c")
    assert not rule.matches("core2", "erp-a")


# ------------------------------------------------------------------ windows, size


def test_window_active_boundaries():
    w = Window("outage", 10 * S, 20 * S, target="erp")
    assert not w.active(10 * S - 1)
    assert w.active(10 * S)
    assert w.active(20 * S - 1)
    assert not w.active(20 * S)
    assert not w.active(-1)


def test_windows_of_filters_by_kind_in_order():
    p = rich_profile()
    assert [w.kind for w in p.windows_of("partition")] == ["partition"]
    assert p.windows_of("crash") == (Window("crash", 6 * H, 6 * H + 30 * S, target="core"),)
    assert ChaosProfile("x").windows_of("outage") == ()


def test_size_counts_fault_settings_that_are_on():
    p = ChaosProfile.from_dict(
        {
            "name": "sized",
            "links": [
                # request_loss on (1); duplicate explicitly 0 is off; latency is not a fault setting
                {"latency": {"model": "fixed", "delay": "5ms"}, "request_loss": 0.01, "duplicate": 0},
                {"src": "core", "response_loss": "1%"},  # (1)
            ],
            "windows": [  # (2)
                {"kind": "outage", "target": "erp", "start": "1h", "end": "2h"},
                {"kind": "crash", "target": "core", "start": "3h", "end": "4h"},
            ],
            "systems": {
                "erp": {"error_5xx": 0.01, "rate_limit": 5},  # (2)
                "crm": {"clock_skew": "-2s"},  # (1)
            },
            "process": {"actors": ["core"], "crash_every": "6h"},  # (1)
        }
    )
    assert p.size() == 2 + 1 + 1 + 2 + 1 + 1


def test_size_ignores_a_process_section_without_crashes():
    assert ChaosProfile("x", process=ProcessFaults(actors=("core",))).size() == 0


# ------------------------------------------------------------------ validation

BAD_RATE_HINT = "0 to 1"


@pytest.mark.parametrize(
    ("data", "path", "hints"),
    [
        # unknown keys, at every level
        ({"name": "x", "nmae": "y"}, "nmae", ["unknown key", "allowed keys", "name", "links", "windows"]),
        ({"name": "x", "links": [{"request_los": 0.1}]}, "links[0]", ["request_los", "allowed keys", "request_loss"]),
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "start": "1h", "end": "2h", "until": "3h"}]},
            "windows[0]",
            ["until", "allowed keys", "kind", "start", "end"],
        ),
        ({"name": "x", "systems": {"erp": {"error_500": 0.1}}}, "systems.erp", ["error_500", "allowed keys", "error_5xx"]),
        ({"name": "x", "process": {"crash_evry": "1h"}}, "process", ["crash_evry", "allowed keys", "crash_every"]),
        # bad rates
        ({"name": "x", "links": [{"request_loss": 1.5}]}, "links[0].request_loss", ["1.5", "0.02", "'2%'"]),
        ({"name": "x", "links": [{"request_loss": "abc"}]}, "links[0].request_loss", ["'abc'", BAD_RATE_HINT, "'2%'"]),
        ({"name": "x", "links": [{"request_loss": True}]}, "links[0].request_loss", ["True", BAD_RATE_HINT]),
        ({"name": "x", "links": [{"duplicate": -0.1}]}, "links[0].duplicate", ["-0.1", "0..1"]),
        ({"name": "x", "links": [{"reorder": 2}]}, "links[0].reorder", ["0..1"]),
        ({"name": "x", "links": [{"reorder": [0.1]}]}, "links[0].reorder", [BAD_RATE_HINT]),
        ({"name": "x", "systems": {"erp": {"error_5xx": "150%"}}}, "systems.erp.error_5xx", ["150%", "0..1"]),
        ({"name": "x", "links": [{}, {"response_loss": "2 %%"}]}, "links[1].response_loss", [BAD_RATE_HINT]),
        # bad durations
        ({"name": "x", "links": [{"duplicate_delay": "5 minutes"}]}, "links[0].duplicate_delay", ["'5 minutes'", "'250ms'"]),
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "start": "5 minutes", "end": "2h"}]},
            "windows[0].start",
            ["'5 minutes'", "us, ms, s, m, h, d"],
        ),
        ({"name": "x", "systems": {"erp": {"slow_delay": 30}}}, "systems.erp.slow_delay", ["30", "'90s'"]),
        ({"name": "x", "process": {"crash_every": "6 hours"}}, "process.crash_every", ["'6 hours'", "'2h30m'"]),
        ({"name": "x", "process": {"crash_every": "0s"}}, "process.crash_every", ["longer than 0s"]),
        ({"name": "x", "process": {"actors": "core"}}, "process.actors", ["list of actor names"]),
        ({"name": "x", "systems": {"erp": {"rate_limit": 0}}}, "systems.erp.rate_limit", ["whole number >= 1"]),
        ({"name": "x", "systems": {"erp": {"rate_limit": True}}}, "systems.erp.rate_limit", ["whole number >= 1"]),
        ({"name": "x", "systems": {"erp": {"rate_limit": "20"}}}, "systems.erp.rate_limit", ["whole number >= 1"]),
        ({"name": "x", "systems": {"erp": {"concurrency_limit": 0}}}, "systems.erp.concurrency_limit", ["whole number >= 1"]),
        # windows
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "start": "4h", "end": "2h"}]},
            "windows[0]",
            ["end (2h) must come after start (4h)"],
        ),
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "start": "2h", "end": "2h"}]},
            "windows[0]",
            ["must come after start"],
        ),
        (
            {"name": "x", "windows": [{"kind": "flood", "target": "erp", "start": "1h", "end": "2h"}]},
            "windows[0].kind",
            ["'flood'", "partition, hold, outage, slow, crash"],
        ),
        (
            {"name": "x", "windows": [{"target": "erp", "start": "1h", "end": "2h"}]},
            "windows[0].kind",
            ["partition, hold, outage, slow, crash"],
        ),
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "start": "1h"}]},
            "windows[0]",
            ["needs 'end'"],
        ),
        (
            {"name": "x", "windows": [{"kind": "partition", "start": "1h", "end": "2h"}]},
            "windows[0].between",
            ['between = ["a", "b"]', "two actor names"],
        ),
        (
            {"name": "x", "windows": [{"kind": "hold", "between": ["core"], "start": "1h", "end": "2h"}]},
            "windows[0].between",
            ["two actor names"],
        ),
        (
            {"name": "x", "windows": [{"kind": "slow", "target": "erp", "start": "1h", "end": "2h"}]},
            "windows[0]",
            ["slow window needs 'delay'"],
        ),
        (
            {"name": "x", "windows": [{"kind": "outage", "start": "1h", "end": "2h"}]},
            "windows[0].target",
            ["not a name"],
        ),
        (
            {"name": "x", "windows": [{"kind": "partition", "between": ["a", "b"], "target": "erp", "start": "1h", "end": "2h"}]},
            "windows[0].target",
            ["does not take 'target'"],
        ),
        (
            {"name": "x", "windows": [{"kind": "outage", "target": "erp", "delay": "5s", "start": "1h", "end": "2h"}]},
            "windows[0].delay",
            ["does not take 'delay'"],
        ),
        # latency
        (
            {"name": "x", "links": [{"latency": {"model": "gamma", "median": "1ms"}}]},
            "links[0].latency.model",
            ["'gamma'", "fixed, uniform or lognormal"],
        ),
        (
            {"name": "x", "links": [{"latency": {"model": "lognormal", "median": "80ms"}}]},
            "links[0].latency",
            ["cap, median, sigma", "missing cap, sigma"],
        ),
        (
            {"name": "x", "links": [{"latency": {"model": "fixed", "delay": "1ms", "jitter": "1ms"}}]},
            "links[0].latency",
            ["unknown jitter"],
        ),
        ({"name": "x", "links": [{"latency": "80ms"}]}, "links[0].latency", ["'model'", "fixed | uniform | lognormal"]),
        (
            {"name": "x", "links": [{"latency": {"model": "fixed", "delay": "soon"}}]},
            "links[0].latency.delay",
            ["'soon'", "'250ms'"],
        ),
        # the profile itself
        ({"description": "no name"}, "profile.json", ["needs name = "]),
        ({"name": ""}, "profile.json", ["needs name = "]),
        ({"name": "x", "links": {"src": "a"}}, "links", ["array of tables", "[[links]]"]),
        ({"name": "x", "systems": ["erp"]}, "systems", ["[systems.erp]"]),
        ({"name": "x", "systems": {"erp": 5}}, "systems.erp", ["expected a table"]),
        (["not", "a", "table"], "profile.json", ["expected a table"]),
    ],
)
def test_profile_errors_name_the_key_and_what_is_allowed(tmp_path, data, path, hints):
    message = json_profile_error(tmp_path, data)
    assert path in message, message
    for hint in hints:
        assert hint in message, (hint, message)


def test_error_from_dict_uses_the_given_source():
    with pytest.raises(ProfileError, match=r"^mine\.links\[2\]\.reorder: "):
        ChaosProfile.from_dict({"name": "x", "links": [{}, {}, {"reorder": "often"}]}, source="mine")


def test_malformed_toml(tmp_path):
    path = write(tmp_path, "broken.toml", 'name = "x"\n[[links]\nrequest_loss = 0.1\n')
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message and "not valid TOML" in message


def test_malformed_json(tmp_path):
    path = write(tmp_path, "broken.json", '{"name": "x",}')
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message


def test_toml_error_names_the_key_path(tmp_path):
    text = 'name = "x"\n[[links]]\nsrc = "core"\n[[links]]\nrequest_loss = "lots"\n'
    path = write(tmp_path, "p.toml", text)
    with pytest.raises(ProfileError, match=r"links\[1\]\.request_loss: 'lots' is not a probability"):
        load_profile(str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message and "no such file" in message


def test_profile_path_that_is_a_directory(tmp_path):
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(str(path))


@pytest.mark.parametrize("spec", ["chaotic", "Default", "profile.yaml", ""])
def test_unknown_builtin_name(spec):
    with pytest.raises(ProfileError) as info:
        load_profile(spec)
    message = str(info.value)
    assert repr(spec) in message
    for name in ("calm", "default", "harsh", "none"):
        assert name in message
    assert ".toml" in message and ".json" in message


@pytest.mark.parametrize("literal", ["nan", '"nan"'])
def test_nan_rate_is_a_profile_error(tmp_path, literal):
    path = write(tmp_path, "nan.toml", f'name = "x"\n[[links]]\nrequest_loss = {literal}\n')
    with pytest.raises(ProfileError, match=r"links\[0\]\.request_loss"):
        load_profile(str(path))


def test_infinite_sigma_is_a_profile_error(tmp_path):
    text = 'name = "x"\n[[links]]\nlatency = {model = "lognormal", median = "80ms", sigma = inf, cap = "5s"}\n'
    path = write(tmp_path, "inf.toml", text)
    with pytest.raises(ProfileError, match=r"links\[0\]\.latency\.sigma"):
        load_profile(str(path))


def test_rates_given_in_code_are_validated_too():
    assert LinkRule(request_loss="2%").request_loss == Decimal("0.02")
    assert SystemFaults(error_5xx=0.5).error_5xx == Decimal("0.5")
    with pytest.raises(ProfileError, match="outside 0..1"):
        LinkRule(request_loss=1.5)
    with pytest.raises(ProfileError, match="not a probability"):
        SystemFaults(conflict="often")

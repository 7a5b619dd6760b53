"""Named random streams, seeded Faker, and the duration helpers of the clock."""

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulator.clock import format_duration, parse_duration, seconds_to_us
from simulator.random_streams import RandomStreams, derive_seed


def take(rng: random.Random, n: int = 20) -> list[float]:
    return [rng.random() for _ in range(n)]


def independent_seed(master: int, name: str) -> int:
    """The documented recipe: SHA-256 of "syncbed:{master}:{name}", first 8 bytes big-endian."""
    digest = hashlib.sha256(f"syncbed:{master}:{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


# ------------------------------------------------------------------ streams


def test_a_streams_draws_depend_only_on_seed_and_name():
    alone = take(RandomStreams(7).rng("erp.latency"))

    busy = RandomStreams(7)
    take(busy.rng("crm.latency"), 500)
    busy.rng("zzz")
    busy.rng("aaa").getrandbits(4096)
    busy.faker("people").name()
    assert take(busy.rng("erp.latency")) == alone


def test_drawing_from_one_stream_does_not_move_another():
    s = RandomStreams(3)
    a, b = s.rng("a"), s.rng("b")
    first_a = a.random()
    take(b, 100)
    second_a = a.random()
    ref = random.Random(independent_seed(3, "a"))
    assert [first_a, second_a] == [ref.random(), ref.random()]


def test_rng_returns_the_same_generator_each_time():
    s = RandomStreams(1)
    assert s.rng("x") is s.rng("x")
    assert s.rng("x") is not s.rng("y")


def test_different_names_and_seeds_give_different_draws():
    base = take(RandomStreams(7).rng("erp.latency"))
    assert take(RandomStreams(7).rng("erp.latency2")) != base
    assert take(RandomStreams(7).rng("crm.latency")) != base
    assert take(RandomStreams(8).rng("erp.latency")) != base
    assert take(RandomStreams(-7).rng("erp.latency")) != base
    seeds = {derive_seed(seed, name) for seed in range(50) for name in ("a", "b", "c", "a.b", "")}
    assert len(seeds) == 250


@pytest.mark.parametrize(("master", "name"), [(0, ""), (7, "erp.latency"), (-3, "x"), (2**70, "caf\u00e9"), (42, "a:b")])
def test_derived_seed_matches_an_independent_sha256(master, name):
    expected = independent_seed(master, name)
    assert derive_seed(master, name) == expected
    assert 0 <= expected < 2**64
    assert take(RandomStreams(master).rng(name)) == take(random.Random(expected))


def test_derived_seed_literal():
    # Digests worked out with a different tool: `printf 'syncbed:7:erp.latency' | sha256sum`
    # (coreutils); the seed is its first 8 bytes, big-endian.
    assert derive_seed(0, "") == 0xFFC5F42238EA565E
    assert derive_seed(7, "erp.latency") == 0x11DD4EF8E828F2F1


@pytest.mark.parametrize("seed", ["7", 7.0, True, None])
def test_master_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match="master seed must be an int"):
        RandomStreams(seed)


PROBE = textwrap.dedent(
    """
    import json
    from simulator.random_streams import RandomStreams
    s = RandomStreams(1234)
    out = {name: [s.rng(name).random() for _ in range(5)] for name in ("erp.latency", "net", "crm")}
    out["set-iteration"] = [s.rng(n).randint(0, 10**9) for n in sorted({"b", "a", "c"})]
    out["faker"] = [s.faker("people").name() for _ in range(3)]
    print(json.dumps(out, sort_keys=True))
    """
)


def run_probe(hashseed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout


def test_same_draws_in_processes_with_different_hash_seeds():
    # Sanity: the hash seed really differs between the two processes.
    def str_hash(hashseed: str) -> str:
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        return subprocess.run(
            [sys.executable, "-c", "print(hash('syncbed'))"], env=env, capture_output=True, text=True, check=True
        ).stdout

    assert str_hash("0") != str_hash("12345")

    a = run_probe("0")
    b = run_probe("12345")
    assert a and a == b
    # and the same as in this process
    s = RandomStreams(1234)
    got = json.loads(a)
    assert got["erp.latency"] == [s.rng("erp.latency").random() for _ in range(5)]
    assert got["faker"] == [s.faker("people").name() for _ in range(3)]


# ------------------------------------------------------------------ faker


def test_seeded_faker_is_reproducible():
    a = RandomStreams(99).faker("people")
    b = RandomStreams(99).faker("people")
    assert [a.name() for _ in range(10)] == [b.name() for _ in range(10)]
    assert [a.company() for _ in range(5)] == [b.company() for _ in range(5)]


def test_faker_does_not_depend_on_other_streams():
    a = RandomStreams(5)
    expected = [a.faker("firms").company() for _ in range(5)]
    b = RandomStreams(5)
    take(b.rng("firms"), 50)  # a stream of the same name is a different generator
    b.faker("people").name()
    assert [b.faker("firms").company() for _ in range(5)] == expected


def test_faker_differs_across_names_and_seeds():
    def names(seed: int, stream: str) -> list[str]:
        fk = RandomStreams(seed).faker(stream)
        return [fk.name() for _ in range(10)]

    base = names(1, "people")
    assert names(1, "firms") != base
    assert names(2, "people") != base


def test_faker_is_cached_per_name_and_locale():
    s = RandomStreams(1)
    assert s.faker("p") is s.faker("p")
    assert s.faker("p") is not s.faker("p", "de_DE")
    de_1 = RandomStreams(1).faker("p", "de_DE")
    de_2 = RandomStreams(1).faker("p", "de_DE")
    assert [de_1.name() for _ in range(3)] == [de_2.name() for _ in range(3)]


# ------------------------------------------------------------------ durations

S = 1_000_000


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("1us", 1),
        ("250ms", 250_000),
        ("90s", 90 * S),
        ("5m", 300 * S),
        ("2h30m", 9_000 * S),
        ("3d", 3 * 86_400 * S),
        ("1d2h3m4s5ms6us", 86_400 * S + 7_200 * S + 180 * S + 4 * S + 5_000 + 6),
        ("0s", 0),
        ("  45s ", 45 * S),
        ("1m1m", 120 * S),
    ],
)
def test_parse_duration(text, us):
    assert parse_duration(text) == us


@pytest.mark.parametrize("text", ["5 minutes", "", "   ", "5", "s", "-5s", "1.5s", "5S", "5sec", "2h 30m", "1h-", "ms5"])
def test_parse_duration_errors_say_what_is_accepted(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message
    assert "us, ms, s, m, h, d" in message
    assert "'250ms'" in message


@pytest.mark.parametrize("value", [5, 1.5, None, b"5s"])
def test_parse_duration_wants_a_string(value):
    with pytest.raises(ValueError, match="write it as a string like '250ms'"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"),
        (1, "1us"),
        (250_000, "250ms"),
        (2 * 3_600 * S, "2h"),
        (3 * 86_400 * S + 1, "3d1us"),
        (-5 * S, "-5s"),
    ],
)
def test_format_duration(us, text):
    assert format_duration(us) == text


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=10**16))
@example(0)
@example(1)
@example(86_400 * S - 1)
def test_format_then_parse_round_trips(us):
    text = format_duration(us)
    assert parse_duration(text) == us
    # units appear at most once each, largest first
    assert text == "0s" or all(text.count(u) <= 1 for u in ("d", "h"))


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(["us", "ms", "s", "m", "h", "d"])), min_size=1, max_size=6))
def test_parse_then_format_is_stable(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    us = parse_duration(text)
    expected = sum(n * {"us": 1, "ms": 1_000, "s": S, "m": 60 * S, "h": 3_600 * S, "d": 86_400 * S}[u] for n, u in parts)
    assert us == expected
    assert parse_duration(format_duration(us)) == us


# ------------------------------------------------------------------ seconds_to_us


@settings(deadline=None, max_examples=500)
@given(st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False))
@example(0.0)
@example(5e-324)
@example(1e-6)
@example(0.1)
@example(0.3)
@example(1.000001)
@example(3600.25)
@example(1e7)
def test_seconds_to_us_is_the_first_microsecond_at_or_after(seconds):
    us = seconds_to_us(seconds)
    assert isinstance(us, int)
    assert us / 1_000_000 >= seconds
    assert (us - 1) / 1_000_000 < seconds


def test_seconds_to_us_on_exact_values():
    assert seconds_to_us(0.0) == 0
    assert seconds_to_us(1.0) == 1_000_000
    assert seconds_to_us(3600.25) == 3_600_250_000
    assert seconds_to_us(1e-9) == 1

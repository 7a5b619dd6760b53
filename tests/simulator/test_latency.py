"""Latency models: the distributions they draw, and their profile syntax."""

import math
import random
import statistics

import pytest

from simulator.latency import Fixed, LogNormal, Uniform, latency_from_dict

N = 10_000
SEED = 20260105


def draws(model, seed=SEED, n=N) -> list[int]:
    rng = random.Random(seed)
    return [model.sample(rng) for _ in range(n)]


def quantile(sorted_values: list[int], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))]


# ------------------------------------------------------------------ Fixed


def test_fixed_is_exact():
    assert set(draws(Fixed(2_500))) == {2_500}
    assert set(draws(Fixed(0), n=100)) == {0}


def test_fixed_refuses_a_negative_delay():
    with pytest.raises(ValueError):
        Fixed(-1)


# ------------------------------------------------------------------ Uniform


def test_uniform_median_and_bounds():
    low, high = 10_000, 30_000
    values = draws(Uniform(low, high))
    assert min(values) >= low and max(values) <= high
    assert all(isinstance(v, int) for v in values)
    mid = (low + high) / 2
    assert abs(statistics.median(values) - mid) <= 0.02 * mid
    # a uniform's mean is its midpoint too
    assert abs(statistics.fmean(values) - mid) <= 0.02 * mid


def test_uniform_bounds_are_inclusive():
    assert set(draws(Uniform(10, 20))) == set(range(10, 21))
    assert set(draws(Uniform(7, 7), n=50)) == {7}


def test_uniform_refuses_high_below_low():
    with pytest.raises(ValueError, match="below low"):
        Uniform(5_000, 4_999)


# ------------------------------------------------------------------ LogNormal


def test_lognormal_median_is_the_configured_median():
    median = 80_000
    values = draws(LogNormal(median, 500, 60_000_000))
    assert abs(statistics.median(values) - median) <= 0.03 * median


@pytest.mark.parametrize("sigma_milli", [100, 500, 1_000])
def test_lognormal_median_holds_for_any_sigma(sigma_milli):
    median = 120_000
    values = draws(LogNormal(median, sigma_milli, 10**12), seed=sigma_milli)
    assert abs(statistics.median(values) - median) <= 0.03 * median


def test_lognormal_is_never_above_its_cap():
    cap = 100_000
    values = draws(LogNormal(80_000, 800, cap))
    assert max(values) == cap  # a tight cap is reached...
    assert all(v <= cap for v in values)  # ...and never passed
    # P(X > cap) = P(Z > ln(100/80) / 0.8) = P(Z > 0.279) ~ 39%
    share_at_cap = values.count(cap) / N
    assert 0.34 < share_at_cap < 0.44


def test_lognormal_spread_grows_with_sigma():
    ratios = []
    for sigma_milli in (200, 500, 1_000):
        values = sorted(draws(LogNormal(50_000, sigma_milli, 10**12)))
        ratios.append(quantile(values, 0.9) / quantile(values, 0.1))
    assert ratios[0] < ratios[1] < ratios[2]


def test_lognormal_spread_matches_its_sigma():
    # For exp(N(mu, s)), p90 / p10 = exp(2 * 1.2816 * s).
    sigma = 0.5
    values = sorted(draws(LogNormal(50_000, 500, 10**12)))
    ratio = quantile(values, 0.9) / quantile(values, 0.1)
    assert ratio == pytest.approx(math.exp(2 * 1.2816 * sigma), rel=0.10)


def test_lognormal_with_zero_sigma_is_its_median():
    assert set(draws(LogNormal(42_000, 0, 42_000), n=200)) == {42_000}


def test_lognormal_validates_its_fields():
    with pytest.raises(ValueError):
        LogNormal(0, 500, 1_000)
    with pytest.raises(ValueError):
        LogNormal(1_000, -1, 10_000)
    with pytest.raises(ValueError, match="below the median"):
        LogNormal(1_000, 500, 999)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("model", [Uniform(0, 1_000_000), LogNormal(80_000, 700, 5_000_000)])
def test_same_seed_same_draws(model):
    assert draws(model, seed=7, n=1_000) == draws(model, seed=7, n=1_000)
    assert draws(model, seed=7, n=1_000) != draws(model, seed=8, n=1_000)


# ------------------------------------------------------------------ from dict


@pytest.mark.parametrize(
    ("spec", "model"),
    [
        ({"model": "fixed", "delay": "2ms"}, Fixed(2_000)),
        ({"model": "uniform", "low": "1ms", "high": "1s"}, Uniform(1_000, 1_000_000)),
        ({"model": "lognormal", "median": "80ms", "sigma": 0.5, "cap": "5s"}, LogNormal(80_000, 500, 5_000_000)),
        ({"model": "lognormal", "median": "80ms", "sigma": "1.25", "cap": "1m"}, LogNormal(80_000, 1_250, 60_000_000)),
        ({"model": "lognormal", "median": "80ms", "sigma": 1, "cap": "80ms"}, LogNormal(80_000, 1_000, 80_000)),
    ],
)
def test_latency_from_dict(spec, model):
    assert latency_from_dict(spec, "x") == model
    assert latency_from_dict(model.to_dict(), "x") == model


@pytest.mark.parametrize(
    ("spec", "path", "hints"),
    [
        ("80ms", "links[0].latency", ["'model'", "fixed | uniform | lognormal"]),
        ({"median": "80ms"}, "links[0].latency", ["'model'"]),
        ({"model": "gamma"}, "links[0].latency.model", ["'gamma'", "fixed, uniform or lognormal"]),
        ({"model": "fixed"}, "links[0].latency", ["takes delay", "missing delay"]),
        ({"model": "uniform", "low": "1ms"}, "links[0].latency", ["high, low", "missing high"]),
        (
            {"model": "lognormal", "median": "1ms", "sigma": 1, "cap": "2s", "mean": "1ms"},
            "links[0].latency",
            ["unknown mean"],
        ),
        ({"model": "fixed", "delay": "2 ms"}, "links[0].latency.delay", ["'2 ms'", "us, ms, s, m, h, d"]),
        ({"model": "fixed", "delay": 5}, "links[0].latency.delay", ["'250ms'"]),
        ({"model": "uniform", "low": "2s", "high": "1s"}, "links[0].latency", ["below low"]),
        ({"model": "lognormal", "median": "80ms", "sigma": "wide", "cap": "5s"}, "links[0].latency.sigma", ["'wide'", "e.g. 0.5"]),
        ({"model": "lognormal", "median": "80ms", "sigma": True, "cap": "5s"}, "links[0].latency.sigma", ["not a number"]),
        ({"model": "lognormal", "median": "80ms", "sigma": [1], "cap": "5s"}, "links[0].latency.sigma", ["not a number"]),
        ({"model": "lognormal", "median": "80ms", "sigma": 6, "cap": "5s"}, "links[0].latency.sigma", ["outside 0..5"]),
        ({"model": "lognormal", "median": "80ms", "sigma": -1, "cap": "5s"}, "links[0].latency.sigma", ["outside 0..5"]),
        ({"model": "lognormal", "median": "80ms", "sigma": 0.5, "cap": "5ms"}, "links[0].latency", ["below the median"]),
        ({"model": "lognormal", "median": "0s", "sigma": 0.5, "cap": "5ms"}, "links[0].latency", ["median"]),
        ({"model": "lognormal", "median": "80", "sigma": 0.5, "cap": "5s"}, "links[0].latency.median", ["'80'"]),
    ],
)
def test_latency_from_dict_errors_name_the_key(spec, path, hints):
    with pytest.raises(ValueError) as info:
        latency_from_dict(spec, "links[0].latency")
    message = str(info.value)
    assert message.startswith(path + ":") or message.startswith(path + " "), message
    for hint in hints:
        assert hint in message, (hint, message)


@pytest.mark.parametrize("sigma", ["inf", float("inf"), "1e400"])
def test_infinite_sigma_is_a_value_error_naming_sigma(sigma):
    with pytest.raises(ValueError, match=r"^x\.sigma: "):
        latency_from_dict({"model": "lognormal", "median": "80ms", "sigma": sigma, "cap": "5s"}, "x")


@pytest.mark.parametrize("sigma", ["nan", float("nan")])
def test_nan_sigma_is_a_value_error_naming_sigma(sigma):
    with pytest.raises(ValueError, match=r"^x\.sigma: .*not a number"):
        latency_from_dict({"model": "lognormal", "median": "80ms", "sigma": sigma, "cap": "5s"}, "x")

"""Latency models for one direction of a link, sampled in whole microseconds.

Real vendor APIs have a long right tail: most calls come back near the median
and a few take many times longer. `LogNormal` (median, sigma, cap) is the
usual fit; `Fixed` and `Uniform` exist for tests and for modelling a LAN.
"""

from __future__ import annotations

import math
import random

import attrs

from .clock import format_duration, parse_duration

__all__ = ["LatencyModel", "Fixed", "Uniform", "LogNormal", "latency_from_dict"]


@attrs.frozen
class Fixed:
    us: int = attrs.field(validator=attrs.validators.ge(0))

    def sample(self, rng: random.Random) -> int:
        return self.us

    def to_dict(self) -> dict:
        return {"model": "fixed", "delay": format_duration(self.us)}


@attrs.frozen
class Uniform:
    low_us: int = attrs.field(validator=attrs.validators.ge(0))
    high_us: int = attrs.field()

    @high_us.validator
    def _check(self, _attr, value):
        if value < self.low_us:
            raise ValueError(f"uniform latency: high ({value}us) is below low ({self.low_us}us)")

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.low_us, self.high_us)

    def to_dict(self) -> dict:
        return {"model": "uniform", "low": format_duration(self.low_us), "high": format_duration(self.high_us)}


@attrs.frozen
class LogNormal:
    """exp(N(ln median, sigma)), capped: the median is exact by construction."""

    median_us: int = attrs.field(validator=attrs.validators.gt(0))
    sigma_milli: int = attrs.field(validator=attrs.validators.ge(0))  # sigma x 1000, kept integral for canonical output
    cap_us: int = attrs.field()

    @cap_us.validator
    def _check(self, _attr, value):
        if value < self.median_us:
            raise ValueError(f"lognormal latency: cap ({value}us) is below the median ({self.median_us}us)")

    def sample(self, rng: random.Random) -> int:
        # gauss() rather than lognormvariate(): same distribution, and it
        # reuses the second Box-Muller value, halving the draws.
        us = int(self.median_us * math.exp(self.sigma_milli / 1000 * rng.gauss(0.0, 1.0)))
        return us if us < self.cap_us else self.cap_us

    def to_dict(self) -> dict:
        return {
            "model": "lognormal",
            "median": format_duration(self.median_us),
            "sigma": f"{self.sigma_milli / 1000:g}",
            "cap": format_duration(self.cap_us),
        }


LatencyModel = Fixed | Uniform | LogNormal

_KEYS = {"fixed": {"delay"}, "uniform": {"low", "high"}, "lognormal": {"median", "sigma", "cap"}}


def latency_from_dict(spec: object, where: str) -> LatencyModel:
    """Build a model from profile data; `where` names the key for errors."""
    if not isinstance(spec, dict) or "model" not in spec:
        raise ValueError(
            f"{where}: a latency is a table with 'model' = fixed | uniform | lognormal, "
            "e.g. {model = \"lognormal\", median = \"80ms\", sigma = 0.5, cap = \"5s\"}"
        )
    model = spec["model"]
    if model not in _KEYS:
        raise ValueError(f"{where}.model: {model!r} is not a latency model; use fixed, uniform or lognormal")
    given = set(spec) - {"model"}
    if given != _KEYS[model]:
        missing = sorted(_KEYS[model] - given)
        extra = sorted(given - _KEYS[model])
        bits = []
        if missing:
            bits.append("missing " + ", ".join(missing))
        if extra:
            bits.append("unknown " + ", ".join(extra))
        raise ValueError(f"{where}: a {model} latency takes {', '.join(sorted(_KEYS[model]))} ({'; '.join(bits)})")

    def dur(key: str) -> int:
        try:
            return parse_duration(spec[key])
        except ValueError as exc:
            raise ValueError(f"{where}.{key}: {exc}") from None

    try:
        if model == "fixed":
            return Fixed(dur("delay"))
        if model == "uniform":
            return Uniform(dur("low"), dur("high"))
        sigma = spec["sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, str)):
            raise ValueError(f"{where}.sigma: {sigma!r} is not a number; give e.g. 0.5")
        try:
            sigma_milli = round(float(sigma) * 1000)
        except (ValueError, OverflowError):
            raise ValueError(f"{where}.sigma: {sigma!r} is not a number; give e.g. 0.5") from None
        if not 0 <= sigma_milli <= 5000:
            raise ValueError(f"{where}.sigma: {sigma} is outside 0..5")
        return LogNormal(dur("median"), sigma_milli, dur("cap"))
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {exc}") from None

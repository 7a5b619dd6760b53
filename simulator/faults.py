"""Chaos profiles: faults as data.

A profile says which faults can happen in a world and how often. It is plain
data -- loadable from TOML or JSON, printable, comparable, shrinkable -- and
carries no business knowledge: systems and actors are just names. The kernel
and network act on the link, window and process parts; fake systems read
their own `systems` section (rate limits, 5xx, webhooks, ...) and decide what
those mean for their vendor.

Profile file (TOML)::

    name = "month-end"
    description = "slow ERP, lossy network"

    [[links]]                     # rules apply in order; later keys win
    src = "*"                     # actor name, or a glob
    dst = "erp"
    latency = {model = "lognormal", median = "120ms", sigma = 0.6, cap = "10s"}
    request_loss = 0.01           # probability, or "1%"
    response_loss = 0.01          # lost AFTER the endpoint committed
    duplicate = 0.005
    duplicate_delay = "2s"        # the copy arrives up to this much later
    reorder = 0.02
    reorder_delay = "3s"

    [[windows]]
    kind = "partition"            # partition | hold | outage | slow | crash
    between = ["core", "erp"]
    start = "2h"
    end = "4h"

    [systems.erp]
    error_5xx = 0.01
    rate_limit = 20               # requests per rate_limit_window
    rate_limit_window = "1s"

    [process]
    actors = ["core"]
    crash_every = "6h"            # mean time between crashes
    restart_after = "30s"

Times are durations from the start of the run.
"""

from __future__ import annotations

import fnmatch
import json
import random
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from .clock import HOUR, MINUTE, SECOND, format_duration, parse_duration
from .latency import Fixed, LatencyModel, LogNormal, latency_from_dict
from .random_streams import derive_seed

__all__ = [
    "ChaosProfile",
    "LinkRule",
    "LinkFaults",
    "Window",
    "SystemFaults",
    "ProcessFaults",
    "ProfileError",
    "load_profile",
    "builtin_profiles",
    "swarm_profile",
    "WINDOW_KINDS",
]

PPM = 1_000_000
_MICRO = Decimal("0.000001")
ZERO = Decimal("0.000000")
WINDOW_KINDS = ("partition", "hold", "outage", "slow", "crash")


class ProfileError(ValueError):
    """A chaos profile that cannot be used; the message names key and fix."""


# ------------------------------------------------------------------ values


def _rate(value: Any, where: str = "rate") -> Decimal:
    """A probability as a Decimal with at most six places (canonical, no
    floats in the trace). Accepts 0.02, "0.02", "2%", Decimal, and 0 or 1."""
    if isinstance(value, Decimal):
        value = str(value)
    if isinstance(value, bool):
        raise ProfileError(f"{where}: {value!r} is not a probability; give a number from 0 to 1 or a percentage like '2%'")
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            d = Decimal(value.strip()[:-1]) / 100
        elif isinstance(value, float):
            d = Decimal(repr(value))
        elif isinstance(value, (int, str)):
            d = Decimal(value)
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise ProfileError(
            f"{where}: {value!r} is not a probability; give a number from 0 to 1 or a percentage like '2%'"
        ) from None
    if not d.is_finite() or not 0 <= d <= 1:
        raise ProfileError(f"{where}: {value!r} is outside 0..1; a probability of 2% is written 0.02 or '2%'")
    q = d.quantize(_MICRO)
    if q != d:
        raise ProfileError(f"{where}: {value!r} is finer than one in a million; round it to six decimal places")
    return q


def _rate_or_none(value: Any) -> Decimal | None:
    return None if value is None else _rate(value)


def _rate_out(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _us(value: Any) -> int | None:
    """Durations built in code: microseconds (int) or text like '10s'."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return _duration(value, "duration")


def _signed_us(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _duration(value, "duration", signed=True)


def ppm(n: int) -> Decimal:
    """A probability of `n` in a million (for profiles built in code)."""
    return (Decimal(n) / PPM).quantize(_MICRO)


def _duration(value: Any, where: str, *, signed: bool = False) -> int:
    if signed and isinstance(value, str) and value.strip().startswith("-"):
        return -_duration(value.strip()[1:], where)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: {value!r} is not a name; give an actor or system name (globs like 'erp*' allowed)")
    return value


def _check_keys(table: Any, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: expected a table, found {type(table).__name__}")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}")
    return table


# ------------------------------------------------------------------ parts


@attrs.frozen
class LinkRule:
    """Fault settings for messages from `src` to `dst` (globs allowed)."""

    src: str = "*"
    dst: str = "*"
    latency: LatencyModel | None = None
    request_loss: Decimal | None = attrs.field(default=None, converter=_rate_or_none)
    response_loss: Decimal | None = attrs.field(default=None, converter=_rate_or_none)
    duplicate: Decimal | None = attrs.field(default=None, converter=_rate_or_none)
    duplicate_delay: int | None = attrs.field(default=None, converter=_us)  # us
    reorder: Decimal | None = attrs.field(default=None, converter=_rate_or_none)
    reorder_delay: int | None = attrs.field(default=None, converter=_us)

    KEYS = ("src", "dst", "latency", "request_loss", "response_loss", "duplicate", "duplicate_delay", "reorder", "reorder_delay")
    RATES = ("request_loss", "response_loss", "duplicate", "reorder")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> LinkRule:
        d = _check_keys(d, cls.KEYS, where)
        kw: dict[str, Any] = {
            "src": _name(d.get("src", "*"), f"{where}.src"),
            "dst": _name(d.get("dst", "*"), f"{where}.dst"),
        }
        if "latency" in d:
            try:
                kw["latency"] = latency_from_dict(d["latency"], f"{where}.latency")
            except ValueError as exc:
                raise ProfileError(str(exc)) from None
        for key in cls.RATES:
            if key in d:
                kw[key] = _rate(d[key], f"{where}.{key}")
        for key in ("duplicate_delay", "reorder_delay"):
            if key in d:
                kw[key] = _duration(d[key], f"{where}.{key}")
        return cls(**kw)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"src": self.src, "dst": self.dst}
        if self.latency is not None:
            out["latency"] = self.latency.to_dict()
        for key in self.RATES:
            v = getattr(self, key)
            if v is not None:
                out[key] = _rate_out(v)
        for key in ("duplicate_delay", "reorder_delay"):
            v = getattr(self, key)
            if v is not None:
                out[key] = format_duration(v)
        return out

    def matches(self, src: str, dst: str) -> bool:
        return fnmatch.fnmatchcase(src, self.src) and fnmatch.fnmatchcase(dst, self.dst)


@attrs.frozen
class LinkFaults:
    """The settings in force for one direction of one link (rules merged)."""

    latency: LatencyModel = Fixed(0)
    request_loss: float = 0.0
    response_loss: float = 0.0
    duplicate: float = 0.0
    duplicate_delay: int = 1 * SECOND
    reorder: float = 0.0
    reorder_delay: int = 2 * SECOND


@attrs.frozen
class Window:
    """A fault active from `start` (inclusive) to `end` (exclusive).

    partition: `between` two names; messages either way are dropped.
    hold:      `between` src and dst; messages src->dst wait until `end`.
    outage:    `target` system answers as if down (the fake decides how).
    slow:      `target` system answers after `delay` extra.
    crash:     `target` actor crashes at `start` and restarts at `end`.
    """

    kind: str
    start: int
    end: int
    between: tuple[str, str] | None = None
    target: str | None = None
    delay: int | None = None

    KEYS = ("kind", "start", "end", "between", "target", "delay")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Window:
        d = _check_keys(d, cls.KEYS, where)
        kind = d.get("kind")
        if kind not in WINDOW_KINDS:
            raise ProfileError(f"{where}.kind: {kind!r} is not a window kind; use one of {', '.join(WINDOW_KINDS)}")
        for key in ("start", "end"):
            if key not in d:
                raise ProfileError(f"{where}: a {kind} window needs '{key}' (a duration from the run's start, e.g. '2h')")
        start = _duration(d["start"], f"{where}.start")
        end = _duration(d["end"], f"{where}.end")
        if end <= start:
            raise ProfileError(f"{where}: end ({d['end']}) must come after start ({d['start']})")
        between = target = delay = None
        if kind in ("partition", "hold"):
            b = d.get("between")
            if not (isinstance(b, list) and len(b) == 2):
                raise ProfileError(f"{where}.between: a {kind} window needs between = [\"a\", \"b\"] (two actor names)")
            between = (_name(b[0], f"{where}.between[0]"), _name(b[1], f"{where}.between[1]"))
        else:
            target = _name(d.get("target"), f"{where}.target")
        if kind == "slow":
            if "delay" not in d:
                raise ProfileError(f"{where}: a slow window needs 'delay' (extra response time, e.g. '45s')")
            delay = _duration(d["delay"], f"{where}.delay")
        for key, used in (("between", between), ("target", target), ("delay", delay)):
            if key in d and used is None:
                raise ProfileError(f"{where}.{key}: a {kind} window does not take '{key}'")
        return cls(kind, start, end, between, target, delay)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind, "start": format_duration(self.start), "end": format_duration(self.end)}
        if self.between is not None:
            out["between"] = list(self.between)
        if self.target is not None:
            out["target"] = self.target
        if self.delay is not None:
            out["delay"] = format_duration(self.delay)
        return out

    def active(self, t: int) -> bool:
        return self.start <= t < self.end


@attrs.frozen
class SystemFaults:
    """Vendor-level faults for one system; the fake decides their shape."""

    error_5xx: Decimal = attrs.field(default=ZERO, converter=_rate)  # requests answered 5xx
    rate_limit: int | None = None  # requests allowed per window
    rate_limit_window: int = attrs.field(default=SECOND, converter=_us)
    concurrency_limit: int | None = None  # requests in service at once
    slow: Decimal = attrs.field(default=ZERO, converter=_rate)  # responses delayed past a client's timeout
    slow_delay: int = attrs.field(default=60 * SECOND, converter=_us)
    conflict: Decimal = attrs.field(default=ZERO, converter=_rate)  # writes finding the record changed underneath
    webhook_duplicate: Decimal = attrs.field(default=ZERO, converter=_rate)
    webhook_reorder: Decimal = attrs.field(default=ZERO, converter=_rate)
    webhook_delay: int = attrs.field(default=0, converter=_us)  # max extra delay of a webhook
    feed_retention: int | None = attrs.field(default=None, converter=_us)  # override of the vendor's retention
    schema_drift_at: int | None = attrs.field(default=None, converter=_us)  # when the new API version ships
    clock_skew: int = attrs.field(default=0, converter=_signed_us)

    RATES = ("error_5xx", "slow", "conflict", "webhook_duplicate", "webhook_reorder")
    DURATIONS = ("rate_limit_window", "slow_delay", "webhook_delay", "feed_retention", "schema_drift_at")
    KEYS = RATES + DURATIONS + ("rate_limit", "concurrency_limit", "clock_skew")
    SHAPING = ("rate_limit_window", "slow_delay")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SystemFaults:
        d = _check_keys(d, cls.KEYS, where)
        kw: dict[str, Any] = {}
        for key in cls.RATES:
            if key in d:
                kw[key] = _rate(d[key], f"{where}.{key}")
        for key in cls.DURATIONS:
            if key in d:
                kw[key] = _duration(d[key], f"{where}.{key}")
        if "clock_skew" in d:
            kw["clock_skew"] = _duration(d["clock_skew"], f"{where}.clock_skew", signed=True)
        for key in ("rate_limit", "concurrency_limit"):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ProfileError(f"{where}.{key}: {v!r} is not a request count; give a whole number >= 1")
                kw[key] = v
        return cls(**kw)

    def to_dict(self) -> dict:
        default = SystemFaults()
        out: dict[str, Any] = {}
        for key in self.KEYS:
            v = getattr(self, key)
            if v == getattr(default, key):
                continue
            if key in self.RATES:
                out[key] = _rate_out(v)
            elif key in ("rate_limit", "concurrency_limit"):
                out[key] = v
            elif key == "clock_skew":
                out[key] = ("-" if v < 0 else "") + format_duration(abs(v))
            else:
                out[key] = format_duration(v)
        return out

    def rate(self, key: str) -> float:
        """A rate as a float, for comparing with ``rng.random()``."""
        return float(getattr(self, key))


@attrs.frozen
class ProcessFaults:
    """Random crashes of the named actors, each followed by a restart."""

    actors: tuple[str, ...] = ()
    crash_every: int | None = None  # mean us between crashes (exponential)
    restart_after: int = 30 * SECOND

    KEYS = ("actors", "crash_every", "restart_after")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ProcessFaults:
        d = _check_keys(d, cls.KEYS, where)
        actors = d.get("actors", [])
        if not isinstance(actors, list):
            raise ProfileError(f"{where}.actors: give a list of actor names, e.g. [\"core\"]")
        kw: dict[str, Any] = {"actors": tuple(_name(a, f"{where}.actors") for a in actors)}
        if "crash_every" in d:
            kw["crash_every"] = _duration(d["crash_every"], f"{where}.crash_every")
            if kw["crash_every"] <= 0:
                raise ProfileError(f"{where}.crash_every: must be longer than 0s")
        if "restart_after" in d:
            kw["restart_after"] = _duration(d["restart_after"], f"{where}.restart_after")
        return cls(**kw)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"actors": list(self.actors), "restart_after": format_duration(self.restart_after)}
        if self.crash_every is not None:
            out["crash_every"] = format_duration(self.crash_every)
        return out


# ------------------------------------------------------------------ profile


_NO_SYSTEM_FAULTS = SystemFaults()  # frozen: one shared instance (asked for on every request)


@attrs.frozen
class ChaosProfile:
    name: str
    description: str = ""
    links: tuple[LinkRule, ...] = ()
    windows: tuple[Window, ...] = ()
    systems: tuple[tuple[str, SystemFaults], ...] = ()
    process: ProcessFaults = ProcessFaults()

    KEYS = ("name", "description", "links", "windows", "systems", "process")

    @classmethod
    def from_dict(cls, d: Any, source: str = "profile") -> ChaosProfile:
        d = _check_keys(d, cls.KEYS, source)
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{source}: needs name = \"...\" (a short name for reports)")
        description = d.get("description", "")
        if not isinstance(description, str):
            raise ProfileError(f"{source}.description: give a string")
        links = d.get("links", [])
        windows = d.get("windows", [])
        for key, v in (("links", links), ("windows", windows)):
            if not isinstance(v, list):
                raise ProfileError(f"{source}.{key}: give an array of tables ([[{key}]] in TOML)")
        systems = d.get("systems", {})
        if not isinstance(systems, dict):
            raise ProfileError(f"{source}.systems: give a table of systems ([systems.erp] in TOML)")
        return cls(
            name=name,
            description=description,
            links=tuple(LinkRule.from_dict(x, f"{source}.links[{i}]") for i, x in enumerate(links)),
            windows=tuple(Window.from_dict(x, f"{source}.windows[{i}]") for i, x in enumerate(windows)),
            systems=tuple(
                (k, SystemFaults.from_dict(v, f"{source}.systems.{k}")) for k, v in sorted(systems.items())
            ),
            process=ProcessFaults.from_dict(d.get("process", {}), f"{source}.process"),
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "links": [r.to_dict() for r in self.links],
            "windows": [w.to_dict() for w in self.windows],
            "systems": {k: v.to_dict() for k, v in self.systems},
            "process": self.process.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    def link_faults(self, src: str, dst: str) -> LinkFaults:
        merged: dict[str, Any] = {}
        for rule in self.links:
            if rule.matches(src, dst):
                for key in LinkRule.KEYS[2:]:
                    v = getattr(rule, key)
                    if v is not None:
                        merged[key] = float(v) if key in LinkRule.RATES else v
        return LinkFaults(**merged)

    def system(self, name: str) -> SystemFaults:
        for k, v in self.systems:
            if k == name:
                return v
        return _NO_SYSTEM_FAULTS

    def windows_of(self, kind: str) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if w.kind == kind)

    def describe(self) -> list[str]:
        """Short human lines saying which faults are on (a swarm draw printed)."""
        out = []
        for rule in self.links:
            d = rule.to_dict()
            bits = [f"{k} {v}" for k, v in d.items() if k not in ("src", "dst", "latency")]
            lat = d.get("latency")
            if lat:
                bits.insert(0, "latency " + ",".join(f"{k}={v}" for k, v in lat.items() if k != "model") + f" ({lat['model']})")
            out.append(f"link {rule.src}->{rule.dst}: " + ("; ".join(bits) if bits else "no faults"))
        for w in self.windows:
            who = ("->" if w.kind == "hold" else "<->").join(w.between) if w.between else w.target
            extra = f" +{format_duration(w.delay)}" if w.delay else ""
            out.append(f"window {w.kind} {who}{extra} from {format_duration(w.start)} to {format_duration(w.end)}")
        for name, sf in self.systems:
            out.append(f"system {name}: " + "; ".join(f"{k} {v}" for k, v in sf.to_dict().items()))
        if self.process.crash_every is not None:
            out.append(
                f"process: crash {', '.join(self.process.actors)} every ~{format_duration(self.process.crash_every)}, "
                f"restart after {format_duration(self.process.restart_after)}"
            )
        return out or ["no faults"]

    def size(self) -> int:
        """How many faults are on: what shrinking minimises. Settings that
        only shape another fault (a rate-limit window, a slow delay) do not
        count on their own."""
        n = len(self.windows)
        for rule in self.links:
            n += sum(1 for k in LinkRule.RATES if getattr(rule, k))
        for _, sf in self.systems:
            n += len([k for k in sf.to_dict() if k not in SystemFaults.SHAPING])
        if self.process.crash_every is not None:
            n += 1
        return n


# ------------------------------------------------------------------ sources


def _builtins() -> dict[str, ChaosProfile]:
    typical = LogNormal(median_us=40_000, sigma_milli=500, cap_us=2 * SECOND)
    return {
        "none": ChaosProfile("none", "no faults and no latency: the happy path"),
        "calm": ChaosProfile("calm", "realistic latency, no faults", links=(LinkRule(latency=typical),)),
        "default": ChaosProfile(
            "default",
            "realistic latency, a lossy network, occasional duplicates and reordering",
            links=(
                LinkRule(
                    latency=typical,
                    request_loss="0.5%",
                    response_loss="0.5%",
                    duplicate="0.5%",
                    reorder="1%",
                ),
            ),
        ),
        "harsh": ChaosProfile(
            "harsh",
            "slow tail latency, 3% loss each way, duplicates, heavy reordering",
            links=(
                LinkRule(
                    latency=LogNormal(median_us=80_000, sigma_milli=900, cap_us=20 * SECOND),
                    request_loss="3%",
                    response_loss="3%",
                    duplicate="2%",
                    reorder="5%",
                    reorder_delay=5 * SECOND,
                ),
            ),
        ),
    }


def builtin_profiles() -> dict[str, ChaosProfile]:
    """The built-in profiles by name (plus 'swarm', drawn per seed)."""
    return _builtins()


def load_profile(spec: str) -> ChaosProfile:
    """A built-in profile by name, or a .toml/.json profile file by path."""
    builtins = _builtins()
    if spec in builtins:
        return builtins[spec]
    if spec == "swarm":
        raise ProfileError("chaos profile 'swarm' is drawn per seed: build it with swarm_profile(seed, ...)")
    path = Path(spec)
    if path.suffix not in (".toml", ".json"):
        raise ProfileError(
            f"chaos profile {spec!r}: not a built-in profile ({', '.join(sorted(builtins))}, swarm) "
            "and not a .toml or .json file path"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"chaos profile file {spec}: no such file; check the path") from None
    except OSError as exc:
        raise ProfileError(f"chaos profile file {spec}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"chaos profile file {spec}: not valid {path.suffix[1:].upper()} ({exc})") from None
    return ChaosProfile.from_dict(data, source=spec)


def swarm_profile(seed: int, horizon_us: int, systems: list[str], core: str = "core") -> ChaosProfile:
    """A profile the seed draws: which fault kinds are on, and how hard.

    Swarm testing (Groce et al., ISSTA 2012): turning random subsets of fault
    kinds off finds more bugs than running every kind at once, because some
    faults mask others.
    """
    rng = random.Random(derive_seed(seed, "chaos.swarm"))
    systems = sorted(systems)

    def on() -> bool:
        return rng.random() < 0.5

    def rate(lo: int, hi: int) -> Decimal:
        return ppm(rng.randint(lo, hi))

    link: dict[str, Any] = {
        "latency": LogNormal(rng.randint(5, 150) * 1000, rng.randint(200, 1200), rng.randint(2, 30) * SECOND)
    }
    if on():
        link["request_loss"] = rate(1_000, 40_000)
    if on():
        link["response_loss"] = rate(1_000, 40_000)
    if on():
        link["duplicate"] = rate(1_000, 30_000)
    if on():
        link["reorder"] = rate(5_000, 80_000)
        link["reorder_delay"] = rng.randint(1, 10) * SECOND
    windows: list[Window] = []
    span = max(horizon_us, HOUR)

    def window() -> tuple[int, int]:
        # Whole seconds: a window is easier to read, and no less effective.
        length = rng.randint(5 * MINUTE // SECOND, 2 * HOUR // SECOND) * SECOND
        start = rng.randint(0, max(0, span - length) // SECOND) * SECOND
        return start, start + length

    if systems and on():
        s, e = window()
        windows.append(Window("partition", s, e, between=(core, rng.choice(systems))))
    if systems and on():
        s, e = window()
        windows.append(Window("outage", s, e, target=rng.choice(systems)))
    if systems and on():
        s, e = window()
        windows.append(Window("hold", s, e, between=(rng.choice(systems), core)))
    sys_faults: list[tuple[str, SystemFaults]] = []
    for name in systems:
        kw: dict[str, Any] = {}
        if on():
            kw["error_5xx"] = rate(1_000, 50_000)
        if on():
            kw["rate_limit"] = rng.randint(2, 20)
        if on():
            kw["concurrency_limit"] = rng.randint(1, 5)
        if on():
            kw["webhook_duplicate"] = rate(10_000, 200_000)
            kw["webhook_reorder"] = rate(10_000, 200_000)
            kw["webhook_delay"] = rng.randint(1, 60) * SECOND
        if on():
            kw["conflict"] = rate(1_000, 30_000)
        if kw:
            sys_faults.append((name, SystemFaults(**kw)))
    process = ProcessFaults()
    if on():
        process = ProcessFaults(actors=(core,), crash_every=rng.randint(1, 12) * HOUR, restart_after=rng.randint(1, 300) * SECOND)
    return ChaosProfile(
        name=f"swarm:{seed}",
        description="drawn by the seed (swarm testing)",
        links=(LinkRule(**link),),
        windows=tuple(windows),
        systems=tuple(sys_faults),
        process=process,
    )

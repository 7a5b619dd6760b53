"""The simulation kernel: virtual time, seeded randomness, actors, the
network and its faults, and the trace. It knows nothing of the business and
imports nothing else of syncbed's (see ARCHITECTURE.md, dependency rule)."""

__version__ = "0.1.0"

from .actors import Actor
from .calendar import BusinessCalendar
from .clock import DAY, HOUR, MILLISECOND, MINUTE, SECOND, format_duration, parse_duration
from .faults import ChaosProfile, ProfileError, Window, builtin_profiles, load_profile, swarm_profile
from .kernel import Deadlock, Kernel, SimulationError, StopReason, Timer, Waiter
from .latency import Fixed, LogNormal, Uniform
from .messages import ConnectionRefused, NetworkError, Request, RequestTimeout, Response
from .network import Network
from .random_streams import RandomStreams, derive_seed
from .simulation import Simulation
from .trace import Trace, TraceError, TraceReader, TraceRecorder, canonical_json, iter_trace, read_trace

__all__ = [
    "__version__",
    "Actor",
    "BusinessCalendar",
    "ChaosProfile",
    "ConnectionRefused",
    "DAY",
    "Deadlock",
    "Fixed",
    "HOUR",
    "Kernel",
    "LogNormal",
    "MILLISECOND",
    "MINUTE",
    "Network",
    "NetworkError",
    "ProfileError",
    "RandomStreams",
    "Request",
    "RequestTimeout",
    "Response",
    "SECOND",
    "Simulation",
    "SimulationError",
    "StopReason",
    "Timer",
    "Trace",
    "TraceError",
    "TraceReader",
    "TraceRecorder",
    "Uniform",
    "Waiter",
    "Window",
    "builtin_profiles",
    "canonical_json",
    "derive_seed",
    "format_duration",
    "iter_trace",
    "load_profile",
    "parse_duration",
    "read_trace",
    "swarm_profile",
]

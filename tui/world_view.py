"""What the topology shows, folded from the trace up to a moment.

The trace is the only truth the UI needs for the picture of the world: who
is running, which exchanges are waiting for an answer on which link, how
many went wrong lately, and which fault windows are open. Folding is
incremental (a live run adds events as they come) and restartable (a replay
that seeks backwards folds again from a checkpoint, see `copy`).

"In flight" is what the trace can see: an exchange whose request was
delivered and whose response, timeout or refusal has not come yet. (The
trace records a request when it arrives, so the outbound leg of a message
is invisible until then.) One-way posts never get an answer; they stop
counting after `STALE_US`.
"""

from __future__ import annotations

import copy
import fnmatch
from collections import Counter, deque

import attrs

from simulator import ChaosProfile, ProfileError, Window

from .event_index import Row

__all__ = ["WorldView", "Topology", "LinkPicture", "NodePicture", "FaultPicture", "ERROR_WINDOW_US"]

ERROR_WINDOW_US = 3_600_000_000  # error rates over the last virtual hour
STALE_US = 120_000_000  # an unanswered exchange older than this is not "in flight"
FLASH_US = 60_000_000  # a fault on a link shows for a virtual minute

_ERROR_KINDS = frozenset({
    "net.timeout", "net.refused", "fault.request_lost", "fault.response_lost", "fault.partition",
})
_ANOMALY_KINDS = frozenset({"fault.duplicate", "fault.reorder", "fault.hold", "fault.slow"})


@attrs.frozen
class NodePicture:
    name: str
    state: str  # running | crashed | stopped | new
    outage: int | None = None  # until (virtual us) when in an outage window
    slow: int | None = None  # extra response delay (us) in a slow window
    served: int = 0
    faults: int = 0  # vendor-side faults fired (5xx, 429, outage answers...)


@attrs.frozen
class LinkPicture:
    a: str
    b: str
    in_flight: int
    exchanges: int
    errors: int
    recent_exchanges: int
    recent_errors: int
    partitioned_until: int | None = None
    held_until: int | None = None
    last_fault: str | None = None  # a fault that fired within FLASH_US

    @property
    def error_rate(self) -> float:
        return self.recent_errors / self.recent_exchanges if self.recent_exchanges else 0.0


@attrs.frozen
class FaultPicture:
    kind: str
    who: str
    until: int
    detail: str = ""


@attrs.frozen
class Topology:
    """The picture at one moment (immutable, safe to hand to widgets)."""

    t: int
    center: str
    nodes: tuple[NodePicture, ...]
    links: tuple[LinkPicture, ...]
    faults: tuple[FaultPicture, ...]
    fault_counts: tuple[tuple[str, int], ...]
    healed_at: int | None

    def node(self, name: str) -> NodePicture | None:
        return next((n for n in self.nodes if n.name == name), None)

    def link(self, a: str, b: str) -> LinkPicture | None:
        key = tuple(sorted((a, b)))
        return next((ln for ln in self.links if (ln.a, ln.b) == key), None)


class _Link:
    __slots__ = ("open", "exchanges", "errors", "recent_x", "recent_e", "last_fault")

    def __init__(self) -> None:
        self.open: dict[str, int] = {}
        self.exchanges = 0
        self.errors = 0
        self.recent_x: deque[int] = deque()
        self.recent_e: deque[int] = deque()
        self.last_fault: tuple[int, str] | None = None


def _windows_of(header: dict) -> list[Window]:
    try:
        return list(ChaosProfile.from_dict(header.get("chaos") or {"name": "none"}, source="trace header").windows)
    except ProfileError:
        return []


class WorldView:
    """The fold. `apply(row)` for each event in order; `picture(t)`."""

    def __init__(self, header: dict, *, center: str, systems: list[str]) -> None:
        self.center = center
        self.order = [center] + [s for s in systems if s != center]
        self.state: dict[str, str] = {name: "new" for name in self.order}
        self.served: Counter[str] = Counter()
        self.vendor_faults: Counter[str] = Counter()
        self.links: dict[tuple[str, str], _Link] = {}
        self.windows: list[tuple[Window, int | None]] = [(w, None) for w in _windows_of(header)]
        self.healed_at: int | None = None
        self.fault_counts: Counter[str] = Counter()
        self.t = 0
        self.applied = 0
        for s in self.order[1:]:
            self._link(center, s)

    def copy(self) -> WorldView:
        return copy.deepcopy(self)

    # ------------------------------------------------------------ folding

    def _node(self, name: str | None) -> None:
        if name and name not in self.state:
            self.state[name] = "new"
            self.order.append(name)

    def _link(self, a: str, b: str) -> _Link:
        key = (a, b) if a <= b else (b, a)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = _Link()
        return link

    def apply(self, row: Row) -> None:
        t, kind, src, dst, f = row[1], row[2], row[3], row[4], row[6]
        self.t = t
        self.applied = row[0] + 1
        if kind.startswith("net."):
            link = self._link(src, dst)
            m = f.get("m") if f else None
            if kind == "net.request":
                self.served[dst] += 1
                if not f.get("copy"):
                    link.exchanges += 1
                    link.recent_x.append(t)
                    if m is not None:
                        link.open[m] = t
            elif kind == "net.response":
                if link.open.pop(m, None) is not None:
                    status = f.get("st") or 0
                    if status >= 500 or status == 429:
                        link.errors += 1
                        link.recent_e.append(t)
            else:  # timeout, refused
                if kind == "net.refused":
                    link.exchanges += 1
                    link.recent_x.append(t)
                link.open.pop(m, None)
                link.errors += 1
                link.recent_e.append(t)
                link.last_fault = (t, kind[4:])
            return
        if kind.startswith("fault."):
            self.fault_counts[kind[6:]] += 1
            if src and dst:
                link = self._link(src, dst)
                if kind in _ERROR_KINDS:
                    link.errors += 1
                    link.recent_e.append(t)
                if kind in _ERROR_KINDS or kind in _ANOMALY_KINDS:
                    link.last_fault = (t, kind[6:])
            elif src:
                self._node(src)
                self.vendor_faults[src] += 1
            return
        if kind.startswith("actor."):
            self._node(src)
            if kind in ("actor.start", "actor.restart"):
                self.state[src] = "running"
            elif kind == "actor.crash":
                self.state[src] = "crashed"
            elif kind == "actor.stop":
                self.state[src] = "stopped"
            return
        if kind == "chaos.inject":
            try:
                w = Window.from_dict(f["w"], "chaos.inject")
            except (ProfileError, KeyError, TypeError):
                return
            self.windows.append((w, None))
        elif kind == "chaos.heal":
            self.healed_at = t
            self.windows = [(w, t if healed is None and w.start <= t else healed) for w, healed in self.windows]

    # ------------------------------------------------------------ the picture

    def _active(self, t: int):
        for w, healed in self.windows:
            if w.start <= t < w.end and (healed is None or t < healed):
                yield w

    def picture(self, t: int | None = None) -> Topology:
        t = self.t if t is None else t
        active = list(self._active(t))
        nodes = []
        for name in self.order:
            outage = max((w.end for w in active if w.kind == "outage" and fnmatch.fnmatchcase(name, w.target)), default=None)
            slow = max((w.delay for w in active if w.kind == "slow" and fnmatch.fnmatchcase(name, w.target)), default=None)
            nodes.append(NodePicture(name, self.state[name], outage, slow, self.served[name], self.vendor_faults[name]))
        links = []
        horizon = t - ERROR_WINDOW_US
        for (a, b), link in sorted(self.links.items()):
            for q in (link.recent_x, link.recent_e):
                while q and q[0] < horizon:
                    q.popleft()
            stale = [m for m, t0 in link.open.items() if t - t0 > STALE_US]
            for m in stale:
                del link.open[m]
            part = [w.end for w in active if w.kind == "partition" and _pair(w.between, a, b)]
            held = [w.end for w in active if w.kind == "hold" and _pair(w.between, a, b)]
            flash = link.last_fault[1] if link.last_fault and t - link.last_fault[0] <= FLASH_US else None
            links.append(LinkPicture(
                a, b, len(link.open), link.exchanges, link.errors, len(link.recent_x), len(link.recent_e),
                max(part) if part else None, max(held) if held else None, flash,
            ))
        faults = []
        for w in active:
            who = "⇄".join(w.between) if w.between else (w.target or "")
            detail = f"+{w.delay // 1_000_000}s" if w.delay else ""
            faults.append(FaultPicture(w.kind, who, w.end, detail))
        for name in self.order:
            if self.state[name] == "crashed" and not any(f.kind == "crash" and f.who == name for f in faults):
                faults.append(FaultPicture("crash", name, 0, "down until restarted"))
        return Topology(
            t, self.center, tuple(nodes), tuple(links), tuple(faults),
            tuple(sorted(self.fault_counts.items())), self.healed_at,
        )


def _pair(between, a: str, b: str) -> bool:
    x, y = between
    m = fnmatch.fnmatchcase
    return (m(a, x) and m(b, y)) or (m(a, y) and m(b, x))

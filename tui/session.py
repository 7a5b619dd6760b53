"""What the UI knows of a run at the moment it shows: the UI thread's own state.

A `Session` folds the events its source has made visible into the topology
(`WorldView`) and the flows (`FlowIndex`). Folding follows the source
forward event by event; when a replay jumps backwards it restarts from the
nearest checkpoint. Screens and widgets receive the session in their
constructor and read it when told it changed; only this object writes it,
and only on the UI thread.
"""

from __future__ import annotations

from bisect import bisect_right

from .event_index import EventIndex
from .flow_index import FlowIndex
from .samples import WorldSample
from .sources import ClockStatus, Source, Verification
from .world_view import Topology, WorldView

__all__ = ["Session"]

CHECKPOINT_EVERY = 20_000


class Session:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.index: EventIndex = source.index
        self.clock = source.clock
        self.flows = FlowIndex()
        self._fresh = lambda: WorldView(source.header, center=source.center, systems=source.systems)
        self.view = self._fresh()
        self._checkpoints: list[tuple[int, WorldView]] = [(0, self.view.copy())]
        self.visible = 0
        self.version = 0  # bumped by every sync that changed something
        if not source.live:
            # A replay knows every flow up front; what is shown stops at the cursor.
            self.flows.update(self.index, len(self.index))

    @property
    def live(self) -> bool:
        return self.source.live

    def sync(self) -> bool:
        """Catch up with the source; True if anything visible changed."""
        target = self.source.visible()
        if target < self.view.applied:
            at = bisect_right([n for n, _ in self._checkpoints], target) - 1
            n, view = self._checkpoints[at]
            self.view = view.copy()
        for row in self.index.rows(self.view.applied, target):
            self.view.apply(row)
            if row[0] + 1 == self._checkpoints[-1][0] + CHECKPOINT_EVERY:
                self._checkpoints.append((row[0] + 1, self.view.copy()))
        if self.source.live:
            self.flows.update(self.index, target)
        self.visible = target
        self.version += 1
        return True

    # ------------------------------------------------------------ reading

    def topology(self) -> Topology:
        return self.view.picture(max(self.view.t, self.source.now_us()))

    def status(self) -> ClockStatus:
        return self.source.status()

    def sample(self) -> WorldSample | None:
        return self.source.sample()

    def samples(self) -> list[WorldSample]:
        return self.source.samples()

    def verification(self) -> Verification | None:
        return self.source.verification()

    def flow_of_text(self, text: str) -> str | None:
        return self.flows.corr_in_text(text)

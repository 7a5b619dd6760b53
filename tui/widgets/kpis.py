"""KPIs, each with a sparkline of its value over the virtual time so far."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from ..samples import kpi_number
from ..session import Session

__all__ = ["KpiPanel", "over_time", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"
FIRST = ("dlq_depth", "exceptions_open", "outbox_waiting", "failed_postings", "invoices_finalised")


def over_time(points: list[tuple[int, float]], width: int) -> list[float]:
    """`width` values over virtual time: the first is where the run started,
    each of the others an equal stretch up to the last point -- the highest
    value sampled in the stretch, or the one still in force. (Samples are
    not evenly spaced -- a pause or a command takes one, fast play takes
    fewer -- so a bar per sample would stretch some hours and squeeze
    others.)"""
    if not points or width <= 0:
        return []
    t0, t1 = points[0][0], points[-1][0]
    if t1 == t0 or width == 1:
        return [points[-1][1]]
    out = [points[0][1]]
    current = points[0][1]
    j = 1
    for k in range(1, width):
        end = t0 + (t1 - t0) * k // (width - 1)
        peak = None
        while j < len(points) and points[j][0] <= end:
            current = points[j][1]
            peak = current if peak is None else max(peak, current)
            j += 1
        out.append(current if peak is None else peak)
    return out


def sparkline(values: list[float]) -> str:
    """One bar per value, scaled min..max; a flat line when nothing changed."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return "─" * len(values)
    return "".join(BARS[min(7, int((v - lo) / (hi - lo) * 7.999))] for v in values)


class KpiPanel(Widget):
    DEFAULT_CSS = """
    KpiPanel { height: auto; }
    """

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.border_title = "KPIs"
        self._key = None

    def sync(self) -> None:
        samples = self.session.samples()
        key = (len(samples), samples[-1].t if samples else None, self.size)
        if key != self._key:
            self._key = key
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width) -> int:
        sample = self.session.sample()
        return max(1, len(sample.kpis) if sample else 1)

    def render(self) -> Table | Text:
        samples = self.session.samples()
        if not samples or not samples[-1].kpis:
            return Text("no KPIs yet", style="#8a8a8a")
        history = [(s.t, dict(s.kpis)) for s in samples]
        latest = history[-1][1]
        names = [n for n in FIRST if n in latest] + sorted(n for n in latest if n not in FIRST)
        width = self.content_region.width
        spark_w = max(4, min(24, width // 3))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(width=spark_w, no_wrap=True)
        for name in names:
            value = latest[name]
            points = [(t, v) for t, kpis in history if (v := kpi_number(kpis.get(name))) is not None]
            alarm = name in ("dlq_depth", "failed_postings") and kpi_number(value)
            table.add_row(
                Text(name.replace("_", " "), style="bold #ff5f5f" if alarm else ""),
                Text(str(value), style="bold"),
                Text(sparkline(over_time(points, spark_w)), style="#5fd7ff"),
            )
        return table

"""KPIs, each with a sparkline of its value over virtual time so far."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from ..samples import kpi_number
from ..session import Session

__all__ = ["KpiPanel", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"
FIRST = ("dlq_depth", "exceptions_open", "outbox_waiting", "failed_postings", "invoices_finalised")


def sparkline(values: list[float], width: int) -> str:
    """`values` squeezed (or stretched) into `width` bars, scaled min..max."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(k * step): max(int(k * step) + 1, int((k + 1) * step))]) for k in range(width)]
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
        latest = dict(samples[-1].kpis)
        names = [n for n in FIRST if n in latest] + sorted(n for n in latest if n not in FIRST)
        width = self.content_region.width
        spark_w = max(4, min(24, width // 3))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(width=spark_w, no_wrap=True)
        for name in names:
            value = latest[name]
            series = [kpi_number(dict(s.kpis).get(name)) for s in samples]
            series = [v for v in series if v is not None]
            alarm = name in ("dlq_depth", "failed_postings") and kpi_number(value)
            table.add_row(
                Text(name.replace("_", " "), style="bold #ff5f5f" if alarm else ""),
                Text(str(value), style="bold"),
                Text(sparkline(series, spark_w), style="#5fd7ff"),
            )
        return table

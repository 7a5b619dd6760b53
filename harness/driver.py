"""The scenario API: a driver that acts as the firm's people and calendar.

A scenario script is an async function of a `Driver`::

    async def script(d):
        for deal in d.deals_closing(0):
            d.close_deal(deal)              # sales wins it in the CRM
        await d.advance(days=2)
        d.play_month(0)                     # people log, submit, approve...
        await d.to_month_end()
        d.partition("erp", hours=2)         # and the network misbehaves
        d.run_billing()
        await d.advance(days=3)
        d.close_period(d.period)            # finance closes the books

What people do goes straight to a system's UI (its people actions), never
through the core; the core learns of it the way it would in production,
from feeds and webhooks. Faults injected here are trace events like any
other.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from simulator import DAY, HOUR, MINUTE, Window

if TYPE_CHECKING:
    from .world import BusinessWorld

__all__ = ["Driver"]


class Driver:
    def __init__(self, world: BusinessWorld) -> None:
        self.world = world
        self.sim = world.sim
        self.firm = world.firm
        self.crm = world.crm
        self.psa = world.psa
        self.erp = world.erp
        self.billing = world.billing
        self.revenue = world.revenue
        self.hris = world.hris
        self.expenses = world.expenses

    # ------------------------------------------------------------ the calendar

    @property
    def now(self) -> datetime:
        return self.sim.calendar.datetime_at(self.sim.now_us)

    @property
    def today(self) -> date:
        return self.sim.calendar.date_at(self.sim.now_us)

    @property
    def period(self) -> str:
        return f"{self.today:%Y-%m}"

    async def advance(self, *, days: int = 0, hours: int = 0, minutes: int = 0) -> None:
        await self.sim.kernel.run_for(days * DAY + hours * HOUR + minutes * MINUTE)

    async def advance_to(self, day: date, at: time = time(9)) -> None:
        target = self.sim.calendar.us_at_date(day, at)
        if target > self.sim.now_us:
            await self.sim.kernel.run_until(target)

    async def to_month_end(self, at: time = time(18)) -> None:
        """The last business day of this month, at `at`."""
        await self.advance_to(self.sim.calendar.last_business_day_of_month(self.today), at)

    async def next_month(self, at: time = time(9)) -> None:
        first = (self.today.replace(day=1) + timedelta(days=32)).replace(day=1)
        await self.advance_to(first, at)

    async def settle(self, days: int = 7) -> bool:
        """Let the world run until it is quiet (or `days` pass)."""
        return await self.world.quiescence.wait(self.sim.now_us + days * DAY)

    # ------------------------------------------------------------ sales (CRM)

    def deals_closing(self, month: int = 0) -> list[str]:
        """Firm deal ids that close during month `month` of the run."""
        return list(self.firm.months[month].closed_deal_ids)

    def close_deal(self, deal_id: str) -> str:
        """Sales marks the deal Closed Won; returns the CRM opportunity id."""
        opp = self.crm.crm_id(deal_id)
        self.crm.close_won(opp)
        return opp

    def amend(self, amendment) -> str:
        """A signed change order (a `firm_model.Amendment`) enters the CRM."""
        return self.crm.apply_amendment(amendment)

    def amendments(self, month: int = 0) -> list:
        return list(self.firm.months[month].amendments)

    # ------------------------------------------------------------ delivery (PSA, expenses, HR)

    def play_month(self, month: int = 0) -> int:
        """Schedule a month of people's work in the PSA -- time logged,
        submitted, approved or rejected, corrected; milestones completed and
        accepted -- on its business days; returns how many stories."""
        return self.psa.play_month(self.firm.months[month], resolve=self.resolve_psa)

    def resolve_psa(self, kind: str, firm_id: str) -> str | None:
        """Find a record the core provisioned in the PSA for a firm record,
        by the external reference the integration contract asks the core to
        set: the CRM id of the deal (projects), of the contract line (a
        task per line), or line and name (milestones)."""
        source = self._source_ref(kind, firm_id)
        table = {"project": "projects", "task": "tasks", "milestone": "milestones"}.get(kind)
        if source is None or table is None:
            return None
        for row in self.psa.table(table).values():
            if row.get("external_reference") == source:
                return row["id"]
        return None

    def _source_ref(self, kind: str, firm_id: str) -> str | None:
        index = self._firm_index()
        try:
            if kind == "project":
                return self.crm.crm_id(index["project_deal"][firm_id])
            if kind == "task":
                return self.crm.crm_id(index["task_line"][firm_id])
            if kind == "milestone":
                line, name = index["milestone"][firm_id]
                return f"{self.crm.crm_id(line)}:{name}"
        except (KeyError, ValueError):
            return None
        return None

    def _firm_index(self) -> dict:
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {
                "project_deal": {p.id: p.deal_id for p in self.firm.projects},
                "task_line": {t.id: t.line_id for p in self.firm.projects for t in p.tasks},
                "milestone": {m.id: (m.line_id, m.name) for d in self.firm.deals for ln in d.lines for m in ln.milestones},
            }
        return index

    def start_pmo(self) -> None:
        """Every business morning the PMO staffs projects that the
        integration has provisioned since the day before."""
        self._staffed: set[str] = set()
        self._pmo_round()

    def _pmo_round(self) -> None:
        if self.psa.running:
            for project in self.firm.projects:
                if project.id in self._staffed:
                    continue
                psa_id = self.resolve_psa("project", project.id)
                if psa_id is not None and self.psa.table("projects")[psa_id]["status"] == "active":
                    self.psa.staff_project(self.firm, project.id, psa_id)
                    self._staffed.add(project.id)
        cal = self.sim.calendar
        nxt = cal.us_at_date(cal.add_business_days(self.today, 1), time(8, 30))
        self.sim.kernel.call_at(nxt, self._pmo_round)

    def submit_expenses(self, month: int = 0, *, approve: bool = True) -> list[str]:
        """Employees file the month's expense reports against the engagement
        (the CRM opportunity id sales gave it); managers settle them."""
        import attrs

        index = self._firm_index()["project_deal"]
        entries = [
            attrs.evolve(x, project_id=self.crm.crm_id(index[x.project_id])) for x in self.firm.months[month].expenses
        ]
        return self.expenses.load_expenses(entries, settle=approve)

    def hr_events(self, month: int = 0) -> list:
        return list(self.firm.months[month].hr_events)

    # ------------------------------------------------------------ finance

    def run_billing(self) -> list[dict]:
        """The billing clerk runs the monthly billing run."""
        return self.billing.run_monthly_billing()

    def close_period(self, period: str) -> None:
        """Finance closes `period` in the ERP (every subsidiary) and in the
        revenue engine."""
        year, month = (int(x) for x in period.split("-"))
        for entity in self.firm.entities:
            self.erp.close_period(self.erp.erp_id(entity.id), date(year, month, 1))
        self.revenue.close_period(period)

    # ------------------------------------------------------------ faults, now

    def partition(self, system: str, *, hours: float = 1, between: str = "core") -> None:
        now = self.sim.now_us
        self.sim.inject(Window("partition", now, now + int(hours * HOUR), between=(between, system)))

    def outage(self, system: str, *, hours: float = 1) -> None:
        now = self.sim.now_us
        self.sim.inject(Window("outage", now, now + int(hours * HOUR), target=system))

    def crash_core(self, *, restart_after_minutes: float = 1) -> None:
        now = self.sim.now_us
        self.sim.inject(Window("crash", now, now + int(restart_after_minutes * MINUTE), target="core"))

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
from decimal import Decimal
from typing import TYPE_CHECKING

from simulator import DAY, HOUR, MINUTE, Window
from simulator.faults import LinkRule, SystemFaults

if TYPE_CHECKING:
    from .world import BusinessWorld

__all__ = ["Driver"]


def _add_months(d: date, months: int) -> date:
    """`d` moved `months` calendar months on (the day clamped to the month's end)."""
    y, m = divmod(d.month - 1 + months, 12)
    first = date(d.year + y, m + 1, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first.replace(day=min(d.day, last.day))


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
        self._resolved: dict[tuple[str, str], str] = {}  # (PSA table, source reference) -> id

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

    async def wait_for(self, condition, *, days: float = 3, every_minutes: int = 60) -> bool:
        """Let the world run until `condition()` holds -- looked at every
        `every_minutes` -- or `days` pass; returns whether it held. (People
        wait for the integration too: a milestone can be signed off only
        once the project exists.)"""
        limit = self.sim.now_us + int(days * DAY)
        while not condition():
            if self.sim.now_us >= limit:
                return False
            await self.sim.kernel.run_for(every_minutes * MINUTE)
        return True

    # ------------------------------------------------------------ what the scenario remembers

    def note(self, **facts) -> None:
        """Remember what the script chose or saw (ids, times) for the
        scenario's expectations, which read it back as `world.notes`."""
        if not hasattr(self.world, "notes"):
            self.world.notes = {}
        self.world.notes.update(facts)

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

    def play_sales(self, month: int = 0) -> int:
        """Sales closes the month's deals on their close dates, at 15:00 CRM
        time (a date already past: now); returns how many."""
        cal = self.sim.calendar
        deals = {d.id: d for d in self.firm.deals}
        found = self.deals_closing(month)
        for deal_id in found:
            when = cal.us_at_date(deals[deal_id].close_date, time(15), system=self.crm.name)
            self.sim.kernel.call_at(max(self.sim.now_us, when), self.close_deal, deal_id)
        return len(found)

    def sign_amendments(self, month: int = 0) -> int:
        """The month's change orders are signed in the CRM on their signing
        days, at 11:00 CRM time; returns how many."""
        cal = self.sim.calendar
        found = self.amendments(month)
        for a in found:
            when = cal.us_at_date(a.signed_on, time(11), system=self.crm.name)
            self.sim.kernel.call_at(max(self.sim.now_us, when), self._sign_amendment, a)
        return len(found)

    def _sign_amendment(self, amendment) -> None:
        try:
            self.amend(amendment)
        except ValueError as exc:  # the CRM refused it (UiActionRefused)
            self.sim.trace.record("people.refused", {"system": "crm", "amendment": amendment.id, "why": str(exc)})

    def sell(self, client_id: str, name: str, lines: list[dict], *, close: bool = True) -> str:
        """Sales writes up a new deal for a firm client -- its quote lines
        as QuoteLine fields (Product, BillingModel, ServiceStart,
        ServiceEnd, Quantity, TotalPrice or UnitPrice, Milestones,
        RateCard) -- and, with `close`, wins it today; returns the CRM
        opportunity id."""
        client = next((c for c in self.firm.clients if c.id == client_id), None)
        if client is None:
            raise ValueError(f"sell: no client {client_id!r} in the firm; pick one of d.firm.clients")
        opp = self.crm.create_opportunity(self.crm.crm_id(client_id), name, close_date=self.today,
                                          stage="Negotiation", lines=lines, CurrencyIsoCode=client.currency)
        if close:
            self.crm.close_won(opp)
        return opp

    def quote_lines(self, opp_id: str) -> list[dict]:
        """The deal's quote lines as the CRM holds them now."""
        return [ln for ln in self.crm.records("QuoteLine") if ln["OpportunityId"] == opp_id and not ln.get("IsDeleted")]

    def raise_rates(self, opp_id: str, percent: int, *, effective: date | None = None) -> str | None:
        """The client signs a rate change: every rate on the deal's T&M
        line up by `percent`, from `effective` (default today). Returns the
        ContractVersion id, or None if the deal bills no time."""
        line = next((ln for ln in self.quote_lines(opp_id) if ln["BillingModel"] == "t_and_m" and ln["RateCard"]), None)
        if line is None:
            return None
        card = [{"Role": e["Role"], "Rate": str((Decimal(e["Rate"]) * (100 + percent) / 100).quantize(Decimal("0.01")))}
                for e in line["RateCard"]]
        return self.crm.amend_contract(opp_id, kind="rate_change", effective_date=effective or self.today,
                                       line_changes={line["Id"]: {"RateCard": card}},
                                       description=f"rates up {percent}%")

    def add_scope(self, opp_id: str, product: str, milestones: list[tuple[str, str]], *,
                  start: date | None = None, effective: date | None = None) -> str:
        """The client signs a change order adding a fixed-fee phase paid by
        `milestones` [(name, amount)], one due at the end of each month from
        `start` (default today); returns the ContractVersion id."""
        start = start or self.today
        dues = [_add_months(start.replace(day=1), i + 1) - timedelta(days=1) for i in range(len(milestones))]
        line = {"Product": product, "BillingModel": "fixed_fee", "Quantity": 1, "ServiceStart": start,
                "ServiceEnd": dues[-1], "TotalPrice": str(sum(Decimal(a) for _, a in milestones)),
                "Milestones": [{"Name": n, "Amount": a, "DueDate": due} for (n, a), due in zip(milestones, dues)]}
        return self.crm.amend_contract(opp_id, kind="scope_change", effective_date=effective or start,
                                       added_lines=[line], description=f"added: {product}")

    def change_monthly_fee(self, opp_id: str, fee: Decimal | str, *, effective: date | None = None) -> str | None:
        """The client signs a new monthly fee for the deal's retainer or
        managed-service line, from `effective` (default today); returns the
        ContractVersion id, or None if the deal has no recurring line."""
        line = next((ln for ln in self.quote_lines(opp_id) if ln["BillingModel"] in ("retainer", "managed_service")),
                    None)
        if line is None:
            return None
        return self.crm.amend_contract(opp_id, kind="other", effective_date=effective or self.today,
                                       line_changes={line["Id"]: {"UnitPrice": str(fee)}},
                                       description=f"monthly fee now {fee}")

    def change_milestone_fee(self, opp_id: str, milestone: str, amount: Decimal | str, *,
                             effective: date | None = None) -> str | None:
        """The client signs more (or less) scope for one milestone of the
        deal's fixed-fee line: its fee becomes `amount`, the line's price
        follows; returns the ContractVersion id, or None if no fixed-fee
        line has that milestone."""
        for line in self.quote_lines(opp_id):
            names = [m["Name"] for m in line["Milestones"] or []]
            if line["BillingModel"] == "fixed_fee" and milestone in names:
                ms = [{**m, "Amount": str(amount)} if m["Name"] == milestone else m for m in line["Milestones"]]
                total = str(sum(Decimal(m["Amount"]) for m in ms))
                return self.crm.amend_contract(opp_id, kind="other", effective_date=effective or self.today,
                                               line_changes={line["Id"]: {"Milestones": ms, "TotalPrice": total}},
                                               description=f"{milestone} now {amount}")
        return None

    def extend_term(self, opp_id: str, months: int) -> str | None:
        """The client extends the deal's retainer or managed-service line by
        `months` at the same monthly fee; returns the ContractVersion id, or
        None if the deal has no recurring line."""
        line = next((ln for ln in self.quote_lines(opp_id) if ln["BillingModel"] in ("retainer", "managed_service")),
                    None)
        if line is None:
            return None
        end = _add_months(date.fromisoformat(line["ServiceEnd"]) + timedelta(days=1), months) - timedelta(days=1)
        return self.crm.amend_contract(opp_id, kind="term_extension", effective_date=self.today,
                                       line_changes={line["Id"]: {"Quantity": int(Decimal(line["Quantity"])) + months,
                                                                  "ServiceEnd": end}},
                                       description=f"extended {months} months")

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
        # People look a record up once and remember it; what they remember
        # is checked, since the core may re-mark a copy.
        known = self._resolved.get((table, source))
        if known is not None and (self.psa.table(table).get(known) or {}).get("external_reference") == source:
            return known
        found = self.psa.find_reference(table, source)
        if found is not None:
            self._resolved[table, source] = found
        return found

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

    def play_hr_changes(self, month: int = 0) -> int:
        """HR enters the month's cost-rate changes and terminations in the
        HRIS on their effective dates at 09:00 HRIS time (the firm's hires
        are in the HRIS from the start, as pre-hires); returns how many."""
        cal = self.sim.calendar
        events = [e for e in self.firm.months[month].hr_events if e.kind != "hire"]
        for e in events:
            when = cal.us_at_date(e.effective_date, time(9), system=self.hris.name)
            self.sim.kernel.call_at(max(self.sim.now_us, when), self._enter_hr_event, e)
        return len(events)

    def _enter_hr_event(self, event) -> None:
        if not self.hris.running:  # the HRIS is down: HR tries again in an hour
            self.sim.kernel.call_later(HOUR, self._enter_hr_event, event)
            return
        try:
            self.hris.apply_hr_event(event)
        except ValueError as exc:
            self.sim.trace.record("people.refused", {"system": "hris", "event": event.id, "why": str(exc)})

    def correct_time(self, entry_id: str, hours: Decimal | str) -> dict:
        """A consultant corrects an approved time entry (a new version,
        submitted) and the manager approves the correction straight away."""
        self.psa.correct_time_entry(entry_id, hours, notes="corrected after client review")
        return self.psa.approve_time_entry(entry_id, approver="manager")

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

    def collect_payments(self, share: float = 1.0) -> list[str]:
        """The AR clerk matches the bank statement: the oldest `share` of the
        open invoices are paid in full; returns their ids."""
        due = [i["id"] for i in self.billing.records("invoices") if i["status"] == "open"]
        paid = due[: round(len(due) * share)]
        for invoice_id in paid:
            self.billing.record_payment_received(invoice_id)
        return paid

    # ------------------------------------------------------------ faults, now

    def partition(self, system: str, *, hours: float = 1, between: str = "core") -> None:
        now = self.sim.now_us
        self.sim.inject(Window("partition", now, now + int(hours * HOUR), between=(between, system)))

    def outage(self, system: str, *, hours: float = 1) -> None:
        now = self.sim.now_us
        self.sim.inject(Window("outage", now, now + int(hours * HOUR), target=system))

    def throttle(self, system: str, *, rate_limit: int | None = None, window: str = "1s",
                 concurrency_limit: int | None = None) -> None:
        """From now until the world heals, `system` lets the account make
        `rate_limit` requests per `window` and have `concurrency_limit` in
        service at once -- answered the way the vendor answers (429 with
        Retry-After, 403, 400...). Laid over the chaos profile's limits."""
        self.sim.inject_system(system, SystemFaults(rate_limit=rate_limit, rate_limit_window=window,
                                                    concurrency_limit=concurrency_limit))

    def lose_answers(self, system: str, rate: str) -> None:
        """From now until the world heals, `rate` (e.g. "12%") of the answers
        `system` sends the core are lost on the way back -- after `system`
        acted on the request. Laid over whatever the chaos profile says."""
        self.sim.inject_link(LinkRule(src="core", dst=system, response_loss=rate))

    def lose_next_answer(self, system: str, *, methods: tuple[str, ...] = ("POST", "PUT", "PATCH")) -> None:
        """The next answer `system` sends the core to a request of one of
        `methods` (by default: a write) that it carried out is lost on the
        way back -- once, whatever the rates. For a story that needs the
        fault to happen, rather than hope a rate draws it."""
        self.sim.inject_lost_answer(system, "core", methods)

    def crash_core(self, *, restart_after_minutes: float = 1) -> None:
        now = self.sim.now_us
        self.sim.inject(Window("crash", now, now + int(restart_after_minutes * MINUTE), target="core"))

    def hold_deliveries(self, system: str, *, hours: float = 1) -> None:
        """Everything `system` sends the core -- webhooks, answers -- waits
        on the wire for `hours`, then arrives at once."""
        now = self.sim.now_us
        self.sim.inject(Window("hold", now, now + int(hours * HOUR), between=(system, "core")))

"""The deterministic firm generator: one seed, one professional-services firm.

``generate_firm(FirmParams(consultants=500), RandomStreams(seed))`` draws a
firm -- legal entities, roles and rates, consultants, clients, contract
families mixing T&M / fixed fee / retainer / managed service, projects and
staffing -- and then, month by month, its activity: time entries, expenses,
milestone completions and acceptances, amendments and HR events. The shapes
follow the public benchmarks in DOMAIN.md ("What the firm looks like").

Reproducibility rules:

- Every draw comes from a named stream of ``RandomStreams``; one stream per
  concern (``firm.workers``, ``firm.deals``, ...) and, for activity, one per
  concern *and month* (``firm.time:2026-02``). Adding a concern never shifts
  another, and a firm generated for 3 months has exactly the first month of
  the same firm generated for 1 month.
- Faker is used for names only (people and companies); it is slow, and a
  5,000-consultant firm has ~200k time entries.
- Nothing iterates a set or relies on ``hash()``: the output is the same under
  any ``PYTHONHASHSEED``.

Simplifications, on purpose: a business day is Monday to Friday (no public
holidays); a standard day is 8 hours; every line of a contract family shares
the family's service period; exchange rates are fixed (``FX_PER_USD``) and
used only to size prices in other currencies.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import attrs

from fake_systems.firm_model import (
    ACCEPTED,
    APPROVED,
    BILLING_MODELS,
    COMPLETED,
    FIXED_FEE,
    FLAG_DUPLICATE_NAME,
    FLAG_MISSING_TAX_ID,
    MANAGED_SERVICE,
    RATE_CHANGE,
    RECALLED_CORRECTED,
    REJECTED,
    RETAINER,
    SCOPE_CHANGE,
    T_AND_M,
    TERM_EXTENSION,
    Amendment,
    Assignment,
    Client,
    ContractLine,
    CostCentre,
    Deal,
    ExpenseEntry,
    Firm,
    HrEvent,
    LegalEntity,
    Milestone,
    MilestoneEvent,
    MonthActivity,
    Project,
    RateCardEntry,
    Role,
    RoleRate,
    Task,
    TaxRegime,
    TimeEntry,
    Worker,
    firm_to_json,
)
from simulator.random_streams import RandomStreams

__all__ = [
    "ACCEPTANCE_WINDOW_DAYS",
    "SUPPORTED_CURRENCIES",
    "FirmParams",
    "FirmParamsError",
    "business_days",
    "firm_to_json",
    "generate_firm",
]

# -- reference data ---------------------------------------------------------

SUPPORTED_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "SGD")
# Fixed rates, only to size prices and rates in each currency.
FX_PER_USD = {
    "USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"),
    "CAD": Decimal("1.37"), "AUD": Decimal("1.52"), "SGD": Decimal("1.35"),
}  # fmt: skip


def _regime(country: str, kind: str, rate: str, needs_id: bool) -> TaxRegime:
    return TaxRegime(country, kind, Decimal(rate), needs_id)


# country -> (currency, Faker locale, tax regime on services, tax-id pattern)
# Pattern: '#' a digit, '?' a capital letter. US sales tax does not apply to
# most professional services; EU/UK VAT and AU GST need the buyer's number.
COUNTRIES = {
    "US": ("USD", "en_US", _regime("US", "sales_tax", "0.00", False), None),
    "GB": ("GBP", "en_GB", _regime("GB", "vat", "0.20", True), "GB#########"),
    "DE": ("EUR", "de_DE", _regime("DE", "vat", "0.19", True), "DE#########"),
    "FR": ("EUR", "fr_FR", _regime("FR", "vat", "0.20", True), "FR###########"),
    "NL": ("EUR", "nl_NL", _regime("NL", "vat", "0.21", True), "NL#########B01"),
    "IE": ("EUR", "en_IE", _regime("IE", "vat", "0.23", True), "IE#######?"),
    "CA": ("CAD", "en_CA", _regime("CA", "gst", "0.05", False), None),
    "AU": ("AUD", "en_AU", _regime("AU", "gst", "0.10", True), "###########"),
    "SG": ("SGD", "en_US", _regime("SG", "gst", "0.09", False), None),
    "ES": ("EUR", "es_ES", _regime("ES", "vat", "0.21", True), "ES?########"),
}
# Subsidiaries in the order a growing firm opens them; the first is HQ.
ENTITY_CATALOG = (
    ("US", "Meridian Advisory Inc.", 5),
    ("GB", "Meridian Advisory Ltd", 3),
    ("DE", "Meridian Advisory GmbH", 3),
    ("FR", "Meridian Advisory SAS", 2),
    ("NL", "Meridian Advisory B.V.", 2),
    ("IE", "Meridian Advisory Ireland Ltd", 1),
    ("CA", "Meridian Advisory Canada Inc.", 2),
    ("AU", "Meridian Advisory Pty Ltd", 2),
    ("SG", "Meridian Advisory Pte. Ltd.", 1),
)
# name, level, USD cost, USD bill, target utilisation, share of headcount.
# Bill/cost ~2.2-2.3; the pyramid's mean target utilisation is ~0.70 and its
# mean bill rate ~$169/h, i.e. ~$245K/year at 120 h/month before realisation.
ROLE_CATALOG = (
    ("analyst", 1, 50, 110, "0.75", 25),
    ("consultant", 2, 64, 145, "0.75", 30),
    ("senior consultant", 3, 80, 185, "0.72", 22),
    ("manager", 4, 100, 230, "0.60", 15),
    ("principal", 5, 125, 290, "0.45", 8),
)
PRACTICES = ("Strategy", "Technology", "Operations", "Finance Transformation")
MILESTONE_NAMES = (
    "Discovery complete", "Design sign-off", "Build complete",
    "Integration tested", "UAT sign-off", "Go-live", "Hypercare exit",
)  # fmt: skip
LINE_TASKS = {
    T_AND_M: ("Discovery", "Delivery", "Project management"),
    RETAINER: ("Advisory retainer",),
    MANAGED_SERVICE: ("Service operations", "Service improvement"),
}  # fixed fee: one workstream per milestone
LINE_DESCRIPTIONS = {
    T_AND_M: "{p} advisory (time and materials)",
    FIXED_FEE: "{p} implementation (fixed fee)",
    RETAINER: "{p} advisory retainer",
    MANAGED_SERVICE: "Managed {p} service",
}
MODEL_WEIGHTS = (45, 30, 12, 13)  # BILLING_MODELS order
# category -> USD range of one receipt, net of tax
EXPENSE_CATEGORIES = (
    ("airfare", 250, 1400), ("lodging", 120, 450), ("meals", 15, 90),
    ("ground_transport", 10, 120), ("mileage", 10, 80),
)  # fmt: skip

HOURS_PER_DAY = 8
ACCEPTANCE_WINDOW_DAYS = 10  # a client sign-off later than this is "late"
REJECT_RATE = 0.02
RECALL_RATE = 0.01

_CENT = Decimal("0.01")
_QUARTER_HOURS = tuple((Decimal(u) / 4).quantize(_CENT) for u in range(200))


# -- parameters ---------------------------------------------------------------


class FirmParamsError(ValueError):
    """A FirmParams field is out of range; the message names it and the fix."""


def _currencies(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


@attrs.frozen
class FirmParams:
    consultants: int = 500
    clients: int | None = None  # None: about consultants / 10, at least 3
    months: int = 1
    entities: int = 3
    currencies: tuple[str, ...] = attrs.field(default=("USD", "EUR", "GBP"), converter=_currencies)
    start: date = date(2026, 1, 1)

    def __attrs_post_init__(self) -> None:
        _check_int("consultants", self.consultants, 1, 50_000, "a 50-5,000 firm is typical")
        if self.clients is not None:
            _check_int("clients", self.clients, 3, 50_000, "or None for ~consultants/10")
        _check_int("months", self.months, 1, 36, "months of activity to generate")
        if type(self.start) is not date or self.start.day != 1:
            raise FirmParamsError(
                f"FirmParams.start must be the first day of a month as a datetime.date, "
                f"got {self.start!r}; use e.g. date(2026, 1, 1)"
            )
        cur = self.currencies
        if (
            not isinstance(cur, tuple)
            or not cur
            or any(c not in SUPPORTED_CURRENCIES for c in cur)
            or len(set(cur)) != len(cur)
        ):
            raise FirmParamsError(
                f"FirmParams.currencies must be a non-empty tuple of distinct codes from "
                f"{SUPPORTED_CURRENCIES}, got {cur!r}; e.g. ('USD', 'EUR', 'GBP')"
            )
        most = len(_entity_choices(cur))  # >= 1: every supported currency has an entity
        note = f"for currencies {cur}"
        if most < len(ENTITY_CATALOG):
            note += f"; add currencies from {SUPPORTED_CURRENCIES} to allow more"
        _check_int("entities", self.entities, 1, most, note)

    @property
    def client_count(self) -> int:
        return self.clients if self.clients is not None else max(3, (self.consultants + 5) // 10)


def _check_int(name: str, value: object, lo: int, hi: int, note: str) -> None:
    if type(value) is not int or not lo <= value <= hi:
        raise FirmParamsError(
            f"FirmParams.{name} must be an int from {lo} to {hi} ({note}), got {value!r}"
        )


def _entity_choices(currencies: tuple[str, ...]) -> list[tuple[str, str, int]]:
    return [e for e in ENTITY_CATALOG if COUNTRIES[e[0]][0] in currencies]


# -- calendar and money helpers ---------------------------------------------


def add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y, m = d.year + y, m + 1
    last = (date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)).day
    return date(y, m, min(d.day, last))


def month_end(first: date) -> date:
    return add_months(first, 1) - timedelta(days=1)


def business_days(first: date) -> list[date]:
    """The Monday-to-Friday dates of the month starting at `first`."""
    end, d, out = month_end(first), first, []
    while d <= end:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _weekday_on_or_before(d: date) -> date:
    return d - timedelta(days=max(0, d.weekday() - 4))


def _weekday_on_or_after(d: date) -> date:
    return d + timedelta(days=(7 - d.weekday()) % 7 if d.weekday() > 4 else 0)


def _round_to(x: Decimal, step: int) -> Decimal:
    return ((x / step).quantize(Decimal(1), ROUND_HALF_EVEN) * step).quantize(_CENT)


def _amount(usd_units: int, step: int, currency: str) -> Decimal:
    """`usd_units` US dollars expressed in `currency`, rounded to `step`."""
    return _round_to(Decimal(usd_units) * FX_PER_USD[currency], step)


def _pattern(rng, pattern: str) -> str:
    return "".join(
        str(rng.randrange(10)) if ch == "#" else chr(65 + rng.randrange(26)) if ch == "?" else ch
        for ch in pattern
    )


def _counter(prefix: str, width: int):
    return (f"{prefix}{n:0{width}d}" for n in itertools.count(1)).__next__


def _ym(first: date) -> str:
    return f"{first:%Y-%m}"


def _split_allocation(rng, k: int) -> list[Decimal]:
    """Shares of a worker's billable time over `k` assignments, summing to 1."""
    if k == 1:
        pcts = [100]
    else:
        p1 = rng.randint(50, 80)
        rest = 100 - p1
        if k == 2:
            pcts = [p1, rest]
        else:
            p2 = rng.randint(rest // 2, rest - 5)
            pcts = [p1, p2, rest - p2]
    return [(Decimal(p) / 100).quantize(_CENT) for p in pcts]


def _pick(rng, assignments: list[Assignment], pcts: dict[str, int]) -> Assignment:
    """One of `assignments`, weighted by allocation. Hand-rolled on ints:
    rng.choices would take float weights and is slower on this hot path."""
    if len(assignments) == 1:
        return assignments[0]
    r = rng.randrange(sum(pcts[a.id] for a in assignments))
    for a in assignments:
        r -= pcts[a.id]
        if r < 0:
            return a
    raise AssertionError("unreachable: r < total")


_NAME_SWAPS = (
    (" & ", " and "), (" and ", " & "), (", ", " "), ("-", " "), ("Inc.", "Incorporated"),
    ("LLC", "L.L.C."), ("Ltd", "Limited"), ("PLC", "plc"), ("GmbH", "G.m.b.H."),
    ("Group", "Grp"), ("S.A.", "SA"),
)  # fmt: skip


def _name_variant(rng, name: str, used: set[str]) -> str:
    """The same company, spelled the way a second sales rep typed it."""
    options = [name.upper(), name.replace(" ", "  ", 1), name + "."]
    options += [name.replace(a, b, 1) for a, b in _NAME_SWAPS if a in name]
    options = [o for o in options if o != name and o not in used]
    return rng.choice(options) if options else name + " Holdings"


class _FirmDraw:
    """The mutable state of one generation run; `firm()` freezes the result."""

    def __init__(self, params: FirmParams, streams: RandomStreams) -> None:
        self.p, self.s = params, streams
        self.ws = params.start
        self.next_id = {
            kind: _counter(prefix, width)
            for kind, prefix, width in (
                ("entity", "LE", 2), ("role", "R", 2), ("cc", "CC", 3), ("worker", "W", 6),
                ("client", "C", 5), ("deal", "D", 5), ("line", "L", 6), ("milestone", "M", 6),
                ("project", "P", 5), ("task", "T", 6), ("assignment", "A", 6),
                ("time", "TE", 7), ("expense", "EX", 6), ("mevent", "ME", 6),
                ("amendment", "AM", 5), ("hr", "HR", 5),
            )
        }  # fmt: skip
        self.workers: list[Worker] = []
        self.clients: list[Client] = []
        self.deals: list[Deal] = []
        self.projects: list[Project] = []
        self.assignments: list[Assignment] = []
        self.assignments_of: dict[str, list[Assignment]] = {}
        self.alloc_pct: dict[str, int] = {}
        self.project_by_id: dict[str, Project] = {}
        self.project_weight: dict[str, int] = {}
        self.deal_card: dict[str, tuple[RateCardEntry, ...]] = {}
        self.deal_practice: dict[str, str] = {}
        self.deal_end: dict[str, date] = {}
        self.deal_version: dict[str, int] = {}
        self.line_term: dict[str, int] = {}
        self.milestone_pool: list[Milestone] = []
        self.planned: set[str] = set()  # membership only, never iterated
        self.pending_completion: list[tuple[date, Milestone]] = []
        self.pending_acceptance: list[tuple[date, Milestone, bool]] = []
        self.terminated: dict[str, date] = {}
        self.cost_rate: dict[str, Decimal] = {}

    def firm(self) -> Firm:
        self._draw_reference_data()
        rng = self.s.rng("firm.workers")
        for _ in range(self.p.consultants):
            self._new_worker(rng, None)
        self._draw_clients()
        rng = self.s.rng("firm.deals")
        # Every firm bills some time: the first client with nothing awkward
        # on file has time-and-materials work, whatever the draw, so even a
        # ten-person firm's month has billable hours to post and invoice.
        anchor = next((c.id for c in self.clients if not c.flags), None)
        for c in self.clients:
            n = 1 if c.duplicate_of else rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
            for i in range(n):
                self._new_deal(rng, c, None, with_time=c.id == anchor and i == 0)
        self.opening_deals = len(self.deals)
        self._staff_initial(self.s.rng("firm.staffing"))
        months = tuple(self._month(add_months(self.ws, i)) for i in range(self.p.months))
        return Firm(
            self.s.master_seed, self.p, self.entities, self.roles, self.cost_centres,
            tuple(self.workers), tuple(self.clients), tuple(self.deals), tuple(self.projects),
            tuple(self.assignments), months,
        )  # fmt: skip

    # -- the firm itself ----------------------------------------------------

    def _draw_reference_data(self) -> None:
        nid = self.next_id
        self.entities = tuple(
            LegalEntity(
                nid["entity"](), name, country,
                functional_currency=COUNTRIES[country][0], tax_regime=COUNTRIES[country][2],
            )  # fmt: skip
            for country, name, _ in _entity_choices(self.p.currencies)[: self.p.entities]
        )
        self.entity_cw = list(itertools.accumulate(
            w for c, _, w in ENTITY_CATALOG for e in self.entities if e.country == c
        ))  # fmt: skip
        self.entity_of = {e.id: e for e in self.entities}
        currencies = sorted(self.p.currencies)
        self.roles = tuple(
            Role(nid["role"](), name, level, Decimal(util), tuple(
                RoleRate(c, _amount(cost, 1, c), _amount(bill, 5, c)) for c in currencies
            ))  # fmt: skip
            for name, level, cost, bill, util, _ in ROLE_CATALOG
        )
        self.role_of = {r.id: r for r in self.roles}
        self.role_cw = list(itertools.accumulate(r[5] for r in ROLE_CATALOG))
        self.blended_role = self.roles[2]  # senior consultant: sizes estimates
        self.cost_centres = tuple(
            CostCentre(nid["cc"](), e.id, practice, f"{e.country} {practice}")
            for e in self.entities
            for practice in PRACTICES
        )
        self.cc_of = {(cc.entity_id, cc.practice): cc.id for cc in self.cost_centres}

    def _new_worker(self, rng, hire_date: date | None) -> Worker:
        e = rng.choices(self.entities, cum_weights=self.entity_cw)[0]
        role = rng.choices(self.roles, cum_weights=self.role_cw)[0]
        practice = PRACTICES[rng.randrange(len(PRACTICES))]
        if hire_date is None:
            hire_date = self.ws - timedelta(days=rng.randint(20, 12 * 365))
        util = role.target_utilisation + Decimal(rng.randint(-4, 4)) / 100
        cost = _round_to(role.rate(e.functional_currency).cost_rate * rng.randint(95, 105) / 100, 1)
        locale = COUNTRIES[e.country][1]
        fk = self.s.faker("firm.worker_names." + locale, locale)
        w = Worker(
            self.next_id["worker"](), fk.first_name(), fk.last_name(), role.id, e.id,
            self.cc_of[e.id, practice], hire_date, cost, e.functional_currency, util,
        )  # fmt: skip
        self.workers.append(w)
        self.assignments_of[w.id] = []
        self.cost_rate[w.id] = cost
        return w

    def _draw_clients(self) -> None:
        rng = self.s.rng("firm.clients")
        total = self.p.client_count
        n_twins = max(1, round(total * 0.02))
        home = [e.country for e in self.entities]
        everywhere = list(COUNTRIES)
        used: set[str] = set()
        originals = []
        for _ in range(total - n_twins):
            country = rng.choice(home) if rng.random() < 0.75 else rng.choice(everywhere)
            currency, locale, regime, pattern = COUNTRIES[country]
            bill_to = next(
                itertools.chain(
                    (e for e in self.entities if e.country == country),
                    (e for e in self.entities if e.functional_currency == currency),
                    self.entities,
                )
            )
            if currency not in self.p.currencies:
                currency = bill_to.functional_currency
            fk = self.s.faker("firm.client_names." + locale, locale)
            name = fk.company()
            for _ in range(20):
                if name not in used:
                    break
                name = fk.company()
            else:
                name = f"{name} {len(used)}"
            used.add(name)
            tax_id = _pattern(rng, pattern) if regime.requires_client_tax_id else None
            originals.append(
                Client(self.next_id["client"](), name, country, currency, bill_to.id, tax_id)
            )
        needs_id = [i for i, c in enumerate(originals) if c.tax_id is not None]
        if needs_id:
            for i in sorted(rng.sample(needs_id, max(1, round(len(needs_id) * 0.02)))):
                originals[i] = attrs.evolve(originals[i], tax_id=None, flags=(FLAG_MISSING_TAX_ID,))
        twins = []
        for i in sorted(rng.sample(range(len(originals)), n_twins)):
            o = originals[i]
            name = _name_variant(rng, o.name, used)
            used.add(name)
            twins.append(attrs.evolve(
                o, id=self.next_id["client"](), name=name,
                flags=o.flags + (FLAG_DUPLICATE_NAME,), duplicate_of=o.id,
            ))  # fmt: skip
        self.clients = originals + twins

    # -- deals, lines, projects -------------------------------------------------

    def _new_deal(self, rng, client: Client, month: date | None, *, with_time: bool = False) -> Deal:
        models: list[str] = []
        for _ in range(rng.choices((1, 2, 3), weights=(45, 35, 20))[0]):
            m = rng.choices(BILLING_MODELS, weights=MODEL_WEIGHTS)[0]
            while m in models:
                m = rng.choices(BILLING_MODELS, weights=MODEL_WEIGHTS)[0]
            models.append(m)
        if with_time and T_AND_M not in models:
            models[0] = T_AND_M
        if month is None:  # signed before the window, running at least 3 months into it
            back = rng.randint(1, 12)
            start = add_months(self.ws, -back) + timedelta(days=rng.randint(0, 27))
            term = back + rng.randint(3, 24)  # never depends on params.months
            close = _weekday_on_or_before(start - timedelta(days=rng.randint(7, 45)))
        else:  # closed-won this month
            close = rng.choice(business_days(month))
            start = close + timedelta(days=rng.randint(3, 20))
            term = rng.randint(3, 18)
        if MANAGED_SERVICE in models:
            term = max(term, 12)
        end = add_months(start, term) - timedelta(days=1)
        deal_id = self.next_id["deal"]()
        practice = PRACTICES[rng.randrange(len(PRACTICES))]
        lines = tuple(
            self._new_line(rng, deal_id, m, client.currency, start, end, term, practice)
            for m in models
        )
        deal = Deal(
            deal_id, client.id, client.bill_to_entity_id, client.currency,
            f"{client.name} - {practice} {close.year}", close, start, end, lines,
        )  # fmt: skip
        self.deals.append(deal)
        self.deal_practice[deal_id] = practice
        self.deal_end[deal_id] = end
        cards = [ln.rate_card for ln in lines if ln.billing_model == T_AND_M]
        self.deal_card[deal_id] = cards[0] if cards else ()
        self._new_project(deal)
        return deal

    def _new_line(self, rng, deal_id, model, currency, start, end, term, practice) -> ContractLine:
        line_id = self.next_id["line"]()
        blended = self.blended_role.rate(currency).bill_rate
        kw: dict = {}
        if model == T_AND_M:
            price = _amount(rng.randint(60, 1500) * 1000, 1000, currency)
            off = 100 - rng.randint(0, 10)  # negotiated discount off list
            kw["rate_card"] = tuple(
                RateCardEntry(r.id, _round_to(r.rate(currency).bill_rate * off / 100, 5))
                for r in self.roles
            )
            kw["estimated_hours"] = int(price / blended)
        elif model == FIXED_FEE:
            price = _amount(rng.randint(40, 600) * 1000, 1000, currency)
            kw["milestones"] = self._new_milestones(rng, line_id, price, start, end)
            kw["estimated_hours"] = int(price / blended)
        else:
            lo, hi = (50, 600) if model == RETAINER else (80, 1200)
            fee = _amount(rng.randint(lo, hi) * 100, 100, currency)
            price = fee * term
            kw["monthly_fee"], kw["term_months"] = fee, term
            self.line_term[line_id] = term
        ssp = _round_to(price * rng.randint(92, 112) / 100, 1)
        desc = LINE_DESCRIPTIONS[model].format(p=practice)
        return ContractLine(line_id, deal_id, model, desc, start, end, price, ssp, **kw)

    def _new_milestones(self, rng, line_id, price, start, end) -> tuple[Milestone, ...]:
        k = rng.randint(2, 5)
        names = [MILESTONE_NAMES[i] for i in sorted(rng.sample(range(len(MILESTONE_NAMES)), k))]
        weights = [rng.randint(1, 4) for _ in names]
        whole, total_w = int(price), sum(weights)
        amounts = [Decimal(whole * w // total_w).quantize(_CENT) for w in weights[:-1]]
        amounts.append(price - sum(amounts))  # the last takes the rest: exact sum
        span = (end - start).days
        out = tuple(
            Milestone(
                self.next_id["milestone"](), line_id, i + 1, name, amount,
                _weekday_on_or_before(start + timedelta(days=span * (i + 1) // k)),
            )  # fmt: skip
            for i, (name, amount) in enumerate(zip(names, amounts))
        )
        self.milestone_pool.extend(out)
        return out

    def _new_project(self, deal: Deal) -> Project:
        project_id = self.next_id["project"]()
        tasks = []
        for li, line in enumerate(deal.lines, 1):
            if line.billing_model == FIXED_FEE:
                names = tuple("Workstream: " + m.name for m in line.milestones)
            else:
                names = LINE_TASKS[line.billing_model]
            for ti, name in enumerate(names, 1):
                tasks.append(Task(
                    self.next_id["task"](), project_id, line.id, f"{li}.{ti}", name,
                    line.billing_model,
                ))  # fmt: skip
        p = Project(
            project_id, deal.id, deal.client_id, deal.entity_id, deal.currency, deal.name,
            deal.service_start, deal.service_end, tuple(tasks),
        )  # fmt: skip
        self.projects.append(p)
        self.project_by_id[project_id] = p
        months = max(1, (deal.service_end - deal.service_start).days // 30)
        usd = sum(ln.price for ln in deal.lines) / FX_PER_USD[deal.currency]
        self.project_weight[project_id] = int(usd / months) + 1  # staffing follows revenue
        return p

    # -- staffing -------------------------------------------------------------------

    def _assign(self, w: Worker, p: Project, allocation: Decimal, start: date) -> None:
        card = {e.role_id: e.bill_rate for e in self.deal_card[p.deal_id]}
        rate = card.get(w.role_id) or self.role_of[w.role_id].rate(p.currency).bill_rate
        a = Assignment(
            self.next_id["assignment"](), w.id, p.id, w.role_id, start, p.end, allocation,
            rate, p.currency,
        )  # fmt: skip
        self.assignments.append(a)
        self.assignments_of[w.id].append(a)
        self.alloc_pct[a.id] = int(allocation * 100)

    def _choose_projects(self, rng, w: Worker, k: int, pools) -> list[Project]:
        """Up to `k` distinct projects new to `w`, weighted by size, mostly in
        the worker's own legal entity (the rest is intercompany staffing)."""
        taken = {a.project_id for a in self.assignments_of[w.id]}  # membership only
        chosen: list[Project] = []
        for _ in range(8 * k):
            if len(chosen) == k:
                break
            pool = pools.get(w.entity_id) if rng.random() < 0.8 else None
            projects, cw = pool or pools[None]
            p = rng.choices(projects, cum_weights=cw)[0]
            if p.id not in taken:
                taken.add(p.id)
                chosen.append(p)
        return chosen

    def _pools(self, projects: list[Project]) -> dict:
        """Projects with cumulative staffing weights: per entity, and all (None)."""
        pools = {}
        for key in [None] + [e.id for e in self.entities]:
            ps = [p for p in projects if key is None or p.entity_id == key]
            if ps:
                cw = list(itertools.accumulate(self.project_weight[p.id] for p in ps))
                pools[key] = (ps, cw)
        return pools

    def _staff_initial(self, rng) -> None:
        pools = self._pools(self.projects)
        for w in self.workers:
            k = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
            chosen = self._choose_projects(rng, w, min(k, len(self.projects)), pools)
            for p, share in zip(chosen, _split_allocation(rng, len(chosen))):
                self._assign(w, p, share, max(p.start, w.hire_date))

    # -- a month of activity ----------------------------------------------------------

    def _month(self, first: date) -> MonthActivity:
        last, days, ym = month_end(first), business_days(first), _ym(first)
        closed = self._close_deals(first, last, ym)
        hr_events = self._hr_events(first, last, days, ym)
        self._roll_on(first, last, days, ym)
        amendments = self._amendments(first, last, days, ym)
        roster = []  # (worker, business days employed this month)
        for w in self.workers:
            term = self.terminated.get(w.id)
            employed = [d for d in days if w.hire_date <= d and (term is None or d <= term)]
            if employed:
                roster.append((w, employed))
        return MonthActivity(
            first, len(days), tuple(d.id for d in closed),
            self._time_entries(roster, len(days), ym), self._expenses(roster, ym),
            self._milestone_events(first, last, ym), amendments, hr_events,
        )  # fmt: skip

    def _close_deals(self, first: date, last: date, ym: str) -> list[Deal]:
        """New business: ~9% of the opening book a month, which keeps the
        book roughly level as deals (3-18 months, ~11 with managed services)
        run out."""
        rng = self.s.rng(f"firm.deals:{ym}")
        srng = self.s.rng(f"firm.staffing:{ym}")
        n = max(1, round(self.opening_deals * 0.09 * rng.uniform(0.6, 1.4)))
        closed = []
        for _ in range(n):
            deal = self._new_deal(rng, rng.choice(self.clients), first)
            closed.append(deal)
            p = self.projects[-1]
            staff = [
                w for w in self.workers
                if w.hire_date <= deal.close_date and w.id not in self.terminated
            ]  # fmt: skip
            staff = [w for w in staff if w.entity_id == deal.entity_id] or staff
            for w in srng.sample(staff, min(srng.randint(2, 8), len(staff))):
                self._assign(w, p, Decimal(srng.randint(20, 50)) / 100, p.start)
        return closed

    def _roll_on(self, first: date, last: date, days: list[date], ym: str) -> None:
        """Staff whoever is on the bench on a business day of the month onto a
        project running that day, from that day on: nobody employed goes a
        month without work, and nobody idles long between projects."""
        srng = self.s.rng(f"firm.staffing:{ym}")
        pools_on: dict[date, dict] = {}
        for w in self.workers:
            if w.hire_date > last or self.terminated.get(w.id, date.max) < first:
                continue
            until = self.terminated.get(w.id, date.max)
            assigns = self.assignments_of[w.id]
            bench = next(
                (
                    d for d in days
                    if w.hire_date <= d <= until
                    and not any(a.start <= d <= a.end for a in assigns)
                ),
                None,
            )  # fmt: skip
            if bench is None:
                continue
            if bench not in pools_on:
                running = [p for p in self.projects if p.start <= bench < p.end]
                pools_on[bench] = self._pools(running)
            if pools_on[bench]:
                for p in self._choose_projects(srng, w, 1, pools_on[bench]):
                    self._assign(w, p, Decimal("1.00"), bench)

    def _hr_events(self, first, last, days, ym) -> tuple[HrEvent, ...]:
        """Hires (~0.8% of headcount a month), terminations (~0.6%) and
        cost-rate rises (~2%), effective-dated inside the month."""
        rng = self.s.rng(f"firm.hr:{ym}")
        srng = self.s.rng(f"firm.staffing:{ym}")
        staff = [w for w in self.workers if w.hire_date < first and w.id not in self.terminated]
        headcount = len(staff)
        drafts = []  # (effective date, kind rank, worker id, kind, old, new, currency)
        for _ in range(max(1, round(headcount * 0.008 * rng.uniform(0.5, 1.5)))):
            w = self._new_worker(rng, rng.choice(days))
            drafts.append((w.hire_date, 0, w.id, "hire", None, w.cost_rate, w.cost_currency))
            active = [p for p in self.projects if p.start <= w.hire_date <= p.end]
            if active:
                k = min(srng.choice((1, 1, 2)), len(active))
                pools = self._pools(active)
                chosen = self._choose_projects(srng, w, k, pools)
                for p, share in zip(chosen, _split_allocation(srng, len(chosen))):
                    self._assign(w, p, share, w.hire_date)
        n_leave = max(1, round(headcount * 0.006 * rng.uniform(0.5, 1.5))) if headcount >= 10 else 0
        for w in rng.sample(staff, n_leave):
            self.terminated[w.id] = day = rng.choice(days)
            drafts.append((day, 2, w.id, "termination", None, None, None))
        staying = [w for w in staff if w.id not in self.terminated]
        n_rate = min(len(staying), max(1, round(headcount * 0.02 * rng.uniform(0.5, 1.5))))
        for w in rng.sample(staying, n_rate):
            old = self.cost_rate[w.id]
            self.cost_rate[w.id] = new = _round_to(old * (100 + rng.randint(2, 8)) / 100, 1)
            day = rng.choice(days)
            drafts.append((day, 1, w.id, "cost_rate_change", old, new, w.cost_currency))
        drafts.sort(key=lambda d: d[:3])
        return tuple(
            HrEvent(self.next_id["hr"](), kind, wid, day, old, new, cur)
            for day, _, wid, kind, old, new, cur in drafts
        )

    def _amendments(self, first: date, last: date, days: list[date], ym: str):
        rng = self.s.rng(f"firm.amendments:{ym}")
        live = [
            d for d in self.deals
            if d.close_date < first and d.service_start <= last and self.deal_end[d.id] >= first
        ]  # fmt: skip
        n = min(len(live), max(1, round(len(live) * 0.04 * rng.uniform(0.5, 1.5))))
        out = []
        for deal in sorted(rng.sample(live, n), key=lambda d: d.id):
            tm = next((ln for ln in deal.lines if ln.billing_model == T_AND_M), None)
            recurring = next(
                (ln for ln in deal.lines if ln.billing_model in (RETAINER, MANAGED_SERVICE)), None
            )
            kinds = [RATE_CHANGE] * bool(tm) + [SCOPE_CHANGE] + [TERM_EXTENSION] * bool(recurring)
            kind = rng.choice(kinds)
            signed = rng.choice(days)
            version = self.deal_version[deal.id] = self.deal_version.get(deal.id, 1) + 1
            head = (self.next_id["amendment"](), deal.id, version, kind, signed)
            if kind == RATE_CHANGE:
                effective = add_months(first, 1) if rng.random() < 0.6 else signed
                up = 100 + rng.randint(3, 8)
                card = tuple(
                    RateCardEntry(e.role_id, _round_to(e.bill_rate * up / 100, 5))
                    for e in self.deal_card[deal.id]
                )
                self.deal_card[deal.id] = card
                a = Amendment(*head, effective, tm.id, Decimal("0.00"), rate_card=card)
            elif kind == SCOPE_CHANGE:
                effective = _weekday_on_or_after(signed + timedelta(days=rng.randint(0, 10)))
                term = rng.randint(2, 6)
                end = add_months(effective, term) - timedelta(days=1)
                practice = self.deal_practice[deal.id]
                line = self._new_line(
                    rng, deal.id, FIXED_FEE, deal.currency, effective, end, term, practice
                )
                self.deal_end[deal.id] = max(self.deal_end[deal.id], end)
                a = Amendment(*head, effective, line.id, line.price, added_line=line)
            else:
                extra = rng.randint(3, 12)
                term = self.line_term[recurring.id] = self.line_term[recurring.id] + extra
                end = add_months(recurring.service_start, term) - timedelta(days=1)
                self.deal_end[deal.id] = max(self.deal_end[deal.id], end)
                a = Amendment(
                    *head, signed, recurring.id, recurring.monthly_fee * extra,
                    new_service_end=end, new_term_months=term,
                )  # fmt: skip
            out.append(a)
        return tuple(out)

    def _time_entries(self, roster, n_days: int, ym: str) -> tuple[TimeEntry, ...]:
        """~20-60 entries per consultant, in quarter hours, summing to about
        target utilisation x standard hours (PTO counts as available time, as
        in the SPI benchmark's 2,080-hour year)."""
        rng = self.s.rng(f"firm.time:{ym}")
        orng = self.s.rng(f"firm.time_outcomes:{ym}")  # outcomes never shift hours
        next_id, pcts, projects = self.next_id["time"], self.alloc_pct, self.project_by_id
        hours_of = _QUARTER_HOURS
        out = []
        for w, employed in roster:
            assigns = self.assignments_of[w.id]
            full_month = len(employed) == n_days
            worked = employed
            if full_month:
                off = rng.sample(employed, rng.choices((0, 1, 2, 3), weights=(45, 30, 15, 10))[0])
                worked = [d for d in employed if d not in off]
            plan = []
            for d in worked:
                active = [a for a in assigns if a.start <= d <= a.end]
                if active:
                    plan.append((d, active))
            n_plan = len(plan)
            if not n_plan:
                continue
            target = float(w.target_utilisation) * HOURS_PER_DAY * len(employed)
            units = min(max(n_plan, round(target * rng.uniform(0.94, 1.06) * 4)), 48 * n_plan)
            if full_month:
                n = rng.randint(max(20, n_plan), 60)
            else:
                n = rng.randint(n_plan, min(60, 3 * n_plan))
            n = min(n, units)
            per_day = [1] * n_plan
            for _ in range(n - n_plan):
                per_day[rng.randrange(n_plan)] += 1
            weights = [rng.randint(8, 12) for _ in range(n_plan)]
            total_w = sum(weights)
            day_units = [units * wt // total_w for wt in weights]
            for _ in range(units - sum(day_units)):
                day_units[rng.randrange(n_plan)] += 1
            for (d, active), c, u in zip(plan, per_day, day_units):
                u = max(u, c)
                if c == 1:
                    parts = (u,)
                else:
                    cuts = sorted(rng.sample(range(1, u), c - 1))
                    parts = [b - a for a, b in zip([0, *cuts], [*cuts, u])]
                for part in parts:
                    a = _pick(rng, active, pcts)
                    tasks = projects[a.project_id].tasks
                    task = tasks[rng.randrange(len(tasks))]
                    o = orng.random()
                    if o >= REJECT_RATE + RECALL_RATE:
                        outcome, corrected = APPROVED, None
                    elif o < REJECT_RATE:
                        outcome, corrected = REJECTED, None
                    else:
                        fixed = max(1, part + orng.choice((-4, -2, -1, 1, 2, 4)))
                        outcome = RECALLED_CORRECTED
                        corrected = hours_of[fixed if fixed != part else part + 1]
                    out.append(TimeEntry(
                        next_id(), w.id, a.id, a.project_id, task.id, d, hours_of[part],
                        outcome, corrected,
                    ))  # fmt: skip
        return tuple(out)

    def _expenses(self, roster, ym: str) -> tuple[ExpenseEntry, ...]:
        rng = self.s.rng(f"firm.expenses:{ym}")
        out = []
        for w, employed in roster:
            if rng.random() >= 0.3:
                continue
            regime = self.entity_of[w.entity_id].tax_regime
            for _ in range(rng.randint(1, 3)):
                d = rng.choice(employed)
                active = [a for a in self.assignments_of[w.id] if a.start <= d <= a.end]
                if not active:
                    continue
                a = _pick(rng, active, self.alloc_pct)
                category, lo, hi = EXPENSE_CATEGORIES[rng.randrange(len(EXPENSE_CATEGORIES))]
                usd = Decimal(rng.randint(lo * 100, hi * 100)) / 100
                amount = (usd * FX_PER_USD[w.cost_currency]).quantize(_CENT)
                out.append(ExpenseEntry(
                    self.next_id["expense"](), w.id, a.project_id, d, category, w.cost_currency,
                    amount, (amount * regime.services_rate).quantize(_CENT),
                    rng.random() < 0.85, REJECTED if rng.random() < 0.04 else APPROVED,
                ))  # fmt: skip
        return tuple(out)

    def _milestone_events(self, first: date, last: date, ym: str) -> tuple[MilestoneEvent, ...]:
        """Completions near the due date (a quarter slip by weeks); acceptances
        a few days later, or for a fifth weeks later. An acceptance more than
        ACCEPTANCE_WINDOW_DAYS after the due date is "late" (billing held).
        A date past `last` is carried to the month it falls in."""
        rng = self.s.rng(f"firm.milestones:{ym}")
        horizon = last + timedelta(days=7)  # the earliest a milestone finishes early
        oldest = self.ws - timedelta(days=30)  # a slip is at most 30 days
        for m in self.milestone_pool:
            if m.id in self.planned or m.due_date < oldest or m.due_date > horizon:
                continue
            self.planned.add(m.id)
            slip = rng.randint(-7, 3) if rng.random() < 0.75 else rng.randint(4, 30)
            done = m.due_date + timedelta(days=slip)
            if done >= self.ws:  # else completed before the firm's history starts
                self.pending_completion.append((_weekday_on_or_after(max(first, done)), m))
        drafts = []
        due_now = sorted(
            (x for x in self.pending_completion if x[0] <= last), key=lambda x: (x[0], x[1].id)
        )
        self.pending_completion = [x for x in self.pending_completion if x[0] > last]
        for done, m in due_now:
            drafts.append((done, 0, m, COMPLETED, False))
            lag = rng.randint(0, 7) if rng.random() < 0.8 else rng.randint(11, 45)
            accepted = _weekday_on_or_after(done + timedelta(days=lag))
            late = (accepted - m.due_date).days > ACCEPTANCE_WINDOW_DAYS
            self.pending_acceptance.append((accepted, m, late))
        for accepted, m, late in self.pending_acceptance:
            if accepted <= last:
                drafts.append((accepted, 1, m, ACCEPTED, late))
        self.pending_acceptance = [x for x in self.pending_acceptance if x[0] > last]
        drafts.sort(key=lambda x: (x[0], x[1], x[2].id))
        return tuple(
            MilestoneEvent(self.next_id["mevent"](), m.id, m.line_id, kind, on, late)
            for on, _, m, kind, late in drafts
        )


def generate_firm(params: FirmParams, streams: RandomStreams) -> Firm:
    """Draw the firm described by `params` from `streams`: the same params and
    master seed give the same firm, byte for byte (see ``firm_to_json``)."""
    if not isinstance(params, FirmParams):
        raise TypeError(f"params must be a FirmParams, got {type(params).__name__}")
    if not isinstance(streams, RandomStreams):
        raise TypeError(f"streams must be a RandomStreams, got {type(streams).__name__}")
    return _FirmDraw(params, streams).firm()

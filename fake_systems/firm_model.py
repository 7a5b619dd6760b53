"""The records of a generated firm: plain, frozen, comparable data.

Everything here is dumb immutable data in the style of beancount's
``Amount``/``Posting``: attrs frozen records holding only ``str``, ``int``,
``bool``, ``Decimal``, ``date``, ``None`` and tuples of those (or of other
records). No dicts, no floats, no behaviour beyond lookups and counts. The
generator (``firm_generator``) builds them; the fake systems load them; the
canonical JSON encoding (``firm_to_json``) is what reproducibility tests
compare byte for byte.

Money is ``Decimal`` with two places, always beside a currency code; hours
are ``Decimal`` in quarter-hour steps with two places (``"7.25"``).

Identifiers come from one counter per kind (``W000001``, ``TE0000001``),
never from uuid, so a firm is reproducible and a human can read a trace.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from fake_systems.firm_generator import FirmParams

__all__ = [
    "ACCEPTED",
    "AMENDMENT_KINDS",
    "APPROVED",
    "BILLING_MODELS",
    "COMPLETED",
    "FIXED_FEE",
    "FLAG_DUPLICATE_NAME",
    "FLAG_MISSING_TAX_ID",
    "HR_EVENT_KINDS",
    "MANAGED_SERVICE",
    "RATE_CHANGE",
    "RECALLED_CORRECTED",
    "REJECTED",
    "RETAINER",
    "SCOPE_CHANGE",
    "T_AND_M",
    "TERM_EXTENSION",
    "Amendment",
    "Assignment",
    "Client",
    "ContractLine",
    "CostCentre",
    "Deal",
    "ExpenseEntry",
    "Firm",
    "HrEvent",
    "LegalEntity",
    "Milestone",
    "MilestoneEvent",
    "MonthActivity",
    "Project",
    "RateCardEntry",
    "Role",
    "RoleRate",
    "Task",
    "TaxRegime",
    "TimeEntry",
    "Worker",
    "firm_to_json",
]

# Billing models of a contract line.
T_AND_M = "t_and_m"
FIXED_FEE = "fixed_fee"
RETAINER = "retainer"
MANAGED_SERVICE = "managed_service"
BILLING_MODELS = (T_AND_M, FIXED_FEE, RETAINER, MANAGED_SERVICE)

# Intended outcomes of a submitted time entry or expense.
APPROVED = "approved"
REJECTED = "rejected"
RECALLED_CORRECTED = "recalled_corrected"  # approved, recalled, corrected, re-approved

# Milestone events.
COMPLETED = "completed"
ACCEPTED = "accepted"

# Amendment kinds.
RATE_CHANGE = "rate_change"
SCOPE_CHANGE = "scope_change"
TERM_EXTENSION = "term_extension"
AMENDMENT_KINDS = (RATE_CHANGE, SCOPE_CHANGE, TERM_EXTENSION)

# HR event kinds.
HR_EVENT_KINDS = ("hire", "cost_rate_change", "termination")

# Deliberately awkward clients, flagged so scenarios can find them.
FLAG_MISSING_TAX_ID = "missing_tax_id"  # country requires a registration; none on file
FLAG_DUPLICATE_NAME = "duplicate_name"  # same client as `duplicate_of`, name spelled differently


# -- reference data ---------------------------------------------------------


@attrs.frozen
class TaxRegime:
    """Indirect tax on professional services in one country."""

    country: str
    kind: str  # "vat", "gst" or "sales_tax"
    services_rate: Decimal  # e.g. Decimal("0.20"); US sales tax: none on services
    requires_client_tax_id: bool  # B2B invoices need the client's registration


@attrs.frozen
class LegalEntity:
    """A subsidiary: the ERP's unit of books, currency and tax."""

    id: str
    name: str
    country: str
    functional_currency: str
    tax_regime: TaxRegime


@attrs.frozen
class RoleRate:
    currency: str
    cost_rate: Decimal  # standard hourly cost
    bill_rate: Decimal  # list hourly price; always above cost


@attrs.frozen
class Role:
    id: str
    name: str
    level: int  # 1 = most junior
    target_utilisation: Decimal
    rates: tuple[RoleRate, ...]  # one per firm currency, sorted by currency

    def rate(self, currency: str) -> RoleRate:
        for r in self.rates:
            if r.currency == currency:
                return r
        raise KeyError(f"role {self.id} has no rates in {currency}")


@attrs.frozen
class CostCentre:
    id: str
    entity_id: str
    practice: str
    name: str


@attrs.frozen
class Worker:
    """A consultant as the HRIS knows them on their hire date (or on the
    firm's start date if hired earlier). Later changes are ``HrEvent``s."""

    id: str
    first_name: str
    last_name: str
    role_id: str
    entity_id: str
    cost_centre_id: str
    hire_date: date
    cost_rate: Decimal  # hourly, in cost_currency
    cost_currency: str  # the home entity's functional currency
    target_utilisation: Decimal  # billable share of standard hours


@attrs.frozen
class Client:
    id: str
    name: str
    country: str
    currency: str
    bill_to_entity_id: str
    tax_id: str | None
    flags: tuple[str, ...] = ()  # FLAG_MISSING_TAX_ID, FLAG_DUPLICATE_NAME
    duplicate_of: str | None = None


# -- commercial: deals (contract families) ----------------------------------


@attrs.frozen
class RateCardEntry:
    role_id: str
    bill_rate: Decimal  # in the deal's currency


@attrs.frozen
class Milestone:
    id: str
    line_id: str
    seq: int
    name: str
    amount: Decimal
    due_date: date


@attrs.frozen
class ContractLine:
    """One performance obligation in a contract family.

    `price` is the transaction price of the line: for fixed fee the sum of
    its milestones (exactly), for retainer and managed service
    ``monthly_fee * term_months`` (exactly), for T&M the estimate.
    """

    id: str
    deal_id: str
    billing_model: str
    description: str
    service_start: date
    service_end: date
    price: Decimal
    standalone_selling_price: Decimal
    monthly_fee: Decimal | None = None  # retainer, managed_service
    term_months: int | None = None  # retainer, managed_service
    estimated_hours: int | None = None  # t_and_m, fixed_fee (input method)
    rate_card: tuple[RateCardEntry, ...] = ()  # t_and_m
    milestones: tuple[Milestone, ...] = ()  # fixed_fee


@attrs.frozen
class Deal:
    """A closed-won opportunity and its contract family, as first signed
    (version 1). Amendments are separate records."""

    id: str
    client_id: str
    entity_id: str
    currency: str
    name: str
    close_date: date
    service_start: date
    service_end: date
    lines: tuple[ContractLine, ...]


# -- delivery: projects, WBS, staffing ---------------------------------------


@attrs.frozen
class Task:
    id: str
    project_id: str
    line_id: str
    wbs: str  # "2.1": line 2, task 1
    name: str
    billing_model: str


@attrs.frozen
class Project:
    id: str
    deal_id: str
    client_id: str
    entity_id: str
    currency: str
    name: str
    start: date
    end: date
    tasks: tuple[Task, ...]


@attrs.frozen
class Assignment:
    """A worker staffed on a project, at a bill rate, until the project ends.
    A termination does not end it: telling the PSA is the HRIS sync's job."""

    id: str
    worker_id: str
    project_id: str
    role_id: str
    start: date
    end: date
    allocation: Decimal  # share of the worker's billable time, e.g. "0.60"
    bill_rate: Decimal
    currency: str


# -- a month's activity -----------------------------------------------------


@attrs.frozen
class TimeEntry:
    id: str
    worker_id: str
    assignment_id: str
    project_id: str
    task_id: str
    work_date: date
    hours: Decimal
    outcome: str  # APPROVED, REJECTED, RECALLED_CORRECTED
    corrected_hours: Decimal | None = None  # set only when RECALLED_CORRECTED


@attrs.frozen
class ExpenseEntry:
    id: str
    worker_id: str
    project_id: str
    incurred_on: date
    category: str
    currency: str
    amount: Decimal  # net of tax
    tax_amount: Decimal
    billable: bool
    outcome: str  # APPROVED, REJECTED


@attrs.frozen
class MilestoneEvent:
    id: str
    milestone_id: str
    line_id: str
    kind: str  # COMPLETED, ACCEPTED
    on: date
    late: bool  # ACCEPTED more than ACCEPTANCE_WINDOW_DAYS after the due date


@attrs.frozen
class Amendment:
    """A change order to a deal, effective-dated, versioned (baseline = 1)."""

    id: str
    deal_id: str
    version: int
    kind: str  # RATE_CHANGE, SCOPE_CHANGE, TERM_EXTENSION
    signed_on: date
    effective_date: date
    line_id: str  # the line changed, or the line added by a scope change
    price_delta: Decimal  # change to the family's transaction price
    rate_card: tuple[RateCardEntry, ...] = ()  # RATE_CHANGE: the new card
    added_line: ContractLine | None = None  # SCOPE_CHANGE: a new fixed-fee line
    new_service_end: date | None = None  # TERM_EXTENSION
    new_term_months: int | None = None  # TERM_EXTENSION


@attrs.frozen
class HrEvent:
    id: str
    kind: str  # "hire", "cost_rate_change", "termination"
    worker_id: str
    effective_date: date  # termination: the last day worked
    old_cost_rate: Decimal | None = None
    new_cost_rate: Decimal | None = None
    currency: str | None = None


@attrs.frozen
class MonthActivity:
    month: date  # first day of the month
    business_days: int
    closed_deal_ids: tuple[str, ...]  # deals closed-won this month
    time_entries: tuple[TimeEntry, ...]
    expenses: tuple[ExpenseEntry, ...]
    milestone_events: tuple[MilestoneEvent, ...]
    amendments: tuple[Amendment, ...]
    hr_events: tuple[HrEvent, ...]


@attrs.frozen
class Firm:
    """A whole generated firm.

    Milestones due before `params.start` are history -- completed, accepted
    and billed before the simulation began -- except those with a COMPLETED
    event in `months` (they slipped past the start and were still open)."""

    seed: int
    params: FirmParams
    entities: tuple[LegalEntity, ...]
    roles: tuple[Role, ...]
    cost_centres: tuple[CostCentre, ...]
    workers: tuple[Worker, ...]
    clients: tuple[Client, ...]
    deals: tuple[Deal, ...]
    projects: tuple[Project, ...]
    assignments: tuple[Assignment, ...]
    months: tuple[MonthActivity, ...]

    def summary(self) -> dict[str, int]:
        """Counts of every kind of record, for logs and eyeballing."""
        lines = [ln for d in self.deals for ln in d.lines]
        counts = {
            "entities": len(self.entities),
            "roles": len(self.roles),
            "cost_centres": len(self.cost_centres),
            "workers": len(self.workers),
            "clients": len(self.clients),
            "clients_missing_tax_id": sum(FLAG_MISSING_TAX_ID in c.flags for c in self.clients),
            "clients_duplicate_name": sum(FLAG_DUPLICATE_NAME in c.flags for c in self.clients),
            "deals": len(self.deals),
            "contract_lines": len(lines),
            "milestones": sum(len(ln.milestones) for ln in lines),
            "projects": len(self.projects),
            "tasks": sum(len(p.tasks) for p in self.projects),
            "assignments": len(self.assignments),
        }
        for model in BILLING_MODELS:
            counts["lines_" + model] = sum(ln.billing_model == model for ln in lines)
        for kind in ("time_entries", "expenses", "milestone_events", "amendments", "hr_events"):
            counts[kind] = sum(len(getattr(m, kind)) for m in self.months)
        counts["time_entries_rejected"] = sum(
            e.outcome == REJECTED for m in self.months for e in m.time_entries
        )
        counts["time_entries_recalled"] = sum(
            e.outcome == RECALLED_CORRECTED for m in self.months for e in m.time_entries
        )
        return counts


# -- canonical JSON ---------------------------------------------------------

# Field names per record class, looked up once: attrs.asdict is general and
# several times slower on the ~200k time entries of a large firm.
_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    if isinstance(value, str) or value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        if not attrs.has(cls):
            raise TypeError(f"firm_to_json cannot encode {cls.__name__} {value!r}")
        names = _FIELDS[cls] = tuple(a.name for a in attrs.fields(cls))
    return {n: _plain(getattr(value, n)) for n in names}


def firm_to_json(firm: Firm) -> str:
    """The canonical encoding of `firm`: sorted keys, no whitespace, Decimals
    and dates as strings, no floats (a float anywhere raises TypeError).
    Two firms are the same firm exactly when these strings are equal."""
    return json.dumps(_plain(firm), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

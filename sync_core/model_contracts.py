"""Contracts, and the transactions under them: time, expenses, milestones,
revenue, invoices and payments.

A contract is a family of versions. Version 1 is the baseline as signed; each
amendment (a rate change, a scope change, a term extension) is the next
version, carrying the whole contract as it stands after the change, so the
baseline and every step are kept and any version can be read on its own.
Versions are appended strictly in order (`Contract.with_version`); the flows
buffer one that arrives early (the CRM's feed does not promise order across
transactions) and drop one already applied.

Which version prices work done on a day: the highest-numbered version whose
effective date is on or before that day. A retroactive amendment (signed in
March, effective from January) therefore reprices January from then on.

Conventions as in `model`: frozen, validated, plain data; `codec` serialises.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import attrs

from .model import (
    BILLING_MODELS, Audit, InvalidRecord, Record, TaxTreatment, any_gid, check_order, choice, counter,
    currency_code, day, decimal, exact_product, flag, gid_ref, hours, money, non_negative, record, records,
    round_cents, text,
)

__all__ = [
    "AMENDMENT_KINDS", "RECOGNITION_METHODS", "FULFILMENT_KINDS", "VersionOutOfOrder",
    "RateCardEntry", "MilestoneTerm", "ContractLine", "ContractVersion", "Contract",
    "TimeEntry", "Expense", "Milestone",
    "RevenueObligation", "FulfilmentEvent", "InvoiceLine", "Invoice", "Payment",
]

AMENDMENT_KINDS = ("rate_change", "scope_change", "term_extension")
RECOGNITION_METHODS = ("ratable", "point_in_time", "input", "t_and_m")
FULFILMENT_KINDS = ("milestone_accepted", "progress", "time_approved")


class VersionOutOfOrder(ValueError):
    """A contract version that is not the next one. ``got < expected``: already
    applied (a replay); ``got > expected``: early, buffer it."""

    def __init__(self, contract_gid: str, expected: int, got: int) -> None:
        if got < expected:
            why = f"version {got} is already applied (latest is {expected - 1}); a replay, drop it"
        else:
            why = f"version {got} arrived before version {expected}; buffer it until {expected} is applied"
        super().__init__(f"Contract {contract_gid}: {why}")
        self.contract_gid, self.expected, self.got = contract_gid, expected, got


# -- terms --------------------------------------------------------------------


@attrs.frozen
class RateCardEntry:
    """The hourly bill rate of a role, in the contract's currency."""

    role: str = text()
    rate: Decimal = non_negative()


@attrs.frozen
class MilestoneTerm:
    """A fixed-fee payment the contract promises on a deliverable."""

    milestone_id: str = text()
    name: str = text()
    amount: Decimal = money()
    due_date: date = day()


@attrs.frozen(kw_only=True)
class ContractLine:
    """One performance obligation. `quantity` x `rate` reads by model: estimated
    hours x blended rate (t_and_m), 1 x price (fixed_fee), months x monthly
    fee (retainer, managed_service -- there it must equal `price` exactly)."""

    line_id: str = text()
    billing_model: str = choice(BILLING_MODELS)
    description: str = text()
    quantity: Decimal = non_negative()
    rate: Decimal = non_negative()
    price: Decimal = money()  # the line's transaction price
    standalone_selling_price: Decimal = money()
    service_start: date = day()
    service_end: date = day()
    rate_card: tuple[RateCardEntry, ...] = records(RateCardEntry, sort_by="role", unique="role")
    milestones: tuple[MilestoneTerm, ...] = records(MilestoneTerm, sort_by="milestone_id", unique="milestone_id")

    def __attrs_post_init__(self) -> None:
        check_order(self, "service_start", "service_end")
        where = f"ContractLine {self.line_id} ({self.billing_model})"
        if self.billing_model == "t_and_m" and not self.rate_card:
            raise InvalidRecord(f"{where} has no rate_card; time and materials bills by role")
        if self.milestones and self.billing_model != "fixed_fee":
            raise InvalidRecord(f"{where} has milestones; only fixed_fee lines bill by milestone")
        if self.milestones and sum(m.amount for m in self.milestones) != self.price:
            total = sum(m.amount for m in self.milestones)
            raise InvalidRecord(f"{where}: milestones sum to {total}, not the price {self.price}")
        recurring = self.billing_model in ("retainer", "managed_service")
        if recurring and exact_product(self.quantity, self.rate) != self.price:
            raise InvalidRecord(f"{where}: {self.quantity} months x {self.rate} is not the price {self.price}")

    def rate_for(self, role: str) -> Decimal | None:
        return next((e.rate for e in self.rate_card if e.role == role), None)


@attrs.frozen(kw_only=True)
class ContractVersion:
    """The whole contract as it stands from `effective_date`; version 1 is the
    baseline (no amendment kind), every later one names its amendment."""

    version: int = counter()
    effective_date: date = day()
    amendment_kind: str | None = choice(AMENDMENT_KINDS, optional=True)
    lines: tuple[ContractLine, ...] = records(ContractLine, sort_by="line_id", unique="line_id", non_empty=True)
    total: Decimal = money()

    @classmethod
    def of(
        cls, version: int, effective_date: date, lines: tuple[ContractLine, ...], amendment_kind: str | None = None
    ) -> ContractVersion:
        """A version whose total is the sum of its line prices."""
        total = sum((ln.price for ln in lines), Decimal("0.00"))
        return cls(
            version=version, effective_date=effective_date, amendment_kind=amendment_kind, lines=lines, total=total
        )

    def __attrs_post_init__(self) -> None:
        if (self.version == 1) != (self.amendment_kind is None):
            raise InvalidRecord(
                f"ContractVersion {self.version}: the baseline (version 1) and only it has amendment_kind None; "
                f"got {self.amendment_kind!r}"
            )
        lines_total = sum(ln.price for ln in self.lines)
        if lines_total != self.total:
            raise InvalidRecord(
                f"ContractVersion {self.version}: total {self.total} is not the sum of line prices {lines_total}"
            )

    def line(self, line_id: str) -> ContractLine:
        for ln in self.lines:
            if ln.line_id == line_id:
                return ln
        raise LookupError(f"contract version {self.version} has no line {line_id!r}")


@attrs.frozen(kw_only=True)
class Contract(Record):
    """A customer's contract family as the CRM sold it, every version kept."""

    GID_PREFIX = "ctr"
    STATUSES = ("active", "closed", "cancelled")

    customer_gid: str = gid_ref("cust")
    opportunity_id: str = text()  # the CRM deal it was won from
    legal_entity: str = text()
    currency: str = currency_code()
    versions: tuple[ContractVersion, ...] = records(ContractVersion, sort_by="version", non_empty=True)

    def __attrs_post_init__(self) -> None:
        numbers = [v.version for v in self.versions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise InvalidRecord(f"Contract {self.gid}: versions must run 1, 2, 3... with no gap or repeat; got {numbers}")

    @property
    def latest(self) -> ContractVersion:
        return self.versions[-1]

    def version(self, n: int) -> ContractVersion:
        if type(n) is int and 1 <= n <= len(self.versions):
            return self.versions[n - 1]
        raise LookupError(f"Contract {self.gid} has versions 1 to {len(self.versions)}; there is no version {n!r}")

    def with_version(self, new: ContractVersion, *, audit: Audit | None = None) -> Contract:
        """This contract with `new` appended; it must be exactly latest + 1,
        else `VersionOutOfOrder` says whether to drop or buffer it."""
        if not isinstance(new, ContractVersion):
            raise InvalidRecord(f"Contract.with_version takes a ContractVersion, not {type(new).__name__}")
        expected = self.latest.version + 1
        if new.version != expected:
            raise VersionOutOfOrder(self.gid, expected, new.version)
        return attrs.evolve(self, versions=(*self.versions, new), audit=audit or self.audit)

    def in_force_on(self, on: date) -> ContractVersion:
        """The highest-numbered version effective on or before `on`."""
        candidates = [v for v in self.versions if v.effective_date <= on]
        if not candidates:
            first = min(v.effective_date for v in self.versions)
            raise LookupError(
                f"Contract {self.gid} is not in force on {on.isoformat()}; its first version is effective {first.isoformat()}"
            )
        return max(candidates, key=lambda v: v.version)

    def rate_for(self, role: str, on: date, *, line_id: str | None = None) -> Decimal:
        """The bill rate of `role` under the version in force on `on`. When two
        lines' rate cards price the role differently, name the `line_id`."""
        v = self.in_force_on(on)
        lines = v.lines if line_id is None else (v.line(line_id),)
        rates = sorted({r for r in (ln.rate_for(role) for ln in lines) if r is not None})
        where = f"Contract {self.gid} version {v.version} (in force on {on.isoformat()})"
        if not rates:
            raise LookupError(f"{where} has no rate for role {role!r}" + (f" on line {line_id}" if line_id else ""))
        if len(rates) > 1:
            raise LookupError(f"{where} rates role {role!r} at {', '.join(map(str, rates))} on different lines: pass line_id")
        return rates[0]


# -- actuals: delivery priced under the contract ------------------------------


@attrs.frozen(kw_only=True)
class TimeEntry(Record):
    """Hours on a task, priced at the contract version in force on the work
    date. A correction keeps the gid and bumps `version`."""

    GID_PREFIX = "te"
    STATUSES = ("draft", "submitted", "approved", "rejected", "recalled")

    worker_gid: str = gid_ref("wkr")
    project_gid: str = gid_ref("proj")
    task_gid: str = gid_ref("task")
    work_date: date = day()
    hours: Decimal = hours()
    version: int = counter()
    contract_version: int = counter()  # the version the bill rate came from
    currency: str = currency_code()
    bill_rate: Decimal = non_negative()
    cost_currency: str = currency_code()  # the worker's entity's, may differ
    cost_rate: Decimal = non_negative()

    @property
    def amount(self) -> Decimal:
        """What the hours bill for: hours x bill rate, rounded half-up to the cent."""
        return round_cents(exact_product(self.hours, self.bill_rate))


@attrs.frozen(kw_only=True)
class Expense(Record):
    GID_PREFIX = "exp"
    STATUSES = ("draft", "submitted", "approved", "rejected")

    worker_gid: str = gid_ref("wkr")
    project_gid: str = gid_ref("proj")
    incurred_on: date = day()
    category: str = text()
    amount: Decimal = money()  # net of tax
    tax_amount: Decimal = money()
    currency: str = currency_code()
    tax: TaxTreatment = record(TaxTreatment)
    billable: bool = flag()


@attrs.frozen(kw_only=True)
class Milestone(Record):
    """A contract milestone being delivered; `billing_hold` keeps it off invoices."""

    GID_PREFIX = "ms"
    STATUSES = ("planned", "completed", "accepted")

    project_gid: str = gid_ref("proj")
    contract_gid: str = gid_ref("ctr")
    line_id: str = text()
    milestone_id: str = text()  # the contract's MilestoneTerm
    name: str = text()
    amount: Decimal = money()
    currency: str = currency_code()
    due_date: date = day()
    completed_on: date | None = day(optional=True)
    accepted_on: date | None = day(optional=True)
    billing_hold: bool = flag()  # client sign-off (or a dispute) pending

    def __attrs_post_init__(self) -> None:
        needs = {"planned": (False, False), "completed": (True, False), "accepted": (True, True)}[self.status]
        for name, needed in zip(("completed_on", "accepted_on"), needs):
            if (getattr(self, name) is not None) != needed:
                wanted = "a date" if needed else "None"
                raise InvalidRecord(f"Milestone {self.gid} is {self.status}, so {name} must be {wanted}")
        check_order(self, "completed_on", "accepted_on")


# -- revenue ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RevenueObligation(Record):
    """A contract line as the revenue engine recognises it, at one version."""

    GID_PREFIX = "pob"
    STATUSES = ("open", "satisfied")

    contract_gid: str = gid_ref("ctr")
    contract_version: int = counter()
    line_id: str = text()
    method: str = choice(RECOGNITION_METHODS)
    currency: str = currency_code()
    standalone_selling_price: Decimal = money()
    allocated: Decimal = money()  # its share of the transaction price
    service_start: date = day()
    service_end: date = day()

    def __attrs_post_init__(self) -> None:
        check_order(self, "service_start", "service_end")


# What each kind of fulfilment refers to, and which measures it must carry.
_FULFILMENT = {
    "milestone_accepted": ("ms", ("amount",)),
    "progress": ("proj", ("quantity",)),  # hours or cost incurred to date
    "time_approved": ("te", ("quantity", "amount")),  # hours and their billable value
}


@attrs.frozen(kw_only=True)
class FulfilmentEvent(Record):
    """Evidence that an obligation was (partly) satisfied, fed to revenue."""

    GID_PREFIX = "ful"
    STATUSES = ("recorded", "reversed")

    obligation_gid: str = gid_ref("pob")
    kind: str = choice(FULFILMENT_KINDS)
    reference: str = any_gid()  # the milestone, project or time entry
    occurred_on: date = day()
    currency: str = currency_code()
    amount: Decimal | None = money(optional=True)
    quantity: Decimal | None = non_negative(optional=True)

    def __attrs_post_init__(self) -> None:
        prefix, measures = _FULFILMENT[self.kind]
        if not self.reference.startswith(prefix + "-"):
            raise InvalidRecord(
                f"FulfilmentEvent {self.gid}: a {self.kind} refers to a {prefix}- gid, not {self.reference!r}"
            )
        missing = [m for m in measures if getattr(self, m) is None]
        if missing:
            raise InvalidRecord(f"FulfilmentEvent {self.gid}: a {self.kind} needs {' and '.join(missing)}")


# -- billing ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InvoiceLine:
    """One billed thing: `source_ref` is the gid of the time entry, expense or
    milestone. A credit has a negative quantity."""

    source_ref: str = any_gid()
    description: str = text()
    quantity: Decimal = decimal()
    unit_amount: Decimal = non_negative()
    amount: Decimal = money(signed=True)

    @classmethod
    def of(cls, source_ref: str, description: str, quantity: Decimal, unit_amount: Decimal) -> InvoiceLine:
        """A line whose amount is quantity x unit amount, rounded half-up to the cent."""
        # Anything but two Decimals is left for the field validators to name.
        numbers = isinstance(quantity, Decimal) and isinstance(unit_amount, Decimal)
        amount = round_cents(exact_product(quantity, unit_amount)) if numbers else None
        return cls(
            source_ref=source_ref, description=description, quantity=quantity, unit_amount=unit_amount, amount=amount
        )

    def __attrs_post_init__(self) -> None:
        expected = round_cents(exact_product(self.quantity, self.unit_amount))
        if self.amount != expected:
            raise InvalidRecord(
                f"InvoiceLine {self.source_ref}: amount {self.amount} is not {self.quantity} x {self.unit_amount} "
                f"rounded half-up to the cent ({expected}); build it with InvoiceLine.of"
            )


@attrs.frozen(kw_only=True)
class Invoice(Record):
    GID_PREFIX = "inv"
    STATUSES = ("draft", "issued", "paid", "void")

    number: str | None = text(optional=True)  # given by the billing system on issue
    customer_gid: str = gid_ref("cust")
    project_gid: str | None = gid_ref("proj", optional=True)
    currency: str = currency_code()
    lines: tuple[InvoiceLine, ...] = records(InvoiceLine)
    total: Decimal = money(signed=True)
    issued_on: date | None = day(optional=True)

    def __attrs_post_init__(self) -> None:
        lines_total = sum(ln.amount for ln in self.lines)
        if lines_total != self.total:
            raise InvalidRecord(f"Invoice {self.gid}: total {self.total} is not the sum of its lines {lines_total}")
        if self.status in ("issued", "paid") and (self.number is None or self.issued_on is None):
            raise InvalidRecord(f"Invoice {self.gid} is {self.status}, so it needs a number and issued_on")
        if self.status == "draft" and self.issued_on is not None:
            raise InvalidRecord(f"Invoice {self.gid} is a draft, so issued_on must be None")


@attrs.frozen(kw_only=True)
class Payment(Record):
    GID_PREFIX = "pay"
    STATUSES = ("received", "reversed")

    invoice_gid: str = gid_ref("inv")
    amount: Decimal = money()
    currency: str = currency_code()
    received_on: date = day()

    def __attrs_post_init__(self) -> None:
        if self.amount == 0:
            raise InvalidRecord(f"Payment {self.gid}: amount must be above zero")

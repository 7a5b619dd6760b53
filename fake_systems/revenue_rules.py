"""The ASC 606 / IFRS 15 arithmetic of the fake revenue engine, as pure functions.

Records are frozen attrs classes; every rule is a module function from records
to records, so the engine actor that wraps this later owns all the state and
this module owns all the cents. Periods are calendar months spelled "YYYY-MM"
(they sort correctly as strings).

The invariant every function keeps: amounts tie to the cent. A schedule sums
exactly to the price it spreads (leftover cents go by largest remainder, via
`money.allocate`); a modification's new allocation sums exactly to the old
contract price plus the added consideration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

import attrs

from fake_systems.money import Money, allocate, as_decimal, prorate, round_money, sum_money

__all__ = [
    "RATABLE", "POINT_IN_TIME", "INPUT", "T_AND_M", "METHODS", "NoOpenPeriod",
    "PerformanceObligation", "ScheduleLine", "ProgressReport", "ApprovedTime", "PeriodCalendar",
    "ContractState", "ContractModification", "ModificationResult",
    "period_of", "period_start", "period_end", "next_period", "allocate_transaction_price",
    "ratable_schedule", "point_in_time_schedule", "input_method_schedule", "time_and_materials_schedule",
    "totals_by_obligation", "unrecognised", "separate_contract", "prospective", "cumulative_catch_up",
    "receiving_period", "apply_period_close",
]

RATABLE = "ratable"  # straight-line by day over the service period
POINT_IN_TIME = "point_in_time"  # all at acceptance of a milestone
INPUT = "input"  # percentage of completion: incurred cost or hours against the estimate
T_AND_M = "t_and_m"  # right-to-invoice practical expedient: approved hours x rate
METHODS = frozenset({RATABLE, POINT_IN_TIME, INPUT, T_AND_M})

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class NoOpenPeriod(LookupError):
    """An amount must move out of a closed period but no open period exists to take it."""


# -- periods ---------------------------------------------------------------

def _check_period(value: object) -> str:
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise ValueError(f"period {value!r} is not a calendar month; write it 'YYYY-MM', like '2024-03'")
    return value


def period_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def period_start(period: str) -> date:
    year, month = _check_period(period).split("-")
    return date(int(year), int(month), 1)


def next_period(period: str) -> str:
    start = period_start(period)
    return f"{start.year + 1:04d}-01" if start.month == 12 else f"{start.year:04d}-{start.month + 1:02d}"


def period_end(period: str) -> date:
    return period_start(next_period(period)) - timedelta(days=1)


# -- records ---------------------------------------------------------------

def _is_money(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, Money):
        raise TypeError(f"{attribute.name} must be Money, not {type(value).__name__} {value!r}; build it with M('10.00 USD')")


@attrs.frozen
class PerformanceObligation:
    """A distinct promise in a contract. ``start``/``end`` (inclusive) are the service
    period, required for ratable obligations and ignored by the other methods."""

    id: str
    ssp: Money = attrs.field(validator=_is_money)
    method: str = attrs.field(validator=attrs.validators.in_(METHODS))
    start: date | None = None
    end: date | None = None

    def __attrs_post_init__(self) -> None:
        if self.ssp.amount < 0:
            raise ValueError(f"obligation {self.id!r}: a standalone selling price must not be negative, got {self.ssp}")
        if self.method == RATABLE and (self.start is None or self.end is None):
            raise ValueError(f"ratable obligation {self.id!r} needs start and end dates (its service period)")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"obligation {self.id!r} ends {self.end} before it starts {self.start}")


@attrs.frozen
class ScheduleLine:
    """Revenue for one obligation in one period. ``moved_from`` names the closed
    period an amount was meant for, so a moved amount stays traceable."""

    obligation_id: str
    period: str = attrs.field(converter=_check_period)
    amount: Money = attrs.field(validator=_is_money)
    moved_from: str | None = None


@attrs.frozen
class ProgressReport:
    """Input-method progress at the end of a period: cost or hours incurred so far and
    the current estimate of the total (re-estimates are normal, hence per report)."""

    period: str = attrs.field(converter=_check_period)
    incurred_to_date: Decimal = attrs.field(converter=lambda v: as_decimal(v, "incurred_to_date"))
    estimate_at_completion: Decimal = attrs.field(converter=lambda v: as_decimal(v, "estimate_at_completion"))

    def __attrs_post_init__(self) -> None:
        if self.incurred_to_date < 0 or self.estimate_at_completion <= 0:
            raise ValueError(f"progress for {self.period} needs incurred >= 0 and estimate > 0, "
                             f"got {self.incurred_to_date} of {self.estimate_at_completion}")


@attrs.frozen
class ApprovedTime:
    """An approved time entry at its bill rate. Negative hours are a correction's reversal."""

    work_date: date
    hours: Decimal = attrs.field(converter=lambda v: as_decimal(v, "hours"))
    rate: Money = attrs.field(validator=_is_money)


@attrs.frozen
class PeriodCalendar:
    """The ledger's periods: ``closed`` ones take no postings; ``open_through`` is the last
    period opened so far (None: every period after the closed ones is open)."""

    closed: frozenset[str] = attrs.field(converter=lambda ps: frozenset(_check_period(p) for p in ps))
    open_through: str | None = attrs.field(default=None, converter=attrs.converters.optional(_check_period))


def _progress_map(progress: Mapping[str, Decimal | int | Fraction]) -> Mapping[str, Fraction]:
    exact = {}
    for i, value in progress.items():
        exact[i] = value if isinstance(value, Fraction) else Fraction(as_decimal(value, f"progress of {i!r}"))
        if not 0 <= exact[i] <= 1:
            raise ValueError(f"progress of {i!r} must be between 0 and 1 (a share of completion), got {value}")
    return MappingProxyType(exact)


@attrs.frozen
class ContractState:
    """A contract as the revenue engine sees it: obligations, the price allocated to
    each, and the revenue recognised for each so far (0 <= recognised <= allocated)."""

    obligations: tuple[PerformanceObligation, ...] = attrs.field(converter=tuple)
    allocation: Mapping[str, Money] = attrs.field(converter=lambda m: MappingProxyType(dict(m)))
    recognised: Mapping[str, Money] = attrs.field(converter=lambda m: MappingProxyType(dict(m)))

    def __attrs_post_init__(self) -> None:
        ids = _unique_ids(self.obligations)
        for name, mapping in (("allocation", self.allocation), ("recognised", self.recognised)):
            if set(mapping) != set(ids):
                raise ValueError(f"{name} must have exactly the obligation ids {ids}, got {sorted(mapping)}")
        for i in ids:
            allocated, recognised = self.allocation[i], self.recognised[i]
            if not Money.zero(allocated.currency) <= recognised <= allocated:
                raise ValueError(f"obligation {i!r}: recognised {recognised} must lie between 0 and allocated {allocated}")
        sum_money(self.allocation.values(), self.currency)  # raises CurrencyMismatch on a mixed contract

    @property
    def currency(self) -> str:
        return self.allocation[self.obligations[0].id].currency

    @classmethod
    def at_inception(cls, obligations: Sequence[PerformanceObligation], price: Money) -> ContractState:
        allocation = allocate_transaction_price(price, obligations)
        return cls(obligations, allocation, {i: Money.zero(price.currency) for i in allocation})


@attrs.frozen
class ContractModification:
    """An approved change order, effective from ``effective`` (the contract's recognised
    revenue must already cover service before that day). ``progress`` (catch-up only) is
    the re-measured progress per obligation, 0..1; obligations left out keep the progress
    their recognised revenue implies."""

    effective: date
    added_consideration: Money = attrs.field(validator=_is_money)
    added_obligations: tuple[PerformanceObligation, ...] = attrs.field(default=(), converter=tuple)
    progress: Mapping[str, Fraction] = attrs.field(factory=dict, converter=_progress_map)


@attrs.frozen
class ModificationResult:
    """``contract`` is the modified contract (its allocation is the new allocation);
    ``adjustments`` are recognised now, in the effective date's period; ``rescheduled``
    replaces every not-yet-recognised ratable line from the effective date on;
    ``new_contract`` is set only when the modification is a separate contract."""

    contract: ContractState
    adjustments: tuple[ScheduleLine, ...] = ()
    rescheduled: tuple[ScheduleLine, ...] = ()
    new_contract: ContractState | None = None


def _unique_ids(obligations: Sequence[PerformanceObligation]) -> list[str]:
    if not obligations:
        raise ValueError("a contract needs at least one performance obligation")
    ids = [o.id for o in obligations]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"obligation ids must be unique within a contract; repeated: {duplicates}")
    return ids


# -- allocation and schedules ----------------------------------------------

def allocate_transaction_price(price: Money, obligations: Sequence[PerformanceObligation]) -> dict[str, Money]:
    """Split the price by relative standalone selling price, leftover cents by largest
    remainder (ties to the earlier obligation). SSPs may be quoted in another currency
    than the price -- only their ratios matter -- but all in the same one."""
    ids = _unique_ids(obligations)
    sum_money((o.ssp for o in obligations), obligations[0].ssp.currency)  # one SSP currency
    if all(o.ssp.amount == 0 for o in obligations):
        raise ValueError(f"every obligation of {ids} has a zero standalone selling price; nothing to allocate {price} by")
    return dict(zip(ids, allocate(price, [o.ssp.amount for o in obligations])))


def ratable_schedule(obligation_id: str, price: Money, start: date, end: date) -> list[ScheduleLine]:
    """Straight-line by day from ``start`` to ``end`` inclusive: each month gets the share of
    its days, leftover cents by largest remainder, so the lines sum exactly to ``price``.
    Every month of the period gets a line, even a zero one."""
    if start > end:
        raise ValueError(f"ratable service for {obligation_id!r} ends {end} before it starts {start}")
    months: list[tuple[str, int]] = []
    day = start
    while day <= end:
        last = min(end, period_end(period_of(day)))
        months.append((period_of(day), (last - day).days + 1))
        day = last + timedelta(days=1)
    amounts = allocate(price, [days for _, days in months])
    return [ScheduleLine(obligation_id, period, amount) for (period, _), amount in zip(months, amounts)]


def point_in_time_schedule(obligation_id: str, price: Money, accepted_on: date) -> list[ScheduleLine]:
    """All of the price when the client accepts the milestone (control passes then)."""
    return [ScheduleLine(obligation_id, period_of(accepted_on), price)]


def input_method_schedule(obligation_id: str, price: Money, reports: Sequence[ProgressReport]) -> list[ScheduleLine]:
    """Percentage of completion. Per report: progress = incurred / estimate, capped at 1;
    revenue to date = price x progress rounded half-up to the cent (once, exactly); the
    period's line is that minus what earlier periods recognised. A raised estimate can
    therefore make a line negative -- that is the catch-up the standard asks for. The
    lines sum to the last report's revenue to date, i.e. to ``price`` once complete."""
    lines, previous, last_period = [], Money.zero(price.currency), None
    for report in reports:
        if last_period is not None and report.period <= last_period:
            raise ValueError(f"progress reports must be in strictly increasing periods; {report.period} follows {last_period}")
        done = min(report.incurred_to_date, report.estimate_at_completion)
        to_date = prorate(price, done, report.estimate_at_completion)
        lines.append(ScheduleLine(obligation_id, report.period, to_date - previous))
        previous, last_period = to_date, report.period
    return lines


def time_and_materials_schedule(obligation_id: str, entries: Iterable[ApprovedTime]) -> list[ScheduleLine]:
    """Right to invoice: revenue is what may be billed for approved time, in the period of
    the work date. Each entry is rounded to the cent as its invoice line would be, then
    summed per period, so revenue ties to the invoices line for line."""
    by_period: dict[str, Money] = {}
    for entry in entries:
        period = period_of(entry.work_date)
        billable = round_money(entry.rate * entry.hours)
        by_period[period] = by_period[period] + billable if period in by_period else billable
    return [ScheduleLine(obligation_id, p, by_period[p]) for p in sorted(by_period)]


def totals_by_obligation(lines: Iterable[ScheduleLine]) -> dict[str, Money]:
    """Sum of lines per obligation, for tie-outs against the allocation."""
    totals: dict[str, Money] = {}
    for line in lines:
        i = line.obligation_id
        totals[i] = totals[i] + line.amount if i in totals else line.amount
    return totals


# -- contract modifications ------------------------------------------------

def unrecognised(contract: ContractState) -> dict[str, Money]:
    """What is allocated but not yet recognised, per obligation."""
    return {o.id: contract.allocation[o.id] - contract.recognised[o.id] for o in contract.obligations}


def _implied_progress(contract: ContractState, obligation_id: str) -> Fraction:
    """Recognised / allocated, exactly. A zero allocation has no measurable progress; it is
    treated as not started for a catch-up and as carrying no weight for a prospective one."""
    allocated = contract.allocation[obligation_id].amount
    return Fraction(contract.recognised[obligation_id].amount) / Fraction(allocated) if allocated else Fraction(0)


def _check_modification(contract: ContractState, change: ContractModification) -> None:
    if change.added_consideration.currency != contract.currency:
        raise ValueError(
            f"added consideration {change.added_consideration} is not in the contract currency {contract.currency}"
        )
    clash = sorted({o.id for o in change.added_obligations} & {o.id for o in contract.obligations})
    if clash:
        raise ValueError(f"added obligations reuse existing ids {clash}; give new obligations new ids")
    unknown = sorted(set(change.progress) - set(contract.allocation))
    if unknown:
        raise ValueError(f"progress given for obligations {unknown} that are not in the contract")


def _reschedule_ratable(contract: ContractState, effective: date) -> tuple[ScheduleLine, ...]:
    """Spread each ratable obligation's unrecognised amount over its remaining days from
    ``effective``. Service already ended: the remainder is due now, in one line."""
    lines: list[ScheduleLine] = []
    for o, remaining in zip(contract.obligations, unrecognised(contract).values()):
        if o.method != RATABLE or remaining.amount == 0:
            continue
        if effective > o.end:
            lines.append(ScheduleLine(o.id, period_of(effective), remaining))
        else:
            lines.extend(ratable_schedule(o.id, remaining, max(o.start, effective), o.end))
    return tuple(lines)


def separate_contract(contract: ContractState, change: ContractModification) -> ModificationResult:
    """Added distinct goods priced at their standalone selling price: a new contract, the
    existing one untouched (ASC 606-10-25-12). Whether the price really is standalone is
    the caller's judgement; this does the arithmetic."""
    _check_modification(contract, change)
    if not change.added_obligations:
        raise ValueError("a separate contract needs added obligations; a price change alone is prospective or catch-up")
    return ModificationResult(
        contract=contract,
        new_contract=ContractState.at_inception(change.added_obligations, change.added_consideration),
    )


def prospective(contract: ContractState, change: ContractModification) -> ModificationResult:
    """Terminate-and-replace (ASC 606-10-25-13(a)): the unrecognised consideration plus the
    added consideration is spread over the remaining obligations by SSP. An existing
    obligation weighs its SSP times the unrecognised share of its allocation (what is
    left of it); added ones weigh their full SSP; satisfied ones take nothing. Revenue
    already recognised is not adjusted."""
    _check_modification(contract, change)
    remaining = unrecognised(contract)
    pool = sum_money(remaining.values(), contract.currency) + change.added_consideration
    if pool.amount < 0:
        raise ValueError(
            f"the price reduction {change.added_consideration} exceeds the unrecognised consideration; "
            f"account for it with cumulative_catch_up instead"
        )
    weights = [
        Fraction(o.ssp.amount) * (1 - _implied_progress(contract, o.id)) if contract.allocation[o.id].amount else 0
        for o in contract.obligations
    ] + [o.ssp.amount for o in change.added_obligations]
    if not any(weights):
        raise ValueError(f"no obligation remains unsatisfied to carry {pool}; use separate_contract for new goods")
    obligations = contract.obligations + change.added_obligations
    shares = dict(zip((o.id for o in obligations), allocate(pool, weights)))
    recognised = {**contract.recognised, **{o.id: Money.zero(contract.currency) for o in change.added_obligations}}
    modified = ContractState(obligations, {i: recognised[i] + shares[i] for i in shares}, recognised)
    return ModificationResult(contract=modified, rescheduled=_reschedule_ratable(modified, change.effective))


def cumulative_catch_up(contract: ContractState, change: ContractModification) -> ModificationResult:
    """Part of the existing contract (ASC 606-10-25-13(b)): the new total price is
    re-allocated by SSP, revenue to date is re-measured as new allocation x progress
    (rounded half-up once), and the difference from what was recognised is booked in
    the effective date's period -- negative when the price falls."""
    _check_modification(contract, change)
    if change.added_obligations:
        raise ValueError("a catch-up changes existing obligations; new distinct goods are prospective or a separate contract")
    price = sum_money(contract.allocation.values(), contract.currency) + change.added_consideration
    if price.amount < 0:
        raise ValueError(f"the modification leaves a negative contract price {price}; a contract price must be >= 0")
    allocation = allocate_transaction_price(price, contract.obligations)
    period, recognised, adjustments = period_of(change.effective), {}, []
    for o in contract.obligations:
        old_recognised = contract.recognised[o.id]
        progress = change.progress.get(o.id, _implied_progress(contract, o.id))
        recognised[o.id] = prorate(allocation[o.id], progress, 1)
        if recognised[o.id] != old_recognised:
            adjustments.append(ScheduleLine(o.id, period, recognised[o.id] - old_recognised))
    modified = ContractState(contract.obligations, allocation, recognised)
    return ModificationResult(
        contract=modified, adjustments=tuple(adjustments), rescheduled=_reschedule_ratable(modified, change.effective)
    )


# -- period close ----------------------------------------------------------

def receiving_period(calendar: PeriodCalendar, period: str) -> str:
    """The earliest period on or after ``period`` that is not closed (the current open one)."""
    target = _check_period(period)
    while target in calendar.closed:
        target = next_period(target)
    if calendar.open_through is not None and target > calendar.open_through and target != period:
        raise NoOpenPeriod(
            f"an amount for closed period {period} has no open period to land in: every period from {period} "
            f"through {calendar.open_through} is closed; open {target} in the ledger first"
        )
    return target


def apply_period_close(lines: Iterable[ScheduleLine], calendar: PeriodCalendar) -> list[ScheduleLine]:
    """Move every line aimed at a closed period into the current open period, recording where it
    was meant to go; lines in open (or not yet opened) periods stay. Order is preserved and
    nothing is merged, so totals are unchanged line for line."""
    def land(line: ScheduleLine) -> ScheduleLine:
        target = receiving_period(calendar, line.period)
        if target == line.period:
            return line
        return attrs.evolve(line, period=target, moved_from=line.moved_from or line.period)

    return [land(line) for line in lines]

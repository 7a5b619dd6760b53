"""The sync core's canonical model: the business records every flow speaks.

Flows map each vendor's shape into these records, decide on them, store them
and map them out again, so no flow reasons about two vendor schemas at once.
Here: the vocabulary, identity, and master data (entities, customers, workers,
projects, staffing). `model_contracts`: contracts and the transactions under
them (time, expenses, milestones, revenue, invoices, payments).

Dumb immutable data, as in beancount's ``core/data.py``: attrs frozen records
of str, int, bool, Decimal, date, None, tuples and records; timestamps are
ISO-8601 UTC strings. Money is Decimal in whole cents (the firm's currencies
all have two minor digits); a float is refused. Every top-level `Record` has a
``gid`` (the core's own, from a store counter, never a uuid: "cust-000001"),
``source_ids`` (one `SourceRef` per vendor system at most, sorted), a
``status`` from its class's ``STATUSES``, and an ``audit``. References are
gids checked for their prefix: a ``customer_gid`` cannot hold a worker's id.
Invariants are validators -- a record that exists is valid -- and a failure
is an `InvalidRecord` naming record, field and fix. `codec` serialises.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, InvalidOperation
from functools import partial
from typing import Any, ClassVar, Self

import attrs

__all__ = [
    "BILLING_MODELS", "InvalidRecord", "SourceConflict", "format_gid", "exact_product", "round_cents",
    "SourceRef", "Audit", "Record", "LegalEntity", "TaxTreatment", "Dimensions", "CustomerAccount",
    "EffectiveRate", "Worker", "BillingRule", "Project", "Task", "Assignment",
]

BILLING_MODELS = ("t_and_m", "fixed_fee", "retainer", "managed_service")


class InvalidRecord(ValueError):
    """A record would break an invariant. The message names record, field and fix."""


class SourceConflict(ValueError):
    """A record already maps to a different id in that system (a duplicate create?)."""


# -- field checks -------------------------------------------------------------
# A check is an attrs validator; the factories at the end pair checks with
# None-handling and defaults, so a record's body reads as its schema.

_CENT = Decimal("0.01")
_QUARTER = Decimal("0.25")
# Exact products: 60 digits is more than any hours x rate needs, and Inexact
# is trapped so a product is never rounded before `round_cents` says so.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation])
_PREFIX = re.compile(r"[a-z][a-z0-9_]*")


def format_gid(prefix: str, n: int) -> str:
    """``format_gid("cust", 1) == "cust-000001"``; `n` comes from a store counter."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or type(n) is not int or n < 1:
        raise InvalidRecord(f"a gid needs a lowercase prefix and a counter >= 1, not {prefix!r} and {n!r}")
    return f"{prefix}-{n:06d}"


def exact_product(a: Decimal, b: Decimal) -> Decimal:
    """``a * b`` with every digit kept (Inexact is trapped, never rounded away)."""
    return _EXACT.multiply(a, b)


def round_cents(value: Decimal) -> Decimal:
    """To the cent, halves away from zero -- so a credit rounds like its invoice."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def check_order(record: Any, earlier: str, later: str) -> None:
    """For ``__attrs_post_init__``: `later` may be None or equal, never before."""
    first, last = getattr(record, earlier), getattr(record, later)
    if first is not None and last is not None and last < first:
        raise InvalidRecord(f"{type(record).__name__}.{later} {last} is before {earlier} {first}; fix one of them")


def _where(instance: Any, attribute: attrs.Attribute) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _check(ok, hint: str):
    def check(instance, attribute, value) -> None:
        if not ok(value):
            raise InvalidRecord(f"{_where(instance, attribute)} is {value!r}; {hint}")
    return check


def _number(ok, hint: str):
    """A check for Decimals: a float is refused with the Decimal to write instead."""
    def check(instance, attribute, value) -> None:
        where = _where(instance, attribute)
        if isinstance(value, float):
            raise InvalidRecord(f"{where} is the float {value!r}; use Decimal only -- write Decimal({str(value)!r})")
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidRecord(f"{where} is {type(value).__name__} {value!r}; it must be a finite Decimal")
        if not ok(value):
            raise InvalidRecord(f"{where} is {value}; {hint}")
    return check


def _matches(pattern: str):
    regex = re.compile(pattern)
    return lambda v: isinstance(v, str) and regex.fullmatch(v) is not None


def _is_utc_timestamp(value: object) -> bool:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return moment is not None and moment.utcoffset() == timedelta(0) and moment.isoformat() == value


def _records(cls: type, unique: str | None, non_empty: bool):
    def check(instance, attribute, value) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, tuple) or not all(isinstance(v, cls) for v in value):
            raise InvalidRecord(f"{where} must be a tuple of {cls.__name__}, not {value!r}")
        if non_empty and not value:
            raise InvalidRecord(f"{where} must not be empty")
        keys = [getattr(v, unique) for v in value] if unique else []
        if len(set(keys)) != len(keys):
            dup = min(k for k in keys if keys.count(k) > 1)
            raise InvalidRecord(f"{where} has two entries with {unique} {dup!r}; keep one")
    return check


def _sorted_by(key: str):
    """A converter to a tuple sorted by `key`, so equal content is one value.
    Anything unsortable is left for the validator to name."""
    def convert(value):
        items = tuple(value) if isinstance(value, list) else value
        try:
            return tuple(sorted(items, key=lambda item: getattr(item, key)))
        except (TypeError, AttributeError):
            return items
    return convert


def _gid_check(prefix: str):
    return _check(_matches(rf"{prefix}-\d{{6,}}"), f"it must be a gid like {format_gid(prefix, 1)!r}")


def _field(check, *, optional: bool = False, **kwargs) -> Any:
    def validate(instance, attribute, value) -> None:
        if not (value is None and optional):
            check(instance, attribute, value)
    return attrs.field(validator=validate, **({"default": None} if optional else {}), **kwargs)


# The vocabulary records are written in: ``name: str = text()``; each takes
# ``optional=True`` for a field that may be None (and then defaults to None).
text = partial(_field, _check(lambda v: isinstance(v, str) and v.strip() != "", "it must be a non-empty string"))
currency_code = partial(_field, _check(_matches(r"[A-Z]{3}"), "write an ISO 4217 code, like 'USD'"))
country_code = partial(_field, _check(_matches(r"[A-Z]{2}"), "write an ISO 3166 code, like 'GB'"))
flag = partial(_field, _check(lambda v: isinstance(v, bool), "it must be True or False"))
counter = partial(_field, _check(lambda v: type(v) is int and v >= 1, "it must be an int >= 1"))
# A datetime is a date that does not compare with dates: refused.
day = partial(_field, _check(lambda v: type(v) is date, "it must be a datetime.date"))
timestamp = partial(_field, _check(_is_utc_timestamp, "write now.astimezone(UTC).isoformat(): '2024-03-01T09:30:00+00:00'"))
any_gid = partial(_field, _check(_matches(r"[a-z]+-\d{6,}"), "it must be a gid like 'te-000001'"))
decimal = partial(_field, _number(lambda v: True, ""))
non_negative = partial(_field, _number(lambda v: v >= 0, "it must not be negative"))
share = partial(_field, _number(lambda v: 0 < v <= 1, "a share is above 0 and at most 1, like Decimal('0.60')"))
hours = partial(_field, _number(lambda v: 0 < v <= 24 and v % _QUARTER == 0, "hours are quarter steps to 24, like 7.25"))


def choice(choices: tuple[str, ...], *, optional: bool = False) -> Any:
    return _field(_check(lambda v: v in choices, f"use one of {', '.join(choices)}"), optional=optional)


def gid_ref(prefix: str, *, optional: bool = False) -> Any:
    return _field(_gid_check(prefix), optional=optional)


def record(cls: type) -> Any:
    return _field(_check(lambda v: isinstance(v, cls), f"it must be a {cls.__name__}"))


def records(cls: type, *, sort_by: str | None = None, unique: str | None = None, non_empty: bool = False) -> Any:
    converter = _sorted_by(sort_by) if sort_by else None
    return _field(_records(cls, unique, non_empty), default=(), converter=converter)


def money(*, signed: bool = False, optional: bool = False) -> Any:
    """Whole cents; not negative unless `signed` (a credit)."""
    hint = "money is whole cents" + ("" if signed else " and not negative") + "; round with round_cents"
    return _field(_number(lambda v: v.as_tuple().exponent >= -2 and (signed or v >= 0), hint), optional=optional)


# -- identity and audit -------------------------------------------------------


@attrs.frozen
class SourceRef:
    """A record's id in one vendor system: ``SourceRef("psa", "P-1042")``."""

    system: str = _field(_check(_matches(_PREFIX.pattern), "a system is a lowercase name, like 'psa'"))
    id: str = text()


@attrs.frozen(kw_only=True)
class Audit:
    """Why a record is in this state: the business flow (correlation), the
    message or event that caused the change, and when the core recorded it."""

    correlation_id: str = text()
    causation_id: str | None = text(optional=True)
    source_event: str = text()  # the inbound event id: "crm:evt-000123"
    recorded_at: str = timestamp()

    @classmethod
    def at(cls, now: datetime, *, correlation_id: str, source_event: str, causation_id: str | None = None) -> Audit:
        """From the environment's clock (an aware datetime)."""
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise InvalidRecord(f"Audit.at needs an aware datetime such as env.now(), not {now!r}")
        return cls(correlation_id=correlation_id, causation_id=causation_id, source_event=source_event,
                   recorded_at=now.astimezone(UTC).isoformat())


def _of_class(make):
    """A check that depends on the record's class (its GID_PREFIX, its STATUSES)."""
    return lambda instance, attribute, value: make(type(instance))(instance, attribute, value)


@attrs.frozen(kw_only=True)
class Record:
    """The fields every top-level record carries. Subclasses name their
    ``GID_PREFIX`` and ``STATUSES``; never instantiated on its own."""

    GID_PREFIX: ClassVar[str]
    STATUSES: ClassVar[tuple[str, ...]]

    gid: str = _field(_of_class(lambda cls: _gid_check(cls.GID_PREFIX)))
    source_ids: tuple[SourceRef, ...] = records(SourceRef, sort_by="system", unique="system")
    status: str = _field(_of_class(lambda cls: _check(lambda v: v in cls.STATUSES, f"use one of {cls.STATUSES}")))
    audit: Audit = record(Audit)

    @classmethod
    def gid_for(cls, n: int) -> str:
        """This kind's gid for counter value `n`: ``Project.gid_for(7) == "proj-000007"``."""
        return format_gid(cls.GID_PREFIX, n)

    def id_in(self, system: str) -> str | None:
        """This record's id in `system`, or None if the core has not learnt it."""
        return next((ref.id for ref in self.source_ids if ref.system == system), None)

    def with_source(self, system: str, id: str) -> Self:
        """This record also known as `id` in `system`. Idempotent; a different id
        for a system already mapped raises `SourceConflict` -- usually a retried
        create that made a duplicate, which a person must merge (or call
        `without_source` first if the re-link is deliberate)."""
        ref = SourceRef(system, id)
        current = self.id_in(system)
        if current == id:
            return self
        if current is not None:
            raise SourceConflict(
                f"{self.gid} is already {system} {current!r}; refusing {system} {id!r}. "
                f"If the re-link is deliberate, call without_source({system!r}) first"
            )
        return attrs.evolve(self, source_ids=(*self.source_ids, ref))

    def without_source(self, system: str) -> Self:
        return attrs.evolve(self, source_ids=tuple(r for r in self.source_ids if r.system != system))


# -- parties: entities and customers ------------------------------------------


@attrs.frozen(kw_only=True)
class LegalEntity(Record):
    """A subsidiary as the ERP keeps books for it; `code` is the key other records use."""

    GID_PREFIX = "le"
    STATUSES = ("active", "inactive")

    code: str = text()
    name: str = text()
    country: str = country_code()
    functional_currency: str = currency_code()


@attrs.frozen
class TaxTreatment:
    """An indirect-tax code. Under reverse charge the buyer self-assesses."""

    code: str = text()
    rate: Decimal = _field(_number(lambda v: 0 <= v < 1, "a tax rate is a fraction, like Decimal('0.20') for 20%"))
    reverse_charge: bool = flag()


@attrs.frozen
class Dimensions:
    """ERP segments a posting is analysed by."""

    department: str = text()
    class_: str | None = text(optional=True)
    location: str | None = text(optional=True)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen(kw_only=True)
class CustomerAccount(Record):
    """A customer as the ERP must know it to invoice: bill-to, currency, tax."""

    GID_PREFIX = "cust"
    STATUSES = ("active", "inactive")

    name: str = text()
    country: str = country_code()
    currency: str = currency_code()
    legal_entity: str = text()  # the billing LegalEntity's code
    tax_registration: str | None = text(optional=True)
    tax: TaxTreatment = record(TaxTreatment)
    bill_to: tuple[str, ...] = _field(
        _check(lambda v: isinstance(v, tuple) and 1 <= len(v) <= 6 and all(isinstance(x, str) and x.strip() for x in v),
               "give 1 to 6 non-empty address lines"),
        converter=_as_tuple,
    )

    def __attrs_post_init__(self) -> None:
        if self.tax.reverse_charge and self.tax_registration is None:
            raise InvalidRecord(
                f"CustomerAccount {self.gid}: reverse charge {self.tax.code!r} needs the customer's tax_registration"
            )


# -- people -------------------------------------------------------------------


@attrs.frozen
class EffectiveRate:
    """An hourly rate in force from `effective_from` until the next one."""

    effective_from: date = day()
    rate: Decimal = non_negative()
    currency: str = currency_code()


@attrs.frozen(kw_only=True)
class Worker(Record):
    """A person as the HRIS knows them, with their effective-dated cost rates."""

    GID_PREFIX = "wkr"
    STATUSES = ("active", "terminated")

    employee_id: str = text()
    name: str = text()
    role: str = text()
    cost_centre: str = text()
    legal_entity: str = text()
    hire_date: date = day()
    termination_date: date | None = day(optional=True)  # the last day worked
    cost_rates: tuple[EffectiveRate, ...] = records(EffectiveRate, sort_by="effective_from", unique="effective_from")

    def __attrs_post_init__(self) -> None:
        check_order(self, "hire_date", "termination_date")
        if self.status == "terminated" and self.termination_date is None:
            raise InvalidRecord(f"Worker {self.gid} is terminated: set termination_date to the last day worked")

    def cost_rate_on(self, on: date) -> EffectiveRate:
        """The rate in force on `on`: the latest effective on or before it."""
        in_force = [r for r in self.cost_rates if r.effective_from <= on]
        if not in_force:
            first = self.cost_rates[0].effective_from.isoformat() if self.cost_rates else "none on file"
            raise LookupError(f"Worker {self.gid} has no cost rate in force on {on.isoformat()} (earliest: {first})")
        return in_force[-1]

    def with_cost_rate(self, new: EffectiveRate) -> Worker:
        """Add a rate, retroactive or not; one already effective that day is replaced
        (the HRIS corrected it)."""
        kept = tuple(r for r in self.cost_rates if r.effective_from != new.effective_from)
        return attrs.evolve(self, cost_rates=(*kept, new))


# -- delivery set-up: projects, tasks, staffing ------------------------------


@attrs.frozen(kw_only=True)
class BillingRule:
    """How a project is invoiced; assigned before the project may go live."""

    model: str = choice(BILLING_MODELS)
    currency: str = currency_code()
    invoice_frequency: str = choice(("weekly", "monthly", "quarterly", "on_milestone"))
    hold_until_acceptance: bool = flag()  # bill a milestone only after client sign-off

    def __attrs_post_init__(self) -> None:
        if self.invoice_frequency == "on_milestone" and self.model != "fixed_fee":
            raise InvalidRecord(f"BillingRule: only fixed_fee bills on_milestone, not {self.model}; pick a period")


@attrs.frozen(kw_only=True)
class Project(Record):
    GID_PREFIX = "proj"
    STATUSES = ("planned", "active", "on_hold", "closed")

    name: str = text()
    contract_gid: str = gid_ref("ctr")
    customer_gid: str = gid_ref("cust")
    legal_entity: str = text()
    currency: str = currency_code()
    billing_rule: BillingRule = record(BillingRule)
    dimensions: Dimensions = record(Dimensions)
    effective_from: date = day()
    effective_to: date | None = day(optional=True)

    def __attrs_post_init__(self) -> None:
        check_order(self, "effective_from", "effective_to")
        if self.billing_rule.currency != self.currency:
            raise InvalidRecord(
                f"Project {self.gid} is in {self.currency} but its billing rule bills in {self.billing_rule.currency}"
            )


@attrs.frozen(kw_only=True)
class Task(Record):
    GID_PREFIX = "task"
    STATUSES = ("open", "closed")

    project_gid: str = gid_ref("proj")
    wbs_code: str = _field(_check(_matches(r"\d+(\.\d+)*"), "a WBS code is dotted numbers, like '2.1'"))
    name: str = text()
    billable: bool = flag()
    line_id: str | None = text(optional=True)  # the contract line it delivers


@attrs.frozen(kw_only=True)
class Assignment(Record):
    """A worker staffed on a project in a role, for a share of their time."""

    GID_PREFIX = "asg"
    STATUSES = ("active", "ended")

    worker_gid: str = gid_ref("wkr")
    project_gid: str = gid_ref("proj")
    role: str = text()
    allocation: Decimal = share()
    effective_from: date = day()
    effective_to: date | None = day(optional=True)

    def __attrs_post_init__(self) -> None:
        check_order(self, "effective_from", "effective_to")

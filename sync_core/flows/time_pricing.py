"""Pricing approved time under the contract: which line, which rate, how much.

The contract is authoritative for the bill rate. The PSA stamps a
``bill_rate`` on every time entry too -- the assignment's rate, set by the
PMO when they staffed the project, or the resource's list rate -- but that
is a delivery tool's copy: it goes stale after a rate-change amendment, and
a deal with two time-and-materials lines prices a role once per line. So
the bill rate is the rate card of the contract *version in force on the work
date* (`Contract.rate_for`), on the line the entry's task delivers; the
PSA's rate is compared with it and a difference is traced
(``core.t2f.rate_mismatch``), never used.

The cost rate is the PSA's: it is stamped from the resource's effective-dated
cost rates, which the HRIS flow keeps right.

Pure functions over the canonical model; the flow does the I/O.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ..model import exact_product, round_cents
from ..model_contracts import Contract, ContractLine, ContractVersion

__all__ = ["Unpriceable", "line_ids", "line_on", "bill_rate", "amount", "negate"]


class Unpriceable(LookupError):
    """The contract cannot price this work; `code` is the exception's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def line_ids(contract: Contract) -> list[str]:
    """Every line id any version of the contract has had, sorted."""
    return sorted({ln.line_id for v in contract.versions for ln in v.lines})


def _version_on(contract: Contract, on: date, line_id: str) -> ContractVersion:
    """The version in force on `on` that has the line; work dated before the
    line existed (before the baseline's effective date, or before the scope
    change that added it) is priced by the first version that has it."""
    try:
        version = contract.in_force_on(on)
    except LookupError:
        version = contract.versions[0]
    if any(ln.line_id == line_id for ln in version.lines):
        return version
    having = [v for v in contract.versions if any(ln.line_id == line_id for ln in v.lines)]
    if not having:
        raise Unpriceable("UNKNOWN_CONTRACT_LINE", f"contract {contract.opportunity_id} has no line {line_id}")
    later = [v for v in having if v.version > version.version]
    return later[0] if later else having[-1]


def line_on(contract: Contract, on: date, line_id: str) -> tuple[ContractVersion, ContractLine]:
    version = _version_on(contract, on, line_id)
    return version, version.line(line_id)


def bill_rate(contract: Contract, on: date, line_id: str, roles: list[str]) -> tuple[Decimal, int]:
    """The hourly rate of the first of `roles` the line's rate card prices
    (a role is known by several names: the PSA's external reference, its
    name), under the version in force on `on`; and that version's number."""
    version, line = line_on(contract, on, line_id)
    for role in roles:
        rate = line.rate_for(role)
        if rate is not None:
            return rate, version.version
    raise Unpriceable(
        "NO_CONTRACT_RATE",
        f"contract {contract.opportunity_id} version {version.version} line {line_id} has no rate for role "
        f"{' / '.join(roles) or '(unknown)'} on {on.isoformat()}; add the role to the rate card",
    )


def amount(hours: Decimal, rate: Decimal) -> Decimal:
    """hours x rate, exact, then half-up to the cent (as every fake rounds)."""
    return round_cents(exact_product(hours, rate))


def negate(text: str) -> str:
    """A decimal string with the other sign ("0.00" stays "0.00")."""
    value = Decimal(text)
    return format(value if value.is_zero() else -value, "f")

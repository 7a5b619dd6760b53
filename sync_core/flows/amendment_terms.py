"""Contract amendments as data: the CRM's version snapshot -> the canonical
contract's next version, what changed, and what each system must do about it.

Pure functions over the canonical model (`sync_core.model_contracts`), no
I/O, so the amendment flow's decisions can be read -- and tested -- on their
own.

The CRM signs an amendment as ``ContractVersion`` n+1 carrying only the lines
it *changed* or *added* (a snapshot of each, in QuoteLine fields). The
canonical `ContractVersion` carries the whole contract as it stands, so
version n+1 is version n with those lines laid over it: changed lines keep
what the CRM does not hold (the standalone selling price, milestone ids),
added lines are mapped afresh.

Revenue treatment (ASC 606-10-25-12/13), the rule this core applies:

  * lines only **added**, each distinct (its own deliverables) and priced at
    its standalone selling price -> ``separate_contract``. The CRM carries no
    SSP, so a new line's SSP is its price: an added line is at SSP by
    construction. One priced otherwise is prospective, with the line as an
    added obligation;
  * a **term extension** of a recurring (ratable) line at the same monthly
    fee -> the extra months are further distinct services at the price the
    client already pays: an added ratable obligation for the extension
    period, ``separate_contract``; at another fee, ``prospective`` with that
    obligation;
  * a **rate change** on time and materials does not move the transaction
    price (the estimate stays; T&M revenue is the right-to-invoice expedient,
    approved hours x the rate in force): no modification -- the revenue
    contract takes the new version number with unchanged terms;
  * any other change to the price of an existing obligation -> if it is a
    fixed-fee line (not distinct from the work already done, progress
    re-measured) ``cumulative_catch_up``; otherwise -- or when the change
    also adds a milestone, an obligation of its own, which a catch-up cannot
    add -- ``prospective``.

Billing a recurring fee, effective-dated (`recurring_fee`): a billing
schedule holds one monthly fee, and the billing run charges every period
begun and not yet charged at the fee the schedule holds *when it runs*. So
the schedule must carry the fee of the next period billing will charge --
the first one not charged yet -- and change when that period comes under
another version. A period is charged in full (billing does not prorate) at
the fee of the version in force on its first day (`Contract.in_force_on`):
a fee signed on 10 February effective 1 March bills February at the old fee
and March at the new; one effective 10 February, too (February began under
the old). Periods already charged when a retroactive fee arrives are not
re-billed here; the flow names them for finance (`mischarged_periods`).
"""

from __future__ import annotations

from collections.abc import Mapping
import calendar
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import attrs

from ..model import round_cents
from ..model_contracts import Contract, ContractLine, ContractVersion
from .quote_contract import contract_line, revenue_pobs

__all__ = [
    "line_from_snapshot", "next_version", "VersionChange", "change_between", "Treatment",
    "revenue_treatment", "line_pobs", "extension_pob_ref", "schedule_updates",
    "RecurringFee", "fee_in_force", "recurring_fee", "mischarged_periods",
]

RECURRING = ("retainer", "managed_service")
_CANONICAL_KINDS = ("rate_change", "scope_change", "term_extension")


def _day(text: Any) -> date:
    return date.fromisoformat(str(text))


def line_from_snapshot(snapshot: Mapping, previous: ContractLine | None = None) -> ContractLine:
    """A QuoteLine snapshot (a ``ChangedLines`` item) as a canonical line.
    An added line is mapped as quote-to-project maps the baseline's
    (`quote_contract.contract_line`: SSP = price, the CRM has no other). A
    changed line keeps what the CRM does not hold: its SSP (scaled with the
    price when they differed) and its milestones' ids."""
    fresh = contract_line(dict(snapshot))
    if previous is None:
        return fresh
    if previous.price == 0 or previous.standalone_selling_price == previous.price:
        ssp = fresh.price
    else:
        ssp = round_cents(previous.standalone_selling_price * fresh.price / previous.price)
    ids = {m.name: m.milestone_id for m in previous.milestones}
    milestones = tuple(attrs.evolve(m, milestone_id=ids.get(m.name, m.milestone_id)) for m in fresh.milestones)
    return attrs.evolve(fresh, description=fresh.description or previous.description, standalone_selling_price=ssp,
                        milestones=milestones)


def next_version(previous: ContractVersion, fields: Mapping) -> ContractVersion:
    """Canonical version ``fields["VersionNumber"]`` from the CRM's
    ContractVersion fields, laid over `previous` (which must be n-1)."""
    lines = {ln.line_id: ln for ln in previous.lines}
    for snap in sorted(fields.get("ChangedLines") or (), key=lambda s: s["LineId"]):
        lines[snap["LineId"]] = line_from_snapshot(snap, lines.get(snap["LineId"]))
    draft = ContractVersion.of(
        fields["VersionNumber"], _day(fields["EffectiveDate"]), tuple(lines[k] for k in sorted(lines)), "scope_change"
    )
    kind = fields.get("Kind")
    if kind not in _CANONICAL_KINDS:  # "other": say what it did
        change = change_between(previous, draft)
        kind = ("scope_change" if change.added else "term_extension" if change.extended
                else "rate_change" if change.rates_changed else "scope_change")
    return attrs.evolve(draft, amendment_kind=kind)


@attrs.frozen
class VersionChange:
    """What version n changed from n-1, line ids sorted."""

    added: tuple[str, ...]
    rates_changed: tuple[str, ...]  # t_and_m rate cards
    extended: tuple[str, ...]  # service end moved later
    repriced: tuple[str, ...]  # transaction price of an existing line changed
    milestones_changed: tuple[str, ...]  # fixed-fee milestone terms of an existing line
    billing_terms: tuple[str, ...]  # existing lines whose billing schedule must change

    @property
    def price_changed(self) -> bool:
        return bool(self.added or self.repriced)


def change_between(old: ContractVersion, new: ContractVersion) -> VersionChange:
    before = {ln.line_id: ln for ln in old.lines}
    added, rates, extended, repriced, milestones, billing = [], [], [], [], [], []
    for ln in new.lines:
        was = before.get(ln.line_id)
        if was is None:
            added.append(ln.line_id)
            continue
        if ln.rate_card != was.rate_card:
            rates.append(ln.line_id)
        if ln.service_end > was.service_end:
            extended.append(ln.line_id)
        if ln.price != was.price:
            repriced.append(ln.line_id)
        if ln.milestones != was.milestones:
            milestones.append(ln.line_id)
        if (ln.rate_card, ln.service_end, ln.rate, ln.milestones) != (was.rate_card, was.service_end, was.rate,
                                                                     was.milestones):
            billing.append(ln.line_id)
    return VersionChange(tuple(added), tuple(rates), tuple(extended), tuple(repriced), tuple(milestones),
                         tuple(billing))


# -- revenue -------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return format(round_cents(value), "f")


def line_pobs(version: ContractVersion, line_id: str) -> list[dict]:
    """The revenue engine's obligations for one line of `version`, named and
    measured as quote-to-project books them (`quote_contract.revenue_pobs`)."""
    return [p for p in revenue_pobs(version) if p["pob_ref"] == line_id or p["pob_ref"].startswith(line_id + ":")]


def extension_pob_ref(line_id: str, version: int) -> str:
    return f"{line_id}:ext:v{version}"


@attrs.frozen
class Treatment:
    """How the revenue engine takes version `version`: ``treatment`` None means
    the terms do not move (the version number only)."""

    version: int
    treatment: str | None
    effective_date: date
    added_consideration: Decimal = Decimal("0.00")
    added_pobs: tuple[dict, ...] = ()
    reason: str = ""


def revenue_treatment(old: ContractVersion, new: ContractVersion) -> Treatment:
    """The modification version `new` makes to the revenue contract (module doc)."""
    change = change_between(old, new)
    before = {ln.line_id: ln for ln in old.lines}
    after = {ln.line_id: ln for ln in new.lines}
    delta = new.total - old.total
    base = dict(version=new.version, effective_date=new.effective_date, added_consideration=delta)
    if not change.price_changed:
        return Treatment(new.version, None, new.effective_date, reason="no change to the transaction price")
    added_pobs: list[dict] = []
    at_ssp = True
    for lid in change.added:
        line = after[lid]
        added_pobs += line_pobs(new, lid)
        at_ssp = at_ssp and line.price == line.standalone_selling_price
    extended_only = True
    for lid in change.repriced:
        was, now = before[lid], after[lid]
        if now.billing_model in RECURRING and lid in change.extended and now.service_start == was.service_start:
            extra = now.price - was.price
            start = date.fromordinal(was.service_end.toordinal() + 1)
            added_pobs.append({"pob_ref": extension_pob_ref(lid, new.version), "pob_name": f"{now.description} "
                               f"(extension to {now.service_end.isoformat()})", "rec_method": "ratable",
                               "ssp_amount": _money(extra), "start_date": start.isoformat(),
                               "end_date": now.service_end.isoformat()})
            at_ssp = at_ssp and now.rate == was.rate
        else:
            extended_only = False
            if now.billing_model == "fixed_fee":  # a milestone added to the line is an obligation of its own
                known = {m.name for m in was.milestones}
                added_pobs += [p for p in line_pobs(new, lid) if p["pob_ref"].split(":", 1)[1] not in known]
    if extended_only and added_pobs:
        kind = "separate_contract" if at_ssp else "prospective"
        why = ("distinct goods or services added at their standalone selling price" if at_ssp
               else "distinct goods or services added, not at standalone selling price")
        return Treatment(**base, treatment=kind, added_pobs=tuple(added_pobs), reason=why)
    if change.added:  # new lines and repriced existing ones in one change order
        return Treatment(**base, treatment="prospective", added_pobs=tuple(added_pobs),
                         reason="existing obligations repriced together with added ones")
    fixed = [lid for lid in change.repriced if after[lid].billing_model == "fixed_fee"]
    if fixed and len(fixed) == len(change.repriced) and not added_pobs:
        return Treatment(**base, treatment="cumulative_catch_up",
                         reason="price of work in progress changed; progress re-measured")
    if added_pobs:  # a catch-up cannot add obligations
        return Treatment(**base, treatment="prospective", added_pobs=tuple(added_pobs),
                         reason="obligations repriced and added; the remainder spread forward")
    return Treatment(**base, treatment="prospective", reason="remaining obligations repriced")


# -- billing -------------------------------------------------------------------


def schedule_updates(line: ContractLine, milestone_refs: Mapping[str, str] | None = None) -> dict:
    """The updatable terms a line's billing schedule carries at a version:
    its end date, and its rate card (T&M, codes = roles, as quote-to-project
    writes them), monthly fee (recurring) or milestones (fixed fee, named by
    `milestone_refs`: milestone name -> PSA milestone id)."""
    terms: dict[str, Any] = {"end_date": line.service_end.isoformat()}
    if line.billing_model == "t_and_m":
        terms["rate_card"] = [{"code": e.role, "unit_amount": format(e.rate, "f"), "description": e.role}
                              for e in line.rate_card]
    elif line.billing_model in RECURRING:
        terms["recurring"] = {"amount": _money(line.rate), "interval": "month"}
    elif line.billing_model == "fixed_fee" and milestone_refs is not None:
        terms["milestones"] = [{"ref": milestone_refs[m.name], "description": m.name, "amount": _money(m.amount)}
                               for m in sorted(line.milestones, key=lambda m: (m.due_date, m.name))]
    return terms


# -- billing a recurring fee, effective-dated -----------------------------------

MONTHS_PER_INTERVAL = {"month": 1, "quarter": 3, "year": 12}


def _add_months(d: date, months: int) -> date:
    """`d` plus whole months, the day clamped to the month's end -- how the
    billing family anchors periods on a schedule's start date."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def fee_in_force(contract: Contract, line_id: str, on: date) -> tuple[ContractVersion, Decimal]:
    """The version in force on `on` and the monthly fee it sets for the
    line. Before the first version's effective date the baseline holds; a
    line added by a later version bills at that version's terms until a
    version after it changes them."""
    try:
        version = contract.in_force_on(on)
    except LookupError:
        version = contract.version(1)
    if not any(ln.line_id == line_id for ln in version.lines):
        version = next(v for v in contract.versions if any(ln.line_id == line_id for ln in v.lines))
    return version, version.line(line_id).rate


@attrs.frozen
class RecurringFee:
    """What a recurring line's schedule must carry now (module docstring)."""

    version: ContractVersion  # the version whose fee it is
    fee: Decimal
    next_period: date | None  # the first period not charged yet (None: all are)
    look_again_on: date | None  # when a later period comes under another fee


def recurring_fee(contract: Contract, line_id: str, *, start: date, end: date | None, interval: str,
                  charged: frozenset[str] | set[str], today: date) -> RecurringFee:
    """`charged`: the ISO start dates of the periods billing has charged."""
    step = MONTHS_PER_INTERVAL[interval]

    def period(i: int) -> date | None:
        first = _add_months(start, i * step)
        return None if end is not None and first > end else first

    i = 0
    while (first := period(i)) is not None and first.isoformat() in charged:
        i += 1
    if first is None:
        return RecurringFee(contract.latest, fee_in_force(contract, line_id, contract.latest.effective_date)[1],
                            None, None)
    version, fee = fee_in_force(contract, line_id, first)
    look: date | None = None
    for later in contract.versions:
        if later.effective_date <= first:
            continue
        j = i
        while (p := period(j)) is not None and p < later.effective_date:
            j += 1
        if p is not None and fee_in_force(contract, line_id, p)[1] != fee:
            look = p if look is None else min(look, p)
    if look is not None and look <= today:
        # A period under the new fee has begun while an earlier one, under
        # the old, is still to be charged: the schedule keeps the old fee
        # until billing has charged it. Look again tomorrow.
        look = today + timedelta(days=1)
    return RecurringFee(version, fee, first, look)


def mischarged_periods(contract: Contract, line_id: str, charges: dict[str, Decimal]) -> list[dict]:
    """Periods charged (`charges`: ISO period start -> amount charged) at
    another fee than the one in force on their first day -- what a
    retroactive fee change leaves behind, for finance to adjust."""
    out = []
    for first, amount in sorted(charges.items()):
        version, fee = fee_in_force(contract, line_id, date.fromisoformat(first))
        if amount != fee:
            out.append({"period": first, "charged": _money(amount), "in_force": _money(fee),
                        "version": version.version})
    return out

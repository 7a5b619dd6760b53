"""Ground truth for the invariants: what the fake systems hold, indexed by the
references of the integration contract (docs/integration-contract.md).

Nothing here reads the sync core's internals. The core's store is opened for
one purpose only: its dead-letter queue and exception queues, which must
explain every gap (`Truth.explain`). Everything else comes from the fakes'
records and effect logs, and from the trace.

`Truth` is built once per check; every index is computed on first use and
kept (`functools.cached_property`), so a check pays only for what it reads.
Money is `Decimal` throughout; `cents` is the one place an amount is rounded
(half up, to the currency's minor unit, as every fake rounds).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any

import attrs

from fake_systems.money import MINOR_UNITS

from .invariants_evidence import Evidence, Findings, Gap, result

__all__ = ["Truth", "Gap", "Entry", "Findings", "cents", "dec", "period_of", "parse_actual_ref", "result",
           "time_source"]
# Gap, Findings and result live in invariants_evidence; re-exported here so
# the check modules import everything from one place.

ZERO = Decimal(0)
HOUR_US = 3_600_000_000
CRM_TO_BILLING_MODEL = {"t_and_m": "time_and_materials", "fixed_fee": "fixed_fee", "retainer": "retainer",
                        "managed_service": "subscription"}
_TE_REF = re.compile(r"te:(?P<id>[^:]+):v(?P<v>\d+)(?P<rev>:rev)?")


def cents(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to `currency`'s minor unit."""
    places = MINOR_UNITS.get(currency.upper(), 2)
    return amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


def dec(value: Any) -> Decimal:
    """A fake's decimal string (or None) as a Decimal (None -> 0)."""
    return ZERO if value in (None, "") else Decimal(str(value))


def period_of(day: str) -> str:
    return day[:7]


def time_source(kind: str, ref: str) -> tuple[str, int] | None:
    """(entry, version) a billing item's source bills or adjusts: time_entry
    ``<entry>:v<n>`` (the contract), or an adjustment of one, spelled
    ``<entry>:v<n>:rev`` or, as the ERP spells it, ``te:<entry>:v<n>:rev``."""
    if kind == "adjustment":
        ref = ref[3:] if ref.startswith("te:") else ref
    elif kind != "time_entry":
        return None
    entry, sep, rest = ref.partition(":v")
    version = rest.split(":", 1)[0]
    if not sep or not entry or ":" in entry or not version.isdigit() or (kind == "time_entry" and rest != version):
        return None
    return entry, int(version)


def parse_actual_ref(ref: str | None) -> tuple[str, str, int | None, bool] | None:
    """An ERP actual's externalId per the contract: ("te", entry, version, is_reversal)
    or ("ex", expense entry, None, False); None if it is neither."""
    if not ref:
        return None
    m = _TE_REF.fullmatch(ref)
    if m:
        return "te", m["id"], int(m["v"]), bool(m["rev"])
    if ref.startswith("ex:") and len(ref) > 3:
        return "ex", ref[3:], None, False
    return None


@attrs.define
class Entry:
    """A PSA time entry as the invariants see it."""

    id: str
    record: dict
    deal: str | None  # CRM Opportunity Id of its project
    line: str | None  # CRM QuoteLine Id of its task
    model: str | None  # the line's billing model
    role: str | None  # the firm role (the rate card's Role)
    approved_versions: dict[int, dict]  # version -> snapshot of each version that was approved
    currency: str

    @property
    def version(self) -> int:
        return self.record["version"]

    @property
    def approved(self) -> bool:
        return self.record["status"] == "approved"

    @property
    def hours(self) -> Decimal:
        return dec(self.record["hours"])

    @property
    def billable_tm(self) -> bool:
        """Billed by the hour: approved, flagged billable, on a T&M line."""
        return self.approved and bool(self.record["billable"]) and self.model == "t_and_m"

    @property
    def corr(self) -> str:
        return f"te:{self.id}"

    def label(self) -> str:
        r = self.record
        return (f"time entry {self.id} v{r['version']} ({r['status']}, {r['hours']} h on {r['date']}, "
                f"deal {self.deal or '?'})")


class Truth(Evidence):
    """The world's ground truth, indexed for the invariants."""

    def __init__(self, world) -> None:
        self.world = world
        self.firm = getattr(world, "firm", None)
        self.sim = world.sim
        self._memo: dict[str, Any] = {}

    # The fakes' inspection API (records, effects, emitted) deep-copies
    # everything it returns; at a few thousand consultants that copying cost
    # more than all the checks. The invariants only read, so they read the
    # durable store in place -- and through `.get`, so that looking at a
    # table never creates an empty one (which would show in the report's
    # counts). Nothing here may mutate what these return.

    def _fake(self, system: str):
        return getattr(self.world, system)

    def rows(self, system: str, table: str) -> list[dict]:
        """`system`'s records of `table`, in creation order (read only)."""
        return list(self._fake(system).durable.tables.get(table, {}).values())

    @cached_property
    def _effects_by_kind(self) -> dict[str, dict[str, list[dict]]]:
        return {}

    def effects(self, system: str, kind: str | None = None) -> list[dict]:
        """`system`'s effect log (of `kind`), oldest first (read only)."""
        log = self._fake(system).durable.effects
        if kind is None:
            return log
        by_kind = self._effects_by_kind.get(system)
        if by_kind is None:
            by_kind = self._effects_by_kind[system] = defaultdict(list)
            for e in log:
                by_kind[e["kind"]].append(e)
        return by_kind.get(kind, [])

    def emitted(self, system: str) -> list[dict]:
        return self._fake(system).durable.events

    def memo(self, key: str, compute) -> Any:
        """`compute(self)` once per Truth (analyses shared by several checks)."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]

    def nothing_to_check(self, what: str, expected: str | None) -> list[str]:
        """A check that verified nothing fails when the world gave reason to
        expect something (`expected` says why); else it passes, counted 0."""
        return [f"nothing to check: {what}, though {expected}"] if expected else []

    def expected_deals(self) -> str | None:
        if self.won or self.firm is None or not self.firm.deals:
            return None
        return f"the firm sold {len(self.firm.deals)} deals (none is Closed Won in the CRM)"

    # ------------------------------------------------------------ CRM: what was sold

    @cached_property
    def accounts(self) -> dict[str, dict]:
        return {r["Id"]: r for r in self.rows("crm", "Account")}

    @cached_property
    def opportunities(self) -> dict[str, dict]:
        return {r["Id"]: r for r in self.rows("crm", "Opportunity") if not r.get("IsDeleted")}

    @cached_property
    def won(self) -> dict[str, dict]:
        """Won deals by Opportunity Id, in id order."""
        return {i: o for i, o in sorted(self.opportunities.items()) if o.get("IsWon")}

    @cached_property
    def quote_lines(self) -> dict[str, dict]:
        return {r["Id"]: r for r in self.rows("crm", "QuoteLine") if not r.get("IsDeleted")}

    @cached_property
    def lines_of(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for line in self.quote_lines.values():
            out[line["OpportunityId"]].append(line)
        return out

    @cached_property
    def contract_versions(self) -> dict[str, list[dict]]:
        """ContractVersion records per Opportunity, by VersionNumber."""
        out: dict[str, list[dict]] = defaultdict(list)
        for v in self.rows("crm", "ContractVersion"):
            out[v["OpportunityId"]].append(v)
        return {k: sorted(vs, key=lambda v: v["VersionNumber"]) for k, vs in out.items()}

    @cached_property
    def terms(self) -> dict[str, list[tuple[dict, dict[str, dict]]]]:
        """Per deal, each version with the whole contract as it stands then:
        (version record, {QuoteLine Id: line snapshot}). A version lists only
        the lines it changed or added; the others carry over."""
        out = {}
        for opp, versions in self.contract_versions.items():
            current: dict[str, dict] = {}
            rows = []
            for v in versions:
                for snap in v.get("ChangedLines") or []:
                    current[snap["LineId"]] = snap
                rows.append((v, dict(current)))
            out[opp] = rows
        return out

    def latest_version(self, opp: str) -> int:
        versions = self.contract_versions.get(opp) or []
        return versions[-1]["VersionNumber"] if versions else 0

    def version_in_force(self, opp: str, day: str) -> tuple[dict, dict[str, dict]] | None:
        """The highest-numbered version effective on or before `day` (the
        baseline for work before the contract's first effective date)."""
        rows = self.terms.get(opp) or []
        found = [r for r in rows if r[0]["EffectiveDate"] <= day]
        if found:
            return max(found, key=lambda r: r[0]["VersionNumber"])
        return rows[0] if rows else None

    def rate(self, opp: str, line: str, role: str | None, day: str) -> tuple[Decimal | None, int | None, str]:
        """(bill rate, version it came from, why not) of `role` on `line` on `day`."""
        found = self.version_in_force(opp, day)
        if found is None:
            return None, None, f"deal {opp} has no ContractVersion in the CRM"
        version, lines = found
        snap = lines.get(line)
        if snap is None:
            return None, version["VersionNumber"], f"line {line} is not in version {version['VersionNumber']}"
        for entry in snap.get("RateCard") or []:
            if entry["Role"] == role:
                return dec(entry["Rate"]), version["VersionNumber"], ""
        return None, version["VersionNumber"], (f"version {version['VersionNumber']} of deal {opp} has no rate for "
                                                f"role {role} on line {line}")

    @cached_property
    def close_times(self) -> dict[str, int]:
        """Virtual time each deal became won during the run (the CRM's effect
        log: the update that changed IsWon); deals won before go-live have none."""
        out = {}
        for e in self.effects("crm", "update"):
            if e["table"] == "Opportunity" and e["t"] > 0 and "IsWon" in (e.get("detail") or {}).get("fields", ()):
                out.setdefault(e["id"], e["t"])
        return out

    # ------------------------------------------------------------ PSA: delivery

    @cached_property
    def psa_projects(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "projects")}

    @cached_property
    def psa_projects_of(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for p in self.psa_projects.values():
            if p.get("external_reference"):
                out[p["external_reference"]].append(p)
        return out

    def deal_of_psa_project(self, project_id: str | None) -> str | None:
        p = self.psa_projects.get(project_id) if project_id else None
        ref = p and p.get("external_reference")
        return ref if ref in self.opportunities else None

    @cached_property
    def psa_tasks(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "tasks")}

    def line_of_task(self, task_id: str | None, opp: str | None) -> str | None:
        """The QuoteLine a task stands for: its external_reference (or
        line_ref), else its parent's."""
        seen = 0
        while task_id is not None and seen < 32:
            task = self.psa_tasks.get(task_id)
            if task is None:
                return None
            for ref in (task.get("external_reference"), task.get("line_ref")):
                line = self.quote_lines.get(ref) if ref else None
                if line is not None and (opp is None or line["OpportunityId"] == opp):
                    return ref
            task_id, seen = task.get("parent_id"), seen + 1
        return None

    @cached_property
    def psa_roles(self) -> dict[str, str | None]:
        return {r["id"]: r.get("external_reference") for r in self.rows("psa", "roles")}

    @cached_property
    def psa_resources(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "resources")}

    @cached_property
    def psa_assignments(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "assignments")}

    @cached_property
    def entry_history(self) -> dict[str, list[dict]]:
        return {r["id"]: r["versions"] for r in self.rows("psa", "time_entry_versions")}

    @cached_property
    def entries(self) -> dict[str, Entry]:
        out = {}
        for r in self.rows("psa", "time_entries"):
            deal = self.deal_of_psa_project(r["project_id"])
            line = self.line_of_task(r.get("task_id"), deal)
            if line is None and deal is not None:
                tm = [ln["Id"] for ln in self.lines_of.get(deal, []) if ln["BillingModel"] == "t_and_m"]
                line = tm[0] if len(tm) == 1 and r.get("task_id") is None else None
            model = self.quote_lines[line]["BillingModel"] if line else None
            assignment = self.psa_assignments.get(r.get("assignment_id") or "")
            role_id = (assignment or {}).get("role_id") or self.psa_resources.get(r["resource_id"], {}).get("role_id")
            approved = {v["version"]: v for v in self.entry_history.get(r["id"], [])
                        if v["status"] == "approved" and v.get("approved_at")}
            if r["status"] == "approved":
                approved[r["version"]] = r
            currency = (self.opportunities.get(deal) or {}).get("CurrencyIsoCode") or r.get("bill_currency") or "USD"
            out[r["id"]] = Entry(r["id"], r, deal, line, model, self.psa_roles.get(role_id), approved, currency)
        return out

    def expected_amount(self, entry: Entry, snapshot: dict | None = None) -> tuple[Decimal | None, str]:
        """hours x the contract rate in force on the work date, to the cent."""
        snap = snapshot or entry.record
        if entry.deal is None or entry.line is None:
            return None, f"{entry.label()} is on no task mapped to a contract line"
        rate, _, why = self.rate(entry.deal, entry.line, entry.role, snap["date"])
        if rate is None:
            return None, why
        return cents(dec(snap["hours"]) * rate, entry.currency), ""

    @cached_property
    def psa_milestones(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "milestones")}

    # ------------------------------------------------------------ expenses system

    @cached_property
    def expense_entries(self) -> dict[str, dict]:
        """Entries of the expense system, with their report's status."""
        reports = {r["ReportId"]: r for r in self.rows("expenses", "reports")}
        out = {}
        for e in self.rows("expenses", "entries"):
            report = reports.get(e["ReportId"], {})
            out[e["EntryId"]] = {**e, "ReportStatus": report.get("Status"), "ApprovedOn": report.get("ApprovedOn")}
        return out

    @staticmethod
    def expense_approved(e: dict) -> bool:
        return e.get("ReportStatus") in ("APPROVED", "REIMBURSED")

    @cached_property
    def psa_expenses(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.rows("psa", "expenses")}

    # ------------------------------------------------------------ ERP

    @cached_property
    def erp_customers(self) -> list[dict]:
        return self.rows("erp", "customers")

    @cached_property
    def erp_projects(self) -> list[dict]:
        return self.rows("erp", "projects")

    def by_field(self, rows: Iterable[dict], field: str) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r.get(field):
                out[str(r[field])].append(r)
        return out

    @cached_property
    def erp_customers_by_eid(self) -> dict[str, list[dict]]:
        return self.by_field(self.erp_customers, "externalId")

    @cached_property
    def erp_projects_by_eid(self) -> dict[str, list[dict]]:
        return self.by_field(self.erp_projects, "externalId")

    @cached_property
    def erp_actuals(self) -> list[dict]:
        return self.rows("erp", "projectActuals")

    @cached_property
    def erp_creates(self) -> dict[tuple[str, str], int]:
        """How many times each (table, externalId) was created (effects log)."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for e in self.effects("erp", "create"):
            eid = (e.get("detail") or {}).get("externalId")
            if eid:
                out[(e["table"], eid)] += 1
        return out

    @cached_property
    def time_actuals(self) -> dict[str, dict[int, dict[str, list[dict]]]]:
        """entry id -> version -> {"post": [...], "rev": [...]} ERP actuals."""
        out: dict[str, dict[int, dict[str, list[dict]]]] = defaultdict(dict)
        for a in self.erp_actuals:
            ref = parse_actual_ref(a.get("externalId"))
            if ref and ref[0] == "te":
                slot = out[ref[1]].setdefault(ref[2], {"post": [], "rev": []})
                slot["rev" if ref[3] else "post"].append(a)
        return out

    @cached_property
    def expense_actuals(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for a in self.erp_actuals:
            ref = parse_actual_ref(a.get("externalId"))
            if ref and ref[0] == "ex":
                out[ref[1]].append(a)
        return out

    # ------------------------------------------------------------ billing

    @cached_property
    def billing_customers(self) -> list[dict]:
        return self.rows("billing", "customers")

    @cached_property
    def billing_customers_by_ref(self) -> dict[str, list[dict]]:
        return self.by_field(self.billing_customers, "external_ref")

    @cached_property
    def schedules(self) -> list[dict]:
        return self.rows("billing", "billing_schedules")

    @cached_property
    def schedules_of(self) -> dict[str, list[dict]]:
        return self.by_field(self.schedules, "contract_ref")

    def schedule_line(self, schedule: dict, opp: str) -> str | None:
        """The QuoteLine a billing schedule stands for: metadata "line" (the
        contract), else the deal's only line of the schedule's model."""
        line = (schedule.get("metadata") or {}).get("line")
        if line:
            return line
        same = [ln["Id"] for ln in self.lines_of.get(opp, [])
                if CRM_TO_BILLING_MODEL.get(ln["BillingModel"]) == schedule["model"]]
        return same[0] if len(same) == 1 else None

    @cached_property
    def items(self) -> list[dict]:
        return self.rows("billing", "invoice_items")

    @cached_property
    def live_items_by_source(self) -> dict[tuple[str, str], list[dict]]:
        """Invoice items not voided, by (source type, source id)."""
        out: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for i in self.items:
            if i["status"] != "void" and i.get("source"):
                out[(i["source"]["type"], i["source"]["id"])].append(i)
        return out

    @cached_property
    def time_items(self) -> dict[str, list[dict]]:
        """entry id -> live items billing any of its versions or adjusting
        them (`time_source`)."""
        out: dict[str, list[dict]] = defaultdict(list)
        for (kind, ref), items in self.live_items_by_source.items():
            found = time_source(kind, ref)
            if found is not None and (kind == "time_entry" or found[0] in self.entries):
                out[found[0]].extend(items)
        return out

    @cached_property
    def time_credits(self) -> dict[str, list[tuple[dict, dict]]]:
        """entry id -> (credit note, item) for each billed time item taken
        back by a credit note on its invoice: the note's memo names the
        reversal ``te:<entry>:v<n>:rev`` (the contract), and the item of
        ``<entry>:v<n>`` on that invoice counts as credited in full."""
        out: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
        for note in self.rows("billing", "credit_notes"):
            memo = note.get("memo") or ""
            found = time_source("adjustment", memo) if memo.startswith("te:") and memo.endswith(":rev") else None
            if found is None:
                continue
            entry, version = found
            for item in self.live_items_by_source.get(("time_entry", f"{entry}:v{version}"), []):
                if item.get("invoice") == note.get("invoice"):
                    out[entry].append((note, item))
        return out

    def net_time_billed(self, entry: str) -> Decimal:
        """What billing holds for a time entry: its items (originals and
        adjustments) less what credit notes took back."""
        billed = sum((dec(i["amount"]) for i in self.time_items.get(entry, [])), ZERO)
        return billed - sum((dec(item["amount"]) for _, item in self.time_credits.get(entry, [])), ZERO)

    @cached_property
    def invoices(self) -> list[dict]:
        return self.rows("billing", "invoices")

    # ------------------------------------------------------------ revenue

    @cached_property
    def rev_contracts(self) -> list[dict]:
        return self.rows("revenue", "rev_contracts")

    @cached_property
    def rev_contracts_of(self) -> dict[str, list[dict]]:
        """Top-level revenue contracts by source contract id (a CRM Opportunity Id)."""
        return self.by_field([c for c in self.rev_contracts if c.get("parent_rc_id") is None], "source_contract_id")

    @cached_property
    def rev_lines(self) -> list[dict]:
        return self.rows("revenue", "rev_lines")

    @cached_property
    def rev_events(self) -> list[dict]:
        return self.rows("revenue", "rev_events")

    def gave_up(self) -> int:
        return self.sim.trace.kind_counts.get("psa.people.gave_up", 0)

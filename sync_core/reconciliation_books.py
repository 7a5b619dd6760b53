"""What the four books hold for one deal, read through the vendors' APIs, and
how they tally per accounting period.

`read_books` makes the reconciliation's reads for a deal (a CRM Opportunity
Id), each narrowed by the filters the vendor offers, so a run costs what the
deals it looks at hold, never what the whole firm holds:

  PSA      GET /time_entries?project_id=<PSA project>&status=approved
           [&date_from=&date_to=  one month at a time, when only some months
           need a look]                                     pages of 200
  ERP      GET /erp/v1/projectActuals?project=eid:<deal>    pages of 1000
  billing  GET /v1/invoice_items?schedule=<id>, for each of the deal's
           billing schedules; GET /v1/credit_notes?customer=<billing
           customer>                                        pages of 100
  revenue  GET /rc/contracts?source_contract_id=<deal>, then
           GET /rc/contracts/<rc_id>/schedule for each

(Neither the ERP's nor the billing family's lists filter by service date --
the ERP filters by posting period *id*, billing by nothing date-like -- so
those two are read for the deal as a whole and tallied by month here.)

`tally` turns what was read into four figures per month of *work* (the time
entry's date: the ERP actual's ``tranDate``, the invoice item's
``service_date``, the revenue line's original period -- ``moved_from`` when
the engine moved it out of a closed period):

  psa       hours and value of the approved (standing) versions; the value
            is what the core priced the version at under the contract, the
            authority for rates (the PSA's own rate is only a stamp)
  erp       net hours and revenue of the time actuals, reversals included
  billing   net of the time items: originals, negative adjustments
            (``te:<id>:v<n>:rev``), less items a credit note whose memo
            names their reversal took back (the integration contract)
  revenue   T&M revenue recognised from ``te:`` events, reversals included

and counts, per deal, how many postings carry a source reference that
resolves to a record the core holds (the traceability KPI).
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from decimal import Decimal

import attrs
import trio

from .flows.time_expenses import EXPENSES
from .flows.time_state import ENTRIES, PRICED
from .ports import Environment, Transaction, TransportError
from .replies import check
from .retry import BusinessException, RetryLater

__all__ = ["Books", "Figures", "Reader", "Unreadable", "read_books", "tally", "ZERO"]

ZERO = Decimal("0.00")  # sums start at two places, so "0.00" is written, not "0"
READ_ATTEMPTS = 6  # a read is tried this often before the deal waits for the next run
ERP = "/erp/v1"
_TE = re.compile(r"te:(?P<id>[^:]+):v(?P<v>\d+)(?P<rev>:rev)?")
_TE_SOURCE = re.compile(r"(?P<id>[^:]+):v(?P<v>\d+)")


class Unreadable(Exception):
    """A vendor would not answer a read (down, refusing, or the core's own
    reference is wrong). The deal is not judged this run; it is tried
    again at the next."""


class Reader:
    """GETs with the vendor's patience: Retry-After honoured, backoff with
    seeded jitter, a lost answer asked again (a read is always safe to
    repeat). Every request carries the deal's correlation id and names the
    run as its cause, so the trace shows what the job read and why."""

    def __init__(self, env: Environment, run_id: str) -> None:
        self.env = env
        self.cause = run_id
        self.requests = 0

    async def get(self, system: str, path: str, query: dict, *, corr: str, doing: str) -> dict:
        headers = {"x-correlation-id": corr, "x-causation-id": self.cause}
        why = ""
        for attempt in range(1, READ_ATTEMPTS + 1):
            self.requests += 1
            try:
                response = await self.env.clients[system].request("GET", path, query=query, headers=headers)
                return check(system, response, ok=(200,), doing=doing).json
            except TransportError as exc:
                why, after = f"{system} {doing}: no answer ({exc})", None
            except RetryLater as exc:
                why, after = exc.reason, exc.after
            except BusinessException as exc:
                raise Unreadable(exc.message) from None
            if attempt < READ_ATTEMPTS:
                await trio.sleep(after if after is not None else self.env.random.uniform(0, min(60.0, 2.0 ** attempt)))
        raise Unreadable(f"gave up after {READ_ATTEMPTS} attempts: {why}")


@attrs.frozen
class Books:
    psa: list[dict]  # approved time entries (their current records)
    erp: list[dict]  # the project's actuals, time and expense
    items: list[dict]  # invoice items on the deal's schedules
    notes: list[dict]  # credit notes of the deal's billing customer
    revenue: list[dict]  # active schedule lines of the deal's revenue contracts


def month_range(period: str) -> tuple[str, str]:
    year, month = int(period[:4]), int(period[5:7])
    return f"{period}-01", date(year, month, calendar.monthrange(year, month)[1]).isoformat()


async def read_books(reader: Reader, deal: str, *, project: str, schedules: list[str], customer: str | None,
                     periods: list[str] | None) -> Books:
    corr = f"deal:{deal}"
    psa: dict[str, dict] = {}
    for bounds in [None] if periods is None else [month_range(p) for p in periods]:
        page = 1
        while True:
            query = {"project_id": project, "status": "approved", "per_page": "200", "page": str(page)}
            if bounds is not None:
                query.update(date_from=bounds[0], date_to=bounds[1])
            body = await reader.get("psa", "/time_entries", query, corr=corr, doing=f"listing approved time of {project}")
            for row in body["results"]:
                psa[str(row["id"])] = row  # page numbers over a changing set may repeat a row
            if not body.get("more"):
                break
            page += 1
    erp: list[dict] = []
    offset = 0
    while True:
        body = await reader.get("erp", f"{ERP}/projectActuals", {"project": f"eid:{deal}", "limit": "1000",
                                                                 "offset": str(offset)},
                                corr=corr, doing=f"listing the actuals of project eid:{deal}")
        erp.extend(body["items"])
        if not body.get("hasMore") or not body["items"]:
            break
        offset += len(body["items"])
    items: list[dict] = []
    for schedule in schedules:
        items.extend(await _billing_list(reader, "/v1/invoice_items", {"schedule": schedule}, corr))
    notes = [] if customer is None else await _billing_list(reader, "/v1/credit_notes", {"customer": customer}, corr)
    contracts = await reader.get("revenue", "/rc/contracts", {"source_contract_id": deal}, corr=corr,
                                 doing=f"finding the revenue contracts of {deal}")
    revenue: list[dict] = []
    for rc_id in sorted(c["rc_id"] for c in contracts["contracts"]):
        body = await reader.get("revenue", f"/rc/contracts/{rc_id}/schedule", {}, corr=corr,
                                doing=f"reading the schedule of {rc_id}")
        revenue.extend(body["lines"])
    return Books(sorted(psa.values(), key=lambda r: str(r["id"])), erp, items, notes, revenue)


async def _billing_list(reader: Reader, path: str, query: dict, corr: str) -> list[dict]:
    rows: list[dict] = []
    after = None
    while True:
        q = dict(query, limit="100")
        if after is not None:
            q["starting_after"] = after
        body = await reader.get("billing", path, q, corr=corr, doing=f"listing {path} {query}")
        rows.extend(body["data"])
        if not body.get("has_more") or not body["data"]:
            return rows
        after = body["data"][-1]["id"]


# ------------------------------------------------------------------ tallying


@attrs.define
class Figures:
    """One month of one deal, as each book has it."""

    psa_hours: Decimal = ZERO
    psa_amount: Decimal = ZERO
    erp_hours: Decimal = ZERO
    erp_revenue: Decimal = ZERO
    billed: Decimal = ZERO
    recognised: Decimal = ZERO
    unpriced: int = 0  # approved versions the core has not priced (so the PSA value is unknown)
    unseen: int = 0  # entries changed in the PSA since the core last read them
    # entry -> [psa hours, psa amount, erp hours, erp revenue, billed, recognised]
    entries: dict[str, list[Decimal]] = attrs.Factory(dict)

    def add(self, entry: str, column: int, value: Decimal) -> None:
        self.entries.setdefault(entry, [ZERO] * 6)[column] += value

    def differences(self) -> list[str]:
        out = []
        if self.psa_hours != self.erp_hours:
            out.append(f"hours: PSA {self.psa_hours}, ERP {self.erp_hours}")
        off = [f"{name} {value}" for name, value in (("ERP revenue", self.erp_revenue), ("billed", self.billed),
                                                     ("recognised", self.recognised)) if value != self.psa_amount]
        if off:
            out.append(f"T&M value: PSA {self.psa_amount}, " + ", ".join(off))
        if self.unpriced:
            out.append(f"{self.unpriced} approved versions never priced by the core")
        return out

    def differing_entries(self, limit: int = 10) -> list[str]:
        bad = [e for e, (ph, pa, eh, er, b, r) in sorted(self.entries.items()) if ph != eh or not pa == er == b == r]
        return bad[:limit]

    def to_json(self, currency: str | None) -> dict:
        return {
            "currency": currency,
            "psa": {"hours": format(self.psa_hours, "f"), "amount": format(self.psa_amount, "f")},
            "erp": {"hours": format(self.erp_hours, "f"), "revenue": format(self.erp_revenue, "f")},
            "billing": {"net": format(self.billed, "f")},
            "revenue": {"recognised": format(self.recognised, "f")},
        }


def _dec(value) -> Decimal:
    return ZERO if value in (None, "") else Decimal(str(value))


def tally(txn: Transaction, books: Books) -> tuple[dict[str, Figures], dict]:
    """Figures per month, and the deal's traceability counts."""
    months: dict[str, Figures] = {}
    trace = {"postings": 0, "traceable": 0, "untraceable": []}

    def month(day: str | None) -> Figures:
        return months.setdefault((day or "????-??")[:7], Figures())

    def traced(ok: bool, what: str) -> None:
        trace["postings"] += 1
        if ok:
            trace["traceable"] += 1
        elif len(trace["untraceable"]) < 10:
            trace["untraceable"].append(what)

    priced = lambda entry, version: txn.get(PRICED, f"{entry}:v{version}")  # noqa: E731
    for row in books.psa:
        entry, version = str(row["id"]), row["version"]
        fig = month(row["date"])
        fig.psa_hours += _dec(row["hours"])
        fig.add(entry, 0, _dec(row["hours"]))
        p = priced(entry, version)
        if p is None:
            fig.unpriced += 1
        elif p["billable_tm"]:
            fig.psa_amount += _dec(p["bill_amount"])
            fig.add(entry, 1, _dec(p["bill_amount"]))
        state = txn.get(ENTRIES, entry)
        if state is None or state["lock"] < row["lock_version"]:
            fig.unseen += 1
    for a in books.erp:
        ref = _TE.fullmatch(a.get("externalId") or "")
        if a.get("type") == "time":
            fig = month(a.get("tranDate"))
            entry = ref["id"] if ref else f"erp:{a.get('tranId')}"
            fig.erp_hours += _dec(a.get("hours"))
            fig.erp_revenue += _dec(a.get("revenueAmount"))
            fig.add(entry, 2, _dec(a.get("hours")))
            fig.add(entry, 3, _dec(a.get("revenueAmount")))
        ok = (ref is not None and priced(ref["id"], ref["v"]) is not None) or (
            (a.get("externalId") or "").startswith("ex:") and txn.get(EXPENSES, a["externalId"][3:]) is not None)
        traced(ok, f"ERP actual {a.get('tranId')} ({a.get('externalId')})")
    live = [i for i in books.items if i.get("status") != "void"]
    credited = {(n.get("invoice"), n["memo"][3:-4]) for n in books.notes
                if n.get("status") != "void" and _TE.fullmatch(n.get("memo") or "") and n["memo"].endswith(":rev")}
    for item in live:
        src = item.get("source") or {}
        kind, ref = src.get("type"), str(src.get("id") or "")
        te = _TE_SOURCE.fullmatch(ref) if kind == "time_entry" else _TE.fullmatch(ref) if kind == "adjustment" else None
        if te is not None and (kind == "time_entry" or te["rev"]):
            p = priced(te["id"], te["v"])
            fig = month(item.get("service_date") or (p or {}).get("date"))
            fig.billed += _dec(item["amount"])
            fig.add(te["id"], 4, _dec(item["amount"]))
            if kind == "time_entry" and (item.get("invoice"), ref) in credited:
                fig.billed -= _dec(item["amount"])  # a credit note named its reversal: taken back in full
                fig.add(te["id"], 4, -_dec(item["amount"]))
            traced(p is not None, f"billing item {item['id']} ({kind} {ref})")
        else:
            traced(_source_known(txn, kind, ref), f"billing item {item['id']} ({kind} {ref})")
    for line in books.revenue:
        ref = line.get("event_ref")
        if ref is None:
            continue  # scheduled at booking (ratable): not a posting of the core's
        te = _TE.fullmatch(ref)
        if te is not None:
            fig = month(line.get("moved_from") or line.get("period"))
            fig.recognised += _dec(line["amount"])
            fig.add(te["id"], 5, _dec(line["amount"]))
            traced(priced(te["id"], te["v"]) is not None, f"revenue line {line.get('line_id')} ({ref})")
        else:
            traced(ref.startswith("ms:") and _milestone_known(txn, ref[3:]), f"revenue line {line.get('line_id')} ({ref})")
    return months, trace


def _milestone_known(txn: Transaction, psa_milestone: str) -> bool:
    return txn.get("xref", f"psa_milestone.milestone:{psa_milestone}") is not None


def _source_known(txn: Transaction, kind: str | None, ref: str) -> bool:
    """A non-time item points at something the core holds."""
    if kind in ("milestone", "adjustment") and _milestone_known(txn, ref):
        return True
    if kind in ("expense", "adjustment") and txn.get(EXPENSES, ref) is not None:
        return True
    return kind == "recurring" and bool(ref)  # the billing run's own charge of a schedule the core set up

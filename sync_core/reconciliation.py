"""The reconciliation job: do the PSA, the ERP, billing and the revenue engine
agree on each project's approved time, month by month?

The harness judges a run by the fakes' ground truth; this is the core's own
look, as production middleware has it: through the vendors' APIs, on a
schedule, reporting what does not tie. For each deal (project) and month of
work it compares four figures (`reconciliation_books`): the PSA's approved
hours and their value at the contract's rates, the ERP's net time actuals,
billing's net time items and the T&M revenue recognised. A month whose
figures differ is traced as ``core.reconciliation.difference`` (correlation
``deal:<Opportunity Id>``); each run ends with ``core.reconciliation.run``.
The last verdict per (deal, month) is kept in table ``reconciliation``.

It never opens an exception. Exceptions are how the core asks a person to
act on a failure it knows of -- and the harness excuses what an exception
names. A job that filed its own differences there would let the core excuse
its own failures; a difference is a report, for finance to read.

*Not a difference yet.* Work the core still has to do for a deal is not a
difference: a message queued, retrying or in flight in the deal's outbox
line, time waiting for the deal's provisioning, a PSA change the core has
not read yet (the entry's ``lock_version`` is newer than the one the core
handled), or a change that arrived while the books were being read. Such a
month is reported *pending* and looked at again next run -- unless it has
been pending longer than ``pending_limit_s``, when work that never lands is
a difference like any other. A deal whose line is held by a dead letter or
a parked exception is not pending: nothing will move until a person acts,
and the difference names the message that blocks it.

*Cost.* Reading every time entry every day would, at firm scale (5,000
consultants, ~200,000 entries a month), cost more than the integration
itself. So the job reads only what may have moved:

  * a (deal, month) is marked *dirty* in the PSA feed's own transaction
    when a time entry changes in a way that can move the books (it is
    approved now, or the core priced one of its versions before -- for each
    month those versions were dated in). One small row; a dirty month is
    forgotten only when it ties;
  * a run reads at most ``max_projects`` dirty deals (oldest first; the rest
    carry over) and, as a rolling audit of what no feed announced -- a
    posting changed by hand in the ERP -- ``sweep_projects`` more deals in
    turn, read whole;
  * each deal is read with the vendors' filters (`reconciliation_books`):
    the PSA per dirty month, the other three per project;
  * a deal with work still queued is not read at all: its verdict would
    only be "pending".

``request(full=True)`` runs it on demand over every deal, unbounded.

Configuration, ``config["reconcile"]``: ``enabled`` (True), ``at_hour``
(2: the first run's hour, UTC business time), ``every_s`` (86400),
``max_projects`` (200), ``sweep_projects`` (2), ``pending_limit_s``
(259200, three days).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import xrefs
from .flows.time_state import PRICED, WAITING
from .outbox import Outbox, next_counter
from .ports import Transaction
from .reconciliation_books import Figures, Reader, Unreadable, read_books, tally

if TYPE_CHECKING:
    from .core import ReferenceCore

__all__ = ["ReconciliationJob", "DIRTY", "RESULTS", "DEALS", "RUNS", "DEFAULTS"]

DIRTY = "reconciliation_dirty"  # "<deal>\x00<YYYY-MM>" or "<deal>\x00*" (read it whole) -> {"since_us", "stamp"}
RESULTS = "reconciliation"  # "<deal>\x00<YYYY-MM>" -> the latest verdict, its figures and reasons
DEALS = "reconciliation_deals"  # deal -> {"checked_us", "postings", "traceable", "untraceable"}
RUNS = "reconciliation_runs"  # "schedule" -> {"next_us"}; "last" -> the last summary; "sweep" -> the last deal swept
UNLINKED = "psa_project:"  # a dirty group for a PSA project no deal is linked to (yet)
ALL = "*"
_SEP = "\x00"
DEFAULTS: dict[str, Any] = {"enabled": True, "at_hour": 2, "every_s": 86400, "max_projects": 200,
                            "sweep_projects": 2, "pending_limit_s": 3 * 86400}
LISTED = 20  # deal/month pairs named in a run's summary


def _config(raw: Any) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"config reconcile must be a table of settings ({', '.join(DEFAULTS)}), not {raw!r}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"config reconcile has no setting {unknown[0]!r}; the settings are {', '.join(DEFAULTS)}")
    out = dict(DEFAULTS, **raw)
    for key, value in out.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ValueError(f"config reconcile.enabled must be true or false, not {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0 or (key == "every_s" and value == 0):
            raise ValueError(f"config reconcile.{key} must be a whole number{' above zero' if key == 'every_s' else ''}"
                             f", not {value!r}")
    if out["at_hour"] > 23:
        raise ValueError(f"config reconcile.at_hour must be an hour from 0 to 23, not {out['at_hour']}")
    return out


@attrs.define
class _Target:
    """One deal (or unlinked PSA project) to look at this run."""

    deal: str
    periods: set[str] | None  # None: every month the books hold
    since_us: int
    marks: dict[str, dict] = attrs.Factory(dict)  # dirty key -> its row when the run planned

    def since(self, period: str) -> int | None:
        """Since when `period` has waited to tie (None: it was not marked)."""
        row = self.marks.get(f"{self.deal}{_SEP}{period}") or self.marks.get(f"{self.deal}{_SEP}{ALL}")
        return row["since_us"] if row else None


class ReconciliationJob:
    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        self.config = _config(core.config.get("reconcile"))
        # Without time-to-finance the core posts no time: nothing to reconcile.
        self.enabled = self.config["enabled"] and any(f.name == "time_to_finance" for f in core.flows)
        self._wake = trio.Event()
        self._requested: str | None = None  # "full" or "dirty": a run asked for
        self._running = False
        if self.enabled:
            core.feeds.on("psa", "time_entry", self.on_time_entry)

    # ------------------------------------------------------------ control

    def request(self, *, full: bool = True) -> None:
        """Run now (over every deal when `full`), not waiting for the hour."""
        if self._requested != "full":
            self._requested = "full" if full else "dirty"
        self._wake.set()

    def idle(self) -> bool:
        return not self._running and self._requested is None

    async def run(self) -> None:
        if not self.enabled:
            return
        while True:
            due = self._next_due()
            wait = max(0, due - self.core.now_us()) / 1_000_000
            if self._requested is None and wait > 0:
                with trio.move_on_after(wait):
                    await self._wake.wait()
            self._wake = trio.Event()
            requested, self._requested = self._requested, None
            scheduled = self.core.now_us() >= due
            if requested is None and not scheduled:
                continue
            await self.run_once(full=requested == "full", mode=requested or "scheduled")
            if scheduled:
                self._advance_schedule(due)

    def _next_due(self) -> int:
        """When the next scheduled run is due, kept in the store so a
        restarted core neither skips nor repeats a day's run."""
        with self.core.env.store.transaction() as txn:
            row = txn.get(RUNS, "schedule")
            if row is None:
                now = self.core.env.now()
                first = now.replace(hour=self.config["at_hour"], minute=0, second=0, microsecond=0)
                if first <= now:
                    first += timedelta(days=1)
                row = {"next_us": self.core.now_us() + (first - now) // timedelta(microseconds=1)}
                txn.put(RUNS, "schedule", row)
        return row["next_us"]

    def _advance_schedule(self, due: int) -> None:
        every = self.config["every_s"] * 1_000_000
        now = self.core.now_us()
        nxt = due + every
        while nxt <= now:  # a run that took longer than the interval, or days the core was down
            nxt += every
        with self.core.env.store.transaction() as txn:
            txn.put(RUNS, "schedule", {"next_us": nxt})

    # ------------------------------------------------------------ what may have moved (PSA feed)

    def on_time_entry(self, txn: Transaction, change: dict) -> None:
        snap = change.get("snapshot") or {}
        entry, project, day = snap.get("id"), snap.get("project_id"), snap.get("date")
        if entry is None or project is None or not isinstance(day, str):
            return
        # Every month a version the core priced was dated in: a correction
        # may move the work to another month, and the old one changes too.
        # (Versions are few and numbered from 1: gets, not a scan -- a scan
        # inside a feed batch's transaction also walks the batch's writes.)
        version = snap.get("version") if isinstance(snap.get("version"), int) else 1
        earlier = [p["date"] for p in (txn.get(PRICED, f"{entry}:v{n}") for n in range(1, version + 1)) if p]
        if snap.get("status") != "approved" and not earlier:
            return  # drafts and submissions that never stood: no book holds them
        group = xrefs.deal_of_psa_project(txn, str(project)) or f"{UNLINKED}{project}"
        for period in sorted({day[:7], *(d[:7] for d in earlier)}):
            self._mark(txn, group, period, f"psa:{change.get('id')}")

    def _mark(self, txn: Transaction, group: str, period: str, stamp: str | None) -> None:
        key = f"{group}{_SEP}{period}"
        row = txn.get(DIRTY, key)
        txn.put(DIRTY, key, {"since_us": row["since_us"] if row else self.core.now_us(), "stamp": stamp})

    # ------------------------------------------------------------ one run

    async def run_once(self, *, full: bool = False, mode: str | None = None) -> dict:
        """Reconcile what may have moved (every deal when `full`); returns
        the run's summary (also traced and kept under ``reconciliation_runs``)."""
        self._running = True
        started = self.core.now_us()
        try:
            with self.core.env.store.transaction() as txn:
                run_id = f"recon{next_counter(txn, 'reconciliation.runs'):06d}"
                targets, carried = self._plan(txn, full)
            reader = Reader(self.core.env, run_id)
            verdicts: list[dict] = []
            read = 0
            for target in targets:
                found, was_read = await self._reconcile(reader, run_id, target)
                verdicts.extend(found)
                read += was_read
            summary = self._summarise(run_id, mode or ("full" if full else "dirty"), started, targets, read, carried,
                                      verdicts, reader.requests)
            kpis = getattr(self.core, "kpis", None)
            if kpis is not None:
                kpis.emit(cause=run_id)
            return summary
        finally:
            self._running = False

    def _plan(self, txn: Transaction, full: bool) -> tuple[list[_Target], int]:
        groups: dict[str, _Target] = {}
        for key, row in list(txn.scan(DIRTY)):
            group, _, period = key.partition(_SEP)
            if group.startswith(UNLINKED):
                deal = xrefs.deal_of_psa_project(txn, group[len(UNLINKED):])
                if deal is not None:  # linked since: the marks (and only the deal's verdicts) go on
                    txn.delete(DIRTY, key)
                    txn.delete(RESULTS, key)
                    key, group = f"{deal}{_SEP}{period}", deal
                    mine = txn.get(DIRTY, key)
                    if mine is not None:
                        row = dict(mine, since_us=min(row["since_us"], mine["since_us"]))
                    txn.put(DIRTY, key, row)
            target = groups.setdefault(group, _Target(group, set(), row["since_us"]))
            target.since_us = min(target.since_us, row["since_us"])
            target.marks[key] = row
            if target.periods is not None:
                target.periods = None if period == ALL else target.periods | {period}
        deals = [k[len("deal.psa_project:"):] for k, _ in txn.scan("xref", prefix="deal.psa_project:")]
        if full:
            for deal in deals:
                groups.setdefault(deal, _Target(deal, None, self.core.now_us())).periods = None
            return [groups[g] for g in sorted(groups)], 0
        chosen = sorted(groups.values(), key=lambda t: (t.since_us, t.deal))
        carried = max(0, len(chosen) - self.config["max_projects"])
        chosen = chosen[: self.config["max_projects"]]
        # The rolling audit: a few more deals each run, in turn, read whole.
        taken = set(groups)  # a dirty deal carried over waits its turn; the audit is for the quiet ones
        cursor = txn.get(RUNS, "sweep")
        turn = [d for d in deals if cursor is None or d > cursor] + [d for d in deals if cursor is not None and d <= cursor]
        swept = [d for d in turn if d not in taken][: self.config["sweep_projects"]]
        for deal in swept:
            chosen.append(_Target(deal, None, self.core.now_us()))
        if swept:
            txn.put(RUNS, "sweep", swept[-1])
        return chosen, carried

    # ------------------------------------------------------------ one deal

    async def _reconcile(self, reader: Reader, run_id: str, target: _Target) -> tuple[list[dict], bool]:
        deal, core = target.deal, self.core
        limit = self.config["pending_limit_s"] * 1_000_000

        def stale(period: str) -> bool:
            since = target.since(period)
            return since is not None and core.now_us() - since > limit
        with core.env.store.transaction() as txn:
            known = sorted(k.partition(_SEP)[2] for k, _ in txn.scan(RESULTS, prefix=deal + _SEP))
            scope = sorted(target.periods) if target.periods is not None else known
            if deal.startswith(UNLINKED):
                why = f"PSA project {deal[len(UNLINKED):]} is linked to no deal, so its approved time is in no book"
                return [self._verdict(txn, run_id, deal, None, p, "different" if stale(p) else "pending", None, None,
                                      [why], []) for p in scope], False
            refs = _refs(txn, deal)
            waiting, blocked = _outstanding(txn, deal)
            waiting = waiting or refs.get("missing")
            if waiting and not any(stale(p) for p in scope or [ALL]):
                # Its verdict could only be "pending": not worth a read.
                if target.periods is None:
                    self._mark(txn, deal, ALL, (target.marks.get(f"{deal}{_SEP}{ALL}") or {}).get("stamp"))
                found = [self._verdict(txn, run_id, deal, refs.get("project"), p, "pending", refs.get("currency"),
                                       None, [waiting], []) for p in scope]
                return found or [{"deal": deal, "period": ALL, "status": "pending", "reasons": [waiting]}], False
            if refs.get("missing"):
                return [self._verdict(txn, run_id, deal, refs.get("project"), p, "different", None, None,
                                      [refs["missing"]], []) for p in scope], False
        try:
            books = await read_books(reader, deal, project=refs["project"], schedules=refs["schedules"],
                                     customer=refs["customer"], periods=None if target.periods is None else scope)
        except Unreadable as exc:
            with core.env.store.transaction() as txn:
                return [self._verdict(txn, run_id, deal, refs["project"], p, "unread", refs["currency"], None,
                                      [str(exc)], []) for p in scope], False
        out = []
        with core.env.store.transaction() as txn:
            months, trace = tally(txn, books)
            now_waiting, blocked = _outstanding(txn, deal)
            marks_now = {k: r["stamp"] for k, r in txn.scan(DIRTY, prefix=deal + _SEP)}
            planned = {k: r["stamp"] for k, r in target.marks.items()}
            moved = now_waiting or next((f"changed while being read ({k.partition(_SEP)[2]})" for k, stamp in
                                         sorted(marks_now.items()) if planned.get(k, "?") != stamp), None)
            if target.periods is None:
                scope = sorted(set(months) | set(known))
            for period in scope:
                fig = months.get(period, Figures())
                reasons = fig.differences()
                status = "ok"
                if reasons:
                    late = moved or (f"{fig.unseen} entries changed in the PSA since the core read them"
                                     if fig.unseen else None)
                    status = "pending" if late and not stale(period) else "different"
                    reasons += ([late] if late else []) + ([blocked] if blocked else [])
                    if late and stale(period):
                        reasons.append(f"pending longer than {self.config['pending_limit_s'] // 3600} h")
                out.append(self._verdict(txn, run_id, deal, refs["project"], period, status, refs["currency"], fig,
                                         reasons, fig.differing_entries()))
                key = f"{deal}{_SEP}{period}"
                if status == "ok" and marks_now.get(key, "?") == planned.get(key, "?"):
                    txn.delete(DIRTY, key)
                elif status != "ok" and key not in marks_now:
                    self._mark(txn, deal, period, None)  # looked at again next run, until it ties
            whole = f"{deal}{_SEP}{ALL}"
            if target.periods is None and whole in marks_now and marks_now[whole] == planned.get(whole, "?"):
                txn.delete(DIRTY, whole)
            txn.put(DEALS, deal, {"checked_us": core.now_us(), **trace})
        return out, True

    def _verdict(self, txn: Transaction, run_id: str, deal: str, project: str | None, period: str, status: str,
                 currency: str | None, fig: Figures | None, reasons: list[str], entries: list[str]) -> dict:
        key = f"{deal}{_SEP}{period}"
        previous = txn.get(RESULTS, key) or {}
        figures = fig.to_json(currency) if fig is not None else previous.get("figures")
        row = {"deal": deal, "project": project, "period": period, "status": status, "figures": figures,
               "reasons": reasons, "entries": entries, "checked_us": self.core.now_us(), "run": run_id}
        txn.put(RESULTS, key, row)
        if status == "different":
            corr = f"deal:{deal}" if not deal.startswith(UNLINKED) else None
            self.core.trace("core.reconciliation.difference", {
                "deal": None if corr is None else deal, "project": project or deal[len(UNLINKED):], "period": period,
                **(figures or {"currency": currency}), "reasons": reasons, "entries": entries,
            }, corr=corr, cause=run_id)
        return row

    def _summarise(self, run_id: str, mode: str, started: int, targets: list[_Target], read: int, carried: int,
                   verdicts: list[dict], requests: int) -> dict:
        def pairs(status: str) -> list[dict]:
            return [v for v in verdicts if v["status"] == status]

        named = lambda rows: [f"{v['deal']} {v['period']}" for v in rows[:LISTED]]  # noqa: E731
        summary = {
            "run": run_id, "mode": mode, "started_us": started, "projects_checked": len(targets), "projects_read": read,
            "periods_checked": len(verdicts), "differences": len(pairs("different")), "pending": len(pairs("pending")),
            "unread": len(pairs("unread")), "carried_over": carried, "requests": requests,
            "different": named(pairs("different")), "pending_pairs": named(pairs("pending")),
        }
        with self.core.env.store.transaction() as txn:
            txn.put(RUNS, "last", dict(summary, at_us=self.core.now_us()))
        self.core.trace("core.reconciliation.run", summary, cause=run_id)
        return summary


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else str(value)


def _refs(txn: Transaction, deal: str) -> dict:
    """What the core knows of the deal's records in each system."""
    project = _ref_id(xrefs.get(txn, "deal.psa_project", deal))
    contract = xrefs.contract_json(txn, deal)
    if project is None or contract is None:
        return {"project": project, "missing": f"deal {deal} has no {'PSA project' if project is None else 'contract'}"
                                               " the core provisioned yet"}
    lines = sorted({ln["line_id"] for v in contract["versions"] for ln in v["lines"]})
    schedules = sorted({s for s in (_ref_id(xrefs.get(txn, "line.billing_schedule", ln)) for ln in lines) if s})
    account = xrefs.get(txn, "deal.account", deal)
    customer = _ref_id(xrefs.get(txn, "account.billing_customer", account)) if account else None
    return {"project": project, "schedules": schedules, "customer": customer, "currency": contract.get("currency")}


def _outstanding(txn: Transaction, deal: str) -> tuple[str | None, str | None]:
    """(work the core still has to do for the deal, what blocks its line)."""
    head = Outbox.head_of_line(txn, f"deal:{deal}")
    if head is not None and head[0] == "queued":
        return f"outbox message {head[1]} is queued for the deal", None
    blocked = None if head is None else f"the deal's outbox line is held by {head[0]} {head[1]}"
    if next(txn.scan(WAITING, prefix=deal + _SEP, limit=1), None) is not None:
        return "time waits for the deal's provisioning", blocked
    return None, blocked

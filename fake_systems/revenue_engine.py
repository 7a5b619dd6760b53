"""A fake revenue engine in the RevPro / Zuora Revenue family.

A revenue contract ("RC") holds performance obligations ("POBs"), the price allocated to them by SSP, and
a schedule of lines (POB, period, amount): ratable POBs are scheduled at booking, the others recognised by
fulfilment events. Every cent comes from `revenue_rules`. Nothing is recognised into a closed period.

Contracts are upserted by source id and version: the same version again is a no-op (UNCHANGED), or with
other terms a 409 VERSION_CONFLICT; an older one is ignored with a 409 STALE_VERSION (a contract never
regresses); a newer one restates the terms while nothing is recognised, after that a change is a
modification with a treatment. Events are idempotent by ``event_ref``. Periods close in order (people close
them); an amount meant for a closed period lands in the first open one, its line keeping ``moved_from``;
a modification re-measures from the first day of its effective period (or of the first open one). T&M POBs
use the right-to-invoice expedient (approved hours x the rate sent with each event, whatever estimate was
allocated), so modifications re-measure the fixed-consideration POBs only.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from fractions import Fraction

from simulator import Request, Response

from .money import MINOR_UNITS, Money, minor_units, prorate, round_money, sum_amounts, sum_money
from .revenue_rules import (
    INPUT, METHODS, POINT_IN_TIME, RATABLE, T_AND_M, ApprovedTime, ContractModification, ContractState,
    PerformanceObligation, PeriodCalendar, ProgressReport, ScheduleLine, apply_period_close, cumulative_catch_up,
    input_method_schedule, next_period, period_of, period_start, point_in_time_schedule, prospective,
    ratable_schedule, separate_contract, time_and_materials_schedule,
)
from .vendor import Route, VendorError, VendorSystem, require, require_fields

__all__ = ["RevenueEngine", "TREATMENTS", "EVENT_TYPES"]

TREATMENTS = ("separate_contract", "prospective", "cumulative_catch_up")
EVENT_TYPES = {"MILESTONE_ACCEPTED": POINT_IN_TIME, "PROGRESS_REPORTED": INPUT, "TIME_APPROVED": T_AND_M}
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_TERMS = ("pob_ref", "pob_name", "rec_method", "ssp_amount", "start_date", "end_date")
_FRESH = {"satisfied_on": None, "last_progress": None, "measure_from": {"recognised": "0", "progress": "0"}}


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _copy(data: dict) -> dict:
    return json.loads(json.dumps(data))


def _s(m: Money) -> str:
    return str(round_money(m).amount)  # amounts are whole cents already: this only fixes the spelling


def _m(text: str, cur: str) -> Money:
    return Money(Decimal(text), cur)


def _total(cur: str, amounts) -> Money:
    return sum_amounts(amounts, cur)


def _decimal(body: dict, field: str, currency: str | None = None, *, negative=False, positive=False) -> Decimal:
    v = body.get(field)  # a decimal string; with a currency, no finer than its minor unit
    require(isinstance(v, str) and _NUMBER.fullmatch(v) is not None, "INVALID_NUMBER",
            f"{field} must be a decimal string like \"1234.50\", got {v!r}", field)
    d = Decimal(v)
    require((negative or d >= 0) and (not positive or d > 0), "OUT_OF_RANGE",
            f"{field} must be {'above zero' if positive else 'zero or more'}, got {v}", field)
    require(currency is None or -d.as_tuple().exponent <= minor_units(currency), "INVALID_PRECISION",
            f"{field} {v} has more decimals than {currency} allows", field)
    return d


def _date(body: dict, field: str, required: bool = True) -> date | None:
    v = body.get(field)
    if v is None and not required:
        return None
    try:
        if isinstance(v, str) and _DATE.fullmatch(v):
            return date.fromisoformat(v)
    except ValueError:
        pass  # a well-formed impossible date, like 2026-02-30
    raise VendorError(400, "INVALID_DATE", f"{field} must be a date 'YYYY-MM-DD', got {v!r}", field)


def _progress(incurred: str, estimate: str) -> Fraction:
    return min(Fraction(Decimal(incurred)) / Fraction(Decimal(estimate)), Fraction(1))


def _obligation(cur: str, pob: dict) -> PerformanceObligation:
    start, end = (pob[k] and date.fromisoformat(pob[k]) for k in ("start_date", "end_date"))
    return PerformanceObligation(pob["pob_ref"], _m(pob["ssp_amount"], cur), pob["rec_method"], start, end)


class RevenueEngine(VendorSystem):
    family = "RevPro-like revenue engine"

    def __init__(self, name: str = "revenue", first_open_period: str | None = None) -> None:
        super().__init__(name)
        if first_open_period is not None:
            period_start(first_open_period)  # a ValueError naming the 'YYYY-MM' form otherwise
        self.durable.extra.update(first_open=first_open_period, by_source={})

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/rc/contracts", self._upsert_contract, writes=True),
            Route("GET", "/rc/contracts", self._contracts),
            Route("GET", "/rc/contracts/{rc_id}", self._contracts),
            Route("POST", "/rc/contracts/{rc_id}/modifications", self._modify, writes=True),
            Route("GET", "/rc/contracts/{rc_id}/schedule", self._schedule),
            Route("GET", "/rc/contracts/{rc_id}/totals", self._contract_totals),
            Route("POST", "/rc/events", self._post_event, writes=True),
            Route("GET", "/rc/periods", self._periods),
        ]

    # ---- the vendor's error shape

    def error(self, status, code, message, field=None, headers=None, **extra) -> Response:
        body = {"status": "ERROR", "errors": [{"error_code": code, "error_field": field, "error_message": message}]}
        return Response(status, {**body, **extra}, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "RATE_LIMIT_EXCEEDED", "API quota used up", headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(429, "CONCURRENT_JOB_LIMIT", "too many revenue jobs running; retry later")

    def unavailable(self) -> Response:
        return self.error(503, "MAINTENANCE_WINDOW", "in a maintenance window", headers={"retry-after": "120"})

    def server_error(self) -> Response:
        return self.error(500, "PROCESSING_ERROR", "the request could not be processed; retry it")

    def conflict(self) -> Response:
        return self.error(409, "RC_LOCKED", "the revenue contract is locked by a running job; retry later")

    # ---- state

    def on_start(self) -> None:
        self.durable.extra["first_open"] = self.first_open  # the books open at go-live, unless told otherwise

    @property
    def today(self) -> date:
        return self.sim.calendar.date_at(self.now_us, self.name)

    @property
    def first_open(self) -> str:
        return self.durable.extra["first_open"] or period_of(self.today)

    def _contract(self, rc_id: str) -> dict:
        c = self.table("rev_contracts").get(rc_id)
        require(c is not None, "RC_NOT_FOUND", f"no contract {rc_id}; find it by source_contract_id", status=404)
        return c

    def _family(self, c: dict) -> list[dict]:  # a contract and those split off it as separate contracts
        return [c] + [self.table("rev_contracts")[i] for i in c["child_rc_ids"]]

    def _lines(self, rc_id: str, pob_ref: str | None = None, active: bool = True) -> list[dict]:
        # Through the contract's own list of lines (posting order, as the
        # table's): a scan of every line per event made a month's revenue
        # quadratic in the number of contracts.
        rows = self.table("rev_lines")
        return [ln for ln in (rows[i] for i in self.durable.extra.get("lines_of", {}).get(rc_id, ()))
                if (pob_ref is None or ln["pob_ref"] == pob_ref) and (not active or ln["line_status"] == "ACTIVE")]

    def _post_lines(self, c: dict, lines, basis: str, request: Request | None, event_ref: str | None = None) -> list:
        """Store schedule lines; those aimed at a closed period move to the first open one (`apply_period_close`)."""
        lines, first_open, closed = list(lines), self.first_open, []
        p = min((ln.period for ln in lines), default=first_open)
        while p < first_open:
            closed.append(p)
            p = next_period(p)
        posted = []
        for sl in apply_period_close(lines, PeriodCalendar(closed)):
            line_id = f"RL-{self.store.next_id('line'):07d}"
            self.table("rev_lines")[line_id] = row = {
                "line_id": line_id, "rc_id": c["rc_id"], "pob_ref": sl.obligation_id, "period": sl.period,
                "amount": _s(sl.amount), "moved_from": sl.moved_from, "basis": basis, "event_ref": event_ref,
                "source_version": c["source_version"], "line_status": "ACTIVE", "superseded_by": None}
            self.durable.extra.setdefault("lines_of", {}).setdefault(c["rc_id"], []).append(line_id)
            self.record_effect("rev_line.posted", "rev_lines", line_id, request, rc_id=c["rc_id"], period=sl.period,
                               amount=row["amount"], moved_from=sl.moved_from)
            posted.append(dict(row))
        return posted

    def _supersede(self, lines: list[dict], by: str, request: Request) -> None:
        for ln in lines:
            ln.update(line_status="SUPERSEDED", superseded_by=by)
            self.record_effect("rev_line.superseded", "rev_lines", ln["line_id"], request, by=by)

    # ---- contract terms

    def _pobs(self, items: object, cur: str, field: str) -> list[dict]:
        require(isinstance(items, list) and all(isinstance(p, dict) for p in items), "INVALID_POBS",
                f"{field} must be a list of objects", field)
        pobs: list[dict] = []  # validated so far
        for i, p in enumerate(items):
            where, ref, method = f"{field}[{i}]", p.get("pob_ref"), p.get("rec_method")
            require(isinstance(ref, str) and ref != "" and all(q["pob_ref"] != ref for q in pobs), "INVALID_POB_REF",
                    f"{where}.pob_ref must be a non-empty string, unique in the contract", f"{where}.pob_ref")
            require(isinstance(method, str) and method in METHODS, "INVALID_REC_METHOD",
                    f"{where}.rec_method must be one of {sorted(METHODS)}, got {method!r}", f"{where}.rec_method")
            ssp = Money(_decimal(p, "ssp_amount", cur), cur)
            start, end = _date(p, "start_date", method == RATABLE), _date(p, "end_date", method == RATABLE)
            require(start is None or end is None or start <= end, "INVALID_SERVICE_PERIOD",
                    f"{where} ends {end} before it starts {start}", f"{where}.end_date")
            pobs.append({"pob_ref": ref, "pob_name": str(p.get("pob_name") or ref), "rec_method": method,
                         "ssp_amount": _s(ssp), "start_date": start and start.isoformat(),
                         "end_date": end and end.isoformat()})
        return pobs

    def _terms(self, body: dict) -> dict:
        cur = body.get("currency_code")
        require(isinstance(cur, str) and cur in MINOR_UNITS, "INVALID_CURRENCY",
                f"currency_code {cur!r} is not a currency this tenant books", "currency_code")
        price = Money(_decimal(body, "transaction_price", cur), cur)
        pobs = self._pobs(body.get("pobs"), cur, "pobs")
        require(any(Decimal(p["ssp_amount"]) > 0 for p in pobs), "ZERO_SSP",
                "a contract needs a POB with a standalone selling price above zero", "pobs")
        return {"currency_code": cur, "transaction_price": _s(price), "pobs": pobs}

    @staticmethod
    def _version(body: dict) -> int:
        v = body.get("source_version")
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, "INVALID_VERSION",
                f"source_version must be a whole number >= 1, got {v!r}", "source_version")
        return v

    def _book(self, c: dict, terms: dict, request: Request | None) -> None:
        """Allocate the price by SSP and schedule the ratable POBs (a new or restated contract)."""
        cur = terms["currency_code"]
        obligations = [_obligation(cur, p) for p in terms["pobs"]]
        allocation = ContractState.at_inception(obligations, _m(terms["transaction_price"], cur)).allocation
        c.update(currency_code=cur, transaction_price=terms["transaction_price"], terms_digest=_digest(terms),
                 pobs=[{**p, "allocated_amount": _s(allocation[p["pob_ref"]]), **_copy(_FRESH)} for p in terms["pobs"]])
        for o in obligations:
            if o.method == RATABLE:
                self._post_lines(c, ratable_schedule(o.id, allocation[o.id], o.start, o.end), "RATABLE", request)

    def _new_contract(self, source_id: str, version: int, terms: dict, request, parent: str | None = None) -> dict:
        rc_id = f"RC-{self.store.next_id('rc'):06d}"
        c = {"rc_id": rc_id, "source_contract_id": source_id, "source_version": version, "parent_rc_id": parent,
             "rc_status": "ACTIVE", "booked_period": self.first_open, "child_rc_ids": [],
             "version_history": [{"version": version, "action": "CREATED", "period": self.first_open}]}
        self.table("rev_contracts")[rc_id] = c
        self._book(c, terms, request)
        if parent is None:
            self.durable.extra["by_source"][source_id] = rc_id
        self.record_effect("rc.created", "rev_contracts", rc_id, request, version=version, price=c["transaction_price"])
        return c

    def _has_activity(self, c: dict) -> bool:  # recognised: an event's line, a closed period's, a modification
        return any(v["action"] == "MODIFIED" for v in c["version_history"]) or any(
            ln["basis"] != "RATABLE" or ln["period"] < self.first_open for ln in self._lines(c["rc_id"]))

    # ---- routes: contracts

    def _upsert_contract(self, request: Request) -> Response:
        body = require_fields(request.json, ("source_contract_id", "source_version"))
        source_id, version, terms = str(body["source_contract_id"]), self._version(body), self._terms(body)
        rc_id = self.durable.extra["by_source"].get(source_id)
        if rc_id is None:
            c = self._new_contract(source_id, version, terms, request)
            return Response(201, {"status": "SUCCESS", "result": "CREATED", "contract": _copy(c)})
        c = self.table("rev_contracts")[rc_id]
        current, same = c["source_version"], _digest(terms) == c["terms_digest"]
        if version < current:
            return self.error(409, "STALE_VERSION", f"version {version} of {source_id} is older than version "
                              f"{current} already booked; it was ignored -- a contract never goes back",
                              "source_version", current_version=current, rc_id=rc_id)
        if version == current:
            if same:
                return Response(200, {"status": "SUCCESS", "result": "UNCHANGED", "contract": _copy(c)})
            return self.error(409, "VERSION_CONFLICT", f"version {version} of {source_id} was booked with other "
                              "terms; send changed terms under a new version", "source_version",
                              current_version=current, rc_id=rc_id)
        require(same or not self._has_activity(c), "MODIFICATION_REQUIRED", f"{rc_id} has recognised revenue; "
                f"post version {version} to /rc/contracts/{rc_id}/modifications with a treatment", "source_version",
                status=422)
        c["source_version"], result = version, "VERSION_ACCEPTED" if same else "RESTATED"
        if not same:
            self._supersede(self._lines(rc_id), f"v{version}", request)
            self._book(c, terms, request)
        c["version_history"].append({"version": version, "action": result, "period": self.first_open})
        self.record_effect(f"rc.{result.lower()}", "rev_contracts", rc_id, request, version=version)
        return Response(200, {"status": "SUCCESS", "result": result, "contract": _copy(c)})

    def _contracts(self, request: Request, rc_id: str | None = None) -> Response:
        if rc_id is not None:
            return Response(200, {"status": "SUCCESS", "contract": _copy(self._contract(rc_id))})
        source = request.query.get("source_contract_id")
        rows = [_copy(c) for c in self.table("rev_contracts").values()
                if source is None or c["source_contract_id"] == str(source)]
        return Response(200, {"status": "SUCCESS", "count": len(rows), "contracts": rows})

    def _schedule(self, request: Request, rc_id: str) -> Response:
        c, q = self._contract(rc_id), request.query
        period, pob = q.get("period"), q.get("pob_ref")
        require(period is None or _PERIOD.fullmatch(str(period)) is not None, "INVALID_PERIOD",
                f"period must be 'YYYY-MM', got {period!r}", "period")
        lines = sorted((dict(ln) for ln in self._lines(rc_id, pob, active=q.get("include_superseded") != "true")
                        if period is None or ln["period"] == period), key=lambda ln: (ln["period"], ln["line_id"]))
        live, cur = [ln for ln in lines if ln["line_status"] == "ACTIVE"], c["currency_code"]
        totals = {p: _s(_total(cur, (ln["amount"] for ln in live if ln["period"] == p)))
                  for p in sorted({ln["period"] for ln in live})}
        return Response(200, {"status": "SUCCESS", "rc_id": rc_id, "currency_code": cur, "lines": lines,
                              "period_totals": totals, "total": _s(_total(cur, (ln["amount"] for ln in live)))})

    def _contract_totals(self, request: Request, rc_id: str) -> Response:
        """Per POB and in all: allocated, scheduled, recognised to date (up to today's period), in closed periods."""
        c = self._contract(rc_id)
        cur, first_open, rows = c["currency_code"], self.first_open, []
        now = max(period_of(self.today), first_open)
        for p in c["pobs"]:
            amounts = [(ln["period"], ln["amount"]) for ln in self._lines(rc_id, p["pob_ref"])]
            allocated, scheduled = _m(p["allocated_amount"], cur), _total(cur, (a for _, a in amounts))
            to_date = _total(cur, (a for period, a in amounts if period <= now))
            rows.append({"pob_ref": p["pob_ref"], "rec_method": p["rec_method"], "allocated_amount": _s(allocated),
                         "scheduled_amount": _s(scheduled), "recognised_to_date": _s(to_date),
                         "in_closed_periods": _s(_total(cur, (a for period, a in amounts if period < first_open))),
                         "deferred_amount": _s(allocated - to_date), "unscheduled_amount": _s(allocated - scheduled)})
        totals = {k: _s(_total(cur, (r[k] for r in rows))) for k in rows[0] if k not in ("pob_ref", "rec_method")}
        return Response(200, {"status": "SUCCESS", "rc_id": rc_id, "currency_code": cur, "as_of_period": now,
                              "transaction_price": c["transaction_price"], "pobs": rows, "totals": totals,
                              "allocation_ties": totals["allocated_amount"] == c["transaction_price"]})

    def _periods(self, request: Request) -> Response:
        return Response(200, {"status": "SUCCESS", "first_open_period": self.first_open,
                              "periods": [dict(p) for _, p in sorted(self.table("rev_periods").items())]})

    # ---- routes: fulfilment events

    def _post_event(self, request: Request) -> Response:
        body = require_fields(request.json, ("event_ref", "source_contract_id", "pob_ref", "event_type", "event_date"))
        ref, digest, kind = str(body["event_ref"]), _digest(body), body["event_type"]
        seen = self.table("rev_events").get(ref)
        if seen is not None:
            require(seen["digest"] == digest, "EVENT_REF_REUSED", f"event_ref {ref} was already posted with other "
                    "content; give a new event its own ref", "event_ref", status=409)
            return Response(200, {**seen["result"], "replayed": True})
        require(isinstance(kind, str) and kind in EVENT_TYPES, "INVALID_EVENT_TYPE",
                f"event_type must be one of {sorted(EVENT_TYPES)}", "event_type")
        c, pob = self._find_pob(str(body["source_contract_id"]), str(body["pob_ref"]))
        require(pob["rec_method"] == EVENT_TYPES[kind], "METHOD_MISMATCH", f"POB {pob['pob_ref']} is recognised "
                f"{pob['rec_method']}; {kind} applies to {EVENT_TYPES[kind]} POBs", "event_type", status=422)
        on, cur, ob = _date(body, "event_date"), c["currency_code"], pob["pob_ref"]
        # What is recognised so far only matters to milestones and progress;
        # summing the obligation's lines for every approved hour too made a
        # busy time-and-materials contract quadratic in its hours.
        def recognised_so_far() -> Money:
            return _total(cur, (ln["amount"] for ln in self._lines(c["rc_id"], ob)))

        allocated = _m(pob["allocated_amount"], cur)
        if kind == "MILESTONE_ACCEPTED":
            recognised = recognised_so_far()
            require(pob["satisfied_on"] is None, "POB_ALREADY_SATISFIED",
                    f"POB {ob} was accepted on {pob['satisfied_on']}", "pob_ref", status=409)
            lines = point_in_time_schedule(ob, allocated - recognised, on)
            pob["satisfied_on"] = on.isoformat()
        elif kind == "PROGRESS_REPORTED":
            recognised = recognised_so_far()
            incurred = _decimal(body, "incurred_to_date")
            estimate = _decimal(body, "estimate_at_completion", positive=True)
            last = pob["last_progress"]
            require(last is None or on.isoformat() >= last["as_of"], "STALE_PROGRESS", f"progress as of {on} is older "
                    f"than the report of {last and last['as_of']} already applied; send the latest", "event_date",
                    status=409)
            base, p0 = _m(pob["measure_from"]["recognised"], cur), Fraction(pob["measure_from"]["progress"])
            if p0 == 0 and base.amount == 0:
                report = ProgressReport(period_of(on), incurred, estimate)
                to_date = input_method_schedule(ob, allocated, [report])[0].amount
            elif p0 < 1:  # after a prospective change the remainder spreads over the progress still to make
                gained = max(_progress(str(incurred), str(estimate)) - p0, Fraction(0))
                to_date = base + prorate(allocated - base, gained, 1 - p0)
            else:
                to_date = allocated
            lines = [ScheduleLine(ob, period_of(on), to_date - recognised)]
            pob["last_progress"] = {"as_of": on.isoformat(), "incurred_to_date": str(incurred),
                                    "estimate_at_completion": str(estimate)}
        else:
            hours, rate = _decimal(body, "hours", negative=True), _decimal(body, "bill_rate", cur)
            lines = time_and_materials_schedule(ob, [ApprovedTime(on, hours, Money(rate, cur))])
        result = {"status": "SUCCESS", "event_ref": ref, "rc_id": c["rc_id"], "pob_ref": ob,
                  "lines": self._post_lines(c, lines, kind, request, event_ref=ref)}
        self.table("rev_events")[ref] = {"event_ref": ref, "event_type": kind, "rc_id": c["rc_id"], "digest": digest,
                                         "result": result}
        self.record_effect("rev_event.applied", "rev_events", ref, request, event_type=kind, rc_id=c["rc_id"])
        return Response(201, result)

    def _find_pob(self, source_id: str, pob_ref: str) -> tuple[dict, dict]:
        rc_id = self.durable.extra["by_source"].get(source_id)
        require(rc_id is not None, "RC_NOT_FOUND", f"no revenue contract for source contract {source_id}; "
                "book the contract first", "source_contract_id", status=404)
        for c in self._family(self.table("rev_contracts")[rc_id]):
            for pob in c["pobs"]:
                if pob["pob_ref"] == pob_ref:
                    return c, pob
        raise VendorError(422, "UNKNOWN_POB", f"source contract {source_id} has no POB {pob_ref}", "pob_ref")

    # ---- routes: modifications

    def _modify(self, request: Request, rc_id: str) -> Response:
        c = self._contract(rc_id)
        body = require_fields(request.json, ("source_version", "treatment", "effective_date"))
        version, digest, current, treatment = self._version(body), _digest(body), c["source_version"], body["treatment"]
        if version <= current:
            done = [m for m in self.table("rev_modifications").values()
                    if m["rc_id"] == rc_id and m["source_version"] == version and m["request_digest"] == digest]
            if done:
                return Response(200, {"status": "SUCCESS", "replayed": True, "modification": _copy(done[0])})
            return self.error(409, "VERSION_CONFLICT" if version == current else "STALE_VERSION",
                              f"{rc_id} is at version {current}; a modification must carry a newer version, got "
                              f"{version}", "source_version", current_version=current, rc_id=rc_id)
        require(treatment in TREATMENTS, "INVALID_TREATMENT",
                f"treatment must be one of {list(TREATMENTS)}, got {treatment!r}", "treatment")
        cur, effective = c["currency_code"], _date(body, "effective_date")
        added = Money(_decimal({"added_consideration": "0", **body}, "added_consideration", cur, negative=True), cur)
        new_pobs = self._pobs(body.get("added_pobs", []), cur, "added_pobs")
        clash = [p["pob_ref"] for p in new_pobs if any(p["pob_ref"] == q["pob_ref"]
                                                       for rc in self._family(c) for q in rc["pobs"])]
        require(not clash, "DUPLICATE_POB", f"added POBs reuse refs {clash}; give new POBs new refs", "added_pobs")
        progress, inputs = body.get("progress", {}), [p["pob_ref"] for p in c["pobs"] if p["rec_method"] == INPUT]
        require(isinstance(progress, dict) and all(isinstance(v, str) and _NUMBER.fullmatch(v) and k in inputs
                                                   for k, v in progress.items()), "INVALID_PROGRESS",
                "progress maps input-method POBs to a decimal between 0 and 1 (ratable progress is elapsed time, "
                "point-in-time progress is acceptance)", "progress")
        wanted = period_of(effective)
        cut = max(wanted, self.first_open)  # nothing is re-measured inside a closed period
        change = dict(effective=period_start(cut), added_consideration=added,
                      added_obligations=[_obligation(cur, p) for p in new_pobs])
        fixed = [p for p in c["pobs"] if p["rec_method"] != T_AND_M]
        replaced = [ln for ln in self._lines(rc_id) if ln["basis"] == "RATABLE" and any(
            ln["pob_ref"] == p["pob_ref"] for p in fixed) and (ln["moved_from"] or ln["period"]) >= cut]
        replaced = [] if treatment == "separate_contract" else replaced
        gone = {ln["line_id"] for ln in replaced}  # membership only
        rec = {p["pob_ref"]: _total(cur, (ln["amount"] for ln in self._lines(rc_id, p["pob_ref"])
                                          if ln["line_id"] not in gone)) for p in fixed}
        physical = {p["pob_ref"]: _progress(lp["incurred_to_date"], lp["estimate_at_completion"])
                    for p in fixed if (lp := p["last_progress"]) is not None}
        try:
            if treatment == "separate_contract":
                base = ContractState.at_inception([_obligation(cur, p) for p in c["pobs"]], _m("1", cur))  # ids only
                result = separate_contract(base, ContractModification(**change))
            else:
                require(bool(fixed), "NOTHING_TO_MODIFY", f"{rc_id} has only T&M POBs (measured by approved time); "
                        "add new goods as a separate_contract", "treatment", status=422)
                state = ContractState([_obligation(cur, p) for p in fixed],
                                      {p["pob_ref"]: _m(p["allocated_amount"], cur) for p in fixed}, rec)
                if treatment == "prospective":
                    result = prospective(state, ContractModification(**change))
                else:  # re-measured progress: what the caller says, else the last progress report
                    measured = {**physical, **{k: Decimal(v) for k, v in progress.items()}}
                    result = cumulative_catch_up(state, ContractModification(**change, progress=measured))
        except ValueError as exc:
            raise VendorError(422, "INVALID_MODIFICATION", str(exc), "treatment") from None
        mod_id = f"RCM-{self.store.next_id('modification'):05d}"
        before = {p["pob_ref"]: p["allocated_amount"] for p in c["pobs"]}
        self._supersede(replaced, mod_id, request)
        c["source_version"], new_rc, adjustments = version, None, []
        if result.new_contract is not None:
            terms = {"currency_code": cur, "transaction_price": _s(added), "pobs": new_pobs}
            new_rc = self._new_contract(c["source_contract_id"], version, terms, request, parent=rc_id)["rc_id"]
            c["child_rc_ids"].append(new_rc)
        else:
            c["pobs"] += [{**p, "allocated_amount": "0", **_copy(_FRESH)} for p in new_pobs]
            for p in (p for p in c["pobs"] if p["pob_ref"] in result.contract.allocation):
                ref, old = p["pob_ref"], _m(p["allocated_amount"], cur)
                p["allocated_amount"] = _s(result.contract.allocation[ref])
                p["measure_from"] = dict(_FRESH["measure_from"])
                if treatment == "prospective" and p["rec_method"] == INPUT:  # progress so far stays measured
                    done = result.contract.recognised[ref]
                    p0 = physical[ref] if ref in physical else Fraction(done.amount) / Fraction(old.amount or 1)
                    p["measure_from"] = {"recognised": _s(done), "progress": str(p0)}
            c["transaction_price"] = _s(_m(c["transaction_price"], cur) + added)
            moved = [ScheduleLine(a.obligation_id, a.period, a.amount, wanted if cut != wanted else None)
                     for a in result.adjustments]
            adjustments = self._post_lines(c, moved, "CATCH_UP", request)
            self._post_lines(c, result.rescheduled, "RATABLE", request)
        c["terms_digest"] = _digest({"currency_code": cur, "transaction_price": c["transaction_price"],
                                     "pobs": [{k: p[k] for k in _TERMS} for p in c["pobs"]]})
        c["version_history"].append({"version": version, "action": "MODIFIED", "period": self.first_open,
                                     "modification_id": mod_id})
        after = {p["pob_ref"]: p["allocated_amount"] for p in c["pobs"]}
        mod = {"modification_id": mod_id, "rc_id": rc_id, "source_version": version, "treatment": treatment,
               "effective_date": effective.isoformat(), "effective_period": cut, "added_consideration": _s(added),
               "allocation_before": before, "allocation_after": after, "adjustments": adjustments,
               "superseded_lines": len(replaced), "new_rc_id": new_rc, "request_digest": digest}
        self.table("rev_modifications")[mod_id] = mod
        self.record_effect("rc.modified", "rev_contracts", rc_id, request, modification_id=mod_id,
                           treatment=treatment, version=version)
        return Response(201, {"status": "SUCCESS", "modification": _copy(mod), "contract": _copy(c)})

    # ---- what people do in the UI

    def close_period(self, period: str) -> dict:
        """A revenue accountant closes the first open period (periods close in order, once they have ended)."""
        if period != self.first_open:
            raise ValueError(f"cannot close {period!r}: periods close in order and the first open is {self.first_open}")
        if period_start(next_period(period)) > self.today:
            raise ValueError(f"period {period} has not ended (today is {self.today}); close it after its last day")
        self.durable.extra["first_open"] = next_period(period)
        self.table("rev_periods")[period] = row = {"period_name": period, "period_status": "CLOSED",
                                                   "closed_on": self.today.isoformat()}
        self.record_effect("period.closed", "rev_periods", period, None)
        return dict(row)


"""A fake HRIS in the Workday family: workers, effective-dated cost rates.

The HRIS is the system of record for people. Integrations read it; people
change it through the UI (hire, rate change, transfer, termination). What an
integration must cope with:

* Worker queries are paged (``offset``/``limit``, at most 100 a page, with a
  ``total``); a page is a snapshot of that moment, so a worker changed between
  two pages can shift them. ``updatedSince`` returns workers whose record was
  touched at or after a timestamp -- the time it was *entered*, not the date
  it takes effect.
* Cost rates and cost centres are histories of effective-dated entries. A
  change can be retroactive (effective before today, even before an invoice
  went out); "the rate as of X" is the last entry effective on or before X,
  the most recently entered winning on the same date.
* A termination date is the last day worked; the worker is ``Active`` until
  then and ``Terminated`` after. Workers hired in the future are ``Pre-Hire``.
* Worker events go out as webhooks (at least once, possibly late, duplicated
  or out of order) and stay readable from ``/hr/v2/events``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from simulator import Request, Response

from .firm_model import CostCentre, HrEvent, LegalEntity, Role, Worker
from .money import MINOR_UNITS, as_decimal
from .vendor import Route, VendorError, VendorSystem, require, require_fields
from .webhooks import WebhookSender

__all__ = ["Hris", "EVENT_TYPES"]

EVENT_TYPES = ("worker.hired", "worker.cost_rate_changed", "worker.transferred", "worker.terminated")
MAX_PAGE = 100
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AMOUNT = re.compile(r"\d+(\.\d+)?")


def _query_date(request: Request, name: str) -> date | None:
    v = request.query.get(name)
    if v is None:
        return None
    try:
        if _DATE.fullmatch(str(v)):
            return date.fromisoformat(str(v))
    except ValueError:
        pass
    raise VendorError(400, "INVALID_PARAMETER", f"{name} must be a date 'YYYY-MM-DD', got {v!r}", name)


def _in_effect(history: list[dict], on: date) -> dict | None:
    """The entry in effect on `on`: latest effective date, then latest entered (list order)."""
    best, day = None, on.isoformat()
    for entry in history:
        if entry["effectiveDate"] <= day and (best is None or entry["effectiveDate"] >= best["effectiveDate"]):
            best = entry
    return best


def _touched_since(worker: dict, since: datetime) -> bool:
    """Entered at or after `since` (seeded records, stamped before the world ran, never are)."""
    return worker["lastUpdated"] is not None and datetime.fromisoformat(worker["lastUpdated"]) >= since


class Hris(VendorSystem):
    family = "Workday-like HRIS"

    def __init__(self, name: str = "hris") -> None:
        super().__init__(name)
        self.webhooks = WebhookSender(self, id_header="x-hris-event-id")

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/hr/v2/workers", self._list_workers),
            Route("GET", "/hr/v2/workers/{employee_id}", self._get_worker),
            Route("GET", "/hr/v2/workers/{employee_id}/costRates", self._cost_rates),
            Route("GET", "/hr/v2/costCenters", self._cost_centres),
            Route("GET", "/hr/v2/jobProfiles", self._job_profiles),
            Route("GET", "/hr/v2/events", self._events),
            Route("POST", "/hr/v2/subscriptions", self._subscribe, writes=True),
        ]

    # ---- the vendor's error shape

    def error(self, status, code, message, field=None, headers=None) -> Response:
        return Response(status, {"httpStatus": status, "errorCode": code, "message": message, "invalidField": field},
                        headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "TOO_MANY_REQUESTS", "the tenant's API request allowance is used up",
                          headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(503, "SERVER_BUSY", "too many concurrent requests for this tenant; retry shortly")

    def unavailable(self) -> Response:
        return self.error(503, "SCHEDULED_MAINTENANCE", "the tenant is unavailable during the weekly service update",
                          headers={"retry-after": "300"})

    def server_error(self) -> Response:
        return self.error(500, "UNEXPECTED_ERROR", "an unexpected error occurred; retry the request")

    def conflict(self) -> Response:
        return self.error(409, "PROCESSING_CONFLICT", "another business process is in progress on this object")

    # ---- state

    def on_start(self) -> None:
        self.webhooks.resume()

    @property
    def today(self) -> date:
        return self.sim.calendar.date_at(self.now_us, self.name)

    def _stamp(self) -> str | None:
        """When a change was entered, on this tenant's clock (None before the world runs)."""
        if self.sim is None:
            return None
        return self.sim.calendar.datetime_at(self.now_us, self.name).isoformat(timespec="microseconds")

    def _worker(self, employee_id: str) -> dict:
        w = self.table("workers").get(employee_id)
        if w is None:
            raise VendorError(404, "WORKER_NOT_FOUND", f"no worker with employee id {employee_id}", "employee_id")
        return w

    def _status(self, w: dict, on: date) -> str:
        if w["hireDate"] > on.isoformat():
            return "Pre-Hire"
        if w["terminationDate"] is not None and w["terminationDate"] < on.isoformat():
            return "Terminated"
        return "Active"

    def _view(self, w: dict, on: date) -> dict:
        rate, centre = _in_effect(w["costRateHistory"], on), _in_effect(w["costCenterHistory"], on)
        profile = self.table("job_profiles").get(w["jobProfile"], {})
        cc = self.table("cost_centers").get(centre["costCenter"], {}) if centre else {}
        return {
            "workerRef": w["workerRef"], "employeeId": w["employeeId"], "legalName": dict(w["legalName"]),
            "jobProfile": {"id": w["jobProfile"], "name": profile.get("name")},
            "costCenter": {"id": cc.get("id"), "name": cc.get("name")} if centre else None,
            "company": w["company"], "hireDate": w["hireDate"], "terminationDate": w["terminationDate"],
            "workerStatus": self._status(w, on), "asOf": on.isoformat(), "lastUpdated": w["lastUpdated"],
            "costRate": {"amount": rate["amount"], "currency": rate["currency"], "effectiveDate": rate["effectiveDate"]}
            if rate else None,
        }

    def _changed(self, w: dict, kind: str, effective: date, request: Request | None = None, **detail) -> None:
        """Stamp the record, log the effect and announce it."""
        w["lastUpdated"] = self._stamp()
        self.record_effect(kind, "workers", w["employeeId"], request, effective=effective.isoformat(), **detail)
        event = {"id": f"HREV-{self.store.next_id('event'):06d}", "type": kind, "occurredAt": w["lastUpdated"],
                 "employeeId": w["employeeId"], "effectiveDate": effective.isoformat(), "detail": detail}
        self.durable.events.append(event)
        self.webhooks.emit(dict(event))

    # ---- routes

    def _list_workers(self, request: Request) -> Response:
        q = request.query
        offset, limit = self._int(q, "offset", 0, 0), self._int(q, "limit", 20, 1, MAX_PAGE)
        since = q.get("updatedSince")
        if since is not None:
            try:
                since = datetime.fromisoformat(str(since))
            except ValueError:
                since = None
            require(since is not None and since.tzinfo is not None, "INVALID_PARAMETER",
                    "updatedSince must be an ISO 8601 timestamp with a zone, like 2026-01-05T08:00:00+00:00",
                    "updatedSince")
        on = self.today
        rows = [w for w in self.table("workers").values() if (since is None or _touched_since(w, since))
                and q.get("costCenter") in (None, (_in_effect(w["costCenterHistory"], on) or {}).get("costCenter"))
                and q.get("company") in (None, w["company"]) and q.get("status") in (None, self._status(w, on))]
        page = rows[offset:offset + limit]
        return Response(200, {"total": len(rows), "offset": offset, "limit": limit,
                              "hasMore": offset + len(page) < len(rows), "data": [self._view(w, on) for w in page]})

    @staticmethod
    def _int(query: dict, name: str, default: int, lo: int, hi: int | None = None) -> int:
        v = query.get(name, default)
        ok = isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and v.isdigit()
        require(ok and lo <= int(v) <= (hi if hi is not None else int(v)), "INVALID_PARAMETER",
                f"{name} must be a whole number from {lo}" + (f" to {hi}" if hi is not None else "") + f", got {v!r}",
                name)
        return int(v)

    def _get_worker(self, request: Request, employee_id: str) -> Response:
        return Response(200, self._view(self._worker(employee_id), _query_date(request, "asOf") or self.today))

    def _cost_rates(self, request: Request, employee_id: str) -> Response:
        w, on = self._worker(employee_id), _query_date(request, "asOf")
        if on is None:
            history = [{**e, "entrySeq": i + 1} for i, e in enumerate(w["costRateHistory"])]
            return Response(200, {"employeeId": employee_id, "total": len(history), "data": history})
        rate = _in_effect(w["costRateHistory"], on)
        first = min((e["effectiveDate"] for e in w["costRateHistory"]), default="never")
        require(rate is not None, "NO_EFFECTIVE_RATE", f"worker {employee_id} has no cost rate in effect on {on}; "
                f"the first is effective {first}", "asOf", status=404)
        return Response(200, {"employeeId": employee_id, "asOf": on.isoformat(), **rate})

    def _cost_centres(self, request: Request) -> Response:
        rows = [dict(c) for c in self.table("cost_centers").values()]
        return Response(200, {"total": len(rows), "data": rows})

    def _job_profiles(self, request: Request) -> Response:
        rows = [dict(p, standardCostRates=[dict(r) for r in p["standardCostRates"]])
                for p in self.table("job_profiles").values()]
        return Response(200, {"total": len(rows), "data": rows})

    def _events(self, request: Request) -> Response:
        after = request.query.get("after")
        events = self.durable.events
        start = next((i + 1 for i, e in enumerate(events) if e["id"] == after), None) if after else 0
        require(start is not None, "INVALID_PARAMETER", f"after={after!r} is not an event id this tenant issued",
                "after")
        page = [dict(e, detail=dict(e["detail"])) for e in events[start:start + MAX_PAGE]]
        return Response(200, {"total": len(events) - start, "data": page})

    def _subscribe(self, request: Request) -> Response:
        body = require_fields(request.json, ("endpoint", "path"), code="MISSING_REQUIRED_FIELD")
        for f in ("endpoint", "path"):
            require(isinstance(body[f], str), "INVALID_FIELD", f"{f} must be a string", f)
        require(body["path"].startswith("/"), "INVALID_FIELD", "path must start with '/'", "path")
        kinds = body.get("eventTypes")
        require(kinds is None or isinstance(kinds, list) and len(kinds) > 0
                and all(isinstance(k, str) and k in EVENT_TYPES for k in kinds),
                "INVALID_FIELD", f"eventTypes must be a non-empty list drawn from {list(EVENT_TYPES)}", "eventTypes")
        sub = self.webhooks.subscribe(body["endpoint"], body["path"], kinds)
        self.record_effect("subscription.created", "subscriptions", sub["id"], request)
        return Response(201, {"subscriptionId": sub["id"], "endpoint": sub["endpoint"], "path": sub["path"],
                              "eventTypes": sub["events"]})

    # ---- seeding from the generated firm

    def load_firm(self, firm, *, hired_by: date | None = None) -> None:
        """Companies, job profiles, cost centres, and the workers hired by `hired_by` (None: all)."""
        self.load_companies(firm.entities)
        self.load_job_profiles(firm.roles)
        self.load_cost_centres(firm.cost_centres)
        self.load_workers(w for w in firm.workers if hired_by is None or w.hire_date <= hired_by)

    def load_companies(self, entities: Iterable[LegalEntity]) -> None:
        for e in entities:
            self.table("companies")[e.id] = {"id": e.id, "name": e.name, "country": e.country,
                                             "currency": e.functional_currency}

    def load_job_profiles(self, roles: Iterable[Role]) -> None:
        for r in roles:
            self.table("job_profiles")[r.id] = {
                "id": r.id, "name": r.name, "managementLevel": r.level,
                "standardCostRates": [{"currency": x.currency, "amount": str(x.cost_rate)} for x in r.rates]}

    def load_cost_centres(self, centres: Iterable[CostCentre]) -> None:
        for c in centres:
            self.table("cost_centers")[c.id] = {"id": c.id, "name": c.name, "company": c.entity_id,
                                                "practice": c.practice}

    def load_workers(self, workers: Iterable[Worker]) -> None:
        for w in workers:
            self._add_worker(w.id, w.first_name, w.last_name, w.role_id, w.cost_centre_id, w.hire_date,
                             Decimal(w.cost_rate), w.cost_currency, company=w.entity_id)

    def _add_worker(self, employee_id, first, last, profile, centre, hire_date, rate, currency, company) -> dict:
        stamp = self._stamp()
        w = {"workerRef": f"WKR-{self.store.next_id('worker'):05d}", "employeeId": employee_id,
             "legalName": {"firstName": first, "lastName": last}, "jobProfile": profile, "company": company,
             "hireDate": hire_date.isoformat(), "terminationDate": None, "lastUpdated": stamp,
             "costCenterHistory": [{"effectiveDate": hire_date.isoformat(), "costCenter": centre, "enteredAt": stamp}],
             "costRateHistory": [{"effectiveDate": hire_date.isoformat(), "amount": str(rate), "currency": currency,
                                  "enteredAt": stamp}]}
        self.table("workers")[employee_id] = w
        return w

    # ---- what people do in the UI

    def hire(self, first_name: str, last_name: str, job_profile: str, cost_centre: str, hire_date: date,
             cost_rate: Decimal | str, employee_id: str | None = None) -> dict:
        """An HR partner hires someone; the cost currency is the company's."""
        if job_profile not in self.table("job_profiles"):
            raise ValueError(f"job profile {job_profile!r} does not exist; load it or pick one of "
                             f"{sorted(self.table('job_profiles'))}")
        cc = self._centre(cost_centre)
        currency = self.table("companies").get(cc["company"], {}).get("currency")
        if currency is None:
            raise ValueError(f"cost centre {cost_centre} belongs to company {cc['company']}, which is not loaded")
        employee_id = employee_id or f"E{self.store.next_id('employee'):06d}"
        if employee_id in self.table("workers"):
            raise ValueError(f"employee id {employee_id} is taken; leave it out to get a new one")
        w = self._add_worker(employee_id, first_name, last_name, job_profile, cost_centre, hire_date,
                             self._rate(cost_rate, currency), currency, company=cc["company"])
        self._changed(w, "worker.hired", hire_date, jobProfile=job_profile, costCenter=cost_centre,
                      costRate=w["costRateHistory"][0]["amount"], currency=currency)
        return self._view(w, self.today)

    def change_cost_rate(self, employee_id: str, cost_rate: Decimal | str, effective: date) -> dict:
        """A compensation change, effective `effective` -- possibly in the past (retroactive)."""
        w = self._person(employee_id)
        currency = w["costRateHistory"][-1]["currency"]
        entry = {"effectiveDate": effective.isoformat(), "amount": str(self._rate(cost_rate, currency)),
                 "currency": currency, "enteredAt": self._stamp()}
        w["costRateHistory"].append(entry)
        self._changed(w, "worker.cost_rate_changed", effective, costRate=entry["amount"], currency=currency,
                      retroactive=effective < self.today)
        return dict(entry)

    def transfer_cost_centre(self, employee_id: str, cost_centre: str, effective: date) -> dict:
        """Move a worker to another cost centre of the same company from `effective`."""
        w, cc = self._person(employee_id), self._centre(cost_centre)
        if cc["company"] != w["company"]:
            raise ValueError(f"cost centre {cost_centre} belongs to {cc['company']}, not {w['company']}; "
                             "a move between companies is a different business process")
        entry = {"effectiveDate": effective.isoformat(), "costCenter": cost_centre, "enteredAt": self._stamp()}
        w["costCenterHistory"].append(entry)
        self._changed(w, "worker.transferred", effective, costCenter=cost_centre)
        return dict(entry)

    def terminate(self, employee_id: str, last_day: date) -> dict:
        """End employment; `last_day` is the last day worked."""
        w = self._person(employee_id)
        if w["terminationDate"] is not None:
            raise ValueError(f"worker {employee_id} is already terminated effective {w['terminationDate']}")
        if last_day.isoformat() < w["hireDate"]:
            raise ValueError(f"termination {last_day} is before the hire date {w['hireDate']}; "
                             "rescind the hire instead")
        w["terminationDate"] = last_day.isoformat()
        self._changed(w, "worker.terminated", last_day)
        return self._view(w, self.today)

    def apply_hr_event(self, event: HrEvent, worker: Worker | None = None) -> dict:
        """Replay one generated HR event through the matching people action (a hire needs its Worker)."""
        if event.kind == "hire":
            if worker is None or worker.id != event.worker_id:
                raise ValueError(f"hire event {event.id} needs the Worker record {event.worker_id}")
            return self.hire(worker.first_name, worker.last_name, worker.role_id, worker.cost_centre_id,
                             worker.hire_date, worker.cost_rate, employee_id=worker.id)
        if event.kind == "cost_rate_change":
            return self.change_cost_rate(event.worker_id, event.new_cost_rate, event.effective_date)
        if event.kind == "termination":
            return self.terminate(event.worker_id, event.effective_date)
        raise ValueError(f"HR event {event.id} has unknown kind {event.kind!r}")

    def _person(self, employee_id: str) -> dict:
        w = self.table("workers").get(employee_id)
        if w is None:
            raise ValueError(f"no worker with employee id {employee_id}; hire or load them first")
        return w

    def _centre(self, cost_centre: str) -> dict:
        cc = self.table("cost_centers").get(cost_centre)
        if cc is None:
            raise ValueError(f"cost centre {cost_centre!r} does not exist; load the firm's cost centres first")
        return cc

    @staticmethod
    def _rate(value: Decimal | str, currency: str) -> Decimal:
        rate = as_decimal(value, "cost_rate") if not isinstance(value, str) else None
        if isinstance(value, str) and _AMOUNT.fullmatch(value):
            rate = Decimal(value)
        places = MINOR_UNITS.get(currency)
        if rate is None or rate <= 0 or places is None or -rate.as_tuple().exponent > places:
            raise ValueError(f"cost rate {value!r} must be a positive amount with at most "
                             f"{places if places is not None else 2} decimals, like '85.00'")
        return rate

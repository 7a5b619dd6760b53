"""The PSA's delivery records: time entries, expenses and milestones.

Part of `Psa` (mixed into it; it uses the fake's own `_find`, `_new`,
`_touch`, `_committed`, `_reply`, `_if_match`, `_apply`). People make these
records in the UI; the core reads them and writes back billing status and an
invoice reference. The rules the family enforces:

  * time is logged only on an active project, by a resource assigned to it
    on that date and not terminated by then, at most 24 hours a day, in
    quarter hours. Rates are stamped when the entry is logged or changed:
    the bill rate from the assignment (else the resource's bill rate in the
    project currency), the cost rate from the resource's effective-dated
    cost rates; amounts are rounded half-up to the cent;
  * draft -> submitted -> approved / rejected; a rejected entry is edited and
    submitted again; a submitted entry may be recalled to draft. Leaving
    *approved* (recall, correction) makes a new version: the approved one is
    kept in the history and the new one starts unbilled;
  * an expense is logged submitted; over 75 in its currency it needs a
    receipt before approval;
  * a milestone is completed, then accepted by the client; acceptance may be
    recorded again (kept in ``acceptances``; ``accepted_on`` is the first).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from simulator import Request, Response

from . import psa_records as rec
from .psa_records import invalid
from .vendor import Route, VendorError

__all__ = ["DeliveryRecords", "FEED_TYPES", "RECEIPT_LIMIT"]

FEED_TYPES = ("project", "task", "assignment", "time_entry", "expense", "milestone")
RECEIPT_LIMIT = Decimal(75)
_BILLING = ("external_reference", "billing_status", "invoice_reference")
# What a version of a time entry is: kept in its history when it ends.
VERSION_KEYS = ("version", "status", "date", "hours", "task_id", "billable", "bill_rate", "bill_currency",
                "bill_amount", "cost_rate", "cost_currency", "cost_amount", "submitted_at", "approved_at",
                "approved_by", "billing_status", "invoice_reference")
_TIME_MOVES = {  # action: (allowed from, to, effect)
    "submit": (("draft", "rejected"), "submitted", "time_entry.submitted"),
    "approve": (("submitted",), "approved", "time_entry.approved"),
    "reject": (("submitted",), "rejected", "time_entry.rejected"),
    "recall": (("submitted", "approved"), "draft", "time_entry.recalled"),
}


class _Period:
    """The ``date_from``/``date_to`` filter of a list route (inclusive)."""

    params = ("date_from", "date_to")

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, record: dict, query: dict) -> bool:
        day = record[self.field]
        for key in self.params:
            if key in query:
                try:
                    bound = date.fromisoformat(query[key]).isoformat()
                except (TypeError, ValueError):
                    raise invalid(key, "invalid_parameter",
                                  f"{key} {query[key]!r} is not a date; write YYYY-MM-DD", 400) from None
                if (key == "date_from" and day < bound) or (key == "date_to" and day > bound):
                    return False
        return True


class DeliveryRecords:
    def delivery_routes(self) -> list[Route]:
        R, q = Route, self._query
        return [
            R("GET", "/time_entries", q("time_entries", ("project_id", "resource_id", "task_id", "status", "billable",
                                                         "billing_status", "external_reference"), _Period("date"))),
            R("GET", "/time_entries/{id}", self._getter("time_entries", "time entry")),
            R("GET", "/time_entries/{id}/versions", self.time_entry_versions),
            R("PATCH", "/time_entries/{id}", self.update_time_entry, writes=True),
            R("GET", "/expenses", q("expenses", ("project_id", "resource_id", "status", "billable", "billing_status",
                                                 "external_reference"), _Period("incurred_on"))),
            R("GET", "/expenses/{id}", self._getter("expenses", "expense")),
            R("PATCH", "/expenses/{id}", self.update_expense, writes=True),
            R("POST", "/milestones", self.create_milestone, writes=True),
            R("GET", "/milestones", q("milestones", ("project_id", "task_id", "status", "billing_status",
                                                     "external_reference"))),
            R("GET", "/milestones/{id}", self._getter("milestones", "milestone")),
            R("PATCH", "/milestones/{id}", self.update_milestone, writes=True),
        ]

    # ---- indexes (durable, so they survive a restart with the records)

    def _index(self, table: str, record: dict) -> None:
        extra = self.store.extra
        if table == "assignments":
            key = f"{record['resource_id']}|{record['project_id']}"
            extra.setdefault("staffing", {}).setdefault(key, []).append(record["id"])
        elif table == "time_entries":
            key = f"{record['resource_id']}|{record['date']}"
            extra.setdefault("day_entries", {}).setdefault(key, []).append(record["id"])

    def _task_of(self, project: dict, task_id: object) -> dict | None:
        if task_id is None:
            return None
        task = self._find("tasks", task_id, "task", field="task_id")
        if task["project_id"] != project["id"]:
            raise invalid("task_id", "invalid_reference",
                          f"task {task_id} belongs to project {task['project_id']}, not {project['id']}")
        return task

    # ---- time entries

    def _assignment_for(self, resource: dict, project: dict, task: dict | None, day: date) -> dict:
        d = day.isoformat()
        for aid in self.store.extra.get("staffing", {}).get(f"{resource['id']}|{project['id']}", []):
            a = self.table("assignments")[aid]
            if a["task_id"] in (None, task and task["id"]) and (a["start_date"] or d) <= d <= (a["end_date"] or d):
                return a
        raise invalid("resource_id", "not_assigned",
                      f"resource {resource['id']} has no assignment on project {project['id']} covering {d}; assign them first")

    def _check_time(self, resource: dict, project: dict, day: date, hrs: Decimal, entry_id: str | None = None) -> None:
        if project["status"] != "active":
            raise invalid("project_id", "project_not_active",
                          f"project {project['id']} is {project['status']}; time is logged only on an active project")
        d = day.isoformat()
        if resource["terminated_on"] is not None and d > resource["terminated_on"]:
            raise invalid("date", "resource_terminated",
                          f"resource {resource['id']} left on {resource['terminated_on']}; no time after that")
        entries = self.table("time_entries")
        ids = self.store.extra.get("day_entries", {}).get(f"{resource['id']}|{d}", [])
        others = [entries[i] for i in ids if i != entry_id and entries[i]["status"] != "rejected"]
        booked = sum((Decimal(e["hours"]) for e in others), Decimal(0))
        if booked + hrs > rec.MAX_DAY_HOURS:
            raise invalid("hours", "daily_limit_exceeded",
                          f"resource {resource['id']} already has {booked} hours on {d}; a day holds 24")

    def _price_time(self, entry: dict) -> None:
        project = self.table("projects")[entry["project_id"]]
        resource = self.table("resources")[entry["resource_id"]]
        assignment = self.table("assignments")[entry["assignment_id"]]
        day, hrs, ccy = date.fromisoformat(entry["date"]), Decimal(entry["hours"]), project["currency"]
        bill = assignment["bill_rate"] or (rec.rate_at(resource["bill_rates"], day, ccy) or {}).get("rate")
        cost = rec.rate_at(resource["cost_rates"], day)
        entry.update(
            bill_rate=bill, bill_currency=ccy,
            bill_amount=rec.amount(hrs, bill, ccy) if entry["billable"] and bill is not None else None,
            cost_rate=cost and cost["rate"], cost_currency=cost and cost["currency"],
            cost_amount=cost and rec.amount(hrs, cost["rate"], cost["currency"]),
        )

    def _log_time(self, resource_id, project_id, task_id, work_date, hours, notes, billable, request=None) -> dict:
        resource = self._find("resources", resource_id, "resource", field="resource_id")
        project = self._find("projects", project_id, "project", field="project_id")
        task = self._task_of(project, task_id)
        day, hrs = rec.iso_date(work_date, "date"), rec.hours(hours)
        notes = rec.text({"notes": notes}, "notes", max_len=2000) or ""
        billable = rec.flag({"billable": billable}, "billable")
        self._check_time(resource, project, day, hrs)
        assignment = self._assignment_for(resource, project, task, day)
        if billable is None:
            billable = (task["billable"] if task else True) and project["billing_rule"] != "non_billable"
        entry = self._new("time_entries", "time_entry", {
            "resource_id": resource["id"], "project_id": project["id"], "task_id": task and task["id"],
            "assignment_id": assignment["id"], "date": day.isoformat(), "hours": str(hrs), "notes": notes,
            "billable": billable, "status": "draft", "version": 1, "submitted_at": None, "approved_at": None,
            "approved_by": None, "rejection_reason": None, "billing_status": "unbilled", "invoice_reference": None,
            "external_reference": None})
        self._price_time(entry)
        self._committed("time_entry", "time_entries", entry, "created", "time_entry.logged", request,
                        date=entry["date"], hours=entry["hours"])
        return entry

    def _edit_time(self, entry_id, hours, notes, work_date, task_id, request=None) -> dict:
        entry = self._find("time_entries", entry_id, "time entry")
        if entry["status"] not in ("draft", "rejected"):
            raise invalid("status", "not_editable",
                          f"time entry {entry_id} is {entry['status']}; recall it or correct it instead")
        project = self.table("projects")[entry["project_id"]]
        resource = self.table("resources")[entry["resource_id"]]
        hrs = rec.hours(hours) if hours is not None else Decimal(entry["hours"])
        day = rec.iso_date(work_date, "date") if work_date is not None else date.fromisoformat(entry["date"])
        task = self._task_of(project, task_id if task_id is not None else entry["task_id"])
        self._check_time(resource, project, day, hrs, entry["id"])
        assignment = self._assignment_for(resource, project, task, day)
        fields = {"hours": str(hrs), "date": day.isoformat(), "task_id": task and task["id"], "assignment_id": assignment["id"]}
        if notes is not None:
            fields["notes"] = rec.text({"notes": notes}, "notes", max_len=2000) or ""
        changed = sorted(k for k, v in fields.items() if entry[k] != v)
        if not changed:
            return entry
        if "date" in changed:
            index = self.store.extra["day_entries"]
            index[f"{resource['id']}|{entry['date']}"].remove(entry["id"])
            index.setdefault(f"{resource['id']}|{fields['date']}", []).append(entry["id"])
        entry.update(fields)
        self._price_time(entry)
        self._touch(entry)
        self._committed("time_entry", "time_entries", entry, "updated", "time_entry.edited", request, fields=changed)
        return entry

    def _new_version(self, entry: dict, ended: str) -> None:
        history = self.table("time_entry_versions").setdefault(entry["id"], {"id": entry["id"], "versions": []})
        history["versions"].append({**{k: entry[k] for k in VERSION_KEYS}, "ended": ended, "ended_at": self._stamp()})
        entry["version"] += 1
        entry.update(approved_at=None, approved_by=None, billing_status="unbilled", invoice_reference=None)

    def _time_status(self, entry_id, action, *, by=None, reason=None, request=None) -> dict:
        entry = self._find("time_entries", entry_id, "time entry")
        allowed, to, effect = _TIME_MOVES[action]
        was = entry["status"]
        if was not in allowed:
            raise invalid("status", "invalid_transition",
                          f"time entry {entry_id} is {was}; {action} needs it {' or '.join(allowed)}")
        if action == "reject":
            entry["rejection_reason"] = rec.text({"reason": reason}, "reason", required=True, max_len=500)
        if action == "recall" and was == "approved":
            self._new_version(entry, "recalled")
        if action == "submit":
            entry.update(submitted_at=self._stamp(), rejection_reason=None)
        if action == "approve":
            entry.update(approved_at=self._stamp(), approved_by=by)
        entry["status"] = to
        self._touch(entry)
        self._committed("time_entry", "time_entries", entry, "status_changed", effect, request,
                        version=entry["version"], status_before=was)
        return entry

    def _correct_time(self, entry_id, hours, notes, request=None) -> dict:
        entry = self._find("time_entries", entry_id, "time entry")
        if entry["status"] != "approved":
            raise invalid("status", "invalid_transition",
                          f"time entry {entry_id} is {entry['status']}; only an approved entry is corrected (edit a draft)")
        hrs = rec.hours(hours)
        before = entry["hours"]
        if hrs == Decimal(before):
            raise invalid("hours", "unchanged", f"time entry {entry_id} already has {before} hours; a correction changes them")
        project = self.table("projects")[entry["project_id"]]
        resource = self.table("resources")[entry["resource_id"]]
        self._check_time(resource, project, date.fromisoformat(entry["date"]), hrs, entry["id"])
        self._new_version(entry, "corrected")
        entry.update(hours=str(hrs), status="submitted", submitted_at=self._stamp())
        if notes is not None:
            entry["notes"] = rec.text({"notes": notes}, "notes", max_len=2000) or ""
        self._price_time(entry)
        self._touch(entry)
        self._committed("time_entry", "time_entries", entry, "updated", "time_entry.corrected", request,
                        from_version=entry["version"] - 1, to_version=entry["version"],
                        hours_before=before, hours_after=entry["hours"])
        return entry

    def time_entry_versions(self, request: Request, id: str) -> Response:
        entry = self._find("time_entries", id, "time entry")
        past = self.table("time_entry_versions").get(id, {"versions": []})["versions"]
        current = {**{k: entry[k] for k in VERSION_KEYS}, "ended": None, "ended_at": None}
        return Response(200, {"id": id, "current_version": entry["version"], "versions": [*past, current]})

    def update_time_entry(self, request: Request, id: str) -> Response:
        entry = self._find("time_entries", id, "time entry")
        self._if_match(request, entry)
        body = rec.body_object(request.json)
        rec.check_keys(body, _BILLING + ("version",), tuple(sorted(entry)))
        if "version" in body and body["version"] != entry["version"]:
            raise VendorError(409, "stale_version", f"time entry {id} is at version {entry['version']}, not {body['version']!r}: "
                                                    "it was recalled or corrected since you read it; read it again", "version")
        ok = entry["status"] == "approved" and entry["billable"]
        why = (f"time entry {id} is {entry['status']}{'' if entry['billable'] else ' and not billable'}; "
               "only an approved, billable entry is invoiced")
        return self._apply(entry, self._billing_fields(entry, body, ok, why), "time_entry", "time_entries", request)

    def _billing_fields(self, record: dict, body: dict, billable_now: bool, why: str) -> dict:
        out = {}
        if "external_reference" in body:
            out["external_reference"] = rec.text(body, "external_reference", max_len=64)
        if "billing_status" in body or "invoice_reference" in body:
            status = rec.choice(body.get("billing_status", record["billing_status"]), "billing_status", rec.BILLING_STATUSES)
            ref = rec.text(body, "invoice_reference", max_len=64) if "invoice_reference" in body else record["invoice_reference"]
            if status == "unbilled":
                ref = None
            elif not billable_now:
                raise invalid("billing_status", "not_billable", why)
            elif not ref:
                raise invalid("invoice_reference", "blank", f"invoice_reference is needed to mark a record {status}")
            out.update(billing_status=status, invoice_reference=ref)
        return out

    # ---- expenses

    def _log_expense(self, resource_id, project_id, incurred_on, category, amount, currency, tax_amount, billable,
                     receipt_attached, notes, request=None) -> dict:
        resource = self._find("resources", resource_id, "resource", field="resource_id")
        project = self._find("projects", project_id, "project", field="project_id")
        if project["status"] != "active":
            raise invalid("project_id", "project_not_active",
                          f"project {project_id} is {project['status']}; expenses go on an active project")
        day = rec.iso_date(incurred_on, "incurred_on").isoformat()
        if resource["terminated_on"] is not None and day > resource["terminated_on"]:
            raise invalid("incurred_on", "resource_terminated", f"resource {resource_id} left on {resource['terminated_on']}")
        ccy = rec.currency(currency)
        tax = rec.money(tax_amount, ccy, "tax_amount", positive=False)
        if tax < 0:
            raise invalid("tax_amount", "negative", f"tax_amount {tax_amount} must not be negative")
        expense = self._new("expenses", "expense", {
            "resource_id": resource["id"], "project_id": project["id"], "incurred_on": day,
            "category": rec.text({"category": category}, "category", required=True, max_len=64),
            "amount": str(rec.money(amount, ccy, "amount")), "tax_amount": str(tax), "currency": ccy,
            "billable": rec.flag({"billable": billable}, "billable", True),
            "receipt_attached": rec.flag({"receipt_attached": receipt_attached}, "receipt_attached", False),
            "notes": rec.text({"notes": notes}, "notes", max_len=2000) or "", "status": "submitted",
            "submitted_at": self._stamp(), "approved_at": None, "approved_by": None, "rejection_reason": None,
            "billing_status": "unbilled", "invoice_reference": None, "external_reference": None})
        self._committed("expense", "expenses", expense, "created", "expense.logged", request,
                        amount=expense["amount"], currency=ccy)
        return expense

    def _expense_status(self, expense_id, action, *, by=None, reason=None, request=None) -> dict:
        expense = self._find("expenses", expense_id, "expense")
        was = expense["status"]
        if action == "attach_receipt":
            if was == "approved":
                raise invalid("status", "invalid_transition", f"expense {expense_id} is already approved")
            if expense["receipt_attached"]:
                return expense
            expense["receipt_attached"] = True
        elif was != "submitted":
            raise invalid("status", "invalid_transition", f"expense {expense_id} is {was}; {action} needs it submitted")
        elif action == "approve":
            if Decimal(expense["amount"]) > RECEIPT_LIMIT and not expense["receipt_attached"]:
                raise invalid("receipt_attached", "receipt_required",
                              f"expense {expense_id} is over {RECEIPT_LIMIT} {expense['currency']}; "
                              "attach a receipt before approval")
            expense.update(status="approved", approved_at=self._stamp(), approved_by=by)
        else:
            expense.update(status="rejected", rejection_reason=rec.text({"reason": reason}, "reason", required=True, max_len=500))
        self._touch(expense)
        self._committed("expense", "expenses", expense, "updated" if action == "attach_receipt" else "status_changed",
                        "expense.receipt_attached" if action == "attach_receipt" else f"expense.{expense['status']}", request)
        return expense

    def update_expense(self, request: Request, id: str) -> Response:
        expense = self._find("expenses", id, "expense")
        self._if_match(request, expense)
        body = rec.body_object(request.json)
        rec.check_keys(body, _BILLING, tuple(sorted(expense)))
        ok = expense["status"] == "approved" and expense["billable"]
        why = (f"expense {id} is {expense['status']}{'' if expense['billable'] else ' and not billable'}; "
               "only an approved, billable expense is invoiced")
        return self._apply(expense, self._billing_fields(expense, body, ok, why), "expense", "expenses", request)

    # ---- milestones

    def create_milestone(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, ("project_id", "task_id", "title", "amount", "due_date", "external_reference"),
                       rec.BOOKKEEPING + ("status", "currency", "completed_on",
                        "accepted_on", "acceptances", "billing_status", "invoice_reference"))
        project = self._find("projects", body.get("project_id"), "project", field="project_id")
        self._open_project(project)
        task = self._task_of(project, body.get("task_id"))
        milestone = self._new("milestones", "milestone", {
            "project_id": project["id"], "task_id": task and task["id"], "title": rec.text(body, "title", required=True),
            "amount": str(rec.money(body.get("amount"), project["currency"], "amount")), "currency": project["currency"],
            "due_date": rec.iso_date(body.get("due_date"), "due_date").isoformat(), "status": "open",
            "completed_on": None, "accepted_on": None, "acceptances": [], "billing_status": "unbilled",
            "invoice_reference": None, "external_reference": rec.text(body, "external_reference", max_len=64)})
        self._committed("milestone", "milestones", milestone, "created", "milestone.created", request)
        return self._reply(201, milestone, location=f"/milestones/{milestone['id']}")

    def update_milestone(self, request: Request, id: str) -> Response:
        milestone = self._find("milestones", id, "milestone")
        self._if_match(request, milestone)
        body = rec.body_object(request.json)
        rec.check_keys(body, ("title", "amount", "due_date") + _BILLING, tuple(sorted(milestone)))
        terms = [k for k in ("title", "amount", "due_date") if k in body]
        if terms and milestone["status"] != "open":
            raise invalid(terms[0], "milestone_completed", f"milestone {id} is completed; its terms are fixed")
        fields = {}
        if "title" in body:
            fields["title"] = rec.text(body, "title", required=True)
        if "amount" in body:
            fields["amount"] = str(rec.money(body["amount"], milestone["currency"], "amount"))
        if "due_date" in body:
            fields["due_date"] = rec.iso_date(body["due_date"], "due_date").isoformat()
        why = f"milestone {id} is {milestone['status']}; only a completed milestone is invoiced"
        fields.update(self._billing_fields(milestone, body, milestone["status"] == "completed", why))
        return self._apply(milestone, fields, "milestone", "milestones", request)

    def _complete_milestone(self, milestone_id, on, request=None) -> dict:
        milestone = self._find("milestones", milestone_id, "milestone")
        if milestone["status"] != "open":
            raise invalid("status", "invalid_transition",
                          f"milestone {milestone_id} was completed on {milestone['completed_on']}")
        project = self.table("projects")[milestone["project_id"]]
        if project["status"] != "active":
            raise invalid("project_id", "project_not_active", f"project {project['id']} is {project['status']}")
        day = (rec.iso_date(on, "on") if on is not None else self._today()).isoformat()
        milestone.update(status="completed", completed_on=day)
        self._touch(milestone)
        self._committed("milestone", "milestones", milestone, "status_changed", "milestone.completed", request, completed_on=day)
        return milestone

    def _accept_milestone(self, milestone_id, on, by, request=None) -> dict:
        milestone = self._find("milestones", milestone_id, "milestone")
        if milestone["status"] != "completed":
            raise invalid("status", "not_completed",
                          f"milestone {milestone_id} is {milestone['status']}; the client accepts completed work")
        day = (rec.iso_date(on, "on") if on is not None else self._today()).isoformat()
        who = rec.text({"accepted_by": by}, "accepted_by", required=True, max_len=120)
        repeat = milestone["accepted_on"] is not None
        milestone["acceptances"].append({"accepted_on": day, "accepted_by": who, "recorded_at": self._stamp()})
        if not repeat:
            milestone["accepted_on"] = day
        self._touch(milestone)
        self._committed("milestone", "milestones", milestone, "updated" if repeat else "status_changed",
                        "milestone.accepted", request, accepted_on=day, repeat=repeat)
        return milestone

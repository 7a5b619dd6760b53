"""The PSA: a Kantata-like professional-services automation system, with a
few Dynamics 365 Project Operations traits.

System of record for projects, tasks (the WBS), roles, resources,
assignments, time entries, expenses and milestones. What it does to an
integration, on purpose, because the family does:

  * **creates are not idempotent.** ``POST /projects`` twice makes two
    projects. Every record carries an ``external_reference`` the caller may
    set, and every list route filters on it, so a careful core looks up
    before it creates;
  * **optimistic concurrency**: every record has a ``lock_version`` and each
    single-record answer an ``ETag``; a write with a stale ``If-Match`` is
    refused with 412 (no If-Match: last writer wins);
  * **over the limit**: 429 with ``Retry-After`` over a sliding window;
  * **a polled change feed** (``GET /changes?since=...&page=N``): no ordering
    guarantee, duplicates possible, a change becomes visible some seconds
    after the time it carries, and is kept 7 to 9 days. Each answer says the
    PSA's time it was computed at (``as_of``): a change made a visibility
    lag before that was in it, if it matched. ``since`` is virtual
    microseconds (an integer, compare each change's ``changed_at``) or an
    ISO-8601 timestamp with an offset in the PSA's clock (``changed_at_time``,
    ``updated_at``). Every create, update and status change of a project,
    task, assignment, time entry, expense or milestone appends one change
    holding the record's snapshot after it;
  * **time entries** go draft -> submitted -> approved / rejected. An
    approved entry may be recalled to draft, or corrected: either way its
    ``version`` goes up and the approved version is kept in its history
    (``GET /time_entries/{id}/versions``); billing fields start again
    ``unbilled`` on the new version;
  * errors are ``{"errors": [{"type", "code", "field", "message"}]}``;
    a bad field is a 422 naming it, a body that is not an object a 400.

Time entries and expenses are made by people in the UI (the section "what
people do in the UI" below); the core reads them and writes back billing
status. Loading a generated firm and playing out its months is in
`psa_seeding`; the rules of roles, resources and assignments in
`psa_staffing`, of time, expenses and milestones in `psa_delivery`.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from simulator import Request, Response

from . import psa_records as rec
from . import psa_seeding
from .feeds import PolledFeed
from .psa_delivery import FEED_TYPES, DeliveryRecords
from .psa_records import invalid
from .psa_staffing import StaffingRecords
from .vendor import Route, VendorError, VendorSystem, copy_data

__all__ = ["Psa"]

_ERROR_TYPES = {400: "bad_request", 404: "not_found", 405: "bad_request", 409: "conflict", 412: "precondition",
                422: "validation", 429: "rate_limit"}

PROJECT_FIELDS = ("title", "client_name", "currency", "billing_rule", "legal_entity_code", "opportunity_ref",
                  "external_reference", "start_date", "due_date")
TASK_FIELDS = ("project_id", "parent_id", "wbs_code", "title", "billable", "line_ref", "external_reference")


class Psa(StaffingRecords, DeliveryRecords, VendorSystem):
    family = "Kantata-like (with Dynamics 365 Project Operations traits)"

    def __init__(self, name: str = "psa") -> None:
        super().__init__(name)
        self.feed = PolledFeed(self, "changes")
        # Writes per table and remembered reference lookups (find_reference):
        # a cache of the durable tables, valid across restarts.
        self._writes_to: dict[str, int] = {}
        self._found: dict[tuple[str, str], tuple[int, str | None]] = {}
        # table -> project id -> record ids in creation order. A record's
        # project never changes once made, so the list is exact; list
        # queries filtered by project read it instead of the whole table.
        self._by_project: dict[str, dict[str, list[str]]] = {}

    def routes(self) -> list[Route]:
        R, q = Route, self._query
        return [
            R("GET", "/changes", self.read_changes),
            R("POST", "/projects", self.create_project, writes=True),
            R("GET", "/projects", q("projects", ("external_reference", "opportunity_ref", "status", "client_name",
                                                 "legal_entity_code"))),
            R("GET", "/projects/{id}", self._getter("projects", "project")),
            R("PATCH", "/projects/{id}", self.update_project, writes=True),
            R("POST", "/projects/{id}/activate", self.post_activate, writes=True),
            R("POST", "/projects/{id}/close", self.post_close, writes=True),
            R("POST", "/tasks", self.create_task, writes=True),
            R("GET", "/tasks", q("tasks", ("project_id", "parent_id", "wbs_code", "line_ref", "external_reference"))),
            R("GET", "/tasks/{id}", self._getter("tasks", "task")),
            R("PATCH", "/tasks/{id}", self.update_task, writes=True),
            *self.staffing_routes(),
            *self.delivery_routes(),
        ]

    # ---- the PSA's error shapes

    def error(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> Response:
        kind = _ERROR_TYPES.get(status, "system" if status >= 500 else "bad_request")
        return Response(status, {"errors": [{"type": kind, "code": code.lower(), "field": field, "message": message}]}, headers)

    def rate_limited(self, retry_after_s: int) -> Response:
        return self.error(429, "too_many_requests", f"rate limit exceeded; retry after {retry_after_s} s",
                          headers={"retry-after": str(retry_after_s)})

    def over_concurrency(self) -> Response:
        return self.error(429, "too_many_concurrent_requests", "too many requests in progress for this account",
                          headers={"retry-after": "1"})

    def unavailable(self) -> Response:
        return self.error(503, "service_unavailable", "the PSA is down for scheduled maintenance",
                          headers={"retry-after": "120"})

    def server_error(self) -> Response:
        return self.error(500, "internal_server_error", "something went wrong on our side; nothing was saved, retry")

    def conflict(self) -> Response:
        return self.error(409, "record_locked", "another user is editing this record; reload it and retry")

    # ---- machinery every write shares

    def _stamp(self) -> str:
        return self.sim.calendar.datetime_at(self.now_us, self.name).isoformat(timespec="milliseconds")

    def _today(self) -> date:
        return self.sim.calendar.date_at(self.now_us, self.name)

    def _find(self, table: str, record_id: object, label: str, *, field: str | None = None) -> dict:
        row = self.table(table).get(record_id) if isinstance(record_id, str) else None
        if row is None:
            if field is not None:
                raise invalid(field, "invalid_reference", f"{field} {record_id!r} is not the id of a {label}")
            raise VendorError(404, "not_found", f"no {label} with id {record_id}")
        return row

    def _new(self, table: str, kind: str, fields: dict) -> dict:
        stamp = self._stamp()
        record = {"id": rec.new_id(self.store, kind), **fields, "lock_version": 1, "created_at": stamp, "updated_at": stamp}
        self.table(table)[record["id"]] = record
        self._index(table, record)
        if "project_id" in record:
            project = record["project_id"]
            self._by_project.setdefault(table, {}).setdefault("" if project is None else str(project), []).append(record["id"])
        self._wrote(table)
        return record

    def _wrote(self, table: str) -> None:
        self._writes_to[table] = self._writes_to.get(table, 0) + 1

    def find_reference(self, table: str, ref: str) -> str | None:
        """The id of the first record of `table` (in creation order) whose
        ``external_reference`` is `ref`, else None -- what a person finds by
        searching the UI. Answers are remembered until the table is next
        written: people retry a missing project hourly for a week, and a
        scan per retry made a month's play-out quadratic in the firm."""
        writes = self._writes_to.get(table, 0)
        known = self._found.get((table, ref))
        if known is not None and known[0] == writes:
            return known[1]
        found = next((r["id"] for r in self.table(table).values() if r.get("external_reference") == ref), None)
        self._found[table, ref] = (writes, found)
        return found

    def _touch(self, record: dict) -> None:
        record["lock_version"] += 1
        record["updated_at"] = self._stamp()

    def _committed(self, item_type: str, table: str, record: dict, action: str, effect: str,
                   request: Request | None, **detail) -> None:
        """Every write ends here: the effect for the harness, the change for the feed."""
        self._wrote(table)
        self.record_effect(effect, table, record["id"], request, **detail)
        if item_type in FEED_TYPES:
            self.feed.append({"item_type": item_type, "item_id": record["id"], "action": action,
                              "changed_at_time": self._stamp(), "snapshot": copy_data(record)})

    @staticmethod
    def etag(record: dict) -> str:
        return f'W/"{record["id"]}.{record["lock_version"]}"'

    def _reply(self, status: int, record: dict, **headers: str) -> Response:
        return Response(status, record, {"etag": self.etag(record), **headers})

    def _if_match(self, request: Request | None, record: dict) -> None:
        want = request.header("if-match") if request is not None else None
        if want is not None and want != "*" and want != self.etag(record):
            raise VendorError(412, "precondition_failed",
                              f"If-Match {want} does not match the current ETag {self.etag(record)}: the record changed "
                              "since you read it; read it again, then retry")

    def _getter(self, table: str, label: str):
        def get(request: Request, id: str) -> Response:
            return self._reply(200, self._find(table, id, label))
        return get

    def _query(self, table: str, filters: tuple[str, ...], keep=None):
        def query(request: Request) -> Response:
            known = filters + ("page", "per_page") + (keep.params if keep else ())
            for key in sorted(request.query):
                if key not in known:
                    raise invalid(key, "invalid_parameter", f"{key} is not a filter here; use {', '.join(known)}", 400)
            rows = self.table(table)
            if "project_id" in request.query and table in self._by_project:
                ids = self._by_project[table].get(str(request.query["project_id"]), ())
                candidates = [rows[i] for i in ids]
            else:
                candidates = rows.values()
            rows = [r for r in candidates
                    if rec.wants(r, request.query, filters) and (keep is None or keep(r, request.query))]
            return Response(200, rec.page_of(rows, request.query))
        return query

    def _open_project(self, project: dict) -> None:
        if project["status"] == "closed":
            raise invalid("project_id", "project_closed", f"project {project['id']} is closed; reopen is not possible")

    @staticmethod
    def _dates(body: dict, current: dict | None, start: str, end: str) -> dict:
        out = {}
        for f in (start, end):
            if current is None or f in body:
                v = body.get(f)
                out[f] = None if v is None else rec.iso_date(v, f).isoformat()
        lo = out.get(start, current and current.get(start))
        hi = out.get(end, current and current.get(end))
        if lo and hi and hi < lo:
            raise invalid(end, "before_start", f"{end} {hi} is before {start} {lo}")
        return out

    # ---- the change feed

    def read_changes(self, request: Request) -> Response:
        q = request.query
        for key in sorted(q):
            if key not in ("since", "page", "per_page"):
                raise invalid(key, "invalid_parameter", f"{key} is not a parameter of /changes; use since, page, per_page", 400)
        if "since" not in q:
            raise invalid("since", "missing_parameter", "since is required; since=0 reads everything still retained", 400)
        since = rec.since_us(q["since"], self.sim.calendar, self.name)
        page = rec.whole_number(q, "page", 1, 1_000_000)
        per = rec.whole_number(q, "per_page", 100, 200)
        changes, more = self.feed.read(since, limit=per, page=page)
        return Response(200, {"changes": changes, "count": len(changes), "page": page, "per_page": per, "more": more,
                              "as_of": self.now_us})

    # ---- projects

    def _project_fields(self, body: dict, current: dict | None) -> dict:
        new = current is None
        out = {}
        for f in ("title", "client_name"):
            if new or f in body:
                out[f] = rec.text(body, f, required=True)
        if new or "currency" in body:
            out["currency"] = rec.currency(body.get("currency"))
        if new or "billing_rule" in body:
            v = body.get("billing_rule")
            out["billing_rule"] = None if v is None else rec.choice(v, "billing_rule", rec.BILLING_RULES)
        for f in ("legal_entity_code", "opportunity_ref", "external_reference"):
            if new or f in body:
                out[f] = rec.text(body, f, max_len=64)
        return {**out, **self._dates(body, current, "start_date", "due_date")}

    def create_project(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, PROJECT_FIELDS, rec.BOOKKEEPING + ("status", "activated_on", "closed_on"))
        fields = self._project_fields(body, None)
        project = self._new("projects", "project", {**fields, "status": "draft", "activated_on": None, "closed_on": None})
        self._committed("project", "projects", project, "created", "project.created", request)
        return self._reply(201, project, location=f"/projects/{project['id']}")

    def update_project(self, request: Request, id: str) -> Response:
        project = self._find("projects", id, "project")
        self._if_match(request, project)
        body = rec.body_object(request.json)
        rec.check_keys(body, PROJECT_FIELDS, rec.BOOKKEEPING + ("status", "activated_on", "closed_on"))
        fields = self._project_fields(body, project)
        changed = {k: v for k, v in sorted(fields.items()) if project.get(k) != v}
        if project["status"] == "closed" and set(changed) - {"external_reference"}:
            raise invalid(sorted(changed)[0], "project_closed", f"project {id} is closed; only external_reference may change")
        if project["status"] != "draft":
            for f in ("currency", "legal_entity_code"):
                if f in changed:
                    raise invalid(f, "locked_after_activation", f"{f} of project {id} is fixed once it is activated")
            if "billing_rule" in changed and changed["billing_rule"] is None:
                raise invalid("billing_rule", "blank", f"project {id} is {project['status']}; it keeps a billing_rule")
        if changed:
            project.update(changed)
            self._touch(project)
            self._committed("project", "projects", project, "updated", "project.updated", request, fields=sorted(changed))
        return self._reply(200, project)

    def _activate(self, project: dict, request: Request | None) -> None:
        pid = project["id"]
        if project["status"] != "draft":
            raise invalid("status", "invalid_transition",
                          f"project {pid} is {project['status']}; only a draft project can be activated")
        for f in ("billing_rule", "legal_entity_code"):
            if not project.get(f):
                raise invalid(f, "activation_incomplete",
                              f"project {pid} needs a {f} before activation; set it with PATCH /projects/{pid}")
        project["status"], project["activated_on"] = "active", self._today().isoformat()
        self._touch(project)
        self._committed("project", "projects", project, "status_changed", "project.activated", request)

    def _close(self, project: dict, request: Request | None) -> None:
        if project["status"] != "active":
            raise invalid("status", "invalid_transition",
                          f"project {project['id']} is {project['status']}; only an active project can be closed")
        project["status"], project["closed_on"] = "closed", self._today().isoformat()
        self._touch(project)
        self._committed("project", "projects", project, "status_changed", "project.closed", request)

    def post_activate(self, request: Request, id: str) -> Response:
        return self._transition(request, id, self._activate)

    def post_close(self, request: Request, id: str) -> Response:
        return self._transition(request, id, self._close)

    def _transition(self, request: Request, id: str, action) -> Response:
        project = self._find("projects", id, "project")
        self._if_match(request, project)
        if request.json is not None:
            rec.check_keys(rec.body_object(request.json), ())
        action(project, request)
        return self._reply(200, project)

    # ---- tasks (the WBS)

    def create_task(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, TASK_FIELDS, rec.BOOKKEEPING + ("state",))
        project = self._find("projects", rec.text(body, "project_id", required=True), "project", field="project_id")
        self._open_project(project)
        title = rec.text(body, "title", required=True)
        parent = None
        if body.get("parent_id") is not None:
            parent = self._find("tasks", body["parent_id"], "task", field="parent_id")
            if parent["project_id"] != project["id"]:
                raise invalid("parent_id", "invalid_reference", f"task {parent['id']} belongs to project {parent['project_id']}")
        prefix = parent["wbs_code"] + "." if parent else ""
        code = rec.text(body, "wbs_code", max_len=40)
        siblings = [t for t in self.table("tasks").values()
                    if t["project_id"] == project["id"] and t["parent_id"] == (parent and parent["id"])]
        if code is None:
            code = prefix + str(max((int(t["wbs_code"].rsplit(".", 1)[-1]) for t in siblings), default=0) + 1)
        elif not (code.startswith(prefix) and re.fullmatch(r"[1-9]\d*", code[len(prefix):])):
            raise invalid("wbs_code", "invalid_wbs_code", f"wbs_code {code!r} must be {prefix or ''}N (N = 1, 2, ...) here")
        elif any(t["wbs_code"] == code for t in self.table("tasks").values() if t["project_id"] == project["id"]):
            raise invalid("wbs_code", "taken", f"wbs_code {code} is already used in project {project['id']}")
        task = self._new("tasks", "task", {
            "project_id": project["id"], "parent_id": parent and parent["id"], "wbs_code": code, "title": title,
            "billable": rec.flag(body, "billable", True), "line_ref": rec.text(body, "line_ref", max_len=64),
            "state": "open", "external_reference": rec.text(body, "external_reference", max_len=64)})
        self._committed("task", "tasks", task, "created", "task.created", request)
        return self._reply(201, task, location=f"/tasks/{task['id']}")

    def update_task(self, request: Request, id: str) -> Response:
        task = self._find("tasks", id, "task")
        self._if_match(request, task)
        body = rec.body_object(request.json)
        rec.check_keys(body, ("title", "billable", "line_ref", "external_reference", "state"),
                       rec.BOOKKEEPING + ("project_id", "parent_id", "wbs_code"))
        self._open_project(self.table("projects")[task["project_id"]])
        fields = {}
        if "title" in body:
            fields["title"] = rec.text(body, "title", required=True)
        if "billable" in body:
            fields["billable"] = rec.flag(body, "billable", True)
        for f in ("line_ref", "external_reference"):
            if f in body:
                fields[f] = rec.text(body, f, max_len=64)
        if "state" in body:
            fields["state"] = rec.choice(body["state"], "state", ("open", "done"))
        return self._apply(task, fields, "task", "tasks", request)

    def _apply(self, record: dict, fields: dict, item_type: str, table: str, request: Request | None) -> Response:
        """Write the fields that differ; nothing differs, nothing happens
        (no effect, no change, same ETag)."""
        changed = {k: v for k, v in sorted(fields.items()) if record.get(k) != v}
        if changed:
            record.update(changed)
            self._touch(record)
            billing = "billing_status" in changed or "invoice_reference" in changed
            effect = f"{item_type}.billing_updated" if billing else f"{item_type}.updated"
            self._committed(item_type, table, record, "updated", effect, request, fields=sorted(changed))
        return self._reply(200, record)

    # ---- seeding (see psa_seeding)

    def load_firm(self, firm, *, projects: bool = True) -> dict[str, str]:
        """Load a generated firm's state at its start: roles, workers as
        resources, and (with `projects`) the projects of deals closed before
        it (tasks, milestones, assignments). Returns firm id -> PSA id."""
        return psa_seeding.load_firm(self, firm, projects=projects)

    def staff_project(self, firm, firm_project_id: str, project_id: str) -> list[str]:
        """The PMO assigns the firm's people to a provisioned project."""
        return psa_seeding.staff_project(self, firm, firm_project_id, project_id)

    def play_month(self, month, resolve=None) -> int:
        """Schedule what people do in the PSA during a `MonthActivity`;
        `resolve(kind, firm_id)` finds records the core provisioned."""
        return psa_seeding.play_month(self, month, resolve)

    def firm_id(self, firm_id: str) -> str | None:
        return self.store.extra.get("firm_ids", {}).get(firm_id)

    # ---- what people do in the UI

    def _ui(self) -> None:
        if not self.running:
            raise VendorError(503, "service_unavailable", f"{self.name} is down; people can use it again once it restarts")

    def activate_project(self, project_id: str) -> dict:
        self._ui()
        project = self._find("projects", project_id, "project")
        self._activate(project, None)
        return copy_data(project)

    def close_project(self, project_id: str) -> dict:
        self._ui()
        project = self._find("projects", project_id, "project")
        self._close(project, None)
        return copy_data(project)

    def log_time(self, resource_id: str, project_id: str, work_date: date | str, hours: Decimal | str, *,
                 task_id: str | None = None, notes: str = "", billable: bool | None = None) -> dict:
        self._ui()
        return copy_data(self._log_time(resource_id, project_id, task_id, work_date, hours, notes, billable))

    def edit_time_entry(self, entry_id: str, *, hours: Decimal | str | None = None, notes: str | None = None,
                        work_date: date | str | None = None, task_id: str | None = None) -> dict:
        self._ui()
        return copy_data(self._edit_time(entry_id, hours, notes, work_date, task_id))

    def submit_time_entry(self, entry_id: str) -> dict:
        self._ui()
        return copy_data(self._time_status(entry_id, "submit"))

    def approve_time_entry(self, entry_id: str, approver: str = "approver") -> dict:
        self._ui()
        return copy_data(self._time_status(entry_id, "approve", by=approver))

    def reject_time_entry(self, entry_id: str, reason: str) -> dict:
        self._ui()
        return copy_data(self._time_status(entry_id, "reject", reason=reason))

    def recall_time_entry(self, entry_id: str) -> dict:
        self._ui()
        return copy_data(self._time_status(entry_id, "recall"))

    def correct_time_entry(self, entry_id: str, hours: Decimal | str, notes: str | None = None) -> dict:
        """Change an approved entry: a new version, submitted for approval."""
        self._ui()
        return copy_data(self._correct_time(entry_id, hours, notes))

    def log_expense(self, resource_id: str, project_id: str, incurred_on: date | str, category: str,
                    amount: Decimal | str, currency: str, *, tax_amount: Decimal | str = "0", billable: bool = True,
                    receipt_attached: bool = False, notes: str = "") -> dict:
        self._ui()
        return copy_data(self._log_expense(resource_id, project_id, incurred_on, category, amount, currency,
                                               tax_amount, billable, receipt_attached, notes))

    def attach_receipt(self, expense_id: str) -> dict:
        self._ui()
        return copy_data(self._expense_status(expense_id, "attach_receipt"))

    def approve_expense(self, expense_id: str, approver: str = "approver") -> dict:
        self._ui()
        return copy_data(self._expense_status(expense_id, "approve", by=approver))

    def reject_expense(self, expense_id: str, reason: str) -> dict:
        self._ui()
        return copy_data(self._expense_status(expense_id, "reject", reason=reason))

    def complete_milestone(self, milestone_id: str, on: date | str | None = None) -> dict:
        self._ui()
        return copy_data(self._complete_milestone(milestone_id, on))

    def record_client_acceptance(self, milestone_id: str, on: date | str | None = None, accepted_by: str = "client") -> dict:
        """The client's sign-off; it may be recorded twice (two emails, two
        clicks), and each recording is a change the core will see."""
        self._ui()
        return copy_data(self._accept_milestone(milestone_id, on, accepted_by))

"""The PSA's staffing records: roles, resources (people) and assignments.

Part of `Psa` (mixed into it; it uses the fake's own `_find`, `_new`,
`_touch`, `_committed`, `_reply`, `_if_match`, `_apply`, `_open_project`).
Resources carry effective-dated rates the HRIS sync keeps right: cost rates
keyed by ``effective_from`` (one currency, the home entity's), bill rates by
``effective_from`` and currency. ``PUT`` of a rate is an upsert -- the same
rate again changes nothing -- unlike the creates, which are not idempotent.
A terminated resource keeps its assignments (ending them is the core's job)
but can book no time after the termination date.
"""

from __future__ import annotations

from simulator import Request, Response

from . import psa_records as rec
from .psa_records import invalid
from .vendor import Route

__all__ = ["StaffingRecords"]

RESOURCE_FIELDS = ("first_name", "last_name", "email", "role_id", "home_entity_code", "external_reference",
                   "cost_rate", "bill_rate")
ASSIGNMENT_FIELDS = ("resource_id", "project_id", "task_id", "role_id", "allocation_percent", "bill_rate",
                     "start_date", "end_date", "external_reference")


class StaffingRecords:
    def staffing_routes(self) -> list[Route]:
        R, q = Route, self._query
        return [
            R("POST", "/roles", self.create_role, writes=True),
            R("GET", "/roles", q("roles", ("name", "external_reference"))),
            R("GET", "/roles/{id}", self._getter("roles", "role")),
            R("POST", "/resources", self.create_resource, writes=True),
            R("GET", "/resources", q("resources", ("external_reference", "status", "role_id", "home_entity_code"))),
            R("GET", "/resources/{id}", self._getter("resources", "resource")),
            R("PATCH", "/resources/{id}", self.update_resource, writes=True),
            R("PUT", "/resources/{id}/cost_rates/{effective_from}", self.put_cost_rate, writes=True),
            R("PUT", "/resources/{id}/bill_rates/{effective_from}", self.put_bill_rate, writes=True),
            R("POST", "/resources/{id}/terminate", self.terminate_resource, writes=True),
            R("POST", "/assignments", self.create_assignment, writes=True),
            R("GET", "/assignments", q("assignments", ("project_id", "resource_id", "task_id", "external_reference"))),
            R("GET", "/assignments/{id}", self._getter("assignments", "assignment")),
            R("PATCH", "/assignments/{id}", self.update_assignment, writes=True),
        ]

    # ---- roles and resources

    def create_role(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, ("name", "external_reference"), rec.BOOKKEEPING)
        role = self._new("roles", "role", {"name": rec.text(body, "name", required=True),
                                           "external_reference": rec.text(body, "external_reference", max_len=64)})
        self._committed("role", "roles", role, "created", "role.created", request)
        return self._reply(201, role, location=f"/roles/{role['id']}")

    def _rate_row(self, raw: object, field: str) -> dict:
        if not isinstance(raw, dict):
            raise invalid(field, "not_an_object",
                          f"{field} must be an object like {{\"rate\": \"95.00\", \"currency\": \"USD\", ...}}")
        row = raw
        rec.check_keys(row, ("rate", "currency", "effective_from"))
        return {"effective_from": rec.iso_date(row.get("effective_from"), f"{field}.effective_from").isoformat(),
                "rate": str(rec.rate(row.get("rate"), f"{field}.rate")),
                "currency": rec.currency(row.get("currency"), f"{field}.currency")}

    def create_resource(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, RESOURCE_FIELDS, rec.BOOKKEEPING + ("status", "terminated_on", "cost_rates", "bill_rates"))
        fields = self._resource_fields(body, None)
        rates = {k: [self._rate_row(body[f], f)] if body.get(f) is not None else []
                 for k, f in (("cost_rates", "cost_rate"), ("bill_rates", "bill_rate"))}
        resource = self._new("resources", "resource", {**fields, "status": "active", "terminated_on": None, **rates})
        self._committed("resource", "resources", resource, "created", "resource.created", request)
        return self._reply(201, resource, location=f"/resources/{resource['id']}")

    def _resource_fields(self, body: dict, current: dict | None) -> dict:
        out = {}
        for f in ("first_name", "last_name"):
            if current is None or f in body:
                out[f] = rec.text(body, f, required=True)
        for f in ("email", "home_entity_code", "external_reference"):
            if current is None or f in body:
                out[f] = rec.text(body, f, max_len=120)
        if current is None or "role_id" in body:
            rid = body.get("role_id")
            out["role_id"] = None if rid is None else self._find("roles", rid, "role", field="role_id")["id"]
        return out

    def update_resource(self, request: Request, id: str) -> Response:
        resource = self._find("resources", id, "resource")
        self._if_match(request, resource)
        body = rec.body_object(request.json)
        rec.check_keys(body, RESOURCE_FIELDS[:-2], rec.BOOKKEEPING + ("status", "terminated_on", "cost_rates", "bill_rates"))
        return self._apply(resource, self._resource_fields(body, resource), "resource", "resources", request)

    def put_cost_rate(self, request: Request, id: str, effective_from: str) -> Response:
        return self._put_rate(request, id, effective_from, "cost_rates")

    def put_bill_rate(self, request: Request, id: str, effective_from: str) -> Response:
        return self._put_rate(request, id, effective_from, "bill_rates")

    def _put_rate(self, request: Request, id: str, effective_from: str, key: str) -> Response:
        """Upsert one effective-dated rate: cost rates are keyed by date, bill
        rates by date and currency. The same rate again changes nothing."""
        resource = self._find("resources", id, "resource")
        self._if_match(request, resource)
        body = rec.body_object(request.json)
        row = self._rate_row({**body, "effective_from": effective_from}, key[:-1])
        rows = resource[key]
        existing = [r for r in rows if r["effective_from"] == row["effective_from"]
                    and (key == "cost_rates" or r["currency"] == row["currency"])]
        if existing == [row]:
            return self._reply(200, resource)
        rows[:] = sorted([r for r in rows if r not in existing] + [row], key=lambda r: (r["effective_from"], r["currency"]))
        self._touch(resource)
        self._committed("resource", "resources", resource, "updated", f"resource.{key[:-1]}_set", request, **row)
        return self._reply(200 if existing else 201, resource)

    def terminate_resource(self, request: Request, id: str) -> Response:
        resource = self._find("resources", id, "resource")
        self._if_match(request, resource)
        body = rec.body_object(request.json)
        rec.check_keys(body, ("terminated_on",))
        day = rec.iso_date(body.get("terminated_on"), "terminated_on").isoformat()
        if resource["status"] == "terminated":
            raise invalid("terminated_on", "already_terminated",
                          f"resource {id} was already terminated on {resource['terminated_on']}")
        resource["status"], resource["terminated_on"] = "terminated", day
        self._touch(resource)
        self._committed("resource", "resources", resource, "status_changed", "resource.terminated", request, terminated_on=day)
        return self._reply(200, resource)

    # ---- assignments

    def _assignment_fields(self, body: dict, current: dict | None, ccy: str) -> dict:
        out = {}
        if current is None or "allocation_percent" in body:
            out["allocation_percent"] = str(rec.percent(body.get("allocation_percent")))
        if current is None or "bill_rate" in body:
            out["bill_rate"] = None if body.get("bill_rate") is None else str(rec.rate(body["bill_rate"], "bill_rate"))
        if current is None or "role_id" in body:
            rid = body.get("role_id")
            out["role_id"] = None if rid is None else self._find("roles", rid, "role", field="role_id")["id"]
        if current is None or "external_reference" in body:
            out["external_reference"] = rec.text(body, "external_reference", max_len=64)
        return {**out, **self._dates(body, current, "start_date", "end_date")}

    def create_assignment(self, request: Request) -> Response:
        body = rec.body_object(request.json)
        rec.check_keys(body, ASSIGNMENT_FIELDS, rec.BOOKKEEPING + ("currency",))
        resource = self._find("resources", body.get("resource_id"), "resource", field="resource_id")
        project = self._find("projects", body.get("project_id"), "project", field="project_id")
        self._open_project(project)
        if resource["status"] == "terminated":
            raise invalid("resource_id", "resource_terminated",
                          f"resource {resource['id']} was terminated on {resource['terminated_on']}")
        task = self._task_of(project, body.get("task_id"))
        fields = self._assignment_fields(body, None, project["currency"])
        assignment = self._new("assignments", "assignment", {
            "resource_id": resource["id"], "project_id": project["id"], "task_id": task and task["id"],
            "currency": project["currency"], **fields})
        self._committed("assignment", "assignments", assignment, "created", "assignment.created", request)
        return self._reply(201, assignment, location=f"/assignments/{assignment['id']}")

    def update_assignment(self, request: Request, id: str) -> Response:
        assignment = self._find("assignments", id, "assignment")
        self._if_match(request, assignment)
        body = rec.body_object(request.json)
        rec.check_keys(body, ASSIGNMENT_FIELDS[3:], rec.BOOKKEEPING + ASSIGNMENT_FIELDS[:3] + ("currency",))
        self._open_project(self.table("projects")[assignment["project_id"]])
        fields = self._assignment_fields(body, assignment, assignment["currency"])
        return self._apply(assignment, fields, "assignment", "assignments", request)


"""Seeding the PSA from a generated firm, and playing out its months.

`load_firm` writes the firm's state at its start straight into the PSA's
store -- roles, workers as resources (cost rate from the hire date, the
role's bill rates), and for every deal closed *before* the simulation (deals
closed during it are the core's to provision) a project, its WBS (one
summary task per contract line, the firm's tasks under it), its milestones
and its assignments. Loading is initial state, not activity: it records no
effects and emits no changes. Firm ids become ``external_reference``s and the
mapping is kept in the durable store (``Psa.firm_id``).

`play_month` turns a `MonthActivity` into people's actions at business hours
in the PSA's time zone, one story per record, each step after the one
before:

  * a time entry is logged at 17:00 on its day and submitted with the week's
    timesheet on Friday at 17:30; the next business day at 10:00 it is
    approved or rejected; a recalled-and-corrected one is recalled two
    business days after approval, edited to its corrected hours, submitted
    again and re-approved the next business day;
  * an expense (receipt attached) is logged at 18:00 on its day and approved
    or rejected two business days later at 11:00;
  * a milestone event happens on its day (completion at 12:00, acceptance at
    15:00).

Steps dated before the world's epoch happen at once, in their order. A
step that cannot happen yet -- the PSA is down, the project is not
provisioned or active yet, the person is not assigned -- is tried again an
hour later, for up to a week, then given up with a ``psa.people.gave_up``
trace event. Ids are resolved when the step runs: the seeded mapping first,
then the caller's ``resolve(kind, firm_id) -> psa id | None`` (for records
the core provisioned), then a record whose ``external_reference`` is the
firm id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from simulator import HOUR, MINUTE

from .firm_model import ACCEPTED, APPROVED, COMPLETED, FIXED_FEE, MANAGED_SERVICE, RECALLED_CORRECTED, RETAINER, T_AND_M
from .vendor import VendorError

if TYPE_CHECKING:
    from .firm_model import Firm, MonthActivity
    from .psa import Psa

__all__ = ["load_firm", "play_month", "staff_project"]

_RULES = {T_AND_M: "time_and_materials", FIXED_FEE: "fixed_fee", RETAINER: "retainer", MANAGED_SERVICE: "subscription"}
_RETRY_US = 1 * HOUR
_GIVE_UP_AFTER = 7 * 24  # retries
_TABLES = {"resource": "resources", "project": "projects", "task": "tasks", "milestone": "milestones"}


def load_firm(psa: Psa, firm: Firm, *, projects: bool = True) -> dict[str, str]:
    """With `projects` False only roles and resources are loaded: the
    projects are left for the integration to provision (a go-live)."""
    ids: dict[str, str] = psa.store.extra.setdefault("firm_ids", {})
    new = psa._new
    for role in firm.roles:
        ids[role.id] = new("roles", "role", {"name": role.name, "external_reference": role.id})["id"]
    roles = {r.id: r for r in firm.roles}
    for w in firm.workers:
        hired = w.hire_date.isoformat()
        ids[w.id] = new("resources", "resource", {
            "first_name": w.first_name, "last_name": w.last_name, "email": None, "role_id": ids[w.role_id],
            "home_entity_code": w.entity_id, "external_reference": w.id, "status": "active", "terminated_on": None,
            "cost_rates": [{"effective_from": hired, "rate": str(w.cost_rate), "currency": w.cost_currency}],
            "bill_rates": [{"effective_from": hired, "rate": str(rr.bill_rate), "currency": rr.currency}
                           for rr in roles[w.role_id].rates],
        })["id"]
    if not projects:
        return dict(ids)
    later = {d for m in firm.months for d in m.closed_deal_ids}
    slipped = {e.milestone_id for m in firm.months for e in m.milestone_events if e.kind == COMPLETED}
    deals = {d.id: d for d in firm.deals}
    clients = {c.id: c for c in firm.clients}
    for p in firm.projects:
        if p.deal_id in later:
            continue
        deal = deals[p.deal_id]
        models = sorted({ln.billing_model for ln in deal.lines})
        project = new("projects", "project", {
            "title": p.name, "client_name": clients[p.client_id].name, "currency": p.currency,
            "billing_rule": _RULES[models[0]] if len(models) == 1 else "mixed", "legal_entity_code": p.entity_id,
            "opportunity_ref": p.deal_id, "external_reference": p.id, "start_date": p.start.isoformat(),
            "due_date": p.end.isoformat(), "status": "active", "activated_on": p.start.isoformat(), "closed_on": None})
        ids[p.id] = pid = project["id"]
        lines = {ln.id: ln for ln in deal.lines}
        first_task: dict[str, str] = {}
        for t in p.tasks:
            top = t.wbs.split(".")[0]
            if t.line_id not in ids:
                line = lines[t.line_id]
                summary = _task(pid, None, top, line.description, line.billing_model, t.line_id)
                ids[t.line_id] = new("tasks", "task", summary)["id"]
            ids[t.id] = new("tasks", "task", _task(pid, ids[t.line_id], t.wbs, t.name, t.billing_model, t.line_id, t.id))["id"]
            first_task.setdefault(t.line_id, ids[t.id])
        for line in deal.lines:
            for ms in line.milestones:
                history = ms.due_date < firm.params.start and ms.id not in slipped
                ids[ms.id] = new("milestones", "milestone",
                                 _milestone(psa, pid, first_task.get(line.id), ms, p.currency, history))["id"]
    for a in firm.assignments:
        if a.project_id in ids:
            ids[a.id] = new("assignments", "assignment", {
                "resource_id": ids[a.worker_id], "project_id": ids[a.project_id], "task_id": None, "currency": a.currency,
                "allocation_percent": str((a.allocation * 100).quantize(Decimal("0.01"))), "bill_rate": str(a.bill_rate),
                "role_id": ids[a.role_id], "external_reference": a.id, "start_date": a.start.isoformat(),
                "end_date": a.end.isoformat()})["id"]
    return dict(ids)


def staff_project(psa: Psa, firm: Firm, firm_project_id: str, project_id: str) -> list[str]:
    """The PMO staffs a provisioned project with the firm's assignments for
    it (people action); returns the new assignment ids. Assignments already
    made (by their external reference) are left alone. Someone who has left
    by then is not staffed: the PSA refuses an assignment of a terminated
    resource (``POST /assignments``), so the planned one is refused here
    too (``psa.people.refused``) -- the PMO restaffs the work."""
    ids = psa.store.extra.setdefault("firm_ids", {})
    existing = {a.get("external_reference") for a in psa.table("assignments").values() if a["project_id"] == project_id}
    project = psa.table("projects")[project_id]
    made = []
    for a in firm.assignments:
        if a.project_id != firm_project_id or a.id in existing or a.worker_id not in ids:
            continue
        resource = psa.table("resources")[ids[a.worker_id]]
        if resource["status"] == "terminated":
            psa.record("psa.people.refused", {"action": "staff_project", "assignment": a.id, "project": project_id,
                                              "why": f"resource {resource['id']} was terminated on "
                                                     f"{resource['terminated_on']}"})
            continue
        assignment = psa._new("assignments", "assignment", {
            "resource_id": ids[a.worker_id], "project_id": project_id, "task_id": None, "currency": project["currency"],
            "allocation_percent": str((a.allocation * 100).quantize(Decimal("0.01"))), "bill_rate": str(a.bill_rate),
            "role_id": ids.get(a.role_id), "external_reference": a.id, "start_date": a.start.isoformat(),
            "end_date": a.end.isoformat()})
        ids[a.id] = assignment["id"]
        psa._committed("assignment", "assignments", assignment, "created", "assignment.created", None)
        made.append(assignment["id"])
    return made


def _task(pid: str, parent: str | None, wbs: str, title: str, model: str, line_id: str, ref: str | None = None) -> dict:
    return {"project_id": pid, "parent_id": parent, "wbs_code": wbs, "title": title, "billable": model == T_AND_M,
            "line_ref": line_id, "state": "open", "external_reference": ref or line_id}


def _milestone(psa: Psa, pid: str, task_id: str | None, ms, currency: str, history: bool) -> dict:
    """A milestone; one due before the firm's start is history: completed,
    accepted and invoiced on its due date."""
    due = ms.due_date.isoformat()
    return {"project_id": pid, "task_id": task_id, "title": ms.name, "amount": str(ms.amount), "currency": currency,
            "due_date": due, "status": "completed" if history else "open", "completed_on": due if history else None,
            "accepted_on": due if history else None,
            "acceptances": [{"accepted_on": due, "accepted_by": "client", "recorded_at": psa._stamp()}] if history else [],
            "billing_status": "invoiced" if history else "unbilled",
            "invoice_reference": f"historical:{ms.id}" if history else None, "external_reference": ms.id}


# ---- playing a month


class _Unresolved(LookupError):
    pass


def play_month(psa: Psa, month: MonthActivity, resolve: Callable[[str, str], str | None] | None = None) -> int:
    """Schedule every story of `month`; returns how many."""
    cal = psa.sim.calendar

    def at(d: date, hh: int, mm: int = 0) -> int:
        return cal.us_at_date(d, time(hh, mm), system=psa.name)

    def bday(d: date, n: int) -> date:
        return cal.add_business_days(d, n)

    stories = []
    for e in month.time_entries:
        friday = e.work_date + timedelta(days=max(0, 4 - e.work_date.weekday()))
        decided = bday(friday, 1)
        steps = [
            (at(e.work_date, 17), "log_time", {"resource_id": ("resource", e.worker_id), "project_id": ("project", e.project_id),
                                               "task_id": ("task", e.task_id), "work_date": e.work_date, "hours": e.hours}),
            (at(friday, 17, 30), "submit_time_entry", {"entry_id": "$made"}),
        ]
        if e.outcome == APPROVED:
            steps.append((at(decided, 10), "approve_time_entry", {"entry_id": "$made"}))
        elif e.outcome == RECALLED_CORRECTED:
            recall = bday(decided, 2)
            steps += [
                (at(decided, 10), "approve_time_entry", {"entry_id": "$made"}),
                (at(recall, 9), "recall_time_entry", {"entry_id": "$made"}),
                (at(recall, 9, 5), "edit_time_entry", {"entry_id": "$made", "hours": e.corrected_hours}),
                (at(recall, 9, 10), "submit_time_entry", {"entry_id": "$made"}),
                (at(bday(recall, 1), 10), "approve_time_entry", {"entry_id": "$made"}),
            ]
        else:
            steps.append((at(decided, 10), "reject_time_entry", {"entry_id": "$made", "reason": "wrong task; please rebook"}))
        stories.append(steps)
    for x in month.expenses:
        decision = ("approve_expense", {}) if x.outcome == APPROVED else ("reject_expense", {"reason": "not reimbursable"})
        stories.append([
            (at(x.incurred_on, 18), "log_expense", {
                "resource_id": ("resource", x.worker_id), "project_id": ("project", x.project_id),
                "incurred_on": x.incurred_on, "category": x.category, "amount": x.amount, "currency": x.currency,
                "tax_amount": x.tax_amount, "billable": x.billable, "receipt_attached": True}),
            (at(bday(x.incurred_on, 2), 11), decision[0], {"expense_id": "$made", **decision[1]}),
        ])
    for ev in month.milestone_events:
        if ev.kind == ACCEPTED:
            step = (at(ev.on, 15), "record_client_acceptance", {"milestone_id": ("milestone", ev.milestone_id), "on": ev.on})
        else:
            step = (at(ev.on, 12), "complete_milestone", {"milestone_id": ("milestone", ev.milestone_id), "on": ev.on})
        stories.append([step])
    for steps in stories:
        _Story(psa, steps, resolve).schedule()
    return len(stories)


class _Story:
    """One record's steps, each run once the step before it has happened."""

    def __init__(self, psa: Psa, steps: list, resolve) -> None:
        self.psa, self.steps, self.resolve = psa, steps, resolve
        self.next = 0
        self.tries = 0
        self.made: str | None = None

    def schedule(self, not_before: int = 0) -> None:
        kernel = self.psa.sim.kernel
        when = max(self.steps[self.next][0], not_before, kernel.now_us)
        kernel.call_at(when, self.run)

    def _lookup(self, kind: str, firm_id: str) -> str:
        psa = self.psa
        found = psa.firm_id(firm_id) or (self.resolve(kind, firm_id) if self.resolve else None)
        if found is None:
            found = psa.find_reference(_TABLES[kind], firm_id)
        if found is None:
            raise _Unresolved(f"no {kind} for firm id {firm_id} in {psa.name} yet")
        return found

    def run(self) -> None:
        psa = self.psa
        _, action, args = self.steps[self.next]
        try:
            kwargs = {k: (self.made if v == "$made" else self._lookup(*v) if isinstance(v, tuple) else v)
                      for k, v in args.items()}
            record = getattr(psa, action)(**kwargs)
        except (VendorError, _Unresolved) as exc:
            self.tries += 1
            if self.tries > _GIVE_UP_AFTER:
                psa.record("psa.people.gave_up", {"action": action, "error": str(exc)})
                return
            self.schedule(psa.now_us + _RETRY_US)
            return
        if action in ("log_time", "log_expense"):
            self.made = record["id"]
        self.next += 1
        self.tries = 0
        if self.next < len(self.steps):
            self.schedule(psa.now_us + MINUTE)

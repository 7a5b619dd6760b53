"""Workers: people from the HRIS into the PSA, effective-dated.

The HRIS is the system of record for people: hires, cost-rate changes
(effective-dated, possibly retroactive -- entered in March, effective from
January), cost-centre transfers and terminations (the last day worked). The
PSA needs each person as a resource (``external_reference`` = HRIS
``employeeId``, per the integration contract) with the same effective-dated
cost rates, so that it prices time at the rate in force on the work date,
and ended once they leave. The core keeps a canonical `model.Worker` of each
(table ``workers``), which answers "which cost rate on that day" for
margins (`cost_rate_on`).

Every HRIS event -- whichever kind, however often, in whatever order --
asks for the same thing: *make this worker's PSA resource match the HRIS
as it is now*. Two operations do it:

  * ``hris.read_worker`` (aggregate ``worker:<employeeId>:hris``) reads the
    worker and their whole cost-rate history and keeps the snapshot (table
    ``hris_workers``);
  * ``psa.sync_worker`` (aggregate ``worker:<employeeId>``) makes the PSA
    match the newest snapshot when it runs:

    - it finds the resource: the cross-reference first, else a look-up by
      ``external_reference``; PSA creates are not idempotent, so it is
      created only when the look-up -- made on every attempt, after a
      timeout too -- finds none. Two found may be the network's doing: a
      create delivered twice makes two. A copy with the very fields the
      core sends and nothing staffed on it is retired (its reference
      becomes ``dup-of:<kept id>``, as the project flow does); any other
      twin is a duplicate a person must merge (an IT exception), the
      cross-referenced one (else the oldest) used meanwhile. After a create
      the sync runs once more a while later, for a copy that lands late;
    - it makes the resource's cost rate on every date it or the HRIS names
      equal to the HRIS rate in force that date (``PUT
      .../cost_rates/<date>`` is an upsert; the same rate again changes
      nothing);
    - it terminates it on the HRIS's last day worked and ends its open
      assignments then (the PSA leaves that to the integration); an
      assignment on a closed project is left as it is.

Split in two so that a vendor's bad minute costs a retry of its own calls
only. A repeated or late event finds nothing to change, and a message that
has not started yet covers any event that arrives meanwhile, so a burst of
events for one person costs one read and one sync.

At go-live the HRIS already holds the firm's people and the PSA their
resources; a one-off roster read (``hris-roster``) records a canonical
Worker and the cross-references for each, and syncs those whose HRIS and
PSA records do not obviously agree.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import xrefs
from ..codec import from_json, to_json
from ..dispatcher import OpContext, Operation
from ..model import Audit, EffectiveRate, SourceRef, Worker
from ..outbox import Outbox, next_counter
from ..ports import Transaction
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .lookups import read

if TYPE_CHECKING:
    from ..core import ReferenceCore

__all__ = ["build", "WorkersFlow", "HR_EVENTS", "worker", "worker_of_resource", "cost_rate_on", "rate_history",
           "first_rate_change"]

HR_EVENTS = ("worker.hired", "worker.cost_rate_changed", "worker.transferred", "worker.terminated")
READ_OP = "hris.read_worker"
SYNC_OP = "psa.sync_worker"
COPIES_OP = "psa.check_worker_copies"
COPIES_DELAY_US = 10 * 60 * 1_000_000  # a network copy lands within seconds; look well after
PAGE = 200


def build(core: ReferenceCore) -> WorkersFlow:
    return WorkersFlow(core)


# ---------------------------------------------------------------- for other flows


def worker(txn: Transaction, employee_id: str) -> Worker | None:
    data = txn.get("workers", employee_id)
    return None if data is None else from_json(Worker, data)


def worker_of_resource(txn: Transaction, psa_resource_id: str) -> Worker | None:
    employee_id = xrefs.get(txn, "psa_resource.employee", psa_resource_id)
    return None if employee_id is None else worker(txn, employee_id)


def cost_rate_on(txn: Transaction, psa_resource_id: str, on: date) -> EffectiveRate | None:
    """The HRIS cost rate of a PSA resource in force on `on` -- retroactive
    changes included, which the PSA's stamp on an entry logged before the
    change does not know. None if the core does not know the person (yet)."""
    found = worker_of_resource(txn, psa_resource_id)
    if found is None:
        return None
    try:
        return found.cost_rate_on(on)
    except LookupError:
        return None


def rate_history(entries: list[dict]) -> list[dict]:
    """An HRIS cost-rate history as one rate per effective date, the latest
    entered winning on a date (``entrySeq``, else list order), by date."""
    by_date: dict[str, tuple[int, dict]] = {}
    for i, entry in enumerate(entries):
        seq = entry.get("entrySeq", i + 1)
        day = entry["effectiveDate"]
        if day not in by_date or seq >= by_date[day][0]:
            by_date[day] = (seq, {"effective_from": day, "rate": entry["amount"], "currency": entry["currency"]})
    return [by_date[d][1] for d in sorted(by_date)]


def first_rate_change(known: tuple[EffectiveRate, ...] | list, history: list[dict]) -> str | None:
    """The first day (ISO) on which `history` (an HRIS rate history) puts a
    different cost rate in force than the rates `known` did; None if none."""
    old = [{"effective_from": r.effective_from.isoformat(), "rate": str(r.rate), "currency": r.currency}
           for r in known]
    for day in sorted({r["effective_from"] for r in old} | {r["effective_from"] for r in history}):
        if not _same_rate(_in_force(old, day), _in_force(history, day)) and (
                _in_force(old, day) is not None or _in_force(history, day) is not None):
            return day
    return None


def _in_force(history: list[dict], day: str) -> dict | None:
    found = None
    for row in history:  # sorted by date
        if row["effective_from"] <= day:
            found = row
    return found


def _same_rate(a: dict | None, b: dict | None) -> bool:
    return (a is not None and b is not None and a["currency"] == b["currency"]
            and Decimal(a["rate"]) == Decimal(b["rate"]))


# ---------------------------------------------------------------- the flow


class WorkersFlow:
    name = "workers"

    def __init__(self, core: ReferenceCore) -> None:
        self.core = core
        for kind in HR_EVENTS:
            core.feeds.on("hris", kind, self.on_hr_event)
        interval = core.config.get("poll_interval", {})
        self.roster_interval = float(interval.get("hris_roster", 6 * 3600.0))

    def operations(self) -> list[Operation]:
        return [
            Operation(READ_OP, self.read_worker, self.worker_read, timeout=60.0),
            Operation(SYNC_OP, self.sync_worker, self.worker_synced, timeout=120.0),
            Operation(COPIES_OP, self.check_copies, self.copies_checked, timeout=60.0),
        ]

    def pollers(self) -> list:
        return [self.core.poller("hris-roster", self.read_roster, self.roster_interval)]

    def webhooks(self) -> dict:
        return {}

    # ------------------------------------------------------------ inbound

    def on_hr_event(self, txn: Transaction, event: dict) -> None:
        employee_id = event.get("employeeId")
        if not isinstance(employee_id, str):
            self.core.open_exception(txn, "it", "HR_EVENT_UNREADABLE", f"HRIS event {event.get('id')} names no "
                                     "employeeId", {"event": event.get("id"), "type": event.get("type")})
            return
        self.core.trace("core.workers.event", {"employee": employee_id, "type": event["type"], "event": event["id"],
                                               "effective": event.get("effectiveDate")}, corr=f"worker:{employee_id}")
        self.request(txn, READ_OP, employee_id, f"hris:{event['id']}")

    def request(self, txn: Transaction, op: str, employee_id: str, cause: str) -> None:
        """Queue `op` for the worker unless one is queued and not started:
        that one will read the newest state when it runs."""
        state = txn.get("worker_sync", employee_id) or {"queued": {}, "reported": []}
        queued = state["queued"].get(op)
        message = Outbox.get(txn, queued) if queued else None
        if message is not None and message["attempts"] == 0:
            return
        aggregate = f"worker:{employee_id}:hris" if op == READ_OP else f"worker:{employee_id}"
        state["queued"][op] = self.core.enqueue(txn, op, {"employee_id": employee_id, "cause": cause},
                                               aggregate=aggregate, corr=f"worker:{employee_id}", cause=cause)
        txn.put("worker_sync", employee_id, state)

    def _done(self, txn: Transaction, op: str, employee_id: str, message: dict) -> dict:
        state = txn.get("worker_sync", employee_id) or {"queued": {}, "reported": []}
        if state["queued"].get(op) == message["id"]:
            del state["queued"][op]
        return state

    # ------------------------------------------------------------ go-live roster

    async def read_roster(self) -> bool:
        """Once: the people already in the HRIS and the PSA at go-live."""
        core = self.core
        with core.env.store.transaction() as txn:
            if txn.get("cursors", "hris-roster") is not None:
                return False
        try:
            people, resources = await self._roster()
        except BusinessException as exc:
            # The read itself refused (a changed API?): a person must look;
            # the roster is tried again next interval.
            with core.env.store.transaction() as txn:
                core.open_exception(txn, "it", exc.code, f"go-live roster read refused: {exc.message}", {})
            return False
        recorded = synced = 0
        with core.env.store.transaction() as txn:
            for view in sorted(people, key=lambda v: v["employeeId"]):
                employee_id = view["employeeId"]
                if txn.get("workers", employee_id) is not None:
                    continue  # an event got there first, with the whole history
                rows = resources.get(employee_id, [])
                if len(rows) == 1 and self._agrees(view, rows[0]):
                    history = [{"effective_from": view["costRate"]["effectiveDate"], "rate": view["costRate"]["amount"],
                                "currency": view["costRate"]["currency"]}]
                    self._record(txn, view, history, rows[0]["id"], None, "hris:roster")
                    recorded += 1
                else:
                    self.request(txn, READ_OP, employee_id, "hris:roster")
                    synced += 1
            txn.put("cursors", "hris-roster", {"read_us": core.now_us(), "workers": len(people)})
        core.trace("core.workers.roster", {"workers": len(people), "recorded": recorded, "to_sync": synced})
        return True

    async def _roster(self) -> tuple[list[dict], dict[str, list[dict]]]:
        """Every HRIS worker (paged), and the PSA's resources by external reference."""
        hris, psa = self.core.env.clients["hris"], self.core.env.clients["psa"]
        people: list[dict] = []
        offset = 0
        while True:
            response = await hris.request("GET", "/hr/v2/workers", query={"offset": str(offset), "limit": "100"})
            body = check("hris", response, ok=(200,), doing="reading the roster").json
            people.extend(body["data"])
            if not body.get("hasMore") or not body["data"]:
                break
            offset += len(body["data"])
        resources: dict[str, list[dict]] = {}
        page = 1
        while True:
            response = await psa.request("GET", "/resources", query={"page": str(page), "per_page": str(PAGE)})
            body = check("psa", response, ok=(200,), doing="reading resources").json
            for row in body["results"]:
                if row.get("external_reference"):
                    resources.setdefault(row["external_reference"], []).append(row)
            if not body.get("more"):
                break
            page += 1
        return people, resources

    @staticmethod
    def _agrees(view: dict, resource: dict) -> bool:
        """Nothing to do for this person: one rate since the hire, the same
        in the PSA, and the same employment status."""
        rate = view.get("costRate")
        if rate is None or rate["effectiveDate"] != view["hireDate"] or view.get("costCenter") is None:
            return False
        rows = resource.get("cost_rates") or []
        if len(rows) != 1 or not _same_rate(rows[0], {"rate": rate["amount"], "currency": rate["currency"]}):
            return False
        if rows[0]["effective_from"] != rate["effectiveDate"]:
            return False
        return (view["terminationDate"] is None) == (resource.get("status") != "terminated")

    # ------------------------------------------------------------ the operation

    async def read_worker(self, ctx: OpContext, payload: dict) -> dict:
        employee_id = payload["employee_id"]
        view = (await read(ctx, "hris", f"/hr/v2/workers/{employee_id}")).json
        if view.get("costCenter") is None and view["hireDate"] > view["asOf"]:
            # Hired in the future: what they will be on their first day.
            view = (await read(ctx, "hris", f"/hr/v2/workers/{employee_id}", {"asOf": view["hireDate"]})).json
        history = rate_history((await read(ctx, "hris", f"/hr/v2/workers/{employee_id}/costRates")).json["data"])
        return {"employee_id": employee_id, "view": view, "history": history}

    def worker_read(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        employee_id = result["employee_id"]
        txn.put("worker_sync", employee_id, self._done(txn, READ_OP, employee_id, message))
        txn.put("hris_workers", employee_id, {"view": result["view"], "history": result["history"],
                                              "read_us": now_us, "cause": message["payload"].get("cause")})
        self.request(txn, SYNC_OP, employee_id, message["id"])

    async def sync_worker(self, ctx: OpContext, payload: dict) -> dict:
        employee_id = payload["employee_id"]
        with ctx.env.store.transaction() as txn:
            snapshot = txn.get("hris_workers", employee_id)
            known = xrefs.get(txn, "employee.psa_resource", employee_id)
        view, history = snapshot["view"], snapshot["history"]
        resource, twins = await self._find_resource(ctx, employee_id, known)
        created = resource is None
        if created:
            resource = await self._create_resource(ctx, view, history)
        duplicates = [t["id"] for t in twins if not await self._retire_copy(ctx, resource, t)]
        changed_rates = await self._align_rates(ctx, resource, history)
        ended, late = [], []
        if view.get("terminationDate"):
            resource = await self._terminate(ctx, resource, view["terminationDate"])
            ended, late = await self._end_assignments(ctx, resource["id"], view["terminationDate"])
        return {"employee_id": employee_id, "resource_id": resource["id"], "view": view, "history": history,
                "assignments_after_leaving": late,
                "source_event": snapshot.get("cause") or "hris", "created": created, "duplicates": duplicates,
                "rates_set": changed_rates, "assignments_ended": ended, "terminated_on": resource.get("terminated_on")}

    async def _find_resource(self, ctx: OpContext, employee_id: str, known: str | None) -> tuple[dict | None, list]:
        """The resource to use and its twins (every other resource carrying
        the employee's reference), looked up on every sync: the network can
        make a copy at any time a create is in flight."""
        response = await read(ctx, "psa", "/resources", {"external_reference": employee_id, "per_page": str(PAGE)})
        rows = sorted(response.json["results"], key=lambda r: int(r["id"]))
        mine = [r for r in rows if r["id"] == known]
        if known is not None and not mine:
            # Its reference was changed by hand: the cross-reference still names it.
            response = await read(ctx, "psa", f"/resources/{known}", ok=(200, 404))
            if response.status == 200:
                return response.json, rows
        if not rows:
            return None, []
        keep = mine[0] if mine else rows[0]
        return keep, [r for r in rows if r["id"] != keep["id"]]

    async def _retire_copy(self, ctx: OpContext, kept: dict, twin: dict) -> bool:
        """Retire `twin` if it is a copy of the core's own create: the same
        fields the core sends and no assignment on it. False if a person
        must look at it."""
        if any(twin.get(f) != kept.get(f) for f in ("first_name", "last_name", "role_id", "home_entity_code")):
            return False
        staffed = await read(ctx, "psa", "/assignments", {"resource_id": twin["id"], "per_page": "1"})
        if staffed.json["results"]:
            return False
        response = await ctx.call("PATCH", f"/resources/{twin['id']}", json={"external_reference": f"dup-of:{kept['id']}"})
        check("psa", response, ok=(200,), doing=f"retiring resource {twin['id']}, a copy of {kept['id']}")
        ctx.env.tracer.event("core.psa.duplicate_renamed", {"path": "/resources", "id": twin["id"], "kept": kept["id"],
                                                             "reference": twin["external_reference"]},
                             corr=ctx.corr, cause=ctx.message["id"])
        return True

    async def _create_resource(self, ctx: OpContext, view: dict, history: list[dict]) -> dict:
        role_id = None
        profile = (view.get("jobProfile") or {}).get("id")
        if profile:
            response = await read(ctx, "psa", "/roles", {"external_reference": profile})
            roles = sorted(response.json["results"], key=lambda r: int(r["id"]))
            role_id = roles[0]["id"] if roles else None
        name = view.get("legalName") or {}
        body: dict[str, Any] = {
            "first_name": name.get("firstName") or view["employeeId"], "last_name": name.get("lastName") or view["employeeId"],
            "role_id": role_id, "home_entity_code": view.get("company"), "external_reference": view["employeeId"],
        }
        if history:
            body["cost_rate"] = dict(history[0])
        response = await ctx.call("POST", "/resources", json=body)
        return check("psa", response, ok=(201,), doing=f"creating the resource of {view['employeeId']}").json

    async def _align_rates(self, ctx: OpContext, resource: dict, history: list[dict]) -> list[str]:
        """On every date the PSA or the HRIS names (from the first HRIS
        rate on), the PSA's row must be the HRIS rate in force that day."""
        if not history:
            return []
        have = {row["effective_from"]: row for row in resource.get("cost_rates") or []}
        days = sorted({r["effective_from"] for r in history} | {d for d in have if d >= history[0]["effective_from"]})
        written = []
        for day in days:
            want = _in_force(history, day)
            if _same_rate(have.get(day), want):
                continue
            response = await ctx.call("PUT", f"/resources/{resource['id']}/cost_rates/{day}",
                                      json={"rate": want["rate"], "currency": want["currency"]})
            check("psa", response, ok=(200, 201), doing=f"setting the cost rate from {day} of resource {resource['id']}")
            written.append(day)
        return written

    async def _terminate(self, ctx: OpContext, resource: dict, last_day: str) -> dict:
        if resource.get("status") == "terminated":
            return resource
        response = await ctx.call("POST", f"/resources/{resource['id']}/terminate", json={"terminated_on": last_day})
        if response.status == 422 and error_code("psa", response.json) == "already_terminated":
            # An earlier attempt got there (its answer was lost).
            response = await ctx.call("GET", f"/resources/{resource['id']}")
        return check("psa", response, ok=(200,), doing=f"terminating resource {resource['id']}").json

    async def _end_assignments(self, ctx: OpContext, resource_id: str, last_day: str) -> tuple[list[str], list[dict]]:
        """End the leaver's open assignments on their last day. One that only
        starts after it cannot end before it starts (the PSA refuses): it
        ends on its first day, and the PMO is told to restaff it."""
        ended = []
        page = 1
        rows: list[dict] = []
        while True:
            body = (await read(ctx, "psa", "/assignments", {"resource_id": resource_id, "page": str(page),
                                                             "per_page": str(PAGE)})).json
            rows.extend(body["results"])
            if not body.get("more"):
                break
            page += 1
        late = []
        for row in sorted(rows, key=lambda r: int(r["id"])):
            end = max(last_day, row.get("start_date") or last_day)
            if end > last_day:
                late.append({"assignment": row["id"], "project": row.get("project_id"), "starts": end})
            if row.get("end_date") is not None and row["end_date"] <= end:
                continue
            current = await read(ctx, "psa", f"/assignments/{row['id']}")
            response = await ctx.call("PATCH", f"/assignments/{row['id']}", json={"end_date": end},
                                      headers={"if-match": current.headers.get("etag", "*")})
            if response.status == 412:
                raise RetryLater(f"assignment {row['id']} changed while being ended; read it again")
            if response.status == 422 and error_code("psa", response.json) == "project_closed":
                continue  # the project is over; its assignments no longer matter
            check("psa", response, ok=(200,), doing=f"ending assignment {row['id']}")
            ended.append(row["id"])
        return ended, late

    async def check_copies(self, ctx: OpContext, payload: dict) -> dict:
        """The late look after a create: retire the copies the network made
        of it. Its own aggregate, so it holds up no sync meanwhile; it never
        creates, so it cannot race one."""
        employee_id = payload["employee_id"]
        with ctx.env.store.transaction() as txn:
            known = xrefs.get(txn, "employee.psa_resource", employee_id)
        resource, twins = await self._find_resource(ctx, employee_id, known)
        duplicates = [] if resource is None else [
            t["id"] for t in twins if not await self._retire_copy(ctx, resource, t)]
        return {"employee_id": employee_id, "resource_id": resource and resource["id"], "duplicates": duplicates}

    def copies_checked(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        self._report_duplicates(txn, result["employee_id"], result["resource_id"], result["duplicates"])

    def _report_duplicates(self, txn: Transaction, employee_id: str, resource_id: str, duplicates: list) -> dict:
        state = txn.get("worker_sync", employee_id) or {"queued": {}, "reported": []}
        fresh = [d for d in duplicates if d not in state["reported"]]
        if fresh:
            self.core.open_exception(
                txn, "it", "DUPLICATE_RESOURCE",
                f"PSA resources {', '.join([resource_id, *fresh])} all carry external_reference {employee_id}; "
                f"merge them into {resource_id}", {"employee_id": employee_id, "kept": resource_id, "duplicates": fresh})
            state["reported"] = sorted([*state["reported"], *fresh])
            txn.put("worker_sync", employee_id, state)
        return state

    def worker_synced(self, txn: Transaction, message: dict, result: dict, now_us: int) -> None:
        employee_id, resource_id = result["employee_id"], result["resource_id"]
        txn.put("worker_sync", employee_id, self._done(txn, SYNC_OP, employee_id, message))
        state = self._report_duplicates(txn, employee_id, resource_id, result["duplicates"])
        if result["created"]:
            self.core.enqueue(txn, COPIES_OP, {"employee_id": employee_id}, aggregate=f"worker:{employee_id}:copies",
                              corr=f"worker:{employee_id}", cause=message["id"], delay_us=COPIES_DELAY_US)
        view = result["view"]
        for late in result.get("assignments_after_leaving", []):
            key = f"late:{late['assignment']}"
            if key in state["reported"]:
                continue
            self.core.open_exception(
                txn, "pmo", "ASSIGNMENT_AFTER_LEAVING",
                f"assignment {late['assignment']} (project {late['project']}) of {employee_id} starts on "
                f"{late['starts']}, after their last day {view.get('terminationDate')}; it was ended on its first "
                "day -- restaff the work", {"employee_id": employee_id, "resource_id": resource_id, **late})
            state["reported"] = sorted([*state["reported"], key])
            txn.put("worker_sync", employee_id, state)
        if result["terminated_on"] and view.get("terminationDate") and result["terminated_on"] != view["terminationDate"]:
            self.core.open_exception(
                txn, "pmo", "TERMINATION_DATE_MISMATCH",
                f"resource {resource_id} was terminated on {result['terminated_on']} in the PSA but the HRIS says "
                f"{view['terminationDate']}; the PSA cannot change it -- correct it by hand",
                {"employee_id": employee_id, "resource_id": resource_id})
        before = worker(txn, employee_id)
        self._record(txn, view, result["history"], resource_id, message, result["source_event"])
        restated = first_rate_change(before.cost_rates if before else (), result["history"]) if before else None
        if restated is not None:
            # Time already posted from that day on was costed at a rate that
            # no longer stands (a raise entered late, effective earlier):
            # the flows that cost it re-cost it.
            self.core.feeds.dispatch(txn, "core", "worker.cost_rates_changed", {
                "employee_id": employee_id, "resource_id": resource_id, "from": restated, "cause": message["id"]})
        self.core.trace("core.workers.synced", {
            "employee": employee_id, "resource": resource_id, "created": result["created"],
            "rates_set": result["rates_set"], "terminated_on": result["terminated_on"],
            "assignments_ended": result["assignments_ended"]}, corr=f"worker:{employee_id}", cause=message["id"])

    def _record(self, txn: Transaction, view: dict, history: list[dict], resource_id: str, message: dict | None,
                source_event: str) -> None:
        """The canonical Worker, and the cross-references both ways."""
        employee_id = view["employeeId"]
        xrefs.put(txn, "employee.psa_resource", employee_id, resource_id)
        xrefs.put(txn, "psa_resource.employee", resource_id, employee_id)
        existing = txn.get("workers", employee_id)
        gid = existing["gid"] if existing else Worker.gid_for(next_counter(txn, "worker_gid"))
        name = view.get("legalName") or {}
        terminated = view.get("terminationDate")
        record = Worker(
            gid=gid,
            source_ids=(SourceRef("hris", employee_id), SourceRef("psa", resource_id)),
            status="terminated" if terminated else "active",
            audit=Audit.at(self.core.env.now(), correlation_id=f"worker:{employee_id}", source_event=source_event,
                           causation_id=message["id"] if message else None),
            employee_id=employee_id,
            name=" ".join(p for p in (name.get("firstName"), name.get("lastName")) if p) or employee_id,
            role=(view.get("jobProfile") or {}).get("id") or "unknown",
            cost_centre=(view.get("costCenter") or {}).get("id") or "unassigned",
            legal_entity=view.get("company") or "unknown",
            hire_date=date.fromisoformat(view["hireDate"]),
            termination_date=date.fromisoformat(terminated) if terminated else None,
            cost_rates=tuple(EffectiveRate(date.fromisoformat(r["effective_from"]), Decimal(r["rate"]), r["currency"])
                             for r in history),
        )
        txn.put("workers", employee_id, to_json(record))

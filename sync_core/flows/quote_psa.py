"""Setting a won deal up in the PSA: project, WBS, milestones, activation.

The PSA's creates are not idempotent, so every create is guarded:

  * a cross-reference in the store says the record exists: nothing to do
    (each record's xref is committed as soon as the PSA confirms it, so an
    operation that fails half-way resumes where it stopped);
  * when an earlier attempt may have reached the PSA (`maybe_done_before`),
    the record is looked up by its external reference before creating;
  * tasks carry an explicit WBS code (the line's position in the contract),
    which the PSA keeps unique per project: a repeated create is refused
    (422 ``taken``) instead of making a second task.

One duplicate no client can prevent is the network's: a request delivered
twice creates twice. `collapse_duplicates` finds records sharing an external
reference, keeps the one the core built on (its cross-reference; else the
oldest) and renames the others' reference to ``dup-of:<kept id>``, so each
source record is referenced by exactly one PSA record (the PSA has no delete).
It runs before activation -- nobody can staff or book on a draft project --
and once more some minutes later for copies that arrived late.

Activation comes last: it is what lets the PMO staff the project, so delivery
never starts on a half-built WBS.
"""

from __future__ import annotations

from .. import xrefs
from ..dispatcher import OpContext
from ..codec import from_json
from ..model_contracts import Contract
from ..ports import Transaction
from ..replies import check, error_code
from ..retry import BusinessException, RetryLater
from .quote_contract import milestone_key, psa_billing_rule
from .quote_deal import call, read, require_xref, update_record

__all__ = ["create_project", "create_tasks", "create_milestones", "activate_project", "collapse_duplicates",
           "record_project", "VERIFY_DELAY_US"]

VERIFY_DELAY_US = 10 * 60 * 1_000_000  # late network copies arrive within seconds; look again well after


def _contract(ctx: OpContext, deal: str) -> Contract:
    data = read(ctx.env, lambda txn: xrefs.contract_json(txn, deal))
    if data is None:
        raise BusinessException("it", "PREREQUISITE_MISSING", f"deal {deal} has no canonical contract in the store; "
                                "the mapping step must run first", {"deal": deal})
    return from_json(Contract, data)


def _remember(ctx: OpContext, *pairs: tuple[str, str, object]) -> None:
    with ctx.env.store.transaction() as txn:
        for kind, source_id, value in pairs:
            xrefs.put(txn, kind, source_id, value)


async def _list(ctx: OpContext, path: str, **filters: str) -> list[dict]:
    rows: list[dict] = []
    page = 1
    while True:
        query = {**filters, "per_page": "200", "page": str(page)}
        body = check("psa", await call(ctx, "GET", path, query=query), ok=(200,), doing=f"listing {path}").json
        rows += body["results"]
        if not body.get("more"):
            return rows
        page += 1


async def _created(ctx: OpContext, path: str, body: dict, what: str) -> dict:
    return check("psa", await call(ctx, "POST", path, json=body), ok=(201,), doing=f"creating {what}").json


# ------------------------------------------------------------------ project


async def create_project(ctx: OpContext, deal: str, record: dict) -> dict:
    known = read(ctx.env, lambda txn: xrefs.get(txn, "deal.psa_project", deal))
    if known is not None:
        return {"id": known}
    if ctx.maybe_done_before:
        found = await _list(ctx, "/projects", external_reference=deal)
        if found:
            return {"id": found[0]["id"], "found": True}
    contract = _contract(ctx, deal)
    snapshot, entity = record["snapshot"], record["entity"]
    lines = contract.version(1).lines
    body = {
        "title": snapshot["opportunity"]["Name"],
        "client_name": snapshot["account"]["Name"],
        "currency": contract.currency,
        "billing_rule": psa_billing_rule(contract),
        "legal_entity_code": entity["code"],
        "opportunity_ref": deal,
        "external_reference": deal,
        "start_date": min(ln.service_start for ln in lines).isoformat(),
        "due_date": max(ln.service_end for ln in lines).isoformat(),
    }
    return {"id": (await _created(ctx, "/projects", body, f"the project of {deal}"))["id"]}


def record_project(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    xrefs.put(txn, "deal.psa_project", deal, result["id"])
    xrefs.put(txn, "psa_project.deal", result["id"], deal)


# ------------------------------------------------------------------ tasks: one per contract line


async def create_tasks(ctx: OpContext, deal: str, record: dict) -> dict:
    project = require_xref(ctx.env, "deal.psa_project", deal, "creating tasks")
    made: dict[str, str] = {}
    for position, line in enumerate(_contract(ctx, deal).version(1).lines, 1):
        lid = line.line_id
        known = read(ctx.env, lambda txn: xrefs.get(txn, "line.psa_task", lid))
        if known is None and ctx.maybe_done_before:
            found = await _list(ctx, "/tasks", project_id=project, external_reference=lid)
            known = found[0]["id"] if found else None
        if known is None:
            body = {"project_id": project, "wbs_code": str(position), "title": line.description,
                    "billable": line.billing_model == "t_and_m", "line_ref": lid, "external_reference": lid}
            response = await call(ctx, "POST", "/tasks", json=body)
            if response.status == 422 and error_code("psa", response.json) == "taken":
                found = await _list(ctx, "/tasks", project_id=project, external_reference=lid)
                if found:
                    known = found[0]["id"]
                else:  # someone else's task holds the code: let the PSA number ours
                    del body["wbs_code"]
                    known = (await _created(ctx, "/tasks", body, f"the task of line {lid}"))["id"]
            else:
                known = check("psa", response, ok=(201,), doing=f"creating the task of line {lid}").json["id"]
            _remember(ctx, ("line.psa_task", lid, known))
        made[lid] = known
    return {"tasks": made}


def record_tasks(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    for lid, task in sorted(result["tasks"].items()):
        xrefs.put(txn, "line.psa_task", lid, task)


# ------------------------------------------------------------------ fixed-fee milestones


async def create_milestones(ctx: OpContext, deal: str, record: dict) -> dict:
    project = require_xref(ctx.env, "deal.psa_project", deal, "creating milestones")
    made: dict[str, str] = {}
    for line in _contract(ctx, deal).version(1).lines:
        if not line.milestones:
            continue
        task = require_xref(ctx.env, "line.psa_task", line.line_id, "creating milestones")
        for m in sorted(line.milestones, key=lambda m: (m.due_date, m.name)):
            key = milestone_key(line.line_id, m.name)
            known = read(ctx.env, lambda txn: xrefs.get(txn, "milestone.psa_milestone", key))
            if known is None and ctx.maybe_done_before:
                found = await _list(ctx, "/milestones", project_id=project, external_reference=key)
                known = found[0]["id"] if found else None
            if known is None:
                body = {"project_id": project, "task_id": task, "title": m.name, "amount": format(m.amount, "f"),
                        "due_date": m.due_date.isoformat(), "external_reference": key}
                known = (await _created(ctx, "/milestones", body, f"milestone {key}"))["id"]
            _remember(ctx, ("milestone.psa_milestone", key, known),
                      ("psa_milestone.milestone", known, [deal, line.line_id, m.name]))
            made[key] = known
    return {"milestones": made}


def record_milestones(txn: Transaction, deal: str, result: dict, now_us: int) -> None:
    for key, ms in sorted(result["milestones"].items()):
        line, _, name = key.partition(":")
        xrefs.put(txn, "milestone.psa_milestone", key, ms)
        xrefs.put(txn, "psa_milestone.milestone", ms, [deal, line, name])


# ------------------------------------------------------------------ duplicates and activation


async def collapse_duplicates(ctx: OpContext, deal: str) -> list[str]:
    """Rename the references of network-made copies; returns their ids."""
    project = require_xref(ctx.env, "deal.psa_project", deal, "checking the PSA setup")
    renamed: list[str] = []

    async def rename(path: str, rows: list[dict], kind: str, extra: dict | None = None) -> None:
        groups: dict[str, list[dict]] = {}
        for row in rows:
            ref = row.get("external_reference")
            if ref and not ref.startswith("dup-of:"):
                groups.setdefault(ref, []).append(row)
        for ref, same in sorted(groups.items()):
            if len(same) < 2:
                continue
            ours = read(ctx.env, lambda txn: xrefs.get(txn, kind, ref))
            keep = ours if any(r["id"] == ours for r in same) else min(same, key=lambda r: int(r["id"]))["id"]
            for row in same:
                if row["id"] != keep:
                    body = {"external_reference": f"dup-of:{keep}", **(extra or {})}
                    check("psa", await call(ctx, "PATCH", f"{path}/{row['id']}", json=body), ok=(200,),
                          doing=f"renaming duplicate {path}/{row['id']}")
                    renamed.append(row["id"])
                    ctx.env.tracer.event("core.psa.duplicate_renamed", {"path": path, "id": row["id"], "kept": keep,
                                                                         "reference": ref}, corr=ctx.corr,
                                         cause=ctx.message["id"])

    await rename("/projects", await _list(ctx, "/projects", external_reference=deal), "deal.psa_project")
    await rename("/tasks", await _list(ctx, "/tasks", project_id=project), "line.psa_task")
    await rename("/milestones", await _list(ctx, "/milestones", project_id=project), "milestone.psa_milestone")
    return renamed


async def activate_project(ctx: OpContext, deal: str, record: dict) -> dict:
    project_id = require_xref(ctx.env, "deal.psa_project", deal, "activating the project")
    renamed: list[str] = []
    if not record.get("psa_checked"):  # once per deal here; the late look repeats it
        renamed = await collapse_duplicates(ctx, deal)
        with ctx.env.store.transaction() as txn:
            update_record(txn, deal, psa_checked=True)
    path = f"/projects/{project_id}"
    response = await call(ctx, "POST", f"{path}/activate", idempotent=True)  # a repeat is a 422, handled
    code = error_code("psa", response.json)
    if response.status == 422 and code == "activation_incomplete":  # made before this flow set both at creation
        body = {"billing_rule": psa_billing_rule(_contract(ctx, deal)), "legal_entity_code": record["entity"]["code"]}
        check("psa", await call(ctx, "PATCH", path, json=body), ok=(200,), doing=f"completing project {project_id}")
        response = await call(ctx, "POST", f"{path}/activate", idempotent=True)  # a repeat is a 422, handled
        code = error_code("psa", response.json)
    if response.status == 422 and code == "invalid_transition":
        # Not a draft: activated already (by a copy of this request, or the
        # attempt before), or closed by someone.
        project = check("psa", await call(ctx, "GET", path), ok=(200,), doing=f"reading project {project_id}").json
        if project["status"] == "closed":
            raise BusinessException("pmo", "PROJECT_CLOSED", f"project {project_id} of deal {deal} was closed before "
                                    "it was ever activated; reopen or re-provision it by hand", {"deal": deal})
        if project["status"] != "active":
            raise RetryLater(f"project {project_id} is {project['status']} after activation was refused")
    else:
        check("psa", response, ok=(200,), doing=f"activating project {project_id}")
    return {"project": project_id, "renamed": renamed}


async def verify_setup(ctx: OpContext, deal: str, record: dict) -> dict:
    return {"renamed": await collapse_duplicates(ctx, deal)}
